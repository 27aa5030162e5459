/**
 * Native Qwen-VL conversation, as the DashScope SDKs (MultiModalConversation) and LangChain's ChatAlibabaTongyi
 * call it: `POST /api/v1/services/aigc/multimodal-generation/generation` (docs/dashscope-contract.md §1.2, §2.4).
 * The caller's body is forwarded unchanged after the model and media checks. Non-streaming replies are passed
 * through; streams are relayed event by event (src/conversation/sse-relay.ts).
 * Generation is not idempotent (each call is billed and may differ), so there is exactly one upstream attempt.
 */
import type { FastifyInstance } from 'fastify';
import { forwardConversation } from '../conversation/forward.js';
import { conversationHeaders } from '../conversation/headers.js';
import {
  NativeConversationBody,
  nativeConversationMedia,
  wantsNativeStream,
} from '../translate/conversation-native.js';
import { MULTIMODAL_GENERATION_PATH } from '../upstream/paths.js';
import { parseBody } from '../validation.js';

export async function dashscopeMultimodalGenerationRoutes(app: FastifyInstance): Promise<void> {
  const { models } = app.gw;
  app.post(MULTIMODAL_GENERATION_PATH, async (request, reply) => {
    const body = parseBody(NativeConversationBody, request.body);
    request.ctx.model = body.model;
    const model = models.require(body.model, 'conversation');
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
