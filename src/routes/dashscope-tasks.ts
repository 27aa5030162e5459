/**
 * Async batch text embedding and the task API (contract §1.2, §2.2, §2.6, §3.4):
 * - submission shares the sync text-embedding path; `X-DashScope-Async: enable` (the header's *value*: some
 *   clients send `disable`) selects it, and the sync route hands over to submitTextEmbeddingTask();
 * - `GET /api/v1/tasks/{id}`, `POST /api/v1/tasks/{id}/cancel`, `GET /api/v1/tasks` are forwarded.
 *
 * Every task runs under the gateway's one DashScope key, so DashScope cannot tell callers apart: the gateway
 * records which gateway key submitted each task (src/tasks/) and answers 404 for any task the caller did not
 * submit, whether it exists or not, so task ids cannot be probed. The list is filtered the same way.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { callContext } from '../app.js';
import { TEXT_EMBEDDING_PATH } from '../embeddings/text-pipeline.js';
import { GatewayError, invalidInput } from '../errors.js';
import { TASK_ID_RULE } from '../http/connections.js';
import { scrubSecret } from '../http/scrub.js';
import { classifyMedia } from '../media/url-policy.js';
import { TaskStoreUnavailable } from '../tasks/index.js';
import type { UpstreamResponse } from '../upstream/client.js';
import { upstreamFailure } from '../upstream/errors.js';
import { parseBody } from '../validation.js';

/**
 * DashScope task ids are UUIDs; this is looser, but keeps anything path-like or odd away from the upstream URL.
 * 100 is also Fastify's default maxParamLength: a longer id is refused before routing, with the same 400
 * (src/http/connections.ts, frameworkErrorHandler).
 */
export const TASK_ID = /^[A-Za-z0-9-]{1,100}$/;

const ASYNC_HEADER = 'x-dashscope-async';

/** True when the caller asked for an async task: the header's value must be `enable` (any case). */
export function asyncRequested(headers: IncomingHttpHeaders): boolean {
  const v = headers[ASYNC_HEADER];
  const value = Array.isArray(v) ? v[0] : v;
  return typeof value === 'string' && value.trim().toLowerCase() === 'enable';
}

/**
 * Whether a request on the text-embedding path belongs to the async submission handler: the header asks for it,
 * or the body names an async model (which then gets a clear 400 about the missing header, not a sync-body error).
 */
export function isAsyncSubmission(request: FastifyRequest): boolean {
  if (asyncRequested(request.headers)) return true;
  const body = request.body;
  if (typeof body !== 'object' || body === null || !('model' in body)) return false;
  const model = (body as { model: unknown }).model;
  return typeof model === 'string' && request.server.gw.models.get(model)?.kind === 'async-text-embedding';
}

const ModelOnly = z.object({ model: z.string({ error: 'must name a model' }).min(1, 'must name a model') });

const AsyncTextEmbeddingBody = z.object({
  model: z.string(),
  input: z.object({
    url: z
      .string({ error: 'must be the URL of the input file (http(s):// or oss://), one text per line' })
      .max(4096, 'is longer than 4096 characters'),
  }),
  // Unknown parameters are passed on (SDKs put any extra keyword there); text_type is checked.
  parameters: z
    .looseObject({
      text_type: z.enum(['query', 'document'], { error: 'must be "query" or "document"' }).optional(),
    })
    .optional(),
});

const SubmitReply = z.looseObject({
  output: z.looseObject({ task_id: z.string().regex(TASK_ID) }),
});

const ListReply = z.looseObject({
  data: z.array(z.looseObject({ task_id: z.string() })).nullish(),
  page_no: z.number().int().nullish(),
  page_size: z.number().int().nullish(),
  total_page: z.number().int().nullish(),
});

function asyncModelNames(request: FastifyRequest): string {
  const { models } = request.server.gw;
  return models
    .names()
    .filter((n) => models.get(n)?.kind === 'async-text-embedding')
    .join(', ');
}

function parseJson(res: UpstreamResponse): unknown {
  try {
    return JSON.parse(res.body.toString('utf8'));
  } catch {
    return undefined;
  }
}

