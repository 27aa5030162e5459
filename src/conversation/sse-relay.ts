/**
 * Relays an upstream server-sent-event stream to the caller as it arrives, one whole event at a time.
 *
 * - No buffering of the reply: each event goes out as soon as its blank line has arrived
 *   (docs/dashscope-contract.md §3.7 for DashScope's `id:/event:/:HTTP_STATUS/data:` framing; OpenAI-style
 *   `data: …` chunks and `data: [DONE]` for compatible mode). Events are passed on byte for byte; the gateway does
 *   not re-frame them.
 * - Backpressure: the upstream body is piped, so a slow caller slows the upstream read (TCP does the rest).
 * - Caller goes away: Fastify destroys the relay stream, which destroys the upstream body; the route's abort
 *   signal (callContext) also aborts the undici request, so DashScope sees the connection close.
 * - Upstream fails before streaming (non-2xx): the upstream client has already mapped it (src/upstream/client.ts
 *   stream()), so the caller gets an ordinary JSON error in its dialect.
 * - Upstream breaks off mid-stream: the partial event is dropped and one last error event in the caller's dialect
 *   is sent (`event:error` + `{code,message,request_id}` natively, `data: {"error":…}` for OpenAI clients, which
 *   the openai SDK raises as an APIError), so clients see a failure rather than a silently short answer.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Dialect, GatewayError, renderError } from '../errors.js';
import type { UpstreamStream } from '../upstream/client.js';

/** The blank line that ends an SSE event (LF or CRLF line endings). */
const EVENT_END = /\r?\n\r?\n/;
/** An event without its blank line after this many characters is passed on as it is (no unbounded buffering). */
const MAX_PENDING_CHARS = 4 * 1024 * 1024;

/** Splits an SSE byte stream into whole events and passes each on as soon as it is complete. */
export class SseEventSplitter extends Transform {
  private pending = '';
  private readonly decoder = new StringDecoder('utf8');
  private trailer: string | undefined;
  /** Events passed on so far. */
  events = 0;
  /** The last numeric `id:` seen (DashScope numbers its events 1, 2, …). */
  lastId = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.pending += this.decoder.write(chunk);
    for (let m = EVENT_END.exec(this.pending); m; m = EVENT_END.exec(this.pending)) {
      const end = m.index + m[0].length;
      this.emitEvent(this.pending.slice(0, end));
      this.pending = this.pending.slice(end);
    }
    if (this.pending.length > MAX_PENDING_CHARS) {
      this.push(this.pending);
      this.pending = '';
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    this.pending += this.decoder.end();
    if (this.trailer !== undefined) this.push(this.trailer);
    else if (this.pending !== '') this.push(this.pending);
    this.pending = '';
    cb();
  }

  /** End the stream with `frame` instead of whatever partial event is pending (the upstream broke off). */
  fail(frame: string): void {
    this.trailer = frame;
    this.end();
  }

  private emitEvent(event: string): void {
    const id = /^id:\s?(\d+)\s*$/m.exec(event);
    if (id) this.lastId = Number(id[1]);
    this.events++;
    this.push(event);
  }
}

/** The last event that tells a caller the stream failed, in its dialect. */
export function errorEvent(err: GatewayError, dialect: Dialect, requestId: string, nextId: number): string {
  const { status, body } = renderError(err, dialect, requestId);
  if (dialect === 'dashscope') {
    return `id:${nextId}\nevent:error\n:HTTP_STATUS/${status}\ndata:${JSON.stringify(body)}\n\n`;
  }
  return `data: ${JSON.stringify(body)}\n\n`;
}

/** What broke an upstream stream that had started, as a gateway error. */
function midStreamFailure(err: unknown): GatewayError {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'UND_ERR_BODY_TIMEOUT') {
    return new GatewayError(
      'UPSTREAM_TIMEOUT',
      'DashScope stopped sending its stream (UND_ERR_BODY_TIMEOUT)',
      {
        cause: err,
      },
    );
  }
  return new GatewayError(
    'UPSTREAM_BAD_RESPONSE',
    `DashScope's stream broke off before it finished${typeof code === 'string' ? ` (${code})` : ''}`,
    { cause: err },
  );
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export interface RelayOptions {
  /** The caller's error dialect (native DashScope or OpenAI). */
  dialect: Dialect;
  /** The route's caller signal (callContext): aborted when the caller disconnects. */
  signal: AbortSignal;
}

/** Answer `reply` with the (2xx) upstream stream `up`. */
export async function relayUpstreamStream(
  request: FastifyRequest,
  reply: FastifyReply,
  up: UpstreamStream,
  opts: RelayOptions,
): Promise<FastifyReply> {
  if (up.requestId) reply.header('x-dashscope-request-id', up.requestId);
  const type = header(up.headers, 'content-type') ?? '';
  if (!/^text\/event-stream/i.test(type)) {
    // DashScope answered in one piece after all: pass it on as it came.
    return reply
      .code(up.status)
      .type(type || 'application/json')
      .send(up.body);
  }

  const out = new SseEventSplitter();
  up.body.on('error', (err: unknown) => {
    if (opts.signal.aborted || out.destroyed) {
      out.destroy();
      return;
    }
    const failure = midStreamFailure(err);
    request.ctx.error = failure.message;
    request.log.warn({ err, kind: failure.kind }, failure.message);
    out.fail(errorEvent(failure, opts.dialect, request.id, out.lastId + 1));
  });
  // However the relay ends (caller gone, reply destroyed), the upstream body goes with it.
  out.on('close', () => {
    if (!up.body.destroyed) up.body.destroy();
  });
  up.body.pipe(out);
  return reply
    .code(200)
    .headers({
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      // Proxies in front of the gateway (nginx) must not buffer the stream either.
      'x-accel-buffering': 'no',
    })
    .send(out);
}
