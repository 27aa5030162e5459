/**
 * Qwen-VL conversation, native (`/api/v1/services/aigc/multimodal-generation/generation`, docs/dashscope-contract.md §2.4, §3.6,
 * §3.7). The "model" answers deterministically from the messages — `I see N image(s). You said: <last user
 * text>` — so tests can assert exact text.
 *
 * Streaming (`X-DashScope-SSE: enable`, checked by value) uses DashScope's framing exactly:
 * `id:N\nevent:result\n:HTTP_STATUS/200\ndata:{…}\n\n`, no space after the colons, no [DONE]; with
 * `incremental_output: true` each event carries only the new text, otherwise the text so far. Events are spaced
 * by a delay (per emulator instance, see conversationSettings) so tests can watch a stream arrive, and every stream
 * is recorded (when each event was sent, whether the client went away before the end) so tests can prove the
 * gateway relays as it goes and aborts upstream when its caller disconnects.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { z } from 'zod';
import { usageTokens } from '../qwen-length.js';
import { type EmulatorContext, type EmulatorRoute, HttpError, parseJson } from '../route.js';

/** Knobs tests turn, per emulator instance. */
export interface ConversationSettings {
  /** Wait between two stream events. */
  eventDelayMs: number;
  /** After this many result events, send an error event (native `event:error`) and end the stream. */
  failAfterEvents: number | undefined;
  /** After this many events, drop the connection without finishing the stream. */
  dropAfterEvents: number | undefined;
}

/** One stream the emulator served. */
export interface StreamRecord {
  requestId: string;
  path: string;
  /** Events the reply was going to have. */
  total: number;
  /** Epoch ms at which each event was written. */
  sentAt: number[];
  /** The client (the gateway) closed the connection before the stream ended. */
  aborted: boolean;
  /** The stream was written to the end. */
  finished: boolean;
}

interface State {
  settings: ConversationSettings;
  streams: StreamRecord[];
}

const STATE = new WeakMap<object, State>();
const DEFAULT_EVENT_DELAY_MS = 10;
const MAX_STREAM_RECORDS = 1000;

function state(instance: object): State {
  let s = STATE.get(instance);
  if (!s) {
    s = {
      settings: {
        eventDelayMs: DEFAULT_EVENT_DELAY_MS,
        failAfterEvents: undefined,
        dropAfterEvents: undefined,
      },
      streams: [],
    };
    STATE.set(instance, s);
  }
  return s;
}

/** The mutable conversation settings of an emulator (`emu.instance`). */
export function conversationSettings(instance: object): ConversationSettings {
  return state(instance).settings;
}

/** Put the settings back to their defaults and forget recorded streams. */
export function resetConversation(instance: object): void {
  STATE.delete(instance);
}

/** The streams an emulator (`emu.instance`) has served, oldest first. */
export function conversationStreams(instance: object): readonly StreamRecord[] {
  return state(instance).streams;
}

/** Tokens an image costs in the emulator's usage (any fixed number will do; tests compare exact values). */
export const IMAGE_TOKENS = 256;

/** What the emulator's model "sees": counts of media and the last thing the user said. */
export interface Observed {
  images: number;
  videos: number;
  audios: number;
  lastUserText: string;
  /** All text of all messages, for usage. */
  allText: string;
}

/** The deterministic answer to what was observed. */
export function replyText(o: Observed): string {
  const extra = [o.videos ? `${o.videos} video(s)` : '', o.audios ? `${o.audios} audio clip(s)` : '']
    .filter(Boolean)
    .join(' and ');
  return `I see ${o.images} image(s)${extra ? ` and ${extra}` : ''}. You said: ${o.lastUserText}`;
}

/** The reply cut into up to four pieces at word boundaries (the pieces concatenate to the whole text). */
export function pieces(text: string, max = 4): string[] {
  const words = text.split(/(?<= )/);
  const n = Math.max(1, Math.min(max, words.length));
  const size = Math.ceil(words.length / n);
  const out: string[] = [];
  for (let i = 0; i < words.length; i += size) out.push(words.slice(i, i + size).join(''));
  return out.length ? out : [''];
}

