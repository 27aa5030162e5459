/**
 * GET /api/v1/uploads takes any well-formed model name. Regression: each new name minted its own upstream budget
 * (an entry kept for the life of the process), so a caller could grow the gateway's memory without bound and get
 * a fresh RATE_LIMIT_RPM for every invented name. Names the gateway does not serve now share the `*` budget.
 */
import { describe, expect, it } from 'vitest';
import { auth, useStack } from '../helpers.js';

describe('upload policies for models the gateway does not serve', () => {
  // Two calls a minute, paced one per second: the second waits about a second, a third cannot start in time.
  const s = useStack({ env: { RATE_LIMIT_RPM: '2', RATE_LIMIT_MAX_WAIT_MS: '2000' } });

  const policy = (model: string) =>
    s.app.inject({ method: 'GET', url: `/api/v1/uploads?action=getPolicy&model=${model}`, headers: auth() });

  it('share one budget instead of minting a budget per invented name', async () => {
    expect((await policy('invented-model-1')).statusCode).toBe(200);
    expect((await policy('invented-model-2')).statusCode).toBe(200);
    s.emu.clearReceived();
    const third = await policy('invented-model-3');
    expect(third.statusCode).toBe(429);
    expect(third.json().code).toBe('Throttling');
    expect(s.emu.received).toHaveLength(0);
  });

  it('still counts a served model against that model’s own budget', async () => {
    expect((await policy('qwen-vl-plus')).statusCode).toBe(200);
  });
});
