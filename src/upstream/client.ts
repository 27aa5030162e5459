/**
 * The one way the gateway talks to DashScope (the DashScope seam): one keep-alive undici Pool to the upstream origin.
 * Every call gets the upstream key, the workspace header (the caller's own workspace, else DASHSCOPE_WORKSPACE) and
 * the request id injected here, so no route can forget them and no caller header (Authorization, a workspace of the
 * caller's choosing) can leak through. Replies that are not what the call expects are mapped to the caller-facing
 * error here too (./errors.ts), so the key never leaves this module: routes get either a usable reply or a
 * GatewayError. Paths live in ./paths.ts.
 * Transport failures map through TRANSPORT_FAILURES; upstream HTTP statuses through ./errors.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type Dispatcher, Pool } from 'undici';
import type { z } from 'zod';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';
import { OPEN_PERMIT } from '../ratelimit/admission.js';
import type { Admission, Governor, Permit } from '../ratelimit/governor.js';
import { attemptPermit } from './budget-permit.js';
import { type AttemptSignal, attemptSignal } from './deadline.js';
import { badUpstreamReply, type UpstreamResponse, upstreamFailure } from './errors.js';
import { ERROR_BODY_CAP, readCapped, readReply } from './reply-body.js';
import { classify, errorCode } from './transport-errors.js';

export type { UpstreamResponse } from './errors.js';
export type { UpstreamObserver, UpstreamRequest, UpstreamStream, UpstreamTrace } from './types.js';

import type { UpstreamObserver, UpstreamRequest, UpstreamStream, UpstreamTrace } from './types.js';

export { MAX_REPLY_BYTES } from './reply-body.js';

/** What a request's handlers use: the client with the calling key's defaults (its workspace) filled in. */
export type UpstreamCalls = Pick<Upstream, 'call' | 'json' | 'stream' | 'scrub'>;

