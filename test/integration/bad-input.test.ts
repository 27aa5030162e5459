/**
 * Bad input gets a 4xx in the caller's dialect naming the field and the limit, and costs no upstream call.
 */
import { describe, expect, it } from 'vitest';
import { auth, upstreamCalls, useStack, withStack } from '../helpers.js';

interface Case {
  name: string;
  payload: unknown;
  status?: number;
  param: string;
  message: RegExp;
}

const long = 'word '.repeat(9000);

const OPENAI_CASES: Case[] = [
  { name: 'missing model', payload: { input: 'x' }, param: 'model', message: /model: is required/ },
  {
    name: 'unknown model',
    payload: { model: 'gpt-4', input: 'x' },
    param: 'model',
    message:
      /model "gpt-4" is not a text-embedding or multimodal-embedding model served here; known: text-embedding-v1/,
  },
  { name: 'missing input', payload: { model: 'text-embedding-v4' }, param: 'input', message: /input: / },
  {
    name: 'empty input array',
    payload: { model: 'text-embedding-v4', input: [] },
    param: 'input',
    message: /at least one/,
  },
  {
    name: 'token array input',
    payload: { model: 'text-embedding-v4', input: [[1, 2, 3]] },
    param: 'input[0]',
    message: /token arrays are not supported/,
  },
  {
    name: 'flat token array input',
    payload: { model: 'text-embedding-v4', input: [1, 2, 3] },
    param: 'input[0]',
    message: /token arrays are not supported/,
  },
  {
    name: 'empty string',
    payload: { model: 'text-embedding-v4', input: '' },
    param: 'input',
    message: /must not be empty/,
  },
  {
    name: 'empty string in an array',
    payload: { model: 'text-embedding-v4', input: ['ok', ''] },
    param: 'input[1]',
    message: /input\[1\]: must not be empty/,
  },
  {
    name: 'unsupported dimensions',
    payload: { model: 'text-embedding-v4', input: 'x', dimensions: 65 },
    param: 'dimensions',
    message: /supports 2048, 1536, 1024, 768, 512, 256, 128, 64; got 65/,
  },
  {
    name: 'unsupported dimensions for v1',
    payload: { model: 'text-embedding-v1', input: 'x', dimensions: 1024 },
    param: 'dimensions',
    message: /text-embedding-v1 supports 1536; got 1024/,
  },
  {
    name: 'unknown encoding_format',
    payload: { model: 'text-embedding-v4', input: 'x', encoding_format: 'binary' },
    param: 'encoding_format',
    message: /encoding_format/,
  },
  {
    name: 'more than 2048 inputs',
    payload: { model: 'text-embedding-v4', input: Array.from({ length: 2049 }, () => 'x') },
    param: 'input',
    message: /has 2049 items; the gateway accepts at most 2048/,
  },
  {
    name: 'input over the token limit',
    payload: { model: 'text-embedding-v4', input: ['short', long] },
    param: 'input[1]',
    message: /input\[1\]: is 9001 tokens long; text-embedding-v4 accepts at most 8192 per input/,
  },
  {
    name: 'input over the v1 token limit',
    payload: { model: 'text-embedding-v1', input: 'word '.repeat(2100) },
    param: 'input',
    message: /2101 tokens long; text-embedding-v1 accepts at most 2048/,
  },
  { name: 'a JSON array body', payload: ['x'], param: 'body', message: /must be a JSON object/ },
];

const NATIVE_CASES: Case[] = [
  {
    name: 'missing input',
    payload: { model: 'text-embedding-v4' },
    param: 'input',
    message: /input: is required/,
  },
  {
    name: 'missing input.texts',
    payload: { model: 'text-embedding-v4', input: {} },
    param: 'input.texts',
    message: /input\.texts/,
  },
  {
    name: 'no texts',
    payload: { model: 'text-embedding-v4', input: { texts: [] } },
    param: 'input.texts',
    message: /at least one text/,
  },
  {
    name: 'a number as a text',
    payload: { model: 'text-embedding-v4', input: { texts: ['a', 7] } },
    param: 'input.texts[1]',
    message: /token arrays are not supported/,
  },
  {
    name: 'bad dimension',
    payload: { model: 'text-embedding-v3', input: { texts: ['a'] }, parameters: { dimension: 2048 } },
    param: 'parameters.dimension',
    message: /text-embedding-v3 supports 1024, 768, 512, 256, 128, 64; got 2048/,
  },
  {
    name: 'sparse output on a dense-only model',
    payload: { model: 'text-embedding-v2', input: { texts: ['a'] }, parameters: { output_type: 'sparse' } },
    param: 'parameters.output_type',
    message: /text-embedding-v2 only supports dense output/,
  },
  {
    name: 'bad text_type',
    payload: { model: 'text-embedding-v4', input: { texts: ['a'] }, parameters: { text_type: 'question' } },
    param: 'parameters.text_type',
    message: /parameters\.text_type/,
  },
  {
    name: 'a multimodal model on the text endpoint',
    payload: { model: 'multimodal-embedding-v1', input: { texts: ['a'] } },
    param: 'model',
    message: /not a text-embedding model served here/,
  },
  {
    name: 'text over the token limit',
    payload: { model: 'text-embedding-v4', input: { texts: [long] } },
    param: 'input.texts[0]',
    message: /is 9001 tokens long; text-embedding-v4 accepts at most 8192/,
  },
];

