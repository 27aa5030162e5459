/**
 * Async batch text embedding end to end through the gateway against the emulator: submission on the shared
 * text-embedding path with X-DashScope-Async, polling to SUCCEEDED, cancel, and the 400s that cost no upstream call.
 */
import { describe, expect, it } from 'vitest';
import { resultUrl, taskTokens } from '../../src/emulator/routes/tasks.js';
import { auth, KEYS, UPSTREAM_KEY, upstreamCalls, useStack } from '../helpers.js';

const PATH = '/api/v1/services/embeddings/text-embedding/text-embedding';
const FILE_URL = 'https://example.com/batches/texts.txt';
const TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$/;
/** A signed task handle: DashScope's task id (a UUID), '-', a 32-hex tag. */
const HANDLE = /^[0-9a-f-]{36}-[0-9a-f]{32}$/;
/** DashScope's task id inside a handle. */
const rawId = (handle: string): string => handle.slice(0, handle.lastIndexOf('-'));

describe('async batch text embedding', () => {
  const s = useStack();

  const submit = (
    payload: unknown,
    headers: Record<string, string> = { 'X-DashScope-Async': 'enable' },
    key: string = KEYS.alice,
  ) =>
    s.app.inject({
      method: 'POST',
      url: PATH,
      headers: { ...auth(key), ...headers },
      payload: payload as object,
    });

  const submitOk = async (url = FILE_URL): Promise<string> => {
    const res = await submit({ model: 'text-embedding-async-v2', input: { url } });
    expect(res.statusCode).toBe(200);
    return res.json().output.task_id as string;
  };

  const poll = (id: string, key: string = KEYS.alice) =>
    s.app.inject({ method: 'GET', url: `/api/v1/tasks/${id}`, headers: auth(key) });

  it('submits with X-DashScope-Async: enable, then polls PENDING → RUNNING → SUCCEEDED with a result URL', async () => {
    const payload = {
      model: 'text-embedding-async-v2',
      input: { url: FILE_URL },
      parameters: { text_type: 'document', custom_flag: 1 },
    };
    const res = await submit(payload);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const created = res.json();
    expect(created.output.task_status).toBe('PENDING');
    expect(created.output.task_id).toMatch(HANDLE);
    expect(typeof created.request_id).toBe('string');

    // Forwarded once, to the same path, with the async header, the upstream key and the body as sent.
    const sent = upstreamCalls(s.emu, PATH);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.headers['x-dashscope-async']).toBe('enable');
    expect(sent[0]!.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(sent[0]!.headers['x-dashscope-ossresourceresolve']).toBeUndefined();
    expect(JSON.parse(sent[0]!.body)).toEqual(payload);

    const id = created.output.task_id as string;
    const statuses: string[] = [];
    let last: Record<string, unknown> = {};
    for (let i = 0; i < 5; i++) {
      const p = await poll(id);
      expect(p.statusCode).toBe(200);
      last = p.json();
      const out = last.output as Record<string, unknown>;
      statuses.push(out.task_status as string);
      if (out.task_status === 'SUCCEEDED') break;
    }
    expect(statuses).toEqual(['RUNNING', 'SUCCEEDED']);
    const out = last.output as Record<string, string>;
    expect(out.task_id).toBe(id);
    expect(out.url).toBe(resultUrl(rawId(id)));
    expect(out.url).toMatch(/^https?:\/\//);
    expect(out.submit_time).toMatch(TIME);
    expect(out.scheduled_time).toMatch(TIME);
    expect(out.end_time).toMatch(TIME);
    expect(last.usage).toEqual({ total_tokens: taskTokens(FILE_URL) });
    // DashScope is polled with its own task id, never the handle.
    expect(upstreamCalls(s.emu, `/api/v1/tasks/${rawId(id)}`)).toHaveLength(2);
    expect(upstreamCalls(s.emu, `/api/v1/tasks/${id}`)).toHaveLength(0);
  });

  it('lets the owner cancel a PENDING task; cancelling a RUNNING one passes DashScope’s 400 through', async () => {
    const id = await submitOk();
    // DashScope SDKs send Content-Type: application/json with an empty body on cancel.
    const cancel = await s.app.inject({
      method: 'POST',
      url: `/api/v1/tasks/${id}/cancel`,
      headers: { ...auth(), 'content-type': 'application/json' },
    });
    expect(cancel.statusCode).toBe(200);
    expect((await poll(id)).json().output.task_status).toBe('CANCELED');

    const id2 = await submitOk();
    expect((await poll(id2)).json().output.task_status).toBe('RUNNING');
    const late = await s.app.inject({ method: 'POST', url: `/api/v1/tasks/${id2}/cancel`, headers: auth() });
    expect(late.statusCode).toBe(400);
    expect(late.json().code).toBe('UnsupportedOperation');
  });

  it('adds X-DashScope-OssResourceResolve for an oss:// input file, and accepts the header in any case', async () => {
    const res = await submit(
      { model: 'text-embedding-async-v1', input: { url: 'oss://dashscope-instant/abc/texts.txt' } },
      { 'X-DashScope-Async': 'ENABLE' },
    );
    expect(res.statusCode).toBe(200);
    const sent = upstreamCalls(s.emu, PATH);
    expect(sent[0]!.headers['x-dashscope-ossresourceresolve']).toBe('enable');
  });

  it('does not retry a failed submission (a retry could create a second task)', async () => {
    s.emu.addFault({ path: PATH, status: 500 });
    const res = await submit({ model: 'text-embedding-async-v2', input: { url: FILE_URL } });
    expect(res.statusCode).toBe(502);
    expect(upstreamCalls(s.emu, PATH)).toHaveLength(1);
  });

  it('keeps the sync path working when a client sends X-DashScope-Async: disable', async () => {
    const res = await submit(
      { model: 'text-embedding-v4', input: { texts: ['hello'] }, parameters: { dimension: 64 } },
      { 'X-DashScope-Async': 'disable' },
    );
    expect(res.statusCode).toBe(200);
    expect(res.json().output.embeddings).toHaveLength(1);
  });

  const badInputs: { name: string; payload: unknown; headers?: Record<string, string>; param: RegExp }[] = [
    {
      name: 'missing input.url',
      payload: { model: 'text-embedding-async-v2', input: {} },
      param: /^input\.url: is required/,
    },
    {
      name: 'missing input',
      payload: { model: 'text-embedding-async-v2' },
      param: /^input: is required/,
    },
    {
      name: 'a file:// URL',
      payload: { model: 'text-embedding-async-v2', input: { url: 'file:///etc/passwd' } },
      param: /^input\.url: file:\/\/ URIs are refused/,
    },
    {
      name: 'a bare path',
      payload: { model: 'text-embedding-async-v2', input: { url: '/etc/passwd' } },
      param: /^input\.url: .*local paths are refused/,
    },
    {
      name: 'a data: URI',
      payload: { model: 'text-embedding-async-v2', input: { url: 'data:text/plain;base64,aGVsbG8=' } },
      param: /^input\.url: .*data URIs are not accepted/,
    },
    {
      name: 'a bad text_type',
      payload: { model: 'text-embedding-async-v2', input: { url: FILE_URL }, parameters: { text_type: 'x' } },
      param: /^parameters\.text_type: must be "query" or "document"/,
    },
    {
      name: 'an async model without the header',
      payload: { model: 'text-embedding-async-v2', input: { url: FILE_URL } },
      headers: {},
      param: /^X-DashScope-Async: must be "enable".*async batch model/,
    },
    {
      name: 'an async model with X-DashScope-Async: disable',
      payload: { model: 'text-embedding-async-v1', input: { url: FILE_URL } },
      headers: { 'X-DashScope-Async': 'disable' },
      param: /^X-DashScope-Async: must be "enable"/,
    },
    {
      name: 'the header with a sync model',
      payload: { model: 'text-embedding-v4', input: { texts: ['a'] } },
      param: /^X-DashScope-Async: is "enable", but model "text-embedding-v4" is synchronous/,
    },
  ];

  for (const c of badInputs) {
    it(`answers 400 for ${c.name}, without calling DashScope`, async () => {
      const res = await submit(c.payload, c.headers);
      expect(res.statusCode).toBe(400);
      const body = res.json();
      expect(body.code).toBe('InvalidParameter');
      expect(body.message).toMatch(c.param);
      expect(body.request_id).toBe(res.headers['x-request-id']);
      expect(s.emu.received).toHaveLength(0);
    });
  }

  it('answers 400 UNKNOWN_MODEL-style for an unknown model with the header', async () => {
    const res = await submit({ model: 'text-embedding-async-v9', input: { url: FILE_URL } });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/text-embedding-async-v1, text-embedding-async-v2/);
    expect(s.emu.received).toHaveLength(0);
  });

  it('refuses an async model on /v1/embeddings with a pointer to the native route', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: auth(),
      payload: { model: 'text-embedding-async-v2', input: 'hello' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/X-DashScope-Async: enable/);
    expect(s.emu.received).toHaveLength(0);
  });

  for (const bad of ['bad$id', 'a%2Fb', 'a.b', 'tab%09id']) {
    it(`answers 400 for the task id ${JSON.stringify(bad.slice(0, 12))}, without calling DashScope`, async () => {
      for (const req of [
        { method: 'GET' as const, url: `/api/v1/tasks/${bad}` },
        { method: 'POST' as const, url: `/api/v1/tasks/${bad}/cancel` },
      ]) {
        const res = await s.app.inject({ ...req, headers: auth() });
        expect(res.statusCode, req.url).toBe(400);
        expect(res.json().message).toMatch(/^task_id: must be 1 to 100 characters/);
      }
      expect(s.emu.received).toHaveLength(0);
    });
  }

  it('refuses an over-long task id without calling DashScope', async () => {
    const res = await poll('x'.repeat(101));
    expect(res.statusCode).toBeGreaterThanOrEqual(400);
    expect(res.statusCode).toBeLessThan(500);
    expect(s.emu.received).toHaveLength(0);
  });

  it('answers 404 NotFound for a well-formed id the gateway never issued, without calling DashScope', async () => {
    const res = await poll('0b0e6f3a-1111-4222-8333-444455556666');
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'NotFound' });
    expect(s.emu.received).toHaveLength(0);
  });

  it.each([
    ['page_size=abc', 'page_size', /must be a whole number/],
    ['page_no=0', 'page_no', /must be a whole number/],
    ['status=DONE', 'status', /must be one of PENDING, RUNNING/],
  ])('GET /api/v1/tasks?%s → 400 naming %s, no upstream call', async (query, param, rule) => {
    const res = await s.app.inject({ method: 'GET', url: `/api/v1/tasks?${query}`, headers: auth() });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('InvalidParameter');
    expect(res.json().message).toMatch(new RegExp(`^${param}: `));
    expect(res.json().message).toMatch(rule);
    expect(upstreamCalls(s.emu)).toHaveLength(0);
  });

  it('GET /api/v1/tasks passes well-formed and unknown list parameters on', async () => {
    const res = await s.app.inject({
      method: 'GET',
      url: '/api/v1/tasks?page_no=2&page_size=10&status=SUCCEEDED&model_name=text-embedding-async-v2',
      headers: auth(),
    });
    expect(res.statusCode).toBe(200);
    const [call] = upstreamCalls(s.emu, '/api/v1/tasks');
    expect(new URL(call!.url, 'http://x').searchParams.get('model_name')).toBe('text-embedding-async-v2');
    expect(new URL(call!.url, 'http://x').searchParams.get('page_no')).toBe('2');
  });
});
