/**
 * What every split embedding request shares: bounded-concurrency fan-out over its upstream calls (all or nothing)
 * and the one wording for a reply the gateway cannot use.
 */
import { GatewayError } from '../errors.js';

/** Runs `fn` over `items` with at most `limit` in flight; the first failure aborts the rest and is rethrown. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal,
  fn: (item: T, i: number, signal: AbortSignal) => Promise<R>,
): Promise<R[]> {
  // One item (most requests): nothing to abort on its behalf, so no controller of its own and no listener.
  if (items.length === 1) return [await fn(items[0]!, 0, signal)];
  const results = new Array<R>(items.length);
  const ac = new AbortController();
  const onAbort = (): void => ac.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  let next = 0;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!, i, ac.signal);
      } catch (err) {
        if (failure === undefined) failure = err;
        ac.abort();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  if (failure !== undefined) throw failure;
  return results;
}

/** A 2xx embedding reply that fails the strict checks: 502. */
export function unusableReply(message: string, cause?: unknown): GatewayError {
  return new GatewayError('UPSTREAM_BAD_RESPONSE', `DashScope sent an unusable reply: ${message}`, { cause });
}
