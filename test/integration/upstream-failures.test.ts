/**
 * Every row of the upstream-failure table, in both caller dialects. Retries are off here (UPSTREAM_RETRIES=0)
 * so each row is one upstream call; the retry behaviour has its own tests at the end.
 */
import { describe, expect, it } from 'vitest';
import type { Fault } from '../../src/emulator/server.js';
import { auth, UPSTREAM_KEY, upstreamCalls, useStack, withStack } from '../helpers.js';
import { freePort } from '../support/ports.js';

const OPENAI = {
  url: '/v1/embeddings',
  payload: { model: 'text-embedding-v4', input: ['hello'], dimensions: 64 },
};
const NATIVE = {
  url: '/api/v1/services/embeddings/text-embedding/text-embedding',
  payload: { model: 'text-embedding-v4', input: { texts: ['hello'] }, parameters: { dimension: 64 } },
};

interface Row {
  name: string;
  fault: Fault;
  status: number;
  openaiCode: string;
  dashscopeCode: string;
  message: RegExp;
  headers?: Record<string, string>;
}

const ROWS: Row[] = [
  {
    name: 'reset connection → 502',
    fault: { reset: true },
    status: 502,
    openaiCode: 'upstream_bad_response',
    dashscopeCode: 'BadGateway',
    message: /reset the connection|closed the connection/,
  },
  {
    name: 'unparseable body → 502',
    fault: { malformed: true },
    status: 502,
    openaiCode: 'upstream_bad_response',
    dashscopeCode: 'BadGateway',
    message: /unusable reply/,
  },
  {
    name: 'upstream 401 → 502 naming the gateway credentials',
    fault: { status: 401 },
    status: 502,
    openaiCode: 'upstream_auth_failed',
    dashscopeCode: 'UpstreamAuthenticationFailed',
    message: /rejected the gateway's own credentials.*not the caller's/,
    headers: { 'x-should-retry': 'false' },
  },
  {
    name: 'upstream 429 with Retry-After → 429 with the same whole seconds',
    fault: { status: 429, headers: { 'retry-after': '3' } },
    status: 429,
    openaiCode: 'rate_limit_exceeded',
    dashscopeCode: 'Throttling.RateQuota',
    message: /retry after 3 s/,
    headers: { 'retry-after': '3' },
  },
  {
    name: 'upstream 429 without Retry-After → 429 with Retry-After 1',
    fault: { status: 429 },
    status: 429,
    openaiCode: 'rate_limit_exceeded',
    dashscopeCode: 'Throttling.RateQuota',
    message: /retry after 1 s/,
    headers: { 'retry-after': '1' },
  },
  {
    name: 'other upstream 4xx → same status, upstream message kept',
    fault: {
      status: 400,
      body: {
        code: 'InvalidParameter',
        message: 'batch size is invalid, it should not be larger than 10.: input.contents',
        request_id: 'r-1',
      },
    },
    status: 400,
    openaiCode: 'InvalidParameter',
    dashscopeCode: 'InvalidParameter',
    message: /^batch size is invalid, it should not be larger than 10\.: input\.contents$/,
  },
  {
    name: 'upstream 403 → 403, upstream message kept',
    fault: { status: 403 },
    status: 403,
    openaiCode: 'AccessDenied',
    dashscopeCode: 'AccessDenied',
    message: /^Access denied\.$/,
  },
  {
    name: 'upstream 500 → 502',
    fault: { status: 500 },
    status: 502,
    openaiCode: 'upstream_bad_response',
    dashscopeCode: 'BadGateway',
    message: /DashScope failed: InternalError/,
  },
  {
    name: 'upstream 503 → 503',
    fault: { status: 503 },
    status: 503,
    openaiCode: 'upstream_unavailable',
    dashscopeCode: 'ServiceUnavailable',
    message: /DashScope is unavailable/,
  },
];

function expectNoLeak(text: string): void {
  expect(text).not.toContain(UPSTREAM_KEY);
  expect(text).not.toMatch(/\n\s+at /); // no stack trace
}

