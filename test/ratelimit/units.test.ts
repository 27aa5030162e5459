/**
 * The pure parts of the rate limiting: the waiting room is round-robin across keys, and the configuration syntax is
 * checked with every problem listed at once (the reservation log's own checks: governor-units.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { durationText } from '../../src/ratelimit/context.js';
import { FairQueue } from '../../src/ratelimit/fair-queue.js';
import { parseWindow } from '../../src/ratelimit/settings.js';

describe('FairQueue (round-robin across keys, FIFO within a key)', () => {
  it('serves a quiet key between a noisy key’s waiters instead of after all of them', () => {
    const q = new FairQueue<string>(100);
    for (let i = 0; i < 10; i++) q.push('noisy', `n${i}`);
    q.push('quiet', 'q0');
    q.push('quiet', 'q1');
    const order: string[] = [];
    for (let x = q.shift(); x !== undefined; x = q.shift()) order.push(x);
    expect(order.slice(0, 5)).toEqual(['n0', 'q0', 'n1', 'q1', 'n2']);
    expect(order.filter((x) => x.startsWith('n'))).toEqual(Array.from({ length: 10 }, (_, i) => `n${i}`));
    expect(q.size).toBe(0);
  });

  it('is bounded, and removing a waiter keeps the rotation intact', () => {
    const q = new FairQueue<string>(3);
    expect(q.push('a', 'a0')).toBe(true);
    expect(q.push('b', 'b0')).toBe(true);
    expect(q.push('c', 'c0')).toBe(true);
    expect(q.push('a', 'a1')).toBe(false);
    expect(q.remove('b', 'b0')).toBe(true);
    expect(q.remove('b', 'b0')).toBe(false);
    expect([q.shift(), q.shift(), q.shift()]).toEqual(['a0', 'c0', undefined]);
  });
});

describe('rate-limit configuration', () => {
  const base = {
    DASHSCOPE_API_KEY: 'sk-upstream-0123456789',
    GATEWAY_API_KEYS: 'alice:alice-key-123,bob:bob-key-4567',
  };

  it('defaults: 120 per 60 s per model, 30 s of waiting, one replica, no caller limits', () => {
    const c = loadConfig(base);
    expect(c.upstreamBudget).toMatchObject({
      defaultLimit: 120,
      windowMs: 60_000,
      maxWaitMs: 30_000,
      queueSize: 1000,
      replicas: 1,
      rules: [],
    });
    expect(c.callerLimits.size).toBe(0);
  });

  it('reads per-model budgets, groups sharing one budget, and caller limits', () => {
    const c = loadConfig({
      ...base,
      RATE_LIMIT_MODELS: 'multimodal-embedding-v1=120, text-embedding-v3+text-embedding-v4=1800',
      CALLER_RATE_LIMITS: 'alice=600/1m,bob=20/10s,*=5/s',
    });
    expect(c.upstreamBudget.rules).toEqual([
      { name: 'multimodal-embedding-v1', models: ['multimodal-embedding-v1'], limit: 120 },
      {
        name: 'text-embedding-v3+text-embedding-v4',
        models: ['text-embedding-v3', 'text-embedding-v4'],
        limit: 1800,
      },
    ]);
    expect([...c.callerLimits]).toEqual([
      ['alice', { max: 600, windowMs: 60_000 }],
      ['bob', { max: 20, windowMs: 10_000 }],
      ['*', { max: 5, windowMs: 1000 }],
    ]);
  });

  it('lists every problem at once', () => {
    let err: unknown;
    try {
      loadConfig({
        ...base,
        RATE_LIMIT_RPM: '2',
        RATE_LIMIT_REPLICAS: '3',
        RATE_LIMIT_MODELS: 'text-embedding-v4=lots,a+a=5',
        CALLER_RATE_LIMITS: 'carol=5/1m',
        RATE_LIMIT_WINDOW_MS: '1000',
        RATE_LIMIT_MARGIN_MS: '1000',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toMatch(/RATE_LIMIT_MODELS.*"text-embedding-v4=lots" is not model=requests/);
    expect(problems).toMatch(/RATE_LIMIT_MODELS.*model "a" appears in two budgets/);
    // The zod issues are all reported; the cross-checks need a parse that succeeded, so they come on the next run.
    const second = (() => {
      try {
        loadConfig({
          ...base,
          RATE_LIMIT_RPM: '2',
          RATE_LIMIT_REPLICAS: '3',
          CALLER_RATE_LIMITS: 'carol=5/1m,bad',
          RATE_LIMIT_WINDOW_MS: '1000',
          RATE_LIMIT_MARGIN_MS: '1000',
        });
      } catch (e) {
        return (e as ConfigError).problems.join('\n');
      }
      return '';
    })();
    expect(second).toMatch(/CALLER_RATE_LIMITS.*"bad" is not name=requests\/window/);
    const third = (() => {
      try {
        loadConfig({
          ...base,
          RATE_LIMIT_RPM: '2',
          RATE_LIMIT_REPLICAS: '3',
          CALLER_RATE_LIMITS: 'carol=5/1m',
          RATE_LIMIT_WINDOW_MS: '1000',
          RATE_LIMIT_MARGIN_MS: '1000',
        });
      } catch (e) {
        return (e as ConfigError).problems;
      }
      return [];
    })();
    expect(third).toHaveLength(3);
    expect(third.join('\n')).toMatch(/RATE_LIMIT_RPM: 2 is less than RATE_LIMIT_REPLICAS \(3\)/);
    expect(third.join('\n')).toMatch(/RATE_LIMIT_MARGIN_MS must be smaller than RATE_LIMIT_WINDOW_MS/);
    expect(third.join('\n')).toMatch(/CALLER_RATE_LIMITS: "carol" is not a key name/);
  });

  it('reads windows with units', () => {
    expect(parseWindow('500ms')).toBe(500);
    expect(parseWindow('10s')).toBe(10_000);
    expect(parseWindow('m')).toBe(60_000);
    expect(parseWindow('2h')).toBe(7_200_000);
    expect(parseWindow('10')).toBeUndefined();
    expect(parseWindow('0s')).toBeUndefined();
  });

  it('writes x-ratelimit-reset-requests as OpenAI does (Go durations)', () => {
    expect(durationText(450)).toBe('450ms');
    expect(durationText(1500)).toBe('1.5s');
    expect(durationText(60_000)).toBe('1m0s');
    expect(durationText(61_250)).toBe('1m1.25s');
  });
});
