/**
 * The official `openai` Node SDK (6.49.0) `chat.completions.create` against the gateway over a real port, with an
 * image URL content part, streaming and not: what an OpenAI chat client pointed at the gateway actually gets.
 */
import OpenAI, { APIError, BadRequestError } from 'openai';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { conversationSettings, resetConversation } from '../../src/emulator/routes/multimodal-generation.js';
import { KEYS, upstreamCalls, useStack } from '../helpers.js';

const UPSTREAM = '/compatible-mode/v1/chat/completions';
const ANSWER = 'I see 1 image(s). You said: What is this?';

const messages = (url: string): OpenAI.Chat.ChatCompletionMessageParam[] => [
  {
    role: 'user',
    content: [
      { type: 'image_url', image_url: { url } },
      { type: 'text', text: 'What is this?' },
    ],
  },
];

describe('openai SDK → /v1/chat/completions', () => {
  const s = useStack();
  let client: OpenAI;

  beforeAll(async () => {
    const base = await s.listen();
    client = new OpenAI({ apiKey: KEYS.alice, baseURL: `${base}/v1`, maxRetries: 0 });
  });
  beforeEach(() => {
    resetConversation(s.emu.instance);
  });

  it('non-streaming: answers with the emulator completion for an image + text message', async () => {
    const res = await client.chat.completions.create({
      model: 'qwen-vl-plus',
      messages: messages('https://dashscope.oss-cn-beijing.aliyuncs.com/images/dog_and_girl.jpeg'),
    });
    expect(res.choices[0]!.message.content).toBe(ANSWER);
    expect(res.choices[0]!.finish_reason).toBe('stop');
    expect(res.usage?.prompt_tokens).toBeGreaterThan(0);
    expect(res._request_id).toBeTruthy();
    const sent = JSON.parse(upstreamCalls(s.emu, UPSTREAM)[0]!.body);
    expect(sent.messages[0].content[0]).toEqual({
      type: 'image_url',
      image_url: { url: 'https://dashscope.oss-cn-beijing.aliyuncs.com/images/dog_and_girl.jpeg' },
    });
  });

  it('streaming: the deltas add up to the answer and the SDK sees the end of the stream', async () => {
    const stream = await client.chat.completions.create({
      model: 'qwen-vl-plus',
      messages: messages('https://x.test/dog.jpeg'),
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null | undefined;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe(ANSWER);
    expect(finish).toBe('stop');
    expect(usage?.total_tokens).toBeGreaterThan(0);
  });

  it('a file:// image is a BadRequestError naming the part, and nothing goes upstream', async () => {
    const err = await client.chat.completions
      .create({ model: 'qwen-vl-plus', messages: messages('file:///etc/passwd') })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).status).toBe(400);
    expect((err as BadRequestError).param).toBe('messages[0].content[0].image_url.url');
    expect((err as BadRequestError).message).toContain('file://');
    expect(upstreamCalls(s.emu)).toHaveLength(0);
  });

  it('a stream that breaks off upstream surfaces as an APIError in the SDK, not a short answer', async () => {
    conversationSettings(s.emu.instance).dropAfterEvents = 2;
    const stream = await client.chat.completions.create({
      model: 'qwen-vl-plus',
      messages: messages('https://x.test/dog.jpeg'),
      stream: true,
    });
    const consume = async () => {
      for await (const _chunk of stream) {
        // drain
      }
    };
    await expect(consume()).rejects.toBeInstanceOf(APIError);
  });
});
