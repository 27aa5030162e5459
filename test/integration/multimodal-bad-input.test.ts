/**
 * Bad multimodal input: each case is a 400 (413 for the body) in the caller's dialect naming the field, the rule and
 * the limit, costs no upstream call, and leaves the gateway serving the next request.
 */
import { describe, expect, it } from 'vitest';
import { dataUri, MB, mp4, png, wav } from '../fixtures/media/index.js';
import { auth, upstreamCalls, useStack } from '../helpers.js';

const PATH = '/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding';
const ONE_PEACE = 'multimodal-embedding-one-peace-v1';
const V1 = 'multimodal-embedding-v1';

interface Case {
  name: string;
  /** A JSON body, or raw text for what JSON cannot carry. */
  body: Record<string, unknown> | string;
  param: string;
  message: RegExp;
}

const one = (model: string, item: unknown, parameters?: Record<string, unknown>) => ({
  model,
  input: { contents: [item] },
  ...(parameters ? { parameters } : {}),
});

const NATIVE_CASES: Case[] = [
  {
    name: 'an item with no modality',
    body: one(V1, { factor: 1 }),
    param: 'input.contents[0]',
    message: /has no content: give exactly one of text, image, video/,
  },
  {
    name: 'an item with two modalities',
    body: one(V1, { text: 'a', image: 'https://example.com/a.png' }),
    param: 'input.contents[0]',
    message: /has text and image; an item carries exactly one modality/,
  },
  {
    name: 'a modality the model does not take (audio for multimodal-embedding-v1)',
    body: one(V1, { audio: 'https://example.com/a.wav' }),
    param: 'input.contents[0].audio',
    message: /multimodal-embedding-v1 does not take audio; it takes text, image, video/,
  },
  {
    name: 'factor 0',
    body: one(ONE_PEACE, { text: 'a', factor: 0 }),
    param: 'input.contents[0].factor',
    message: /must be a finite number greater than 0.*got 0/,
  },
  {
    name: 'factor -1',
    body: one(ONE_PEACE, { text: 'a', factor: -1 }),
    param: 'input.contents[0].factor',
    message: /greater than 0.*got -1/,
  },
  {
    name: 'factor "NaN" (a string: JSON has no NaN)',
    body: one(ONE_PEACE, { text: 'a', factor: 'NaN' }),
    param: 'input.contents[0].factor',
    message: /finite number.*got the string "NaN"/,
  },
  {
    name: 'factor 1e999 (JSON.parse makes it Infinity)',
    body: `{"model":"${ONE_PEACE}","input":{"contents":[{"text":"a","factor":1e999}]}}`,
    param: 'input.contents[0].factor',
    message: /finite number.*got Infinity/,
  },
  {
    name: 'factor NaN as a bare literal (not JSON)',
    body: `{"model":"${ONE_PEACE}","input":{"contents":[{"text":"a","factor":NaN}]}}`,
    param: 'body',
    message: /not valid JSON/,
  },
  {
    name: 'factor "1" (a string)',
    body: one(ONE_PEACE, { text: 'a', factor: '1' }),
    param: 'input.contents[0].factor',
    message: /finite number.*got the string "1"/,
  },
  {
    name: 'ONE-PEACE text of 71 characters without auto_truncation',
    body: one(ONE_PEACE, { text: 'x'.repeat(71) }),
    param: 'input.contents[0].text',
    message:
      /is 71 characters; multimodal-embedding-one-peace-v1 accepts at most 70 unless parameters\.auto_truncation is true/,
  },
  {
    name: 'inline audio of 16 s (ONE-PEACE, no auto_truncation)',
    body: one(ONE_PEACE, { audio: dataUri('audio/wav', wav(16)) }),
    param: 'input.contents[0].audio',
    message: /inline audio is 16 s long; .* at most 15 s unless parameters\.auto_truncation is true/,
  },
  {
    name: 'an image one byte over the size limit',
    body: one(V1, { image: dataUri('image/png', png(3 * MB + 1)) }),
    param: 'input.contents[0].image',
    message: /3145729 bytes decoded; multimodal-embedding-v1 accepts at most 3145728 bytes \(3 MB\)/,
  },
  {
    name: 'bytes that are not an image at all (declared image/png)',
    body: one(V1, { image: dataUri('image/png', Buffer.from('just some text, not a picture')) }),
    param: 'input.contents[0].image',
    message: /not a recognisable image \(declared image\/png\).*jpg\/jpeg, png, bmp/,
  },
  {
    name: 'audio bytes declared as an image',
    body: one(V1, { image: dataUri('image/png', wav(0.1)) }),
    param: 'input.contents[0].image',
    message: /is wav \(audio\/wav, from its bytes\) \(declared image\/png\)/,
  },
  {
    name: 'a video sent as a data URI (URL only for multimodal-embedding-v1)',
    body: one(V1, { video: dataUri('video/mp4', mp4()) }),
    param: 'input.contents[0].video',
    message: /takes video as a URL only/,
  },
  {
    name: 'file:///etc/passwd',
    body: one(V1, { image: 'file:///etc/passwd' }),
    param: 'input.contents[0].image',
    message: /file:\/\/ URIs are refused.*Send an http\(s\) URL or a base64 data URI/,
  },
  {
    name: 'a bare path /etc/passwd',
    body: one(V1, { image: '/etc/passwd' }),
    param: 'input.contents[0].image',
    message: /must be an http\(s\) URL, an oss:\/\/ URL or a base64 data URI; local paths are refused/,
  },
  {
    name: 'more items than the model takes per call',
    body: { model: V1, input: { contents: Array.from({ length: 21 }, (_, i) => ({ text: `t${i}` })) } },
    param: 'input.contents',
    message: /has 21 items; multimodal-embedding-v1 takes at most 20 per call/,
  },
  {
    name: 'an empty contents list',
    body: { model: V1, input: { contents: [] } },
    param: 'input.contents',
    message: /at least one item/,
  },
  {
    name: 'an item that is a string',
    body: { model: V1, input: { contents: ['a cat'] } },
    param: 'input.contents[0]',
    message: /must be an object with one of text, image, audio, video/,
  },
  {
    name: 'an empty text',
    body: one(V1, { text: '' }),
    param: 'input.contents[0].text',
    message: /must not be empty/,
  },
  {
    name: 'a dimension the model does not have',
    body: one(ONE_PEACE, { text: 'a' }, { dimension: 1024 }),
    param: 'parameters.dimension',
    message: /supports 1536; got 1024/,
  },
  {
    name: 'fps outside [0, 1]',
    body: one(V1, { video: 'https://example.com/v.mp4' }, { fps: 2 }),
    param: 'parameters.fps',
    message: /between 0 and 1/,
  },
  {
    name: 'auto_truncation that is not a boolean',
    body: one(ONE_PEACE, { text: 'a' }, { auto_truncation: 'yes' }),
    param: 'parameters.auto_truncation',
    message: /true or false/,
  },
  {
    name: 'enable_fusion on a model that does not fuse',
    body: one(V1, { text: 'a' }, { enable_fusion: true }),
    param: 'parameters.enable_fusion',
    message: /multimodal-embedding-v1 does not fuse contents/,
  },
  {
    name: 'a text-embedding model on the multimodal route',
    body: one('text-embedding-v4', { text: 'a' }),
    param: 'model',
    message: /not a multimodal-embedding model served here; known: multimodal-embedding-one-peace-v1/,
  },
];

