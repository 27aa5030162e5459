/**
 * The scheduling arithmetic of a budget, pure: what limits a budget has (per window and per short "pace" window,
 * calls and tokens), the largest request that can ever be admitted, and the words of a refusal.
 */
import { GatewayError } from '../errors.js';
import { type Limits, LocalLog } from './local-log.js';
import type { BudgetRule, UpstreamBudgetSettings } from './settings.js';

export type { Limits } from './local-log.js';

/** The nominal numbers, for messages and status: per window and per pace window. */
export interface BudgetNumbers {
  name: string;
  limit: number;
  windowMs: number;
  perPace: number;
  paceMs: number;
  tokens: number;
  tokensPerPace: number;
}

/** DashScope's per-second ceiling from a per-minute limit: RPS = RPM / 60 (rounded up), plus the burst allowance. */
export function perPaceCeiling(limit: number, windowMs: number, paceMs: number, burst: number): number {
  if (limit <= 0) return 0;
  return Math.min(limit, Math.ceil((limit * paceMs) / windowMs) + burst);
}

export function budgetNumbers(rule: BudgetRule, s: UpstreamBudgetSettings): BudgetNumbers {
  const tokens = rule.tokens ?? s.defaultTokens;
  return {
    name: rule.name,
    limit: rule.limit,
    windowMs: s.windowMs,
    perPace: perPaceCeiling(rule.limit, s.windowMs, s.paceMs, s.burst),
    paceMs: s.paceMs,
    tokens,
    // TPS = TPM / 60; a single call larger than that is still allowed alone in its short window (see local-log).
    tokensPerPace: tokens > 0 ? Math.max(1, Math.floor((tokens * s.paceMs) / s.windowMs)) : 0,
  };
}

/**
 * The limits a log applies. `share` divides them (a replica's share while Redis is unreachable); the margin
 * stretches both windows, since DashScope counts a call when it arrives, a little after the gateway lets it go.
 */
export function limitsOf(n: BudgetNumbers, marginMs: number, share = 1): Limits {
  const part = (v: number): number => (v > 0 ? Math.max(1, Math.floor(v / share)) : 0);
  // A per-second ceiling smaller than the number of replicas cannot be split into whole calls per second: each
  // replica then gets one call per ceil(share / perPace) seconds instead, so the replicas together stay within it.
  const stretch = n.perPace > 0 && n.perPace < share ? Math.ceil(share / n.perPace) : 1;
  return {
    calls: part(n.limit),
    spanMs: n.windowMs + marginMs,
    perPace: part(n.perPace),
    paceSpanMs: n.paceMs * stretch + marginMs,
    tokens: part(n.tokens),
    tokensPerPace: part(n.tokensPerPace),
  };
}

/**
 * Whether `tokens` (one estimate per call) can ever be admitted: placed on an empty budget, does the last call
 * start within `maxWaitMs`? This is the 400 test: a request failing it fails however long the caller retries.
 */
export function fitsEmpty(lim: Limits, tokens: readonly number[], maxWaitMs: number): boolean {
  if (lim.tokens > 0 && tokens.some((x) => x > lim.tokens)) return false;
  const log = new LocalLog(Math.max(lim.spanMs, lim.paceSpanMs));
  const ids = tokens.map((_, i) => String(i));
  return log.reserve(ids, [...tokens], 0, maxWaitMs, lim).ok;
}

/**
 * The largest request, in calls of `tokensPerCall` each, that an empty budget admits within `maxWaitMs`
 * (the number a 400 quotes; the route multiplies it by its texts per call). Binary search over fitsEmpty.
 */
export function largestRequest(lim: Limits, maxWaitMs: number, tokensPerCall = 0): number {
  if (lim.tokens > 0 && tokensPerCall > lim.tokens) return 0;
  const fits = (k: number): boolean => fitsEmpty(lim, new Array<number>(k).fill(tokensPerCall), maxWaitMs);
  let lo = 1;
  if (!fits(1)) return 0;
  let hi = 2;
  while (fits(hi) && hi < 1_000_000) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

const seconds = (ms: number): string => `${Math.round(ms) / 1000} s`;

function describeBudget(n: BudgetNumbers): string {
  let d = `${n.limit} calls per ${seconds(n.windowMs)} and ${n.perPace} per ${seconds(n.paceMs)}`;
  if (n.tokens > 0)
    d += `, ${n.tokens} tokens per ${seconds(n.windowMs)} and ${n.tokensPerPace} per ${seconds(n.paceMs)}`;
  return d;
}

/** Builds an expected refusal without a stack trace (a refusal is an answer, not a fault; they come in floods). */
function quietError(...args: ConstructorParameters<typeof GatewayError>): GatewayError {
  const stackLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new GatewayError(...args);
  } finally {
    Error.stackTraceLimit = stackLimit;
  }
}

/** 400: the request needs more calls than the budget grants within the longest wait, even when idle. */
export function neverFits(n: BudgetNumbers, calls: number, largest: number, maxWaitMs: number): GatewayError {
  return quietError(
    'INVALID_INPUT',
    `this request needs ${calls} calls to DashScope for ${n.name}, more than the gateway's upstream budget ` +
      `(${describeBudget(n)}) can start within the ${seconds(maxWaitMs)} a request may wait; ` +
      `the largest request that fits needs at most ${largest} calls`,
  );
}

export type Whose = 'shared' | 'memory' | 'fallback';

const WHOSE: Record<Whose, string> = {
  shared: 'shared by all gateway replicas',
  memory: 'this gateway',
  fallback: 'this replica’s share while Redis is unreachable',
};

/**
 * 429: the calls fit later, not within the wait. Worded as pacing, never as a quota: LangChain gives up at once on
 * a 429 that mentions a quota. `retryAfterMs` is when a retry would be admitted within its own wait (if nobody else
 * reserves in between).
 */
export function pacing(n: BudgetNumbers, whose: Whose, calls: number, retryAfterMs: number): GatewayError {
  const sec = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return quietError(
    'RATE_LIMITED',
    `the gateway is pacing its calls to DashScope: its upstream budget for ${n.name} (${describeBudget(n)}, ` +
      `${WHOSE[whose]}) cannot start this request's ${calls} call${calls === 1 ? '' : 's'} within the wait allowed; ` +
      `this is not an account limit, retry after ${sec} s`,
    { retryAfterSec: sec },
  );
}

/** 429 for a full waiting room. */
export function crowded(n: BudgetNumbers, waiting: number): GatewayError {
  return quietError(
    'RATE_LIMITED',
    `the gateway is pacing its calls to DashScope: ${waiting} requests are already waiting for the upstream budget for ${n.name}; this is not an account limit, retry after 1 s`,
    { retryAfterSec: 1 },
  );
}

export function shuttingDown(): GatewayError {
  return new GatewayError('UPSTREAM_UNAVAILABLE', 'this gateway replica is shutting down; retry', {
    retryAfterSec: 1,
  });
}
