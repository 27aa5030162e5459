/**
 * Task owners in Redis, so every gateway replica answers the same: `SET <prefix><task_id> <owner> EX <ttl>`,
 * read back with one MGET per request. A local MemoryTaskOwnerStore sits in front: owners never change, so a
 * local hit is as good as Redis's answer and saves the round trip.
 * Redis down: a write keeps the local copy and reports `shared: false` (the task already exists upstream, so
 * its id must still reach the caller; only this replica will recognise it, and the route logs a warning);
 * a read that misses locally fails with TaskStoreUnavailable (503) rather than guessing.
 *
 * Redis restarted empty (or flushed): polls and cancels do not need the store (signed handles, ./handles.ts), but
 * the task list does. Each replica keeps a marker key of its own in Redis; when the marker is gone (checked on
 * every reconnect and periodically) the replica writes the owners it holds locally back to Redis. Best effort:
 * owners known only to a replica that restarted too are lost (its callers can still poll their handles).
 */
import { randomUUID } from 'node:crypto';
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
/** Owners written back per round trip. */
const WRITE_BACK_BATCH = 500;

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
  /** How often to check that Redis still has this replica's marker (besides on every reconnect). */
  markerCheckMs?: number;
}

/** The marker outlives many checks but not a dead replica for long. */
const MARKER_TTL_SEC = 3600;

export class RedisTaskOwnerStore implements TaskOwnerStore {
  private readonly ttlSec: number;
  private readonly prefix: string;
  private readonly local: MemoryTaskOwnerStore;
  private readonly connected: Promise<void>;
  /** Task ids cannot contain ':', so this key never collides with an owner record. */
  private readonly marker: string;
  private checking: Promise<void> | undefined;
  /** A check was asked for while one ran (a reconnect, say): run another when it ends. */
  private checkAgain = false;
  /** Counts connections: a marker is set only on the connection the write-back went over. */
  private connection = 0;

  constructor(
    private readonly redis: Redis,
    opts: RedisStoreOptions = {},
  ) {
    this.ttlSec = opts.ttlSec ?? OWNER_TTL_SEC;
    this.prefix = opts.prefix ?? OWNER_KEY_PREFIX;
    this.local = opts.local ?? new MemoryTaskOwnerStore({ ttlSec: this.ttlSec });
    this.connected = firstConnection(redis, opts.firstConnectMs ?? 2_000);
    this.marker = `${this.prefix}replica-marker:${randomUUID()}`;
    const check = (): void => void this.checkMarker();
    // 'ready' follows every (re)connection: a Redis that restarted empty is noticed at once.
    const ready = (): void => {
      this.connection++;
      check();
    };
    redis.on('ready', ready);
    const timer = setInterval(check, opts.markerCheckMs ?? 30_000);
    timer.unref();
    redis.once('end', () => {
      clearInterval(timer);
      redis.off('ready', ready);
    });
    void this.connected.then(check);
  }

  /**
   * Write this replica's owners back when Redis no longer has its marker (a new or emptied Redis), then set the
   * marker. One check at a time; a failure leaves the marker unset, so the next check tries again.
   */
  checkMarker(): Promise<void> {
    if (this.checking) {
      this.checkAgain = true;
      return this.checking;
    }
    if (this.redis.status !== 'ready') return Promise.resolve();
    const run = async (): Promise<void> => {
      const connection = this.connection;
      // XX: refresh the marker only if it is still there; null means Redis lost it.
      const present = await this.redis.set(this.marker, '1', 'EX', MARKER_TTL_SEC, 'XX');
      if (present === 'OK') return;
      await this.writeBack();
      // Reconnected meanwhile (perhaps to a Redis restarted empty): setting the marker there would hide the loss.
      if (connection !== this.connection) throw new Error('Redis reconnected during the write-back');
      await this.redis.set(this.marker, '1', 'EX', MARKER_TTL_SEC);
    };
    // Cleared in a later tick than this assignment, so a check that settles at once cannot leave it set.
    this.checking = run()
      .catch(() => {
        // Redis went away again: the next 'ready' or tick retries.
      })
      .finally(() => {
        this.checking = undefined;
        if (this.checkAgain) {
          this.checkAgain = false;
          void this.checkMarker();
        }
      });
    return this.checking;
  }

  /** NX: an owner already in Redis (written by another replica, identical by construction) keeps its TTL. */
  private async writeBack(): Promise<void> {
    const entries = this.local.live();
    for (let i = 0; i < entries.length; i += WRITE_BACK_BATCH) {
      const batch = this.redis.pipeline();
      for (const e of entries.slice(i, i + WRITE_BACK_BATCH)) {
        batch.set(this.prefix + e.taskId, e.owner, 'PX', Math.max(1, Math.ceil(e.ttlMs)), 'NX');
      }
      const results = await batch.exec();
      const failed = results?.find(([err]) => err !== null);
      if (!results || failed) throw failed?.[0] ?? new Error('write-back pipeline was not run');
    }
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
