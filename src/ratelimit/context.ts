/**
 * Which caller an upstream call is made for. The gate sees only the UpstreamRequest, so the request it serves is
 * carried in an AsyncLocalStorage entered once per request (as @fastify/request-context does): every route,
 * present or future, gets per-key fairness and the x-ratelimit-*-requests headers without passing anything on.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** What the gate reads and fills for one request. */
export interface BudgetScope {
  /** Gateway key name, the unit of fairness in the queue. */
  caller: string;
  /** The budget state after this request's latest upstream admission (or refusal), for the response headers. */
  headers: BudgetHeaders | undefined;
}

export interface BudgetHeaders {
  limit: number;
  /** Calls left: the limit less the calls in the log (the last window's and those reserved ahead). */
  remaining?: number;
  /** Milliseconds until this request's last admitted call may start. */
  resetMs: number;
}

export const budgetScope = new AsyncLocalStorage<BudgetScope>();

/** Go-style duration, as OpenAI writes x-ratelimit-reset-requests: `450ms`, `1.5s`, `1m0s`. */
export function durationText(ms: number): string {
  const v = Math.max(0, Math.ceil(ms));
  if (v < 1000) return `${v}ms`;
  const min = Math.floor(v / 60_000);
  const sec = (v % 60_000) / 1000;
  const s = `${Number.isInteger(sec) ? sec : sec.toFixed(3).replace(/0+$/, '')}s`;
  return min > 0 ? `${min}m${s}` : s;
}