describe('upstream failure table', () => {
  const s = useStack({ env: { UPSTREAM_RETRIES: '0', UPSTREAM_HEADERS_TIMEOUT_MS: '300' } });

  describe.each([
    ['OpenAI dialect', OPENAI, 'openai' as const],
    ['DashScope dialect', NATIVE, 'dashscope' as const],
  ])('%s', (_name, route, dialect) => {
    it.each(ROWS)('$name', async (row) => {
      s.emu.addFault(row.fault);
      const res = await s.app.inject({
        method: 'POST',
        url: route.url,
        headers: auth(),
        payload: route.payload,
      });
      expect(res.statusCode).toBe(row.status);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.headers['x-request-id']).toBeTruthy();
      for (const [k, v] of Object.entries(row.headers ?? {})) expect(res.headers[k]).toBe(v);
      const body = res.json();
      if (dialect === 'openai') {
        expect(body.error.code).toBe(row.openaiCode);
        expect(body.error.message).toMatch(row.message);
        expect(typeof body.error.type).toBe('string');
      } else {
        expect(body.code).toBe(row.dashscopeCode);
        expect(body.message).toMatch(row.message);
        expect(body.request_id).toBe(res.headers['x-request-id']);
      }
      expectNoLeak(res.body);
      expect(upstreamCalls(s.emu)).toHaveLength(1);
      // When DashScope answered, its request id reaches the caller for support tickets.
      if (row.fault.status) expect(res.headers['x-dashscope-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('upstream headers timeout → 504', async () => {
      s.emu.addFault({ delayMs: 1500 });
      const res = await s.app.inject({
        method: 'POST',
        url: route.url,
        headers: auth(),
        payload: route.payload,
      });
      expect(res.statusCode).toBe(504);
      const body = res.json();
      const code = dialect === 'openai' ? body.error.code : body.code;
      expect(code).toBe(dialect === 'openai' ? 'upstream_timeout' : 'RequestTimeOut');
      expectNoLeak(res.body);
    });
  });
});

describe('upstream 429 asking for a long hold', () => {
  // Its own stack: the shared budget honours the 600 s hold, which would stall every later test in a shared one.
  it('answers Retry-After capped at 60 s, since clients ignore (LangChain: give up on) longer values', async () => {
    await withStack({ env: { UPSTREAM_RETRIES: '0' } }, async (s) => {
      s.emu.addFault({ status: 429, headers: { 'retry-after': '600' } });
      const res = await s.app.inject({
        method: 'POST',
        url: OPENAI.url,
        headers: auth(),
        payload: OPENAI.payload,
      });
      expect(res.statusCode).toBe(429);
      expect(res.headers['retry-after']).toBe('60');
      expect(res.headers['retry-after-ms']).toBe('60000');
    });
  });
});

describe('upstream refused connection → 503', () => {
  it.each([
    ['OpenAI dialect', OPENAI],
    ['DashScope dialect', NATIVE],
  ])('%s', async (_name, route) => {
    const port = await freePort(); // nothing listens there: the connection is refused
    const env = { DASHSCOPE_BASE_URL: `http://127.0.0.1:${port}`, UPSTREAM_RETRIES: '1' };
    await withStack({ env }, async (s) => {
      const res = await s.app.inject({
        method: 'POST',
        url: route.url,
        headers: auth(),
        payload: route.payload,
      });
      expect(res.statusCode).toBe(503);
      expect(res.body).toMatch(/refused the connection/);
      expectNoLeak(res.body);
    });
  });
});

describe('retries of what is safe to retry', () => {
  const s = useStack({ env: { UPSTREAM_RETRIES: '2' } });

  it('a transient 500 is retried and the caller sees 200', async () => {
    s.emu.addFault({ status: 500, times: 1 });
    const res = await s.app.inject({
      method: 'POST',
      url: OPENAI.url,
      headers: auth(),
      payload: OPENAI.payload,
    });
    expect(res.statusCode).toBe(200);
    expect(upstreamCalls(s.emu)).toHaveLength(2);
  });

  it('a reset connection is retried', async () => {
    s.emu.addFault({ reset: true, times: 1 });
    const res = await s.app.inject({
      method: 'POST',
      url: NATIVE.url,
      headers: auth(),
      payload: NATIVE.payload,
    });
    expect(res.statusCode).toBe(200);
    expect(upstreamCalls(s.emu)).toHaveLength(2);
  });

  it('retries stop after UPSTREAM_RETRIES and the last failure is reported', async () => {
    s.emu.addFault({ status: 503, times: 5 });
    const res = await s.app.inject({
      method: 'POST',
      url: OPENAI.url,
      headers: auth(),
      payload: OPENAI.payload,
    });
    expect(res.statusCode).toBe(503);
    expect(upstreamCalls(s.emu)).toHaveLength(3);
  });

  it('a 4xx is never retried', async () => {
    s.emu.addFault({ status: 400, times: 5 });
    const res = await s.app.inject({
      method: 'POST',
      url: OPENAI.url,
      headers: auth(),
      payload: OPENAI.payload,
    });
    expect(res.statusCode).toBe(400);
    expect(upstreamCalls(s.emu)).toHaveLength(1);
  });
});
