/**
 * Regression: with GATEWAY_ALLOW_ANONYMOUS=true, an empty `Authorization:` header, a blank one, or an empty
 * `x-api-key` counted as "no credential" and was let in as `anonymous`. A credential header that is present but
 * unreadable is a wrong key: 401, no upstream call. Only a request with neither header is anonymous.
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { upstreamCalls, useStack } from '../helpers.js';

/** A raw HTTP/1.1 exchange, so the header goes out exactly as written (clients drop or trim empty headers). */
async function rawPost(base: string, header: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(base);
  const body = JSON.stringify({ model: 'text-embedding-v4', input: 'x' });
  const text = await new Promise<string>((resolve, reject) => {
    const sock = connect(Number(port), hostname);
    let out = '';
    sock.on('data', (d) => {
      out += d.toString('utf8');
    });
    sock.on('end', () => resolve(out));
    sock.on('error', reject);
    sock.write(
      `POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${header}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
  });
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
  return { status, body: text.slice(text.indexOf('\r\n\r\n') + 4) };
}

describe('anonymous access and an empty credential header', () => {
  const s = useStack({ env: { GATEWAY_ALLOW_ANONYMOUS: 'true' } });
  let base: string | undefined;
  const gateway = async (): Promise<string> => {
    base ??= await s.listen();
    return base;
  };

  for (const header of ['Authorization:', 'Authorization:    ', 'x-api-key:', 'x-api-key:   ']) {
    it(`refuses "${header}" with 401, without calling DashScope`, async () => {
      const res = await rawPost(await gateway(), header);
      expect(res.status).toBe(401);
      expect(JSON.parse(res.body).error.code).toBe('invalid_api_key');
      expect(upstreamCalls(s.emu)).toHaveLength(0);
    });
  }

  it('still lets a request with no credential header in as anonymous', async () => {
    const res = await rawPost(await gateway(), 'X-Other: 1');
    expect(res.status).toBe(200);
  });
});
