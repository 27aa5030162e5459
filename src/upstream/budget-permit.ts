/** How an upstream attempt gets its unit of the upstream budget (src/ratelimit/). */
import { budgetScope } from '../ratelimit/context.js';
import type { Admission, Governor, Permit } from '../ratelimit/governor.js';
import type { UpstreamRequest } from './types.js';

/** A call admitted by the client itself may wait for the budget (RATE_LIMIT_MAX_WAIT_MS caps that) and then work. */
const SELF_ADMITTED_DEADLINE_MS = 10 * 60_000;

/**
 * The budget's permit for one attempt: the first attempt waits for its slot (paced), a retry takes one more unit
 * within the request's deadline. A call without an admission (task polls, uploads, conversation) is admitted here,
 * as a request of one call, and `own.adm` keeps it so the caller can give back what it did not use.
 */
export async function attemptPermit(
  governor: Governor,
  req: UpstreamRequest,
  attempt: number,
  own: { adm?: Admission },
  signal: AbortSignal | undefined,
): Promise<Permit> {
  let adm = req.admission ?? own.adm;
  if (!adm) {
    own.adm = adm = await governor.admit({
      model: req.model,
      calls: 1,
      tokens: [req.tokens ?? 0],
      caller: budgetScope.getStore()?.caller ?? 'anonymous',
      deadline: req.deadline ?? Date.now() + SELF_ADMITTED_DEADLINE_MS,
      ...(signal ? { signal } : {}),
    });
  }
  if (attempt > 1) return adm.retry(signal);
  return adm.slot(req.admission ? (req.slot ?? 0) : 0, signal);
}
