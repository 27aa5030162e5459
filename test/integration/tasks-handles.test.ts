/**
 * Signed task handles: the caller who submitted a task reaches it with its handle on any replica, whatever
 * happened to the owner store, and nobody else can. Two gateway instances share one redis-server of this test's
 * own (so it can be killed and restarted empty) and one upstream; the task list survives the restart through the
 * replicas' write-back.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { OWNER_KEY_PREFIX, OWNER_TTL_SEC, RedisTaskOwnerStore, TaskHandles } from '../../src/tasks/index.js';
import { auth, KEYS, type Stack, startStack, UPSTREAM_KEY, upstreamCalls } from '../helpers.js';
import { hasRedisServer, OwnRedis, requireRedis } from '../ratelimit/support.js';
import { freePort } from '../support/ports.js';

const PATH = '/api/v1/services/embeddings/text-embedding/text-embedding';
const HANDLE = /^([0-9a-f-]{36})-([0-9a-f]{32})$/;
const haveRedis = requireRedis(inject('redisUrl'), 'the signed task handle test') && hasRedisServer();

const rawId = (handle: string): string => handle.slice(0, handle.lastIndexOf('-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function submit(s: Stack, key: string, file: string): Promise<string> {
  const res = await s.app.inject({
    method: 'POST',
    url: PATH,
    headers: { ...auth(key), 'X-DashScope-Async': 'enable' },
    payload: { model: 'text-embedding-async-v2', input: { url: `https://example.com/${file}.txt` } },
  });
  expect(res.statusCode).toBe(200);
  const id = res.json().output.task_id as string;
  expect(id).toMatch(HANDLE);
  return id;
}

const poll = (s: Stack, id: string, key: string) =>
  s.app.inject({ method: 'GET', url: `/api/v1/tasks/${id}`, headers: auth(key) });
const cancel = (s: Stack, id: string, key: string) =>
  s.app.inject({ method: 'POST', url: `/api/v1/tasks/${id}/cancel`, headers: auth(key) });
const list = async (s: Stack, key: string) => {
  const r = await s.app.inject({ method: 'GET', url: '/api/v1/tasks?page_size=100', headers: auth(key) });
  expect(r.statusCode).toBe(200);
  return r.json() as { data: { task_id: string }[]; total: number };
};

describe.skipIf(!haveRedis)('signed task handles', () => {
  let redis: OwnRedis;
  let one: Stack;
  let two: Stack;
  const extra: Stack[] = [];
  let first: string;

  /**
   * The 404 a caller gets for a task that is not theirs reads like the one for a task that does not exist, and is
   * given before DashScope (instance one's emulator, behind every instance) is asked.
   */
  async function expectNotFound(s: Stack, id: string, key: string): Promise<void> {
    // Same shape as `id`, so an unsigned id's ghost goes through the store like the id does.
    const ghost = HANDLE.test(id)
      ? `00000000-0000-4000-8000-00000000abcd-${'ab'.repeat(16)}`
      : '00000000-0000-4000-8000-00000000abcd';
    const before = upstreamCalls(one.emu, '/api/v1/tasks/').length;
    for (const r of [await poll(s, id, key), await cancel(s, id, key), await poll(s, ghost, key)]) {
      expect(r.statusCode).toBe(404);
      expect(r.json().code).toBe('NotFound');
      expect(r.json().message.replace(id, 'ID').replace(ghost, 'ID')).toBe('task ID not found');
    }
    expect(upstreamCalls(one.emu, '/api/v1/tasks/').length).toBe(before);
  }

  beforeAll(async () => {
    redis = new OwnRedis(await freePort());
    await redis.start();
    // The upstream budget is not what this file tests: off, so a Redis outage does not pace the polls (the governor
    // holds a budget in use for up to a window after losing Redis; test/ratelimit/ covers that).
    one = await startStack({ env: { REDIS_URL: redis.url, RATE_LIMIT_RPM: '0' } });
    two = await startStack({
      env: { REDIS_URL: redis.url, DASHSCOPE_BASE_URL: one.emu.url, RATE_LIMIT_RPM: '0' },
    });
    first = await submit(one, KEYS.alice, 'first');
  });
  afterAll(async () => {
    for (const s of [one, two, ...extra]) await s?.close();
    await redis?.kill();
  });

  it('hands out <DashScope task id>-<32 hex tag> and calls DashScope with the raw id', async () => {
    const [, raw] = HANDLE.exec(first)!;
    expect(first.length).toBe(69);
    const res = await poll(one, first, KEYS.alice);
    expect(res.statusCode).toBe(200);
    expect(res.json().output.task_id).toBe(first);
    const calls = upstreamCalls(one.emu, '/api/v1/tasks/').map((c) => c.url);
    expect(calls.at(-1)).toBe(`/api/v1/tasks/${raw}`);
    expect(calls.some((u) => u.includes(first))).toBe(false);
  });

  it('lets the owner poll on the other instance and cancel with the handle', async () => {
    const res = await poll(two, first, KEYS.alice);
    expect(res.statusCode).toBe(200);
    expect(res.json().output.task_id).toBe(first);

    const pending = await submit(one, KEYS.alice, 'to-cancel');
    const c = await two.app.inject({
      method: 'POST',
      url: `/api/v1/tasks/${pending}/cancel`,
      headers: { ...auth(KEYS.alice), 'content-type': 'application/json' },
    });
    expect(c.statusCode).toBe(200);
    // DashScope's cancel reply carries only a request_id; DashScope's raw id must not leak through it either.
    expect(c.body).not.toContain(rawId(pending));
    expect((await poll(one, pending, KEYS.alice)).json().output.task_status).toBe('CANCELED');
  });

  it('gives another key the same 404 as for a missing task, with the owner’s handle or a forged tag', async () => {
    const raw = rawId(first);
    const forgeries = [
      first, // alice's own handle
      `${raw}-${randomBytes(16).toString('hex')}`, // a random tag
      new TaskHandles('sk-some-other-upstream-key').issue(raw, 'bob'), // signed with the wrong secret
      first.replace(/.$/, (ch) => (ch === '0' ? '1' : '0')), // one digit off
    ];
    for (const s of [one, two]) {
      for (const id of forgeries) await expectNotFound(s, id, KEYS.bob);
    }
    // A tag that does not verify for the caller is refused even for the owner, without a store fallback.
    await expectNotFound(one, `${raw}-${'0'.repeat(32)}`, KEYS.alice);
  });

  it('still accepts an unsigned id through the owner store (tasks submitted before handles)', async () => {
    const raw = rawId(first);
    for (const s of [one, two]) {
      const res = await poll(s, raw, KEYS.alice);
      expect(res.statusCode).toBe(200);
      // The reply shows the handle, so a client that adopts it moves to the store-free form.
      expect(res.json().output.task_id).toBe(first);
      await expectNotFound(s, raw, KEYS.bob);
    }
  });

  it('refuses handles made under another TASK_HANDLE_SECRET (rotating it invalidates handles in flight)', async () => {
    const other = await startStack({
      env: { REDIS_URL: redis.url, DASHSCOPE_BASE_URL: one.emu.url, TASK_HANDLE_SECRET: 'x'.repeat(32) },
    });
    extra.push(other);
    await expectNotFound(other, first, KEYS.alice);
    const own = await submit(other, KEYS.alice, 'rotated');
    expect((await poll(other, own, KEYS.alice)).statusCode).toBe(200);
    expect((await poll(one, own, KEYS.alice)).statusCode).toBe(404);
    expect(() =>
      loadConfig({
        DASHSCOPE_API_KEY: UPSTREAM_KEY,
        GATEWAY_ALLOW_ANONYMOUS: 'true',
        TASK_HANDLE_SECRET: 'too-short',
      }),
    ).toThrow(/TASK_HANDLE_SECRET: must be at least 32 characters/);
  });

  it('keeps every owner reaching their tasks while Redis is down and after it restarts empty; the list comes back', async () => {
    // Tasks instance two has never heard of, so nothing about them is in its local memory.
    const mine = [await submit(one, KEYS.alice, 'a1'), await submit(one, KEYS.alice, 'a2')];
    const bobs = await submit(one, KEYS.bob, 'b1');

    await redis.kill();
    for (const s of [one, two]) {
      for (const id of mine) expect((await poll(s, id, KEYS.alice)).statusCode).toBe(200);
      await expectNotFound(s, mine[0]!, KEYS.bob);
    }

    await redis.start(); // empty: no persistence
    const probe = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      // Instance one writes back what it recorded once it sees the new Redis (reconnect, marker gone).
      const key = OWNER_KEY_PREFIX + rawId(mine[1]!);
      const until = Date.now() + 15_000;
      while (Date.now() < until && (await probe.get(key)) === null) await sleep(100);
      expect(await probe.get(key)).toBe('alice');
      expect(await probe.get(OWNER_KEY_PREFIX + rawId(bobs))).toBe('bob');
      const ttl = await probe.ttl(key);
      expect(ttl).toBeGreaterThan(OWNER_TTL_SEC - 120);
      expect(ttl).toBeLessThanOrEqual(OWNER_TTL_SEC);
    } finally {
      probe.disconnect();
    }

    for (const s of [one, two]) {
      for (const id of mine) expect((await poll(s, id, KEYS.alice)).statusCode).toBe(200);
      await expectNotFound(s, mine[0]!, KEYS.bob);
    }
    // A replica started after the restart knows nothing locally: its list comes from the written-back owners.
    const fresh = await startStack({
      env: { REDIS_URL: redis.url, DASHSCOPE_BASE_URL: one.emu.url, RATE_LIMIT_RPM: '0' },
    });
    extra.push(fresh);
    for (const s of [fresh, two]) {
      const alice = await list(s, KEYS.alice);
      const ids = alice.data.map((t) => t.task_id);
      for (const id of [...mine, first]) expect(ids).toContain(id);
      expect(ids).not.toContain(bobs);
      for (const id of ids) expect(id).toMatch(HANDLE);
      expect(alice.total).toBe(alice.data.length);
      const bob = await list(s, KEYS.bob);
      expect(bob.data.map((t) => t.task_id)).toEqual([bobs]);
      // Each handle in the list works as given.
      expect((await poll(s, ids[0]!, KEYS.alice)).statusCode).toBe(200);
    }
  });

  it('writes owners back when its marker vanishes without a reconnect (a flushed Redis), on the periodic check', async () => {
    const client = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    try {
      const store = new RedisTaskOwnerStore(client, { prefix: 'test:write-back:', markerCheckMs: 200 });
      expect(await store.record('task-1', 'carol')).toEqual({ shared: true });
      // The first check (on connecting) sets the marker; flush only after it, so the flush is what removes it.
      const setUp = Date.now() + 5_000;
      while (Date.now() < setUp && (await client.keys('test:write-back:replica-marker:*')).length === 0)
        await sleep(20);
      expect(await client.keys('test:write-back:replica-marker:*')).toHaveLength(1);
      await client.flushall();
      expect(await client.get('test:write-back:task-1')).toBeNull();
      const until = Date.now() + 5_000;
      while (Date.now() < until && (await client.get('test:write-back:task-1')) === null) await sleep(50);
      expect(await client.get('test:write-back:task-1')).toBe('carol');
    } finally {
      client.disconnect();
    }
  });
});
