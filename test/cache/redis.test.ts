/**
 * The Redis tier against a real redis-server: two cache instances (two replicas) share hits through it, entries
 * carry the TTL, a Redis hit printed as float text is printed once, and a Redis that is down, dies, hangs or holds
 * garbage produces misses, never failures.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { EmbeddingCache, type EmbeddingCacheSettings } from '../../src/cache/cache.js';
import type { CachedItem } from '../../src/cache/entry.js';
import { createRedis, type RedisClient } from '../../src/redis.js';
import { hasRedisServer, OwnRedis, requireRedis, uniquePrefix } from '../ratelimit/support.js';
import { freePort } from '../support/ports.js';
import { RedisCluster } from '../support/redis-cluster.js';

const redisUrl = inject('redisUrl');
const haveRedis = requireRedis(redisUrl, 'the embedding cache Redis tier test');

const settings = (keyPrefix: string, over: Partial<EmbeddingCacheSettings> = {}): EmbeddingCacheSettings => ({
  enabled: true,
  scope: 'shared',
  cacheUrls: false,
  memoryBytes: 8 * 1024 * 1024,
  ttlSec: 3600,
  keyPrefix,
  redisTimeoutMs: 500,
  maxPendingWrites: 1000,
  ...over,
});

function vector(seed: number, n = 1024): Float32Array {
  const v = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    v[i] = (s / 2 ** 32 - 0.5) * 0.1;
  }
  return v;
}

const item = (seed: number): CachedItem => ({
  dense: vector(seed),
  sparse: Buffer.from(`[{"index":${seed},"value":0.5,"token":"t${seed}"}]`),
  tokens: 7,
  type: undefined,
});

const bits = (f: Float32Array | undefined): number[] =>
  Array.from(new Uint32Array(new Float32Array(f!).buffer));

function logSink(): { warn: (m: string) => void; info: (m: string) => void; lines: string[] } {
  const lines: string[] = [];
  return { warn: (m) => lines.push(`warn ${m}`), info: (m) => lines.push(`info ${m}`), lines };
}

const clients: Redis[] = [];
afterAll(async () => {
  for (const c of clients) c.disconnect();
});
/** A client as the gateway makes it (src/redis.ts); `ready` waits until it can take commands. */
async function client(url: string, ready = true): Promise<Redis> {
  // A redis:// URL gives a single-node client (Cluster and Sentinel have their own schemes).
  const c = (await createRedis(url)) as Redis;
  clients.push(c);
  // The gateway listens for errors too; without a listener ioredis prints every reconnect failure.
  c.on('error', () => {});
  if (ready) await whenReady(c);
  return c;
}

