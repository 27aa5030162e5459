/**
 * Loopback ports for servers a test (or the test run's global setup) starts itself.
 */
import { createServer } from 'node:net';

/**
 * A loopback port nothing listens on right now: the OS picks it, we release it at once. Another process could take
 * it before the caller binds it; on loopback in a test run that race has not been worth more machinery. The same
 * port also serves as a "refused connection" target, since nothing listens on it once it is released.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
