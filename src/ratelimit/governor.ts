/**
 * The governor: the gate in front of DashScope, per model budget (calls and tokens per minute, and per second).
 *
 * admit() reserves all of a request's calls in one atomic step, or refuses before any upstream call:
 *   - 400 INVALID_INPUT when the calls can never fit (an empty budget cannot start them within
 *     RATE_LIMIT_MAX_WAIT_MS), with the numbers and the largest request that fits;
 *   - 429 RATE_LIMITED when they fit later but not within the wait (or the request's deadline), with a Retry-After
 *     after which a retry would be admitted within its wait;
 *   - otherwise each call gets a start time (paced: never more than the per-second ceiling in any pace window,
 *     never more than the budget in any window) and the route waits for each with slot(i).
 * Ordering: within a replica, admissions take turns at the log round-robin by caller key (waiting-room.ts); at the
 * log, each request's calls go after every call already reserved, so nobody overtakes and nothing starves.
 *
 * Modes: shared (REDIS_URL: shared-log.ts, one Lua call per turn of the waiting room, however many requests it
 * decides), memory (local-log.ts), fallback (Redis unreachable: the local log with limit / RATE_LIMIT_REPLICAS,
 * starting only once the shared calls this replica last saw have left the window), and back, writing this
 * replica's calls into the shared log first. A Redis that comes back empty is detected by its missing generation;
 * every replica then writes back its recent calls and admission waits RATE_LIMIT_RESTORE_GRACE_MS, so the budget
 * also holds across restarts and failovers.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { BudgetAdmission, OpenAdmission } from './admission.js';
import {
  type Admission,
  type AdmissionRequest,
  Budget,
  type BudgetStatus,
  type Governor,
  type GovernorEvent,
  type GovernorLogger,
  type GovernorOptions,
  type Job,
} from './budget-state.js';
import { budgetScope } from './context.js';
import { decide } from './decide.js';
import { Outage } from './outage.js';
import { budgetNumbers, crowded, fitsEmpty, largestRequest, neverFits, shuttingDown } from './plan.js';
import type { UpstreamBudgetSettings } from './settings.js';
import { SharedLog } from './shared-log.js';

export type {
  Admission,
  AdmissionRequest,
  BudgetStatus,
  Governor,
  GovernorEvent,
  GovernorLogger,
  GovernorOptions,
  Permit,
} from './budget-state.js';

const SILENT: GovernorLogger = { info: () => {}, warn: () => {} };

/** Bounds of one waiting-room turn (one script call): its run time in Redis grows with the calls it places. */
const TURN_JOBS = 64;
const TURN_CALLS = 512;

export function createGovernor(opts: GovernorOptions): Governor {
  return new GovernorImpl(opts);
}

class GovernorImpl implements Governor {
  readonly cfg: UpstreamBudgetSettings;
  private readonly byModel = new Map<string, Budget | null>();
  readonly shared: SharedLog | undefined;
  private readonly log: GovernorLogger;
  private readonly replicaId = randomBytes(6).toString('hex');
  private seq = 0;
  readonly link: Outage;
  private closed = false;
  readonly lateMs: number;

  constructor(private readonly opts: GovernorOptions) {
    this.cfg = opts.settings;
    this.log = opts.log ?? SILENT;
    // Half the margin for a call that goes late, the other half for its trip to DashScope (where it is counted).
    this.lateMs = Math.max(10, this.cfg.marginMs / 2);
    const redis = opts.redis;
    this.shared = redis
      ? new SharedLog(redis, this.cfg.keyPrefix, this.cfg.replicas, this.replicaId)
      : undefined;
    const anyLimit = this.cfg.defaultLimit > 0 || this.cfg.rules.some((r) => r.limit > 0);
    this.link = new Outage(
      !anyLimit ? 'off' : redis ? 'shared' : 'memory',
      redis,
      this.shared,
      () => this.budgets(),
      this.log,
      this.cfg.replicas,
    );
    for (const rule of this.cfg.rules) {
      const b = rule.limit === 0 ? null : this.newBudget(rule.name, rule.limit, rule.tokens);
      for (const m of rule.models) this.byModel.set(m, b);
    }
  }

