/**
 * The conversation translators, called directly: whether a native Qwen-VL call is answered as a stream
 * (wantsNativeStream, a truth table over the X-DashScope-SSE header, `parameters.stream` and Accept), and which
 * media values the gateway finds in native and OpenAI chat messages and how it names them in a 400
 * (nativeConversationMedia, openAIChatMedia). The URL policy itself is test/unit/media-url-policy.test.ts.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { MediaRef } from '../../src/media/url-policy.js';
import {
  type NativeConversationRequest,
  nativeConversationMedia,
  wantsNativeStream,
} from '../../src/translate/conversation-native.js';
import { type OpenAIChatRequest, openAIChatMedia } from '../../src/translate/openai-chat.js';
import { refusal } from '../support/refusal.js';

const SSE = 'text/event-stream';

describe('wantsNativeStream', () => {
  // [X-DashScope-SSE, parameters.stream, Accept, streams?]; undefined = absent.
  const table: [string | string[] | undefined, unknown, string | undefined, boolean][] = [
    // Nothing asks for a stream.
    [undefined, undefined, undefined, false],
    [undefined, false, 'application/json', false],
    // The header's value decides first, whatever else is sent.
    ['enable', undefined, undefined, true],
    ['enable', false, 'application/json', true],
    [' Enable ', undefined, undefined, true],
    ['ENABLE', undefined, undefined, true],
    ['disable', true, SSE, false], // dashscope4j on an ordinary call
    ['Disable', true, undefined, false],
    ['no', true, SSE, false], // any other value is not "enable"
    [['enable', 'disable'], undefined, undefined, true], // a repeated header: the first one counts
    [['disable', 'enable'], true, SSE, false],
    // An empty header is as good as none.
    ['', true, undefined, true],
    ['  ', undefined, SSE, true],
    ['', undefined, undefined, false],
    // Without the header: parameters.stream, strictly a boolean true…
    [undefined, true, undefined, true],
    [undefined, 'true', undefined, false],
    [undefined, 1, undefined, false],
    // …or Accept listing text/event-stream, in any case and any place in the list.
    [undefined, undefined, SSE, true],
    [undefined, undefined, 'Text/Event-Stream', true],
    [undefined, undefined, 'application/json, text/event-stream', true],
    [undefined, undefined, 'application/json,text/event-stream;q=0.9', true],
    [undefined, undefined, 'application/text/event-stream', false],
    [undefined, undefined, '*/*', false],
    // parameters.stream false does not veto Accept: only the header's value overrides the others.
    [undefined, false, SSE, true],
  ];

  it.each(table)(
    'X-DashScope-SSE %j, parameters.stream %j, Accept %j → %s',
    (sse, stream, accept, expected) => {
      const headers: IncomingHttpHeaders = {};
      if (sse !== undefined) headers['x-dashscope-sse'] = sse as string;
      if (accept !== undefined) headers.accept = accept;
      const parameters = stream === undefined ? undefined : { stream };
      expect(wantsNativeStream(headers, parameters)).toBe(expected);
    },
  );

  it('reads the header names Node gives (lower case) and no parameters object at all', () => {
    expect(wantsNativeStream({ 'x-dashscope-sse': 'enable' }, undefined)).toBe(true);
    expect(wantsNativeStream({}, {})).toBe(false);
  });
});

const PNG_URI = `data:image/png;base64,${Buffer.from('not really a png').toString('base64')}`;
const kinds = (refs: MediaRef[]) => refs.map((r) => (r.kind === 'data' ? `data:${r.declaredMime}` : r.value));

