/**
 * The sliding-window log, in memory: the exact algorithm the Redis script runs, for one process.
 * A call is admitted at `now` only when fewer than `limit` logged calls have a time t with now - t ≤ span, so any
 * limit + 1 admitted calls are more than `span` apart and no window of length `span` ever holds more than `limit`.
 * A fixed window would allow 2 × limit across its boundary; this cannot.
 *
 * An entry is logged at admission and later moved to when the call's reply arrived (restamp): DashScope counts a
 * call when it arrives, which is after the gateway's decision by a delay that varies with load. The reply time is
 * never earlier than the arrival, so after the move the log never under-counts what DashScope saw.
 */

/** What a budget decision says. Times are milliseconds from the decision. */
export type TakeResult =
  | { ok: true; remaining: number; resetMs: number }
  | { ok: false; waitMs: number; held: boolean };

export class SlidingLog {
  /** Entry times in ascending order; `head` is the first live entry (avoids shifting on every call). */
  private times: number[] = [];
  private head = 0;

  constructor(readonly spanMs: number) {}

  private prune(now: number): void {
    const cutoff = now - this.spanMs;
    while (this.head < this.times.length && this.times[this.head]! < cutoff) this.head++;
    if (this.head > 1024 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
  }

  count(now: number): number {
    this.prune(now);
    return this.times.length - this.head;
  }

  /** Take one unit at `now` if fewer than `limit` are in the window; otherwise say when the oldest leaves it. */
  take(now: number, limit: number): TakeResult {
    const n = this.count(now);
    if (n < limit) {
      this.insert(now);
      return { ok: true, remaining: limit - n - 1, resetMs: this.times[this.head]! + this.spanMs + 1 - now };
    }
    const oldest = this.times[this.head];
    return {
      ok: false,
      waitMs: oldest === undefined ? this.spanMs : Math.max(1, oldest + this.spanMs + 1 - now),
      held: false,
    };
  }

  /** Log an entry at `t`, keeping the order (most entries go at the end). */
  insert(t: number): void {
    let i = this.times.length;
    while (i > this.head && this.times[i - 1]! > t) i--;
    this.times.splice(i, 0, t);
  }

  /** Remove the entry at `at` (a unit taken but never used). */
  release(at: number): void {
    const i = this.times.lastIndexOf(at);
    if (i >= this.head) this.times.splice(i, 1);
  }

  /** Move the entry logged at `from` to `to` (its reply time); re-logs it if it had already left the window. */
  move(from: number, to: number): void {
    this.release(from);
    this.insert(to);
  }
}
