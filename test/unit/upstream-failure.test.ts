/**
 * The upstream failure table (src/upstream/errors.ts): what a caller sees for each non-2xx DashScope reply, how
 * both error body shapes are read, Retry-After in both forms, and that the gateway's own key never leaks
 * through an echoed message or code.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { renderError } from '../../src/errors.js';
import { parseRetryAfter, readUpstreamError, upstreamFailure } from '../../src/upstream/errors.js';

const SECRET = 'sk-gateway-0123456789abcdef';

function reply(status: number, body: unknown, headers: IncomingHttpHeaders = {}, requestId?: string) {
  return {
    status,
    headers,
    body: Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
    requestId,
  };
}

const native = (code: string, message: string) => ({ code, message, request_id: 'up-1' });
const compat = (code: string | null, message: string) => ({
  error: { code, message, type: 'invalid_request_error' },
});

describe('readUpstreamError', () => {
  it.each([
    ['native', native('InvalidParameter', 'bad dimension'), 'InvalidParameter', 'bad dimension'],
    ['native with msg', { code: 'Throttling', msg: 'too fast' }, 'Throttling', 'too fast'],
    ['native message wins over msg', { code: 'X', message: 'm1', msg: 'm2' }, 'X', 'm1'],
    [
      'compatible mode',
      compat('invalid_value', 'dimensions must be 1024'),
      'invalid_value',
      'dimensions must be 1024',
    ],
    ['compatible mode, null code', compat(null, 'oops'), undefined, 'oops'],
    ['empty object', {}, undefined, undefined],
    ['wrong types', { code: 5, message: ['x'] }, undefined, undefined],
    ['an array', [1, 2], undefined, undefined],
    ['not JSON', '<html>502 Bad Gateway</html>', undefined, undefined],
    ['empty body', '', undefined, undefined],
  ])('%s', (_name, body, code, message) => {
    const buf = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    expect(readUpstreamError(buf)).toEqual({ code, message });
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it.each([
    [undefined, undefined],
    ['', undefined],
    ['7', 7],
    [' 7 ', 7],
    ['0', 0],
    ['1.5', 1.5],
    [['3', '9'], 3],
    ['Thu, 01 Jan 2026 00:00:30 GMT', 30],
    ['Wed, 31 Dec 2025 23:59:00 GMT', 0],
    ['soon', undefined],
  ] as const)('%j → %s', (value, want) => {
    expect(parseRetryAfter(value as string | string[] | undefined, now)).toBe(want);
  });
});

describe('upstreamFailure', () => {
  it('401: a 502 UPSTREAM_AUTH with noRetry that blames the configuration, not the caller', () => {
    const err = upstreamFailure(
      reply(401, native('InvalidApiKey', 'Invalid API-key provided.'), {}, 'up-9'),
      SECRET,
    );
    expect(err.kind).toBe('UPSTREAM_AUTH');
    expect(err.statusCode).toBe(502);
    expect(err.noRetry).toBe(true);
    expect(err.message).toContain('InvalidApiKey');
    expect(err.message).toContain('DASHSCOPE_API_KEY');
    expect(err.message).toContain('DashScope request_id up-9');
    const r = renderError(err, 'openai', 'r');
    expect(r.status).toBe(502);
    expect(r.headers['x-should-retry']).toBe('false');
    // Without a code the status is named.
    expect(upstreamFailure(reply(401, 'nope'), SECRET).message).toContain('(401)');
  });

  it('403 InvalidApiKey is the same auth failure; another 403 is passed through as a rejection', () => {
    const auth = upstreamFailure(reply(403, native('InvalidApiKey', 'workspace mismatch')), SECRET);
    expect(auth.kind).toBe('UPSTREAM_AUTH');
    expect(auth.statusCode).toBe(502);
    expect(auth.noRetry).toBe(true);
    const denied = upstreamFailure(reply(403, native('AccessDenied', 'model not enabled')), SECRET);
    expect(denied.kind).toBe('UPSTREAM_REJECTED');
    expect(denied.statusCode).toBe(403);
    expect(denied.code).toBe('AccessDenied');
    expect(denied.message).toBe('model not enabled');
  });

  it('429 with a delta Retry-After: RATE_LIMITED with that delay; the message never says "quota"', () => {
    const err = upstreamFailure(
      reply(429, native('Throttling.RateQuota', 'Requests rate limit exceeded, please try again later.'), {
        'retry-after': '7',
      }),
      SECRET,
    );
    expect(err.kind).toBe('RATE_LIMITED');
    expect(err.statusCode).toBe(429);
    expect(err.retryAfterSec).toBe(7);
    expect(err.code).toBe('Throttling.RateQuota');
    expect(err.message).toMatch(/retry after 7 s/);
    expect(err.message.toLowerCase()).not.toContain('quota');
    expect(renderError(err, 'openai', 'r').headers['retry-after']).toBe('7');
  });

  it('429 with an HTTP-date Retry-After, and without one (1 s, code Throttling)', () => {
    const at = new Date(Date.now() + 20_000).toUTCString();
    const dated = upstreamFailure(
      reply(429, native('Throttling.AllocationQuota', 'Quota exceeded'), { 'retry-after': at }),
      SECRET,
    );
    expect(dated.retryAfterSec).toBeGreaterThan(17);
    expect(dated.retryAfterSec).toBeLessThanOrEqual(20);
    expect(dated.message.toLowerCase()).not.toContain('quota');
    const none = upstreamFailure(reply(429, 'busy'), SECRET);
    expect(none.retryAfterSec).toBe(1);
    expect(none.code).toBe('Throttling');
    expect(none.message).toMatch(/retry after 1 s/);
    const compatQuota = upstreamFailure(
      reply(429, compat('insufficient_quota', 'You exceeded your current quota')),
      SECRET,
    );
    expect(compatQuota.message.toLowerCase()).not.toContain('quota');
    // A sub-second hold still says at least 1 s.
    expect(upstreamFailure(reply(429, '', { 'retry-after': '0' }), SECRET).message).toMatch(
      /retry after 1 s/,
    );
  });

  it.each([400, 404, 413, 422])(
    '%i keeps status, code and message (native and compatible bodies)',
    (status) => {
      const a = upstreamFailure(reply(status, native('InvalidParameter', 'text too long')), SECRET);
      expect([a.kind, a.statusCode, a.code, a.message]).toEqual([
        'UPSTREAM_REJECTED',
        status,
        'InvalidParameter',
        'text too long',
      ]);
      const b = upstreamFailure(reply(status, compat('invalid_value', 'bad dimensions')), SECRET);
      expect([b.kind, b.statusCode, b.code, b.message]).toEqual([
        'UPSTREAM_REJECTED',
        status,
        'invalid_value',
        'bad dimensions',
      ]);
      const c = upstreamFailure(reply(status, '<html>no</html>'), SECRET);
      expect([c.kind, c.statusCode, c.code, c.message]).toEqual([
        'UPSTREAM_REJECTED',
        status,
        undefined,
        `DashScope rejected the request (HTTP ${status})`,
      ]);
    },
  );

  it.each([
    [500, 'UPSTREAM_BAD_RESPONSE', 502, 'DashScope failed'],
    [502, 'UPSTREAM_BAD_RESPONSE', 502, 'DashScope failed'],
    [501, 'UPSTREAM_BAD_RESPONSE', 502, 'DashScope failed'],
    [503, 'UPSTREAM_UNAVAILABLE', 503, 'DashScope is unavailable'],
    [504, 'UPSTREAM_TIMEOUT', 504, 'DashScope timed out'],
  ])('%i → %s (%i)', (status, kind, caller, prefix) => {
    const withBody = upstreamFailure(reply(status, native('InternalError', 'boom'), {}, 'up-5'), SECRET);
    expect(withBody.kind).toBe(kind);
    expect(withBody.statusCode).toBe(caller);
    expect(withBody.message).toBe(`${prefix}: InternalError: boom (DashScope request_id up-5)`);
    const bare = upstreamFailure(reply(status, 'gateway timeout'), SECRET);
    expect(bare.message).toBe(`${prefix}: HTTP ${status}`);
    expect(bare.noRetry).toBe(false);
  });

  it('scrubs the gateway key from echoed messages and codes, and bounds their length', () => {
    const leaky = `Invalid key ${SECRET} for workspace; key=${SECRET}`;
    for (const status of [400, 404, 500, 503, 504]) {
      for (const body of [native(`Bad.${SECRET}`, leaky), compat(`c-${SECRET}`, leaky)]) {
        const err = upstreamFailure(reply(status, body), SECRET);
        expect(err.message).not.toContain(SECRET);
        expect(err.message).toContain('[redacted]');
        expect(err.code ?? '').not.toContain(SECRET);
        for (const dialect of ['openai', 'dashscope'] as const) {
          expect(JSON.stringify(renderError(err, dialect, 'r').body)).not.toContain(SECRET);
        }
      }
    }
    const long = upstreamFailure(reply(400, native('X'.repeat(500), 'y'.repeat(5000))), SECRET);
    expect(long.message).toHaveLength(1000);
    expect(long.code).toHaveLength(100);
    // An empty secret scrubs nothing (and does not split every character).
    expect(upstreamFailure(reply(400, native('C', 'plain text')), '').message).toBe('plain text');
  });
});
