/**
 * Duration of the audio containers ONE-PEACE takes (WAV, MP3, FLAC), from their headers only.
 *
 * These parsers replace `music-metadata` for the duration check: a general parser walks whatever structure a
 * caller crafts (300,000 empty FLAC metadata blocks or RIFF chunks blocked the event loop for seconds per item).
 * Here every loop has a named cap and every read is checked against the bytes present, so the work per item is
 * a few hundred header reads at most, whatever the input. Only headers are read, never the audio itself.
 */

/** Most RIFF chunks walked looking for `fmt ` and `data` (real files have 2 to ~6 before the audio). */
export const WAV_MAX_CHUNKS = 64;
/** Most FLAC metadata blocks walked (real files have a handful; padding and pictures included, rarely 20). */
export const FLAC_MAX_BLOCKS = 128;
/** Most consecutive ID3v2 tags skipped before MP3 (or FLAC) data (one is usual; two happen with some taggers). */
export const MAX_ID3_TAGS = 4;
/** Bytes searched for the first MPEG audio frame header after any ID3v2 tag. */
export const MP3_SYNC_WINDOW_BYTES = 64 * 1024;

/** A header that cannot be read; the message is the reason, in words the caller can act on. */
export class AudioHeaderError extends Error {}

function fail(message: string): never {
  throw new AudioHeaderError(message);
}

const ascii = (b: Buffer, at: number, n: number): string => b.toString('latin1', at, at + n);

/** `'LIST'` for printable ids, else the bytes in hex: ids are quoted in messages. */
const chunkName = (b: Buffer, at: number): string => {
  const id = ascii(b, at, 4);
  return /^[\x20-\x7e]{4}$/.test(id) ? `'${id}'` : `0x${b.toString('hex', at, at + 4)}`;
};

/**
 * WAV (RIFF/WAVE): duration = `data` chunk bytes / the `fmt ` chunk's byte rate. A chunk whose declared size runs
 * past the bytes present is refused (that is how a 4 GiB claim in a small file passed the duration check).
 */
export function wavDurationSeconds(b: Buffer): number {
  if (b.length < 12 || ascii(b, 0, 4) !== 'RIFF' || ascii(b, 8, 4) !== 'WAVE') fail('not a RIFF/WAVE file');
  let byteRate: number | undefined;
  let dataBytes: number | undefined;
  let at = 12;
  for (let n = 0; byteRate === undefined || dataBytes === undefined; n++) {
    if (n === WAV_MAX_CHUNKS) {
      fail(
        `the WAV file has more than ${WAV_MAX_CHUNKS} chunks before its fmt and data chunks (at most ${WAV_MAX_CHUNKS} are read)`,
      );
    }
    if (at + 8 > b.length) fail(`the WAV file has no ${byteRate === undefined ? 'fmt' : 'data'} chunk`);
    const id = ascii(b, at, 4);
    const size = b.readUInt32LE(at + 4);
    const present = b.length - (at + 8);
    if (size > present) {
      fail(
        id === 'data'
          ? `the WAV header claims ${size} bytes of audio but only ${present} are present`
          : `the WAV chunk ${chunkName(b, at)} at byte ${at} claims ${size} bytes but only ${present} are present`,
      );
    }
    if (id === 'fmt ') {
      if (size < 16) fail(`the WAV fmt chunk is ${size} bytes; at least 16 are needed`);
      const sampleRate = b.readUInt32LE(at + 12);
      const blockAlign = b.readUInt16LE(at + 20);
      // Some writers leave the byte rate 0; sample rate × block align is the same number by definition.
      byteRate = b.readUInt32LE(at + 16) || sampleRate * blockAlign;
      if (byteRate === 0) fail('the WAV fmt chunk gives a byte rate of 0');
    } else if (id === 'data') {
      dataBytes = size;
    }
    at += 8 + size + (size & 1); // chunks are padded to an even size
  }
  return dataBytes / byteRate;
}