describe('bad input', () => {
  const s = useStack();

  it.each(OPENAI_CASES)('OpenAI dialect: $name → 400 naming $param', async (c) => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: auth(),
      payload: c.payload as object,
    });
    expect(res.statusCode).toBe(c.status ?? 400);
    const body = res.json();
    expect(body.error.type).toBe('invalid_request_error');
    expect(body.error.param).toBe(c.param);
    expect(body.error.message).toMatch(c.message);
    expect(upstreamCalls(s.emu)).toHaveLength(0);
  });

  it.each(NATIVE_CASES)('DashScope dialect: $name → 400 naming $param', async (c) => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/api/v1/services/embeddings/text-embedding/text-embedding',
      headers: auth(),
      payload: c.payload as object,
    });
    expect(res.statusCode).toBe(c.status ?? 400);
    const body = res.json();
    expect(body.code).toBe('InvalidParameter');
    expect(body.message).toMatch(c.message);
    expect(body.message.startsWith(c.param)).toBe(true);
    expect(body.request_id).toBe(res.headers['x-request-id']);
    expect(upstreamCalls(s.emu)).toHaveLength(0);
  });

  it.each([
    ['/v1/embeddings', 'openai'],
    ['/api/v1/services/embeddings/text-embedding/text-embedding', 'dashscope'],
  ])('%s: malformed JSON → 400 in the dialect, and the next request still works', async (url, dialect) => {
    const res = await s.app.inject({
      method: 'POST',
      url,
      headers: { ...auth(), 'content-type': 'application/json' },
      payload: '{"model": "text-embedding-v4", "input": [',
    });
    expect(res.statusCode).toBe(400);
    const body = res.json();
    if (dialect === 'openai') expect(body.error.code).toBe('invalid_json');
    else expect(body.code).toBe('InvalidParameter');
    expect(upstreamCalls(s.emu)).toHaveLength(0);
    const ok = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: auth(),
      payload: { model: 'text-embedding-v4', input: 'fine', dimensions: 64 },
    });
    expect(ok.statusCode).toBe(200);
  });

  it('an oversized body → 413 in the caller dialect, before any upstream call', async () => {
    await withStack({ env: { BODY_LIMIT_BYTES: '2048' } }, async (small) => {
      const res = await small.app.inject({
        method: 'POST',
        url: '/v1/embeddings',
        headers: auth(),
        payload: { model: 'text-embedding-v4', input: 'x'.repeat(5000) },
      });
      expect(res.statusCode).toBe(413);
      expect(res.json().error.code).toBe('request_too_large');
      expect(res.json().error.message).toMatch(/larger than 2048 bytes \(BODY_LIMIT_BYTES\)/);
      expect(upstreamCalls(small.emu)).toHaveLength(0);
    });
  });

  it('a non-JSON content type → 415 naming content-type, no upstream call', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: { ...auth(), 'content-type': 'text/plain' },
      payload: 'hello',
    });
    expect(res.statusCode).toBe(415);
    expect(res.json().error.param).toBe('content-type');
    expect(upstreamCalls(s.emu)).toHaveLength(0);
  });

  it('unknown routes get 404 in the caller dialect', async () => {
    const a = await s.app.inject({ method: 'GET', url: '/v1/nothing', headers: auth() });
    expect(a.statusCode).toBe(404);
    expect(a.json().error.code).toBe('not_found');
    const b = await s.app.inject({ method: 'GET', url: '/api/v1/nothing', headers: auth() });
    expect(b.statusCode).toBe(404);
    expect(b.json().code).toBe('NotFound');
  });
});

describe('caller authentication', () => {
  const s = useStack();

  const payload = { model: 'text-embedding-v4', input: 'x', dimensions: 64 };

  it.each([
    ['no key', {}],
    ['a wrong key', { authorization: 'Bearer not-a-real-key-000' }],
    ['the upstream key itself', { authorization: 'Bearer sk-test-upstream-key-0123456789abcdef' }],
  ])('%s → 401 in both dialects, no upstream call', async (_n, headers) => {
    const a = await s.app.inject({ method: 'POST', url: '/v1/embeddings', headers, payload });
    expect(a.statusCode).toBe(401);
    expect(a.json().error.code).toBe('invalid_api_key');
    const b = await s.app.inject({
      method: 'POST',
      url: '/api/v1/services/embeddings/text-embedding/text-embedding',
      headers,
      payload: { model: 'text-embedding-v4', input: { texts: ['x'] } },
    });
    expect(b.statusCode).toBe(401);
    expect(b.json().code).toBe('InvalidApiKey');
    expect(upstreamCalls(s.emu)).toHaveLength(0);
  });

  it('accepts x-api-key as well as Authorization: Bearer', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: { 'x-api-key': 'gw-bob-secret-key-0002' },
      payload,
    });
    expect(res.statusCode).toBe(200);
  });

  it('health checks need no key', async () => {
    expect((await s.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    const ready = await s.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json().status).toBe('ready');
  });

  it('a malformed X-Request-Id is replaced; a well-formed one is kept', async () => {
    const bad = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: { ...auth(), 'x-request-id': 'bad id with spaces<script>' },
      payload,
    });
    expect(bad.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const long = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: { ...auth(), 'x-request-id': 'a'.repeat(200) },
      payload,
    });
    expect(long.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const good = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: { ...auth(), 'x-request-id': 'lb-7f3a.9' },
      payload,
    });
    expect(good.headers['x-request-id']).toBe('lb-7f3a.9');
  });
});
