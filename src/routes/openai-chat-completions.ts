/**
 * POST /v1/chat/completions (and /compatible-mode/v1/chat/completions, so DashScope-doc configs work by changing
 * the host) for the Qwen-VL models, forwarded to DashScope's OpenAI-compatible mode, which speaks this API
 * natively: the body goes on unchanged after the model and media checks. `stream: true` is relayed chunk by chunk
 * (`data: {…}` … `data: [DONE]`) as DashScope sends it. Errors are OpenAI-shaped (the /v1 dialect).
 */
import type { FastifyInstance } from 'fastify';
import { callContext } from '../app.js';
import { relayUpstreamStream } from '../streaming/sse-relay.js';
import { OpenAIChatBody, openAIChatMedia } from '../translate/openai-chat.js';
import { upstreamFailure } from '../upstream/errors.js';
import { parseBody } from '../validation.js';
import {
  checkJsonBody,
  conversationHeaders,
  requireConversationModel,
} from './dashscope-multimodal-generation.js';

export const COMPAT_CHAT_PATH = '/compatible-mode/v1/chat/completions';

export async function openAIChatCompletionsRoutes(app: FastifyInstance): Promise<void> {
  const { models } = app.gw;
  for (const url of ['/v1/chat/completions', COMPAT_CHAT_PATH]) {
    app.post(url, async (request, reply) => {
      const body = parseBody(OpenAIChatBody, request.body);
      request.ctx.model = body.model;
      const model = requireConversationModel(models, body.model);
      request.ctx.inputs = body.messages.length;
      const headers = conversationHeaders(request.headers, openAIChatMedia(body.messages));
      const ctx = callContext(request, reply);
      const base = {
        path: COMPAT_CHAT_PATH,
        body: JSON.stringify(request.body),
        headers,
        requestId: ctx.requestId,
        signal: ctx.signal,
        trace: ctx.trace,
        idempotent: false,
        model: model.name,
      };

      if (body.stream === true) {
        const up = await ctx.upstream.stream({ ...base, accept: 'text/event-stream' });
        return relayUpstreamStream(request, reply, up, {
          dialect: 'openai',
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
}
