/**
 * Per-caller DashScope workspaces: a gateway key configured as name:key:workspace sends its calls to that
 * workspace; a key without one uses DASHSCOPE_WORKSPACE; a workspace header the caller sends never reaches
 * DashScope. Checked on what the emulator received, for embeddings, a task submission (and its poll) and a
 * conversation call; and the GATEWAY_API_KEYS forms the parser accepts and refuses.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { auth, startStack, UPSTREAM_KEY, upstreamCalls, useStack, WORKSPACE } from '../helpers.js';
import { configProblems } from '../support/config.js';

const ALICE_KEY = 'gw-alice-ws-key-0001';
const BOB_KEY = 'gw-bob-default-key-0002';
const ALICE_WS = 'llm-alice0team';
const SPOOFED = 'llm-someone-else';
const TEXT_PATH = '/api/v1/services/embeddings/text-embedding/text-embedding';
const CHAT_PATH = '/compatible-mode/v1/chat/completions';

describe('per-caller workspace', () => {
  const s = useStack({ env: { GATEWAY_API_KEYS: `alice:${ALICE_KEY}:${ALICE_WS},bob:${BOB_KEY}` } });

  /** The workspace header of every upstream request to `path` (a prefix, or the exact path and query), in arrival order. */
  const workspaces = (path: string | RegExp) =>
    upstreamCalls(s.emu)
      .filter((r) => (typeof path === 'string' ? r.url.startsWith(path) : path.test(r.url)))
      .map((r) => r.headers['x-dashscope-workspace']);

  const spoof = { 'X-DashScope-WorkSpace': SPOOFED };

  it('embeddings go to the caller’s workspace, else the default; a caller-sent header is not forwarded', async () => {
    for (const key of [ALICE_KEY, BOB_KEY]) {
      const res = await s.app.inject({
        method: 'POST',
        url: '/v1/embeddings',
        headers: { ...auth(key), ...spoof },
        payload: { model: 'text-embedding-v4', input: ['a', 'b'] },
      });
      expect(res.statusCode).toBe(200);
    }
    // Native multimodal embedding too (another pipeline, same client).
    const mm = await s.app.inject({
      method: 'POST',
      url: '/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding',
      headers: { ...auth(ALICE_KEY), ...spoof },
      payload: { model: 'multimodal-embedding-v1', input: { contents: [{ text: 'hi' }] } },
    });
    expect(mm.statusCode).toBe(200);
    expect(workspaces(TEXT_PATH)).toEqual([ALICE_WS, WORKSPACE]);
    expect(workspaces('/api/v1/services/embeddings/multimodal-embedding/')).toEqual([ALICE_WS]);
    for (const r of upstreamCalls(s.emu)) {
      expect(JSON.stringify(r.headers)).not.toContain(SPOOFED);
      expect(r.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    }
  });

  it('a task is submitted and polled in the submitting caller’s workspace', async () => {
    const submit = await s.app.inject({
      method: 'POST',
      url: TEXT_PATH,
      headers: { ...auth(ALICE_KEY), ...spoof, 'X-DashScope-Async': 'enable' },
      payload: { model: 'text-embedding-async-v2', input: { url: 'https://example.com/texts.txt' } },
    });
    expect(submit.statusCode).toBe(200);
    const id = submit.json().output.task_id as string;
    const poll = await s.app.inject({
      method: 'GET',
      url: `/api/v1/tasks/${id}`,
      headers: { ...auth(ALICE_KEY), ...spoof },
    });
    expect(poll.statusCode).toBe(200);
    // Bob's list goes to the default workspace.
    const list = await s.app.inject({
      method: 'GET',
      url: '/api/v1/tasks',
      headers: { ...auth(BOB_KEY), ...spoof },
    });
    expect(list.statusCode).toBe(200);
    expect(workspaces(TEXT_PATH)).toEqual([ALICE_WS]);
    // The caller holds a signed handle (<task id>-<tag>); DashScope is polled with the task id itself.
    const taskId = id.replace(/-[0-9a-f]{32}$/, '');
    expect(workspaces(`/api/v1/tasks/${taskId}`)).toEqual([ALICE_WS]);
    expect(workspaces(/^\/api\/v1\/tasks(\?|$)/)).toEqual([WORKSPACE]);
  });

  it('conversation calls go to the caller’s workspace, streamed or not', async () => {
    for (const [key, stream] of [
      [ALICE_KEY, false],
      [BOB_KEY, false],
      [ALICE_KEY, true],
    ] as const) {
      const res = await s.app.inject({
        method: 'POST',
        url: '/v1/chat/completions',
        headers: { ...auth(key), ...spoof },
        payload: { model: 'qwen-vl-max-latest', messages: [{ role: 'user', content: 'hello' }], stream },
      });
      expect(res.statusCode).toBe(200);
    }
    expect(workspaces(CHAT_PATH)).toEqual([ALICE_WS, WORKSPACE, ALICE_WS]);
    for (const r of upstreamCalls(s.emu)) expect(JSON.stringify(r.headers)).not.toContain(SPOOFED);
  });
});

describe('per-caller workspace without DASHSCOPE_WORKSPACE', () => {
  it('a key without a workspace sends no workspace header at all, even if the caller sends one', async () => {
    const stack = await startStack({
      env: {
        DASHSCOPE_WORKSPACE: undefined,
        GATEWAY_API_KEYS: `alice:${ALICE_KEY}:${ALICE_WS},bob:${BOB_KEY}`,
      },
    });
    try {
      for (const key of [BOB_KEY, ALICE_KEY]) {
        const res = await stack.app.inject({
          method: 'POST',
          url: '/v1/embeddings',
          headers: { ...auth(key), 'x-dashscope-workspace': SPOOFED },
          payload: { model: 'text-embedding-v4', input: 'x' },
        });
        expect(res.statusCode).toBe(200);
      }
      const sent = upstreamCalls(stack.emu, TEXT_PATH).map((r) => r.headers['x-dashscope-workspace']);
      expect(sent).toEqual([undefined, ALICE_WS]);
    } finally {
      await stack.close();
    }
  });
});

describe('GATEWAY_API_KEYS with workspaces', () => {
  const load = (keys: string) => loadConfig({ DASHSCOPE_API_KEY: UPSTREAM_KEY, GATEWAY_API_KEYS: keys });
  const problems = (keys: string): string[] =>
    configProblems({ DASHSCOPE_API_KEY: UPSTREAM_KEY, GATEWAY_API_KEYS: keys });

  it('accepts name:key (as before) and name:key:workspace side by side', () => {
    expect(load(`a:${ALICE_KEY}, b:${BOB_KEY}:llm-b_2 `).gatewayKeys).toEqual([
      { name: 'a', key: ALICE_KEY },
      { name: 'b', key: BOB_KEY, workspace: 'llm-b_2' },
    ]);
  });

  it('refuses a workspace that is not a plain token, and a key containing more colons', () => {
    expect(problems(`a:${ALICE_KEY}:llm bad`).join()).toMatch(
      /entry 1 \("a"\): the workspace must be a DashScope workspace id/,
    );
    expect(problems(`a:${ALICE_KEY}:llm-x\r\nX-Evil=1`).join()).toMatch(/the workspace must be/);
    expect(problems(`a:${ALICE_KEY},b:${BOB_KEY}:`).join()).toMatch(/entry 2 \("b"\): the workspace must be/);
    expect(problems(`a:part:of:key`).join()).toMatch(
      /name:key or name:key:workspace .* without ':' \(entry 1 is not\)/,
    );
  });
});
