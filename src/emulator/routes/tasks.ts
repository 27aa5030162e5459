/**
 * Async tasks as DashScope runs them (docs/dashscope-contract.md §2.2, §2.6, §3.4): batch text-embedding creation (the sync path
 * with `X-DashScope-Async: enable`; text-embedding.ts hands over), polling, cancel and the task list.
 *
 * The lifecycle is driven by polls, not by time, so tests are deterministic: a new task is PENDING; the 1st
 * poll finds it RUNNING, the 2nd and later SUCCEEDED (with the result-file URL and usage). Cancel works only
 * while PENDING (i.e. before any poll), as DashScope's does. An unknown id polls as 200 `UNKNOWN`, which is how
 * DashScope reports tasks that do not exist (or have expired).
 * State is per emulator instance (a WeakMap keyed by ctx.instance), so parallel test stacks do not share tasks.
 */
import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  type EmulatorContext,
  type EmulatorReply,
  type EmulatorRoute,
  HttpError,
  parseJson,
} from '../route.js';

type TaskStatus = 'PENDING' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELED';

interface EmuTask {
  taskId: string;
  model: string;
  status: TaskStatus;
  polls: number;
  inputUrl: string;
  requestId: string;
  submitTime: number;
  scheduledTime: number | undefined;
  endTime: number | undefined;
  totalTokens: number;
}

const STATE = new WeakMap<object, Map<string, EmuTask>>();

function tasksOf(instance: object): Map<string, EmuTask> {
  let m = STATE.get(instance);
  if (!m) {
    m = new Map();
    STATE.set(instance, m);
  }
  return m;
}

/** `yyyy-MM-dd HH:mm:ss.SSS` in Beijing time (UTC+8), as DashScope prints task times. */
export function taskTime(epochMs: number): string {
  return new Date(epochMs + 8 * 3600_000).toISOString().replace('T', ' ').replace('Z', '');
}

const headerIs = (ctx: EmulatorContext, name: string, value: string): boolean => {
  const v = ctx.req.headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  return typeof s === 'string' && s.trim().toLowerCase() === value;
};

/** Whether a request asks for an async task (the header's value, not its presence: some clients send `disable`). */
export const asyncRequested = (ctx: EmulatorContext): boolean => headerIs(ctx, 'x-dashscope-async', 'enable');

const CreateBody = z.object({
  model: z.string(),
  input: z.object({ url: z.string() }),
  parameters: z.record(z.string(), z.unknown()).optional(),
});

/**
 * The result file's URL: DashScope hands out a signed OSS URL; the emulator's is well-formed but not served.
 * Deterministic per task.
 */
export function resultUrl(taskId: string): string {
  return `https://dashscope-result-emulator.oss-cn-beijing.aliyuncs.com/text-embedding/${taskId}/result.txt.gz`;
}

/** Deterministic token count for a task: the emulator does not fetch the input file, so it derives one from the URL. */
export function taskTokens(inputUrl: string): number {
  return 10 + (createHash('sha256').update(inputUrl).digest().readUInt16BE(0) % 990);
}

/** POST text-embedding with `X-DashScope-Async: enable`: create a batch task. */
export function createTextEmbeddingTask(ctx: EmulatorContext): EmulatorReply {
  if (!asyncRequested(ctx)) {
    throw new HttpError(403, 'AccessDenied', 'current user api does not support synchronous calls');
  }
  const parsed = CreateBody.safeParse(parseJson(ctx.body));
  if (!parsed.success) {
    throw new HttpError(
      400,
      'InvalidParameter',
      'Required parameter(s) missing or invalid, please check the request parameters.',
    );
  }
  const { model, input, parameters = {} } = parsed.data;
  if (ctx.catalog.get(model)?.api !== 'batch-text-embedding') {
    throw new HttpError(403, 'AccessDenied', 'current user api does not support asynchronous calls');
  }
  const url = input.url.trim();
  const lower = url.toLowerCase();
  if (lower.startsWith('oss://')) {
    if (!headerIs(ctx, 'x-dashscope-ossresourceresolve', 'enable')) {
      throw new HttpError(400, 'InvalidURL', 'Invalid URL provided in your request.');
    }
  } else if (!lower.startsWith('http://') && !lower.startsWith('https://')) {
    throw new HttpError(400, 'InvalidURL', 'Invalid URL provided in your request.');
  }
  if (
    parameters.text_type !== undefined &&
    parameters.text_type !== 'query' &&
    parameters.text_type !== 'document'
  ) {
    throw new HttpError(400, 'InvalidParameter', 'text_type should be one of query, document');
  }
  const task: EmuTask = {
    taskId: randomUUID(),
    model,
    status: 'PENDING',
    polls: 0,
    inputUrl: url,
    requestId: ctx.requestId,
    submitTime: Date.now(),
    scheduledTime: undefined,
    endTime: undefined,
    totalTokens: taskTokens(url),
  };
  tasksOf(ctx.instance).set(task.taskId, task);
  return {
    status: 200,
    body: { request_id: ctx.requestId, output: { task_id: task.taskId, task_status: 'PENDING' } },
  };
}

