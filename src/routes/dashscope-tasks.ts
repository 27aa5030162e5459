/**
 * The task API (docs/dashscope-contract.md §1.2, §2.6, §3.4): `GET /api/v1/tasks/{id}`, `POST
 * /api/v1/tasks/{id}/cancel` and `GET /api/v1/tasks`, forwarded for the tasks the caller submitted (submission is
 * on the text-embedding path: src/tasks/submit.ts). Ownership rules: src/tasks/ownership.ts.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { invalidInput } from '../errors.js';
import { callContext } from '../http/call-context.js';
import { ownersOf, requireOwned, sendUpstream, taskIdParam } from '../tasks/ownership.js';
import { taskCancelPath, taskListPath, taskPath } from '../upstream/paths.js';

/** Task states DashScope reports (docs/dashscope-contract.md §3.4); `status=` filters on them. */
const TASK_STATES = new Set([
  'PENDING',
  'RUNNING',
  'SUCCEEDED',
  'FAILED',
  'CANCELED',
  'UNKNOWN',
  'SUSPENDED',
]);

const ListReply = z.looseObject({
  data: z.array(z.looseObject({ task_id: z.string() })).nullish(),
});

/**
 * The list parameters whose shape is known are checked here, so a malformed one costs no upstream call. DashScope's
 * own bounds on them are not documented, so only the shape is checked; other parameters are passed on.
 */
function checkListQuery(q: URLSearchParams): void {
  for (const name of ['page_no', 'page_size']) {
    const v = q.get(name);
    if (v !== null && !/^[1-9]\d{0,5}$/.test(v))
      throw invalidInput(name, 'must be a whole number from 1 to 999999');
  }
  const status = q.get('status');
  if (status !== null && !TASK_STATES.has(status)) {
    throw invalidInput('status', `must be one of ${[...TASK_STATES].join(', ')}`);
  }
}

export async function dashscopeTaskRoutes(app: FastifyInstance): Promise<void> {
  const { upstream } = app.gw;

  // The task routes take no body, but the DashScope SDKs send `Content-Type: application/json` with an empty
  // body on cancel; Fastify's default parser would refuse that. Scoped to this plugin only.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, _body, done) => {
    done(null, undefined);
  });

  app.get('/api/v1/tasks/:id', async (request, reply) => {
    const id = taskIdParam(request);
    await requireOwned(request, id);
    const ctx = callContext(request, reply);
    const res = await upstream.call({
      method: 'GET',
      path: taskPath(id),
      requestId: ctx.requestId,
      signal: ctx.signal,
      trace: ctx.trace,
      idempotent: true,
    });
    return sendUpstream(reply, res, upstream);
  });

  app.post('/api/v1/tasks/:id/cancel', async (request, reply) => {
    const id = taskIdParam(request);
    await requireOwned(request, id);
    const ctx = callContext(request, reply);
    // Not retried: if a first cancel went through but its reply was lost, a retry would report a
    // misleading "not PENDING any more" error.
    const res = await upstream.call({
      method: 'POST',
      path: taskCancelPath(id),
      requestId: ctx.requestId,
      signal: ctx.signal,
      trace: ctx.trace,
      idempotent: false,
    });
    return sendUpstream(reply, res, upstream);
  });

  app.get('/api/v1/tasks', async (request, reply) => {
    const raw = request.url.indexOf('?');
    const query = raw >= 0 ? new URLSearchParams(request.url.slice(raw + 1)).toString() : '';
    if (query.length > 2048) throw invalidInput('query', 'is longer than 2048 characters');
    checkListQuery(new URLSearchParams(query));
    const ctx = callContext(request, reply);
    const { res, data: list } = await upstream.json(
      {
        method: 'GET',
        path: taskListPath(query),
        requestId: ctx.requestId,
        signal: ctx.signal,
        trace: ctx.trace,
        idempotent: true,
      },
      ListReply,
      'a data[] of tasks in the task list',
    );
    const data = list.data ?? [];
    const owners =
      data.length > 0
        ? await ownersOf(
            request,
            data.map((t) => t.task_id),
          )
        : [];
    const mine = data.filter((_, i) => owners[i] !== undefined && owners[i] === request.caller?.name);
    // `total` becomes the caller's count on this page: DashScope pages over the whole account, and the
    // gateway cannot count the caller's tasks on pages it has not fetched (README "Async batch embedding").
    const out = { ...list, data: mine, total: mine.length };
    if (res.requestId) reply.header('x-dashscope-request-id', res.requestId);
    return reply
      .code(200)
      .type('application/json')
      .send(upstream.scrub(Buffer.from(JSON.stringify(out))));
  });
}
