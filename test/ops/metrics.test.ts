/**
 * Prometheus metrics: real traffic through the gateway to the emulator (embeddings by two callers, a caller error,
 * an upstream 429, a budget refusal, a conversation), then a scrape of /metrics over HTTP on its own listener, and
 * the VALUES checked against what the replies said (request counts per route and status, upstream attempts per
 * model and status, tokens per caller equal to the usage the replies reported, refusals by reason).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { auth, KEYS, startStack, useStack } from '../helpers.js';

const TEXT_PATH = '/api/v1/services/embeddings/text-embedding/text-embedding';

/** Parsed exposition text: one sample per `name{labels} value` line. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the one sample with exactly these labels (0 when absent, as Prometheus would treat a counter). */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const hits = samples.filter(
    (s) =>
      s.name === name &&
      Object.keys(s.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  expect(hits.length, `${name} ${JSON.stringify(labels)} appears more than once`).toBeLessThanOrEqual(1);
  return hits[0]?.value ?? 0;
}

const sum = (samples: Sample[], name: string, where: Record<string, string> = {}): number =>
  samples
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);

describe('GET /metrics after real traffic', () => {
  const s = useStack({
    env: {
      METRICS_PORT: '0',
      // One call per window for v3 and no waiting: the second v3 request is refused by the budget ("late").
      RATE_LIMIT_MODELS: 'text-embedding-v3=1',
      // Short enough that v3's second call (one per minute) is refused as late, long enough that the clock
      // conversion between Redis-less pacing and the request's start never refuses an ordinary call.
      RATE_LIMIT_MAX_WAIT_MS: '1000',
    },
  });

  const embed = (key: string, model: string, input: string | string[]) =>
    s.app.inject({ method: 'POST', url: '/v1/embeddings', headers: auth(key), payload: { model, input } });

  const scrape = async (): Promise<{ status: number; type: string | null; samples: Sample[] }> => {
    const url = s.app.gw.metrics.url;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const res = await fetch(url!);
    return {
      status: res.status,
      type: res.headers.get('content-type'),
      samples: parseExposition(await res.text()),
    };
  };

  it('counts requests, upstream attempts, tokens per caller and refusals with the values the traffic produced', async () => {
    // Two callers, text-embedding-v4: the usage each reply reports is what the tokens counter must hold.
    const usage = { alice: 0, bob: 0 };
    for (const [who, input] of [
      ['alice', ['the first text', 'and a second one']],
      ['bob', 'a single text from bob'],
      ['alice', 'one more from alice, a little longer than the others'],
    ] as const) {
      const res = await embed(KEYS[who], 'text-embedding-v4', input as string | string[]);
      expect(res.statusCode).toBe(200);
      const total = res.json().usage.total_tokens as number;
      expect(total).toBeGreaterThan(0);
      usage[who] += total;
    }
    // A native text-embedding request by bob: same counter, another route.
    const native = await s.app.inject({
      method: 'POST',
      url: TEXT_PATH,
      headers: auth(KEYS.bob),
      payload: { model: 'text-embedding-v4', input: { texts: ['native call'] } },
    });
    expect(native.statusCode).toBe(200);
    usage.bob += native.json().usage.total_tokens as number;

    // A caller error: unknown model, answered before any upstream call.
    expect((await embed(KEYS.alice, 'no-such-model', 'x')).statusCode).toBe(400);
    // No key at all: 401 on the same route.
    const anon = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      payload: { model: 'x', input: 'y' },
    });
    expect(anon.statusCode).toBe(401);

    // An upstream 429 (not retried) on a model used nowhere else, so its budget hold touches no other call.
    s.emu.addFault({ path: TEXT_PATH, status: 429 });
    expect((await embed(KEYS.bob, 'text-embedding-v2', 'throttled')).statusCode).toBe(429);

    // A connection reset on every attempt (v1): the first try and both retries count, labelled by transport code.
    s.emu.addFault({ path: TEXT_PATH, reset: true, times: 3 });
    expect((await embed(KEYS.alice, 'text-embedding-v1', 'reset')).statusCode).toBe(502);

    // Multimodal embedding (OpenAI door): its usage is a single token figure.
    const mm = await embed(KEYS.alice, 'multimodal-embedding-v1', 'a text for the multimodal model');
    expect(mm.statusCode).toBe(200);
    const mmTokens = mm.json().usage.total_tokens as number;
    expect(mmTokens).toBeGreaterThan(0);

    // The budget of v3 is one call: the first goes, the second is refused without reaching DashScope.
    expect((await embed(KEYS.alice, 'text-embedding-v3', 'first v3')).statusCode).toBe(200);
    const refused = await embed(KEYS.alice, 'text-embedding-v3', 'second v3');
    expect(refused.statusCode).toBe(429);
    expect(refused.json().error.message).toMatch(/pacing its calls to DashScope/);

    // A conversation reply's usage counts for its caller too.
    const chat = await s.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: auth(KEYS.bob),
      payload: { model: 'qwen-vl-max-latest', messages: [{ role: 'user', content: 'hello there' }] },
    });
    expect(chat.statusCode).toBe(200);
    const chatTokens = chat.json().usage.total_tokens as number;
    expect(chatTokens).toBeGreaterThan(0);

    const m = s.app.gw.metrics;
    const { status, type, samples } = await scrape();
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/plain; version=0\.0\.4/);

    // Requests by route pattern and status.
    const req = (route: string, code: number, method = 'POST') =>
      value(samples, 'dsgw_http_requests_total', { method, route, status: String(code) });
    expect(req('/v1/embeddings', 200)).toBe(5); // 3 v4 + 1 v3 + 1 multimodal
    expect(req('/v1/embeddings', 502)).toBe(1);
    expect(req('/v1/embeddings', 400)).toBe(1);
    expect(req('/v1/embeddings', 401)).toBe(1);
    expect(req('/v1/embeddings', 429)).toBe(2); // upstream 429 + budget refusal
    expect(req(TEXT_PATH, 200)).toBe(1);
    expect(req('/v1/chat/completions', 200)).toBe(1);
    expect(
      value(samples, 'dsgw_http_request_duration_seconds_count', { method: 'POST', route: '/v1/embeddings' }),
    ).toBe(10);

    // Upstream attempts by model and status; the refused v3 call and the 400 never went out.
    const up = (model: string, code: number | string) =>
      value(samples, 'dsgw_upstream_requests_total', { model, status: String(code) });
    expect(up('text-embedding-v4', 200)).toBe(4);
    expect(up('text-embedding-v2', 429)).toBe(1);
    expect(up('text-embedding-v3', 200)).toBe(1);
    expect(up('qwen-vl-max-latest', 200)).toBe(1);
    expect(up('multimodal-embedding-v1', 200)).toBe(1);
    const v1 = samples.filter(
      (x) => x.name === 'dsgw_upstream_requests_total' && x.labels.model === 'text-embedding-v1',
    );
    expect(v1.reduce((a, x) => a + x.value, 0)).toBe(3);
    for (const x of v1) expect(x.labels.status).toMatch(/^(ECONNRESET|EPIPE|UND_ERR_SOCKET|UND_ERR_CLOSED)$/);
    expect(sum(samples, 'dsgw_upstream_requests_total')).toBe(11);
    expect(
      value(samples, 'dsgw_upstream_request_duration_seconds_count', { model: 'text-embedding-v4' }),
    ).toBe(4);

    // Tokens per caller: exactly the usage the replies reported.
    const tok = (model: string, caller: string) => value(samples, 'dsgw_tokens_total', { model, caller });
    expect(tok('text-embedding-v4', 'alice')).toBe(usage.alice);
    expect(tok('text-embedding-v4', 'bob')).toBe(usage.bob);
    expect(tok('qwen-vl-max-latest', 'bob')).toBe(chatTokens);
    expect(tok('text-embedding-v3', 'alice')).toBeGreaterThan(0);
    expect(tok('multimodal-embedding-v1', 'alice')).toBe(mmTokens);
    expect(tok('text-embedding-v1', 'alice')).toBe(0); // failed: nothing billed
    expect(tok('text-embedding-v2', 'bob')).toBe(0); // refused upstream: nothing billed

    // The budget: one refusal per reason; one admission per request that reached the budget (11 attempts: the
    // reset call's two retries take their units from its admission, and the refused v3 request waited for none).
    expect(value(samples, 'dsgw_budget_refusals_total', { reason: 'late' })).toBe(1);
    expect(value(samples, 'dsgw_budget_refusals_total', { reason: 'upstream_429' })).toBe(1);
    expect(value(samples, 'dsgw_budget_wait_seconds_count')).toBe(9);
    expect(value(samples, 'dsgw_budget_queued_calls')).toBe(0);

    // The cache counter exists before the cache does; recordCache is what the x-cache-* hook calls.
    expect(sum(samples, 'dsgw_cache_lookups_total')).toBe(0);
    m.recordCache(3, 1);
    const after = (await scrape()).samples;
    expect(value(after, 'dsgw_cache_lookups_total', { result: 'hit' })).toBe(3);
    expect(value(after, 'dsgw_cache_lookups_total', { result: 'miss' })).toBe(1);
    // Default process metrics ride along.
    expect(value(after, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
  });

  it('serves only GET /metrics on its own listener, never on the API port', async () => {
    const url = new URL(s.app.gw.metrics.url!);
    expect((await fetch(new URL('/', url))).status).toBe(404);
    expect((await fetch(new URL('/v1/embeddings', url))).status).toBe(404);
    const post = await fetch(url, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    // The API port has no /metrics route (it needs a key like any unknown path, and is 404 with one).
    const api = await s.app.inject({ method: 'GET', url: '/metrics', headers: auth() });
    expect(api.statusCode).toBe(404);
  });

  it('labels unmatched paths as one route, never by their URL', async () => {
    for (const path of ['/nope/a', '/nope/b', '/v1/whatever?x=1']) {
      await s.app.inject({ method: 'GET', url: path, headers: auth() });
    }
    const text = await (await fetch(s.app.gw.metrics.url!)).text();
    expect(text).not.toMatch(/nope|whatever/);
    expect(
      value(parseExposition(text), 'dsgw_http_requests_total', {
        method: 'GET',
        route: 'unmatched',
        status: '404',
      }),
    ).toBeGreaterThanOrEqual(3);
  });
});

