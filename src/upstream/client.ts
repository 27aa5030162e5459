/**
 * The one way the gateway talks to DashScope: a keep-alive undici Pool per upstream origin.
 * Every call gets the upstream key, the workspace header (when configured) and the request id injected here,
 * so no route can forget them and no caller header (Authorization above all) can leak through.
 * Transport failures map through TRANSPORT_FAILURES; upstream HTTP statuses through ./errors.ts.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Dispatcher, Pool } from 'undici';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';

/** One upstream attempt, as the access log reports it. */
export interface UpstreamTrace {
  path: string;
  status: number | string;
  requestId: string | undefined;
  ms: number;
}

export interface UpstreamRequest {
  method?: 'GET' | 'POST';
  /** Path + query, starting with `/api/v1/` or `/compatible-mode/v1/`. */
  path: string;
  body?: string | Buffer;
  /** Extra DashScope headers (X-DashScope-*) the route decided to pass on. */
  headers?: Record<string, string>;
  requestId: string;
  signal?: AbortSignal;
  /** Collects one entry per attempt for the access log. */
  trace?: UpstreamTrace[];
  /** Safe to retry on connection failures and 5xx (embeddings are; task submission is not). */
  idempotent?: boolean;
  /** The model the call is for: the upstream budget is per model. */
  model?: string;
  /** Accept header to send (SSE streams want text/event-stream). */
  accept?: string;
}

/**
 * Admission control for upstream calls (the shared upstream budget plugs in here). `acquire` runs before
 * every attempt, so each chunk of a split batch, each retry and each task poll takes a unit; it resolves
 * when the call may go, or throws a GatewayError (429) when it cannot go in time. `observe` sees every
 * upstream status, so a DashScope 429 can make every replica back off.
 */
export interface UpstreamGate {
  acquire(req: UpstreamRequest): Promise<void>;
  observe(req: UpstreamRequest, status: number, headers: IncomingHttpHeaders): void;
}

const OPEN_GATE: UpstreamGate = { acquire: async () => {}, observe: () => {} };

export interface UpstreamStream {
  status: number;
  headers: IncomingHttpHeaders;
  /** The reply body as it arrives; destroy it to abort the upstream request. */
  body: Readable;
  requestId: string | undefined;
}

export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** DashScope's request id: the `x-request-id` response header (equal to the body's `request_id`). */
  requestId: string | undefined;
}

/**
 * Transport error code → gateway error. Modelled on @fastify/reply-from's table, but with the statuses a
 * gateway should use: a reset is a bad gateway (502), not an internal error.
 */
const TRANSPORT_FAILURES: Record<
  string,
  {
    kind: 'UPSTREAM_TIMEOUT' | 'UPSTREAM_UNAVAILABLE' | 'UPSTREAM_BAD_RESPONSE';
    what: string;
    retry: boolean;
  }
> = {
  UND_ERR_CONNECT_TIMEOUT: {
    kind: 'UPSTREAM_TIMEOUT',
    what: 'connecting to DashScope timed out',
    retry: true,
  },
  // DashScope may still be working on a call whose reply is late: retrying would double the wait and the cost.
  UND_ERR_HEADERS_TIMEOUT: {
    kind: 'UPSTREAM_TIMEOUT',
    what: 'DashScope did not answer in time',
    retry: false,
  },
  UND_ERR_BODY_TIMEOUT: {
    kind: 'UPSTREAM_TIMEOUT',
    what: 'DashScope stopped sending its reply',
    retry: false,
  },
  ECONNREFUSED: { kind: 'UPSTREAM_UNAVAILABLE', what: 'DashScope refused the connection', retry: true },
  ENOTFOUND: { kind: 'UPSTREAM_UNAVAILABLE', what: 'DashScope host name did not resolve', retry: true },
  EAI_AGAIN: { kind: 'UPSTREAM_UNAVAILABLE', what: 'DashScope host name did not resolve', retry: true },
  EHOSTUNREACH: { kind: 'UPSTREAM_UNAVAILABLE', what: 'DashScope host unreachable', retry: true },
  ENETUNREACH: { kind: 'UPSTREAM_UNAVAILABLE', what: 'DashScope network unreachable', retry: true },
  ECONNRESET: { kind: 'UPSTREAM_BAD_RESPONSE', what: 'DashScope reset the connection', retry: true },
  EPIPE: { kind: 'UPSTREAM_BAD_RESPONSE', what: 'DashScope closed the connection', retry: true },
  UND_ERR_SOCKET: { kind: 'UPSTREAM_BAD_RESPONSE', what: 'DashScope closed the connection', retry: true },
  UND_ERR_CLOSED: { kind: 'UPSTREAM_BAD_RESPONSE', what: 'DashScope closed the connection', retry: true },
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: {
    kind: 'UPSTREAM_BAD_RESPONSE',
    what: 'DashScope sent a truncated reply',
    retry: true,
  },
};