function badUpstream(what: string, res: UpstreamResponse): GatewayError {
  const ref = res.requestId ? ` (DashScope request_id ${res.requestId})` : '';
  return new GatewayError('UPSTREAM_BAD_RESPONSE', `DashScope sent ${what}${ref}`);
}

function sendUpstream(reply: FastifyReply, res: UpstreamResponse, secret: string): FastifyReply {
  if (res.requestId) reply.header('x-dashscope-request-id', res.requestId);
  return reply.code(res.status).type('application/json').send(scrubSecret(res.body, secret));
}

/**
 * POST text-embedding with `X-DashScope-Async: enable`: validate, submit once (not idempotent: a retry could
 * create a second task), record the caller as the task's owner, pass DashScope's reply through.
 */
export async function submitTextEmbeddingTask(
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const { models, config, upstream, tasks } = request.server.gw;
  const { model: modelName } = parseBody(ModelOnly, request.body);
  request.ctx.model = modelName;
  const model = models.get(modelName);
  const headerOn = asyncRequested(request.headers);
  if (!model) {
    throw new GatewayError(
      'UNKNOWN_MODEL',
      `model "${modelName}" is not served here; async batch models: ${asyncModelNames(request)}`,
      { param: 'model' },
    );
  }
  if (model.kind !== 'async-text-embedding') {
    throw invalidInput(
      'X-DashScope-Async',
      `is "enable", but model "${modelName}" is synchronous; drop the header to embed input.texts directly, or use an async batch model (${asyncModelNames(request)}) with input.url`,
    );
  }
  if (!headerOn) {
    throw invalidInput(
      'X-DashScope-Async',
      `must be "enable": model "${modelName}" is an async batch model that only runs as a task (send the header, and the input file as input.url)`,
    );
  }
  const req = parseBody(AsyncTextEmbeddingBody, request.body);
  const ref = classifyMedia(req.input.url, 'input.url');
  if (ref.kind === 'data') {
    throw invalidInput(
      'input.url',
      'must be an http(s):// or oss:// URL of the input file; data URIs are not accepted for batch files',
    );
  }
  request.ctx.inputs = 1;
  const body: Record<string, unknown> = { model: req.model, input: { url: ref.value } };
  if (req.parameters !== undefined) body.parameters = req.parameters;
  const headers: Record<string, string> = { 'X-DashScope-Async': 'enable' };
  // DashScope resolves oss:// (temporary upload) URLs only when asked to (contract §2.7).
  if (ref.kind === 'oss') headers['X-DashScope-OssResourceResolve'] = 'enable';

  const ctx = callContext(request, reply);
  // No caller abort signal: once sent, the task may exist upstream, and recording its owner lets the caller
  // still find it in the task list after a dropped connection.
  const res = await upstream.call({
    method: 'POST',
    path: TEXT_EMBEDDING_PATH,
    body: JSON.stringify(body),
    headers,
    requestId: ctx.requestId,
    trace: ctx.trace,
    idempotent: false,
    model: req.model,
  });
  if (res.status < 200 || res.status >= 300) throw upstreamFailure(res, config.upstream.apiKey);
  const parsed = SubmitReply.safeParse(parseJson(res));
  if (!parsed.success) throw badUpstream('a task-creation reply without a usable output.task_id', res);
  const taskId = parsed.data.output.task_id;
  const owner = request.caller?.name ?? 'anonymous';
  const recorded = await tasks.record(taskId, owner);
  if (!recorded.shared && request.server.gw.redis) {
    request.log.warn(
      { task_id: taskId },
      'task owner could not be written to Redis: only this replica will recognise the task',
    );
  }
  return sendUpstream(reply, res, config.upstream.apiKey);
}

