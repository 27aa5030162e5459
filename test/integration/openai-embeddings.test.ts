import { describe, expect, it } from 'vitest';
import { vectorFor } from '../../src/emulator/vectors.js';
import { auth, upstreamCalls, useStack, withStack } from '../helpers.js';

const decodeBase64 = (s: string): number[] => {
  const b = Buffer.from(s, 'base64');
  return Array.from(new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4));
};

describe('POST /v1/embeddings', () => {
  const s = useStack();

  it('answers in OpenAI shape with the emulator vectors, in input order', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: auth(),
      payload: {
        model: 'text-embedding-v4',
        input: ['alpha', 'beta'],
        dimensions: 64,
        encoding_format: 'float',
      },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const body = res.json();
    expect(body.object).toBe('list');
    expect(body.model).toBe('text-embedding-v4');
    expect(body.data.map((d: { index: number }) => d.index)).toEqual([0, 1]);
    expect(body.data[0].object).toBe('embedding');
    expect(body.data[0].embedding).toEqual(vectorFor('alpha', 64, 'text-embedding-v4'));
    expect(body.data[1].embedding).toEqual(vectorFor('beta', 64, 'text-embedding-v4'));
    expect(body.usage.prompt_tokens).toBeGreaterThan(0);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens);
  });

  it('encodes base64 as little-endian float32 itself and asks DashScope for plain vectors', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: auth(),
      payload: { model: 'text-embedding-v3', input: 'gamma', encoding_format: 'base64' },
    });
    expect(res.statusCode).toBe(200);
    const emb = res.json().data[0].embedding;
    expect(typeof emb).toBe('string');
    expect(decodeBase64(emb)).toEqual(vectorFor('gamma', 1024, 'text-embedding-v3'));
    const sent = JSON.parse(upstreamCalls(s.emu)[0]!.body);
    expect(sent).toEqual({
      model: 'text-embedding-v3',
      input: { texts: ['gamma'] },
      parameters: { dimension: 1024 },
    });
  });

  it('splits 25 inputs into calls of at most 10 for v4, merges in order and sums usage', async () => {
    const input = Array.from({ length: 25 }, (_, i) => `text number ${i}`);
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: auth(),
      payload: { model: 'text-embedding-v4', input, dimensions: 64, encoding_format: 'float' },
    });
    expect(res.statusCode).toBe(200);
    const calls = upstreamCalls(s.emu);
    expect(calls.map((c) => JSON.parse(c.body).input.texts.length)).toEqual([10, 10, 5]);
    const body = res.json();
    expect(body.data).toHaveLength(25);
    body.data.forEach((d: { index: number; embedding: number[] }, i: number) => {
      expect(d.index).toBe(i);
      expect(d.embedding).toEqual(vectorFor(input[i]!, 64, 'text-embedding-v4'));
    });
    const ids = String(res.headers['x-dashscope-request-id']).split(',');
    expect(ids).toHaveLength(3);
  });

  it('answers at /compatible-mode/v1/embeddings too', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/compatible-mode/v1/embeddings',
      headers: auth(),
      payload: { model: 'text-embedding-v1', input: 'delta' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().data[0].embedding).toHaveLength(1536);
  });

  it('injects the upstream key and workspace and never forwards the caller key', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: { ...auth(), 'x-request-id': 'lb-req-42' },
      payload: { model: 'text-embedding-v4', input: 'epsilon', dimensions: 64 },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-request-id']).toBe('lb-req-42');
    const [call] = upstreamCalls(s.emu);
    expect(call!.headers.authorization).toBe('Bearer sk-test-upstream-key-0123456789abcdef');
    expect(call!.headers['x-dashscope-workspace']).toBe('llm-test-workspace');
    expect(call!.headers['x-request-id']).toBe('lb-req-42');
    expect(JSON.stringify(call!.headers)).not.toContain('gw-alice-secret-key-0001');
    expect(res.headers['x-dashscope-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('keeps a path prefix of DASHSCOPE_BASE_URL (egress proxies mounted under a path)', async () => {
    // A second gateway whose base URL points at this suite's emulator under a path prefix.
    const env = { DASHSCOPE_BASE_URL: `${s.emu.url}/egress/dashscope/`, UPSTREAM_RETRIES: '0' };
    await withStack({ env }, async (prefixed) => {
      await prefixed.app.inject({
        method: 'POST',
        url: '/v1/embeddings',
        headers: auth(),
        payload: { model: 'text-embedding-v4', input: 'x', dimensions: 64 },
      });
      expect(s.emu.received.map((r) => r.url)).toEqual([
        '/egress/dashscope/api/v1/services/embeddings/text-embedding/text-embedding',
      ]);
    });
  });
});
