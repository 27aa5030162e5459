/**
 * Signed task handles: ownership a replica can verify without any store. Every task runs under the gateway's one
 * DashScope key, so the gateway hands callers `<task id>-<tag>` in place of DashScope's task id, where the tag is
 * an HMAC over the task id and the submitting gateway key's *name*. Whoever presents a handle whose tag verifies
 * for their own key name submitted the task; nothing has to be looked up, so a Redis restart (or a replica that
 * never saw the submission) cannot turn the owner's poll into a 404.
 *
 * The secret is derived from the upstream DashScope key, so every replica agrees without new configuration;
 * TASK_HANDLE_SECRET overrides it. Changing either invalidates the handles of tasks in flight.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Hex characters in a tag: 128 bits of HMAC-SHA256, enough that guessing one is hopeless. */
export const TAG_HEX_CHARS = 32;
/** Longest handle the task routes accept (TASK_ID in ./ownership.ts): a longer raw id stays unsigned. */
const MAX_HANDLE_CHARS = 100;
const TAG = /^[0-9a-fA-F]{32}$/;

/** Label mixed into the key derivation, so this key is used for nothing else. */
const KEY_LABEL = 'dashscope-gateway task-handle key v1';

/** How the task routes read an id from the path. */
export type OpenedHandle =
  /** A handle whose tag verifies for the caller: the caller owns `taskId`. */
  | { kind: 'verified'; taskId: string }
  /** Shaped like a handle, but the tag is not the caller's: the same 404 as an unknown task. */
  | { kind: 'forged' }
  /** No tag (issued before handles existed, or too long to sign): ownership comes from the owner store. */
  | { kind: 'unsigned'; taskId: string };

export class TaskHandles {
  private readonly key: Buffer;

  /**
   * @param upstreamKey the DashScope key the gateway calls with (the default source of the secret)
   * @param override TASK_HANDLE_SECRET, when set
   */
  constructor(upstreamKey: string, override?: string) {
    // The key material never appears in a handle or a log: only this derived key is kept.
    this.key = createHmac('sha256', override ?? upstreamKey)
      .update(KEY_LABEL)
      .digest();
  }

  private tag(taskId: string, owner: string): Buffer {
    return createHmac('sha256', this.key)
      .update(`task-handle\0${taskId}\0${owner}`)
      .digest()
      .subarray(0, TAG_HEX_CHARS / 2);
  }

  /** The handle `owner` is given for `taskId`; the raw id when a handle would not fit the task-id pattern. */
  issue(taskId: string, owner: string): string {
    if (taskId.length + 1 + TAG_HEX_CHARS > MAX_HANDLE_CHARS) return taskId;
    return `${taskId}-${this.tag(taskId, owner).toString('hex')}`;
  }

  /**
   * Read a (pattern-checked) task id from a path for `caller`: a handle is split at its last '-' when the last
   * segment is exactly 32 hex characters, and its tag compared in constant time.
   */
  open(id: string, caller: string): OpenedHandle {
    const dash = id.lastIndexOf('-');
    const tagHex = dash > 0 ? id.slice(dash + 1) : '';
    if (!TAG.test(tagHex)) return { kind: 'unsigned', taskId: id };
    const taskId = id.slice(0, dash);
    const expected = this.tag(taskId, caller);
    const given = Buffer.from(tagHex, 'hex');
    return timingSafeEqual(given, expected) ? { kind: 'verified', taskId } : { kind: 'forged' };
  }
}
