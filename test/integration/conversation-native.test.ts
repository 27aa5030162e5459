/**
 * Native Qwen-VL conversation through the gateway against the emulator:
 * POST /api/v1/services/aigc/multimodal-generation/generation, non-streaming and streaming (relayed in full here
 * via inject; the timing of the relay is proven over a real port in conversation-streaming.test.ts).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import {
  conversationSettings,
  IMAGE_TOKENS,
  resetConversation,
} from '../../src/emulator/routes/multimodal-generation.js';
import { auth, UPSTREAM_KEY, upstreamCalls, useStack, WORKSPACE } from '../helpers.js';

const PATH = '/api/v1/services/aigc/multimodal-generation/generation';
const IMAGE = 'https://dashscope.oss-cn-beijing.aliyuncs.com/images/dog_and_girl.jpeg';
const ANSWER = 'I see 1 image(s). You said: What is this?';

/** The body the DashScope Python SDK sends (contract §2.0: model, parameters, input; parameters always present). */
const sdkBody = (parameters: Record<string, unknown> = {}, image: unknown = IMAGE) => ({
  model: 'qwen-vl-max',
  parameters,
  input: { messages: [{ role: 'user', content: [{ image }, { text: 'What is this?' }] }] },
});

interface SseEvent {
  id: string | undefined;
  event: string | undefined;
  comments: string[];
  data: unknown;
}

/** Parses DashScope SSE framing strictly: `field:value` with no space after the colon. */
function parseNativeSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const ev: SseEvent = { id: undefined, event: undefined, comments: [], data: undefined };
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) ev.comments.push(line.slice(1));
        else if (line.startsWith('id:')) ev.id = line.slice(3);
        else if (line.startsWith('event:')) ev.event = line.slice(6);
        else if (line.startsWith('data:')) ev.data = JSON.parse(line.slice(5));
        else throw new Error(`unexpected SSE line: ${line}`);
      }
      return ev;
    });
}

type Choice = { finish_reason: string; message: { role: string; content: { text: string }[] } };
const choiceOf = (data: unknown): Choice => (data as { output: { choices: Choice[] } }).output.choices[0]!;

