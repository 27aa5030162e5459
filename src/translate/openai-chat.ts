/**
 * The OpenAI chat-completions body as OpenAI chat clients send it, and the media values inside it.
 * DashScope's compatible mode takes this body as it is, so the gateway forwards it unchanged; it checks the shape
 * it relies on (a model, a non-empty `messages` with a role each, `stream` a boolean) and the media URL rules.
 * Media parts DashScope's compatible mode understands: `image_url` ({url} or, from some clients, a bare string),
 * `video_url` ({url}), `video` (a list of frame image URLs) and `input_audio` ({data, format}, data a URL or a
 * data URI).
 */
import { z } from 'zod';
import { classifyMedia, type MediaRef } from '../media/url-policy.js';

const OpenAIChatPart = z.looseObject({
  type: z.string({ error: 'must be a string such as "text" or "image_url"' }),
});

const OpenAIChatMessage = z.looseObject({
  role: z.string({ error: 'must be a string (system, user, assistant, tool)' }).min(1),
  // Assistant messages that carry tool_calls may have null content.
  content: z
    .union([z.string(), z.array(OpenAIChatPart)], {
      error: 'must be a string or an array of content parts ({type: "text" | "image_url" | ...})',
    })
    .nullish(),
});

export const OpenAIChatBody = z.looseObject({
  model: z.string({ error: 'must name a model' }).min(1, 'must name a model'),
  messages: z
    .array(OpenAIChatMessage, { error: 'must be an array of messages' })
    .min(1, 'must contain at least one message'),
  stream: z.boolean({ error: 'must be true or false' }).nullish(),
});

export type OpenAIChatRequest = z.infer<typeof OpenAIChatBody>;

function field(obj: unknown, key: string): unknown {
  return obj !== null && typeof obj === 'object' ? (obj as Record<string, unknown>)[key] : undefined;
}

/** Every media value in the messages, classified by the URL policy (throws a 400 naming `messages[i].content[j]…`). */
export function openAIChatMedia(messages: OpenAIChatRequest['messages']): MediaRef[] {
  const refs: MediaRef[] = [];
  messages.forEach((message, i) => {
    if (!Array.isArray(message.content)) return;
    message.content.forEach((part, j) => {
      const at = `messages[${i}].content[${j}]`;
      switch (part.type) {
        case 'image_url': {
          const v = part.image_url;
          if (typeof v === 'string') refs.push(classifyMedia(v, `${at}.image_url`));
          else refs.push(classifyMedia(field(v, 'url'), `${at}.image_url.url`));
          break;
        }
        case 'video_url': {
          const v = part.video_url;
          if (typeof v === 'string') refs.push(classifyMedia(v, `${at}.video_url`));
          else refs.push(classifyMedia(field(v, 'url'), `${at}.video_url.url`));
          break;
        }
        case 'video': {
          const v = part.video;
          if (Array.isArray(v)) {
            v.forEach((frame, k) => {
              refs.push(classifyMedia(frame, `${at}.video[${k}]`));
            });
          } else refs.push(classifyMedia(v, `${at}.video`));
          break;
        }
        case 'input_audio':
          refs.push(classifyMedia(field(part.input_audio, 'data'), `${at}.input_audio.data`));
          break;
        default:
          break;
      }
    });
  });
  return refs;
}
