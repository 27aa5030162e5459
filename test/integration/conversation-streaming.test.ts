/**
 * Streaming over a real port, with timing: the gateway relays each event as it arrives (the first event reaches
 * the caller while the emulator is still producing the rest), and a caller that hangs up mid-stream makes the
 * gateway abort its upstream request (the emulator sees its client go away before the end).
 * The emulator waits EVENT_DELAY_MS between events; the assertions leave hundreds of milliseconds of slack.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  conversationSettings,
  conversationStreams,
  resetConversation,
  type StreamRecord,
} from '../../src/emulator/routes/multimodal-generation.js';
import { auth, useStack } from '../helpers.js';

const NATIVE = '/api/v1/services/aigc/multimodal-generation/generation';
const EVENT_DELAY_MS = 300;

const nativeBody = JSON.stringify({
  model: 'qwen-vl-plus',
  parameters: { incremental_output: true },
  input: {
    messages: [
      { role: 'user', content: [{ image: 'https://x.test/a.png' }, { text: 'tell me a long story' }] },
    ],
  },
});
const chatBody = JSON.stringify({
  model: 'qwen-vl-plus',
  stream: true,
  messages: [
    {
      role: 'user',
      content: [
        { type: 'image_url', image_url: { url: 'https://x.test/a.png' } },
        { type: 'text', text: 'tell me a long story' },
      ],
    },
  ],
});

/** Wait (bounded) until `pick` finds something. */
async function waitFor<T>(pick: () => T | undefined, timeoutMs = 5_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = pick();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(20);
  }
}

describe('conversation streaming over a real port', () => {
  const s = useStack();
  let base: string;
  // Our own client connections, closed before the gateway (afterAll hooks run in reverse, so this one runs before
  // useStack's close): an aborted request leaves undici holding a fresh, never-used keep-alive socket that the
  // gateway's graceful close would otherwise wait for.
  const agent = new Agent();
  beforeAll(async () => {
    base = await s.listen();
  });
  afterAll(async () => agent.destroy());
  beforeEach(() => {
    resetConversation(s.emu.instance);
    conversationSettings(s.emu.instance).eventDelayMs = EVENT_DELAY_MS;
  });

  const lastStream = (path: string): StreamRecord | undefined =>
    conversationStreams(s.emu.instance).findLast((r) => r.path === path);

  it.each([
    ['native', NATIVE, nativeBody, { 'x-dashscope-sse': 'enable' }, 'event:result'],
    ['OpenAI chat', '/v1/chat/completions', chatBody, {}, 'data: {'],
  ])(
    '%s: the first event reaches the caller before the emulator has sent the last one',
    async (_n, path, body, extra, marker) => {
      const started = Date.now();
      const res = await request(`${base}${path}`, {
        method: 'POST',
        headers: { ...auth(), 'content-type': 'application/json', ...extra },
        body,
        dispatcher: agent,
      });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
      let firstEventAt: number | undefined;
      let text = '';
      for await (const chunk of res.body) {
        text += String(chunk);
        if (firstEventAt === undefined && text.includes(marker)) firstEventAt = Date.now();
      }
      const endedAt = Date.now();
      const upstreamPath = path === NATIVE ? NATIVE : '/compatible-mode/v1/chat/completions';
      const rec = await waitFor(() => lastStream(upstreamPath));
      expect(rec.finished).toBe(true);
      expect(rec.sentAt.length).toBeGreaterThanOrEqual(4);
      const lastSentAt = rec.sentAt.at(-1)!;
      // The emulator needed ≥ 3 × 300 ms for its events; the caller had the first one long before the last left.
      expect(lastSentAt - rec.sentAt[0]!).toBeGreaterThanOrEqual(3 * EVENT_DELAY_MS - 50);
      expect(firstEventAt).toBeDefined();
      expect(firstEventAt!).toBeLessThan(lastSentAt - EVENT_DELAY_MS);
      expect(firstEventAt! - started).toBeLessThan(endedAt - started - EVENT_DELAY_MS);
    },
  );

  it.each([
    ['native', NATIVE, nativeBody, { 'x-dashscope-sse': 'enable' }, 'event:result', NATIVE],
    ['OpenAI chat', '/v1/chat/completions', chatBody, {}, 'data: {', '/compatible-mode/v1/chat/completions'],
  ])(
    '%s: a caller that disconnects mid-stream makes the upstream request abort',
    async (_n, path, body, extra, marker, upstreamPath) => {
      const ac = new AbortController();
      const res = await request(`${base}${path}`, {
        method: 'POST',
        headers: { ...auth(), 'content-type': 'application/json', ...extra },
        body,
        signal: ac.signal,
        dispatcher: agent,
      });
      expect(res.statusCode).toBe(200);
      let text = '';
      await expect(
        (async () => {
          for await (const chunk of res.body) {
            text += String(chunk);
            if (text.includes(marker)) ac.abort(); // hang up after the first event
          }
        })(),
      ).rejects.toThrow();
      const rec = await waitFor(() => {
        const r = lastStream(upstreamPath);
        return r?.aborted ? r : undefined;
      });
      expect(rec.finished).toBe(false);
      expect(rec.sentAt.length).toBeLessThan(rec.total);
      // The gateway logged the request once the relay was torn down.
      const line = await waitFor(() =>
        s
          .logRecords()
          .find(
            (r) =>
              r.msg === 'request' &&
              (r.upstream as { requestId?: string }[] | undefined)?.[0]?.requestId === rec.requestId,
          ),
      );
      expect(line).toMatchObject({ url: path, model: 'qwen-vl-plus', upstream_calls: 1, aborted: true });
    },
  );
});
