/**
 * Regression: a body nested ~4,100 levels deep inside a field the gateway passes on (`parameters`) parsed fine,
 * then JSON.stringify threw a RangeError on the way upstream: a 500. It is now refused at parse time, 400 naming
 * the limit (JSON_MAX_DEPTH), in the caller's dialect, with no upstream call.
 */
import { describe, expect, it } from 'vitest';
import { auth, UPSTREAM_KEY, upstreamCalls, useStack } from '../helpers.js';

const deep = (levels: number): string => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;

describe('deeply nested JSON in a passed-on field', () => {
  const s = useStack();

  it('native generation: parameters nested 4,100 deep get a 400 naming JSON_MAX_DEPTH', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/api/v1/services/aigc/multimodal-generation/generation',
      headers: { ...auth(), 'content-type': 'application/json' },
      payload: `{"model":"qwen-vl-plus","input":{"messages":[{"role":"user","content":"hi"}]},"parameters":${deep(4100)}}`,
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'InvalidParameter' });
    expect(res.json().message).toMatch(/deeper than 64 levels.*JSON_MAX_DEPTH/);
    expect(res.body).not.toContain(UPSTREAM_KEY);
    expect(upstreamCalls(s.emu)).toHaveLength(0);
  });

  it('OpenAI chat: an extra field nested 4,100 deep gets a 400 in the OpenAI shape', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: { ...auth(), 'content-type': 'application/json' },
      payload: `{"model":"qwen-vl-plus","messages":[{"role":"user","content":"hi"}],"extra":${deep(4100)}}`,
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'invalid_json', param: 'body' });
    expect(upstreamCalls(s.emu)).toHaveLength(0);
  });

  it('nesting at the limit still goes through', async () => {
    // 64 levels in all: the body object, `parameters` and 62 more.
    const res = await s.app.inject({
      method: 'POST',
      url: '/api/v1/services/aigc/multimodal-generation/generation',
      headers: { ...auth(), 'content-type': 'application/json' },
      payload: `{"model":"qwen-vl-plus","input":{"messages":[{"role":"user","content":"hi"}]},"parameters":{"x":${deep(62)}}}`,
    });
    expect(res.statusCode).toBe(200);
    expect(upstreamCalls(s.emu)).toHaveLength(1);
  });
});
