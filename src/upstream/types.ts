/** The shapes the DashScope client takes and gives (src/upstream/client.ts). */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Admission } from '../ratelimit/governor.js';

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
   * Epoch ms by which the request's upstream work must be over (CallContext.deadline, from REQUEST_TIMEOUT_MS): an
   * attempt still running then is aborted, and no retry or backoff starts that would end past it. A stream is held
   * to it only until its headers arrive; then STREAM_IDLE_TIMEOUT_MS applies between chunks.
   */
  /** The calling key's DashScope workspace; DASHSCOPE_WORKSPACE (if any) when absent. */
  workspace?: string;
  deadline?: number;
  /**
   * The request's admission by the upstream budget (src/ratelimit/), when its pipeline admitted all its calls at
   * once: the first attempt takes its call `slot`, a retry one more unit. Without one, the client admits the call
   * by itself (task polls, uploads, conversation: one call each).
   */
  admission?: Admission;
  slot?: number;
  /** For a call admitted here: its token estimate. */
  tokens?: number;
}

/**
 * Sees every attempt that reached the wire once its trace entry is complete (status: HTTP status or transport error
 * code; ms: to the end of the body, or to the headers for streams). Metrics plug in here, so this module needs no
 * metrics library. Attempts the gate refused never went out and are not reported.
 */
export interface UpstreamObserver {
  attempt(model: string | undefined, entry: Readonly<UpstreamTrace>): void;
}

export interface UpstreamStream {
  status: number;
  headers: IncomingHttpHeaders;
  /** The reply body as it arrives; destroy it to abort the upstream request. */
  body: Readable;
  requestId: string | undefined;
}
