/**
 * The one way the gateway talks to DashScope (the DashScope seam): one keep-alive undici Pool to the upstream origin.
 * Every call gets the upstream key, the workspace header (when configured) and the request id injected here, so no
 * route can forget them and no caller header (Authorization above all) can leak through. Replies that are not what
 * the call expects are mapped to the caller-facing error here too (./errors.ts), so the key never leaves this module:
 * routes get either a usable reply or a GatewayError. Paths live in ./paths.ts.
 * Transport failures map through TRANSPORT_FAILURES; upstream HTTP statuses through ./errors.ts.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Dispatcher, Pool } from 'undici';
import type { z } from 'zod';
import type { Config } from '../config.js';
import type { GatewayError } from '../errors.js';
import { OPEN_PERMIT } from '../ratelimit/admission.js';
import { budgetScope } from '../ratelimit/context.js';
import type { Admission, Governor, Permit } from '../ratelimit/governor.js';
import { badUpstreamReply, type UpstreamResponse, upstreamFailure } from './errors.js';
import { ERROR_BODY_CAP, readCapped, readReply } from './reply-body.js';
import { classify, errorCode } from './transport-errors.js';

export type { UpstreamResponse } from './errors.js';

/** A call admitted by the client itself may wait for the budget (RATE_LIMIT_MAX_WAIT_MS caps that) and then work. */
const SELF_ADMITTED_DEADLINE_MS = 10 * 60_000;

export { MAX_REPLY_BYTES } from './reply-body.js';

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
  /**
   * The status a usable reply has (the embedding endpoints answer exactly 200); any 2xx when absent. Any other
   * status is turned into the mapped GatewayError before call() returns.
   */
  expect?: number;
  /**
   * The request's admission by the upstream budget (src/ratelimit/), when its pipeline admitted all its calls at
   * once: the first attempt takes its call `slot`, a retry one more unit. Without one, the client admits the call
   * by itself (task polls, uploads, conversation: one call each).
   */
  admission?: Admission;
  slot?: number;
  /** For a call admitted here: its token estimate and its deadline (epoch ms). */
  tokens?: number;
  deadline?: number;
}

export interface UpstreamStream {
  status: number;
  headers: IncomingHttpHeaders;
  /** The reply body as it arrives; destroy it to abort the upstream request. */
  body: Readable;
  requestId: string | undefined;
}

/** Upstream statuses worth one more try: transient server-side failures. 429 is the rate limiter's business. */
const RETRYABLE_STATUS = new Set([500, 502, 503, 504]);

export class Upstream {
  private readonly pool: Pool;
  /** A path prefix in DASHSCOPE_BASE_URL (an egress proxy mounted under a path) goes before every call's path. */
  private readonly prefix: string;
  private readonly authHeaders: Record<string, string>;
  closed = false;

  constructor(
    private readonly cfg: Config['upstream'],
    readonly governor?: Governor,
  ) {
    const url = new URL(cfg.baseUrl);
    this.prefix = url.pathname.replace(/\/+$/, '');
    this.authHeaders = { authorization: `Bearer ${cfg.apiKey}` };
    if (cfg.workspace) this.authHeaders['x-dashscope-workspace'] = cfg.workspace;
    this.pool = new Pool(url.origin, {
      connections: cfg.connections,
      connect: { timeout: cfg.connectTimeoutMs },
      headersTimeout: cfg.headersTimeoutMs,
      bodyTimeout: cfg.bodyTimeoutMs,
      keepAliveTimeout: 30_000,
    });
  }

  /**
   * One call, retried when idempotent, that resolves only with a usable reply (`expect`, else any 2xx): every other
   * status rejects with the mapped GatewayError, as do transport failures.
   */
  async call(req: UpstreamRequest): Promise<UpstreamResponse> {
    const res = await this.send(req);
    const usable =
      req.expect !== undefined ? res.status === req.expect : res.status >= 200 && res.status < 300;
    if (!usable) throw upstreamFailure(res, this.cfg.apiKey);
    return res;
  }

