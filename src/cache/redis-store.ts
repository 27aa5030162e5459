/**
 * The shared tier: entries in Redis under `<prefix><key>` with a TTL, so every replica serves what any replica
 * paid for. Only single-key commands (GET, SET … EX): the keys of one request hash to different slots, so this
 * works unchanged on a Redis Cluster (ioredis routes each command to its node). The commands of one lookup are
 * issued together and share the connection's pipeline; nothing waits on one before sending the next.
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
    const lookups = Promise.all(
      keys.map(async (key, i) => {
        try {
          const v = await this.redis.getBuffer(this.opts.keyPrefix + key);
          if (v) out[i] = v;
          return true;
        } catch (err) {
          this.failed(err);
          return false;
        }
      }),
    );
    const result = await Promise.race([lookups, deadline]);
    clearTimeout(timer);
    if (result === 'timeout') {
      this.timeouts++;
      // Values that arrive later must not change what this request already decided.
      return new Array<Buffer | undefined>(keys.length).fill(undefined);
    }
    if (result.every(Boolean)) this.succeeded();
    return out;
  }

  /** Fire and forget: starts the writes and returns; failures are counted, never thrown. */
  setMany(items: readonly (readonly [string, Buffer])[]): void {
    for (const [key, value] of items) {
      if (this.pending >= this.opts.maxPendingWrites) {
        this.writesDropped++;
        continue;
      }
      this.pending++;
      this.redis
        .set(this.opts.keyPrefix + key, value, 'EX', this.opts.ttlSec)
        .then(
          () => this.succeeded(),
          (err: unknown) => this.failed(err),
        )
        .finally(() => {
          if (--this.pending === 0) for (const w of this.idleWaiters.splice(0)) w();
        });
    }
  }

  /** Resolves once no write is in flight (tests, and a graceful shutdown that wants its writes to land). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
