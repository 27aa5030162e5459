/**
 * renderError is the single place a GatewayError becomes status, headers and body, in the OpenAI dialect
 * ({error:{message,type,code,param}}) or DashScope's ({code,message,request_id}). These pin the contract the
 * SDKs depend on: the status, the body shape, `param`, Retry-After in whole seconds 1..60 with retry-after-ms
 * alongside, x-should-retry on unhealable 5xx, and the upstream code kept on UPSTREAM_REJECTED.
 */
import { describe, expect, it } from 'vitest';
import {
  dialectFor,
  ERRORS,
  type ErrorKind,
  GatewayError,
  invalidInput,
  renderError,
} from '../../src/errors.js';

describe('renderError', () => {
  it('renders every catalogue row in both dialects with the row status and names', () => {
    for (const kind of Object.keys(ERRORS) as ErrorKind[]) {
      const row = ERRORS[kind];
      const err = new GatewayError(kind, `message for ${kind}`);
      const oa = renderError(err, 'openai', 'req-1');
      expect(oa).toEqual({
        status: row.status,
        headers: {},
        body: {
          error: { message: `message for ${kind}`, type: row.openaiType, code: row.openaiCode, param: null },
        },
      });
      const ds = renderError(err, 'dashscope', 'req-1');
      expect(ds).toEqual({
        status: row.status,
        headers: {},
        body: { code: row.dashscope, message: `message for ${kind}`, request_id: 'req-1' },
      });
      // The bodies are plain JSON: nothing lost in serialisation.
      expect(JSON.parse(JSON.stringify(oa.body))).toEqual(oa.body);
    }
  });

  it('names the field at fault in `param` (OpenAI) and in the message (both)', () => {
    const err = invalidInput('input[3]', 'must be a non-empty string');
    expect(err.statusCode).toBe(400);
    const oa = renderError(err, 'openai', 'r');
    expect(oa.status).toBe(400);
    expect(oa.body).toEqual({
      error: {
        message: 'input[3]: must be a non-empty string',
        type: 'invalid_request_error',
        code: 'invalid_parameter',
        param: 'input[3]',
      },
    });
    const ds = renderError(err, 'dashscope', 'r');
    expect(ds.body).toEqual({
      code: 'InvalidParameter',
      message: 'input[3]: must be a non-empty string',
      request_id: 'r',
    });
    expect(ds.body).not.toHaveProperty('param');
  });

  it.each([
    [0, '1', '1'],
    [0.0001, '1', '1'],
    [0.2, '1', '200'],
    [1, '1', '1000'],
    [1.5, '2', '1500'],
    [59.2, '60', '59200'],
    [60, '60', '60000'],
    [61, '60', '60000'],
    [3600, '60', '60000'],
  ])('retryAfterSec %s → retry-after %s, retry-after-ms %s (clamped to 1..60 s)', (sec, header, ms) => {
    const err = new GatewayError('RATE_LIMITED', 'slow down', { retryAfterSec: sec });
    for (const dialect of ['openai', 'dashscope'] as const) {
      const r = renderError(err, dialect, 'r');
      expect(r.status).toBe(429);
      expect(r.headers).toEqual({ 'retry-after': header, 'retry-after-ms': ms });
    }
  });

  it('sends no retry headers without retryAfterSec, and x-should-retry: false only with noRetry', () => {
    expect(renderError(new GatewayError('UPSTREAM_UNAVAILABLE', 'x'), 'openai', 'r').headers).toEqual({});
    const auth = new GatewayError('UPSTREAM_AUTH', 'bad key', { noRetry: true });
    for (const dialect of ['openai', 'dashscope'] as const) {
      const r = renderError(auth, dialect, 'r');
      expect(r.status).toBe(502);
      expect(r.headers).toEqual({ 'x-should-retry': 'false' });
    }
    const both = new GatewayError('UPSTREAM_UNAVAILABLE', 'x', { retryAfterSec: 5, noRetry: true });
    expect(renderError(both, 'openai', 'r').headers).toEqual({
      'retry-after': '5',
      'retry-after-ms': '5000',
      'x-should-retry': 'false',
    });
  });

  it('keeps an upstream 4xx status and code: UPSTREAM_REJECTED passes the code through in both dialects', () => {
    const err = new GatewayError('UPSTREAM_REJECTED', 'Range of input length should be [1, 8192]', {
      status: 413,
      code: 'InvalidParameter.DataInspection',
    });
    const oa = renderError(err, 'openai', 'r');
    expect(oa.status).toBe(413);
    expect(oa.body).toEqual({
      error: {
        message: 'Range of input length should be [1, 8192]',
        type: 'invalid_request_error',
        code: 'InvalidParameter.DataInspection',
        param: null,
      },
    });
    const ds = renderError(err, 'dashscope', 'rid');
    expect(ds.status).toBe(413);
    expect(ds.body).toEqual({
      code: 'InvalidParameter.DataInspection',
      message: 'Range of input length should be [1, 8192]',
      request_id: 'rid',
    });
    // Without an upstream code the row's names are used.
    const bare = new GatewayError('UPSTREAM_REJECTED', 'no', { status: 404 });
    expect(renderError(bare, 'openai', 'r').body).toMatchObject({ error: { code: 'upstream_rejected' } });
    expect(renderError(bare, 'dashscope', 'r').body).toMatchObject({ code: 'InvalidParameter' });
  });

  it('uses an overriding code only for UPSTREAM_REJECTED in the OpenAI dialect, but always in DashScope', () => {
    // 429s carry the upstream code (e.g. Throttling.RateQuota) for native callers; OpenAI callers get the
    // stable rate_limit_exceeded that the SDKs key on.
    const err = new GatewayError('RATE_LIMITED', 'slow down', {
      retryAfterSec: 2,
      code: 'Throttling.RateQuota',
    });
    expect(renderError(err, 'openai', 'r').body).toMatchObject({
      error: { type: 'rate_limit_error', code: 'rate_limit_exceeded' },
    });
    expect(renderError(err, 'dashscope', 'r').body).toMatchObject({ code: 'Throttling.RateQuota' });
  });
});

describe('dialectFor', () => {
  it.each([
    ['/v1/embeddings', 'openai'],
    ['/v1/models?x=1', 'openai'],
    ['/compatible-mode/v1/embeddings', 'openai'],
    ['/api/v1/services/embeddings/text-embedding/text-embedding', 'dashscope'],
    ['/api/v1/tasks/abc', 'dashscope'],
    ['/v1', 'dashscope'],
    ['/v10/embeddings', 'dashscope'],
    ['/health', 'dashscope'],
    ['/', 'dashscope'],
  ])('%s → %s', (url, dialect) => {
    expect(dialectFor(url)).toBe(dialect);
  });
});
