/**
 * Task owners in Redis, so every gateway replica answers the same: `SET <prefix><task_id> <owner> EX <ttl>`,
 * read back with one MGET per request. A local MemoryTaskOwnerStore sits in front: owners never change, so a
 * local hit is as good as Redis's answer and saves the round trip.
 * Redis down: a write keeps the local copy and reports `shared: false` (the task already exists upstream, so
 * its id must still reach the caller; only this replica will recognise it, and the route logs a warning);
 * a read that misses locally fails with TaskStoreUnavailable (503) rather than guessing.
 */
import type { RedisClient as Redis } from '../redis.js';
import { MemoryTaskOwnerStore } from './memory-store.js';
import {
  OWNER_TTL_SEC,
  type Owner,
  type RecordResult,
  type TaskOwnerStore,
  TaskStoreUnavailable,
} from './owner-store.js';

export const OWNER_KEY_PREFIX = 'dsgw:task-owner:';

/**
 * Resolves once the client's first connection attempt has settled (ready, or failed), or after `ms`.
 * Commands fail fast while the client is not connected (no offline queue), so without this wait the first
 * tasks submitted right after start-up would be recorded locally only. Later outages still fail fast.
 */
function firstConnection(redis: Redis, ms: number): Promise<void> {
  if (redis.status === 'ready' || redis.status === 'end') return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      redis.off('ready', done);
      redis.off('error', done);
      redis.off('end', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    redis.on('ready', done);
    redis.on('error', done);
    redis.on('end', done);
  });
}

export interface RedisStoreOptions {
  ttlSec?: number;
  /** Key prefix, so several gateways can share one Redis. */
  prefix?: string;
  local?: MemoryTaskOwnerStore;
  /** How long the first command may wait for the initial connection. */
  firstConnectMs?: number;
}

export class RedisTaskOwnerStore implements TaskOwnerStore {
  private readonly ttlSec: number;
  private readonly prefix: string;
  private readonly local: MemoryTaskOwnerStore;
  private readonly connected: Promise<void>;

  constructor(
    private readonly redis: Redis,
    opts: RedisStoreOptions = {},
  ) {
    this.ttlSec = opts.ttlSec ?? OWNER_TTL_SEC;
    this.prefix = opts.prefix ?? OWNER_KEY_PREFIX;
    this.local = opts.local ?? new MemoryTaskOwnerStore({ ttlSec: this.ttlSec });
    this.connected = firstConnection(redis, opts.firstConnectMs ?? 2_000);
  }

  async record(taskId: string, owner: Owner): Promise<RecordResult> {
    this.local.put(taskId, owner);
    await this.connected;
    try {
      await this.redis.set(this.prefix + taskId, owner, 'EX', this.ttlSec);
      return { shared: true };
    } catch {
      return { shared: false };
    }
  }

  async ownersOf(taskIds: readonly string[]): Promise<(Owner | undefined)[]> {
    const out = taskIds.map((id) => this.local.get(id));
    const missing: number[] = [];
    out.forEach((o, i) => {
      if (o === undefined) missing.push(i);
    });
    if (missing.length === 0) return out;
    await this.connected;
    let found: (string | null)[];
    try {
      found = await this.redis.mget(missing.map((i) => this.prefix + taskIds[i]!));
    } catch (err) {
      throw new TaskStoreUnavailable(err);
    }
    missing.forEach((idx, j) => {
      const owner = found[j];
      if (typeof owner === 'string') {
        out[idx] = owner;
        this.local.put(taskIds[idx]!, owner);
      }
    });
    return out;
  }
}
