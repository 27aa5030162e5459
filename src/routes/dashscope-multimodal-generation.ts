/**
 * Native Qwen-VL conversation, as the DashScope SDKs (MultiModalConversation) and LangChain's ChatAlibabaTongyi
 * call it: `POST /api/v1/services/aigc/multimodal-generation/generation` (contract §1.2, §2.4).
 * The caller's body is forwarded unchanged after the model and media checks. Non-streaming replies are passed
 * through; streams are relayed event by event (src/streaming/sse-relay.ts).
 * Generation is not idempotent (each call is billed and may differ), so there is exactly one upstream attempt.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { callContext } from '../app.js';
import { GatewayError } from '../errors.js';
import type { MediaRef } from '../media/url-policy.js';
import { needsOssResolve } from '../media/url-policy.js';
import type { ConversationModel, ModelTable } from '../models/index.js';
import { relayUpstreamStream } from '../streaming/sse-relay.js';
import {
  NativeConversationBody,
  nativeConversationMedia,
  wantsNativeStream,
} from '../translate/conversation-native.js';
import type { UpstreamResponse } from '../upstream/client.js';
import { upstreamFailure } from '../upstream/errors.js';
import { parseBody } from '../validation.js';

export const MULTIMODAL_GENERATION_PATH = '/api/v1/services/aigc/multimodal-generation/generation';

/** The conversation model named `name`, or a 400 listing the ones served. */
export function requireConversationModel(models: ModelTable, name: string): ConversationModel {
  const model = models.get(name);
  if (model?.kind === 'conversation') return model;
  const known = models
    .names()
    .filter((n) => models.get(n)?.kind === 'conversation')
    .join(', ');
  throw new GatewayError(
    'UNKNOWN_MODEL',
    `model "${name}" is not a Qwen-VL conversation model served here; known: ${known}`,
    { param: 'model' },
  );
}

/** The DashScope headers a conversation call carries upstream, besides key, workspace and request id. */
export function conversationHeaders(
  callerHeaders: IncomingHttpHeaders,
  media: readonly MediaRef[],
): Record<string, string> {
  const headers: Record<string, string> = {};
  // Without it DashScope does not resolve oss:// temporary-storage URLs (contract §4.1, §2.7).
  if (needsOssResolve(media)) headers['x-dashscope-ossresourceresolve'] = 'enable';
  // The caller's content-inspection choice is theirs to make (contract §4.1); a plain token, bounded.
  const inspection = callerHeaders['x-dashscope-datainspection'];
  if (typeof inspection === 'string' && inspection.length <= 256 && !/[\r\n]/.test(inspection)) {
    headers['x-dashscope-datainspection'] = inspection;
  }
  return headers;
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
  } catch {
    throw new GatewayError(
      'UPSTREAM_BAD_RESPONSE',
      `DashScope answered HTTP ${res.status} with a body that is not JSON${res.requestId ? ` (DashScope request_id ${res.requestId})` : ''}`,
    );
  }
  return 'application/json';
}

export async function dashscopeMultimodalGenerationRoutes(app: FastifyInstance): Promise<void> {
  const { models } = app.gw;
  app.post(MULTIMODAL_GENERATION_PATH, async (request, reply) => {
    const body = parseBody(NativeConversationBody, request.body);
    request.ctx.model = body.model;
    const model = requireConversationModel(models, body.model);
    request.ctx.inputs = body.input.messages.length;
    const headers = conversationHeaders(request.headers, nativeConversationMedia(body.input.messages));
    const payload = JSON.stringify(request.body);
    const ctx = callContext(request, reply);
    const base = {
      path: MULTIMODAL_GENERATION_PATH,
      body: payload,
      headers,
      requestId: ctx.requestId,
      signal: ctx.signal,
      trace: ctx.trace,
      idempotent: false,
      model: model.name,
    };

    if (wantsNativeStream(request.headers, body.parameters)) {
      headers['x-dashscope-sse'] = 'enable';
      const up = await ctx.upstream.stream({ ...base, accept: 'text/event-stream' });
      return relayUpstreamStream(request, reply, up, {
        dialect: 'dashscope',
        secret: ctx.secret,
        signal: ctx.signal,
      });
    }

    const res = await ctx.upstream.call(base);
    if (res.status < 200 || res.status >= 300) throw upstreamFailure(res, ctx.secret);
    if (res.requestId) reply.header('x-dashscope-request-id', res.requestId);
    return reply.code(res.status).type(checkJsonBody(res)).send(res.body);
  });
}
