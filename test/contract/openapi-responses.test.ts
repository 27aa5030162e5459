/**
 * openapi.yaml cannot drift from the gateway: every documented operation is called for real through the gateway
 * (in front of the emulator), for 200 and for every error status the emulator can provoke, and each reply's status,
 * content type, documented headers and body are validated against the description with ajv. Streams are checked
 * event by event, error framing included. Then: every documented operation and status must have been exercised (or
 * be listed below as not producible, with the reason), and every route the app serves must be documented.
 */
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { beforeEach, describe, expect, it } from 'vitest';
import { conversationSettings, resetConversation } from '../../src/emulator/routes/multimodal-generation.js';
import type { Fault } from '../../src/emulator/server.js';
import { auth, KEYS, type Stack, useStack } from '../helpers.js';
import {
  describeErrors,
  loadSpec,
  responseKeyFor,
  type SpecOperation,
  type SpecResponse,
} from './openapi-spec.js';

const spec = loadSpec();

/** Small enough that a 413 costs little to provoke; every valid body below is far smaller. */
const BODY_LIMIT = 16 * 1024;

const TEXT = '/api/v1/services/embeddings/text-embedding/text-embedding';
const MULTIMODAL = '/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding';
const GENERATION = '/api/v1/services/aigc/multimodal-generation/generation';

/**
 * Documented statuses no test here can produce without mocking the gateway's own code, and why. A status the
 * description adds later must either get a case or an entry here.
 */
const NOT_PRODUCIBLE: Record<string, string> = {
  '500': 'a gateway bug by definition (INTERNAL); nothing a caller or the emulator sends provokes it',
};

// ----------------------------------------------------------------------------------------------------------------
// The cases

type Prepare = (s: Stack) => Promise<InjectOptions> | InjectOptions;

interface Case {
  name: string;
  status: number;
  request: InjectOptions | Prepare;
  /** The stream's dialect when the reply must be an event stream. */
  stream?: 'native' | 'openai';
  /** The stream must end with an error event (in the dialect's framing) rather than normally. */
  streamError?: boolean;
  /**
   * The gateway breaks the description here (a bug to fix in the gateway, not in openapi.yaml): the case runs as an
   * expected failure, so the suite stays green until the fix lands and then says to drop this marker.
   */
  gatewayBug?: string;
  /** Headers this reply must carry, each documented for its response (their values are checked as all are). */
  headers?: readonly string[];
}

/** Statuses the gateway answers by itself: an operation that can answer one must list it, not leave it to `4XX`. */
const OWN_STATUSES = new Set([400, 401, 404, 413, 415, 429]);

const json = (url: string, payload: unknown, headers: Record<string, string> = {}): InjectOptions => ({
  method: 'POST',
  url,
  headers: { ...auth(), 'content-type': 'application/json', ...headers },
  payload: JSON.stringify(payload),
});

/** A body over BODY_LIMIT (the text is never looked at: the parser refuses it first). */
const tooLarge = (url: string): InjectOptions => json(url, { model: 'x', input: 'a'.repeat(BODY_LIMIT + 1) });
const plainText = (url: string): InjectOptions => ({
  method: 'POST',
  url,
  headers: { ...auth(), 'content-type': 'text/plain' },
  payload: 'hello',
});
const noKey = (req: InjectOptions): InjectOptions => {
  const { authorization: _gone, ...headers } = (req.headers ?? {}) as Record<string, string>;
  return { ...req, headers };
};
const withFault =
  (fault: Fault, req: InjectOptions | Prepare): Prepare =>
  async (s) => {
    const options = typeof req === 'function' ? await req(s) : req;
    s.emu.addFault(fault);
    return options;
  };

/**
 * The upstream failures every DashScope-calling route maps the same way. `times` covers the retries of idempotent
 * calls (UPSTREAM_RETRIES is 2, so 3 attempts).
 */
