/**
 * Checks of inline (data URI) media before any upstream call: decoded size, real format and, for audio, duration.
 *
 * The format comes from the bytes (magic numbers, via `file-type`), never from the declared `data:<mime>`: a caller
 * that labels a text file `image/png` gets a 400 here rather than a paid upstream failure. `file-type` sees only
 * the first SNIFF_BYTES, so its work is bounded whatever the payload holds.
 *
 * The duration comes from the container headers, read by the small bounded parsers in ./audio-duration.ts (WAV,
 * MP3, FLAC: the audio formats ONE-PEACE takes), so a WAV whose RIFF header says 16 s is 16 s, and a header that
 * claims more than the bytes hold, or hides the audio behind thousands of empty blocks, is a 400 in constant time.
 */
// file-type is loaded on first use: it adds to every gateway process's RSS, and only multimodal requests carrying
// data: URIs need it.
let fileType: Promise<typeof import('file-type')> | undefined;

import { invalidInput } from '../errors.js';
import {
  AudioHeaderError,
  flacDurationSeconds,
  mp3DurationSeconds,
  wavDurationSeconds,
} from './audio-duration.js';

export {
  FLAC_MAX_BLOCKS,
  MAX_ID3_TAGS,
  MP3_SYNC_WINDOW_BYTES,
  WAV_MAX_CHUNKS,
} from './audio-duration.js';

/**
 * Bytes of an inline payload shown to `file-type`: every signature it knows sits in the first few KB (an ID3v2
 * tag longer than this is reported as mp3 from its header alone), and a bounded prefix bounds its work.
 */
export const SNIFF_BYTES = 64 * 1024;

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
  const t = await (await fileType).fileTypeFromBuffer(bytes.subarray(0, SNIFF_BYTES));
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

/** Duration parser by the mime `file-type` reports (mp2/mp1 are `audio/mpeg` too; the MPEG parser reads any layer). */
const DURATION: Record<string, (b: Buffer) => number | undefined> = {
  'audio/wav': wavDurationSeconds,
  'audio/mpeg': mp3DurationSeconds,
  'audio/flac': flacDurationSeconds,
};

/**
 * Duration in seconds from the container headers, or undefined when the container does not say (FLAC with an
 * unknown sample count, or a format without a parser here: DashScope then decides). A header that cannot be
 * read, or claims more than the bytes hold, is a 400 naming `param`: DashScope could not read it either.
 */
export async function audioDurationSeconds(
  bytes: Buffer,
  mime: string,
  param: string,
): Promise<number | undefined> {
  const parse = DURATION[mime];
  if (!parse) return undefined;
  try {
    const d = parse(bytes);
    return d !== undefined && Number.isFinite(d) ? d : undefined;
  } catch (err) {
    if (err instanceof AudioHeaderError)
      throw invalidInput(param, `the inline audio cannot be read: ${err.message}`);
    throw err;
  }
}