describe('METRICS_PORT unset', () => {
  it('opens no metrics listener', async () => {
    const stack = await startStack();
    try {
      expect(stack.app.gw.config.metrics.port).toBeUndefined();
      expect(stack.app.gw.metrics.url).toBeUndefined();
    } finally {
      await stack.close();
    }
  });

  it('stops the listener when the app closes', async () => {
    const stack = await startStack({ env: { METRICS_PORT: '0' } });
    const url = stack.app.gw.metrics.url!;
    expect((await fetch(url)).status).toBe(200);
    await stack.close();
    await expect(fetch(url)).rejects.toThrow();
  });
});

describe('METRICS_* settings', () => {
  const base = { DASHSCOPE_API_KEY: 'sk-upstream-0123456789', GATEWAY_ALLOW_ANONYMOUS: 'true' };

  it('is off by default and binds to loopback unless told otherwise', () => {
    expect(loadConfig(base).metrics).toEqual({ port: undefined, host: '127.0.0.1' });
    expect(loadConfig({ ...base, METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0' }).metrics).toEqual({
      port: 9464,
      host: '0.0.0.0',
    });
  });

  it('refuses the API port and out-of-range ports', () => {
    expect(() => loadConfig({ ...base, PORT: '9464', METRICS_PORT: '9464' })).toThrow(
      /METRICS_PORT must differ from PORT \(9464\)/,
    );
    expect(() => loadConfig({ ...base, METRICS_PORT: '70000' })).toThrow(/METRICS_PORT/);
  });
});
