/**
 * DashScope's OpenAI-compatible chat (`/compatible-mode/v1/chat/completions`) for the Qwen-VL models: the same
 * deterministic answer as the native endpoint (multimodal-generation.ts), in OpenAI's chat.completion shape, or
 * with `stream: true` as `data: {chat.completion.chunk}` lines ending with `data: [DONE]`. Streams use the same
 * per-instance delay, failure knobs and stream records as the native endpoint.
 */
import { z } from 'zod';
import { usageTokens } from '../qwen-length.js';
import { type EmulatorRoute, HttpError, parseJson } from '../route.js';
import {
  checkOssHeader,
  IMAGE_TOKENS,
  type Observed,
  pieces,
  replyText,
  writeStream,
} from './multimodal-generation.js';

const Part = z.looseObject({ type: z.string() });
const CompatChatBody = z.object({
  model: z.string(),
  messages: z
    .array(z.object({ role: z.string(), content: z.union([z.string(), z.array(Part)]).nullish() }))
    .min(1),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
});
type Messages = z.infer<typeof CompatChatBody>['messages'];

function urlOf(v: unknown): unknown {
  return v !== null && typeof v === 'object' ? (v as Record<string, unknown>).url : v;
}

function observe(messages: Messages): { observed: Observed; media: unknown[] } {
  const o: Observed = { images: 0, videos: 0, audios: 0, lastUserText: '', allText: '' };
  const media: unknown[] = [];
  const texts: string[] = [];
  for (const m of messages) {
    const own: string[] = [];
    if (typeof m.content === 'string') own.push(m.content);
    else if (Array.isArray(m.content)) {
      for (const part of m.content) {
        if (part.type === 'text' && typeof part.text === 'string') own.push(part.text);
        if (part.type === 'image_url') {
          o.images++;
          media.push(urlOf(part.image_url));
        }
        if (part.type === 'video_url' || part.type === 'video') {
          o.videos++;
          const v = part.type === 'video' ? part.video : urlOf(part.video_url);
          media.push(...(Array.isArray(v) ? v : [v]));
        }
        if (part.type === 'input_audio') {
          o.audios++;
          media.push(urlOf(part.input_audio));
        }
      }
    }
    texts.push(...own);
    if (m.role === 'user') o.lastUserText = own.join(' ');
  }
  o.allText = texts.join('\n');
  return { observed: o, media };
}

function usage(o: Observed, text: string): Record<string, number> {
  const prompt = usageTokens(o.allText) + o.images * IMAGE_TOKENS;
  const completion = usageTokens(text);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

export const compatChat: EmulatorRoute = {
  method: 'POST',
  path: '/compatible-mode/v1/chat/completions',
  dialect: 'compat',
  handle(ctx) {
    const { body, catalog, requestId, req } = ctx;
    const parsed = CompatChatBody.safeParse(parseJson(body));
    if (!parsed.success) {
      throw new HttpError(
        400,
        'InvalidParameter',
        'Required parameter(s) missing or invalid, please check the request parameters.',
      );
    }
    const { model, messages, stream, stream_options } = parsed.data;
    if (catalog.get(model)?.api !== 'multimodal-generation') {
      throw new HttpError(
        404,
        'ModelNotFound',
        `The model \`${model}\` does not exist or you do not have access to it.`,
      );
    }
    const { observed, media } = observe(messages);
    checkOssHeader(media, req.headers);
    const text = replyText(observed);
    const id = `chatcmpl-${requestId}`;
    const created = Math.floor(Date.now() / 1000);

    if (stream !== true) {
      return {
        status: 200,
        body: {
          id,
          object: 'chat.completion',
          created,
          model,
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: text },
              finish_reason: 'stop',
              logprobs: null,
            },
          ],
          usage: usage(observed, text),
          system_fingerprint: null,
        },
      };
    }

    const chunk = (delta: Record<string, unknown>, finish: string | null): string =>
      `data: ${JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
        system_fingerprint: null,
      })}\n\n`;
    const frames = [chunk({ role: 'assistant', content: '' }, null)];
    for (const piece of pieces(text)) frames.push(chunk({ content: piece }, null));
    frames.push(chunk({ content: '' }, 'stop'));
    if (stream_options?.include_usage) {
      frames.push(
        `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage: usage(observed, text) })}\n\n`,
      );
    }
    frames.push('data: [DONE]\n\n');
    const errorFrame = (): string =>
      `data: ${JSON.stringify({
        error: {
          message:
            '<500> InternalError: An internal error has occured, please try again later or contact service support.',
          type: 'InternalError',
          param: null,
          code: 'InternalError',
        },
        request_id: requestId,
      })}\n\n`;
    return writeStream(ctx, frames, errorFrame);
  },
};
