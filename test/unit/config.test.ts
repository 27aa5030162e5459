import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { configProblems } from '../support/config.js';

const base = { DASHSCOPE_API_KEY: 'sk-upstream-123', GATEWAY_API_KEYS: 'svc:key-for-svc-1' };

const problems = configProblems;

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig(base);
    expect(c.port).toBe(8080);
    expect(c.host).toBe('0.0.0.0');
    expect(c.upstream.baseUrl).toBe('https://dashscope.aliyuncs.com');
    expect(c.upstream.workspace).toBeUndefined();
    expect(c.gatewayKeys).toEqual([{ name: 'svc', key: 'key-for-svc-1' }]);
    expect(c.allowAnonymous).toBe(false);
    expect(c.maxInputsPerRequest).toBe(2048);
    expect(c.redisUrl).toBeUndefined();
  });

  it('reports every problem at once', () => {
    const p = problems({ PORT: 'eighty', LOG_LEVEL: 'loud', DASHSCOPE_BASE_URL: 'ftp://x' });
    expect(p.some((m) => m.startsWith('PORT'))).toBe(true);
    expect(p.some((m) => m.startsWith('LOG_LEVEL'))).toBe(true);
    expect(p.some((m) => m.startsWith('DASHSCOPE_BASE_URL'))).toBe(true);
    expect(p.some((m) => m.startsWith('DASHSCOPE_API_KEY'))).toBe(true);
    expect(new ConfigError(p).message).toContain('PORT');
  });

  it('refuses to start without gateway keys unless anonymous access is explicit', () => {
    expect(problems({ DASHSCOPE_API_KEY: 'sk-1' })).toEqual([
      expect.stringContaining('GATEWAY_API_KEYS is empty'),
    ]);
    expect(loadConfig({ DASHSCOPE_API_KEY: 'sk-1', GATEWAY_ALLOW_ANONYMOUS: 'true' }).allowAnonymous).toBe(
      true,
    );
  });

  it('reads the upstream key from DASHSCOPE_API_KEY_FILE (container secrets)', () => {
    const c = loadConfig(
      { ...base, DASHSCOPE_API_KEY: undefined, DASHSCOPE_API_KEY_FILE: '/run/secrets/k' },
      (p) => (p === '/run/secrets/k' ? 'sk-from-file\n' : ''),
    );
    expect(c.upstream.apiKey).toBe('sk-from-file');
    expect(problems({ ...base, DASHSCOPE_API_KEY_FILE: '/x' }, () => 'sk')).toEqual([
      expect.stringContaining('both set'),
    ]);
    expect(
      problems({ ...base, DASHSCOPE_API_KEY: undefined, DASHSCOPE_API_KEY_FILE: '/missing' }, () => {
        throw new Error('ENOENT');
      })[0],
    ).toMatch(/cannot read \/missing/);
  });

  it('rejects malformed gateway keys, duplicate names and the upstream key as a caller key', () => {
    expect(problems({ ...base, GATEWAY_API_KEYS: 'nokey' })[0]).toMatch(/name:key/);
    expect(problems({ ...base, GATEWAY_API_KEYS: 'a:key-number-1,a:key-number-2' })[0]).toMatch(/used twice/);
    expect(problems({ ...base, GATEWAY_API_KEYS: 'a:sk-upstream-123' })[0]).toMatch(
      /must not contain the upstream/,
    );
  });

  it('parses MODEL_ROW_LIMITS overrides', () => {
    const c = loadConfig({ ...base, MODEL_ROW_LIMITS: 'text-embedding-v3=20' });
    expect(c.rowLimits.get('text-embedding-v3')).toBe(20);
    expect(problems({ ...base, MODEL_ROW_LIMITS: 'text-embedding-v3=zero' })[0]).toMatch(/MODEL_ROW_LIMITS/);
    // An unknown model is reported with the other problems, not later at start-up.
    expect(problems({ ...base, PORT: 'x', MODEL_ROW_LIMITS: 'text-embedding-v9=5' })).toEqual([
      expect.stringMatching(/^PORT/),
      expect.stringMatching(
        /^MODEL_ROW_LIMITS: "text-embedding-v9" is not a model with a per-call row limit/,
      ),
    ]);
  });

  it('treats empty values as unset (FOO= lines in .env files)', () => {
    expect(loadConfig({ ...base, PORT: '', DASHSCOPE_WORKSPACE: '' }).port).toBe(8080);
  });
});
