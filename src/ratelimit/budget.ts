/**
 * The upstream budget: the gate every upstream attempt passes (Upstream.dispatch calls acquire() before each one,
 * so chunks of a split batch, retries and task polls all take a unit, and observe() after each reply).
 *
 * - Shared mode (REDIS_URL): one Lua call per attempt on a sliding-window log in Redis (redis-window.ts), so the
 *   budget holds summed over every replica, in any window.
 * - Memory mode (no REDIS_URL): the same sliding-window log in this process (window.ts).
 * - Fallback mode (Redis unreachable): each replica uses limit / RATE_LIMIT_REPLICAS locally, says so once in the
 *   log and in /readyz, and goes back to the shared log by itself when Redis answers again, first writing the calls
 *   it made on its own into the shared log so the window stays exact across the switch back.
 *
 * Exact where DashScope counts: a call's log entry is moved to the time its reply arrived, which is never before
 * DashScope received it. Under load the delay between the gateway's decision and DashScope's arrival grows (we
 * measured 0–250 ms with 300 requests in flight on two cores), and a log of decision times alone would let the
 * next window's calls arrive within the window of the previous ones. In shared mode the moves ride along with this
 * replica's next Redis call for the budget (or a batched flush at most every second), so a call still costs one
 * round trip.
 *
 * When the budget is spent, calls wait in a bounded per-budget queue (round-robin across caller keys, FIFO within
 * a key) for up to RATE_LIMIT_MAX_WAIT_MS; only the queue's pump asks Redis again, once per freed unit, not every
 * waiter. A call that cannot be served in time is refused at once with 429 and a Retry-After in whole seconds.
 * A DashScope 429 puts the budget on hold for the Retry-After it gave, in Redis, so every replica holds off.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../errors.js';
import type { RedisClient as Redis } from '../redis.js';
import type { UpstreamGate, UpstreamRequest } from '../upstream/client.js';
import { parseRetryAfter } from '../upstream/errors.js';
import { type BudgetScope, budgetScope } from './context.js';
import { FairQueue } from './fair-queue.js';
import { type LogEntry, RedisWindow } from './redis-window.js';
import type { UpstreamBudgetSettings } from './settings.js';
import { SlidingLog, type TakeResult } from './window.js';

/** The subset of a pino/Fastify logger the budget writes to. */
export interface BudgetLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export type BudgetMode = 'off' | 'memory' | 'shared' | 'fallback';

export interface BudgetStatus {
  mode: BudgetMode;
  /** True while a shared budget is configured but this replica is using its local share. */
  degraded: boolean;
  since?: string;
  reason?: string;
  /** Calls waiting for a unit on this replica. */
  queued: number;
}

interface Waiter {
  req: UpstreamRequest;
  scope: BudgetScope | undefined;
  deadline: number;
  resolve(): void;
  reject(err: unknown): void;
  /** Clears the deadline timer and the abort listener. */
  done(): void;
}

/** A unit taken for one upstream attempt. */
interface Admission {
  bucket: Bucket;
  member: string;
  /** Where the entry sits in the local log (Date.now() clock). */
  at: number;
  /** Logged only locally (memory or fallback mode), not in Redis. */
  local: boolean;
}

/** A decision; `admission` is set exactly when the call may go. */
interface Decision {
  result: TakeResult;
  admission?: Admission;
}

class Bucket {
  /** This replica's own calls (all modes): the whole budget in memory mode, its share in fallback mode. */
  readonly own: SlidingLog;
  /** Calls logged locally while Redis was unreachable (member → time); written to Redis on the way back. */
  readonly unsynced = new Map<string, number>();
  /** Entries to move in Redis on the next call for this budget (shared mode). */
  restamps: LogEntry[] = [];
  flushTimer: NodeJS.Timeout | undefined;
  holdUntil = 0;
  /** Earliest time a unit can come back, from the last refusal. */
  nextFreeAt = 0;
  readonly queue: FairQueue<Waiter>;
  pumping = false;
  wake: (() => void) | undefined;

