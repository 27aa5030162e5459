/**
 * POST /v1/chat/completions (and /compatible-mode/v1/chat/completions, so DashScope-doc configs work by changing the
 * host) for the Qwen-VL models, forwarded to DashScope's OpenAI-compatible mode, which speaks this API natively: the
 * body goes on unchanged after the model and media checks. `stream: true` is relayed chunk by chunk
 * (`data: {…}` … `data: [DONE]`) as DashScope sends it. Errors are OpenAI-shaped (the /v1 dialect).
 */
import type { FastifyInstance } from 'fastify';
import { forwardConversation } from '../conversation/forward.js';
import { conversationHeaders } from '../conversation/headers.js';
import { OpenAIChatBody, openAIChatMedia } from '../translate/openai-chat.js';
import { COMPAT_CHAT_PATH } from '../upstream/paths.js';
import { parseBody } from '../validation.js';

export async function openAIChatCompletionsRoutes(app: FastifyInstance): Promise<void> {
  const { models } = app.gw;
  for (const url of ['/v1/chat/completions', COMPAT_CHAT_PATH]) {
    app.post(url, async (request, reply) => {
      const body = parseBody(OpenAIChatBody, request.body);
      request.ctx.model = body.model;
      const model = models.require(body.model, 'conversation');
      request.ctx.inputs = body.messages.length;
      const headers = conversationHeaders(request.headers, openAIChatMedia(body.messages));
      return forwardConversation(request, reply, {
        path: COMPAT_CHAT_PATH,
        body: JSON.stringify(request.body),
        headers,
        model: model.name,
        stream: body.stream === true ? 'openai' : undefined,
      });
    });
  }
}
