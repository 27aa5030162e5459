/**
 * The tail both conversation routes share: one upstream attempt (generation is billed and not idempotent), then
 * either the SSE stream relayed event by event, or the JSON reply passed through after a check that it is JSON.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Dialect } from '../errors.js';
import { callContext } from '../http/call-context.js';
import type { UpstreamResponse } from '../upstream/client.js';
import { badUpstreamReply } from '../upstream/errors.js';
import { relayUpstreamStream } from './sse-relay.js';

export interface ConversationCall {
  path: string;
  body: string;
  headers: Record<string, string>;
  model: string;
  /** Relay as a stream in this dialect's error framing; undefined for a plain JSON reply. */
  stream: Dialect | undefined;
}

/**
 * A 2xx upstream body that should be JSON but is not is a bad gateway, not something to hand on. Returns the
 * content type to answer with: DashScope may still answer an unasked-for stream in SSE, passed on as it is.
 */
export function checkJsonBody(res: UpstreamResponse): string {
  const type = String(res.headers['content-type'] ?? '');
  if (/^text\/event-stream/i.test(type)) return type;
  try {
    JSON.parse(res.body.toString('utf8'));
  } catch (err) {
    throw badUpstreamReply(`HTTP ${res.status} with a body that is not JSON`, res.requestId, err);
  }
  return 'application/json';
}

export async function forwardConversation(
  request: FastifyRequest,
  reply: FastifyReply,
  call: ConversationCall,
): Promise<FastifyReply> {
  const ctx = callContext(request, reply);
  const base = {
    path: call.path,
    body: call.body,
    headers: call.headers,
    requestId: ctx.requestId,
    signal: ctx.signal,
    trace: ctx.trace,
    idempotent: false,
    model: call.model,
  };
  if (call.stream) {
    const up = await ctx.upstream.stream({ ...base, accept: 'text/event-stream' });
    return relayUpstreamStream(request, reply, up, { dialect: call.stream, signal: ctx.signal });
  }
  const res = await ctx.upstream.call(base);
  if (res.requestId) reply.header('x-dashscope-request-id', res.requestId);
  return reply.code(res.status).type(checkJsonBody(res)).send(ctx.upstream.scrub(res.body));
}
