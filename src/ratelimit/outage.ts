/**
 * Shared mode and its outages: the switch to this replica's local share when Redis stops answering, and the way
 * back, writing this replica's recent calls into the shared log first (also after a restart that emptied Redis,
 * noticed through ioredis's 'ready' before anything is admitted again).
 */
import { randomBytes } from 'node:crypto';
import type { RedisClient } from '../redis.js';
import type { Budget, BudgetMode, BudgetStatus, GovernorLogger } from './budget-state.js';
import { LocalLog } from './local-log.js';
import type { SharedLog } from './shared-log.js';

export class Outage {
  since = Date.now();
  reason: string | undefined;
  private recovering = false;
  private recoveryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    public mode: BudgetMode,
    private readonly redis: RedisClient | undefined,
    private readonly shared: SharedLog | undefined,
    private readonly budgets: () => Budget[],
    private readonly log: GovernorLogger,
    private readonly replicas: number,
  ) {
    redis?.on('close', () => this.degrade(new Error('connection to Redis closed')));
    // Proactive: a Redis that came back (maybe empty) gets this replica's calls before anything is admitted.
    redis?.on('ready', () => void this.recover());
  }

  status(queued: number, paced: number): BudgetStatus {
    const s: BudgetStatus = { mode: this.mode, degraded: this.mode === 'fallback', queued, paced };
    if (this.mode === 'fallback') {
      s.since = new Date(this.since).toISOString();
      if (this.reason !== undefined) s.reason = this.reason;
    }
    return s;
  }

  /** The governor closed: the connection closing now is the shutdown, not an outage. */
  stop(): void {
    this.stopped = true;
    if (this.recoveryTimer) clearInterval(this.recoveryTimer);
    this.recoveryTimer = undefined;
  }

  /** At start-up: a Redis that does not answer within `timeoutMs` starts this replica on its local share. */
  async waitForRedis(timeoutMs: number): Promise<void> {
    const redis = this.redis;
    if (!redis || this.mode !== 'shared' || redis.status === 'ready') return;
    const ready = await new Promise<boolean>((resolve) => {
      const onReady = (): void => {
        clearTimeout(t);
        resolve(true);
      };
      const t = setTimeout(() => {
        redis.off('ready', onReady);
        resolve(false);
      }, timeoutMs);
      redis.once('ready', onReady);
    });
    if (!ready) this.degrade(new Error(`Redis not reachable within ${timeoutMs} ms of start-up`));
  }

  // ---- Redis outage and return ----

  degrade(err: unknown): void {
    if (this.mode !== 'shared' || !this.shared || this.stopped) return;
    this.mode = 'fallback';
    this.since = Date.now();
    this.reason = err instanceof Error ? err.message : String(err);
    for (const b of this.budgets()) {
      // The shared calls this replica knows of (reserved by any replica, some still in the future) may fill the
      // window until the last of them leaves it; other replicas' calls are not known, so the local share starts only
      // after that. Strict on purpose: a budget in use when Redis went away answers 429 (with a true Retry-After) for
      // at most one window rather than risk DashScope's own limits; a budget idle for a window falls back at once.
      b.fallbackFloor = Number.isFinite(b.sharedTail) ? b.sharedTail + b.limits.spanMs : 0;
      b.local = new LocalLog(b.keepMs);
    }
    this.log.warn(
      { err: this.reason, replicas: this.replicas },
      'Redis unreachable: the upstream budget falls back to this replica’s share (limit / RATE_LIMIT_REPLICAS) until Redis answers again',
    );
    // ioredis reconnects by itself and emits 'ready'; the timer covers a Redis that accepts connections but fails.
    this.recoveryTimer ??= setInterval(() => void this.recover(), 2_000);
    this.recoveryTimer.unref();
  }

  async recover(): Promise<void> {
    if (this.recovering || this.stopped || !this.shared || this.mode === 'off' || this.mode === 'memory')
      return;
    this.recovering = true;
    try {
      // Write back every recent call of this replica (shared-mode ones too: Redis may have come back empty).
      for (const b of this.budgets()) {
        b.gen = await this.shared.restore(
          b.numbers.name,
          b.gen,
          `${randomBytes(6).toString('hex')}`,
          b.keepMs,
          b.live(),
        );
      }
      if (this.mode === 'fallback') {
        this.mode = 'shared';
        if (this.recoveryTimer) clearInterval(this.recoveryTimer);
        this.recoveryTimer = undefined;
        this.log.info(
          { fallback_ms: Date.now() - this.since },
          'Redis reachable again: the upstream budget is shared across replicas again',
        );
        this.since = Date.now();
        this.reason = undefined;
      }
    } catch {
      // Still unreachable: the timer or the next 'ready' tries again.
    } finally {
      this.recovering = false;
    }
  }
}
