import { beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import {
  audioDurationSeconds,
  checkInlineMedia,
  detectFormat,
  FLAC_MAX_BLOCKS,
  formatBytes,
  MP3_SYNC_WINDOW_BYTES,
  WAV_MAX_CHUNKS,
} from '../../src/media/inspect.js';
import {
  bmp,
  flac,
  flacClaiming,
  id3,
  jpeg,
  MB,
  MP3_FRAME_BYTES,
  mp3,
  mp4,
  png,
  wav,
  wavClaiming,
  wavWithChunks,
} from '../fixtures/media/index.js';

const IMAGES = { formats: ['jpg', 'png', 'bmp'], maxBytes: 3 * MB };
/** ONE-PEACE's audio rule (src/models/multimodal-embedding.ts). */
const AUDIO = { formats: ['wav', 'mp3', 'flac'], maxBytes: 5 * MB };
/** Hostile inputs must not hold the event loop: no single check slower than this. */
const BUDGET_MS = 100;

/** The call's result (or rejection) and how long it took, measured around the call alone. */
async function timed<T>(f: () => Promise<T>): Promise<{ elapsed: number; result?: T; error?: unknown }> {
  const t0 = performance.now();
  try {
    const result = await f();
    return { elapsed: performance.now() - t0, result };
  } catch (error) {
    return { elapsed: performance.now() - t0, error };
  }
}

// The first call loads file-type (a dynamic import); that one-off cost is not what the budgets measure.
beforeAll(async () => {
  await detectFormat(png());
});

async function rejection(p: Promise<unknown>): Promise<GatewayError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  return err as GatewayError;
}

describe('detectFormat', () => {
  it.each([
    ['png', png()],
    ['jpg', jpeg()],
    ['bmp', bmp()],
    ['wav', wav(0.1)],
    ['mp4', mp4()],
    ['mp3', mp3(3)],
    ['flac', flac(1)],
    ['mp3', mp3(3, { id3Bytes: 200 * 1024 })],
  ])('recognises %s from its bytes', async (ext, bytes) => {
    expect((await detectFormat(bytes))?.ext).toBe(ext);
  });

  it('recognises nothing in plain text', async () => {
    expect(await detectFormat(Buffer.from('hello, not media'))).toBeUndefined();
  });
});

describe('checkInlineMedia', () => {
  const check = (bytes: Buffer, declared = 'image/png') =>
    checkInlineMedia(bytes, declared, 'image', IMAGES, 'some-model', 'input.contents[0].image');

  it('passes an allowed format up to exactly the limit, whatever the declared type says', async () => {
    expect(await check(png(3 * MB))).toEqual({ ext: 'png', mime: 'image/png', bytes: 3 * MB });
    expect((await check(jpeg(), 'image/png')).ext).toBe('jpg');
  });

  it('refuses one byte over the limit, naming the field and the limit', async () => {
    const err = await rejection(check(png(3 * MB + 1)));
    expect(err.statusCode).toBe(400);
    expect(err.param).toBe('input.contents[0].image');
    expect(err.message).toBe(
      'input.contents[0].image: the inline image is 3145729 bytes decoded; some-model accepts at most 3145728 bytes (3 MB) per image',
    );
  });

  it('refuses bytes that are no known format, and a known format the model does not take', async () => {
    expect((await rejection(check(Buffer.from('plain text')))).message).toMatch(
      /not a recognisable image \(declared image\/png\): its bytes match none of the formats some-model accepts \(jpg\/jpeg, png, bmp\)/,
    );
    expect((await rejection(check(mp4(), 'image/jpeg'))).message).toMatch(
      /is mp4 \(video\/mp4, from its bytes\) \(declared image\/jpeg\); some-model accepts image as jpg\/jpeg, png, bmp/,
    );
  });
});

describe('audioDurationSeconds', () => {
  it('reads the duration a WAV header states', async () => {
    expect(await audioDurationSeconds(wav(15), 'audio/wav', 'p')).toBe(15);
    expect(await audioDurationSeconds(wav(16), 'audio/wav', 'p')).toBe(16);
  });

  it('reads an MP3 duration from its frames', async () => {
    const d = await audioDurationSeconds(mp3(20), 'audio/mpeg', 'p');
    expect(d).toBeCloseTo((20 * 1152) / 44100, 2);
  });
});

describe('audioDurationSeconds: the headers of each format', () => {
  const P = 'input.contents[0].audio';
  const duration = (b: Buffer, mime: string) => audioDurationSeconds(b, mime, P);

  it('WAV: data bytes / byte rate, with other chunks before the data', async () => {
    expect(await duration(wav(14.999), 'audio/wav')).toBe(14.999);
    expect(await duration(wavWithChunks(WAV_MAX_CHUNKS - 2), 'audio/wav')).toBe(1);
  });

  it('FLAC: total samples / sample rate from STREAMINFO, across metadata blocks', async () => {
    expect(await duration(flac(15), 'audio/flac')).toBe(15);
    expect(await duration(flac(1, 44100, { totalSamples: 15 * 44100 + 1 }), 'audio/flac')).toBeCloseTo(
      15.00002,
      5,
    );
    expect(await duration(flac(2, 48000, { emptyBlocks: FLAC_MAX_BLOCKS - 1 }), 'audio/flac')).toBe(2);
    expect(await duration(Buffer.concat([id3(100), flac(3)]), 'audio/flac')).toBe(3);
  });

  it('FLAC with an unknown sample count (0) has no duration here: DashScope decides', async () => {
    expect(await duration(flac(1, 44100, { totalSamples: 0 }), 'audio/flac')).toBeUndefined();
  });

  it('MP3: a Xing frame count wins over the byte count (VBR), near 15 s', async () => {
    const d = await duration(mp3(3, { xingFrames: 574 }), 'audio/mpeg');
    expect(d).toBeCloseTo((574 * 1152) / 44100, 6);
    expect(d).toBeLessThan(15);
    expect(await duration(mp3(3, { xingFrames: 575 }), 'audio/mpeg')).toBeGreaterThan(15);
  });

  it('MP3 without a Xing header: constant bitrate over the bytes from the first frame, after an ID3 tag', async () => {
    const d = await duration(mp3(577, { id3Bytes: 4096 }), 'audio/mpeg');
    expect(d).toBeCloseTo((577 * MP3_FRAME_BYTES * 8) / 128000, 6);
    expect(d).toBeGreaterThan(15);
  });

  it('a mime without a parser has no duration here', async () => {
    expect(await duration(wav(1), 'audio/ogg')).toBeUndefined();
  });
});

