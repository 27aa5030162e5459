/**
 * The per-request deadline (REQUEST_TIMEOUT_MS, here 1.5 s) over all of a request's upstream work, and the idle
 * limit of relayed streams (STREAM_IDLE_TIMEOUT_MS, here 1 s), against the emulator:
 * - an upstream slower than the deadline: 504 naming REQUEST_TIMEOUT_MS at the deadline, not after DashScope's reply;
 * - retries stop at the deadline: no attempt reaches DashScope after it;
 * - a backoff that would end past the deadline is not started: the last failure is answered at once;
 * - a stream that goes silent longer than STREAM_IDLE_TIMEOUT_MS ends with an error event naming it;
 * - a stream that runs longer than REQUEST_TIMEOUT_MS but is never idle that long is relayed to the end.
 * The time bounds are generous ceilings (the machine is shared); each one is far below what the same request takes
 * without the limit.
 */
import { describe, expect, it } from 'vitest';
import {
  conversationSettings,
  conversationStreams,
  resetConversation,
} from '../../src/emulator/routes/multimodal-generation.js';
import { auth, useStack } from '../helpers.js';

const TIMEOUT_MS = 1500;
const TEXT_PATH = '/api/v1/services/embeddings/text-embedding/text-embedding';
const GENERATION = '/api/v1/services/aigc/multimodal-generation/generation';
const env = (extra: Record<string, string> = {}) => ({
  env: {
    REQUEST_TIMEOUT_MS: String(TIMEOUT_MS),
    RATE_LIMIT_MAX_WAIT_MS: '1000',
    STREAM_IDLE_TIMEOUT_MS: '1000',
    ...extra,
  },
});

const embed = () => ({
  method: 'POST' as const,
  url: '/v1/embeddings',
  headers: { ...auth(), 'content-type': 'application/json' },
  payload: { model: 'text-embedding-v4', input: 'deadline' },
});

describe('REQUEST_TIMEOUT_MS', () => {
  const s = useStack(env({ UPSTREAM_RETRIES: '10', UPSTREAM_RETRY_BASE_MS: '5' }));

  it('an upstream slower than the deadline: 504 naming REQUEST_TIMEOUT_MS, at the deadline', async () => {
    s.emu.addFault({ path: TEXT_PATH, delayMs: 5000 });
    const started = Date.now();
    const res = await s.app.inject(embed());
    const took = Date.now() - started;
    expect(res.statusCode).toBe(504);
    expect(res.json().error).toMatchObject({ code: 'upstream_timeout', type: 'api_error' });
    expect(res.json().error.message).toMatch(/longer than 1500 ms \(REQUEST_TIMEOUT_MS\)/);
    expect(took).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
    expect(took).toBeLessThan(4000); // the upstream alone would take 5 s
  });

  it('retries stop at the deadline: no attempt reaches DashScope after it', async () => {
    s.emu.addFault({ path: TEXT_PATH, status: 503, delayMs: 400, times: 50 });
    const started = Date.now();
    const res = await s.app.inject(embed());
    const took = Date.now() - started;
    expect([503, 504]).toContain(res.statusCode);
    expect(took).toBeLessThan(4000); // 11 attempts of 400 ms would take 4.4 s
    const calls = s.emu.received.filter((r) => r.url.startsWith(TEXT_PATH));
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(calls.length).toBeLessThanOrEqual(5);
    for (const c of calls) expect(c.at).toBeLessThan(started + TIMEOUT_MS + 50);
  });
});

describe('a backoff that would end past REQUEST_TIMEOUT_MS', () => {
  // A base of 60 s: the first backoff is up to 60 s long, almost always past the 1.5 s deadline.
  const s = useStack(env({ UPSTREAM_RETRIES: '3', UPSTREAM_RETRY_BASE_MS: '60000' }));

  it('is not started: the failure is answered within the deadline, not after the backoff', async () => {
    s.emu.addFault({ path: TEXT_PATH, status: 503, times: 10 });
    const started = Date.now();
    const res = await s.app.inject(embed());
    const took = Date.now() - started;
    expect(res.statusCode).toBe(503);
    expect(res.json().error.code).toBe('upstream_unavailable');
    expect(took).toBeLessThan(TIMEOUT_MS + 1000);
  });
});

describe('STREAM_IDLE_TIMEOUT_MS', () => {
  const s = useStack(env());

  const stream = () =>
    s.app.inject({
      method: 'POST',
      url: GENERATION,
      headers: { ...auth(), 'content-type': 'application/json', 'x-dashscope-sse': 'enable' },
      payload: {
        model: 'qwen-vl-plus',
        input: { messages: [{ role: 'user', content: 'a reply in a few pieces, please' }] },
      },
    });

  it('a stream silent for longer than STREAM_IDLE_TIMEOUT_MS ends with an error event naming it', async () => {
    resetConversation(s.emu.instance);
    conversationSettings(s.emu.instance).eventDelayMs = 3000;
    const started = Date.now();
    const res = await stream();
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/event:error\n:HTTP_STATUS\/504\n/);
    expect(res.body).toMatch(/STREAM_IDLE_TIMEOUT_MS/);
    expect(Date.now() - started).toBeLessThan(2900); // the first event alone would take 3 s
  });

  it('a stream longer than REQUEST_TIMEOUT_MS, never idle that long, is relayed to the end', async () => {
    resetConversation(s.emu.instance);
    conversationSettings(s.emu.instance).eventDelayMs = 600;
    const started = Date.now();
    const res = await stream();
    const took = Date.now() - started;
    expect(res.statusCode).toBe(200);
    expect(res.body).not.toMatch(/event:error/);
    const rec = conversationStreams(s.emu.instance).at(-1)!;
    expect(rec.finished).toBe(true);
    expect(took).toBeGreaterThan(TIMEOUT_MS); // it did outlast the request deadline
  });
});
