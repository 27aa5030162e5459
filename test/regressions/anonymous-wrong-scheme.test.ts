/**
 * With GATEWAY_ALLOW_ANONYMOUS=true a request with no key is let in as `anonymous`, but a wrong key is refused.
 * Regression: a credential in another Authorization scheme (Basic, Token, an empty Bearer) counted as "no key", so
 * it became `anonymous` (and saw the anonymous callers' tasks) instead of getting a 401.
 */
import { describe, expect, it } from 'vitest';
import { useStack } from '../helpers.js';

describe('anonymous access and a credential the gateway cannot read', () => {
  const s = useStack({ env: { GATEWAY_ALLOW_ANONYMOUS: 'true' } });

  const embed = (headers: Record<string, string>) =>
    s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: { ...headers, 'content-type': 'application/json' },
      payload: { model: 'text-embedding-v4', input: 'x' },
    });

  for (const authorization of ['Basic Zm9vOmJhcg==', 'Token gw-wrong-key-0001', 'Bearer ']) {
    it(`refuses Authorization: ${authorization.trim()} with 401, without calling DashScope`, async () => {
      const res = await embed({ authorization });
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe('invalid_api_key');
      expect(s.emu.received).toHaveLength(0);
    });
  }

  it('still lets a request with no credential in as anonymous', async () => {
    expect((await embed({})).statusCode).toBe(200);
  });
});
