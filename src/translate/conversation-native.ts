/**
 * The native Qwen-VL conversation body (docs/dashscope-contract.md §2.4) and the media values inside it.
 * Validation is deliberately lenient: the gateway forwards the caller's body unchanged, so it checks only what it
 * must (a model, a non-empty `input.messages` with a role each, content as a string or a list of part objects)
 * and the media URL rules; every other field, known or not, is DashScope's business.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { z } from 'zod';
import { classifyMedia, type MediaRef } from '../media/url-policy.js';

/** A content part: `{text}`, `{image}`, `{video}` (a URL, or a list of frame image URLs), `{audio}`, or newer kinds. */
const NativePart = z.record(z.string(), z.unknown(), { error: 'must be an object such as {"text": ...}' });

const NativeMessage = z.looseObject({
  role: z.string({ error: 'must be a string (system, user, assistant, tool)' }).min(1),
  // Assistant messages that carry tool calls may have no content.
  content: z
    .union([z.string(), z.array(NativePart)], {
      error: 'must be a string or an array of content objects ({text}, {image}, {video}, {audio})',
    })
    .nullish(),
});

export const NativeConversationBody = z.looseObject({
  model: z.string({ error: 'must name a model' }).min(1, 'must name a model'),
  input: z.looseObject({
    messages: z
      .array(NativeMessage, { error: 'must be an array of messages' })
      .min(1, 'must contain at least one message'),
  }),
  parameters: z.record(z.string(), z.unknown(), { error: 'must be an object' }).optional(),
});

export type NativeConversationRequest = z.infer<typeof NativeConversationBody>;

/** Part keys whose values are media references. */
const MEDIA_KEYS = ['image', 'video', 'audio'] as const;

/**
 * Every media value in the messages, classified by the URL policy (throws a 400 naming
 * `input.messages[i].content[j].<kind>` for file://, bare paths and malformed data URIs).
 */
export function nativeConversationMedia(
  messages: NativeConversationRequest['input']['messages'],
): MediaRef[] {
  const refs: MediaRef[] = [];
  messages.forEach((message, i) => {
    if (!Array.isArray(message.content)) return;
    message.content.forEach((part, j) => {
      for (const key of MEDIA_KEYS) {
        if (!(key in part)) continue;
        const value = part[key];
        const param = `input.messages[${i}].content[${j}].${key}`;
        // A video may be given as the list of its frames' image URLs.
        if (key === 'video' && Array.isArray(value)) {
          value.forEach((frame, k) => {
            refs.push(classifyMedia(frame, `${param}[${k}]`));
          });
        } else {
          refs.push(classifyMedia(value, param));
        }
      }
    });
  });
  return refs;
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return (Array.isArray(v) ? v[0] : v)?.trim().toLowerCase();
}

/**
 * Whether the caller asked for a stream: `X-DashScope-SSE: enable` (the DashScope SDKs), `Accept:
 * text/event-stream` (LangChain's ChatAlibabaTongyi sends both), or `parameters.stream: true` (the Python SDK sets
 * it next to the header; a hand-written client may send only that). The header's VALUE decides first: dashscope4j
 * sends `X-DashScope-SSE: disable` on ordinary calls, and that wins over everything else
 * (docs/dashscope-contract.md §4.1).
 * When the gateway streams, it sends `X-DashScope-SSE: enable` upstream, since DashScope chooses SSE by the header.
 */
export function wantsNativeStream(
  headers: IncomingHttpHeaders,
  parameters: Record<string, unknown> | undefined,
): boolean {
  const sse = headerValue(headers, 'x-dashscope-sse');
  if (sse === 'enable') return true;
  if (sse !== undefined && sse !== '') return false;
  if (parameters?.stream === true) return true;
  return /(^|,)\s*text\/event-stream/.test(headerValue(headers, 'accept') ?? '');
}