function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  // undici wraps socket errors; the useful code can sit one level down in `cause`.
  for (let depth = 0; depth < 3 && e && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code in TRANSPORT_FAILURES) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Map a transport failure to a GatewayError. Never includes the upstream key or a stack in the message. */
function classify(err: unknown): { error: GatewayError; retry: boolean } {
  if (err instanceof GatewayError) return { error: err, retry: false };
  const code = errorCode(err);
  const row = code ? TRANSPORT_FAILURES[code] : undefined;
  if (row)
    return { error: new GatewayError(row.kind, `${row.what} (${code})`, { cause: err }), retry: row.retry };
  return {
    error: new GatewayError('UPSTREAM_BAD_RESPONSE', 'the call to DashScope failed', { cause: err }),
    retry: false,
  };
}

/**
 * The most of a reply body call() holds in memory. DashScope's largest buffered replies (a 20-item multimodal batch
 * at 2560 dimensions, a task-list page) are a few MB; a reply past this is not one of them, and reading it whole
 * could exhaust the process: the body timeout bounds only the gaps between chunks, not the total. SSE relays
 * (stream()) are not buffered and not capped.
 */
export const MAX_REPLY_BYTES = 64 * 1024 * 1024;

function replyTooLarge(): GatewayError {
  return new GatewayError(
    'UPSTREAM_BAD_RESPONSE',
    `DashScope sent a reply larger than ${MAX_REPLY_BYTES} bytes; the gateway does not buffer more`,
  );
}

/** The whole body, or a 502 as soon as it passes MAX_REPLY_BYTES (the rest is not read: the body is destroyed). */
async function readReply(res: Dispatcher.ResponseData): Promise<Buffer> {
  const declared = Number(res.headers['content-length']);
  if (declared > MAX_REPLY_BYTES) {
    res.body.destroy();
    throw replyTooLarge();
  }
  // A declared length within the cap is enforced by undici itself (a longer body is a content-length mismatch),
  // so its own body consumer can be used: cheaper than iterating the stream on the hot path.
  if (Number.isInteger(declared) && declared >= 0) return Buffer.from(await res.body.arrayBuffer());
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    const buf = chunk as Buffer;
    size += buf.length;
    // Leaving the loop by throwing destroys the body, which closes the upstream connection.
    if (size > MAX_REPLY_BYTES) throw replyTooLarge();
    chunks.push(buf);
  }
  return Buffer.concat(chunks, size);
}

/** Upstream statuses worth one more try: transient server-side failures. 429 is the rate limiter's business. */
const RETRYABLE_STATUS = new Set([500, 502, 503, 504]);

export class Upstream {
  private readonly pools = new Map<string, Pool>();
  private readonly origin: string;
  /** A path prefix in DASHSCOPE_BASE_URL (an egress proxy mounted under a path) goes before every call's path. */
  private readonly prefix: string;
  private readonly authHeaders: Record<string, string>;
  closed = false;