function upstreamFailures(ok: InjectOptions | Prepare, bugs: { malformed?: string } = {}): Case[] {
  return [
    {
      name: 'DashScope throttles (429 passed on)',
      status: 429,
      request: withFault({ status: 429, times: 5, headers: { 'retry-after': '2' } }, ok),
    },
    {
      name: 'DashScope refuses with another 4xx (403 passed on)',
      status: 403,
      request: withFault({ status: 403, times: 5 }, ok),
    },
    {
      name: 'DashScope sends a malformed reply',
      status: 502,
      request: withFault({ malformed: true, times: 5 }, ok),
      gatewayBug: bugs.malformed,
    },
    {
      name: "DashScope rejects the gateway's key",
      status: 502,
      request: withFault({ status: 401, times: 5 }, ok),
    },
    { name: 'DashScope is unavailable', status: 503, request: withFault({ status: 503, times: 5 }, ok) },
    { name: 'DashScope times out (504)', status: 504, request: withFault({ status: 504, times: 5 }, ok) },
  ];
}

function openAIEmbeddingCases(url: string): Case[] {
  const ok = json(url, { model: 'text-embedding-v4', input: ['hello', 'world'], dimensions: 64 });
  return [
    { name: 'float', status: 200, request: ok },
    {
      name: 'base64',
      status: 200,
      request: json(url, { model: 'text-embedding-v4', input: 'hi', encoding_format: 'base64' }),
    },
    {
      name: 'split into 2 upstream calls',
      status: 200,
      request: json(url, {
        model: 'text-embedding-v3',
        input: Array.from({ length: 12 }, (_, i) => `t${i}`),
      }),
    },
    {
      name: 'multimodal items',
      status: 200,
      request: json(url, {
        model: 'multimodal-embedding-v1',
        input: [{ text: 'a cat' }, { image: 'https://example.com/cat.png' }],
      }),
    },
    {
      name: 'bad dimensions',
      status: 400,
      request: json(url, { model: 'text-embedding-v4', input: 'hi', dimensions: 100 }),
    },
    { name: 'unknown model', status: 400, request: json(url, { model: 'no-such-model', input: 'hi' }) },
    { name: 'invalid JSON', status: 400, request: { ...ok, payload: '{"model":' } },
    { name: 'no key', status: 401, request: noKey(ok) },
    { name: 'body over BODY_LIMIT_BYTES', status: 413, request: tooLarge(url) },
    { name: 'text/plain body', status: 415, request: plainText(url) },
    ...upstreamFailures(ok),
  ];
}

function chatCases(url: string): Case[] {
  const body = (extra: Record<string, unknown> = {}) => ({
    model: 'qwen-vl-plus',
    messages: [
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url: 'https://example.com/a.png' } },
          { type: 'text', text: 'What is this?' },
        ],
      },
    ],
    ...extra,
  });
  const ok = json(url, body());
  const stream = json(url, body({ stream: true }));
  return [
    { name: 'JSON', status: 200, request: ok },
    { name: 'stream', status: 200, request: stream, stream: 'openai' },
    {
      name: 'stream broken off by DashScope',
      status: 200,
      stream: 'openai',
      streamError: true,
      request: (s) => {
        conversationSettings(s.emu.instance).dropAfterEvents = 2;
        return stream;
      },
    },
    {
      name: 'stream refused before it starts (429)',
      status: 429,
      request: withFault({ status: 429, headers: { 'retry-after': '1' } }, stream),
    },
    {
      name: 'file:// image',
      status: 400,
      request: json(url, {
        model: 'qwen-vl-plus',
        messages: [
          { role: 'user', content: [{ type: 'image_url', image_url: { url: 'file:///etc/passwd' } }] },
        ],
      }),
    },
    { name: 'unknown model', status: 400, request: json(url, { ...body(), model: 'gpt-4o' }) },
    { name: 'no key', status: 401, request: noKey(ok) },
    { name: 'body over BODY_LIMIT_BYTES', status: 413, request: tooLarge(url) },
    { name: 'text/plain body', status: 415, request: plainText(url) },
    ...upstreamFailures(ok),
  ];
}

/** src/tasks/ownership.ts sendUpstream() sends a 2xx body on as application/json without checking it is JSON. */

const nativeText = json(TEXT, {
  model: 'text-embedding-v4',
  input: { texts: ['hello'] },
  parameters: { dimension: 64 },
});
const asyncSubmit = json(
  TEXT,
  { model: 'text-embedding-async-v2', input: { url: 'https://example.com/batch.txt' } },
  { 'x-dashscope-async': 'enable' },
);