function taskView(task: EmuTask): Record<string, unknown> {
  const output: Record<string, unknown> = {
    task_id: task.taskId,
    task_status: task.status,
    submit_time: taskTime(task.submitTime),
  };
  if (task.scheduledTime !== undefined) output.scheduled_time = taskTime(task.scheduledTime);
  if (task.endTime !== undefined) output.end_time = taskTime(task.endTime);
  if (task.status === 'SUCCEEDED') output.url = resultUrl(task.taskId);
  return output;
}

const TASK_PATH = /^\/api\/v1\/tasks\/([^/]+)$/;

function taskIdFrom(re: RegExp, path: string): string {
  try {
    return decodeURIComponent(re.exec(path)![1]!);
  } catch {
    throw new HttpError(400, 'InvalidParameter', 'task_id is not valid');
  }
}
const CANCEL_PATH = /^\/api\/v1\/tasks\/([^/]+)\/cancel$/;

export const getTask: EmulatorRoute = {
  method: 'GET',
  path: TASK_PATH,
  dialect: 'native',
  handle({ path, instance, requestId }) {
    const id = taskIdFrom(TASK_PATH, path);
    const task = tasksOf(instance).get(id);
    if (!task) {
      return {
        status: 200,
        body: { request_id: requestId, output: { task_id: id, task_status: 'UNKNOWN' } },
      };
    }
    if (task.status === 'PENDING' || task.status === 'RUNNING') {
      task.polls++;
      const now = Date.now();
      task.scheduledTime ??= now;
      if (task.polls >= 2) {
        task.status = 'SUCCEEDED';
        task.endTime = now;
      } else {
        task.status = 'RUNNING';
      }
    }
    const body: Record<string, unknown> = { request_id: requestId, output: taskView(task) };
    if (task.status === 'SUCCEEDED') body.usage = { total_tokens: task.totalTokens };
    return { status: 200, body };
  },
};

export const cancelTask: EmulatorRoute = {
  method: 'POST',
  path: CANCEL_PATH,
  dialect: 'native',
  handle({ path, instance, requestId }) {
    const id = taskIdFrom(CANCEL_PATH, path);
    const task = tasksOf(instance).get(id);
    if (task?.status !== 'PENDING') {
      throw new HttpError(400, 'UnsupportedOperation', 'The operation is unsupported on the referee object.');
    }
    task.status = 'CANCELED';
    task.endTime = Date.now();
    return { status: 200, body: { request_id: requestId } };
  },
};

const positiveInt = (raw: string | null, fallback: number, max: number): number => {
  if (raw === null || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new HttpError(400, 'InvalidParameter', `page parameters must be integers in [1, ${max}]`);
  }
  return n;
};

export const listTasks: EmulatorRoute = {
  method: 'GET',
  path: '/api/v1/tasks',
  dialect: 'native',
  handle({ query, instance, requestId }) {
    const pageNo = positiveInt(query.get('page_no'), 1, 1_000_000);
    const pageSize = positiveInt(query.get('page_size'), 10, 100);
    const status = query.get('status');
    const modelName = query.get('model_name');
    const all = [...tasksOf(instance).values()]
      .filter((t) => (status ? t.status === status : true))
      .filter((t) => (modelName ? t.model === modelName : true))
      .reverse(); // newest first
    const page = all.slice((pageNo - 1) * pageSize, pageNo * pageSize);
    const data = page.map((t) => ({
      api_key_id: 'emulator-key',
      caller_parent_id: 'emulator-parent',
      caller_uid: 'emulator-uid',
      end_time: t.endTime ?? null,
      gmt_create: t.submitTime,
      model_name: t.model,
      region: 'cn-beijing',
      request_id: t.requestId,
      start_time: t.scheduledTime ?? null,
      status: t.status,
      task_id: t.taskId,
      user_api_unique_key: 'apikey:v1:embeddings:text-embedding:text-embedding:async',
    }));
    return {
      status: 200,
      body: {
        request_id: requestId,
        data,
        total: all.length,
        total_page: Math.ceil(all.length / pageSize),
        page_no: pageNo,
        page_size: pageSize,
      },
    };
  },
};

export const TASK_ROUTES: readonly EmulatorRoute[] = [getTask, cancelTask, listTasks];
