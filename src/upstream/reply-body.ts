/** Reading DashScope reply bodies with a bound on what is held in memory. */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { GatewayError } from '../errors.js';

/**
 * The most of a reply body call() holds in memory. DashScope's largest buffered replies (a 20-item multimodal batch
 * at 2560 dimensions, a task-list page) are a few MB; a reply past this is not one of them, and reading it whole
 * could exhaust the process: the body timeout bounds only the gaps between chunks, not the total. SSE relays
 * (stream()) are not buffered and not capped.
 */
export const MAX_REPLY_BYTES = 64 * 1024 * 1024;

function replyTooLarge(): GatewayError {
  return new GatewayError(
    'UPSTREAM_BAD_RESPONSE',
    `DashScope sent a reply larger than ${MAX_REPLY_BYTES} bytes; the gateway does not buffer more`,
  );
}

/** The whole body, or a 502 as soon as it passes MAX_REPLY_BYTES (the rest is not read: the body is destroyed). */
export async function readReply(res: Dispatcher.ResponseData): Promise<Buffer> {
  const declared = Number(res.headers['content-length']);
  if (declared > MAX_REPLY_BYTES) {
    res.body.destroy();
    throw replyTooLarge();
  }
  // A declared length within the cap is enforced by undici itself (a longer body is a content-length mismatch),
  // so its own body consumer can be used: cheaper than iterating the stream on the hot path.
  if (Number.isInteger(declared) && declared >= 0) return Buffer.from(await res.body.arrayBuffer());
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    const buf = chunk as Buffer;
    size += buf.length;
    // Leaving the loop by throwing destroys the body, which closes the upstream connection.
    if (size > MAX_REPLY_BYTES) throw replyTooLarge();
    chunks.push(buf);
  }
  return Buffer.concat(chunks, size);
}

/** Enough of a streamed call's error body to read its code and message. */
export const ERROR_BODY_CAP = 64 * 1024;

export async function readCapped(body: Readable, cap: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const buf = chunk as Buffer;
      chunks.push(buf);
      size += buf.length;
      if (size >= cap) break; // leaving the loop destroys the body: the rest is not needed
    }
  } catch {
    // A broken error body still maps by its status.
  }
  return Buffer.concat(chunks).subarray(0, cap);
}