/** Submits an async task as alice (so she owns it) and returns its id. */
async function submitTask(s: Stack): Promise<string> {
  const res = await s.app.inject(asyncSubmit);
  if (res.statusCode !== 200) throw new Error(`task submission failed: ${res.statusCode} ${res.body}`);
  const id: unknown = res.json<{ output?: { task_id?: unknown } }>().output?.task_id;
  if (typeof id !== 'string') throw new Error(`task submission answered no task id: ${res.body}`);
  return id;
}
const pollOwnTask: Prepare = async (s) => ({
  method: 'GET',
  url: `/api/v1/tasks/${await submitTask(s)}`,
  headers: auth(),
});
const cancelOwnTask: Prepare = async (s) => ({
  method: 'POST',
  url: `/api/v1/tasks/${await submitTask(s)}/cancel`,
  headers: { ...auth(), 'content-type': 'application/json' },
});
const list: InjectOptions = { method: 'GET', url: '/api/v1/tasks?page_no=1&page_size=10', headers: auth() };
const policy: InjectOptions = {
  method: 'GET',
  url: '/api/v1/uploads?action=getPolicy&model=qwen-vl-plus',
  headers: auth(),
};

const nativeGeneration = (extra: Record<string, string> = {}, params: Record<string, unknown> = {}) =>
  json(
    GENERATION,
    {
      model: 'qwen-vl-plus',
      parameters: { incremental_output: true, ...params },
      input: {
        messages: [
          { role: 'user', content: [{ image: 'https://example.com/a.png' }, { text: 'What is this?' }] },
        ],
      },
    },
    extra,
  );
const sse = { 'x-dashscope-sse': 'enable' };