/** Task states DashScope reports (contract §3.4); `status=` filters on them. */
const TASK_STATES = new Set([
  'PENDING',
  'RUNNING',
  'SUCCEEDED',
  'FAILED',
  'CANCELED',
  'UNKNOWN',
  'SUSPENDED',
]);

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
  const { config, upstream, tasks } = app.gw;

  // The task routes take no body, but the DashScope SDKs send `Content-Type: application/json` with an empty
  // body on cancel; Fastify's default parser would refuse that. Scoped to this plugin only.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, _body, done) => {
    done(null, undefined);
  });

  const taskIdParam = (request: FastifyRequest): string => {
    const id = (request.params as { id?: unknown }).id;
    if (typeof id !== 'string' || !TASK_ID.test(id)) {
      throw invalidInput('task_id', TASK_ID_RULE);
    }
    return id;
  };

  const ownersOf = async (ids: readonly string[]): Promise<(string | undefined)[]> => {
    try {
      return await tasks.ownersOf(ids);
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
  };

  /** 404 unless the caller submitted the task: the same answer for "no such task" and "not yours". */
  const requireOwned = async (request: FastifyRequest, id: string): Promise<void> => {
    const [owner] = await ownersOf([id]);
    if (owner === undefined || owner !== request.caller?.name) {
      throw new GatewayError('NOT_FOUND', `task ${id} not found`, { param: 'task_id' });
    }
  };

  app.get('/api/v1/tasks/:id', async (request, reply) => {
    const id = taskIdParam(request);
    await requireOwned(request, id);
    const ctx = callContext(request, reply);
    const res = await upstream.call({
      method: 'GET',
      path: `/api/v1/tasks/${id}`,
      requestId: ctx.requestId,
      signal: ctx.signal,
      trace: ctx.trace,
      idempotent: true,
    });
    if (res.status < 200 || res.status >= 300) throw upstreamFailure(res, config.upstream.apiKey);
    return sendUpstream(reply, res, config.upstream.apiKey);
  });

  app.post('/api/v1/tasks/:id/cancel', async (request, reply) => {
    const id = taskIdParam(request);
    await requireOwned(request, id);
    const ctx = callContext(request, reply);
    // Not retried: if a first cancel went through but its reply was lost, a retry would report a
    // misleading "not PENDING any more" error.
    const res = await upstream.call({
      method: 'POST',
      path: `/api/v1/tasks/${id}/cancel`,
      requestId: ctx.requestId,
      signal: ctx.signal,
      trace: ctx.trace,
      idempotent: false,
    });
    if (res.status < 200 || res.status >= 300) throw upstreamFailure(res, config.upstream.apiKey);
    return sendUpstream(reply, res, config.upstream.apiKey);
  });

  app.get('/api/v1/tasks', async (request, reply) => {
    const raw = request.url.indexOf('?');
    const query = raw >= 0 ? new URLSearchParams(request.url.slice(raw + 1)).toString() : '';
    if (query.length > 2048) throw invalidInput('query', 'is longer than 2048 characters');
    checkListQuery(new URLSearchParams(query));
    const ctx = callContext(request, reply);
    const res = await upstream.call({
      method: 'GET',
      path: `/api/v1/tasks${query ? `?${query}` : ''}`,
      requestId: ctx.requestId,
      signal: ctx.signal,
      trace: ctx.trace,
      idempotent: true,
    });
    if (res.status < 200 || res.status >= 300) throw upstreamFailure(res, config.upstream.apiKey);
    const parsed = ListReply.safeParse(parseJson(res));
    if (!parsed.success) throw badUpstream('a task list without a data[] of tasks', res);
    const data = parsed.data.data ?? [];
    const owners = data.length > 0 ? await ownersOf(data.map((t) => t.task_id)) : [];
    const mine = data.filter((_, i) => owners[i] !== undefined && owners[i] === request.caller?.name);
    // `total` becomes the caller's count on this page: DashScope pages over the whole account, and the
    // gateway cannot count the caller's tasks on pages it has not fetched (README "Async batch embedding").
    // DashScope's total and total_page would tell every caller how many tasks the whole account holds, so
    // total_page only says whether there is a next page to walk: page_no + 1 while there is, page_no on the last.
    const pageNo = parsed.data.page_no ?? 1;
    const upstreamPages = parsed.data.total_page ?? pageNo;
    const out = {
      ...parsed.data,
      data: mine,
      total: mine.length,
      total_page: upstreamPages > pageNo ? pageNo + 1 : pageNo,
    };
    if (res.requestId) reply.header('x-dashscope-request-id', res.requestId);
    return reply
      .code(200)
      .type('application/json')
      .send(scrubSecret(Buffer.from(JSON.stringify(out)), config.upstream.apiKey));
  });
}