  /** call() and the reply's JSON checked against `schema`; a reply that does not match is a 502 naming `what`. */
  async json<S extends z.ZodType>(
    req: UpstreamRequest,
    schema: S,
    what: string,
  ): Promise<{ res: UpstreamResponse; data: z.infer<S> }> {
    const res = await this.call(req);
    let json: unknown;
    try {
      json = JSON.parse(res.body.toString('utf8'));
    } catch (err) {
      throw badUpstreamReply(`a reply that is not JSON where ${what} was expected`, res.requestId, err);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw badUpstreamReply(`a reply without ${what}`, res.requestId);
    return { res, data: parsed.data };
  }

  /**
   * A 2xx body passed on to the caller as it came (tasks, generation, upload policy): the upstream key must not
   * reach a caller in any reply, so an echo of it is replaced, as in error messages. Buffer#indexOf is native, so the
   * common case (no echo) costs one scan.
   */
  scrub(body: Buffer): Buffer {
    const key = this.cfg.apiKey;
    if (body.indexOf(key) < 0) return body;
    return Buffer.from(body.toString('utf8').split(key).join('[redacted]'));
  }

  /**
   * The budget's permit for one attempt: the first attempt waits for its slot (paced), a retry takes one more unit
   * within the request's deadline. A call without an admission is admitted here, as a request of one call.
   */
  private async permit(req: UpstreamRequest, attempt: number, own: { adm?: Admission }): Promise<Permit> {
    if (!this.governor) return OPEN_PERMIT;
    let adm = req.admission ?? own.adm;
    if (!adm) {
      own.adm = adm = await this.governor.admit({
        model: req.model,
        calls: 1,
        tokens: [req.tokens ?? 0],
        caller: budgetScope.getStore()?.caller ?? 'anonymous',
        deadline: req.deadline ?? Date.now() + SELF_ADMITTED_DEADLINE_MS,
        ...(req.signal ? { signal: req.signal } : {}),
      });
    }
    if (attempt > 1) return adm.retry(req.signal);
    return adm.slot(req.admission ? (req.slot ?? 0) : 0, req.signal);
  }

  /** One call with retries for idempotent requests. Resolves with any HTTP status; rejects with a GatewayError. */
  private async send(req: UpstreamRequest): Promise<UpstreamResponse> {
    const own: { adm?: Admission } = {};
    try {
      return await this.attempts(req, own);
    } finally {
      own.adm?.release();
    }
  }

  private async attempts(req: UpstreamRequest, own: { adm?: Admission }): Promise<UpstreamResponse> {
    const attempts = req.idempotent ? this.cfg.retries + 1 : 1;
    for (let attempt = 1; ; attempt++) {
      let res: UpstreamResponse | undefined;
      let failure: { error: GatewayError; retry: boolean } | undefined;
      const permit = await this.permit(req, attempt, own);
      try {
        res = await this.once(req);
      } catch (err) {
        if (req.signal?.aborted) throw err;
        failure = classify(err);
      } finally {
        permit.done({ status: res?.status ?? 0, headers: res?.headers ?? {} });
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
      const res = await this.pool.request({
        method: req.method ?? 'POST',
        path: this.prefix + req.path,
        headers,
        body: req.body,
        signal: req.signal,
      });
      const rid = res.headers['x-request-id'];
      entry.status = res.statusCode;
      entry.requestId = typeof rid === 'string' ? rid : undefined;
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
   * already have reached the caller. Transport failures before the headers map like call()'s, and so does a non-2xx
   * status (its small error body is read, up to ERROR_BODY_CAP).
   */
  async stream(req: UpstreamRequest): Promise<UpstreamStream> {
    const entry: UpstreamTrace = {
      path: req.path.split('?')[0]!,
      status: 'error',
      requestId: undefined,
      ms: 0,
    };
    let res: Dispatcher.ResponseData | undefined;
    const own: { adm?: Admission } = {};
    const permit = await this.permit(req, 1, own);
    try {
      res = await this.dispatch(req, entry);
    } catch (err) {
      if (req.signal?.aborted) throw err;
      throw classify(err).error;
    } finally {
      permit.done({ status: res?.statusCode ?? 0, headers: res?.headers ?? {} });
      own.adm?.release();
    }
    if (res.statusCode < 200 || res.statusCode >= 300) {
      const body = await readCapped(res.body, ERROR_BODY_CAP);
      throw upstreamFailure(
        { status: res.statusCode, headers: res.headers, body, requestId: entry.requestId },
        this.cfg.apiKey,
      );
    }
    return { status: res.statusCode, headers: res.headers, body: res.body, requestId: entry.requestId };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool.close();
  }
}
