/**
 * One admission's decision, taken in its turn from the budget's waiting room: in shared mode one Lua call
 * (writing this replica's calls back first when Redis has a new generation, waiting out the restore grace), in
 * memory or fallback mode the local log. A refusal is a 429 whose Retry-After is when a retry would fit its wait.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { GatewayError } from '../errors.js';
import type { Budget, GovernorEvent, Job } from './budget-state.js';
import type { Outage } from './outage.js';
import { pacing } from './plan.js';
import type { UpstreamBudgetSettings } from './settings.js';
import type { SharedLog } from './shared-log.js';

export interface DecisionHost {
  readonly cfg: UpstreamBudgetSettings;
  readonly shared: SharedLog | undefined;
  readonly link: Outage;
  emit(e: GovernorEvent): void;
  nextId(): string;
}

function refuse(h: DecisionHost, b: Budget, job: Job, lastStart: number): never {
  // A retry is admitted within its own wait once lastStart - now ≤ maxWait (if nobody reserves in between).
  const retryMs = Number.isFinite(lastStart) ? lastStart - h.cfg.maxWaitMs - Date.now() : h.cfg.windowMs;
  const whose = h.link.mode === 'shared' ? 'shared' : h.link.mode === 'fallback' ? 'fallback' : 'memory';
  h.emit({
    type: 'refuse',
    budget: b.numbers.name,
    calls: job.calls.length,
    status: 429,
    reason: 'later',
  });
  throw pacing(b.numbers, whose, job.calls.length, retryMs);
}

/** One admission's turn: at the shared log (with restore and grace), else on the local log. */
export async function decide(h: DecisionHost, b: Budget, job: Job): Promise<number[]> {
  const shared = h.shared;
  for (let round = 0; shared && h.link.mode === 'shared' && round < 8; round++) {
    try {
      await shared.sync(b.numbers.name);
      const r = await shared.reserve(
        b.numbers.name,
        b.gen,
        h.nextId(),
        h.cfg.restoreGraceMs,
        job.latest - Date.now(),
        b.limits,
        b.keepMs,
        job.calls,
      );
      if (r.kind === 'admitted') {
        b.sharedTail = r.tail;
        b.remember(job.calls, r.starts);
        b.logged = r.logged;
        return r.starts;
      }
      if (r.kind === 'refused') refuse(h, b, job, r.lastStart);
      if (r.kind === 'restore') {
        b.gen = await shared.restore(b.numbers.name, r.gen, r.gen, b.keepMs, b.live());
      } else if (r.kind === 'grace') {
        if (Date.now() + r.waitMs > job.latest) refuse(h, b, job, Date.now() + r.waitMs + h.cfg.maxWaitMs);
        await sleep(r.waitMs);
      }
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      h.link.degrade(err);
    }
  }
  // Still shared after several rounds (generations changing under us): do not guess locally with the full budget.
  if (h.link.mode === 'shared') refuse(h, b, job, Date.now() + h.cfg.maxWaitMs + 1_000);
  return decideLocally(h, b, job);
}

function decideLocally(h: DecisionHost, b: Budget, job: Job): number[] {
  const now = Date.now();
  const fallback = h.link.mode === 'fallback';
  b.local.prune(now);
  const floor = Math.max(now, b.holdUntil, fallback ? b.fallbackFloor : 0);
  const r = b.local.reserve(
    job.calls.map((c) => c.id),
    job.calls.map((c) => c.tokens),
    floor,
    job.latest,
    fallback ? b.share : b.limits,
  );
  if (!r.ok) refuse(h, b, job, r.lastStart);
  if (h.shared) b.remember(job.calls, r.starts);
  b.logged = b.local.size;
  return r.starts;
}
