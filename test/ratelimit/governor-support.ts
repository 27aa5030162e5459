/**
 * Drives a governor the way a route will: admit a request of k calls, then make its calls with a little
 * concurrency, recording when each fake upstream call starts (and the tokens it is billed).
 */
import { GatewayError } from '../../src/errors.js';
import type { Governor } from '../../src/ratelimit/governor.js';
import type { UpstreamBudgetSettings } from '../../src/ratelimit/settings.js';
import { uniquePrefix } from './support.js';

export interface Call {
  at: number;
  tokens: number;
}

export interface Outcome {
  status: number;
  calls?: number;
  retryAfterSec?: number;
  message?: string;
}

export function settings(over: Partial<UpstreamBudgetSettings> = {}): UpstreamBudgetSettings {
  return {
    defaultLimit: 20,
    windowMs: 3000,
    marginMs: 60,
    rules: [],
    maxWaitMs: 6000,
    queueSize: 1000,
    replicas: 1,
    keyPrefix: uniquePrefix('gov'),
    defaultTokens: 0,
    paceMs: 300,
    burst: 0,
    restoreGraceMs: 300,
    ...over,
  };
}

/** One request: admit k calls, run them 4 at a time; every call's start goes into `log`. */
export async function request(
  gov: Governor,
  k: number,
  log: Call[],
  opts: { caller?: string; tokens?: number; billed?: number; model?: string } = {},
): Promise<Outcome> {
  let adm: Awaited<ReturnType<Governor['admit']>>;
  try {
    adm = await gov.admit({
      model: opts.model ?? 'text-embedding-v4',
      calls: k,
      tokens: new Array<number>(k).fill(opts.tokens ?? 0),
      caller: opts.caller ?? 'alice',
      deadline: Date.now() + 60_000,
    });
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    const o: Outcome = { status: err.statusCode, message: err.message };
    if (err.retryAfterSec !== undefined) o.retryAfterSec = err.retryAfterSec;
    return o;
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < k) {
      const i = next++;
      const permit = await adm.slot(i);
      const billed = opts.billed ?? opts.tokens ?? 0;
      log.push({ at: Date.now(), tokens: billed });
      permit.done({ status: 200, headers: {}, tokens: billed });
    }
  };
  try {
    await Promise.all([worker(), worker(), worker(), worker()]);
  } catch (err) {
    // A call re-reserved after starting late can be refused; the rest of the request is given back.
    if (!(err instanceof GatewayError)) throw err;
    adm.release();
    return { status: err.statusCode, message: err.message };
  }
  adm.release();
  return { status: 200, calls: k };
}

/** The most tokens billed in any closed window [t, t + windowMs]. */
export function maxTokensInWindow(calls: Call[], windowMs: number): number {
  const c = [...calls].sort((a, b) => a.at - b.at);
  let best = 0;
  for (let i = 0; i < c.length; i++) {
    let sum = 0;
    for (let j = i; j < c.length && c[j]!.at - c[i]!.at <= windowMs; j++) sum += c[j]!.tokens;
    best = Math.max(best, sum);
  }
  return best;
}

/** A bounded burst: `n` requests of mixed sizes from three callers, spread over `spreadMs`. */
export async function burst(
  govs: Governor[],
  n: number,
  spreadMs: number,
  sizes: number[],
  log: Call[],
): Promise<Outcome[]> {
  const jobs: Promise<Outcome>[] = [];
  for (let i = 0; i < n; i++) {
    const gov = govs[i % govs.length]!;
    const k = sizes[i % sizes.length]!;
    const delay = Math.floor((i * spreadMs) / n);
    jobs.push(
      new Promise<void>((r) => setTimeout(r, delay)).then(() =>
        request(gov, k, log, { caller: ['alice', 'bob', 'carol'][i % 3]! }),
      ),
    );
  }
  return Promise.all(jobs);
}
