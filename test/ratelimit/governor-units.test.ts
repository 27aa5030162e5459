/**
 * The pure parts of the governor: the reservation log never lets any window exceed its limits (calls and tokens,
 * per window and per pace window) over random bursts, the largest-request arithmetic, and the settings syntax
 * (model=rpm/tpm, REDIS_URL forms for one server, a Cluster and a Sentinel group).
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { LocalLog } from '../../src/ratelimit/local-log.js';
import { budgetNumbers, largestRequest, limitsOf } from '../../src/ratelimit/plan.js';
import { budgetRules } from '../../src/ratelimit/settings.js';
import { parseRedisUrl } from '../../src/redis.js';
import { maxTokensInWindow, settings } from './governor-support.js';
import { maxInWindow } from './support.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('LocalLog (reservation log)', () => {
  it('never exceeds calls or tokens in any window, with releases and corrections, over random bursts', () => {
    const lim = { calls: 20, spanMs: 3000, perPace: 3, paceSpanMs: 300, tokens: 5000, tokensPerPace: 800 };
    for (const seed of [1, 2, 3, 4]) {
      const rand = rng(seed);
      const log = new LocalLog(3000);
      const placed = new Map<string, { at: number; tokens: number }>();
      let now = 0;
      let id = 0;
      for (let i = 0; i < 400; i++) {
        now += Math.floor(rand() * 200);
        log.prune(now);
        const k = 1 + Math.floor(rand() * 6);
        const tokens = Array.from({ length: k }, () => Math.floor(rand() * 600));
        const ids = tokens.map(() => String(++id));
        const r = log.reserve(ids, tokens, now, now + 2000, lim);
        if (!r.ok) continue;
        for (const [j, t] of r.starts.entries()) placed.set(ids[j]!, { at: t, tokens: tokens[j]! });
        const fate = rand();
        if (fate < 0.2) {
          // The request ended early: its last call never went.
          log.remove([{ id: ids.at(-1)!, tokens: tokens.at(-1)! }]);
          placed.delete(ids.at(-1)!);
        } else if (fate < 0.4) {
          // Billed more than estimated, learnt when the request's last call replied (before anything later was
          // reserved): every later reservation must make room for it.
          const extra = Math.floor(rand() * 200);
          log.addTokens(extra);
          placed.get(ids.at(-1)!)!.tokens += extra;
        }
      }
      const calls = [...placed.values()];
      expect(calls.length).toBeGreaterThan(100);
      expect(
        maxInWindow(
          calls.map((c) => c.at),
          2999,
        ),
      ).toBeLessThanOrEqual(20);
      expect(
        maxInWindow(
          calls.map((c) => c.at),
          299,
        ),
      ).toBeLessThanOrEqual(3);
      // A correction cannot move calls already reserved: only the corrected call's own excess (< 200 here) can
      // show in the window that ends with it; everything reserved after the correction makes room for it.
      expect(maxTokensInWindow(calls, 2999)).toBeLessThan(5000 + 200);
      expect(maxTokensInWindow(calls, 299)).toBeLessThan(800 + 200);
    }
  });

  it('is all or nothing: a refused request leaves the log as it was', () => {
    const lim = { calls: 5, spanMs: 1000, perPace: 5, paceSpanMs: 100, tokens: 0, tokensPerPace: 0 };
    const log = new LocalLog(1000);
    expect(log.reserve(['a', 'b', 'c'], [0, 0, 0], 0, 0, lim).ok).toBe(true);
    const r = log.reserve(['d', 'e', 'f'], [0, 0, 0], 0, 500, lim);
    expect(r).toEqual({ ok: false, lastStart: 1000 });
    expect(log.size).toBe(3);
    expect(log.reserve(['g', 'h'], [0, 0], 0, 0, lim).ok).toBe(true);
  });
});

describe('largest request', () => {
  it('defaults: 120 per minute and 2 per second, 30 s of waiting → 56 calls', () => {
    const s = settings({
      defaultLimit: 120,
      windowMs: 60_000,
      paceMs: 1000,
      marginMs: 100,
      maxWaitMs: 30_000,
    });
    const n = budgetNumbers({ name: 'text-embedding-v4', models: [], limit: 120 }, s);
    expect(n.perPace).toBe(2);
    // Two per 1.1 s (the second plus the margin) from t = 0 to t = 29.7 s.
    expect(largestRequest(limitsOf(n, 100), 30_000)).toBe(56);
  });

  it('tokens limit it too: 1,200,000 per minute is 20,000 per second', () => {
    const s = settings({ windowMs: 60_000, paceMs: 1000, marginMs: 100, maxWaitMs: 30_000 });
    const n = budgetNumbers({ name: 'text-embedding-v1', models: [], limit: 1800, tokens: 1_200_000 }, s);
    expect(n).toMatchObject({ perPace: 30, tokensPerPace: 20_000 });
    expect(largestRequest(limitsOf(n, 100), 30_000, 20_000)).toBe(28); // one call per 1.1 s
    expect(largestRequest(limitsOf(n, 100), 30_000, 1_300_000)).toBe(0);
  });
});

describe('settings', () => {
  it('RATE_LIMIT_MODELS takes model=rpm and model=rpm/tpm', () => {
    expect(budgetRules.parse('text-embedding-v1=1800/1200000, a+b=60')).toEqual([
      { name: 'text-embedding-v1', models: ['text-embedding-v1'], limit: 1800, tokens: 1_200_000 },
      { name: 'a+b', models: ['a', 'b'], limit: 60 },
    ]);
    expect(budgetRules.safeParse('x=10/').success).toBe(false);
  });

  it('REDIS_URL may name one server, a Cluster or a Sentinel group', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6379/2')).toEqual({
      kind: 'single',
      url: 'redis://127.0.0.1:6379/2',
    });
    expect(parseRedisUrl('redis+cluster://h1:7000,h2:7001')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'h1', port: 7000 },
        { host: 'h2', port: 7001 },
      ],
      tls: false,
    });
    expect(parseRedisUrl('rediss+sentinel://:pw@s1:26379,s2/mymaster/1')).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
      ],
      name: 'mymaster',
      db: 1,
      tls: true,
      password: 'pw',
    });
    expect(typeof parseRedisUrl('redis+sentinel://s1:26379')).toBe('string');
    expect(typeof parseRedisUrl('redis://h1:1,h2:2')).toBe('string');
    expect(typeof parseRedisUrl('http://h1')).toBe('string');
  });

  it('config accepts the new forms and reports bad ones with the variable name', () => {
    const base = { DASHSCOPE_API_KEY: 'sk-test-123456', GATEWAY_ALLOW_ANONYMOUS: 'true' };
    const c = loadConfig({ ...base, REDIS_URL: 'redis+cluster://127.0.0.1:7000', RATE_LIMIT_TPM: '500000' });
    expect(c.redisUrl).toBe('redis+cluster://127.0.0.1:7000');
    expect(c.upstreamBudget).toMatchObject({
      defaultTokens: 500_000,
      paceMs: 1000,
      burst: 0,
      restoreGraceMs: 2500,
    });
    let err: unknown;
    try {
      loadConfig({ ...base, REDIS_URL: 'redis+sentinel://s1:26379', RATE_LIMIT_PACE_MS: '120000' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toMatch(/REDIS_URL: must end with \/mastername/);
    expect(problems).toMatch(/RATE_LIMIT_PACE_MS/);
  });
});
