import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import {
  audioDurationSeconds,
  checkInlineMedia,
  detectFormat,
  formatBytes,
} from '../../src/media/inspect.js';
import { bmp, jpeg, MB, mp4, png, wav } from '../fixtures/media/index.js';

const IMAGES = { formats: ['jpg', 'png', 'bmp'], maxBytes: 3 * MB };

/** `n` MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz: 417 bytes, 1152 samples each), silent. */
function mp3(frames: number): Buffer {
  const frame = Buffer.alloc(417);
  frame.writeUInt32BE(0xfffb9000, 0);
  return Buffer.concat(Array.from({ length: frames }, () => frame));
}

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

describe('formatBytes', () => {
  it('quotes limits in the unit DashScope uses', () => {
    expect(formatBytes(5 * MB)).toBe('5 MB');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(12)).toBe('12 bytes');
  });
});