  constructor(
    private readonly cfg: Config['upstream'],
    readonly gate: UpstreamGate = OPEN_GATE,
  ) {
    const url = new URL(cfg.baseUrl);
    this.origin = url.origin;
    this.prefix = url.pathname.replace(/\/+$/, '');
    this.authHeaders = { authorization: `Bearer ${cfg.apiKey}` };
    if (cfg.workspace) this.authHeaders['x-dashscope-workspace'] = cfg.workspace;
  }

  private pool(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, {
        connections: this.cfg.connections,
        connect: { timeout: this.cfg.connectTimeoutMs },
        headersTimeout: this.cfg.headersTimeoutMs,
        bodyTimeout: this.cfg.bodyTimeoutMs,
        keepAliveTimeout: 30_000,
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  /** One call with retries for idempotent requests. Resolves with any HTTP status; rejects with a GatewayError. */
  async call(req: UpstreamRequest): Promise<UpstreamResponse> {
    const attempts = req.idempotent ? this.cfg.retries + 1 : 1;
    for (let attempt = 1; ; attempt++) {
      let res: UpstreamResponse | undefined;
      let failure: { error: GatewayError; retry: boolean } | undefined;
      try {
        res = await this.once(req);
      } catch (err) {
        if (req.signal?.aborted) throw err;
        failure = classify(err);
      }
      const retry = failure ? failure.retry : RETRYABLE_STATUS.has(res!.status);
      if (attempt >= attempts || !retry) {
        if (failure) throw failure.error;
        return res!;
      }
      // Exponential backoff with full jitter keeps replicas from retrying in lockstep.
      const delay = Math.random() * this.cfg.retryBaseMs * 2 ** (attempt - 1);
      await sleep(delay, undefined, req.signal ? { signal: req.signal } : undefined);
    }
  }

  /** Sends one attempt and returns as soon as the status and headers are in (body not read). */
  private async dispatch(req: UpstreamRequest, entry: UpstreamTrace): Promise<Dispatcher.ResponseData> {
    await this.gate.acquire(req);
    const headers: Record<string, string> = {
      ...req.headers,
      ...this.authHeaders,
      'x-request-id': req.requestId,
      accept: req.accept ?? 'application/json',
    };
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    req.trace?.push(entry);
    const started = performance.now();
    try {
      const res = await this.pool(this.origin).request({
        method: req.method ?? 'POST',
        path: this.prefix + req.path,
        headers,
        body: req.body,
        signal: req.signal,
      });
      const rid = res.headers['x-request-id'];
      entry.status = res.statusCode;
      entry.requestId = typeof rid === 'string' ? rid : undefined;
      this.gate.observe(req, res.statusCode, res.headers);
      return res;
    } catch (err) {
      entry.status = errorCode(err) ?? 'error';
      throw err;
    } finally {
      entry.ms = Math.round((performance.now() - started) * 10) / 10;
    }
  }

  private async once(req: UpstreamRequest): Promise<UpstreamResponse> {
    const entry: UpstreamTrace = {
      path: req.path.split('?')[0]!,
      status: 'error',
      requestId: undefined,
      ms: 0,
    };
    const res = await this.dispatch(req, entry);
    const started = performance.now();
    try {
      const body = await readReply(res);
      return { status: res.statusCode, headers: res.headers, body, requestId: entry.requestId };
    } catch (err) {
      entry.status = errorCode(err) ?? 'error';
      throw err;
    } finally {
      entry.ms = Math.round((entry.ms + performance.now() - started) * 10) / 10;
    }
  }

  /**
   * One attempt whose body is handed over as a stream (SSE relays). Never retried: part of the reply may
   * already have reached the caller. Transport failures before the headers map like call()'s.
   */
  async stream(req: UpstreamRequest): Promise<UpstreamStream> {
    const entry: UpstreamTrace = {
      path: req.path.split('?')[0]!,
      status: 'error',
      requestId: undefined,
      ms: 0,
    };
    try {
      const res = await this.dispatch(req, entry);
      return { status: res.statusCode, headers: res.headers, body: res.body, requestId: entry.requestId };
    } catch (err) {
      if (req.signal?.aborted) throw err;
      throw classify(err).error;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.pools.values()].map((p) => p.close()));
  }
}
