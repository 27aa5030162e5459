/**
 * Regression: a caller that disconnected while the gateway waited for DashScope was logged as
 * `status: 200, aborted: true` (the default status of a reply never sent). It is logged as 499, nginx's
 * "client closed request", still with `aborted: true`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { auth, useStack } from '../helpers.js';

describe('a caller that hangs up before the reply', () => {
  const s = useStack();

  it('is logged with status 499 and aborted: true', async () => {
    const base = await s.listen();
    s.emu.addFault({ path: '/api/v1/services/embeddings/', delayMs: 1500 });
    const agent = new Agent();
    const ac = new AbortController();
    const pending = request(`${base}/v1/embeddings`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json', 'x-request-id': 'abort-499' },
      body: JSON.stringify({ model: 'text-embedding-v4', input: 'x' }),
      signal: ac.signal,
      dispatcher: agent,
    });
    // Hang up once the request is at DashScope, before its (delayed) reply.
    for (let i = 0; i < 100 && s.emu.received.length === 0; i++) await sleep(10);
    expect(s.emu.received).toHaveLength(1);
    ac.abort();
    await expect(pending).rejects.toThrow();
    await agent.destroy();
    let line: Record<string, unknown> | undefined;
    for (let i = 0; i < 100 && !line; i++) {
      line = s.logRecords().find((r) => r.msg === 'request' && r.reqId === 'abort-499');
      if (!line) await sleep(20);
    }
    expect(line).toMatchObject({ status: 499, aborted: true, url: '/v1/embeddings' });
    // Ended once: the connection's close ended it, and nothing logs it a second time when the upstream call,
    // aborted with the caller, settles.
    await sleep(300);
    expect(s.logRecords().filter((r) => r.msg === 'request' && r.reqId === 'abort-499')).toHaveLength(1);
  });
});
