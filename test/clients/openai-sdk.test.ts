/**
 * The official `openai` Node SDK (6.49.0, what Node 20 installs) against the gateway over a real port.
 * The SDK asks for `encoding_format: "base64"` on its own and decodes whatever comes back as base64 with no
 * type check, so these tests are what proves the gateway encodes float32 itself rather than passing floats on.
 */
import OpenAI, { AuthenticationError, BadRequestError } from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { vectorFor } from '../../src/emulator/vectors.js';
import { KEYS, upstreamCalls, useStack } from '../helpers.js';

describe('openai SDK → /v1/embeddings', () => {
  const s = useStack();
  let client: OpenAI;
  let base: string;

  beforeAll(async () => {
    base = await s.listen();
    client = new OpenAI({ apiKey: KEYS.alice, baseURL: `${base}/v1` });
  });

  it('default call (SDK asks for base64) decodes to the emulator vectors with the asked dimension', async () => {
    const input = ['the quick brown fox', 'jumps over', '懒狗'];
    const res = await client.embeddings.create({ model: 'text-embedding-v4', input, dimensions: 256 });
    expect(res.data).toHaveLength(3);
    res.data.forEach((d, i) => {
      expect(d.index).toBe(i);
      expect(d.embedding).toHaveLength(256);
      expect(d.embedding).toEqual(vectorFor(input[i]!, 256, 'text-embedding-v4'));
    });
    expect(res.usage.prompt_tokens).toBeGreaterThan(0);
    // The SDK really did ask for base64, and the gateway did not forward that upstream.
    const sent = JSON.parse(upstreamCalls(s.emu)[0]!.body) as Record<string, unknown>;
    expect(sent).toEqual({
      model: 'text-embedding-v4',
      input: { texts: input },
      parameters: { dimension: 256 },
    });
  });

  it('default call without dimensions gives the model default of 1024 values, exactly', async () => {
    const res = await client.embeddings.create({ model: 'text-embedding-v4', input: 'hello world' });
    expect(res.data[0]!.embedding).toHaveLength(1024);
    expect(res.data[0]!.embedding).toEqual(vectorFor('hello world', 1024, 'text-embedding-v4'));
  });

  it("explicit encoding_format 'float' gives the same vectors as number arrays", async () => {
    const input = ['alpha', 'beta'];
    const res = await client.embeddings.create({
      model: 'text-embedding-v4',
      input,
      dimensions: 256,
      encoding_format: 'float',
    });
    expect(res.data.map((d) => d.embedding)).toEqual(
      input.map((t) => vectorFor(t, 256, 'text-embedding-v4')),
    );
  });

  it('exposes the gateway x-request-id as res._request_id, and carries a caller-sent id end to end', async () => {
    // Watch the raw response through the SDK's fetch hook, then compare with what the SDK exposes.
    const seen: string[] = [];
    const watching = new OpenAI({
      apiKey: KEYS.alice,
      baseURL: `${base}/v1`,
      fetch: async (url, init) => {
        const r = await fetch(url, init);
        seen.push(r.headers.get('x-request-id') ?? '');
        return r;
      },
    });
    const res = await watching.embeddings.create({
      model: 'text-embedding-v4',
      input: 'rid',
      dimensions: 64,
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]).not.toBe('');
    expect(res._request_id).toBe(seen[0]);

    const mine = await client.embeddings.create(
      { model: 'text-embedding-v4', input: 'rid', dimensions: 64 },
      { headers: { 'x-request-id': 'client-chosen-id-7' } },
    );
    expect(mine._request_id).toBe('client-chosen-id-7');
    expect(upstreamCalls(s.emu).at(-1)!.headers['x-request-id']).toBe('client-chosen-id-7');
  });

  it('an empty string input is a BadRequestError 400 naming the field, and nothing goes upstream', async () => {
    const err = await client.embeddings.create({ model: 'text-embedding-v4', input: '' }).catch((e) => e);
    expect(err).toBeInstanceOf(BadRequestError);
    const e = err as BadRequestError;
    expect(e.status).toBe(400);
    expect(e.message).toBe('400 input: must not be empty');
    expect(e.param).toBe('input');
    expect(e.requestID).toBe(e.headers.get('x-request-id'));
    expect(upstreamCalls(s.emu)).toEqual([]);
  });

  it('an empty item inside an array names its index', async () => {
    const err = await client.embeddings
      .create({ model: 'text-embedding-v4', input: ['fine', ''] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).message).toContain('input[1]');
    expect(upstreamCalls(s.emu)).toEqual([]);
  });

  it('a wrong gateway key is an AuthenticationError 401 (not retried)', async () => {
    const bad = new OpenAI({ apiKey: 'gw-not-a-real-key', baseURL: `${base}/v1` });
    const err = await bad.embeddings.create({ model: 'text-embedding-v4', input: 'x' }).catch((e) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect((err as AuthenticationError).status).toBe(401);
    expect(upstreamCalls(s.emu)).toEqual([]);
  });

  it('upstream 429 with retry-after: 1 → gateway 429 with Retry-After → the SDK waits, retries and succeeds', async () => {
    s.emu.addFault({ status: 429, headers: { 'retry-after': '1' }, times: 1 });
    const logStart = s.logs.length;
    const started = Date.now();
    const res = await client.embeddings.create({
      model: 'text-embedding-v4',
      input: 'retry me',
      dimensions: 64,
    });
    const elapsed = Date.now() - started;
    expect(res.data[0]!.embedding).toEqual(vectorFor('retry me', 64, 'text-embedding-v4'));
    expect(upstreamCalls(s.emu)).toHaveLength(2);
    // The SDK honoured the gateway's Retry-After (1 s) rather than its 0.5 s default backoff.
    expect(elapsed).toBeGreaterThanOrEqual(900);
    const statuses = s
      .logRecords()
      .slice(logStart)
      .filter((r) => r.msg === 'request')
      .map((r) => r.status);
    expect(statuses).toEqual([429, 200]);
  });
});
