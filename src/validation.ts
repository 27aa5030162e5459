/**
 * zod at the boundary: turn the first schema violation into a 400 that names the field the way the caller wrote it.
 */
import type { z } from 'zod';
import { GatewayError, invalidInput } from './errors.js';

/** ['input', 3, 'text'] → `input[3].text` */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out || 'body';
}

/** Parse `data` with `schema`, or throw a 400 naming the first bad field. */
export function parseBody<S extends z.ZodType>(
  schema: S,
  data: unknown,
  prefix: readonly PropertyKey[] = [],
): z.infer<S> {
  if (data === undefined || data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new GatewayError('INVALID_JSON', 'the request body must be a JSON object', { param: 'body' });
  }
  // reportInput: without it zod 4 leaves `issue.input` unset, and every wrong type would read "is required".
  const r = schema.safeParse(data, { reportInput: true });
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = fieldPath([...prefix, ...issue.path]);
  const message =
    issue.code === 'invalid_type' && issue.input === undefined
      ? 'is required'
      : issue.message.replace(/^Invalid input: /, '');
  throw invalidInput(path, message);
}
