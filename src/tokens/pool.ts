/**
 * A small pool of tokenizer workers (node:worker_threads), so exact token counts never run on the event loop.
 *
 * - Lazy: no worker exists until a request needs a count; each worker loads the tokenizer once (about 0.5–1.5 s,
 *   115 MB) and keeps it.
 * - One request holds one worker for its texts and feeds it one text at a time, so counting stops at the first
 *   text over the limit and a timeout knows which text it hit.
 * - Bounded in time: a request's counting must finish within `timeoutMs` (measured from when its worker is ready,
 *   so a cold start is not charged to it). Past that the worker is terminated (the only way to stop a synchronous
 *   encode) and a fresh one is started when the next request needs it.
 * - Bounded in memory: each worker runs with a V8 old-generation cap; a worker that hits it dies and is replaced.
 * - Bounded queue: at most `queueSize` requests wait for a worker; more are refused (PoolBusyError) rather than
 *   piling up, since each waiter can hold a worker for up to `timeoutMs`.
 * - Idle workers are unref'd so they never keep the process alive; close() terminates them.
 */
import { Worker } from 'node:worker_threads';
import { WORKER_ROLE, type WorkerReply, type WorkerRequest } from './worker.js';

export interface PoolOptions {
  workers: number;
  timeoutMs: number;
  queueSize: number;
  /** V8 old-generation cap per worker, MB. */
  maxHeapMb: number;
  /** How long a worker may take to load the tokenizer before it counts as crashed. */
  loadTimeoutMs: number;
}

/** How one request's counting ended. `index` is a position in the texts handed to count(). */
export type CountOutcome =
  | { kind: 'done'; tokens: number[] }
  | { kind: 'over'; index: number; tokens: number }
  | { kind: 'timeout'; index: number }
  | { kind: 'crashed'; index: number; reason: string };

/** Every worker is busy and the queue is full. */
export class PoolBusyError extends Error {
  constructor(readonly queued: number) {
    super(`all token-counting workers are busy and ${queued} requests are already waiting`);
    this.name = 'PoolBusyError';
  }
}

/** Worker source: worker.ts when this module runs from src/ (tests, tsx), worker.js from dist/. */
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);

interface Slot {
  worker: Worker | undefined;
  /** Settles when the worker has loaded the tokenizer; rejects if it dies or takes longer than loadTimeoutMs. */
  ready: Promise<void> | undefined;
  busy: boolean;
  /** The last 'error' the worker emitted (an OOM, a throw), reported when it exits. */
  lastError: string | undefined;
}

function isReply(msg: unknown): msg is WorkerReply {
  if (typeof msg !== 'object' || msg === null) return false;
  const m = msg as { type?: unknown; id?: unknown; tokens?: unknown };
  return (
    m.type === 'ready' || (m.type === 'count' && typeof m.id === 'number' && typeof m.tokens === 'number')
  );
}

export class TokenizerPool {
  private readonly slots: Slot[];
  private readonly waiting: { resolve: (slot: Slot) => void; reject: (err: Error) => void }[] = [];
  private closed = false;
  private nextId = 0;
  /** Workers started so far (tests use it to show the cheap paths never start one, and that a timeout replaces one). */
  started = 0;

  constructor(private readonly opts: PoolOptions) {
    this.slots = Array.from({ length: opts.workers }, () => ({
      worker: undefined,
      ready: undefined,
      busy: false,
      lastError: undefined,
    }));
  }

