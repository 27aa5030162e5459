/**
 * The reservation log of a budget in Redis: local-log.ts's algorithm as Lua, so one EVALSHA admits or refuses
 * whole requests (all their calls, all their tokens; every request waiting for the same turn) atomically for every
 * replica, on Redis's own clock (TIME).
 *
 * Keys (one hash tag per budget, so the scripts run on one Cluster slot):
 *   {b}:t   ZSET  member = call id, score = start time (ms, Redis clock)
 *   {b}:c   ZSET  member = call id, score = running token total up to that call (cum)
 *   {b}:m   HASH  gen (generation id), since (when gen began), total (running token total), base (cum pruned)
 *   {b}:h   STRING with PX: the hold after DashScope answered 429
 * A Redis that restarted empty has no {b}:m: the first script to notice starts a new generation, every replica
 * writes back its own recent calls (restore), and nothing is admitted for the grace period, so admission resumes
 * only once the log again holds what was really sent. Times travel as offsets from "now", so replica clocks need
 * not agree with Redis's.
 */
import type { RedisClient } from '../redis.js';
import type { Limits } from './plan.js';

import { CLOCK, NOTE, RELEASE, RESERVE, RESTORE } from './shared-log-lua.js';

type Reply = (string | number)[];

interface GovernorCommands {
  dsgwGovReserve(...args: (string | number)[]): Promise<Reply>;
  dsgwGovRestore(...args: (string | number)[]): Promise<Reply>;
  dsgwGovRelease(...args: (string | number)[]): Promise<number>;
  dsgwGovNote(...args: (string | number)[]): Promise<number>;
  dsgwGovClock(key: string): Promise<number>;
}

/** One request's outcome in a reservation: its calls' start times (this process's clock), or a refusal. */
export type Placement =
  | { ok: true; starts: number[]; tail: number }
  | { ok: false /** When its last call would have started (Infinity: never). */; lastStart: number };

export type ReserveReply =
  | { kind: 'decided'; gen: string; placements: Placement[]; logged: number }
  | { kind: 'restore'; gen: string }
  | { kind: 'grace'; gen: string; waitMs: number };

/** One request of a reservation: its calls, and how long from now its last call may start. */
export interface ReserveJob {
  latestMs: number;
  calls: { id: string; tokens: number }[];
}

export interface OwnCall {
  id: string;
  /** Start time on this process's clock. */
  t: number;
  tokens: number;
}

/** A clock mapping older than this is replaced by the next sample, however slow (clocks drift). */
const CLOCK_MAX_AGE_MS = 30_000;

/** The offset between this process's clock and one Redis node's, from the fastest recent round trip. */
interface Clock {
  /** local − Redis, at the middle of the round trip. */
  theta: number;
  rtt: number;
  at: number;
}

