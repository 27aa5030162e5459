/**
 * Task ownership: a caller sees, polls, cancels and lists only the tasks its own gateway key submitted.
 * Run twice: with the in-memory owner store (one gateway), and with Redis (two gateway replicas sharing one
 * Redis and one upstream: submit through replica 1, read through replica 2).
 */
import { Redis } from 'ioredis';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { OWNER_KEY_PREFIX, OWNER_TTL_SEC } from '../../src/tasks/index.js';
import { auth, KEYS, type StackOptions, upstreamCalls, useReplicas, useStack } from '../helpers.js';

const PATH = '/api/v1/services/embeddings/text-embedding/text-embedding';
const redisUrl = inject('redisUrl');

if (!redisUrl) {
  const msg =
    'no Redis available (REDIS_URL unset and no redis-server): the Redis task-ownership test is SKIPPED';
  if (process.env.CI === 'true') throw new Error(`${msg}; CI=true makes this fatal`);
  process.stderr.write(`\n!!! WARNING: ${msg} !!!\n\n`);
}

interface Variant {
  name: string;
  /** Gateways in front of one upstream: tasks are submitted through the first and read through the last. */
  replicas: number;
  opts: StackOptions;
  skip: boolean;
}

const variants: Variant[] = [
  { name: 'in-memory owner store', replicas: 1, opts: {}, skip: false },
  {
    name: 'Redis owner store shared by two replicas',
    replicas: 2,
    opts: { env: { REDIS_URL: redisUrl } },
    skip: !redisUrl,
  },
];

for (const v of variants) {
  describe.skipIf(v.skip)(`task ownership (${v.name})`, () => {
    const replicas = useReplicas(v.replicas, v.opts);
    const submitVia = replicas[0]!;
    const readVia = replicas[replicas.length - 1]!;
    let taskId: string;

    beforeAll(async () => {
      const res = await submitVia.app.inject({
        method: 'POST',
        url: PATH,
        headers: { ...auth(KEYS.alice), 'X-DashScope-Async': 'enable' },
        payload: { model: 'text-embedding-async-v2', input: { url: 'https://example.com/alice.txt' } },
      });
      expect(res.statusCode).toBe(200);
      taskId = res.json().output.task_id;
    });

    it('gives key B a 404 on get and cancel, the same answer as for a task that does not exist, and never asks DashScope', async () => {
      const before = upstreamCalls(submitVia.emu, '/api/v1/tasks/').length;
      const get = await readVia.app.inject({
        method: 'GET',
        url: `/api/v1/tasks/${taskId}`,
        headers: auth(KEYS.bob),
      });
      const cancel = await readVia.app.inject({
        method: 'POST',
        url: `/api/v1/tasks/${taskId}/cancel`,
        headers: auth(KEYS.bob),
      });
      const ghostId = '00000000-0000-4000-8000-000000000000';
      const ghost = await readVia.app.inject({
        method: 'GET',
        url: `/api/v1/tasks/${ghostId}`,
        headers: auth(KEYS.bob),
      });
      for (const r of [get, cancel, ghost]) {
        expect(r.statusCode).toBe(404);
        expect(r.json().code).toBe('NotFound');
      }
      expect(get.json().message.replace(taskId, 'ID')).toBe(ghost.json().message.replace(ghostId, 'ID'));
      expect(upstreamCalls(submitVia.emu, '/api/v1/tasks/').length).toBe(before);
    });

    it('leaves the task out of key B’s list and shows it in key A’s, with total counting the caller’s tasks', async () => {
      // Bob has a task of his own, so the filter is seen to keep his and drop Alice's.
      const bobRes = await submitVia.app.inject({
        method: 'POST',
        url: PATH,
        headers: { ...auth(KEYS.bob), 'X-DashScope-Async': 'enable' },
        payload: { model: 'text-embedding-async-v1', input: { url: 'https://example.com/bob.txt' } },
      });
      const bobTask = bobRes.json().output.task_id as string;

      const list = async (key: string) => {
        const r = await readVia.app.inject({
          method: 'GET',
          url: '/api/v1/tasks?page_no=1&page_size=100',
          headers: auth(key),
        });
        expect(r.statusCode).toBe(200);
        return r.json() as { data: { task_id: string }[]; total: number; page_size: number };
      };
      const bob = await list(KEYS.bob);
      expect(bob.data.map((t) => t.task_id)).toEqual([bobTask]);
      expect(bob.total).toBe(1);
      expect(bob.page_size).toBe(100);
      const alice = await list(KEYS.alice);
      expect(alice.data.map((t) => t.task_id)).toContain(taskId);
      expect(alice.data.map((t) => t.task_id)).not.toContain(bobTask);
      expect(alice.total).toBe(alice.data.length);
      // The query parameters were passed on.
      const listCalls = upstreamCalls(submitVia.emu, '/api/v1/tasks?');
      expect(listCalls.at(-1)!.url).toBe('/api/v1/tasks?page_no=1&page_size=100');
    });

    it('lets key A poll its task through the other replica', async () => {
      const res = await readVia.app.inject({
        method: 'GET',
        url: `/api/v1/tasks/${taskId}`,
        headers: auth(KEYS.alice),
      });
      expect(res.statusCode).toBe(200);
      expect(res.json().output.task_id).toBe(taskId);
    });

    if (v.name.startsWith('Redis')) {
      it('stores the owner in Redis under a prefixed key with a TTL', async () => {
        const r = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
        try {
          await r.connect();
          expect(await r.get(OWNER_KEY_PREFIX + taskId)).toBe('alice');
          const ttl = await r.ttl(OWNER_KEY_PREFIX + taskId);
          expect(ttl).toBeGreaterThan(OWNER_TTL_SEC - 60);
          expect(ttl).toBeLessThanOrEqual(OWNER_TTL_SEC);
        } finally {
          r.disconnect();
        }
      });
    }
  });
}

describe('task ownership while Redis is unreachable', () => {
  // Port 1 on loopback: nothing listens, so every Redis command fails at once.
  const s = useStack({ env: { REDIS_URL: 'redis://127.0.0.1:1' } });

  it('still hands out the task id (this replica remembers the owner) and logs a warning', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: PATH,
      headers: { ...auth(KEYS.alice), 'X-DashScope-Async': 'enable' },
      payload: { model: 'text-embedding-async-v2', input: { url: 'https://example.com/a.txt' } },
    });
    expect(res.statusCode).toBe(200);
    const id = res.json().output.task_id as string;
    expect(s.logRecords().some((l) => l.level === 40 && String(l.msg).includes('Redis'))).toBe(true);
    const poll = await s.app.inject({ method: 'GET', url: `/api/v1/tasks/${id}`, headers: auth(KEYS.alice) });
    expect(poll.statusCode).toBe(200);
  });

  it('answers 503 with Retry-After, not a guessed 404, for a task only Redis could know', async () => {
    const res = await s.app.inject({
      method: 'GET',
      url: '/api/v1/tasks/00000000-0000-4000-8000-000000000001',
      headers: auth(KEYS.alice),
    });
    expect(res.statusCode).toBe(503);
    expect(res.json().code).toBe('ServiceUnavailable');
    expect(res.headers['retry-after']).toBe('1');
  });
});
