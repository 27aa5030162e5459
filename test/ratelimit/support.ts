/**
 * Shared pieces of the rate-limit tests: the sliding-window check on arrival times, a redis-server of a test's
 * own (so killing it cannot break other test files), and the loud skip rule for a missing Redis.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

/** The most arrival times found in any closed window [t, t + windowMs]. */
export function maxInWindow(times: number[], windowMs: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  let j = 0;
  for (let i = 0; i < t.length; i++) {
    if (j < i) j = i;
    while (j + 1 < t.length && t[j + 1]! - t[i]! <= windowMs) j++;
    best = Math.max(best, j - i + 1);
  }
  return best;
}

/** A unique Redis key prefix, so test files sharing one Redis never share a budget. */
export const uniquePrefix = (tag: string): string => `test:${tag}:${randomBytes(4).toString('hex')}:`;

/** Skip loudly without Redis; under CI=true a missing Redis fails the run instead. */
export function requireRedis(redisUrl: string, what: string): boolean {
  if (redisUrl) return true;
  const msg = `no Redis available (REDIS_URL unset and no redis-server): ${what} is SKIPPED`;
  if (process.env.CI === 'true') throw new Error(`${msg}; CI=true makes this fatal`);
  process.stderr.write(`\n!!! WARNING: ${msg} !!!\n\n`);
  return false;
}

export const hasRedisServer = (): boolean => spawnSync('redis-server', ['--version']).status === 0;

/** A redis-server child on a fixed loopback port that a test may kill and restart. */
export class OwnRedis {
  private child: ChildProcess | undefined;
  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    const until = Date.now() + 5_000;
    while (Date.now() < until) {
      const r = spawnSync('redis-cli', ['-p', String(this.port), 'ping'], { encoding: 'utf8' });
      if (r.stdout?.trim() === 'PONG') return;
      await sleep(50);
    }
    throw new Error(`redis-server on port ${this.port} did not answer PING within 5 s`);
  }

  /** SIGKILL, as a crash would: no goodbye to the clients. */
  async kill(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await exited;
  }
}