describe('nativeConversationMedia', () => {
  const messages = (...m: NativeConversationRequest['input']['messages']) => m;

  it('finds every image, audio and video value (video frames one by one), in message and part order', () => {
    const refs = nativeConversationMedia(
      messages(
        { role: 'system', content: 'plain text content has no media' },
        {
          role: 'user',
          content: [
            { text: 'look' },
            { image: 'https://example.com/a.png' },
            { video: ['https://example.com/f1.jpg', 'oss://dashscope-instant/f2.jpg'] },
          ],
        },
        { role: 'assistant', content: null },
        { role: 'user', content: [{ audio: PNG_URI }, { video: 'https://example.com/v.mp4' }] },
      ),
    );
    expect(kinds(refs)).toEqual([
      'https://example.com/a.png',
      'https://example.com/f1.jpg',
      'oss://dashscope-instant/f2.jpg',
      'data:image/png',
      'https://example.com/v.mp4',
    ]);
    expect(refs.map((r) => r.kind)).toEqual(['url', 'url', 'oss', 'data', 'url']);
  });

  it('finds nothing in text-only messages', () => {
    expect(nativeConversationMedia(messages({ role: 'user', content: [{ text: 'hi' }] }))).toEqual([]);
  });

  it.each([
    [{ image: 'file:///etc/passwd' }, 'input.messages[1].content[1].image'],
    [{ audio: '/tmp/a.wav' }, 'input.messages[1].content[1].audio'],
    [{ video: 'data:video/mp4,not-base64' }, 'input.messages[1].content[1].video'],
    [{ video: ['https://example.com/ok.jpg', 'C:\\frames\\2.jpg'] }, 'input.messages[1].content[1].video[1]'],
    [{ image: 42 }, 'input.messages[1].content[1].image'],
  ])('names a refused value by its place: %j → %s', async (part, param) => {
    const err = await refusal(() =>
      nativeConversationMedia(
        messages(
          { role: 'system', content: 'be brief' },
          { role: 'user', content: [{ text: 'what is this?' }, part] },
        ),
      ),
    );
    expect(err.kind).toBe('INVALID_INPUT');
    expect(err.param).toBe(param);
    expect(err.message.startsWith(`${param}: `)).toBe(true);
  });
});

describe('openAIChatMedia', () => {
  const chat = (...content: Record<string, unknown>[]): OpenAIChatRequest['messages'] => [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: content as { type: string }[] },
  ];

  it('finds image_url, video_url, video frames and input_audio values, in order, and skips other parts', () => {
    const refs = openAIChatMedia(
      chat(
        { type: 'text', text: 'compare these' },
        { type: 'image_url', image_url: { url: 'https://example.com/a.png', detail: 'low' } },
        { type: 'image_url', image_url: PNG_URI },
        { type: 'video_url', video_url: { url: 'https://example.com/v.mp4' } },
        { type: 'video_url', video_url: 'oss://dashscope-instant/v2.mp4' },
        { type: 'video', video: ['https://example.com/f1.jpg', 'https://example.com/f2.jpg'] },
        { type: 'input_audio', input_audio: { data: 'https://example.com/a.mp3', format: 'mp3' } },
        { type: 'some_future_part', some_future_part: { url: 'file:///not/read' } },
      ),
    );
    expect(kinds(refs)).toEqual([
      'https://example.com/a.png',
      'data:image/png',
      'https://example.com/v.mp4',
      'oss://dashscope-instant/v2.mp4',
      'https://example.com/f1.jpg',
      'https://example.com/f2.jpg',
      'https://example.com/a.mp3',
    ]);
  });

  it('finds nothing in string contents', () => {
    expect(openAIChatMedia([{ role: 'user', content: 'https://example.com/a.png' }])).toEqual([]);
  });

  it.each([
    [{ type: 'image_url', image_url: { url: 'file:///etc/passwd' } }, 'messages[1].content[1].image_url.url'],
    [{ type: 'image_url', image_url: {} }, 'messages[1].content[1].image_url.url'],
    [{ type: 'image_url', image_url: '/home/me/cat.png' }, 'messages[1].content[1].image_url'],
    [
      { type: 'video_url', video_url: { url: 'ftp://example.com/v.mp4' } },
      'messages[1].content[1].video_url.url',
    ],
    [{ type: 'video_url', video_url: 'v.mp4' }, 'messages[1].content[1].video_url'],
    [
      { type: 'video', video: ['https://example.com/1.jpg', 'file:///2.jpg'] },
      'messages[1].content[1].video[1]',
    ],
    [{ type: 'video', video: 'frames.zip' }, 'messages[1].content[1].video'],
    [{ type: 'input_audio', input_audio: { format: 'wav' } }, 'messages[1].content[1].input_audio.data'],
    [
      { type: 'input_audio', input_audio: 'data:audio/wav;base64,' },
      'messages[1].content[1].input_audio.data',
    ],
  ])('names a refused value by its place: %j → %s', async (part, param) => {
    const err = await refusal(() => openAIChatMedia(chat({ type: 'text', text: 'what is this?' }, part)));
    expect(err.kind).toBe('INVALID_INPUT');
    expect(err.param).toBe(param);
    expect(err.message.startsWith(`${param}: `)).toBe(true);
  });
});