/** Headers the client sets itself; the same names in `req.headers`, in any case, are dropped. */
const RESERVED_HEADERS = new Set(['authorization', 'x-dashscope-workspace', 'x-request-id']);

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
    private readonly observer?: UpstreamObserver,
  ) {
    const url = new URL(cfg.baseUrl);
    this.prefix = url.pathname.replace(/\/+$/, '');
    this.authHeaders = { authorization: `Bearer ${cfg.apiKey}` };
    this.pool = new Pool(url.origin, {
      connections: cfg.connections,
      connect: { timeout: cfg.connectTimeoutMs },
      headersTimeout: cfg.headersTimeoutMs,
      bodyTimeout: cfg.bodyTimeoutMs,
      keepAliveTimeout: 30_000,
    });
  }

  /**
   * This client as one caller sees it: every request without a `workspace` gets the caller's (none: the
   * DASHSCOPE_WORKSPACE default). A view, not a copy: pool, gate and observer are shared.
   */
  forCaller(workspace: string | undefined): UpstreamCalls {
    if (workspace === undefined) return this;
    const fill = (req: UpstreamRequest): UpstreamRequest =>
      req.workspace !== undefined ? req : { ...req, workspace };
    return {
      call: (req) => this.call(fill(req)),
      json: (req, schema, what) => this.json(fill(req), schema, what),
      stream: (req) => this.stream(fill(req)),
      scrub: (body) => this.scrub(body),
    };
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

  /** The caller-facing error for a request whose upstream work outlived REQUEST_TIMEOUT_MS. */
  deadlineExceeded(): GatewayError {
    return new GatewayError(
      'UPSTREAM_TIMEOUT',
      `the request took longer than ${this.cfg.requestTimeoutMs} ms (REQUEST_TIMEOUT_MS) waiting for DashScope`,
    );
  }

  /** The caller's signal joined with a timer that aborts at `req.deadline` (none without a deadline). */
  private attemptSignal(req: UpstreamRequest): AttemptSignal {
    return attemptSignal(req.signal, req.deadline, () => this.deadlineExceeded());
  }

  private permit(
    req: UpstreamRequest,
    attempt: number,
    own: { adm?: Admission },
    signal: AbortSignal | undefined,
  ): Permit | Promise<Permit> {
    // No budget configured: nothing to wait for, and no promise to allocate on every attempt.
    if (!this.governor) return OPEN_PERMIT;
    return attemptPermit(this.governor, req, attempt, own, signal);
  }

  /**
   * One call with retries for idempotent requests, all within `req.deadline`. Resolves with any HTTP status;
   * rejects with a GatewayError. A unit this call admitted for itself is given back if it was not used.
   */
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
      if (req.deadline !== undefined && Date.now() >= req.deadline) throw this.deadlineExceeded();
      let res: UpstreamResponse | undefined;
      let failure: { error: GatewayError; retry: boolean } | undefined;
      // The budget wait, the attempt and its body all run under the attempt's signal (caller + deadline).
      const bounded = this.attemptSignal(req);
      let permit: Permit | undefined;
      try {
        permit = await this.permit(req, attempt, own, bounded.signal);
        res = await this.once(req, bounded.signal);
      } catch (err) {
        if (req.signal?.aborted) throw err;
        if (bounded.expired()) throw this.deadlineExceeded();
        // A refusal by the budget (429/400/503) is the answer, not a transport failure to retry.
        if (!permit) throw err;
        failure = classify(err);
      } finally {
        permit?.done({ status: res?.status ?? 0, headers: res?.headers ?? {} });
        bounded.dispose();
      }
      const retry = failure ? failure.retry : RETRYABLE_STATUS.has(res!.status);
      // Exponential backoff with full jitter keeps replicas from retrying in lockstep.
      const delay = Math.random() * this.cfg.retryBaseMs * 2 ** (attempt - 1);
      // A backoff that would end past the deadline is not started: the caller gets this attempt's outcome now.
      const pastDeadline = req.deadline !== undefined && Date.now() + delay >= req.deadline;
      if (attempt >= attempts || !retry || pastDeadline) {
        if (failure) throw failure.error;
        return res!;
      }
      await sleep(delay, undefined, req.signal ? { signal: req.signal } : undefined);
    }
  }

  /**
   * Sends one attempt and returns as soon as the status and headers are in (body not read). `bodyTimeout`
   * overrides the pool's gap limit between body chunks (streams use STREAM_IDLE_TIMEOUT_MS).
   */
  private async dispatch(
    req: UpstreamRequest,
    entry: UpstreamTrace,
    signal: AbortSignal | undefined,
    bodyTimeout?: number,
  ): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers ?? {})) {
      if (!RESERVED_HEADERS.has(name.toLowerCase())) headers[name] = value;
    }
    Object.assign(headers, this.authHeaders);
    headers['x-request-id'] = req.requestId;
    headers.accept = req.accept ?? 'application/json';
    const workspace = req.workspace ?? this.cfg.workspace;
    if (workspace) headers['x-dashscope-workspace'] = workspace;
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    req.trace?.push(entry);
    const started = performance.now();
    try {
      const res = await this.pool.request({
        method: req.method ?? 'POST',
        path: this.prefix + req.path,
        headers,
        body: req.body,
        signal,
        ...(bodyTimeout === undefined ? {} : { bodyTimeout }),
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

  /** One attempt under `signal` (the attempt's: caller + deadline), not `req.signal`. */
  private async once(req: UpstreamRequest, signal: AbortSignal | undefined): Promise<UpstreamResponse> {
    const entry: UpstreamTrace = {
      path: req.path.split('?')[0]!,
      status: 'error',
      requestId: undefined,
      ms: 0,
    };
    try {
      const res = await this.dispatch(req, entry, signal);
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
    } finally {
      this.observer?.attempt(req.model, entry);
    }
  }

  /**
   * One attempt whose body is handed over as a stream (SSE relays). Never retried: part of the reply may
   * already have reached the caller. Transport failures before the headers map like call()'s, and so does a non-2xx
   * status (its small error body is read, up to ERROR_BODY_CAP). The deadline holds until the headers (and such an
   * error body) are in; a live stream is then cut only when DashScope is silent for STREAM_IDLE_TIMEOUT_MS (undici's
   * body timeout, UND_ERR_BODY_TIMEOUT), however long it runs.
   */
  async stream(req: UpstreamRequest): Promise<UpstreamStream> {
    const entry: UpstreamTrace = {
      path: req.path.split('?')[0]!,
      status: 'error',
      requestId: undefined,
      ms: 0,
    };
    if (req.deadline !== undefined && Date.now() >= req.deadline) throw this.deadlineExceeded();
    const bounded = this.attemptSignal(req);
    const own: { adm?: Admission } = {};
    let permit: Permit;
    // The budget wait counts against the deadline too; its own refusal (429) passes as it is.
    try {
      permit = await this.permit(req, 1, own, bounded.signal);
    } catch (err) {
      bounded.dispose();
      own.adm?.release();
      if (bounded.expired()) throw this.deadlineExceeded();
      throw err;
    }
    let res: Dispatcher.ResponseData | undefined;
    try {
      res = await this.dispatch(req, entry, bounded.signal, this.cfg.streamIdleTimeoutMs);
    } catch (err) {
      bounded.dispose();
      if (req.signal?.aborted) throw err;
      if (bounded.expired()) throw this.deadlineExceeded();
      throw classify(err).error;
    } finally {
      permit.done({ status: res?.statusCode ?? 0, headers: res?.headers ?? {} });
      own.adm?.release();
      this.observer?.attempt(req.model, entry);
    }
    if (res.statusCode < 200 || res.statusCode >= 300) {
      let body: Buffer;
      try {
        body = await readCapped(res.body, ERROR_BODY_CAP);
      } catch (err) {
        if (bounded.expired()) throw this.deadlineExceeded();
        throw classify(err).error;
      } finally {
        bounded.dispose();
      }
      throw upstreamFailure(
        { status: res.statusCode, headers: res.headers, body, requestId: entry.requestId },
        this.cfg.apiKey,
      );
    }
    bounded.dispose();
    return { status: res.statusCode, headers: res.headers, body: res.body, requestId: entry.requestId };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool.close();
  }
}
