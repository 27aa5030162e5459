/**
 * The in-process tier: an LRU bounded in bytes, not entries, because an entry's size varies from a few hundred
 * bytes (a 64-dim vector) to ~100 KB (a 4,096-dim vector with its text). A Map keeps insertion order, so
 * "touch" is delete + set and the least recently used entry is the first key: O(1) get, set and evict.
 */
import { type CachedItem, entryBytes } from './entry.js';

interface Slot {
  item: CachedItem;
  bytes: number;
}

export class MemoryStore {
  private readonly map = new Map<string, Slot>();
  private used = 0;
  evictions = 0;

  constructor(readonly maxBytes: number) {}

  get bytes(): number {
    return this.used;
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): CachedItem | undefined {
    const slot = this.map.get(key);
    if (!slot) return undefined;
    this.map.delete(key);
    this.map.set(key, slot);
    return slot.item;
  }

  /** Stores `item`, evicting the least recently used entries until it fits; an entry larger than the bound is not kept. */
  set(key: string, item: CachedItem): void {
    const bytes = entryBytes(key, item);
    const old = this.map.get(key);
    if (old) {
      this.map.delete(key);
      this.used -= old.bytes;
    }
    if (bytes > this.maxBytes) return;
    while (this.used + bytes > this.maxBytes) {
      const first = this.map.entries().next();
      if (first.done) break;
      const [k, slot] = first.value;
      this.map.delete(k);
      this.used -= slot.bytes;
      this.evictions++;
    }
    this.map.set(key, { item, bytes });
    this.used += bytes;
  }

  clear(): void {
    this.map.clear();
    this.used = 0;
  }
}
