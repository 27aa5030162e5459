/**
 * Per-caller limits (CALLER_RATE_LIMITS, @fastify/rate-limit keyed by gateway key name): a 429 in the caller's
 * dialect with Retry-After, other keys unaffected, health checks exempt, and — with Redis — one count per key
 * across replicas.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { auth, KEYS, type Stack, startStack, upstreamCalls } from '../helpers.js';
import { requireRedis, uniquePrefix } from './support.js';

const redisUrl = inject('redisUrl');
const haveRedis = requireRedis(redisUrl, 'the shared caller-limit test');

const stacks: Stack[] = [];
afterEach(async () => {
  await Promise.all(stacks.splice(0).map((s) => s.close()));
});

async function stack(env: Record<string, string>): Promise<Stack> {
  const s = await startStack({ env });
  stacks.push(s);
  return s;
}

const embed = (s: Stack, key: string) =>
  s.app.inject({
    method: 'POST',
    url: '/v1/embeddings',
    headers: auth(key),
    payload: { model: 'text-embedding-v4', input: 'x', encoding_format: 'float' },
  });

describe('per-caller limits', () => {
  it('a key over its limit gets 429 with Retry-After in its dialect; other keys and health checks are unaffected', async () => {
    const s = await stack({ CALLER_RATE_LIMITS: 'alice=2/10s' });
    expect((await embed(s, KEYS.alice)).statusCode).toBe(200);
    const second = await embed(s, KEYS.alice);
    expect(second.statusCode).toBe(200);
    expect(second.headers['x-ratelimit-limit']).toBe('2');
    expect(second.headers['x-ratelimit-remaining']).toBe('0');

    const over = await embed(s, KEYS.alice);
    expect(over.statusCode).toBe(429);
    expect(over.json().error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
    expect(over.json().error.message).toMatch(/gateway key "alice" may send 2 requests per 10 s/);
    expect(over.body).not.toMatch(/quota/i);
    expect(Number(over.headers['retry-after'])).toBeGreaterThanOrEqual(9);
    expect(Number(over.headers['retry-after'])).toBeLessThanOrEqual(10);

    const native = await s.app.inject({
      method: 'POST',
      url: '/api/v1/services/embeddings/text-embedding/text-embedding',
      headers: auth(KEYS.alice),
      payload: { model: 'text-embedding-v4', input: { texts: ['x'] } },
    });
    expect(native.statusCode).toBe(429);
    expect(native.json()).toMatchObject({ code: 'Throttling', request_id: native.headers['x-request-id'] });
    expect(native.headers['retry-after']).toMatch(/^[1-9]\d*$/);

    // The refused requests never reached DashScope.
    expect(upstreamCalls(s.emu, '/api/')).toHaveLength(2);
    // bob has no entry and no `*`: unlimited.
    for (let i = 0; i < 4; i++) expect((await embed(s, KEYS.bob)).statusCode).toBe(200);
    for (let i = 0; i < 4; i++) {
      expect((await s.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    }
  });

  it('`*` sets the limit for every key without its own entry', async () => {
    const s = await stack({ CALLER_RATE_LIMITS: 'alice=5/10s,*=1/10s' });
    expect((await embed(s, KEYS.bob)).statusCode).toBe(200);
    expect((await embed(s, KEYS.bob)).statusCode).toBe(429);
    expect((await embed(s, KEYS.alice)).statusCode).toBe(200);
    expect((await embed(s, KEYS.alice)).statusCode).toBe(200);
  });

  it.skipIf(!haveRedis)('with Redis, a key’s count is shared by every replica', async () => {
    const env = {
      REDIS_URL: redisUrl,
      RATE_LIMIT_KEY_PREFIX: uniquePrefix('caller'),
      CALLER_RATE_LIMITS: 'alice=2/10s',
    };
    const a = await stack(env);
    const b = await stack({ ...env, DASHSCOPE_BASE_URL: a.emu.url });
    expect((await embed(a, KEYS.alice)).statusCode).toBe(200);
    expect((await embed(b, KEYS.alice)).statusCode).toBe(200);
    expect((await embed(a, KEYS.alice)).statusCode).toBe(429);
    expect((await embed(b, KEYS.alice)).statusCode).toBe(429);
  });
});
