/**
 * OpenAI chat completions for the Qwen-VL models through the gateway, forwarded to the emulator's compatible mode:
 * POST /v1/chat/completions and its /compatible-mode/v1 alias. (The openai SDK itself is in test/clients.)
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { conversationSettings, resetConversation } from '../../src/emulator/routes/multimodal-generation.js';
import { auth, UPSTREAM_KEY, upstreamCalls, useStack } from '../helpers.js';

const UPSTREAM = '/compatible-mode/v1/chat/completions';
const ANSWER = 'I see 1 image(s). You said: What is in the picture?';

const chat = (image: unknown = 'https://x.test/cat.png', extra: Record<string, unknown> = {}) => ({
  model: 'qwen-vl-max-latest',
  messages: [
    { role: 'system', content: 'You are terse.' },
    {
      role: 'user',
      content: [
        { type: 'image_url', image_url: { url: image, detail: 'auto' } },
        { type: 'text', text: 'What is in the picture?' },
      ],
    },
  ],
  ...extra,
});

/** `data: …` lines of an OpenAI-style stream. */
const dataLines = (body: string): string[] =>
  body
    .split('\n\n')
    .filter((b) => b.trim() !== '')
    .map((b) => {
      expect(b.startsWith('data: ')).toBe(true);
      return b.slice(6);
    });

describe('POST /v1/chat/completions (Qwen-VL via compatible mode)', () => {
  const s = useStack();
  beforeEach(() => {
    resetConversation(s.emu.instance);
  });

  const post = (payload: unknown, url = '/v1/chat/completions') =>
    s.app.inject({ method: 'POST', url, headers: auth(), payload: payload as object });

  it('forwards the OpenAI body unchanged to compatible mode and passes the completion through', async () => {
    const body = chat(undefined, { temperature: 0.1, max_tokens: 50, vl_high_resolution_images: true });
    const res = await post(body);
    expect(res.statusCode).toBe(200);
    const json = res.json();
    expect(json.object).toBe('chat.completion');
    expect(json.model).toBe('qwen-vl-max-latest');
    expect(json.choices[0].message).toEqual({ role: 'assistant', content: ANSWER });
    expect(json.usage.total_tokens).toBe(json.usage.prompt_tokens + json.usage.completion_tokens);
    const calls = upstreamCalls(s.emu, UPSTREAM);
    expect(calls).toHaveLength(1);
    expect(JSON.parse(calls[0]!.body)).toEqual(body);
    expect(calls[0]!.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(res.headers['x-dashscope-request-id']).toBeTruthy();
  });

  it('serves the /compatible-mode/v1 alias too', async () => {
    const res = await post(chat(), UPSTREAM);
    expect(res.statusCode).toBe(200);
    expect(res.json().choices[0].message.content).toBe(ANSWER);
  });

  it('relays stream: true as data: chunks ending with data: [DONE]', async () => {
    const res = await post(chat(undefined, { stream: true, stream_options: { include_usage: true } }));
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    const lines = dataLines(res.body);
    expect(lines.at(-1)).toBe('[DONE]');
    const chunks = lines.slice(0, -1).map((l) => JSON.parse(l));
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    expect(text).toBe(ANSWER);
    expect(chunks.at(-1).usage.total_tokens).toBeGreaterThan(0);
    expect(upstreamCalls(s.emu, UPSTREAM)[0]!.headers.accept).toBe('text/event-stream');
  });

  it('adds X-DashScope-OssResourceResolve for an oss:// image', async () => {
    expect((await post(chat('oss://dashscope-instant/x/cat.png'))).statusCode).toBe(200);
    expect(upstreamCalls(s.emu, UPSTREAM)[0]!.headers['x-dashscope-ossresourceresolve']).toBe('enable');
  });

  it.each([
    ['file:///etc/passwd', 'messages[1].content[0].image_url.url', 'file://'],
    ['/etc/passwd', 'messages[1].content[0].image_url.url', 'local paths'],
    ['', 'messages[1].content[0].image_url.url', 'URL'],
  ])('refuses image_url %j with a 400 in OpenAI shape and no upstream call', async (url, param, words) => {
    const res = await post(chat(url));
    expect(res.statusCode).toBe(400);
    const { error } = res.json();
    expect(error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_parameter', param });
    expect(error.message).toContain(words);
    expect(upstreamCalls(s.emu)).toHaveLength(0);
  });

  it.each([
    ['a file:// video_url', { type: 'video_url', video_url: { url: 'file:///v.mp4' } }, 'video_url.url'],
    [
      'a bare-path frame in a video list',
      { type: 'video', video: ['https://x.test/1.jpg', 'frames/2.jpg'] },
      'video[1]',
    ],
    [
      'raw base64 input_audio (not a data URI)',
      { type: 'input_audio', input_audio: { data: 'UklGRiQA', format: 'wav' } },
      'input_audio.data',
    ],
  ])('refuses %s', async (_n, part, at) => {
    const res = await post({ model: 'qwen-vl-max', messages: [{ role: 'user', content: [part] }] });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.param).toBe(`messages[0].content[0].${at}`);
    expect(upstreamCalls(s.emu)).toHaveLength(0);
  });

  it('answers 400 model_not_found in OpenAI shape for a model that is not a Qwen-VL model', async () => {
    const res = await post({ ...chat(), model: 'gpt-4o' });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'model_not_found', param: 'model' });
    expect(upstreamCalls(s.emu)).toHaveLength(0);
  });

  it.each([
    ['no messages', { model: 'qwen-vl-max' }, 'messages'],
    ['stream not a boolean', { ...chat(), stream: 'yes' }, 'stream'],
    [
      'content a number',
      { model: 'qwen-vl-max', messages: [{ role: 'user', content: 1 }] },
      'messages[0].content',
    ],
  ])('400 naming the field for %s', async (_n, body, param) => {
    const res = await post(body);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.param).toBe(param);
    expect(upstreamCalls(s.emu)).toHaveLength(0);
  });

  it('maps an upstream compatible-mode 400 to an OpenAI error keeping the upstream code', async () => {
    s.emu.addFault({
      path: UPSTREAM,
      status: 400,
      body: {
        error: {
          message: '<400> InternalError.Algo.InvalidParameter: Range of input length should be [1, 204800]',
          type: 'InvalidParameter',
          param: null,
          code: 'InvalidParameter',
        },
        request_id: 'r-1',
      },
    });
    const res = await post(chat());
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'InvalidParameter', type: 'invalid_request_error' });
    expect(res.json().error.message).toContain('Range of input length');
  });

  it('answers an OpenAI-shaped JSON error when a stream fails before it starts', async () => {
    s.emu.addFault({ path: UPSTREAM, status: 503 });
    const res = await post(chat(undefined, { stream: true }));
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json().error.code).toBe('upstream_unavailable');
  });

  it('ends a stream with an OpenAI error chunk when the upstream connection breaks mid-stream', async () => {
    conversationSettings(s.emu.instance).dropAfterEvents = 2;
    const res = await post(chat(undefined, { stream: true }));
    const lines = dataLines(res.body);
    expect(lines).toHaveLength(3);
    expect(lines).not.toContain('[DONE]');
    expect(JSON.parse(lines[2]!)).toEqual({
      error: {
        message: expect.stringContaining('broke off'),
        type: 'api_error',
        code: 'upstream_bad_response',
        param: null,
      },
    });
  });
});