const CASES: Case[] = [
  { name: 'GET /healthz', status: 200, request: { method: 'GET', url: '/healthz' } },
  { name: 'GET /readyz', status: 200, request: { method: 'GET', url: '/readyz' } },

  ...openAIEmbeddingCases('/v1/embeddings').map((c) => ({ ...c, name: `/v1/embeddings: ${c.name}` })),
  ...openAIEmbeddingCases('/compatible-mode/v1/embeddings').map((c) => ({
    ...c,
    name: `/compatible-mode/v1/embeddings: ${c.name}`,
  })),
  ...chatCases('/v1/chat/completions').map((c) => ({ ...c, name: `/v1/chat/completions: ${c.name}` })),
  ...chatCases('/compatible-mode/v1/chat/completions').map((c) => ({
    ...c,
    name: `/compatible-mode/v1/chat/completions: ${c.name}`,
  })),

  ...(
    [
      { name: 'one call', status: 200, request: nativeText },
      {
        name: 'dense&sparse',
        status: 200,
        request: json(TEXT, {
          model: 'text-embedding-v3',
          input: { texts: ['a b'] },
          parameters: { output_type: 'dense&sparse' },
        }),
      },
      {
        name: 'split into 2 upstream calls (merged body)',
        status: 200,
        request: json(TEXT, {
          model: 'text-embedding-v4',
          input: { texts: Array.from({ length: 12 }, (_, i) => `t${i}`) },
        }),
      },
      { name: 'async submission', status: 200, request: asyncSubmit },
      {
        name: 'bad output_type',
        status: 400,
        request: json(TEXT, {
          model: 'text-embedding-v2',
          input: { texts: ['a'] },
          parameters: { output_type: 'sparse' },
        }),
      },
      {
        name: 'async model without the async header',
        status: 400,
        request: json(TEXT, {
          model: 'text-embedding-async-v2',
          input: { url: 'https://example.com/b.txt' },
        }),
      },
      { name: 'no key', status: 401, request: noKey(nativeText) },
      { name: 'body over BODY_LIMIT_BYTES', status: 413, request: tooLarge(TEXT) },
      { name: 'text/plain body', status: 415, request: plainText(TEXT) },
      ...upstreamFailures(nativeText),
    ] satisfies Case[]
  ).map((c) => ({ ...c, name: `native text embedding: ${c.name}` })),

  ...(
    [
      {
        name: 'ONE-PEACE fused vector',
        status: 200,
        request: json(MULTIMODAL, {
          model: 'multimodal-embedding-one-peace-v1',
          input: {
            contents: [
              { text: 'a cow', factor: 1 },
              { image: 'https://example.com/cow.png', factor: 2 },
            ],
          },
        }),
      },
      {
        name: 'one vector per item',
        status: 200,
        request: json(MULTIMODAL, {
          model: 'multimodal-embedding-v1',
          input: { contents: [{ text: 'night' }, { image: 'https://example.com/n.jpg' }] },
        }),
      },
      {
        name: 'file:// image',
        status: 400,
        request: json(MULTIMODAL, {
          model: 'multimodal-embedding-v1',
          input: { contents: [{ image: 'file:///etc/passwd' }] },
        }),
      },
      { name: 'no key', status: 401, request: noKey(json(MULTIMODAL, {})) },
      { name: 'body over BODY_LIMIT_BYTES', status: 413, request: tooLarge(MULTIMODAL) },
      { name: 'text/plain body', status: 415, request: plainText(MULTIMODAL) },
      ...upstreamFailures(
        json(MULTIMODAL, { model: 'multimodal-embedding-v1', input: { contents: [{ text: 'night' }] } }),
      ),
    ] satisfies Case[]
  ).map((c) => ({ ...c, name: `native multimodal embedding: ${c.name}` })),

  ...(
    [
      { name: 'poll own task', status: 200, request: pollOwnTask },
      {
        name: 'malformed task id',
        status: 400,
        request: { method: 'GET', url: '/api/v1/tasks/not_a_task!', headers: auth() },
      },
      { name: 'no key', status: 401, request: { method: 'GET', url: '/api/v1/tasks/abc' } },
      {
        name: 'unknown task',
        status: 404,
        request: {
          method: 'GET',
          url: '/api/v1/tasks/2a1d8589-7148-422a-b9e7-f41682f07160',
          headers: auth(),
        },
      },
      ...upstreamFailures(pollOwnTask),
    ] satisfies Case[]
  ).map((c) => ({ ...c, name: `GET task: ${c.name}` })),

  ...(
    [
      { name: 'cancel own PENDING task', status: 200, request: cancelOwnTask },
      {
        name: 'cancel twice (DashScope 400 UnsupportedOperation passed on)',
        status: 400,
        request: async (s: Stack) => {
          const first = await cancelOwnTask(s);
          const res = await s.app.inject(first);
          if (res.statusCode !== 200) throw new Error(`first cancel failed: ${res.statusCode} ${res.body}`);
          return first;
        },
      },
      { name: 'no key', status: 401, request: { method: 'POST', url: '/api/v1/tasks/abc/cancel' } },
      {
        name: 'unknown task',
        status: 404,
        request: {
          method: 'POST',
          url: '/api/v1/tasks/2a1d8589-7148-422a-b9e7-f41682f07160/cancel',
          headers: auth(),
        },
      },
      ...upstreamFailures(cancelOwnTask),
    ] satisfies Case[]
  ).map((c) => ({ ...c, name: `cancel task: ${c.name}` })),

  ...(
    [
      {
        name: 'own tasks on the page',
        status: 200,
        request: async (s: Stack) => {
          await submitTask(s);
          return list;
        },
      },
      {
        name: 'page_no=0',
        status: 400,
        request: { method: 'GET', url: '/api/v1/tasks?page_no=0', headers: auth() },
      },
      { name: 'no key', status: 401, request: { method: 'GET', url: '/api/v1/tasks' } },
      ...upstreamFailures(list),
    ] satisfies Case[]
  ).map((c) => ({ ...c, name: `list tasks: ${c.name}` })),

  ...(
    [
      { name: 'policy', status: 200, request: policy },
      {
        name: 'bad action',
        status: 400,
        request: { method: 'GET', url: '/api/v1/uploads?action=put&model=qwen-vl-plus', headers: auth() },
      },
      {
        name: 'no key',
        status: 401,
        request: { method: 'GET', url: '/api/v1/uploads?action=getPolicy&model=qwen-vl-plus' },
      },
      ...upstreamFailures(policy),
    ] satisfies Case[]
  ).map((c) => ({ ...c, name: `upload policy: ${c.name}` })),

  ...(
    [
      { name: 'JSON', status: 200, request: nativeGeneration() },
      { name: 'stream (X-DashScope-SSE)', status: 200, request: nativeGeneration(sse), stream: 'native' },
      {
        name: 'stream (parameters.stream)',
        status: 200,
        request: nativeGeneration({}, { stream: true }),
        stream: 'native',
      },
      {
        name: 'stream ending in an upstream event:error',
        status: 200,
        stream: 'native',
        streamError: true,
        request: (s: Stack) => {
          conversationSettings(s.emu.instance).failAfterEvents = 1;
          return nativeGeneration(sse);
        },
      },
      {
        name: 'stream broken off by DashScope',
        status: 200,
        stream: 'native',
        streamError: true,
        request: (s: Stack) => {
          conversationSettings(s.emu.instance).dropAfterEvents = 2;
          return nativeGeneration(sse);
        },
      },
      {
        name: 'stream refused before it starts (429)',
        status: 429,
        request: withFault({ status: 429, headers: { 'retry-after': '1' } }, nativeGeneration(sse)),
      },
      {
        name: 'file:// image',
        status: 400,
        request: json(GENERATION, {
          model: 'qwen-vl-plus',
          input: { messages: [{ role: 'user', content: [{ image: 'file:///etc/passwd' }] }] },
        }),
      },
      { name: 'no key', status: 401, request: noKey(nativeGeneration()) },
      { name: 'body over BODY_LIMIT_BYTES', status: 413, request: tooLarge(GENERATION) },
      { name: 'text/plain body', status: 415, request: plainText(GENERATION) },
      ...upstreamFailures(nativeGeneration()),
    ] satisfies Case[]
  ).map((c) => ({ ...c, name: `native generation: ${c.name}` })),
];

