/**
 * The shared tier: entries in Redis under `<prefix><key>` with a TTL, so every replica serves what any replica
 * paid for. Only single-key commands (GET, SET … EX): the keys of one request hash to different slots, so this
 * works on a Redis Cluster too (ioredis routes each command to its node). Against a single Redis the commands of
 * one lookup or one store go out as one pipeline: one write and one round trip.
 *
 * Redis is an optimisation here, never a dependency: an error or a slow reply is a miss (lookups) or a skipped
 * write (stores), counted, and logged once per outage rather than once per request.
 */
import type { Cluster, Redis } from 'ioredis';

export interface CacheLog {
  warn(msg: string): void;
  info(msg: string): void;
}

export interface RedisStoreOptions {
  keyPrefix: string;
  ttlSec: number;
  /** A lookup that takes longer is answered as misses (the request goes upstream instead of waiting). */
  timeoutMs: number;
  /** Writes in flight at most; beyond it new writes are dropped (counted) so a slow Redis cannot pile up memory. */
  maxPendingWrites: number;
  log?: CacheLog | undefined;
}

export class RedisStore {
  errors = 0;
  timeouts = 0;
  writesDropped = 0;
  private pending = 0;
  private idleWaiters: (() => void)[] = [];
  private failing = false;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly opts: RedisStoreOptions,
  ) {}

  get pendingWrites(): number {
    return this.pending;
  }

  private failed(err: unknown): void {
    this.errors++;
    if (!this.failing) {
      this.failing = true;
      const msg = err instanceof Error ? err.message : String(err);
      this.opts.log?.warn(`embedding cache: Redis unreachable, serving misses until it answers (${msg})`);
    }
  }

  private succeeded(): void {
    if (this.failing) {
      this.failing = false;
      this.opts.log?.info('embedding cache: Redis reachable again');
    }
  }

  /** One value per key (undefined: absent, failed or too slow). Never throws. */
  async getMany(keys: readonly string[]): Promise<(Buffer | undefined)[]> {
    const out = new Array<Buffer | undefined>(keys.length).fill(undefined);
    if (keys.length === 0) return out;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.opts.timeoutMs);
    });
    const lookups = this.lookup(keys, out);
    const result = await Promise.race([lookups, deadline]);
    clearTimeout(timer);
    if (result === 'timeout') {
      this.timeouts++;
      // Values that arrive later must not change what this request already decided.
      return new Array<Buffer | undefined>(keys.length).fill(undefined);
    }
    if (result) this.succeeded();
    return out;
  }

  /**
   * Fills `out`; resolves true when every command answered. A single Redis gets one pipeline (one write, one
   * round trip); a Cluster gets one GET per key, which ioredis routes to each key's node (the keys of one request
   * live in different slots, so a pipeline or MGET across them is not allowed there).
   */
  private async lookup(keys: readonly string[], out: (Buffer | undefined)[]): Promise<boolean> {
    const prefix = this.opts.keyPrefix;
    if (!this.redis.isCluster) {
      try {
        const pipe = this.redis.pipeline();
        for (const key of keys) pipe.getBuffer(prefix + key);
        const replies = (await pipe.exec()) ?? [];
        let ok = replies.length === keys.length;
        replies.forEach(([err, value], i) => {
          if (err) {
            this.failed(err);
            ok = false;
          } else if (Buffer.isBuffer(value)) out[i] = value;
        });
        return ok;
      } catch (err) {
        this.failed(err);
        return false;
      }
    }
    const each = await Promise.all(
      keys.map(async (key, i) => {
        try {
          const v = await this.redis.getBuffer(prefix + key);
          if (v) out[i] = v;
          return true;
        } catch (err) {
          this.failed(err);
          return false;
        }
      }),
    );
    return each.every(Boolean);
  }

  /** Fire and forget: starts the writes and returns; failures are counted, never thrown. */
  setMany(items: readonly (readonly [string, Buffer])[]): void {
    const room = Math.max(0, this.opts.maxPendingWrites - this.pending);
    const batch = items.length > room ? items.slice(0, room) : items;
    this.writesDropped += items.length - batch.length;
    if (batch.length === 0) return;
    this.pending += batch.length;
    const done = (): void => {
      this.pending -= batch.length;
      if (this.pending === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
    const { keyPrefix, ttlSec } = this.opts;
    let writes: Promise<unknown>;
    if (!this.redis.isCluster) {
      // One pipeline: one write and one round trip for the whole batch.
      const pipe = this.redis.pipeline();
      for (const [key, value] of batch) pipe.set(keyPrefix + key, value, 'EX', ttlSec);
      writes = pipe.exec().then((replies) => {
        const err = replies?.find(([e]) => e)?.[0];
        if (err) throw err;
      });
    } else {
      writes = Promise.all(batch.map(([key, value]) => this.redis.set(keyPrefix + key, value, 'EX', ttlSec)));
    }
    writes
      .then(
        () => this.succeeded(),
        (err: unknown) => this.failed(err),
      )
      .finally(done);
  }

  /** Resolves once no write is in flight (tests, and a graceful shutdown that wants its writes to land). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