describe('POST /api/v1/services/aigc/multimodal-generation/generation', () => {
  const s = useStack();
  beforeEach(() => {
    resetConversation(s.emu.instance);
  });

  const post = (payload: unknown, headers: Record<string, string> = {}) =>
    s.app.inject({
      method: 'POST',
      url: PATH,
      headers: { ...auth(), ...headers },
      payload: payload as object,
    });

  describe('non-streaming', () => {
    it('forwards the body unchanged and passes the reply through', async () => {
      const body = sdkBody({ result_format: 'message', temperature: 0.2, some_future_knob: { a: 1 } });
      const res = await post(body);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const json = res.json();
      expect(json.output.choices).toEqual([
        { finish_reason: 'stop', message: { role: 'assistant', content: [{ text: ANSWER }] } },
      ]);
      expect(json.usage.image_tokens).toBe(IMAGE_TOKENS);
      expect(json.usage.output_tokens).toBeGreaterThan(0);
      expect(res.headers['x-dashscope-request-id']).toBe(json.request_id);
      expect(res.headers['x-request-id']).toBeTruthy();

      const calls = upstreamCalls(s.emu, PATH);
      expect(calls).toHaveLength(1);
      expect(JSON.parse(calls[0]!.body)).toEqual(body);
      const h = calls[0]!.headers;
      expect(h.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
      expect(h['x-dashscope-workspace']).toBe(WORKSPACE);
      expect(h['x-request-id']).toBe(res.headers['x-request-id']);
      expect(h['x-dashscope-sse']).toBeUndefined();
      expect(h['x-dashscope-ossresourceresolve']).toBeUndefined();
    });

    it('accepts string content and no parameters (ChatAlibabaTongyi, the Java SDK)', async () => {
      const res = await post({
        model: 'qwen-vl-chat-v1',
        input: { messages: [{ role: 'user', content: 'describe' }] },
      });
      expect(res.statusCode).toBe(200);
      expect(choiceOf(res.json()).message.content).toEqual([
        { text: 'I see 0 image(s). You said: describe' },
      ]);
    });

    it('records model and message count in the access log', async () => {
      await post(sdkBody());
      const line = s.logRecords().findLast((r) => r.msg === 'request' && r.url === PATH);
      expect(line).toMatchObject({ status: 200, model: 'qwen-vl-max', inputs: 1, upstream_calls: 1 });
    });

    it('passes an oss:// image on with X-DashScope-OssResourceResolve: enable', async () => {
      const res = await post(sdkBody({}, 'oss://dashscope-instant/abc/2026-01-01/x/dog.jpeg'));
      expect(res.statusCode).toBe(200);
      const calls = upstreamCalls(s.emu, PATH);
      expect(calls).toHaveLength(1);
      expect(calls[0]!.headers['x-dashscope-ossresourceresolve']).toBe('enable');
    });

    it('passes a base64 data URI image on as it is', async () => {
      const png = `data:image/png;base64,${Buffer.from('\x89PNG\r\n\x1a\n0000').toString('base64')}`;
      const res = await post(sdkBody({}, png));
      expect(res.statusCode).toBe(200);
      expect(JSON.parse(upstreamCalls(s.emu, PATH)[0]!.body).input.messages[0].content[0].image).toBe(png);
    });

    it('answers 400 in DashScope shape for a model that is not a conversation model, without calling upstream', async () => {
      for (const model of ['qwen-vl-nonexistent', 'text-embedding-v4']) {
        const res = await post({ ...sdkBody(), model });
        expect(res.statusCode).toBe(400);
        const json = res.json();
        expect(json).toEqual({
          code: 'InvalidParameter',
          message: expect.any(String),
          request_id: expect.any(String),
        });
        expect(json.message).toContain(model);
        expect(json.message).toContain('qwen-vl-max');
      }
      expect(upstreamCalls(s.emu)).toHaveLength(0);
    });

    it.each([
      ['no input', { model: 'qwen-vl-max' }, 'input'],
      ['no messages', { model: 'qwen-vl-max', input: {} }, 'input.messages'],
      ['empty messages', { model: 'qwen-vl-max', input: { messages: [] } }, 'input.messages'],
      [
        'message without role',
        { model: 'qwen-vl-max', input: { messages: [{ content: 'hi' }] } },
        'input.messages[0].role',
      ],
      [
        'content a number',
        { model: 'qwen-vl-max', input: { messages: [{ role: 'user', content: 5 }] } },
        'input.messages[0].content',
      ],
      ['no model', { input: { messages: [{ role: 'user', content: 'hi' }] } }, 'model'],
    ])('400 naming the field for %s', async (_name, body, field) => {
      const res = await post(body);
      expect(res.statusCode).toBe(400);
      expect(res.json().code).toBe('InvalidParameter');
      expect(res.json().message.startsWith(`${field}:`)).toBe(true);
      expect(upstreamCalls(s.emu)).toHaveLength(0);
    });

    it.each([
      [
        'file:///etc/passwd as an image',
        { image: 'file:///etc/passwd' },
        'input.messages[0].content[0].image',
        'file://',
      ],
      [
        'a bare path as an image',
        { image: '/etc/passwd' },
        'input.messages[0].content[0].image',
        'local paths',
      ],
      [
        'a file:// frame in a video list',
        { video: ['https://x.test/1.jpg', 'file:///tmp/2.jpg'] },
        'input.messages[0].content[0].video[1]',
        'file://',
      ],
      [
        'a Windows path as audio',
        { audio: 'C:\\clips\\a.wav' },
        'input.messages[0].content[0].audio',
        'local paths',
      ],
      [
        'a data URI that is not base64',
        { image: 'data:image/png,abc' },
        'input.messages[0].content[0].image',
        'base64',
      ],
      ['a number as an image', { image: 42 }, 'input.messages[0].content[0].image', 'URL'],
    ])('refuses %s with a 400 and no upstream call', async (_name, part, field, words) => {
      const res = await post({
        model: 'qwen-vl-max',
        input: { messages: [{ role: 'user', content: [part, { text: 'hi' }] }] },
      });
      expect(res.statusCode).toBe(400);
      const json = res.json();
      expect(json.code).toBe('InvalidParameter');
      expect(json.message.startsWith(`${field}:`)).toBe(true);
      expect(json.message).toContain(words);
      expect(upstreamCalls(s.emu)).toHaveLength(0);
      // The gateway still serves the next request.
      expect((await post(sdkBody())).statusCode).toBe(200);
    });

    it('checks media in every message, not only the last', async () => {
      const res = await post({
        model: 'qwen-vl-max',
        input: {
          messages: [
            { role: 'user', content: [{ image: 'file:///etc/shadow' }, { text: 'a' }] },
            { role: 'assistant', content: [{ text: 'b' }] },
            { role: 'user', content: [{ text: 'c' }] },
          ],
        },
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().message).toMatch(/^input\.messages\[0\]\.content\[0\]\.image:/);
      expect(upstreamCalls(s.emu)).toHaveLength(0);
    });

    it('maps an upstream 400 to a DashScope-shaped error with the upstream code and message', async () => {
      s.emu.addFault({
        path: PATH,
        status: 400,
        body: { code: 'InvalidParameter', message: 'The image is too large.', request_id: 'up-1' },
      });
      const res = await post(sdkBody());
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: 'InvalidParameter', message: 'The image is too large.' });
    });

    it('maps an upstream 429 to 429 with Retry-After', async () => {
      s.emu.addFault({ path: PATH, status: 429, headers: { 'retry-after': '3' } });
      const res = await post(sdkBody());
      expect(res.statusCode).toBe(429);
      expect(res.headers['retry-after']).toBe('3');
      expect(res.json().code).toBe('Throttling.RateQuota');
    });

    it('does not retry a generation that failed upstream (not idempotent): one call, 502', async () => {
      s.emu.addFault({ path: PATH, status: 500, times: 3 });
      const res = await post(sdkBody());
      expect(res.statusCode).toBe(502);
      expect(res.json().code).toBe('BadGateway');
      expect(upstreamCalls(s.emu, PATH)).toHaveLength(1);
    });

    it('answers 502 when DashScope replies 200 with a body that is not JSON', async () => {
      s.emu.addFault({ path: PATH, malformed: true });
      const res = await post(sdkBody());
      expect(res.statusCode).toBe(502);
      expect(res.json().code).toBe('BadGateway');
    });
  });

  describe('streaming', () => {
    it('relays DashScope SSE framing exactly for X-DashScope-SSE: enable, incremental output', async () => {
      const res = await post(sdkBody({ incremental_output: true, stream: true }), {
        'x-dashscope-sse': 'enable',
        accept: 'text/event-stream',
      });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
      expect(res.headers['cache-control']).toBe('no-cache');
      expect(res.headers['x-request-id']).toBeTruthy();
      expect(res.body.startsWith('id:1\nevent:result\n:HTTP_STATUS/200\ndata:{')).toBe(true);
      expect(res.body).not.toContain('[DONE]');
      const events = parseNativeSse(res.body);
      expect(events.length).toBeGreaterThan(1);
      events.forEach((ev, i) => {
        expect(ev.id).toBe(String(i + 1));
        expect(ev.event).toBe('result');
        expect(ev.comments).toEqual(['HTTP_STATUS/200']);
      });
      const texts = events.map((ev) => choiceOf(ev.data).message.content[0]!.text);
      expect(texts.join('')).toBe(ANSWER);
      expect(events.map((ev) => choiceOf(ev.data).finish_reason).at(-1)).toBe('stop');
      const rid = (events[0]!.data as { request_id: string }).request_id;
      expect(res.headers['x-dashscope-request-id']).toBe(rid);

      const call = upstreamCalls(s.emu, PATH)[0]!;
      expect(call.headers['x-dashscope-sse']).toBe('enable');
      expect(call.headers.accept).toBe('text/event-stream');
      expect(JSON.parse(call.body)).toEqual(sdkBody({ incremental_output: true, stream: true }));
    });

    it('streams cumulative text when incremental_output is not set', async () => {
      const res = await post(sdkBody(), { 'x-dashscope-sse': 'enable' });
      const texts = parseNativeSse(res.body).map((ev) => choiceOf(ev.data).message.content[0]!.text);
      expect(texts.length).toBeGreaterThan(1);
      for (let i = 1; i < texts.length; i++) expect(texts[i]!.startsWith(texts[i - 1]!)).toBe(true);
      expect(texts.at(-1)).toBe(ANSWER);
    });

    it('streams for Accept: text/event-stream alone', async () => {
      const res = await post(sdkBody({ incremental_output: true }), { accept: 'text/event-stream' });
      expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
      expect(parseNativeSse(res.body).length).toBeGreaterThan(1);
      expect(upstreamCalls(s.emu, PATH)[0]!.headers['x-dashscope-sse']).toBe('enable');
    });

    it('streams for parameters.stream: true alone, telling DashScope with the SSE header', async () => {
      const res = await post(sdkBody({ stream: true, incremental_output: true }));
      expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
      expect(parseNativeSse(res.body).length).toBeGreaterThan(1);
      expect(upstreamCalls(s.emu, PATH)[0]!.headers['x-dashscope-sse']).toBe('enable');
    });

    it('does not stream for X-DashScope-SSE: disable, even with Accept: text/event-stream (dashscope4j)', async () => {
      const res = await post(sdkBody({ stream: true }), {
        'x-dashscope-sse': 'disable',
        accept: 'text/event-stream',
      });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(choiceOf(res.json()).message.content[0]!.text).toBe(ANSWER);
      const call = upstreamCalls(s.emu, PATH)[0]!;
      expect(call.headers['x-dashscope-sse']).toBeUndefined();
      expect(call.headers.accept).toBe('application/json');
    });

    it('answers a JSON DashScope error when upstream fails before streaming', async () => {
      s.emu.addFault({ path: PATH, status: 500 });
      const res = await post(sdkBody(), { 'x-dashscope-sse': 'enable' });
      expect(res.statusCode).toBe(502);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.json()).toMatchObject({ code: 'BadGateway', request_id: expect.any(String) });
      expect(res.json().message).toContain('InternalError');
      expect(upstreamCalls(s.emu, PATH)).toHaveLength(1);
    });

    it('relays an upstream event:error as it is', async () => {
      conversationSettings(s.emu.instance).failAfterEvents = 1;
      const res = await post(sdkBody({ incremental_output: true }), { 'x-dashscope-sse': 'enable' });
      const events = parseNativeSse(res.body);
      expect(events.map((e) => e.event)).toEqual(['result', 'error']);
      expect(events[1]!.id).toBe('2');
      expect(events[1]!.data).toMatchObject({ code: 'InternalError', request_id: expect.any(String) });
    });

    it('ends with its own event:error when the upstream connection breaks mid-stream', async () => {
      conversationSettings(s.emu.instance).dropAfterEvents = 2;
      const res = await post(sdkBody({ incremental_output: true }), { 'x-dashscope-sse': 'enable' });
      expect(res.statusCode).toBe(200);
      const events = parseNativeSse(res.body);
      expect(events.map((e) => e.event)).toEqual(['result', 'result', 'error']);
      expect(events[2]!.id).toBe('3');
      expect(events[2]!.comments).toEqual(['HTTP_STATUS/502']);
      expect(events[2]!.data).toEqual({
        code: 'BadGateway',
        message: expect.stringContaining('broke off'),
        request_id: res.headers['x-request-id'],
      });
      const line = s.logRecords().findLast((r) => r.msg === 'request' && r.url === PATH);
      expect(String(line?.error)).toContain('broke off');
    });
  });
});