// ----------------------------------------------------------------------------------------------------------------
// Checking one reply against the description

const mediaType = (contentType: string | undefined): string =>
  (contentType ?? '').split(';')[0]!.trim().toLowerCase();

function check(what: string, schema: unknown, value: unknown): void {
  const validate = spec.validator(schema);
  if (!validate(value)) {
    throw new Error(
      `${what} does not match openapi.yaml:\n${describeErrors(validate.errors)}\nbody: ${JSON.stringify(value).slice(0, 800)}`,
    );
  }
}

/** A documented header that is present must match its schema (header values are text: numbers are compared as numbers). */
function checkHeaders(where: string, documented: SpecResponse, res: LightMyRequestResponse): void {
  for (const [name, h] of Object.entries(documented.headers ?? {})) {
    const raw = res.headers[name.toLowerCase()];
    if (raw === undefined || h.schema === undefined) continue;
    const text = Array.isArray(raw) ? raw.join(',') : String(raw);
    const type = (h.schema as { type?: unknown }).type;
    const value = type === 'integer' || type === 'number' ? Number(text) : text;
    check(`${where}: header ${name}`, h.schema, value);
  }
  // A documented Retry-After on a 429 is the point of the answer: it must be there.
  if (res.statusCode === 429 && documented.headers?.['retry-after'] !== undefined) {
    expect(res.headers['retry-after'], `${where}: retry-after header`).toBeDefined();
  }
  // Every response documents x-request-id; the gateway must always send it.
  if (documented.headers?.['x-request-id'] !== undefined) {
    expect(res.headers['x-request-id'], `${where}: x-request-id header`).toEqual(expect.any(String));
  }
}

interface SseEvent {
  fields: Record<string, string>;
  comments: string[];
  data: string | undefined;
}

/** DashScope framing: `id:N`, `event:…`, `:HTTP_STATUS/200`, `data:{…}`, events separated by a blank line. */
function parseNativeSse(text: string): SseEvent[] {
  return text
    .split(/\r?\n\r?\n/)
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const ev: SseEvent = { fields: {}, comments: [], data: undefined };
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(':')) ev.comments.push(line.slice(1));
        else {
          const colon = line.indexOf(':');
          const [k, v] = colon < 0 ? [line, ''] : [line.slice(0, colon), line.slice(colon + 1)];
          if (k === 'data') ev.data = ev.data === undefined ? v : `${ev.data}\n${v}`;
          else ev.fields[k] = v;
        }
      }
      return ev;
    });
}