describe('audioDurationSeconds: headers that lie are a 400 naming the field and the limit', () => {
  const P = 'input.contents[0].audio';

  async function refused(b: Buffer, mime: string): Promise<GatewayError> {
    const { elapsed, error } = await timed(() => audioDurationSeconds(b, mime, P));
    expect(elapsed).toBeLessThan(BUDGET_MS);
    expect(error).toBeInstanceOf(GatewayError);
    const err = error as GatewayError;
    expect(err.statusCode).toBe(400);
    expect(err.param).toBe(P);
    return err;
  }

  it('a WAV whose data chunk claims 4 GiB', async () => {
    expect((await refused(wavClaiming(0xffffffff), 'audio/wav')).message).toBe(
      `${P}: the inline audio cannot be read: the WAV header claims 4294967295 bytes of audio but only 8000 are present`,
    );
  });

  it('a WAV with 300,000 empty chunks (2.4 MB, under the 5 MB cap)', async () => {
    const b = wavWithChunks(300_000);
    expect(b.length).toBeLessThan(AUDIO.maxBytes);
    expect((await refused(b, 'audio/wav')).message).toMatch(
      /the WAV file has more than 64 chunks before its fmt and data chunks \(at most 64 are read\)$/,
    );
  });

  it('a WAV chunk other than data running past the end, and a WAV with no data chunk', async () => {
    const lying = wav(1);
    lying.writeUInt32LE(1000, 16); // the fmt chunk now claims 1000 bytes
    expect((await refused(lying.subarray(0, 200), 'audio/wav')).message).toMatch(
      /the WAV chunk 'fmt ' at byte 12 claims 1000 bytes but only 180 are present$/,
    );
    expect((await refused(wav(1).subarray(0, 36), 'audio/wav')).message).toMatch(
      /the WAV file has no data chunk$/,
    );
  });

  it('a FLAC with 300,000 empty metadata blocks (1.2 MB)', async () => {
    const b = flac(1, 44100, { emptyBlocks: 300_000 });
    expect(b.length).toBeLessThan(AUDIO.maxBytes);
    expect((await refused(b, 'audio/flac')).message).toMatch(
      /the FLAC file has more than 128 metadata blocks \(at most 128 are read\)$/,
    );
  });

  it('a FLAC metadata block past the end', async () => {
    expect((await refused(flacClaiming(0xffffff), 'audio/flac')).message).toMatch(
      /the FLAC metadata block at byte 42 claims 16777215 bytes but only 16 are present$/,
    );
  });

  it('an MP3 whose ID3 tag claims more than the bytes, and one with no frame in the window', async () => {
    const lying = Buffer.concat([id3(16, 0x0fffffff), mp3(2)]);
    expect((await refused(lying, 'audio/mpeg')).message).toMatch(
      /the ID3v2 tag at byte 0 claims 268435465 bytes but only 860 are present$/,
    );
    const noFrames = Buffer.concat([id3(16), Buffer.alloc(MP3_SYNC_WINDOW_BYTES + 1000, 0xff), mp3(2)]);
    expect((await refused(noFrames, 'audio/mpeg')).message).toMatch(
      /no MPEG audio frame header in the first 64 KB after the ID3 tag$/,
    );
  });

  it('MP3 work is bounded whatever the bytes: 5 MB of near-sync patterns', async () => {
    const b = Buffer.alloc(5 * MB, 0xff);
    for (let i = 1; i < b.length; i += 2) b[i] = 0xfb; // every other byte starts a plausible header
    const { elapsed } = await timed(() => audioDurationSeconds(b, 'audio/mpeg', P));
    expect(elapsed).toBeLessThan(BUDGET_MS);
  });
});

describe('checkInlineMedia: sniffing is bounded at the size cap', () => {
  const check = (b: Buffer) => checkInlineMedia(b, 'audio/wav', 'audio', AUDIO, 'one-peace', 'p');

  it.each([
    ['a WAV with 300,000 chunks', () => wavWithChunks(300_000)],
    ['a FLAC with 300,000 metadata blocks', () => flac(1, 44100, { emptyBlocks: 300_000 })],
    ['5 MB of chained empty ID3 tags', () => Buffer.alloc(5 * MB, id3(0))],
    ['5 MB of zeros', () => Buffer.alloc(5 * MB)],
    ['a 5 MB MP3', () => mp3(Math.floor((5 * MB) / MP3_FRAME_BYTES))],
  ])('%s', async (_name, make) => {
    const b = make();
    expect(b.length).toBeLessThanOrEqual(AUDIO.maxBytes);
    const { elapsed } = await timed(() => check(b));
    expect(elapsed).toBeLessThan(BUDGET_MS);
  });
});

describe('formatBytes', () => {
  it('quotes limits in the unit DashScope uses', () => {
    expect(formatBytes(5 * MB)).toBe('5 MB');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(12)).toBe('12 bytes');
  });
});
