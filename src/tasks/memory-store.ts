/**
 * Task owners in this process's memory: the store when REDIS_URL is unset, and the local cache in front of
 * Redis otherwise. Bounded in both time (TTL) and size (oldest entries go first), so a busy gateway cannot
 * grow it without limit.
 */
import { OWNER_TTL_SEC, type Owner, type RecordResult, type TaskOwnerStore } from './owner-store.js';

export interface MemoryStoreOptions {
  ttlSec?: number;
  maxEntries?: number;
  now?: () => number;
}

export class MemoryTaskOwnerStore implements TaskOwnerStore {
  /** Insertion order = age order, so eviction takes from the front. */
  private readonly entries = new Map<string, { owner: Owner; expiresAt: number }>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(opts: MemoryStoreOptions = {}) {
    this.ttlMs = (opts.ttlSec ?? OWNER_TTL_SEC) * 1000;
    this.maxEntries = opts.maxEntries ?? 100_000;
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Synchronous form, for the Redis store's local cache. */
  put(taskId: string, owner: Owner): void {
    this.entries.delete(taskId);
    this.entries.set(taskId, { owner, expiresAt: this.now() + this.ttlMs });
    const now = this.now();
    for (const [id, e] of this.entries) {
      if (this.entries.size <= this.maxEntries && e.expiresAt > now) break;
      this.entries.delete(id);
    }
  }

  get(taskId: string): Owner | undefined {
    const e = this.entries.get(taskId);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      this.entries.delete(taskId);
      return undefined;
    }
    return e.owner;
  }

  /** The live entries with their remaining lifetime, oldest first: what a replica writes back to an empty Redis. */
  live(): { taskId: string; owner: Owner; ttlMs: number }[] {
    const now = this.now();
    const out: { taskId: string; owner: Owner; ttlMs: number }[] = [];
    for (const [taskId, e] of this.entries) {
      if (e.expiresAt > now) out.push({ taskId, owner: e.owner, ttlMs: e.expiresAt - now });
    }
    return out;
  }

  async record(taskId: string, owner: Owner): Promise<RecordResult> {
    this.put(taskId, owner);
    return { shared: false };
  }

  async ownersOf(taskIds: readonly string[]): Promise<(Owner | undefined)[]> {
    return taskIds.map((id) => this.get(id));
  }
}