/** Offset just past any ID3v2 tags at `at`; a tag whose declared size runs past the bytes present is refused. */
export function skipId3v2(b: Buffer, at = 0): number {
  for (let n = 0; b.length >= at + 10 && ascii(b, at, 3) === 'ID3'; n++) {
    if (n === MAX_ID3_TAGS) fail(`more than ${MAX_ID3_TAGS} ID3v2 tags precede the audio`);
    // The size is "syncsafe": four 7-bit groups; a footer (flag 0x10) adds 10 bytes.
    const size =
      ((b[at + 6]! & 0x7f) << 21) |
      ((b[at + 7]! & 0x7f) << 14) |
      ((b[at + 8]! & 0x7f) << 7) |
      (b[at + 9]! & 0x7f);
    const total = 10 + size + (b[at + 5]! & 0x10 ? 10 : 0);
    const present = b.length - at;
    if (total > present)
      fail(`the ID3v2 tag at byte ${at} claims ${total} bytes but only ${present} are present`);
    at += total;
  }
  return at;
}

/**
 * FLAC: `fLaC`, then metadata blocks (STREAMINFO first). Duration = total samples / sample rate; a total of 0
 * means "unknown" in FLAC, and then undefined is returned (DashScope decides). The blocks are walked to the last
 * one so a malformed or bloated header is refused here rather than upstream.
 */
export function flacDurationSeconds(b: Buffer): number | undefined {
  const start = skipId3v2(b);
  if (b.length < start + 4 || ascii(b, start, 4) !== 'fLaC') fail('not a FLAC stream (no fLaC marker)');
  let at = start + 4;
  let duration: number | undefined;
  for (let n = 0; ; n++) {
    if (n === FLAC_MAX_BLOCKS) {
      fail(
        `the FLAC file has more than ${FLAC_MAX_BLOCKS} metadata blocks (at most ${FLAC_MAX_BLOCKS} are read)`,
      );
    }
    if (at + 4 > b.length) fail('the FLAC metadata ends before its last block');
    const head = b[at]!;
    const type = head & 0x7f;
    const size = b.readUIntBE(at + 1, 3);
    const present = b.length - (at + 4);
    if (size > present) {
      fail(`the FLAC metadata block at byte ${at} claims ${size} bytes but only ${present} are present`);
    }
    if (n === 0) {
      if (type !== 0 || size < 34) fail('the FLAC stream does not start with a STREAMINFO block');
      // STREAMINFO bytes 10..17: sample rate (20 bits), channels (3), bits per sample (5), total samples (36).
      const d = at + 4 + 10;
      const sampleRate = (b[d]! << 12) | (b[d + 1]! << 4) | (b[d + 2]! >> 4);
      const totalSamples = (b[d + 3]! & 0x0f) * 2 ** 32 + b.readUInt32BE(d + 4);
      if (sampleRate === 0) fail('the FLAC STREAMINFO block gives a sample rate of 0');
      duration = totalSamples === 0 ? undefined : totalSamples / sampleRate;
    }
    at += 4 + size;
    if (head & 0x80) return duration; // last-metadata-block flag
  }
}

