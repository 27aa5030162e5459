/**
 * The decisions of one turn of a budget's waiting room (every admission waiting then, up to a bound): in shared
 * mode one Lua call for all of them (writing this replica's calls back first when Redis has a new generation,
 * waiting out the restore grace), in memory or fallback mode the local log. A refusal is a 429 whose Retry-After
 * is when a retry would fit its wait.
 */
import { setTimeout as sleep, setImmediate as yieldToIo } from 'node:timers/promises';
import type { GatewayError } from '../errors.js';
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

/** The refusal of a job (emitted as an event): a 429 whose Retry-After is when a retry would fit its wait. */
function refusal(h: DecisionHost, b: Budget, job: Job, lastStart: number): GatewayError {
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
  return pacing(b.numbers, whose, job.calls.length, retryMs);
}

/**
 * One turn of the budget's waiting room: every job taken from it, decided in order (each all or nothing). Shared:
 * one Lua call for all of them (writing this replica's calls back first when Redis has a new generation, waiting
 * out the restore grace); memory or fallback: the local log. Settles every job; never throws.
 */
export async function decide(h: DecisionHost, b: Budget, jobs: Job[]): Promise<void> {
  let pending = jobs;
  const shared = h.shared;
  for (let round = 0; shared && h.link.mode === 'shared' && round < 8 && pending.length > 0; round++) {
    try {
      await shared.sync(b.numbers.name);
      const now = Date.now();
      const r = await shared.reserve(
        b.numbers.name,
        b.gen,
        h.nextId(),
        h.cfg.restoreGraceMs,
        b.limits,
        b.keepMs,
        pending.map((job) => ({ latestMs: job.latest - now, calls: job.calls })),
      );
      if (r.kind === 'decided') {
        b.logged = r.logged;
        const refused: [Job, number][] = [];
        for (const [i, p] of r.placements.entries()) {
          const job = pending[i]!;
          if (!p.ok) {
            refused.push([job, p.lastStart]);
            continue;
          }
          b.sharedTail = p.tail;
          b.remember(job.calls, p.starts);
          job.resolve(p.starts);
        }
        // A turn can refuse many requests at once (a burst). Each refusal's answer is rendered as soon as it is
        // settled, so settling them all in one go would hold the event loop for tens of ms just when the admitted
        // calls are due: they would reach DashScope late, and the pacing margin would have to absorb it. Settling
        // one per event-loop turn lets their I/O go in between.
        for (let i = 0; i < refused.length; i++) {
          if (i > 0) await yieldToIo();
          const [job, lastStart] = refused[i]!;
          job.reject(refusal(h, b, job, lastStart));
        }
        return;
      }
      if (r.kind === 'restore') {
        b.gen = await shared.restore(b.numbers.name, r.gen, r.gen, b.keepMs, b.live());
      } else {
        const until = Date.now() + r.waitMs;
        pending = pending.filter((job) => {
          if (until <= job.latest) return true;
          job.reject(refusal(h, b, job, until + h.cfg.maxWaitMs));
          return false;
        });
        if (pending.length > 0) await sleep(r.waitMs);
      }
    } catch (err) {
      h.link.degrade(err);
    }
  }
  // Still shared after several rounds (generations changing under us): do not guess locally with the full budget.
  const stuck = h.link.mode === 'shared';
  for (const job of pending) {
    if (stuck) job.reject(refusal(h, b, job, Date.now() + h.cfg.maxWaitMs + 1_000));
    else decideLocally(h, b, job);
  }
}

function decideLocally(h: DecisionHost, b: Budget, job: Job): void {
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
  if (!r.ok) {
    job.reject(refusal(h, b, job, r.lastStart));
    return;
  }
  if (h.shared) b.remember(job.calls, r.starts);
  b.logged = b.local.size;
  job.resolve(r.starts);
}