function parseJson(where: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${where}: not JSON: ${text.slice(0, 300)}`);
  }
}

function checkNativeStream(where: string, body: string, resultSchema: unknown, wantError: boolean): void {
  const events = parseNativeSse(body);
  expect(events.length, `${where}: at least one event`).toBeGreaterThan(0);
  expect(body, `${where}: DashScope streams end without [DONE]`).not.toContain('[DONE]');
  events.forEach((ev, i) => {
    const at = `${where}: event ${i + 1}`;
    expect(ev.fields.id, `${at}: id:N counting from 1`).toBe(String(i + 1));
    expect(ev.data, `${at}: has data`).toBeDefined();
    const data = parseJson(at, ev.data!);
    if (ev.fields.event === 'error') {
      expect(i, `${at}: event:error is the last event`).toBe(events.length - 1);
      check(`${at} (event:error data)`, spec.schema('DashScopeError'), data);
    } else {
      expect(ev.fields.event, `${at}: event name`).toBe('result');
      expect(ev.comments, `${at}: status comment`).toContain('HTTP_STATUS/200');
      check(`${at} (result data)`, resultSchema, data);
    }
  });
  expect(events.at(-1)!.fields.event === 'error', `${where}: ends with event:error`).toBe(wantError);
}

function checkOpenAIStream(where: string, body: string, wantError: boolean): void {
  const lines = body
    .split(/\r?\n/)
    .filter((l) => l.startsWith('data:'))
    .map((l) => l.slice('data:'.length).trim());
  expect(lines.length, `${where}: at least one data line`).toBeGreaterThan(0);
  const last = lines.at(-1)!;
  if (!wantError) expect(last, `${where}: ends with data: [DONE]`).toBe('[DONE]');
  const chunks = wantError ? lines : lines.slice(0, -1);
  chunks.forEach((line, i) => {
    const at = `${where}: data line ${i + 1}`;
    expect(line, `${at}: [DONE] only at the end`).not.toBe('[DONE]');
    const data = parseJson(at, line);
    if (wantError && i === chunks.length - 1) check(`${at} (error chunk)`, spec.schema('OpenAIError'), data);
    else expect(data, `${at}: a chat.completion.chunk`).toMatchObject({ object: 'chat.completion.chunk' });
  });
}

/** Status, content type, headers and body of `res` against the operation's documented response; returns the key used. */
function checkReply(op: SpecOperation, c: Case, res: LightMyRequestResponse): string {
  const where = `${op.operationId} (${op.method} ${op.path}) → ${res.statusCode}`;
  const key = responseKeyFor(op.responses, res.statusCode);
  if (key === undefined) {
    throw new Error(
      `${where}: status ${res.statusCode} is not documented (documented: ${Object.keys(op.responses).join(', ')}); body: ${res.body.slice(0, 300)}`,
    );
  }
  if (OWN_STATUSES.has(res.statusCode) && key !== String(res.statusCode)) {
    throw new Error(
      `${where}: the gateway answers ${res.statusCode} here but openapi.yaml only covers it by "${key}"; document it explicitly`,
    );
  }
  const documented = op.responses[key]!;
  const type = mediaType(res.headers['content-type'] as string | undefined);
  const content = documented.content ?? {};
  if (!(type in content)) {
    throw new Error(
      `${where}: content type "${type}" is not documented for ${key} (documented: ${Object.keys(content).join(', ') || 'none'})`,
    );
  }
  checkHeaders(where, documented, res);
  if (c.stream) {
    expect(type, `${where}: a stream`).toBe('text/event-stream');
    if (c.stream === 'native') {
      checkNativeStream(where, res.body, content['application/json']?.schema, c.streamError === true);
    } else checkOpenAIStream(where, res.body, c.streamError === true);
  } else if (type === 'application/json') {
    check(`${where}: body`, content[type]!.schema, parseJson(where, res.body));
  } else {
    throw new Error(`${where}: ${type} reply where JSON was expected`);
  }
  return key;
}

// ----------------------------------------------------------------------------------------------------------------

/** Routes the app serves, read from printRoutes' tree (`├── /api/v1/tasks (GET, HEAD)`, children indented by 4). */
function servedRoutes(tree: string): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(\S+)(?: \(([^)]*)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    stack.push(m[2]!);
    const path = stack.join('');
    for (const method of (m[3] ?? '').split(',').map((x) => x.trim())) {
      // Fastify adds HEAD for every GET by itself; it answers like the GET.
      if (method !== '' && method !== 'HEAD') out.push(`${method} ${path}`);
    }
  }
  return out;
}

/** `:id` and `{task_id}` are the same kind of segment. */
const normalise = (route: string): string => route.replace(/\{[^}]+\}|:[^/]+/g, '{}');

/** operationId → documented response keys the cases below produced. */
const exercised = new Map<string, Set<string>>();

/** One test per case, on the stack `s`: the real request through the gateway, its reply checked against the description. */
function runCases(s: Stack, cases: readonly Case[]): void {
  for (const c of cases) {
    const test = c.gatewayBug ? it.fails : it;
    test(c.gatewayBug ? `${c.name} [KNOWN GATEWAY BUG: ${c.gatewayBug}]` : c.name, async () => {
      const options = typeof c.request === 'function' ? await c.request(s) : c.request;
      const url = String(options.url ?? options.path ?? '');
      const method = String(options.method ?? 'GET').toUpperCase();
      const op = spec.match(method, url.split('?')[0]!);
      if (!op) throw new Error(`${method} ${url} is not documented in openapi.yaml`);
      const res = await s.app.inject(options);
      expect(res.statusCode, `${op.operationId}: ${c.name}: ${res.body.slice(0, 300)}`).toBe(c.status);
      const key = checkReply(op, c, res);
      for (const h of c.headers ?? []) {
        expect(
          op.responses[key]!.headers?.[h],
          `${op.operationId} → ${key}: header ${h} documented`,
        ).toBeDefined();
        expect(res.headers[h], `${op.operationId} → ${res.statusCode}: header ${h} sent`).toBeDefined();
      }
      const keys = exercised.get(op.operationId) ?? new Set<string>();
      exercised.set(op.operationId, keys.add(key));
    });
  }
}

/**
 * With the upstream budget on (x-ratelimit-*-requests on replies that called DashScope) and a per-caller limit for
 * bob (1 request a minute), so the gateway's own 429 is checked in both dialects. Upstream 429s are not provoked
 * here: they would put the budget on hold and slow every later case.
 */
describe("openapi.yaml: rate-limit headers and the gateway's own 429", () => {
  const s = useStack({ env: { RATE_LIMIT_RPM: '100000', CALLER_RATE_LIMITS: 'bob=1/1m' } });
  const asBob = (req: InjectOptions): InjectOptions => ({
    ...req,
    headers: { ...req.headers, ...auth(KEYS.bob) },
  });
  const openai = json('/v1/embeddings', { model: 'text-embedding-v4', input: 'hi' });
  // Every reply to a request that called DashScope carries DashScope's request id and the budget's state.
  const called = [
    'x-dashscope-request-id',
    'x-ratelimit-limit-requests',
    'x-ratelimit-remaining-requests',
    'x-ratelimit-reset-requests',
  ];
  const chat = { model: 'qwen-vl-plus', messages: [{ role: 'user', content: 'hi' }] };
  const ok = (name: string, request: InjectOptions | Prepare, extra: Partial<Case> = {}): Case => ({
    name: `${name} with the budget on`,
    status: 200,
    request,
    headers: called,
    ...extra,
  });
  runCases(s, [
    ok('/v1/embeddings', openai),
    ok('/compatible-mode/v1/embeddings', { ...openai, url: '/compatible-mode/v1/embeddings' }),
    ok('native text embedding', nativeText),
    ok('async submission', asyncSubmit),
    ok(
      'native multimodal embedding',
      json(MULTIMODAL, { model: 'multimodal-embedding-v1', input: { contents: [{ text: 'x' }] } }),
    ),
    ok('GET task', pollOwnTask),
    ok('cancel task', cancelOwnTask),
    ok('list tasks', list),
    ok('upload policy', policy),
    ok('native generation', nativeGeneration()),
    ok('native generation stream', nativeGeneration(sse), { stream: 'native' }),
    ok('/v1/chat/completions', json('/v1/chat/completions', chat)),
    ok('/compatible-mode/v1/chat/completions', json('/compatible-mode/v1/chat/completions', chat)),
    ok('/v1/chat/completions stream', json('/v1/chat/completions', { ...chat, stream: true }), {
      stream: 'openai',
    }),
    { name: 'bob spends his one request a minute', status: 200, request: asBob(nativeText) },
    {
      name: 'bob over CALLER_RATE_LIMITS (OpenAI dialect)',
      status: 429,
      request: asBob(openai),
      headers: ['retry-after'],
    },
    {
      name: 'bob over CALLER_RATE_LIMITS (DashScope dialect)',
      status: 429,
      request: asBob(nativeText),
      headers: ['retry-after'],
    },
  ]);
});

/** Redis unreachable (nothing listens on port 1): readiness says so, task ownership cannot be checked (503). */
describe('openapi.yaml: while Redis is unreachable', () => {
  const s = useStack({ env: { REDIS_URL: 'redis://127.0.0.1:1' } });
  const unknown = '/api/v1/tasks/00000000-0000-4000-8000-000000000001';
  runCases(s, [
    { name: 'GET /readyz (degraded)', status: 200, request: { method: 'GET', url: '/readyz' } },
    {
      name: 'GET task only Redis could know',
      status: 503,
      request: { method: 'GET', url: unknown, headers: auth() },
      headers: ['retry-after'],
    },
    {
      name: 'cancel task only Redis could know',
      status: 503,
      request: { method: 'POST', url: `${unknown}/cancel`, headers: auth() },
      headers: ['retry-after'],
    },
  ]);
});

describe('openapi.yaml: while draining', () => {
  const s = useStack();
  runCases(s, [
    {
      name: 'GET /readyz while draining',
      status: 503,
      request: (st: Stack) => {
        st.app.drain.begin();
        return { method: 'GET', url: '/readyz' };
      },
    },
  ]);
});

describe('openapi.yaml describes the real responses of every route', () => {
  const s = useStack({ env: { BODY_LIMIT_BYTES: String(BODY_LIMIT), RATE_LIMIT_RPM: '0' } });
  beforeEach(() => resetConversation(s.emu.instance));
  runCases(s, CASES);

  it.each([
    ['OpenAI', '/v1/no-such-route', 'OpenAIUpstreamRejected'],
    ['DashScope', '/api/v1/no-such-route', 'DashScopeUpstreamRejected'],
  ])('an unknown route answers 404 in the %s dialect, as documented', async (_d, url, name) => {
    const res = await s.app.inject({ method: 'GET', url, headers: auth() });
    expect(res.statusCode).toBe(404);
    expect(mediaType(res.headers['content-type'] as string)).toBe('application/json');
    check(`GET ${url} → 404`, spec.response(name).content!['application/json']!.schema, res.json());
  });

  it('every documented operation and explicit status was exercised (or is listed as not producible)', () => {
    const missing: string[] = [];
    for (const op of spec.operations) {
      const keys = exercised.get(op.operationId);
      if (!keys) {
        missing.push(`${op.operationId} (${op.method} ${op.path}): never called`);
        continue;
      }
      for (const key of Object.keys(op.responses)) {
        if (!/^\d{3}$/.test(key) || keys.has(key)) continue;
        if (NOT_PRODUCIBLE[key] !== undefined || NOT_PRODUCIBLE[`${op.operationId} ${key}`] !== undefined)
          continue;
        missing.push(`${op.operationId}: documented ${key} never produced`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('every route the app serves is documented, and every documented route is served', () => {
    const served = servedRoutes(s.app.printRoutes({ commonPrefix: false }))
      .map(normalise)
      .sort();
    const documented = spec.operations.map((op) => normalise(`${op.method} ${op.path}`)).sort();
    expect(served.length).toBeGreaterThan(0);
    expect(
      served.filter((r) => !documented.includes(r)),
      'served but not documented',
    ).toEqual([]);
    expect(
      documented.filter((r) => !served.includes(r)),
      'documented but not served',
    ).toEqual([]);
  });
});
