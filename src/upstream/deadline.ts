/** The per-attempt signal that carries a request's deadline (REQUEST_TIMEOUT_MS) into the upstream client. */

/** A signal for one attempt: the caller's, and an abort when the deadline passes. */
export interface AttemptSignal {
  signal: AbortSignal | undefined;
  /** The deadline fired (rather than the caller leaving). */
  expired(): boolean;
  /**
   * Stop the timer and unhook from the caller's signal (a split request's signal would collect one listener per
   * attempt otherwise). A stream is disposed of once its headers are in: from then on the relay ends the upstream
   * body itself when the caller leaves.
   */
  dispose(): void;
}

/**
 * The caller's `signal` joined with a timer that aborts at `deadline` (epoch ms) with `expiredError()`; without a
 * deadline, the caller's signal as it is.
 */
export function attemptSignal(
  signal: AbortSignal | undefined,
  deadline: number | undefined,
  expiredError: () => Error,
): AttemptSignal {
  if (deadline === undefined) return { signal, expired: () => false, dispose: () => {} };
  const ac = new AbortController();
  let expired = false;
  const timer = setTimeout(
    () => {
      expired = true;
      ac.abort(expiredError());
    },
    Math.max(0, deadline - Date.now()),
  );
  const onCallerAbort = (): void => ac.abort(signal?.reason);
  if (signal?.aborted) onCallerAbort();
  else signal?.addEventListener('abort', onCallerAbort, { once: true });
  return {
    signal: ac.signal,
    expired: () => expired,
    dispose: () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onCallerAbort);
    },
  };
}
