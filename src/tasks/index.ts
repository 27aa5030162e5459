/** The task-owner store for a gateway: Redis-backed when REDIS_URL is set, in memory otherwise. */
import type { RedisClient as Redis } from '../redis.js';
import { MemoryTaskOwnerStore } from './memory-store.js';
import type { TaskOwnerStore } from './owner-store.js';
import { RedisTaskOwnerStore } from './redis-store.js';

export { type OpenedHandle, TAG_HEX_CHARS, TaskHandles } from './handles.js';
export { MemoryTaskOwnerStore } from './memory-store.js';
export type { Owner, RecordResult, TaskOwnerStore } from './owner-store.js';
export { OWNER_TTL_SEC, TaskStoreUnavailable } from './owner-store.js';
export { OWNER_KEY_PREFIX, RedisTaskOwnerStore } from './redis-store.js';

export function createTaskOwnerStore(redis: Redis | undefined): TaskOwnerStore {
  return redis ? new RedisTaskOwnerStore(redis) : new MemoryTaskOwnerStore();
}
