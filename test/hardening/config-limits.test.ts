/**
 * The connection, body and deadline settings (src/config.ts): defaults, bounds, and the checks that tie them
 * together so no limit can cut a request another one still allows.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { configProblems } from '../support/config.js';

const BASE = { DASHSCOPE_API_KEY: 'sk-config-test-0123456789', GATEWAY_API_KEYS: 'a:gw-config-key-0001' };

const problems = (env: Record<string, string>): string[] => configProblems({ ...BASE, ...env });

describe('connection, body and deadline settings', () => {
  it('defaults: depth 64, body 30 s, headers 10 s, idle 300 s, keep-alive 65 s, request 120 s, stream idle 60 s', () => {
    const c = loadConfig(BASE);
    expect(c.http).toEqual({
      jsonMaxDepth: 64,
      requestTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
      idleTimeoutMs: 300_000,
      keepAliveTimeoutMs: 65_000,
    });
    expect(c.upstream.requestTimeoutMs).toBe(120_000);
    expect(c.upstream.streamIdleTimeoutMs).toBe(60_000);
  });

  it.each([
    [{ JSON_MAX_DEPTH: '7' }, /JSON_MAX_DEPTH/],
    [{ JSON_MAX_DEPTH: '513' }, /JSON_MAX_DEPTH/],
    [{ REQUEST_BODY_TIMEOUT_MS: '99' }, /REQUEST_BODY_TIMEOUT_MS/],
    [
      { REQUEST_BODY_TIMEOUT_MS: '5000', REQUEST_HEADERS_TIMEOUT_MS: '6000' },
      /REQUEST_HEADERS_TIMEOUT_MS must not be larger/,
    ],
    [
      { CONNECTION_IDLE_TIMEOUT_MS: '65000' },
      /CONNECTION_IDLE_TIMEOUT_MS must be 0 \(off\) or longer than the keep-alive/,
    ],
    [{ CONNECTION_IDLE_TIMEOUT_MS: '100000' }, /longer than REQUEST_TIMEOUT_MS and STREAM_IDLE_TIMEOUT_MS/],
    [{ REQUEST_TIMEOUT_MS: '30000' }, /REQUEST_TIMEOUT_MS must be longer than RATE_LIMIT_MAX_WAIT_MS/],
    [{ REQUEST_TIMEOUT_MS: '999' }, /REQUEST_TIMEOUT_MS/],
    [{ STREAM_IDLE_TIMEOUT_MS: '600001' }, /STREAM_IDLE_TIMEOUT_MS/],
  ])('%o is refused', (env, message) => {
    expect(problems(env).join('\n')).toMatch(message);
  });

  it('CONNECTION_IDLE_TIMEOUT_MS=0 turns the idle timeout off', () => {
    expect(loadConfig({ ...BASE, CONNECTION_IDLE_TIMEOUT_MS: '0' }).http.idleTimeoutMs).toBe(0);
  });
});
