/**
 * A replica's waiting room for one budget: admissions wait here for their turn to be decided (one decision in
 * flight per budget per replica), round-robin across caller keys and first come, first served within a key, so
 * a caller sending many requests at once cannot push every other caller's admission back.
 * The decision itself appends the request's calls after every call already reserved by any replica (global FIFO
 * by reservation, see local-log.ts): a big request admitted now is never overtaken by later small ones, and since
 * it is admitted only when its last call starts within RATE_LIMIT_MAX_WAIT_MS, it holds later requests back by at
 * most that long. A big request that cannot be admitted is refused at once rather than parked (no starvation
 * either way: nothing waits for "enough room" while small requests keep taking it).
 */
export { FairQueue as WaitingRoom } from './fair-queue.js';