  private newBudget(name: string, limit: number, tokens: number | undefined): Budget {
    const rule = tokens === undefined ? { name, models: [], limit } : { name, models: [], limit, tokens };
    const n = budgetNumbers(rule, this.cfg);
    const keep = Math.max(this.cfg.windowMs, this.cfg.paceMs) + this.cfg.marginMs;
    return new Budget(n, this.cfg.marginMs, this.cfg.replicas, keep, this.cfg.queueSize);
  }

  private budgetFor(model: string | undefined): Budget | undefined {
    const key = model ?? '*';
    let b = this.byModel.get(key);
    if (b === undefined) {
      // Models without a rule get their own budget (DashScope limits each model separately).
      b = this.cfg.defaultLimit > 0 ? this.newBudget(key, this.cfg.defaultLimit, undefined) : null;
      this.byModel.set(key, b);
    }
    return b ?? undefined;
  }

  private budgets(): Budget[] {
    const out = new Set<Budget>();
    for (const b of this.byModel.values()) if (b) out.add(b);
    return [...out];
  }

  get active(): boolean {
    return this.link.mode !== 'off';
  }

  nextId(): string {
    return `${this.replicaId}:${++this.seq}`;
  }

  emit(e: GovernorEvent): void {
    this.opts.onEvent?.(e);
  }

  largestRequest(model: string | undefined, tokensPerCall = 0): number | undefined {
    const b = this.link.mode === 'off' ? undefined : this.budgetFor(model);
    return b ? largestRequest(b.limits, this.cfg.maxWaitMs, tokensPerCall) : undefined;
  }

  ruleModels(): string[] {
    return this.cfg.rules.flatMap((r) => r.models);
  }

  status(): BudgetStatus {
    let queued = 0;
    let paced = 0;
    for (const b of this.budgets()) {
      queued += b.room.size;
      paced += b.pacing;
    }
    return this.link.status(queued, paced);
  }

  async admit(r: AdmissionRequest): Promise<Admission> {
    if (r.signal?.aborted) throw r.signal.reason;
    const calls = Math.max(0, Math.floor(r.calls));
    const b = this.link.mode === 'off' ? undefined : this.budgetFor(r.model);
    if (this.closed) {
      if (b) this.emit({ type: 'refuse', budget: b.numbers.name, calls, status: 503, reason: 'closing' });
      throw shuttingDown();
    }
    if (!b || calls === 0) return new OpenAdmission(calls);
    const tokens = Array.from({ length: calls }, (_, i) => Math.max(0, Math.ceil(r.tokens[i] ?? 0)));
    if (!fitsEmpty(b.limits, tokens, this.cfg.maxWaitMs)) {
      const mean = Math.ceil(tokens.reduce((a, x) => a + x, 0) / calls);
      const largest = largestRequest(b.limits, this.cfg.maxWaitMs, mean);
      this.emit({ type: 'refuse', budget: b.numbers.name, calls, status: 400, reason: 'never fits' });
      throw neverFits(b.numbers, calls, largest, this.cfg.maxWaitMs);
    }
    const items = tokens.map((x) => ({ id: this.nextId(), tokens: x }));
    const starts = await this.reserve(b, items, r.deadline, r.caller, r.signal);
    const scope = budgetScope.getStore();
    if (scope) {
      const limit = this.link.mode === 'fallback' ? b.share.calls : b.numbers.limit;
      scope.headers = {
        limit,
        remaining: Math.max(0, limit - b.logged),
        resetMs: Math.max(0, (starts.at(-1) ?? 0) - Date.now()),
      };
    }
    this.emit({
      type: 'admit',
      budget: b.numbers.name,
      calls,
      waitMs: Math.max(0, (starts.at(-1) ?? 0) - Date.now()),
    });
    return new BudgetAdmission(
      this,
      b,
      items.map((i) => i.id),
      tokens,
      starts,
      r.deadline,
      r.caller,
    );
  }

