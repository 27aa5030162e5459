/**
 * The emulator's own limits, over HTTP: its token lower bound rejects grossly long texts with DashScope's message
 * and never rejects texts within the limit, its row overrides work, and its rate-limit emulation answers DashScope's
 * 429s. The emulator shares no code with the gateway, so these pin what it checks the gateway against.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qwenTokensAtLeast } from '../../src/emulator/qwen-length.js';
import { type Emulator, startEmulator } from '../../src/emulator/server.js';
import { countTokens } from '../../src/tokens/index.js';

const KEY = 'sk-emulator-limits-test-key';
const TEXT_PATH = '/api/v1/services/embeddings/text-embedding/text-embedding';

async function embed(emu: Emulator, model: string, texts: string[]) {
  const res = await fetch(`${emu.url}${TEXT_PATH}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ model, input: { texts } }),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('emulator text limits (its own table and token bound)', () => {
  let emu: Emulator;
  beforeAll(async () => {
    emu = await startEmulator({ apiKey: KEY, rowLimits: new Map([['text-embedding-v3', 3]]) });
  });
  afterAll(() => emu.close());

  it('rejects a text with more than 8,192 pre-tokens (so more tokens) with DashScope’s message', async () => {
    const res = await embed(emu, 'text-embedding-v4', ['word '.repeat(8200)]);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({
      code: 'InvalidParameter',
      message: 'Range of input length should be [1, 8192]',
    });
  });

  it('rejects over 2,048 for text-embedding-v1', async () => {
    const res = await embed(emu, 'text-embedding-v1', ['ok', 'x '.repeat(2100)]);
    expect(res.status).toBe(400);
    expect(res.body.message).toBe('Range of input length should be [1, 2048]');
  });

  it('accepts texts that are within the limit in real tokens, even when long in bytes', async () => {
    // 60,000 × 'a' is 7,500 Qwen3 tokens; CJK text is 1–2 characters per token; 8,000 spaces are ~63 tokens.
    const res = await embed(emu, 'text-embedding-v4', [
      'a'.repeat(60_000),
      '你好世界'.repeat(1000),
      ' '.repeat(8000),
    ]);
    expect(res.status).toBe(200);
    const usage = res.body.usage as { total_tokens: number };
    expect(usage.total_tokens).toBeGreaterThan(0);
  });

  it('applies a rowLimits override and keeps the others', async () => {
    const over = await embed(emu, 'text-embedding-v3', ['a', 'b', 'c', 'd']);
    expect(over.status).toBe(400);
    expect(over.body.message).toBe('batch size is invalid, it should not be larger than 3.: input.contents');
    expect((await embed(emu, 'text-embedding-v4', Array(10).fill('a'))).status).toBe(200);
    expect((await embed(emu, 'text-embedding-v4', Array(11).fill('a'))).body.message).toBe(
      'batch size is invalid, it should not be larger than 10.: input.contents',
    );
  });

  it('refuses a rowLimits override for an unknown model at start-up', async () => {
    await expect(startEmulator({ apiKey: KEY, rowLimits: new Map([['no-such-model', 3]]) })).rejects.toThrow(
      /unknown model: no-such-model/,
    );
  });
});

describe('emulator rate limits', () => {
  let emu: Emulator;
  beforeAll(async () => {
    emu = await startEmulator({
      apiKey: KEY,
      rateLimits: {
        'text-embedding-v1': { rpm: 3 },
        'text-embedding-v2': { rps: 2 },
        'text-embedding-v3': { tpm: 1000 },
      },
    });
  });
  afterAll(() => emu.close());

  it('answers Throttling.RateQuota once the requests of the minute are used', async () => {
    for (let i = 0; i < 3; i++) expect((await embed(emu, 'text-embedding-v1', ['a'])).status).toBe(200);
    const res = await embed(emu, 'text-embedding-v1', ['a']);
    expect(res.status).toBe(429);
    expect(res.body).toMatchObject({
      code: 'Throttling.RateQuota',
      message: 'Requests rate limit exceeded, please try again later.',
    });
    // Other models have their own budget.
    expect((await embed(emu, 'text-embedding-v4', ['a'])).status).toBe(200);
  });

  it('refuses a burst over the per-second limit with "Request rate increased too quickly"', async () => {
    const results = await Promise.all([1, 2, 3].map(() => embed(emu, 'text-embedding-v2', ['a'])));
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 429]);
    expect(results.find((r) => r.status === 429)?.body.message).toBe('Request rate increased too quickly');
  });

  it('answers Throttling.AllocationQuota when the tokens of the minute are used', async () => {
    // 600 words are at least 600 tokens: the second call would pass 1,000.
    expect((await embed(emu, 'text-embedding-v3', ['word '.repeat(600)])).status).toBe(200);
    const res = await embed(emu, 'text-embedding-v3', ['word '.repeat(600)]);
    expect(res.status).toBe(429);
    expect(res.body).toMatchObject({
      code: 'Throttling.AllocationQuota',
      message: 'Allocated quota exceeded, please increase your quota limit.',
    });
    // A refused call uses no budget: a small one still fits.
    expect((await embed(emu, 'text-embedding-v3', ['a'])).status).toBe(200);
  });
});

describe('emulator token bound against the real Qwen3 tokenizer (as an oracle only)', () => {
  it('is never above the real count on 2,000 seeded random strings', () => {
    let seed = 12345;
    const next = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const pieces = [
      'a',
      'hello',
      ' world',
      '你好',
      '🙂',
      'e\u0301',
      '\uFB2C',
      '\n',
      '\r\n',
      '  ',
      '\t',
      '<|endoftext|>',
      '<think>',
      '<|im_start',
      "'s",
      "'LL",
      '123',
      '---',
      '////',
      'อำนวย',
      '\u3000',
      '\u00a0',
      'ß',
      'A\u030a',
      '==',
    ];
    let checked = 0;
    for (let i = 0; i < 2000; i++) {
      let s = '';
      const parts = 1 + Math.floor(next() * 30);
      for (let j = 0; j < parts; j++) {
        s += pieces[Math.floor(next() * pieces.length)]!.repeat(
          1 + Math.floor(next() * (next() < 0.1 ? 150 : 3)),
        );
      }
      const real = countTokens(s);
      const bound = qwenTokensAtLeast(s);
      if (bound > real) expect({ s, bound, real }).toEqual('a bound above the real count');
      checked++;
    }
    expect(checked).toBe(2000);
  });
});
