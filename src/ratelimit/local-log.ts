/**
 * The reservation log of one budget, in memory: the exact algorithm shared-log.ts runs in Redis (memory mode, the
 * outage fallback, and the "largest request that can ever fit" arithmetic all use it).
 *
 * The log holds one entry per call, at the time the call may start (past calls and future reservations alike),
 * in time order. New calls are only ever appended after the last entry (global FIFO by reservation), which makes
 * every limit a lookup instead of a scan:
 *   - calls: the new call at t needs t ≥ time(entry L back) + span, so no window (t - span, t] holds more than L
 *     (removing entries later keeps that true: the entry L back only moves earlier);
 *   - tokens: each entry carries `cum`, the running total of tokens up to and including it; the tokens in
 *     (t - span, t] are total - cum(last entry at or before t - span), so the earliest t is the time of the first
 *     entry whose cum reaches total + x - T, plus span. Entries written back after a Redis restart and usage
 *     corrections add to the total "at the tail" (never earlier than they happened): the sums only over-count.
 * Both hold for the minute window and for the short (per-second) window.
 */
/** The limits (plan.ts derives them from the settings) of one budget as the log applies them (0: that limit is off). */
export interface Limits {
  /** Calls per span (the window plus the margin). */
  calls: number;
  spanMs: number;
  /** Calls per pace span (the short window, DashScope's per second, plus the margin). */
  perPace: number;
  paceSpanMs: number;
  tokens: number;
  tokensPerPace: number;
}

export interface Entry {
  id: string;
  t: number;
  cum: number;
}

/** First index in [lo, hi) whose value passes `ok` (ok is monotone false → true), else hi. */
function firstIndex(lo: number, hi: number, ok: (i: number) => boolean): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ok(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export class LocalLog {
  private entries: Entry[] = [];
  /** Running token total (including corrections and written-back entries). */
  private total = 0;
  /** cum of the last entry pruned: C(τ) before the first live entry. */
  private base = 0;
  private readonly byId = new Map<string, Entry>();

  constructor(private readonly keepMs: number) {}

  get size(): number {
    return this.entries.length;
  }

  /** Time of the last entry (the tail new calls go after), or -Infinity. */
  get tail(): number {
    return this.entries.at(-1)?.t ?? Number.NEGATIVE_INFINITY;
  }

  times(): number[] {
    return this.entries.map((e) => e.t);
  }

  prune(now: number): void {
    const cut = firstIndex(0, this.entries.length, (i) => this.entries[i]!.t > now - this.keepMs);
    if (cut === 0) return;
    this.base = this.entries[cut - 1]!.cum;
    for (const e of this.entries.slice(0, cut)) this.byId.delete(e.id);
    this.entries = this.entries.slice(cut);
    // Nothing live: whatever was counted at the tail is out of every window too.
    if (this.entries.length === 0) this.base = this.total;
  }

  /** Earliest time ≥ t at which `tokensOthers` ≤ allowed in (τ - span, τ]: cum at τ - span must reach total - allowed. */
  private tokenFloor(allowed: number, spanMs: number): number {
    const need = this.total - allowed;
    if (need <= this.base) return Number.NEGATIVE_INFINITY;
    const i = firstIndex(0, this.entries.length, (j) => this.entries[j]!.cum >= need);
    // Tokens counted at the tail (corrections, written-back calls) are more than the room: wait until the tail
    // leaves the window.
    if (i >= this.entries.length) return this.tail + spanMs;
    return this.entries[i]!.t + spanMs;
  }

  /** Earliest start for one more call of `x` tokens, not before `floor`. */
  earliest(floor: number, lim: Limits, x: number): number {
    let t = Math.max(floor, this.tail);
    const n = this.entries.length;
    if (lim.calls > 0 && n >= lim.calls) t = Math.max(t, this.entries[n - lim.calls]!.t + lim.spanMs);
    if (lim.perPace > 0 && n >= lim.perPace)
      t = Math.max(t, this.entries[n - lim.perPace]!.t + lim.paceSpanMs);
    if (lim.tokens > 0) t = Math.max(t, this.tokenFloor(Math.max(0, lim.tokens - x), lim.spanMs));
    if (lim.tokensPerPace > 0)
      t = Math.max(t, this.tokenFloor(Math.max(0, lim.tokensPerPace - x), lim.paceSpanMs));
    return t;
  }

  /** Appends one call at `t` (t ≥ tail). */
  append(id: string, t: number, x: number): void {
    this.total += x;
    const e = { id, t, cum: this.total };
    this.entries.push(e);
    this.byId.set(id, e);
  }

  /**
   * Reserves calls (one per `tokens` item) each at its earliest time ≥ floor, all or nothing: when the last would
   * start after `latest`, nothing is kept and the would-be last start is returned as `lastStart`.
   */
  reserve(
    ids: string[],
    tokens: number[],
    floor: number,
    latest: number,
    lim: Limits,
  ): { ok: true; starts: number[] } | { ok: false; lastStart: number } {
    const starts: number[] = [];
    const totalBefore = this.total;
    for (let i = 0; i < ids.length; i++) {
      const t = this.earliest(floor, lim, tokens[i]!);
      if (!Number.isFinite(t) || t > latest) {
        // Place the rest anyway (bounded by the count) only to learn when the last would start, then undo.
        let last = t;
        if (Number.isFinite(t)) {
          this.append(ids[i]!, t, tokens[i]!);
          for (let j = i + 1; j < ids.length && Number.isFinite(last); j++) {
            last = this.earliest(floor, lim, tokens[j]!);
            if (Number.isFinite(last)) this.append(ids[j]!, last, tokens[j]!);
          }
        }
        this.undo(ids, totalBefore);
        return { ok: false, lastStart: last };
      }
      this.append(ids[i]!, t, tokens[i]!);
      starts.push(t);
    }
    return { ok: true, starts };
  }

  private undo(ids: string[], totalBefore: number): void {
    const drop = new Set(ids);
    while (this.entries.length > 0 && drop.has(this.entries.at(-1)!.id)) {
      this.byId.delete(this.entries.pop()!.id);
    }
    this.total = totalBefore;
  }

  /** Writes back an entry known elsewhere (after a restart): at its own time, its tokens counted at the tail. */
  restore(id: string, t: number, x: number): void {
    if (this.byId.has(id)) return;
    const i = firstIndex(0, this.entries.length, (j) => this.entries[j]!.t > t);
    const cum = i > 0 ? this.entries[i - 1]!.cum : this.base;
    const e = { id, t, cum };
    this.entries.splice(i, 0, e);
    this.byId.set(id, e);
    this.total += x;
  }

  /**
   * Gives back unused reservations. Their tokens come off the total only when no remaining entry was placed after
   * them (otherwise later cums include them and subtracting would under-count).
   */
  remove(items: { id: string; tokens: number }[]): void {
    const drop = new Map<Entry, number>();
    for (const { id, tokens } of items) {
      const e = this.byId.get(id);
      if (e) drop.set(e, tokens);
    }
    if (drop.size === 0) return;
    const n = this.entries.length;
    let atTail = true;
    let sum = 0;
    for (const [e, tokens] of drop) {
      this.byId.delete(e.id);
      sum += tokens;
      if (this.entries.lastIndexOf(e) < n - drop.size) atTail = false;
    }
    this.entries = this.entries.filter((e) => !drop.has(e));
    if (atTail) this.total -= sum;
  }

  /** Billed usage above the estimate: counted at the tail (never under-counts). */
  addTokens(x: number): void {
    if (x > 0) this.total += x;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }
}