  constructor(
    readonly name: string,
    readonly limit: number,
    readonly localLimit: number,
    spanMs: number,
    queueSize: number,
  ) {
    this.own = new SlidingLog(spanMs);
    this.queue = new FairQueue(queueSize);
  }
}

const MAX_RETRY_AFTER_SEC = 60; // LangChain only retries a 429 whose retry-after is at most 60 s.
const DEFAULT_HOLD_MS = 1000; // DashScope 429 without Retry-After

const shuttingDown = (): GatewayError =>
  new GatewayError('UPSTREAM_UNAVAILABLE', 'this gateway replica is shutting down; retry', {
    retryAfterSec: 1,
  });

export class UpstreamBudget implements UpstreamGate {
  /** Model → its budget; null for models whose rule says 0 (unlimited). */
  private readonly byModel = new Map<string, Bucket | null>();
  /** The unit each attempt in flight holds, so observe() can move its entry to the reply time. */
  private readonly inflight = new WeakMap<UpstreamRequest, Admission>();
  private readonly spanMs: number;
  /** How long a moved entry may wait for a ride before it is flushed on its own. */
  private readonly flushMs: number;
  private readonly shared: RedisWindow | undefined;
  private readonly replicaId = randomBytes(6).toString('hex');
  private seq = 0;
  private mode: BudgetMode;
  private since = Date.now();
  private reason: string | undefined;
  private recovering = false;
  private recoveryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly cfg: UpstreamBudgetSettings,
    private readonly redis: Redis | undefined,
    private readonly log: BudgetLogger,
  ) {
    this.spanMs = cfg.windowMs + cfg.marginMs;
    // A moved entry must reach Redis well before its original time leaves the window.
    this.flushMs = Math.max(10, Math.min(1000, Math.floor(cfg.windowMs / 4)));
    this.shared = redis ? new RedisWindow(redis, cfg.keyPrefix) : undefined;
    const anyLimit = cfg.defaultLimit > 0 || cfg.rules.some((r) => r.limit > 0);
    this.mode = !anyLimit ? 'off' : redis ? 'shared' : 'memory';
    for (const rule of cfg.rules) {
      const b = rule.limit === 0 ? null : this.newBucket(rule.name, rule.limit);
      for (const m of rule.models) this.byModel.set(m, b);
    }
    redis?.on('close', () => this.degrade(new Error('connection to Redis closed')));
    redis?.on('ready', () => void this.recover());
  }

  private newBucket(name: string, limit: number): Bucket {
    const local = Math.max(1, Math.floor(limit / this.cfg.replicas));
    return new Bucket(name, limit, local, this.spanMs, this.cfg.queueSize);
  }

  /** The budget a model's calls count against; undefined when they are not limited. */
  private bucketFor(model: string | undefined): Bucket | undefined {
    const key = model ?? '*';
    let b = this.byModel.get(key);
    if (b === undefined) {
      // Models without a rule get their own budget of RATE_LIMIT_RPM (DashScope limits each model separately).
      b = this.cfg.defaultLimit > 0 ? this.newBucket(key, this.cfg.defaultLimit) : null;
      this.byModel.set(key, b);
    }
    return b ?? undefined;
  }

  private buckets(): Bucket[] {
    const out = new Set<Bucket>();
    for (const b of this.byModel.values()) if (b) out.add(b);
    return [...out];
  }

  private nextMember(): string {
    return `${this.replicaId}:${++this.seq}`;
  }

  /** Every model named in RATE_LIMIT_MODELS. */
  ruleModels(): string[] {
    return this.cfg.rules.flatMap((r) => r.models);
  }

  status(): BudgetStatus {
    let queued = 0;
    for (const b of this.buckets()) queued += b.queue.size;
    const s: BudgetStatus = { mode: this.mode, degraded: this.mode === 'fallback', queued };
    if (this.mode === 'fallback') {
      s.since = new Date(this.since).toISOString();
      s.reason = this.reason;
    }
    return s;
  }

  /** Called once the app is ready: a Redis that does not answer within `timeoutMs` starts us on the local share. */
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

  // ---- the gate ----

  async acquire(req: UpstreamRequest): Promise<void> {
    if (this.mode === 'off') return;
    const b = this.bucketFor(req.model);
    if (!b) return;
    const signal = req.signal;
    if (signal?.aborted) throw signal.reason;
    const scope = budgetScope.getStore();
    // The earliest a unit can come back only moves later (entries leave the log in time order; moves and holds
    // only push it back), so a call that cannot wait that long is refused without asking Redis: a flood over the
    // budget costs no round trips.
    if (b.nextFreeAt > Date.now() + this.cfg.maxWaitMs) throw this.refusal(b, scope, 'late');
    if (b.queue.size === 0 && !this.closed) {
      const d = await this.take(b);
      if (d.admission) {
        if (signal?.aborted) {
          this.release(d.admission);
          throw signal.reason;
        }
        this.admit(req, scope, d.admission, d.result);
        return;
      }
      if (!d.result.ok) b.nextFreeAt = Date.now() + d.result.waitMs;
    }
    return this.enqueue(b, req, scope);
  }

  observe(req: UpstreamRequest, status: number, headers: IncomingHttpHeaders): void {
    const a = this.inflight.get(req);
    if (a) {
      this.inflight.delete(req);
      this.restamp(a, Date.now());
    }
    if (status !== 429 || this.mode === 'off') return;
    const b = this.bucketFor(req.model);
    if (!b) return;
    const sec = parseRetryAfter(headers['retry-after']);
    const ms = Math.min(
      MAX_RETRY_AFTER_SEC * 1000,
      sec === undefined ? DEFAULT_HOLD_MS : Math.max(1, sec * 1000),
    );
    const now = Date.now();
    if (b.holdUntil < now + ms) {
      this.log.warn(
        { budget: b.name, hold_ms: Math.round(ms), request_id: req.requestId },
        'DashScope answered 429: every replica holds off calls for this budget',
      );
      b.holdUntil = now + ms;
      b.nextFreeAt = Math.max(b.nextFreeAt, b.holdUntil);
    }
    if (this.shared && this.mode === 'shared') {
      this.shared.hold(b.name, ms).catch((err: unknown) => this.degrade(err));
    }
  }

  /** Stop: waiting calls get 503 (another replica can serve them), pumps and timers stop. */
  close(): void {
    this.closed = true;
    if (this.recoveryTimer) clearInterval(this.recoveryTimer);
    for (const b of this.buckets()) {
      if (b.flushTimer) clearTimeout(b.flushTimer);
      for (const [key, w] of b.queue.items()) {
        b.queue.remove(key, w);
        w.done();
        w.reject(shuttingDown());
      }
      b.wake?.();
    }
  }

  // ---- deciding and bookkeeping ----

  private async take(b: Bucket): Promise<Decision> {
    const now = Date.now();
    if (b.holdUntil > now) return { result: { ok: false, waitMs: b.holdUntil - now, held: true } };
    const member = this.nextMember();
    if (this.shared && this.mode === 'shared') {
      const carried = b.restamps;
      b.restamps = [];
      try {
        const result = await this.shared.take(b.name, b.limit, this.spanMs, member, carried);
        const at = Date.now();
        if (!result.ok) {
          if (result.held) b.holdUntil = Math.max(b.holdUntil, at + result.waitMs);
          return { result };
        }
        b.own.insert(at);
        return { result, admission: { bucket: b, member, at, local: false } };
      } catch (err) {
        this.degrade(err);
      }
    }
    const at = Date.now();
    const result = b.own.take(at, b.localLimit);
    if (!result.ok) return { result };
    if (this.shared) b.unsynced.set(member, at);
    return { result, admission: { bucket: b, member, at, local: true } };
  }

  private admit(req: UpstreamRequest, scope: BudgetScope | undefined, a: Admission, r: TakeResult): void {
    this.inflight.set(req, a);
    if (scope && r.ok)
      scope.headers = { limit: this.limitNow(a.bucket), remaining: r.remaining, resetMs: r.resetMs };
  }

  /** A unit taken for a caller that left before using it goes back. */
  private release(a: Admission): void {
    const b = a.bucket;
    b.own.release(a.at);
    if (a.local) b.unsynced.delete(a.member);
    else this.shared?.release(b.name, a.member).catch(() => {});
  }

  /** The call's reply arrived at `t`: its entry moves there (DashScope had it by then). */
  private restamp(a: Admission, t: number): void {
    const b = a.bucket;
    b.own.move(a.at, t);
    if (a.local && b.unsynced.has(a.member)) {
      b.unsynced.set(a.member, t);
      return;
    }
    // A shared entry, or a local one already written to Redis on the way back from an outage.
    if (this.mode !== 'shared' || this.closed || (a.local && !this.shared)) return;
    b.restamps.push({ member: a.member, t });
    b.flushTimer ??= setTimeout(() => {
      b.flushTimer = undefined;
      this.flush(b);
    }, this.flushMs);
    b.flushTimer.unref();
  }

  /** Moves that found no call to ride along with go on their own, batched. */
  private flush(b: Bucket): void {
    if (b.restamps.length === 0 || this.mode !== 'shared' || !this.shared) return;
    const carried = b.restamps;
    b.restamps = [];
    this.shared
      .take(b.name, 0, this.spanMs, this.nextMember(), carried)
      .catch((err: unknown) => this.degrade(err));
  }

  private limitNow(b: Bucket): number {
    return this.mode === 'shared' ? b.limit : b.localLimit;
  }

  // ---- waiting ----

  private enqueue(b: Bucket, req: UpstreamRequest, scope: BudgetScope | undefined): Promise<void> {
    if (this.closed) return Promise.reject(shuttingDown());
    const deadline = Date.now() + this.cfg.maxWaitMs;
    if (b.queue.full) return Promise.reject(this.refusal(b, scope, 'full'));
    if (b.nextFreeAt > deadline) return Promise.reject(this.refusal(b, scope, 'late'));
    const key = scope?.caller ?? '-';
    const signal = req.signal;
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        if (b.queue.remove(key, w)) {
          w.done();
          reject(signal!.reason);
        }
      };
      const timer = setTimeout(() => {
        if (b.queue.remove(key, w)) {
          w.done();
          reject(this.refusal(b, scope, 'late'));
        }
      }, this.cfg.maxWaitMs);
      const w: Waiter = {
        req,
        scope,
        deadline,
        resolve,
        reject,
        done: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      b.queue.push(key, w);
      this.pump(b);
    });
  }

  private pump(b: Bucket): void {
    if (b.pumping) return;
    b.pumping = true;
    this.runPump(b)
      .catch((err: unknown) => {
        // take() never throws by design; anything here is a bug: fail the waiters rather than hang them.
        for (const [key, w] of b.queue.items()) {
          b.queue.remove(key, w);
          w.done();
          w.reject(err);
        }
      })
      .finally(() => {
        b.pumping = false;
        if (b.queue.size > 0 && !this.closed) this.pump(b);
      });
  }

  private async runPump(b: Bucket): Promise<void> {
    while (b.queue.size > 0 && !this.closed) {
      const wait = b.nextFreeAt - Date.now();
      if (wait > 0) await this.sleep(b, wait);
      if (b.queue.size === 0 || this.closed) return;
      const d = await this.take(b);
      if (d.admission) {
        const w = b.queue.shift();
        if (!w) {
          this.release(d.admission);
          return;
        }
        w.done();
        this.admit(w.req, w.scope, d.admission, d.result);
        w.resolve();
        continue;
      }
      if (!d.result.ok) b.nextFreeAt = Date.now() + d.result.waitMs;
      // Nobody can be admitted before nextFreeAt: whoever must be answered before then is answered now.
      for (const [key, w] of b.queue.items()) {
        if (w.deadline < b.nextFreeAt && b.queue.remove(key, w)) {
          w.done();
          w.reject(this.refusal(b, w.scope, 'late'));
        }
      }
    }
  }

  private sleep(b: Bucket, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        b.wake = undefined;
        resolve();
      }, ms);
      b.wake = () => {
        clearTimeout(t);
        b.wake = undefined;
        resolve();
      };
    });
  }

  private refusal(b: Bucket, scope: BudgetScope | undefined, why: 'full' | 'late'): GatewayError {
    const untilFree = Math.max(0, b.nextFreeAt - Date.now());
    const limit = this.limitNow(b);
    // A full queue needs about queue / limit windows to drain; a late call at least until the next unit.
    const estimate =
      why === 'full' ? Math.max(untilFree, (b.queue.size / limit) * this.cfg.windowMs) : untilFree;
    const sec = Math.min(MAX_RETRY_AFTER_SEC, Math.max(1, Math.ceil(estimate / 1000)));
    if (scope) scope.headers = { limit, remaining: 0, resetMs: untilFree };
    const budget = `${limit} calls per ${this.cfg.windowMs / 1000} s to DashScope for ${b.name}`;
    const whose =
      this.mode === 'shared'
        ? 'shared by all gateway replicas'
        : this.mode === 'fallback'
          ? 'this replica’s share while Redis is unreachable'
          : 'this gateway';
    const reason =
      why === 'full'
        ? `${b.queue.size} calls are already waiting for it`
        : `no call can start within the ${this.cfg.maxWaitMs} ms a request may wait`;
    // Worded as pacing, never as a quota: LangChain gives up at once on a 429 that mentions a quota.
    // A refusal is an expected answer, not a fault: no stack trace to capture (it was ~5% of a 429's CPU in a flood).
    const stackLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return new GatewayError(
        'RATE_LIMITED',
        `the gateway is pacing its calls to DashScope: its upstream budget (${budget}, ${whose}) is in use and ${reason}; this is not an account limit, retry after ${sec} s`,
        { retryAfterSec: sec },
      );
    } finally {
      Error.stackTraceLimit = stackLimit;
    }
  }

  // ---- Redis outage and return ----

  private degrade(err: unknown): void {
    if (this.mode !== 'shared' || this.closed) return;
    this.mode = 'fallback';
    this.since = Date.now();
    this.reason = err instanceof Error ? err.message : String(err);
    for (const b of this.buckets()) {
      b.restamps = [];
      b.nextFreeAt = 0; // learnt from the shared log; the local share has its own
    }
    this.log.warn(
      { err: this.reason, replicas: this.cfg.replicas },
      'Redis unreachable: the upstream budget falls back to this replica’s share (RATE_LIMIT_RPM / RATE_LIMIT_REPLICAS) until Redis answers again',
    );
    // ioredis reconnects by itself and emits 'ready'; the timer covers a Redis that accepts connections but fails commands.
    this.recoveryTimer ??= setInterval(() => void this.recover(), 2_000);
    this.recoveryTimer.unref();
  }

  private async recover(): Promise<void> {
    if (this.mode !== 'fallback' || this.recovering || this.closed || !this.shared) return;
    if (this.redis?.status !== 'ready') return;
    this.recovering = true;
    try {
      // Write the calls made on the local share into the shared log (limit 0: log them, admit nothing), until
      // none are left: calls made while this runs are written by the next round.
      for (;;) {
        const pending = this.buckets().filter((b) => b.unsynced.size > 0);
        if (pending.length === 0) break;
        for (const b of pending) {
          const now = Date.now();
          const entries: LogEntry[] = [];
          for (const [member, t] of b.unsynced) if (now - t <= this.spanMs) entries.push({ member, t });
          const sent = [...b.unsynced.keys()];
          await this.shared.take(b.name, 0, this.spanMs, this.nextMember(), entries);
          for (const m of sent) b.unsynced.delete(m);
        }
      }
      this.mode = 'shared';
      for (const b of this.buckets()) b.nextFreeAt = 0;
      if (this.recoveryTimer) clearInterval(this.recoveryTimer);
      this.recoveryTimer = undefined;
      this.log.info(
        { fallback_ms: Date.now() - this.since },
        'Redis reachable again: the upstream budget is shared across replicas again',
      );
      this.since = Date.now();
      this.reason = undefined;
    } catch {
      // Still unreachable: stay on the local share; the timer or the next 'ready' tries again.
    } finally {
      this.recovering = false;
    }
  }
}
