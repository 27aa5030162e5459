/**
 * Every DashScope path the gateway calls, in one place (docs/dashscope-contract.md §1.2). Routes serve the same
 * paths to callers (the native API under /api/v1 is passed through path for path), so they import them from here too.
 */
export const TEXT_EMBEDDING_PATH = '/api/v1/services/embeddings/text-embedding/text-embedding';
export const MULTIMODAL_EMBEDDING_PATH =
  '/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding';
export const MULTIMODAL_GENERATION_PATH = '/api/v1/services/aigc/multimodal-generation/generation';
export const COMPAT_CHAT_PATH = '/compatible-mode/v1/chat/completions';
export const TASKS_PATH = '/api/v1/tasks';
export const UPLOADS_PATH = '/api/v1/uploads';

/** `GET /api/v1/tasks/{id}`; `id` must already be checked against the task id pattern. */
export const taskPath = (id: string): string => `${TASKS_PATH}/${id}`;
/** `POST /api/v1/tasks/{id}/cancel`. */
export const taskCancelPath = (id: string): string => `${TASKS_PATH}/${id}/cancel`;
/** `GET /api/v1/tasks?…` with an already-normalised query string. */
export const taskListPath = (query: string): string => (query ? `${TASKS_PATH}?${query}` : TASKS_PATH);
/** `GET /api/v1/uploads?action=getPolicy&model=…`. */
export const uploadPolicyPath = (model: string): string =>
  `${UPLOADS_PATH}?action=getPolicy&model=${encodeURIComponent(model)}`;
