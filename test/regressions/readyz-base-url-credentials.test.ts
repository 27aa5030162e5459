/**
 * /readyz needs no key. Regression: it echoed DASHSCOPE_BASE_URL as configured, so credentials written into it (an
 * egress proxy's user:password) were handed to anyone who asked.
 */
import { describe, expect, it } from 'vitest';
import { useStack } from '../helpers.js';

describe('/readyz and a base URL with credentials', () => {
  const s = useStack({ env: { DASHSCOPE_BASE_URL: 'http://proxyuser:proxy-secret@127.0.0.1:9' } });

  it('names the upstream without its user name or password', async () => {
    const res = await s.app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.body).not.toContain('proxy-secret');
    expect(res.body).not.toContain('proxyuser');
    expect(res.json().upstream).toBe('http://127.0.0.1:9');
  });
});
