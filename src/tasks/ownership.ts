/**
 * Task ownership as the task routes apply it. Every task runs under the gateway's one DashScope key, so DashScope
 * cannot tell callers apart: the gateway records which gateway key submitted each task (./owner-store.ts) and
 * answers 404 for any task the caller did not submit, whether it exists or not, so task ids cannot be probed. The
 * list is filtered the same way.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, invalidInput } from '../errors.js';
import type { Upstream, UpstreamResponse } from '../upstream/client.js';
import { TaskStoreUnavailable } from './owner-store.js';

/**
 * DashScope task ids are UUIDs; this is looser, but keeps anything path-like or odd away from the upstream URL.
 */
export const TASK_ID = /^[A-Za-z0-9-]{1,100}$/;

/** The task id path parameter, checked. */
export function taskIdParam(request: FastifyRequest): string {
  const id = (request.params as { id?: unknown }).id;
  if (typeof id !== 'string' || !TASK_ID.test(id)) {
    throw invalidInput('task_id', 'must be 1 to 100 characters of A-Z, a-z, 0-9 and "-"');
  }
  return id;
}

/** Owners of `ids` (undefined: not recorded); a store outage is a 503, never a wrong 404 or someone else's task. */
export async function ownersOf(
  request: FastifyRequest,
  ids: readonly string[],
): Promise<(string | undefined)[]> {
  try {
    return await request.server.gw.tasks.ownersOf(ids);
  } catch (err) {
    if (err instanceof TaskStoreUnavailable) {
      throw new GatewayError(
        'STATE_UNAVAILABLE',
        'the gateway cannot check task ownership right now (its Redis is unreachable); retry shortly',
        { retryAfterSec: 1, cause: err },
      );
    }
    throw err;
  }
}

/** 404 unless the caller submitted the task: the same answer for "no such task" and "not yours". */
export async function requireOwned(request: FastifyRequest, id: string): Promise<void> {
  const [owner] = await ownersOf(request, [id]);
  if (owner === undefined || owner !== request.caller?.name) {
    throw new GatewayError('NOT_FOUND', `task ${id} not found`, { param: 'task_id' });
  }
}

/** Pass a 2xx DashScope reply through (scrubbed of the upstream key), with DashScope's request id. */
export function sendUpstream(reply: FastifyReply, res: UpstreamResponse, upstream: Upstream): FastifyReply {
  if (res.requestId) reply.header('x-dashscope-request-id', res.requestId);
  return reply.code(res.status).type('application/json').send(upstream.scrub(res.body));
}
