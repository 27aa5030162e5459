/**
 * Native Qwen-VL conversation, as the DashScope SDKs (MultiModalConversation) and LangChain's ChatAlibabaTongyi
 * call it: `POST /api/v1/services/aigc/multimodal-generation/generation` (contract §1.2, §2.4).
 * The caller's body is forwarded unchanged after the model and media checks. Non-streaming replies are passed
 * through; streams are relayed event by event (src/streaming/sse-relay.ts).
 * Generation is not idempotent (each call is billed and may differ), so there is exactly one upstream attempt.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../errors.js';
import type { MediaRef } from '../media/url-policy.js';
import { needsOssResolve } from '../media/url-policy.js';
import type { ConversationModel, ModelTable } from '../models/index.js';
import { forwardConversation } from '../streaming/forward.js';
import {
  NativeConversationBody,
  nativeConversationMedia,
  wantsNativeStream,
} from '../translate/conversation-native.js';
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

export async function dashscopeMultimodalGenerationRoutes(app: FastifyInstance): Promise<void> {
  const { models } = app.gw;
  app.post(MULTIMODAL_GENERATION_PATH, async (request, reply) => {
    const body = parseBody(NativeConversationBody, request.body);
    request.ctx.model = body.model;
    const model = requireConversationModel(models, body.model);
    request.ctx.inputs = body.input.messages.length;
    const headers = conversationHeaders(request.headers, nativeConversationMedia(body.input.messages));
    const stream = wantsNativeStream(request.headers, body.parameters);
    // The SSE header upstream too: the Python SDK sends it, and it is what DashScope keys streaming on.
    if (stream) headers['x-dashscope-sse'] = 'enable';
    return forwardConversation(request, reply, {
      path: MULTIMODAL_GENERATION_PATH,
      body: JSON.stringify(request.body),
      headers,
      model: model.name,
      stream: stream ? 'dashscope' : undefined,
    });
  });
}
