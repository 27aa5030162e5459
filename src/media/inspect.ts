/**
 * Checks of inline (data URI) media before any upstream call: decoded size, real format and, for audio, duration.
 *
 * The format comes from the bytes (magic numbers, via `file-type`), never from the declared `data:<mime>`: a caller
 * that labels a text file `image/png` gets a 400 here rather than a paid upstream failure. The duration comes from
 * the container headers (via `music-metadata`), so a WAV whose RIFF header says 16 s is 16 s. Both are maintained
 * libraries; the gateway has no hand-written parsers for media formats.
 */
// file-type and music-metadata are loaded on first use: together they add ~25 MB of RSS to every gateway process,
// and only multimodal requests carrying data: URIs need them.
let fileType: Promise<typeof import('file-type')> | undefined;
let musicMetadata: Promise<typeof import('music-metadata')> | undefined;

import { invalidInput } from '../errors.js';

export type MediaKind = 'image' | 'audio' | 'video';

export interface InlineLimits {
  /** `file-type` extension names accepted. */
  formats: readonly string[];
  /** Largest decoded payload in bytes. */
  maxBytes: number;
}

export interface InspectedMedia {
  /** The real format, as a `file-type` extension name. */
  ext: string;
  mime: string;
  bytes: number;
}

/** How a format is named in messages (file-type calls jpeg `jpg` and tiff `tif`). */
const DISPLAY: Record<string, string> = { jpg: 'jpg/jpeg', tif: 'tiff', mpg: 'mpeg/mpg' };
const display = (ext: string): string => DISPLAY[ext] ?? ext;

/** `3145728` → `3 MB`, `1536` → `1.5 KB`: limits are quoted in the unit DashScope documents them in. */
export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${Number((n / (1024 * 1024)).toFixed(2))} MB`;
  if (n >= 1024) return `${Number((n / 1024).toFixed(2))} KB`;
  return `${n} bytes`;
}

/** The real format of `bytes`, or undefined when no known signature matches. */
export async function detectFormat(bytes: Uint8Array): Promise<{ ext: string; mime: string } | undefined> {
  fileType ??= import('file-type');
  const t = await (await fileType).fileTypeFromBuffer(bytes);
  return t ? { ext: t.ext, mime: t.mime } : undefined;
}

/**
 * Size and real format of an inline payload against `limits`, or a 400 naming `param` with the rule and the limit.
 * `what` names the medium in messages; `model` the model whose limits apply.
 */
export async function checkInlineMedia(
  bytes: Buffer,
  declaredMime: string,
  what: MediaKind,
  limits: InlineLimits,
  model: string,
  param: string,
): Promise<InspectedMedia> {
  if (bytes.length > limits.maxBytes) {
    throw invalidInput(
      param,
      `the inline ${what} is ${bytes.length} bytes decoded; ${model} accepts at most ${limits.maxBytes} bytes (${formatBytes(limits.maxBytes)}) per ${what}`,
    );
  }
  const accepted = limits.formats.map(display).join(', ');
  const real = await detectFormat(bytes);
  const declared = declaredMime ? ` (declared ${declaredMime})` : '';
  if (!real) {
    throw invalidInput(
      param,
      `the inline data is not a recognisable ${what}${declared}: its bytes match none of the formats ${model} accepts (${accepted})`,
    );
  }
  if (!limits.formats.includes(real.ext)) {
    throw invalidInput(
      param,
      `the inline data is ${display(real.ext)} (${real.mime}, from its bytes)${declared}; ${model} accepts ${what} as ${accepted}`,
    );
  }
  return { ext: real.ext, mime: real.mime, bytes: bytes.length };
}

/**
 * Duration in seconds from the container headers, or undefined when the container does not say (DashScope then
 * decides). A container that cannot be read at all is a 400: DashScope could not read it either.
 */
export async function audioDurationSeconds(
  bytes: Buffer,
  mime: string,
  param: string,
): Promise<number | undefined> {
  try {
    musicMetadata ??= import('music-metadata');
    const meta = await (await musicMetadata).parseBuffer(
      bytes,
      { mimeType: mime, size: bytes.length },
      { duration: true, skipCovers: true },
    );
    const d = meta.format.duration;
    return typeof d === 'number' && Number.isFinite(d) ? d : undefined;
  } catch (err) {
    throw invalidInput(param, `the inline audio cannot be read (${(err as Error).message})`);
  }
}
