/**
 * The Redis connection shared by everything that keeps state across replicas. Commands fail fast while Redis is
 * unreachable (no offline queue, one retry), so callers can fall back to local state instead of hanging;
 * ioredis keeps reconnecting in the background and callers notice when commands succeed again.
 *
 * REDIS_URL forms:
 *   redis://[user:pass@]host:port[/db]          one server (rediss:// with TLS)
 *   redis+cluster://[user:pass@]h1:p1,h2:p2     a Redis Cluster, given by seed nodes (rediss+cluster:// with TLS)
 *   redis+sentinel://[user:pass@]h1:p1,h2:p2/mastername[/db]   the master a Sentinel group names
 * Everything the gateway keeps in Redis uses keys whose hash tag ({…}) puts a budget's keys on one Cluster slot.
 */
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';

/** One server, a Sentinel-managed master, or a Cluster: the commands the gateway uses work on all three. */
export type RedisClient = Redis | Cluster;

export type RedisTarget =
  | { kind: 'single'; url: string }
  | { kind: 'cluster'; nodes: HostPort[]; tls: boolean; username?: string; password?: string }
  | {
      kind: 'sentinel';
      sentinels: HostPort[];
      name: string;
      db: number;
      tls: boolean;
      username?: string;
      password?: string;
    };

export interface HostPort {
  host: string;
  port: number;
}

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/;

function hostList(text: string, defaultPort: number): HostPort[] | undefined {
  const out: HostPort[] = [];
  for (const part of text.split(',')) {
    const m = HOST_PORT.exec(part.trim());
    const port = m?.[2] === undefined ? defaultPort : Number(m[2]);
    if (!m || port < 1 || port > 65535) return undefined;
    out.push({ host: m[1]!.replace(/^\[|\]$/g, ''), port });
  }
  return out.length > 0 ? out : undefined;
}

/** Parse REDIS_URL; a string says what is wrong with it. */
export function parseRedisUrl(raw: string): RedisTarget | string {
  const m = /^(rediss?)(\+cluster|\+sentinel)?:\/\/(?:([^@/]*)@)?([^/?#]+)(\/[^?#]*)?$/.exec(raw.trim());
  if (!m) {
    return 'must be redis://host:port, rediss://…, redis+cluster://h1:p1,h2:p2 or redis+sentinel://h1:p1,h2:p2/mastername';
  }
  const tls = m[1] === 'rediss';
  const variant = m[2];
  let username: string | undefined;
  let password: string | undefined;
  if (m[3] !== undefined) {
    const colon = m[3].indexOf(':');
    const user = decodeURIComponent(colon < 0 ? '' : m[3].slice(0, colon));
    password = decodeURIComponent(colon < 0 ? m[3] : m[3].slice(colon + 1));
    if (user !== '') username = user;
  }
  const auth = { ...(username ? { username } : {}), ...(password ? { password } : {}) };
  if (!variant) {
    if (m[4]!.includes(',')) return 'names several hosts: use redis+cluster:// or redis+sentinel://';
    return hostList(m[4]!, 6379) ? { kind: 'single', url: raw.trim() } : 'has an unreadable host:port';
  }
  if (variant === '+cluster') {
    const nodes = hostList(m[4]!, 6379);
    if (!nodes) return 'has an unreadable host:port list';
    if (m[5] && m[5] !== '/') return 'a Cluster has no database number: remove the path';
    return { kind: 'cluster', nodes, tls, ...auth };
  }
  const sentinels = hostList(m[4]!, 26379);
  if (!sentinels) return 'has an unreadable host:port list';
  const path = /^\/([A-Za-z0-9._-]{1,128})(?:\/(\d{1,2}))?\/?$/.exec(m[5] ?? '');
  if (!path) return 'must end with /mastername (and optionally /db): redis+sentinel://h1:p1,h2:p2/mymaster';
  return { kind: 'sentinel', sentinels, name: path[1]!, db: Number(path[2] ?? 0), tls, ...auth };
}

/** For config validation: undefined when REDIS_URL is usable. */
export function redisUrlProblem(raw: string): string | undefined {
  const t = parseRedisUrl(raw);
  return typeof t === 'string' ? t : undefined;
}

const COMMON: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  connectTimeout: 2_000,
  commandTimeout: 1_000,
  // Reconnect forever, at most every 2 s: Redis coming back must be noticed without a restart.
  retryStrategy: (times) => Math.min(100 * times, 2_000),
};

/** ioredis is imported only when REDIS_URL is set: a single-replica gateway does not pay its ~20 MB of RSS. */
export async function createRedis(url: string): Promise<RedisClient> {
  const target = parseRedisUrl(url);
  if (typeof target === 'string') throw new Error(`REDIS_URL ${target}`);
  const { Redis, Cluster } = await import('ioredis');
  if (target.kind === 'single') return new Redis(url, { ...COMMON, lazyConnect: false });
  const auth = {
    ...(target.username ? { username: target.username } : {}),
    ...(target.password ? { password: target.password } : {}),
  };
  if (target.kind === 'sentinel') {
    return new Redis({
      ...COMMON,
      ...auth,
      sentinels: target.sentinels,
      name: target.name,
      db: target.db,
      ...(target.tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
      sentinelRetryStrategy: (times) => Math.min(100 * times, 2_000),
    });
  }
  const opts: ClusterOptions = {
    enableOfflineQueue: false,
    clusterRetryStrategy: (times) => Math.min(100 * times, 2_000),
    redisOptions: { ...COMMON, ...auth, ...(target.tls ? { tls: {} } : {}) },
  };
  return new Cluster(target.nodes, opts);
}