  /** Queues the decision in the budget's waiting room; resolves with the start times or rejects with the refusal. */
  reserve(
    b: Budget,
    calls: { id: string; tokens: number }[],
    deadline: number,
    caller: string,
    signal?: AbortSignal,
  ): Promise<number[]> {
    if (b.room.full) {
      this.emit({ type: 'refuse', budget: b.numbers.name, calls: calls.length, status: 429, reason: 'full' });
      return Promise.reject(crowded(b.numbers, b.room.size));
    }
    const latest = Math.min(Date.now() + this.cfg.maxWaitMs, deadline);
    return new Promise<number[]>((resolve, reject) => {
      const job: Job = { calls, latest, resolve, reject };
      b.room.push(caller, job);
      this.pump(b);
    }).then((starts) => {
      // A caller that left while its turn came gives the units straight back.
      if (signal?.aborted) {
        this.giveBack(b, calls);
        throw signal.reason;
      }
      return starts;
    });
  }

  /**
   * One decision in flight per budget: whatever queued meanwhile goes in the next turn, up to TURN_JOBS requests
   * or TURN_CALLS calls, in the waiting room's fair order, as one script call. Under load that is one round trip
   * per turn instead of one per request (and no request waits for the round trips of all those before it).
   */
  private pump(b: Budget): void {
    if (b.pumping) return;
    b.pumping = true;
    void (async () => {
      for (;;) {
        const jobs: Job[] = [];
        let calls = 0;
        while (jobs.length < TURN_JOBS && calls < TURN_CALLS) {
          const job = b.room.shift();
          if (!job) break;
          jobs.push(job);
          calls += job.calls.length;
        }
        if (jobs.length === 0) break;
        try {
          await decide(this, b, jobs);
        } catch (err) {
          // decide settles every job itself; this only keeps a bug from leaving the room pumping forever.
          for (const job of jobs) job.reject(err);
        }
      }
      b.pumping = false;
    })();
  }

  giveBack(b: Budget, items: { id: string; tokens: number }[]): void {
    for (const i of items) b.own.delete(i.id);
    b.local.remove(items);
    if (this.shared && this.link.mode === 'shared') {
      this.shared.release(b.numbers.name, items).catch((err: unknown) => this.link.degrade(err));
    }
  }

  note(b: Budget, extraTokens: number, holdMs: number): void {
    if (holdMs > 0) {
      b.holdUntil = Math.max(b.holdUntil, Date.now() + holdMs);
      this.log.warn(
        { budget: b.numbers.name, hold_ms: Math.round(holdMs) },
        'DashScope answered 429: every replica holds off calls for this budget',
      );
    }
    b.local.addTokens(extraTokens);
    if (this.shared && this.link.mode === 'shared') {
      this.shared.note(b.numbers.name, extraTokens, holdMs).catch((err: unknown) => this.link.degrade(err));
    }
  }

  wait(b: Budget, ms: number): void {
    this.emit({ type: 'wait', budget: b.numbers.name, ms });
  }

  async close(): Promise<void> {
    this.closed = true;
    const until = Date.now() + this.cfg.maxWaitMs + 1_000;
    while (this.budgets().some((b) => b.room.size > 0 || b.pumping) && Date.now() < until) await sleep(20);
    this.link.stop();
  }

  async waitForRedis(timeoutMs: number): Promise<void> {
    await this.link.waitForRedis(timeoutMs);
    if (this.shared && this.link.mode === 'shared') {
      // Best effort: without it the first admission takes the mapping itself.
      await this.shared.warm().catch((err: unknown) => this.log.warn({ err }, 'Redis clock sync failed'));
    }
  }
}
