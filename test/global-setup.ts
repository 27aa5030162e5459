/**
 * Gives every test file a real Redis: REDIS_URL when set, else a redis-server started here on a free loopback
 * port (and stopped at the end). Without one, Redis tests are skipped with a loud warning; under CI=true the run
 * fails instead, so a missing Redis can never turn into a green build that tested nothing.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import type { TestProject } from 'vitest/node';
import { freePort } from './support/ports.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

async function waitForPing(port: number, deadlineMs: number): Promise<boolean> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    const r = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' });
    if (r.stdout?.trim() === 'PONG') return true;
    await new Promise((res) => setTimeout(res, 100));
  }
  return false;
}

let child: ChildProcess | undefined;

export default async function setup(project: TestProject): Promise<() => void> {
  if (process.env.REDIS_URL) {
    project.provide('redisUrl', process.env.REDIS_URL);
    return () => {};
  }
  const which = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (which.status !== 0) {
    const msg = 'redis-server is not installed and REDIS_URL is not set: Redis-backed tests cannot run';
    if (process.env.CI === 'true') throw new Error(`${msg} (CI=true makes this fatal)`);
    process.stderr.write(`\n!!! WARNING: ${msg}; they will be SKIPPED !!!\n\n`);
    project.provide('redisUrl', '');
    return () => {};
  }
  const port = await freePort();
  child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  if (!(await waitForPing(port, 5_000))) {
    child.kill('SIGKILL');
    throw new Error(`redis-server on port ${port} did not answer PING within 5 s`);
  }
  project.provide('redisUrl', `redis://127.0.0.1:${port}`);
  return () => {
    child?.kill('SIGTERM');
  };
}