  /**
   * Counts `texts` in one worker, in order, stopping at the first one over `limit`. Throws PoolBusyError when the
   * queue is full and an Error when the pool is closed.
   */
  async count(texts: string[], limit: number): Promise<CountOutcome> {
    const slot = await this.acquire();
    try {
      try {
        await this.start(slot);
      } catch (err) {
        return { kind: 'crashed', index: 0, reason: (err as Error).message };
      }
      return await this.run(slot, texts, limit);
    } finally {
      this.release(slot);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.reject(new Error('the token counter is closed'));
    await Promise.all(this.slots.map((s) => this.kill(s)));
  }

  private acquire(): Promise<Slot> {
    if (this.closed) return Promise.reject(new Error('the token counter is closed'));
    const free = this.slots.find((s) => !s.busy);
    if (free) {
      free.busy = true;
      return Promise.resolve(free);
    }
    if (this.waiting.length >= this.opts.queueSize)
      return Promise.reject(new PoolBusyError(this.waiting.length));
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  private release(slot: Slot): void {
    slot.worker?.unref();
    const next = this.waiting.shift();
    if (next) next.resolve(slot);
    else slot.busy = false;
  }

  /** Starts the slot's worker if it has none, and waits until it has loaded the tokenizer. */
  private start(slot: Slot): Promise<void> {
    if (slot.worker && slot.ready) {
      slot.worker.ref();
      return slot.ready;
    }
    const worker = new Worker(WORKER_URL, {
      workerData: { role: WORKER_ROLE },
      // Not the parent's flags: `--input-type`, `--import tsx` or test-runner loaders break or slow the worker, and it
      // needs none (worker.ts has only erasable types and no relative imports; Node strips them itself).
      execArgv: [],
      resourceLimits: { maxOldGenerationSizeMb: this.opts.maxHeapMb },
    });
    this.started++;
    slot.worker = worker;
    slot.lastError = undefined;
    // Without an 'error' listener a worker's uncaught error (including running out of heap) would crash the process.
    worker.on('error', (err) => {
      slot.lastError = err.message;
    });
    worker.once('exit', () => {
      if (slot.worker === worker) {
        slot.worker = undefined;
        slot.ready = undefined;
      }
    });
    slot.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        done();
        void this.kill(slot);
        reject(new Error(`the tokenizer did not load within ${this.opts.loadTimeoutMs} ms`));
      }, this.opts.loadTimeoutMs);
      const onMessage = (msg: unknown): void => {
        if (isReply(msg) && msg.type === 'ready') {
          done();
          resolve();
        }
      };
      const onExit = (code: number): void => {
        done();
        reject(new Error(slot.lastError ?? `the tokenizer worker exited with code ${code} while loading`));
      };
      const done = (): void => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('exit', onExit);
    });
    return slot.ready;
  }

  private run(slot: Slot, texts: string[], limit: number): Promise<CountOutcome> {
    const worker = slot.worker!;
    return new Promise<CountOutcome>((resolve) => {
      const tokens: number[] = [];
      let index = 0;
      let id = -1;
      const finish = (outcome: CountOutcome): void => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('exit', onExit);
        resolve(outcome);
      };
      const send = (): void => {
        id = this.nextId++;
        worker.postMessage({ id, text: texts[index]! } satisfies WorkerRequest);
      };
      const timer = setTimeout(() => {
        finish({ kind: 'timeout', index });
        // terminate() is the only way to stop a synchronous encode; the next request starts a fresh worker.
        void this.kill(slot);
      }, this.opts.timeoutMs);
      const onMessage = (msg: unknown): void => {
        if (!isReply(msg) || msg.type !== 'count' || msg.id !== id) return;
        tokens[index] = msg.tokens;
        if (msg.tokens > limit) finish({ kind: 'over', index, tokens: msg.tokens });
        else if (++index === texts.length) finish({ kind: 'done', tokens });
        else send();
      };
      const onExit = (code: number): void => {
        finish({
          kind: 'crashed',
          index,
          reason: slot.lastError ?? `the tokenizer worker exited with code ${code}`,
        });
      };
      worker.on('message', onMessage);
      worker.on('exit', onExit);
      if (texts.length === 0) finish({ kind: 'done', tokens });
      else send();
    });
  }

  private async kill(slot: Slot): Promise<void> {
    const worker = slot.worker;
    slot.worker = undefined;
    slot.ready = undefined;
    if (worker) await worker.terminate();
  }
}