describe('multimodal bad input', () => {
  const s = useStack();

  const nextRequestWorks = async (): Promise<void> => {
    const ok = await s.app.inject({
      method: 'POST',
      url: PATH,
      headers: auth(),
      payload: one(V1, { text: 'still here' }),
    });
    expect(ok.statusCode).toBe(200);
    expect(upstreamCalls(s.emu)).toHaveLength(1);
  };

  it.each(NATIVE_CASES)('native: $name', async ({ body, param, message }) => {
    const res = await s.app.inject({
      method: 'POST',
      url: PATH,
      headers: { ...auth(), 'content-type': 'application/json' },
      payload: typeof body === 'string' ? body : JSON.stringify(body),
    });
    expect(res.statusCode).toBe(400);
    const json = res.json();
    expect(Object.keys(json).sort()).toEqual(['code', 'message', 'request_id']);
    expect(json.code).toBe('InvalidParameter');
    expect(json.request_id).toBe(res.headers['x-request-id']);
    expect(json.message).toContain(param);
    expect(json.message).toMatch(message);
    expect(upstreamCalls(s.emu)).toEqual([]);
    await nextRequestWorks();
  });

  const OPENAI_CASES: Case[] = [
    {
      name: 'factor "1" in a content object',
      body: { model: ONE_PEACE, input: ['a', { text: 'b', factor: '1' }] },
      param: 'input[1].factor',
      message: /finite number greater than 0/,
    },
    {
      name: 'file:// image',
      body: { model: V1, input: [{ image: 'file:///etc/passwd' }] },
      param: 'input[0].image',
      message: /file:\/\/ URIs are refused/,
    },
    {
      name: 'audio for multimodal-embedding-v1',
      body: { model: V1, input: ['a', { audio: 'https://example.com/a.wav' }] },
      param: 'input[1].audio',
      message: /does not take audio/,
    },
    {
      name: 'a number item',
      body: { model: V1, input: ['a', 42] },
      param: 'input[1]',
      message: /must be a string or a content object/,
    },
    {
      name: 'a dimensions value the model lacks',
      body: { model: 'tongyi-embedding-vision-flash', input: 'a', dimensions: 1024 },
      param: 'dimensions',
      message: /supports 768, 512, 256, 128, 64; got 1024/,
    },
    {
      name: 'ONE-PEACE fusing more items than a call takes',
      body: { model: ONE_PEACE, input: Array.from({ length: 21 }, (_, i) => `t${i}`) },
      param: 'input',
      message: /fuses at most 20 items/,
    },
    {
      name: 'enable_fusion that is not a boolean',
      body: { model: 'qwen3-vl-embedding', input: 'a', enable_fusion: 'on' },
      param: 'enable_fusion',
      message: /true or false/,
    },
  ];

  it.each(OPENAI_CASES)('OpenAI-shaped: $name', async ({ body, param, message }) => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: auth(),
      payload: body as Record<string, unknown>,
    });
    expect(res.statusCode).toBe(400);
    const { error } = res.json();
    expect(error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_parameter', param });
    expect(error.message).toMatch(message);
    expect(upstreamCalls(s.emu)).toEqual([]);
    await nextRequestWorks();
  });
});

describe('an oversized JSON body', () => {
  const s = useStack({ env: { BODY_LIMIT_BYTES: '2048' } });

  it('is a 413 in DashScope shape, costs no upstream call, and the next request is served', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: PATH,
      headers: auth(),
      payload: one(V1, { image: dataUri('image/png', png(4096)) }),
    });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({
      code: 'BadRequest.TooLarge',
      request_id: res.headers['x-request-id'],
    });
    expect(res.json().message).toMatch(/larger than 2048 bytes \(BODY_LIMIT_BYTES\)/);
    expect(upstreamCalls(s.emu)).toEqual([]);
    const ok = await s.app.inject({
      method: 'POST',
      url: PATH,
      headers: auth(),
      payload: one(V1, { text: 'ok' }),
    });
    expect(ok.statusCode).toBe(200);
    expect(upstreamCalls(s.emu)).toHaveLength(1);
  });
});
