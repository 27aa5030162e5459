/** The upload policy (first step of the DashScope SDKs' local-file flow) passes through the gateway unchanged. */
import { describe, expect, it } from 'vitest';
import { EMULATOR_UPLOAD_HOST } from '../../src/emulator/routes/uploads.js';
import { auth, UPSTREAM_KEY, upstreamCalls, useStack, WORKSPACE } from '../helpers.js';

const FIELDS = [
  'capacity_limit_mb',
  'expire_in_seconds',
  'max_file_size_mb',
  'oss_access_key_id',
  'policy',
  'signature',
  'upload_dir',
  'upload_host',
  'x_oss_forbid_overwrite',
  'x_oss_object_acl',
];

describe('GET /api/v1/uploads?action=getPolicy', () => {
  const s = useStack();

  it('passes the policy through under `data`, byte for byte, with the gateway’s key and workspace upstream', async () => {
    const res = await s.app.inject({
      method: 'GET',
      url: '/api/v1/uploads?action=getPolicy&model=qwen-vl-plus',
      headers: auth(),
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const body = res.json();
    expect(Object.keys(body.data).sort()).toEqual(FIELDS);
    expect(body.data.upload_host).toBe(EMULATOR_UPLOAD_HOST);
    expect(body.data.upload_dir).toMatch(/^dashscope-instant\//);
    expect(body.output).toBeUndefined();
    expect(typeof body.request_id).toBe('string');

    const calls = upstreamCalls(s.emu, '/api/v1/uploads');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.method).toBe('GET');
    expect(calls[0]!.url).toBe('/api/v1/uploads?action=getPolicy&model=qwen-vl-plus');
    expect(calls[0]!.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(calls[0]!.headers['x-dashscope-workspace']).toBe(WORKSPACE);
    // Unchanged: the upstream request_id stays in the body, and DashScope's id is echoed in a header.
    expect(res.headers['x-dashscope-request-id']).toBe(body.request_id);
  });

  const bad: { name: string; query: string; message: RegExp }[] = [
    { name: 'no action', query: '?model=qwen-vl-plus', message: /^action: / },
    {
      name: 'another action',
      query: '?action=delete&model=qwen-vl-plus',
      message: /^action: must be "getPolicy"/,
    },
    { name: 'no model', query: '?action=getPolicy', message: /^model: / },
    {
      name: 'an odd model name',
      query: '?action=getPolicy&model=a%2Fb',
      message: /^model: must be a model name/,
    },
  ];
  for (const c of bad) {
    it(`answers 400 for ${c.name}, without calling DashScope`, async () => {
      const res = await s.app.inject({ method: 'GET', url: `/api/v1/uploads${c.query}`, headers: auth() });
      expect(res.statusCode).toBe(400);
      expect(res.json().code).toBe('InvalidParameter');
      expect(res.json().message).toMatch(c.message);
      expect(s.emu.received).toHaveLength(0);
    });
  }

  it('answers 502 when DashScope’s reply has no upload_host (the SDK would fail obscurely later)', async () => {
    s.emu.addFault({ path: '/api/v1/uploads', status: 200, body: { request_id: 'x', output: {} } });
    const res = await s.app.inject({
      method: 'GET',
      url: '/api/v1/uploads?action=getPolicy&model=qwen-vl-plus',
      headers: auth(),
    });
    expect(res.statusCode).toBe(502);
    expect(res.json().code).toBe('BadGateway');
  });

  it('requires a gateway key', async () => {
    const res = await s.app.inject({
      method: 'GET',
      url: '/api/v1/uploads?action=getPolicy&model=qwen-vl-plus',
    });
    expect(res.statusCode).toBe(401);
    expect(s.emu.received).toHaveLength(0);
  });
});
