/** SHUTDOWN_* settings: defaults, bounds, and the drain delay must end before the hard timeout. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { configProblems } from '../support/config.js';

const BASE = { DASHSCOPE_API_KEY: 'sk-shutdown-config-0123', GATEWAY_API_KEYS: 'ops:gw-ops-key-0001' };

const problems = (env: Record<string, string>): string[] => configProblems({ ...BASE, ...env });

describe('SHUTDOWN_DRAIN_DELAY_MS and SHUTDOWN_TIMEOUT_MS', () => {
  it('default to 5 s of drain and a 25 s hard limit', () => {
    expect(loadConfig(BASE).shutdown).toEqual({ drainDelayMs: 5000, timeoutMs: 25000 });
  });

  it('take values within their bounds', () => {
    const c = loadConfig({ ...BASE, SHUTDOWN_DRAIN_DELAY_MS: '0', SHUTDOWN_TIMEOUT_MS: '1000' });
    expect(c.shutdown).toEqual({ drainDelayMs: 0, timeoutMs: 1000 });
  });

  it('refuse values out of bounds, naming the variable', () => {
    expect(problems({ SHUTDOWN_TIMEOUT_MS: '999' }).join('\n')).toMatch(/^SHUTDOWN_TIMEOUT_MS: /m);
    expect(problems({ SHUTDOWN_DRAIN_DELAY_MS: '-1' }).join('\n')).toMatch(/^SHUTDOWN_DRAIN_DELAY_MS: /m);
    expect(problems({ SHUTDOWN_DRAIN_DELAY_MS: '600001' }).join('\n')).toMatch(/^SHUTDOWN_DRAIN_DELAY_MS: /m);
  });

  it('refuse a drain delay that does not end before the timeout', () => {
    expect(problems({ SHUTDOWN_DRAIN_DELAY_MS: '25000' })).toEqual([
      'SHUTDOWN_DRAIN_DELAY_MS (25000) must be smaller than SHUTDOWN_TIMEOUT_MS (25000): both count from the signal',
    ]);
  });
});
