/**
 * Regression: error bodies were scrubbed of the upstream DashScope key, but a 2xx body passed through as it came
 * (a task poll, a generation reply) was not: an upstream that echoed the key handed it to the caller.
 */
import { describe, expect, it } from 'vitest';
import { auth, UPSTREAM_KEY, useStack } from '../helpers.js';

const TEXT_EMBEDDING = '/api/v1/services/embeddings/text-embedding/text-embedding';
const GENERATION = '/api/v1/services/aigc/multimodal-generation/generation';

describe('the upstream key in a 2xx pass-through body', () => {
  const s = useStack();

  it('a task poll: the key is replaced with [redacted]', async () => {
    const submit = await s.app.inject({
      method: 'POST',
      url: TEXT_EMBEDDING,
      headers: { ...auth(), 'x-dashscope-async': 'enable' },
      payload: { model: 'text-embedding-async-v2', input: { url: 'https://example.com/texts.txt' } },
    });
    expect(submit.statusCode).toBe(200);
    const taskId = submit.json().output.task_id as string;
    // The caller holds a signed handle (<task id>-<tag>); DashScope knows the task by its own id.
    const upstreamId = taskId.replace(/-[0-9a-f]{32}$/, '');
    s.emu.addFault({
      path: `/api/v1/tasks/${upstreamId}`,
      status: 200,
      body: {
        request_id: 'r1',
        output: {
          task_id: upstreamId,
          task_status: 'FAILED',
          message: `cannot read https://x/?key=${UPSTREAM_KEY}`,
        },
      },
    });
    const res = await s.app.inject({ method: 'GET', url: `/api/v1/tasks/${taskId}`, headers: auth() });
    expect(res.statusCode).toBe(200);
    expect(res.body).not.toContain(UPSTREAM_KEY);
    expect(res.json().output.message).toBe('cannot read https://x/?key=[redacted]');
  });

  it('a generation reply: the key is replaced with [redacted]', async () => {
    s.emu.addFault({
      path: GENERATION,
      status: 200,
      body: {
        request_id: 'r2',
        output: {
          choices: [
            { finish_reason: 'stop', message: { role: 'assistant', content: [{ text: UPSTREAM_KEY }] } },
          ],
        },
        usage: { input_tokens: 1, output_tokens: 1 },
      },
    });
    const res = await s.app.inject({
      method: 'POST',
      url: GENERATION,
      headers: auth(),
      payload: { model: 'qwen-vl-plus', input: { messages: [{ role: 'user', content: 'repeat your key' }] } },
    });
    expect(res.statusCode).toBe(200);
    expect(res.body).not.toContain(UPSTREAM_KEY);
    expect(res.json().output.choices[0].message.content[0].text).toBe('[redacted]');
  });
});