/** Whether any media value is an oss:// URL (DashScope then needs X-DashScope-OssResourceResolve: enable). */
export function checkOssHeader(values: readonly unknown[], headers: IncomingHttpHeaders): void {
  const oss = values.some((v) => typeof v === 'string' && v.trim().toLowerCase().startsWith('oss://'));
  const resolve = String(headers['x-dashscope-ossresourceresolve'] ?? '').toLowerCase();
  if (oss && resolve !== 'enable')
    throw new HttpError(400, 'InvalidURL', 'Invalid URL provided in your request.');
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

/**
 * Write `frames` as a stream, `eventDelayMs` apart, recording the stream. `errorFrame` (when the settings ask for a
 * failure) replaces the events after `failAfterEvents`.
 */
export async function writeStream(
  ctx: EmulatorContext,
  frames: string[],
  errorFrame: (sent: number) => string,
): Promise<undefined> {
  const { res, requestId, instance } = ctx;
  const st = state(instance);
  const { eventDelayMs, failAfterEvents, dropAfterEvents } = st.settings;
  const rec: StreamRecord = {
    requestId,
    path: ctx.path,
    total: frames.length,
    sentAt: [],
    aborted: false,
    finished: false,
  };
  if (st.streams.length >= MAX_STREAM_RECORDS) st.streams.shift();
  st.streams.push(rec);
  const gone = new AbortController();
  let dropping = false;
  res.on('close', () => {
    if (!res.writableFinished && !dropping) rec.aborted = true;
    gone.abort();
  });
  res.writeHead(200, {
    'content-type': 'text/event-stream;charset=UTF-8',
    'cache-control': 'no-cache',
    'x-request-id': requestId,
  });
  res.flushHeaders();
  for (let i = 0; i < frames.length; i++) {
    if (i > 0) await sleep(eventDelayMs, gone.signal);
    if (gone.signal.aborted) return undefined;
    if (dropAfterEvents !== undefined && i >= dropAfterEvents) {
      dropping = true;
      res.destroy();
      return undefined;
    }
    if (failAfterEvents !== undefined && i >= failAfterEvents) {
      res.write(errorFrame(i));
      rec.sentAt.push(Date.now());
      break;
    }
    res.write(frames[i]);
    rec.sentAt.push(Date.now());
  }
  res.end();
  rec.finished = true;
  return undefined;
}

const NativeBody = z.object({
  model: z.string(),
  input: z.object({
    messages: z
      .array(
        z.object({
          role: z.string(),
          content: z.union([z.string(), z.array(z.record(z.string(), z.unknown()))]).nullish(),
        }),
      )
      .min(1),
  }),
  parameters: z.record(z.string(), z.unknown()).optional(),
});
type NativeMessages = z.infer<typeof NativeBody>['input']['messages'];

const BAD_PARAMS = 'Required parameter(s) missing or invalid, please check the request parameters.';

function observeNative(messages: NativeMessages): { observed: Observed; media: unknown[] } {
  const o: Observed = { images: 0, videos: 0, audios: 0, lastUserText: '', allText: '' };
  const media: unknown[] = [];
  const texts: string[] = [];
  for (const m of messages) {
    const own: string[] = [];
    if (typeof m.content === 'string') own.push(m.content);
    else if (Array.isArray(m.content)) {
      for (const part of m.content) {
        if (typeof part.text === 'string') own.push(part.text);
        if ('image' in part) {
          o.images++;
          media.push(part.image);
        }
        if ('video' in part) {
          o.videos++;
          media.push(...(Array.isArray(part.video) ? part.video : [part.video]));
        }
        if ('audio' in part) {
          o.audios++;
          media.push(part.audio);
        }
      }
    }
    texts.push(...own);
    if (m.role === 'user') o.lastUserText = own.join(' ');
  }
  o.allText = texts.join('\n');
  return { observed: o, media };
}

function usage(o: Observed, outputText: string): Record<string, number> {
  const imageTokens = o.images * IMAGE_TOKENS;
  return {
    input_tokens: usageTokens(o.allText) + imageTokens,
    output_tokens: usageTokens(outputText),
    image_tokens: imageTokens,
  };
}

function envelope(
  text: string,
  finish: string,
  o: Observed,
  usedText: string,
  requestId: string,
): Record<string, unknown> {
  return {
    output: {
      choices: [{ finish_reason: finish, message: { role: 'assistant', content: [{ text }] } }],
    },
    usage: usage(o, usedText),
    request_id: requestId,
  };
}

export const multimodalGeneration: EmulatorRoute = {
  method: 'POST',
  path: '/api/v1/services/aigc/multimodal-generation/generation',
  dialect: 'native',
  handle(ctx) {
    const { body, catalog, requestId, req } = ctx;
    const parsed = NativeBody.safeParse(parseJson(body));
    if (!parsed.success) throw new HttpError(400, 'InvalidParameter', BAD_PARAMS);
    const { model, input, parameters = {} } = parsed.data;
    if (catalog.get(model)?.api !== 'multimodal-generation') {
      throw new HttpError(400, 'InvalidParameter', 'Model not exist.');
    }
    const { observed, media } = observeNative(input.messages);
    checkOssHeader(media, req.headers);
    const text = replyText(observed);

    if (String(req.headers['x-dashscope-sse'] ?? '').toLowerCase() !== 'enable') {
      return { status: 200, body: envelope(text, 'stop', observed, text, requestId) };
    }
    const incremental = parameters.incremental_output === true;
    const parts = pieces(text);
    let soFar = '';
    const frames = parts.map((piece, i) => {
      soFar += piece;
      const last = i === parts.length - 1;
      // Mid-stream events say "null" (a string) until the last one says "stop", as recorded streams do.
      const data = envelope(incremental ? piece : soFar, last ? 'stop' : 'null', observed, soFar, requestId);
      return `id:${i + 1}\nevent:result\n:HTTP_STATUS/200\ndata:${JSON.stringify(data)}\n\n`;
    });
    const errorFrame = (sent: number): string =>
      `id:${sent + 1}\nevent:error\n:HTTP_STATUS/500\ndata:${JSON.stringify({
        code: 'InternalError',
        message: 'An internal error has occured, please try again later or contact service support.',
        request_id: requestId,
      })}\n\n`;
    return writeStream(ctx, frames, errorFrame);
  },
};
