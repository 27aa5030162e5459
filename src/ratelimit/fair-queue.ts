/**
 * A bounded queue that is first come, first served within each caller key and round-robin across keys: with
 * alice holding 100 waiting calls and bob 10, the next units go alice, bob, alice, bob… rather than 100 to alice
 * first. One noisy key therefore cannot take the whole upstream budget while others are waiting.
 */
export class FairQueue<T> {
  /** Per key, its waiters in arrival order. Map iteration order is the order keys first queued. */
  private readonly byKey = new Map<string, T[]>();
  /** Keys in round-robin order; `turn` is the index of the key served next. */
  private ring: string[] = [];
  private turn = 0;
  size = 0;

  constructor(readonly capacity: number) {}

  get full(): boolean {
    return this.size >= this.capacity;
  }

  /** Adds to the key's line; false when the queue is full. */
  push(key: string, item: T): boolean {
    if (this.full) return false;
    let line = this.byKey.get(key);
    if (!line) {
      line = [];
      this.byKey.set(key, line);
      // A newcomer goes last in the current round, just before the key whose turn it is.
      this.ring.splice(this.turn, 0, key);
      this.turn++;
      if (this.turn >= this.ring.length) this.turn = 0;
    }
    line.push(item);
    this.size++;
    return true;
  }

  /** Takes the head of the line of the key whose turn it is, and passes the turn on. */
  shift(): T | undefined {
    if (this.size === 0) return undefined;
    if (this.turn >= this.ring.length) this.turn = 0;
    const key = this.ring[this.turn]!;
    const line = this.byKey.get(key)!;
    const item = line.shift()!;
    this.size--;
    if (line.length === 0) {
      this.byKey.delete(key);
      this.ring.splice(this.turn, 1);
    } else {
      this.turn++;
    }
    if (this.turn >= this.ring.length) this.turn = 0;
    return item;
  }

  /** Removes one waiter (it gave up or its caller left). */
  remove(key: string, item: T): boolean {
    const line = this.byKey.get(key);
    const i = line ? line.indexOf(item) : -1;
    if (!line || i < 0) return false;
    line.splice(i, 1);
    this.size--;
    if (line.length === 0) {
      this.byKey.delete(key);
      const r = this.ring.indexOf(key);
      this.ring.splice(r, 1);
      if (r < this.turn) this.turn--;
      if (this.turn >= this.ring.length) this.turn = 0;
    }
    return true;
  }

  /** Every waiter, for sweeps (deadline checks, shutdown). */
  *items(): IterableIterator<[string, T]> {
    for (const [key, line] of this.byKey) for (const item of [...line]) yield [key, item];
  }

  waitingKeys(): number {
    return this.ring.length;
  }
}