export class SharedLog {
  private readonly cmd: GovernorCommands;
  /** Per Redis node: one for a single server or Sentinel group, per budget in a Cluster (its node's clock). */
  private readonly clocks = new Map<string, Clock>();
  private readonly clockPerBudget: boolean;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    /** RATE_LIMIT_REPLICAS: how many write-backs end a restore grace early. */
    private readonly replicas: number,
    private readonly replicaId: string,
  ) {
    // defineCommand sends EVALSHA and falls back to EVAL when Redis lost its script cache (restart, failover).
    if (!('dsgwGovReserve' in redis)) {
      redis.defineCommand('dsgwGovReserve', { numberOfKeys: 4, lua: RESERVE });
      redis.defineCommand('dsgwGovRestore', { numberOfKeys: 4, lua: RESTORE });
      redis.defineCommand('dsgwGovRelease', { numberOfKeys: 3, lua: RELEASE });
      redis.defineCommand('dsgwGovNote', { numberOfKeys: 2, lua: NOTE });
      redis.defineCommand('dsgwGovClock', { numberOfKeys: 1, lua: CLOCK });
    }
    this.cmd = redis as unknown as GovernorCommands;
    this.clockPerBudget = redis.isCluster;
  }

  private clockKey(budget: string): string {
    return this.clockPerBudget ? budget : '';
  }

  /**
   * Redis's time → this process's clock. Every replica must start a call at the same moment relative to the log,
   * whatever each reply's latency, so one mapping per budget (NTP-style: the midpoint of the fastest recent round
   * trip) is applied to every start. Mapping each reply by its own arrival time would shift its calls by that
   * reply's delay (event-loop lag, a NOSCRIPT resend), which broke the per-second window in tests.
   */
  private toLocal(budget: string, redisNow: number, sent: number, received: number): number {
    const rtt = received - sent;
    const key = this.clockKey(budget);
    const c = this.clocks.get(key);
    if (!c || rtt <= c.rtt || received - c.at > CLOCK_MAX_AGE_MS) {
      this.clocks.set(key, { theta: (sent + received) / 2 - redisNow, rtt, at: received });
    }
    return redisNow + this.clocks.get(key)!.theta;
  }

  /**
   * Before a budget's first reservation: round trips to its node until one is quick (≤ 2 ms, at most 8), for a
   * mapping good to about a millisecond. A mapping taken while the event loop is busy (a burst at start-up) can be
   * tens of ms off, and a better sample later moves every later start by that much relative to the earlier ones,
   * which the margin then has to absorb; warm() takes it at start-up instead, when the loop is idle.
   */
  async sync(budget: string): Promise<void> {
    if (this.clocks.has(this.clockKey(budget))) return;
    const k = this.keys(budget);
    for (let i = 0; i < 8; i++) {
      const sent = Date.now();
      const now = Number(await this.cmd.dsgwGovClock(k.m));
      this.toLocal(budget, now, sent, Date.now());
      if (i >= 2 && this.clocks.get(this.clockKey(budget))!.rtt <= 2) break;
    }
  }

  /** At start-up: the clock mapping of a single server (a Cluster's nodes are synced per budget, on first use). */
  async warm(): Promise<void> {
    if (!this.clockPerBudget) await this.sync('');
  }

  /** The keys of a budget; the braces put them on one Cluster slot. */
  keys(budget: string): { t: string; c: string; m: string; h: string } {
    const k = `${this.prefix}gov:{${budget}}`;
    return { t: `${k}:t`, c: `${k}:c`, m: `${k}:m`, h: `${k}:h` };
  }

  /**
   * Places several requests (in order, each all or nothing) in one script call: a waiting room's turn costs one
   * round trip however many requests were waiting.
   */
  async reserve(
    budget: string,
    gen: string,
    candidate: string,
    graceMs: number,
    lim: Limits,
    keepMs: number,
    jobs: ReserveJob[],
  ): Promise<ReserveReply> {
    const k = this.keys(budget);
    const args: (string | number)[] = [k.t, k.c, k.m, k.h, gen, candidate, graceMs];
    args.push(
      lim.calls,
      lim.spanMs,
      lim.perPace,
      lim.paceSpanMs,
      lim.tokens,
      lim.tokensPerPace,
      keepMs,
      this.replicas,
      jobs.length,
    );
    for (const j of jobs) {
      args.push(Math.floor(j.latestMs), j.calls.length);
      for (const c of j.calls) args.push(c.id, c.tokens);
    }
    const sent = Date.now();
    const r = await this.cmd.dsgwGovReserve(...args);
    const received = Date.now();
    const code = Number(r[0]);
    const g = String(r[1]);
    if (code === 2) return { kind: 'restore', gen: g };
    if (code === 3) return { kind: 'grace', gen: g, waitMs: Number(r[2]) };
    const local = this.toLocal(budget, Number(r[2]), sent, received);
    const placements: Placement[] = [];
    let at = 4;
    for (let j = 0; j < jobs.length; j++) {
      const ok = Number(r[at]) === 1;
      const off = Number(r[at + 1]);
      const m = Number(r[at + 2]);
      at += 3;
      if (ok) {
        const starts: number[] = new Array<number>(m);
        for (let i = 0; i < m; i++) starts[i] = local + Number(r[at + i]);
        placements.push({ ok: true, starts, tail: local + off });
      } else {
        placements.push({ ok: false, lastStart: off < 0 ? Number.POSITIVE_INFINITY : local + off });
      }
      at += m;
    }
    return { kind: 'decided', gen: g, placements, logged: Number(r[3]) };
  }

  /** Writes back this replica's calls (a new generation is started when Redis has none); returns the generation. */
  async restore(
    budget: string,
    gen: string,
    candidate: string,
    keepMs: number,
    own: OwnCall[],
  ): Promise<string> {
    const k = this.keys(budget);
    const now = Date.now();
    const args: (string | number)[] = [
      k.t,
      k.c,
      k.m,
      k.h,
      gen,
      candidate,
      keepMs,
      this.replicaId,
      own.length,
    ];
    for (const c of own) args.push(c.id, Math.round(c.t - now), c.tokens);
    const r = await this.cmd.dsgwGovRestore(...args);
    return String(r[0]);
  }

  async release(budget: string, items: { id: string; tokens: number }[]): Promise<void> {
    const k = this.keys(budget);
    const args: (string | number)[] = [k.t, k.c, k.m, items.length];
    for (const i of items) args.push(i.id, i.tokens);
    await this.cmd.dsgwGovRelease(...args);
  }

  /** Tokens billed above the estimate, and/or a DashScope 429 hold, in one round trip. */
  async note(budget: string, extraTokens: number, holdMs: number): Promise<void> {
    const k = this.keys(budget);
    await this.cmd.dsgwGovNote(k.m, k.h, Math.max(0, extraTokens), Math.ceil(Math.max(0, holdMs)));
  }
}
