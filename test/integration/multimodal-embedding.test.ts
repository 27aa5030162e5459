import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { fusedVector, itemVector } from '../../src/emulator/routes/multimodal-embedding.js';
import { dataUri, png, wav } from '../fixtures/media/index.js';
import { auth, KEYS, upstreamCalls, useStack } from '../helpers.js';

const PATH = '/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding';
const ONE_PEACE = 'multimodal-embedding-one-peace-v1';
const V1 = 'multimodal-embedding-v1';

const decodeBase64 = (s: string): number[] => {
  const b = Buffer.from(s, 'base64');
  return Array.from(new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4));
};

describe('multimodal embeddings through the gateway', () => {
  const s = useStack();

  const native = (payload: unknown) =>
    s.app.inject({ method: 'POST', url: PATH, headers: auth(), payload: payload as Record<string, unknown> });
  const openai = (payload: unknown) =>
    s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: auth(),
      payload: payload as Record<string, unknown>,
    });

  describe('native route', () => {
    it('ONE-PEACE: one fused, factor-weighted vector and weighted usage, passed through', async () => {
      const audio = dataUri('audio/wav', wav(1));
      const contents = [
        { text: 'a cow in a field', factor: 1 },
        { image: 'https://example.com/cow.png', factor: 2 },
        { audio, factor: 0.5 },
      ];
      const res = await native({ model: ONE_PEACE, input: { contents } });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.output.embedding).toEqual(
        fusedVector(
          ONE_PEACE,
          [
            { modality: 'text', value: 'a cow in a field', factor: 1 },
            { modality: 'image', value: 'https://example.com/cow.png', factor: 2 },
            { modality: 'audio', value: audio, factor: 0.5 },
          ],
          1536,
        ),
      );
      expect(body.usage).toEqual({
        text: { measure: 1, weight: 1 },
        image: { measure: 1, weight: 1 },
        audio: { measure: 1, weight: 1 },
        total_usage: 3,
      });
      expect(body.request_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(res.headers['x-dashscope-request-id']).toBe(body.request_id);
      const [call] = upstreamCalls(s.emu);
      expect(JSON.parse(call!.body)).toEqual({ model: ONE_PEACE, input: { contents } });
      expect(call!.headers['x-dashscope-ossresourceresolve']).toBeUndefined();
      expect(call!.headers.authorization).toBe('Bearer sk-test-upstream-key-0123456789abcdef');
      expect(call!.headers['x-request-id']).toBe(res.headers['x-request-id']);
    });

    it('multimodal-embedding-v1: one vector per item with its type, in order', async () => {
      const image = dataUri('image/png', png());
      const contents = [{ text: 'a starry night' }, { image }, { video: 'https://example.com/clip.mp4' }];
      const res = await native({ model: V1, input: { contents }, parameters: { dimension: 1024 } });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.output.embeddings.map((e: { index: number; type: string }) => [e.index, e.type])).toEqual([
        [0, 'text'],
        [1, 'image'],
        [2, 'video'],
      ]);
      expect(body.output.embeddings[0].embedding).toEqual(itemVector(V1, 'text', 'a starry night', 1024));
      expect(body.output.embeddings[1].embedding).toEqual(itemVector(V1, 'image', image, 1024));
      expect(body.output.embeddings[2].embedding).toEqual(
        itemVector(V1, 'video', 'https://example.com/clip.mp4', 1024),
      );
      expect(body.usage.image_count).toBe(1);
      const rec = s
        .logRecords()
        .filter((r) => r.msg === 'request' && r.url === PATH)
        .at(-1);
      expect(rec).toMatchObject({ model: V1, inputs: 3, status: 200, upstream_calls: 1 });
    });

    it('tongyi-embedding-vision-flash with a chosen dimension; unknown parameters are passed on', async () => {
      const parameters = { dimension: 64, fps: 0.5, some_future_knob: { on: true } };
      const res = await native({
        model: 'tongyi-embedding-vision-flash',
        input: { contents: [{ image: 'https://example.com/a.jpg' }] },
        parameters,
      });
      expect(res.statusCode).toBe(200);
      expect(res.json().output.embeddings[0].embedding).toEqual(
        itemVector('tongyi-embedding-vision-flash', 'image', 'https://example.com/a.jpg', 64),
      );
      expect(JSON.parse(upstreamCalls(s.emu)[0]!.body).parameters).toEqual(parameters);
    });

    it('qwen3-vl-embedding with enable_fusion: one fused vector', async () => {
      const contents = [{ text: 'red car' }, { image: 'https://example.com/car.png' }];
      const res = await native({
        model: 'qwen3-vl-embedding',
        input: { contents },
        parameters: { enable_fusion: true, dimension: 256 },
      });
      expect(res.statusCode).toBe(200);
      const [only, ...rest] = res.json().output.embeddings;
      expect(rest).toEqual([]);
      expect(only.embedding).toEqual(
        fusedVector(
          'qwen3-vl-embedding',
          [
            { modality: 'text', value: 'red car' },
            { modality: 'image', value: 'https://example.com/car.png' },
          ],
          256,
        ),
      );
    });

    it('oss:// values go upstream with X-DashScope-OssResourceResolve: enable', async () => {
      const res = await native({
        model: V1,
        input: { contents: [{ image: 'oss://dashscope-instant/abc/2025/cat.png' }] },
      });
      expect(res.statusCode).toBe(200);
      expect(upstreamCalls(s.emu)[0]!.headers['x-dashscope-ossresourceresolve']).toBe('enable');
    });

    it('accepts 71 characters with auto_truncation, a 15 s WAV, and an image of exactly the size limit', async () => {
      const contents = [{ text: 'x'.repeat(71) }, { audio: dataUri('audio/wav', wav(15)) }];
      const a = await native({
        model: ONE_PEACE,
        input: { contents },
        parameters: { auto_truncation: true },
      });
      expect(a.statusCode).toBe(200);
      const b = await native({ model: ONE_PEACE, input: { contents: [contents[1]] } });
      expect(b.statusCode).toBe(200);
      const c = await native({
        model: V1,
        input: { contents: [{ image: dataUri('image/png', png(3 * 1024 * 1024)) }] },
      });
      expect(c.statusCode).toBe(200);
      expect(upstreamCalls(s.emu)).toHaveLength(3);
    });

    it('a reply with the wrong number of vectors is a 502, not passed through', async () => {
      s.emu.addFault({
        path: PATH,
        status: 200,
        body: { output: { embeddings: [{ index: 0, embedding: [0.1], type: 'text' }] }, request_id: 'r' },
      });
      const res = await native({ model: V1, input: { contents: [{ text: 'a' }, { text: 'b' }] } });
      expect(res.statusCode).toBe(502);
      expect(res.json()).toMatchObject({ code: 'BadGateway' });
      expect(res.json().message).toMatch(/1 embeddings for 2 contents/);
    });

    it('upstream 400s keep their status and code', async () => {
      s.emu.addFault({
        path: PATH,
        status: 400,
        body: { code: 'InvalidURL', message: 'Invalid URL provided.' },
      });
      const res = await native({ model: V1, input: { contents: [{ image: 'https://example.com/x.png' }] } });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: 'InvalidURL', message: 'Invalid URL provided.' });
    });
  });

  describe('the emulator itself (as DashScope answers)', () => {
    const direct = async (payload: unknown, headers: Record<string, string> = {}) => {
      const res = await fetch(`${s.emu.url}${PATH}`, {
        method: 'POST',
        headers: {
          authorization: 'Bearer sk-test-upstream-key-0123456789abcdef',
          'content-type': 'application/json',
          ...headers,
        },
        body: JSON.stringify(payload),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };

    it.each([
      {
        name: 'the batch-size message',
        payload: { model: V1, input: { contents: Array.from({ length: 21 }, () => ({ text: 'a' })) } },
        code: 'InvalidParameter',
        message: 'batch size is invalid, it should not be larger than 20.: input.contents',
      },
      {
        name: 'a modality the model does not take',
        payload: { model: V1, input: { contents: [{ audio: 'https://example.com/a.wav' }] } },
        code: 'InvalidParameter',
        message: 'The input modality [audio] is not supported by model multimodal-embedding-v1.',
      },
      {
        name: 'ONE-PEACE text over 70 characters without auto_truncation',
        payload: { model: ONE_PEACE, input: { contents: [{ text: 'x'.repeat(71) }] } },
        code: 'InvalidParameter',
        message: 'Range of input length should be [1, 70]',
      },
      {
        name: 'oss:// without X-DashScope-OssResourceResolve',
        payload: { model: V1, input: { contents: [{ image: 'oss://bucket/key.png' }] } },
        code: 'InvalidURL',
        message: 'Invalid URL provided in your request.',
      },
      {
        name: 'an unknown model',
        payload: { model: 'no-such-model', input: { contents: [{ text: 'a' }] } },
        code: 'InvalidParameter',
        message: 'Model not exist.',
      },
    ])('answers $name with a DashScope 400', async ({ payload, code, message }) => {
      const res = await direct(payload);
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ code, message });
      expect(typeof res.body.request_id).toBe('string');
    });
  });

  describe('OpenAI-shaped /v1/embeddings', () => {
    it('ONE-PEACE: a string array is fused into data[0]', async () => {
      const res = await openai({ model: ONE_PEACE, input: ['hello', 'world'], encoding_format: 'float' });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body).toMatchObject({
        object: 'list',
        model: ONE_PEACE,
        usage: { prompt_tokens: 2, total_tokens: 2 },
      });
      expect(body.data).toHaveLength(1);
      expect(body.data[0]).toMatchObject({ object: 'embedding', index: 0 });
      expect(body.data[0].embedding).toEqual(
        fusedVector(
          ONE_PEACE,
          [
            { modality: 'text', value: 'hello' },
            { modality: 'text', value: 'world' },
          ],
          1536,
        ),
      );
      expect(JSON.parse(upstreamCalls(s.emu)[0]!.body)).toEqual({
        model: ONE_PEACE,
        input: { contents: [{ text: 'hello' }, { text: 'world' }] },
      });
    });

    it('multimodal-embedding-v1: strings and content objects mixed, base64, data[i] per item', async () => {
      const res = await openai({
        model: V1,
        input: ['a cat', { image: 'https://example.com/cat.png' }],
        encoding_format: 'base64',
      });
      expect(res.statusCode).toBe(200);
      const data = res.json().data;
      expect(data.map((d: { index: number }) => d.index)).toEqual([0, 1]);
      expect(decodeBase64(data[0].embedding)).toEqual(itemVector(V1, 'text', 'a cat', 1024));
      expect(decodeBase64(data[1].embedding)).toEqual(
        itemVector(V1, 'image', 'https://example.com/cat.png', 1024),
      );
    });

    it('ONE-PEACE base64', async () => {
      const res = await openai({ model: ONE_PEACE, input: 'hello', encoding_format: 'base64' });
      expect(res.statusCode).toBe(200);
      expect(decodeBase64(res.json().data[0].embedding)).toEqual(
        fusedVector(ONE_PEACE, [{ modality: 'text', value: 'hello' }], 1536),
      );
    });

    it('splits a per-item request over the row limit and keeps the order', async () => {
      const input = Array.from({ length: 25 }, (_, i) => `item ${i}`);
      const res = await openai({ model: 'tongyi-embedding-vision-plus', input, dimensions: 64 });
      expect(res.statusCode).toBe(200);
      const calls = upstreamCalls(s.emu);
      expect(calls.map((c) => JSON.parse(c.body).input.contents.length)).toEqual([20, 5]);
      expect(JSON.parse(calls[0]!.body).parameters).toEqual({ dimension: 64 });
      const data = res.json().data;
      expect(data).toHaveLength(25);
      data.forEach((d: { index: number; embedding: number[] }, i: number) => {
        expect(d.index).toBe(i);
        expect(d.embedding).toEqual(itemVector('tongyi-embedding-vision-plus', 'text', input[i]!, 64));
      });
      expect(String(res.headers['x-dashscope-request-id']).split(',')).toHaveLength(2);
    });

    it('DashScope parameters ride as top-level extension fields (enable_fusion, auto_truncation)', async () => {
      const res = await openai({
        model: 'qwen3-vl-embedding',
        input: ['red car', { image: 'https://example.com/car.png' }],
        enable_fusion: true,
        dimensions: 512,
      });
      expect(res.statusCode).toBe(200);
      expect(res.json().data).toHaveLength(1);
      expect(JSON.parse(upstreamCalls(s.emu)[0]!.body).parameters).toEqual({
        enable_fusion: true,
        dimension: 512,
      });

      const long = 'y'.repeat(71);
      const refused = await openai({ model: ONE_PEACE, input: long });
      expect(refused.statusCode).toBe(400);
      expect(refused.json().error).toMatchObject({ param: 'input', code: 'invalid_parameter' });
      expect(refused.json().error.message).toMatch(
        /71 characters.*at most 70 unless auto_truncation is true/,
      );
      const ok = await openai({ model: ONE_PEACE, input: long, auto_truncation: true });
      expect(ok.statusCode).toBe(200);
    });

    it('the openai SDK (base64 by default) gets per-item vectors', async () => {
      const url = await s.listen();
      const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEYS.alice, maxRetries: 0 });
      const out = await client.embeddings.create({ model: V1, input: ['one', 'two'] });
      expect(out.data.map((d) => d.embedding)).toEqual([
        itemVector(V1, 'text', 'one', 1024),
        itemVector(V1, 'text', 'two', 1024),
      ]);
    });
  });
});
