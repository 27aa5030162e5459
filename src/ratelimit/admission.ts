/**
 * One admitted request: its calls' start times, handed out one by one as the route makes the calls (paced), plus
 * retries within the request's deadline, and the return of whatever it did not use.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseRetryAfter } from '../upstream/errors.js';
import type { Admission, Budget, Permit } from './budget-state.js';

/** What an admission needs from its governor. */
export interface AdmissionHost {
  /** Reserves more calls in the budget within `deadline`; resolves with their start times. */
  reserve(
    b: Budget,
    calls: { id: string; tokens: number }[],
    deadline: number,
    caller: string,
  ): Promise<number[]>;
  giveBack(b: Budget, items: { id: string; tokens: number }[]): void;
  /** A reply arrived: billed tokens above the estimate, and a DashScope 429's hold. */
  note(b: Budget, extraTokens: number, holdMs: number): void;
  nextId(): string;
  /** A call this late after its start time is re-reserved (DashScope would count it where it really goes). */
  readonly lateMs: number;
  wait(b: Budget, ms: number): void;
}

const MAX_HOLD_MS = 60_000; // a hold longer than LangChain's 60 s retry limit helps nobody
const DEFAULT_HOLD_MS = 1_000; // DashScope 429 without Retry-After

type State = 'reserved' | 'started' | 'released';

export const OPEN_PERMIT: Permit = { done: () => {} };

/** No budget applies (model unlimited, budget off): every slot is free. */
export class OpenAdmission implements Admission {
  constructor(public calls: number) {}
  async slot(): Promise<Permit> {
    return OPEN_PERMIT;
  }
  async retry(): Promise<Permit> {
    this.calls++;
    return OPEN_PERMIT;
  }
  report(): void {}
  release(): void {}
}

export class BudgetAdmission implements Admission {
  private readonly state: State[];
  private readonly reported = new Set<number>();

  constructor(
    private readonly host: AdmissionHost,
    private readonly b: Budget,
    private readonly ids: string[],
    private readonly tokens: number[],
    private readonly starts: number[],
    private readonly deadline: number,
    private readonly caller: string,
  ) {
    this.state = ids.map(() => 'reserved');
  }

  get calls(): number {
    return this.ids.length;
  }

  async slot(i: number, signal?: AbortSignal): Promise<Permit> {
    if (this.state[i] !== 'reserved') throw new Error(`call ${i} of this admission is not reserved`);
    const opts = signal ? { signal } : undefined;
    // A call that starts more than lateMs after its reserved time (its caller came late, or this process was too
    // busy to wake on time) is not where the log says DashScope will see it: it gives that reservation back and
    // takes a new one from now (at the tail, within the request's deadline). Bounded: then it goes as it is.
    for (let moves = 0; ; ) {
      const early = this.starts[i]! - Date.now();
      if (early > 0) {
        this.host.wait(this.b, early);
        this.b.pacing++;
        try {
          await sleep(early, undefined, opts);
        } finally {
          this.b.pacing--;
        }
        continue;
      }
      if (-early <= this.host.lateMs || moves++ >= 3) break;
      const id = this.host.nextId();
      this.host.giveBack(this.b, [{ id: this.ids[i]!, tokens: this.tokens[i]! }]);
      this.ids[i] = id;
      const [t] = await this.host.reserve(
        this.b,
        [{ id, tokens: this.tokens[i]! }],
        this.deadline,
        this.caller,
      );
      this.starts[i] = t!;
    }
    if (this.state[i] !== 'reserved') throw new Error(`call ${i} of this admission was released`);
    this.state[i] = 'started';
    return this.permit(i);
  }

  async retry(signal?: AbortSignal): Promise<Permit> {
    const id = this.host.nextId();
    const tokens = this.tokens.at(-1) ?? 0;
    const [t] = await this.host.reserve(this.b, [{ id, tokens }], this.deadline, this.caller);
    this.ids.push(id);
    this.tokens.push(tokens);
    this.starts.push(t!);
    this.state.push('reserved');
    return this.slot(this.ids.length - 1, signal);
  }

  report(i: number, tokens: number): void {
    // Without a token limit there is nothing to correct (and no round trip to spend on it).
    if (this.b.limits.tokens === 0 && this.b.limits.tokensPerPace === 0) return;
    const extra = tokens - (this.tokens[i] ?? tokens);
    if (extra > 0 && !this.reported.has(i)) this.host.note(this.b, extra, 0);
    this.reported.add(i);
  }

  release(): void {
    const items: { id: string; tokens: number }[] = [];
    this.state.forEach((s, i) => {
      if (s !== 'reserved') return;
      this.state[i] = 'released';
      items.push({ id: this.ids[i]!, tokens: this.tokens[i]! });
    });
    if (items.length > 0) this.host.giveBack(this.b, items);
  }

  private permit(i: number): Permit {
    let done = false;
    return {
      done: ({ status, headers, tokens }) => {
        if (done) return;
        done = true;
        const extra = tokens === undefined ? 0 : tokens - this.tokens[i]!;
        let hold = 0;
        if (status === 429) {
          const sec = parseRetryAfter(headers['retry-after']);
          hold = Math.min(MAX_HOLD_MS, sec === undefined ? DEFAULT_HOLD_MS : Math.max(1, sec * 1000));
        }
        if (extra > 0 || hold > 0) this.host.note(this.b, extra, hold);
      },
    };
  }
}
