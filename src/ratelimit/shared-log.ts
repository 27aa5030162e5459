/**
 * The reservation log of a budget in Redis: local-log.ts's algorithm as Lua, so one EVALSHA admits or refuses a
 * whole request (all its calls, all its tokens) atomically for every replica, on Redis's own clock (TIME).
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

export type ReserveReply =
  | { kind: 'admitted'; gen: string; starts: number[]; tail: number; logged: number }
  | { kind: 'refused'; gen: string; lastStart: number }
  | { kind: 'restore'; gen: string }
  | { kind: 'grace'; gen: string; waitMs: number };

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
  /** Per budget (in a Cluster each budget's node has its own clock). */
  private readonly clocks = new Map<string, Clock>();

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
  }

  /**
   * Redis's time → this process's clock. Every replica must start a call at the same moment relative to the log,
   * whatever each reply's latency, so one mapping per budget (NTP-style: the midpoint of the fastest recent round
   * trip) is applied to every start. Mapping each reply by its own arrival time would shift its calls by that
   * reply's delay (event-loop lag, a NOSCRIPT resend), which broke the per-second window in tests.
   */
  private toLocal(budget: string, redisNow: number, sent: number, received: number): number {
    const rtt = received - sent;
    const c = this.clocks.get(budget);
    if (!c || rtt <= c.rtt || received - c.at > CLOCK_MAX_AGE_MS) {
      this.clocks.set(budget, { theta: (sent + received) / 2 - redisNow, rtt, at: received });
    }
    return redisNow + this.clocks.get(budget)!.theta;
  }

  /** Before a budget's first reservation: a few round trips to its node for a good clock mapping. */
  async sync(budget: string): Promise<void> {
    if (this.clocks.has(budget)) return;
    const k = this.keys(budget);
    for (let i = 0; i < 3; i++) {
      const sent = Date.now();
      const now = Number(await this.cmd.dsgwGovClock(k.m));
      this.toLocal(budget, now, sent, Date.now());
    }
  }

  /** The keys of a budget; the braces put them on one Cluster slot. */
  keys(budget: string): { t: string; c: string; m: string; h: string } {
    const k = `${this.prefix}gov:{${budget}}`;
    return { t: `${k}:t`, c: `${k}:c`, m: `${k}:m`, h: `${k}:h` };
  }

  async reserve(
    budget: string,
    gen: string,
    candidate: string,
    graceMs: number,
    latestMs: number,
    lim: Limits,
    keepMs: number,
    calls: { id: string; tokens: number }[],
  ): Promise<ReserveReply> {
    const k = this.keys(budget);
    const args: (string | number)[] = [k.t, k.c, k.m, k.h, gen, candidate, graceMs, Math.floor(latestMs)];
    args.push(
      lim.calls,
      lim.spanMs,
      lim.perPace,
      lim.paceSpanMs,
      lim.tokens,
      lim.tokensPerPace,
      keepMs,
      calls.length,
      this.replicas,
    );
    for (const c of calls) args.push(c.id, c.tokens);
    const sent = Date.now();
    const r = await this.cmd.dsgwGovReserve(...args);
    const received = Date.now();
    const code = Number(r[0]);
    const g = String(r[1]);
    if (code === 2) return { kind: 'restore', gen: g };
    if (code === 3) return { kind: 'grace', gen: g, waitMs: Number(r[2]) };
    const local = this.toLocal(budget, Number(r[2]), sent, received);
    if (code === 0) {
      const off = Number(r[3]);
      return { kind: 'refused', gen: g, lastStart: off < 0 ? Number.POSITIVE_INFINITY : local + off };
    }
    return {
      kind: 'admitted',
      gen: g,
      tail: local + Number(r[3]),
      logged: Number(r[4]),
      starts: r.slice(5).map((v) => local + Number(v)),
    };
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
