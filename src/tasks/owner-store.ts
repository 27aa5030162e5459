/**
 * Who submitted which async task. DashScope knows only the gateway's single upstream key, so every task any
 * caller creates belongs to the same DashScope account; the gateway records the gateway-key *name* that
 * submitted each task and lets only that caller see, poll, cancel or list it.
 * The mapping never changes once written, so any copy of it (local or shared) is safe to cache.
 */

/** A task owner is a gateway key name (request.caller.name). */
export type Owner = string;

export interface RecordResult {
  /** False when the owner is known only to this process (Redis unset, or down at the time of writing). */
  shared: boolean;
}

export interface TaskOwnerStore {
  /** Remember that `owner` submitted `taskId`. Never throws for a shared-store outage: see RecordResult. */
  record(taskId: string, owner: Owner): Promise<RecordResult>;
  /**
   * Owners of `taskIds`, in the same order (undefined = not recorded here, or expired). One round trip to the
   * shared store at most. Throws TaskStoreUnavailable when ownership cannot be decided.
   */
  ownersOf(taskIds: readonly string[]): Promise<(Owner | undefined)[]>;
}

/** The shared store could not answer: the caller gets a 503, never a wrong 404 or, worse, someone else's task. */
export class TaskStoreUnavailable extends Error {
  constructor(cause: unknown) {
    super('the task-owner store (Redis) is unavailable', { cause });
    this.name = 'TaskStoreUnavailable';
  }
}

/** How long an owner record lives: longer than DashScope keeps tasks and result files (about 24 h). */
export const OWNER_TTL_SEC = 7 * 24 * 3600;
