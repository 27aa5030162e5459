/**
 * Regression: a task id longer than Fastify's maxParamLength (100) got Fastify's own 414
 * `{"error":"Bad Request","code":"FST_ERR_MAX_PARAM_LENGTH",...}` instead of the documented 400 in DashScope's
 * shape naming task_id. Ids of 101 and 5,000 characters, on poll and cancel.
 */
import { describe, expect, it } from 'vitest';
import { auth, upstreamCalls, useStack } from '../helpers.js';

describe('a task id over the length limit', () => {
  const s = useStack();

  for (const [what, len] of [
    ['101', 101],
    ['5,000', 5000],
  ] as const) {
    for (const [method, suffix] of [
      ['GET', ''],
      ['POST', '/cancel'],
    ] as const) {
      it(`${method} /api/v1/tasks/<${what} characters>${suffix}: 400 InvalidParameter naming task_id`, async () => {
        const res = await s.app.inject({
          method,
          url: `/api/v1/tasks/${'a'.repeat(len)}${suffix}`,
          headers: auth(),
        });
        expect(res.statusCode).toBe(400);
        const body = res.json();
        expect(body.code).toBe('InvalidParameter');
        expect(body.message).toMatch(/^task_id: must be 1 to 100 characters/);
        expect(body.request_id).toBe(res.headers['x-request-id']);
        expect(upstreamCalls(s.emu)).toHaveLength(0);
      });
    }
  }
});
