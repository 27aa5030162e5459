/**
 * Async batch text-embedding submission (docs/dashscope-contract.md §1.2, §2.2, §3.4): it shares the sync
 * text-embedding path, and `X-DashScope-Async: enable` (the header's *value*: some clients send `disable`) selects
 * it. The caller's gateway key is recorded as the task's owner (./owner-store.ts).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { invalidInput } from '../errors.js';
import { callContext } from '../http/call-context.js';
import { classifyMedia } from '../media/url-policy.js';
import { TEXT_EMBEDDING_PATH } from '../upstream/paths.js';
import { parseBody } from '../validation.js';
import { sendUpstream, TASK_ID } from './ownership.js';

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

/**
 * POST text-embedding with `X-DashScope-Async: enable`: validate, submit once (not idempotent: a retry could
 * create a second task), record the caller as the task's owner, pass DashScope's reply through.
 */
export async function submitTextEmbeddingTask(
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const { models, upstream, tasks } = request.server.gw;
  const { model: modelName } = parseBody(ModelOnly, request.body);
  request.ctx.model = modelName;
  const model = models.get(modelName);
  const asyncNames = (): string =>
    models
      .names()
      .filter((n) => models.get(n)?.kind === 'async-text-embedding')
      .join(', ');
  if (model?.kind === 'text-embedding') {
    throw invalidInput(
      'X-DashScope-Async',
      `is "enable", but model "${modelName}" is synchronous; drop the header to embed input.texts directly, or use an async batch model (${asyncNames()}) with input.url`,
    );
  }
  models.require(modelName, 'async-text-embedding');
  if (!asyncRequested(request.headers)) {
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
  // DashScope resolves oss:// (temporary upload) URLs only when asked to (docs/dashscope-contract.md §2.7).
  if (ref.kind === 'oss') headers['X-DashScope-OssResourceResolve'] = 'enable';

  const ctx = callContext(request, reply);
  // No caller abort signal: once sent, the task may exist upstream, and recording its owner lets the caller
  // still find it in the task list after a dropped connection.
  const { res, data } = await upstream.json(
    {
      method: 'POST',
      path: TEXT_EMBEDDING_PATH,
      body: JSON.stringify(body),
      headers,
      requestId: ctx.requestId,
      trace: ctx.trace,
      idempotent: false,
      model: req.model,
    },
    SubmitReply,
    'a usable output.task_id in the task-creation reply',
  );
  const taskId = data.output.task_id;
  const owner = request.caller?.name ?? 'anonymous';
  const recorded = await tasks.record(taskId, owner);
  if (!recorded.shared && request.server.gw.redis) {
    request.log.warn(
      { task_id: taskId },
      'task owner could not be written to Redis: only this replica will recognise the task',
    );
  }
  return sendUpstream(reply, res, upstream);
}
