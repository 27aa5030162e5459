/**
 * Task ownership as the task routes apply it. Every task runs under the gateway's one DashScope key, so DashScope
 * cannot tell callers apart. Callers get signed handles (./handles.ts) in place of DashScope's task ids, so a poll
 * or cancel proves its owner without any lookup; ids without a tag (issued before handles) fall back to the owner
 * store (./owner-store.ts), which also filters the list. Any task the caller did not submit is a 404, whether it
 * exists or not, so task ids cannot be probed.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { GatewayError, invalidInput } from '../errors.js';
import type { Upstream, UpstreamResponse } from '../upstream/client.js';
import { badUpstreamReply } from '../upstream/errors.js';
import { TaskStoreUnavailable } from './owner-store.js';

/**
 * DashScope task ids are UUIDs; this is looser, but keeps anything path-like or odd away from the upstream URL.
 */
export const TASK_ID = /^[A-Za-z0-9-]{1,100}$/;
/** How the rule is worded in 400s (a task id in the path, or one too long for the router). */
export const TASK_ID_RULE = 'must be 1 to 100 characters of A-Z, a-z, 0-9 and "-"';

/** The task id path parameter, checked. */
export function taskIdParam(request: FastifyRequest): string {
  const id = (request.params as { id?: unknown }).id;
  if (typeof id !== 'string' || !TASK_ID.test(id)) {
    throw invalidInput('task_id', TASK_ID_RULE);
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

/** The task owner name a request acts as (the owner recorded at submission). */
export const ownerName = (request: FastifyRequest): string => request.caller?.name ?? 'anonymous';

/**
 * DashScope's task id behind `id` (a handle or an unsigned id from the path), or a 404 unless the caller
 * submitted the task: the same answer for "no such task", "not yours" and "forged tag".
 */
export async function ownedTaskId(request: FastifyRequest, id: string): Promise<string> {
  const notFound = (): GatewayError =>
    new GatewayError('NOT_FOUND', `task ${id} not found`, { param: 'task_id' });
  const caller = request.caller?.name;
  if (caller === undefined) throw notFound();
  const opened = request.server.gw.taskHandles.open(id, caller);
  if (opened.kind === 'verified') return opened.taskId;
  if (opened.kind === 'forged') throw notFound();
  const [owner] = await ownersOf(request, [opened.taskId]);
  if (owner === undefined || owner !== caller) throw notFound();
  return opened.taskId;
}

const TaskReply = z.looseObject({ output: z.looseObject({ task_id: z.string() }) });

/**
 * Pass a 2xx task reply (submit, get, cancel) through with `output.task_id` shown as the caller's handle, so
 * clients that poll with what they were given keep working. A body that is not a task reply goes through as is.
 */
export function sendTaskReply(
  reply: FastifyReply,
  res: UpstreamResponse,
  upstream: Upstream,
  handle: (taskId: string) => string,
): FastifyReply {
  let body = res.body;
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body.toString('utf8'));
  } catch (err) {
    // A 200 the caller's SDK could not read is a bad gateway, not something to hand on.
    throw badUpstreamReply('a task reply that is not JSON', res.requestId, err);
  }
  const task = TaskReply.safeParse(parsed);
  if (task.success) {
    const out = { ...task.data, output: { ...task.data.output, task_id: handle(task.data.output.task_id) } };
    body = Buffer.from(JSON.stringify(out));
  }
  return sendUpstream(reply, { ...res, body }, upstream);
}

/** Pass a 2xx DashScope reply through (scrubbed of the upstream key), with DashScope's request id. */
export function sendUpstream(reply: FastifyReply, res: UpstreamResponse, upstream: Upstream): FastifyReply {
  if (res.requestId) reply.header('x-dashscope-request-id', res.requestId);
  return reply.code(res.status).type('application/json').send(upstream.scrub(res.body));
}