async function whenReady(c: Redis, ms = 10_000): Promise<void> {
  if (c.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('Redis did not become ready')), ms);
    c.once('ready', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

describe.skipIf(!haveRedis)('embedding cache, Redis tier', () => {
  it('shares hits between two instances (replicas) and stores entries with the TTL', async () => {
    const prefix = uniquePrefix('emb');
    const a = new EmbeddingCache(settings(prefix), await client(redisUrl));
    const b = new EmbeddingCache(settings(prefix), await client(redisUrl));
    const entries: [string, CachedItem][] = [1, 2, 3].map((i) => [`k${i}`, item(i)]);
    a.setMany(entries);
    await a.idle();

    const got = await b.getMany(['k1', 'k2', 'missing', undefined, 'k3']);
    expect(got.map((g) => g !== undefined)).toEqual([true, true, false, false, true]);
    expect(bits(got[0]!.dense)).toEqual(bits(entries[0]![1].dense));
    expect(got[4]!.sparse!.equals(entries[2]![1].sparse!)).toBe(true);
    expect(got[1]!.tokens).toBe(7);
    expect(b.stats()).toMatchObject({ redisHits: 3, memoryHits: 0, misses: 2, redisErrors: 0 });

    // The second lookup is served by b's own memory tier.
    await b.getMany(['k1']);
    expect(b.stats()).toMatchObject({ redisHits: 3, memoryHits: 1 });

    const probe = await client(redisUrl);
    const ttl = await probe.ttl(`${prefix}k1`);
    expect(ttl).toBeGreaterThan(3500);
    expect(ttl).toBeLessThanOrEqual(3600);
    // Redis holds float32, not text: 4 bytes a value plus a small header and the sparse bytes.
    const raw = await probe.getBuffer(`${prefix}k1`);
    expect(raw!.length).toBeLessThan(1024 * 4 + 100);
  });

  it('prints the float text of a Redis hit once and keeps it in the memory tier', async () => {
    const prefix = uniquePrefix('emb');
    const a = new EmbeddingCache(settings(prefix), await client(redisUrl));
    const b = new EmbeddingCache(settings(prefix), await client(redisUrl));
    a.setMany([['k', item(5)]]);
    await a.idle();
    const [hit] = await b.getMany(['k']);
    const before = b.memory.bytes;
    const text = b.floatText('k', hit!);
    expect(bits(new Float32Array(JSON.parse(text.toString('latin1')) as number[]))).toEqual(
      bits(item(5).dense),
    );
    expect(b.memory.bytes).toBe(before + text.length);
    const [again] = await b.getMany(['k']);
    expect(b.floatText('k', again!)).toBe(text);
    expect(b.stats().renders).toBe(1);
  });

  it('treats a value that is not an entry as a miss', async () => {
    const prefix = uniquePrefix('emb');
    const probe = await client(redisUrl);
    await probe.set(`${prefix}junk`, 'not an entry');
    const c = new EmbeddingCache(settings(prefix), await client(redisUrl));
    expect(await c.getMany(['junk'])).toEqual([undefined]);
    expect(c.stats()).toMatchObject({ redisUndecodable: 1, misses: 1, redisErrors: 0 });
  });
});

describe('embedding cache, Redis unavailable', () => {
  it('answers misses, not failures, when nothing listens at REDIS_URL, and logs once', async () => {
    const port = await freePort();
    const log = logSink();
    const c = new EmbeddingCache(settings('x:'), await client(`redis://127.0.0.1:${port}`, false), log);
    for (let i = 0; i < 5; i++) {
      expect(await c.getMany([`get${i}`, `other${i}`])).toEqual([undefined, undefined]);
      c.setMany([['a', item(1)]]);
    }
    await c.idle();
    // The memory tier still serves what this replica stored.
    expect((await c.getMany(['a']))[0]).toBeDefined();
    const s = c.stats();
    expect(s.redisErrors).toBeGreaterThanOrEqual(10);
    expect(s.memoryHits).toBe(1);
    expect(log.lines.filter((l) => l.startsWith('warn'))).toHaveLength(1);
  });

  it('answers misses when Redis accepts the connection but never replies', async () => {
    const sockets: Socket[] = [];
    const hole: Server = createServer((s) => {
      sockets.push(s);
      s.on('data', () => {});
    });
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
    const { port } = hole.address() as { port: number };
    // No ready check, so the connection counts as up and the GETs are sent into the void.
    const r = new Redis({ port, host: '127.0.0.1', enableReadyCheck: false, maxRetriesPerRequest: 0 });
    clients.push(r);
    await new Promise((res) => r.once('connect', res));
    const c = new EmbeddingCache(settings('x:', { redisTimeoutMs: 100 }), r);
    expect(await c.getMany(['a', 'b', 'c'])).toEqual([undefined, undefined, undefined]);
    expect(c.stats()).toMatchObject({ redisTimeouts: 1, misses: 3 });
    // Writes into the void: a bounded idle() still returns (a shutdown must not hang on them).
    c.setMany([['a', item(1)]]);
    await c.idle(100);
    expect(c.redis!.pendingWrites).toBe(1);
    r.disconnect();
    for (const s of sockets) s.destroy();
    await new Promise((res) => hole.close(res));
  });

  it.skipIf(!hasRedisServer())(
    'turns into misses when Redis dies, and into hits again when it is back',
    async () => {
      const own = new OwnRedis(await freePort());
      await own.start();
      try {
        const log = logSink();
        const ra = await client(own.url);
        const a = new EmbeddingCache(settings('own:'), ra, log);
        a.setMany([['k', item(1)]]);
        await a.idle();
        await own.kill();
        // A replica with an empty memory tier: Redis was its only source of the entry.
        const rb = await client(own.url, false);
        const b = new EmbeddingCache(settings('own:'), rb);
        expect(await b.getMany(['k'])).toEqual([undefined]);
        a.setMany([['k2', item(2)]]);
        await a.idle();
        expect(a.stats().redisErrors).toBeGreaterThan(0);
        expect(b.stats().redisErrors).toBeGreaterThan(0);

        await own.start();
        // ioredis reconnects on its own (at most every 2 s); writes and reads then succeed again. The clients may
        // notice the restart at different moments, so the round trip is retried for a bounded time.
        await whenReady(ra);
        await whenReady(rb);
        let back: (CachedItem | undefined)[] = [undefined];
        for (const until = Date.now() + 10_000; back[0] === undefined && Date.now() < until; ) {
          a.setMany([['k3', item(3)]]);
          await a.idle();
          back = await b.getMany(['k3']);
          if (back[0] === undefined) await new Promise((res) => setTimeout(res, 100));
        }
        expect(bits(back[0]?.dense)).toEqual(bits(item(3).dense));
        expect(log.lines.some((l) => l.startsWith('info') && l.includes('reachable again'))).toBe(true);
      } finally {
        await own.kill();
      }
    },
  );
});

describe.skipIf(!haveRedis || !hasRedisServer())('embedding cache on a Redis Cluster', () => {
  it('shares hits between two instances across the slots of a real 3-node cluster', async () => {
    const cluster = new RedisCluster();
    await cluster.start();
    const clusterClients: RedisClient[] = [];
    try {
      const connect = async (): Promise<RedisClient> => {
        const c = await createRedis(cluster.url);
        c.on('error', () => {});
        clusterClients.push(c);
        if (c.status !== 'ready') {
          await new Promise<void>((resolve, reject) => {
            const t = setTimeout(() => reject(new Error('the cluster client did not become ready')), 10_000);
            c.once('ready', () => {
              clearTimeout(t);
              resolve();
            });
          });
        }
        return c;
      };
      const prefix = uniquePrefix('emb-cluster');
      const a = new EmbeddingCache(settings(prefix), await connect());
      const b = new EmbeddingCache(settings(prefix), await connect());
      // 24 keys hash to slots on every node: per-key commands, no CROSSSLOT.
      const entries: [string, CachedItem][] = Array.from({ length: 24 }, (_, i) => [`k${i}`, item(i + 1)]);
      a.setMany(entries);
      await a.idle();
      const got = await b.getMany(entries.map(([k]) => k));
      expect(got.every((g) => g !== undefined)).toBe(true);
      for (let i = 0; i < entries.length; i++)
        expect(bits(got[i]!.dense)).toEqual(bits(entries[i]![1].dense));
      expect(b.stats()).toMatchObject({ redisHits: 24, redisErrors: 0 });
    } finally {
      for (const c of clusterClients) c.disconnect();
      await cluster.stop();
    }
  }, 60_000);
});