/** kbit/s by [MPEG-1 ? 0 : 1][layer 1..3 → 0..2][index]; index 0 (free format) and 15 are unusable. */
const BITRATES = [
  [
    [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
    [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
    [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  ],
  [
    [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
    [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
  ],
] as const;
/** Hz by version bits (0 MPEG-2.5, 2 MPEG-2, 3 MPEG-1) and index. */
const SAMPLE_RATES: Record<number, readonly number[]> = {
  0: [11025, 12000, 8000],
  2: [22050, 24000, 16000],
  3: [44100, 48000, 32000],
};

interface MpegFrame {
  version: number;
  layer: number;
  mono: boolean;
  bitrate: number;
  sampleRate: number;
  bytes: number;
  samples: number;
}

/** The MPEG audio frame header at `at`, or undefined when the four bytes are not a usable one. */
function frameAt(b: Buffer, at: number): MpegFrame | undefined {
  if (at + 4 > b.length || b[at] !== 0xff || (b[at + 1]! & 0xe0) !== 0xe0) return undefined;
  const version = (b[at + 1]! >> 3) & 3; // 1 is reserved
  const layer = 4 - ((b[at + 1]! >> 1) & 3); // bits 00 are reserved → 4
  const rateIndex = (b[at + 2]! >> 2) & 3;
  const bitrateIndex = b[at + 2]! >> 4;
  if (version === 1 || layer === 4 || rateIndex === 3 || bitrateIndex === 0 || bitrateIndex === 15)
    return undefined;
  const mpeg1 = version === 3;
  const bitrate = BITRATES[mpeg1 ? 0 : 1][layer - 1]![bitrateIndex]! * 1000;
  const sampleRate = SAMPLE_RATES[version]![rateIndex]!;
  const padding = (b[at + 2]! >> 1) & 1;
  const samples = layer === 1 ? 384 : layer === 2 || mpeg1 ? 1152 : 576;
  const bytes =
    layer === 1
      ? (Math.floor((12 * bitrate) / sampleRate) + padding) * 4
      : Math.floor(((samples / 8) * bitrate) / sampleRate) + padding;
  return { version, layer, mono: b[at + 3]! >> 6 === 3, bitrate, sampleRate, bytes, samples };
}

/**
 * The first frame header in the window after the ID3 tags. A candidate counts when the next frame (if the bytes
 * reach it) is a header of the same version, layer and sample rate: a lone 0xFFE pattern in tag padding or a
 * picture is not enough.
 */
function firstFrame(b: Buffer, from: number): { at: number; frame: MpegFrame } | undefined {
  const end = Math.min(b.length - 3, from + MP3_SYNC_WINDOW_BYTES);
  for (let at = from; at < end; at++) {
    if (b[at] !== 0xff) continue;
    const frame = frameAt(b, at);
    if (!frame) continue;
    const next = at + frame.bytes;
    if (next + 4 > b.length) return { at, frame };
    const f2 = frameAt(b, next);
    if (
      f2 &&
      f2.version === frame.version &&
      f2.layer === frame.layer &&
      f2.sampleRate === frame.sampleRate
    ) {
      return { at, frame };
    }
  }
  return undefined;
}

/**
 * MP3 (MPEG audio, any layer): frame count from a Xing/Info or VBRI header in the first frame when present, else
 * a constant-bitrate estimate from the bytes from the first frame to the end (less an ID3v1 tag).
 */
export function mp3DurationSeconds(b: Buffer): number {
  const start = skipId3v2(b);
  const found = firstFrame(b, start);
  if (!found) {
    fail(`no MPEG audio frame header in the first ${MP3_SYNC_WINDOW_BYTES / 1024} KB after the ID3 tag`);
  }
  const { at, frame } = found;
  // Xing/Info sits after the side information, whose size depends on version and channel mode.
  const side = frame.version === 3 ? (frame.mono ? 17 : 32) : frame.mono ? 9 : 17;
  const xing = at + 4 + side;
  let frames: number | undefined;
  if (xing + 12 <= b.length && ['Xing', 'Info'].includes(ascii(b, xing, 4)) && b.readUInt32BE(xing + 4) & 1) {
    frames = b.readUInt32BE(xing + 8);
  } else if (at + 36 + 18 <= b.length && ascii(b, at + 36, 4) === 'VBRI') {
    frames = b.readUInt32BE(at + 36 + 14);
  }
  if (frames !== undefined && frames > 0) return (frames * frame.samples) / frame.sampleRate;
  const end = b.length >= at + 128 && ascii(b, b.length - 128, 3) === 'TAG' ? b.length - 128 : b.length;
  return ((end - at) * 8) / frame.bitrate;
}
