/**
 * The deployment topology of docker/compose.yaml, without a container engine: Redis, the DashScope emulator,
 * three gateway processes (`node --import tsx src/server.ts`, configured only through the environment) and
 * Debian's nginx running docker/nginx.conf with the replica addresses rewritten to loopback ports.
 * A bounded burst of 300 concurrent requests through the load balancer, budget 20 per 3 s:
 *   - the emulator's arrival log never shows more than 20 calls in any 3-second window;
 *   - every request is answered: 200 (perhaps after waiting) or 429 with a whole-second Retry-After;
 *   - none is lost or duplicated (request ids end to end: caller → nginx → gateway → DashScope);
 *   - all three replicas served traffic.
 * Without nginx the test is skipped loudly; under CI=true that is a failure (.ci/run installs nginx).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Emulator, startEmulator } from '../../src/emulator/server.js';
import { maxInWindow, requireRedis, uniquePrefix } from '../ratelimit/support.js';
import { freePort } from '../support/ports.js';

const UPSTREAM_KEY = 'sk-topology-upstream-0123456789';
const CALLER_KEY = 'gw-topology-caller-0001';
const NATIVE = '/api/v1/services/embeddings/text-embedding/text-embedding';
const REPO = join(import.meta.dirname, '..', '..');
const BUDGET = 20;
const WINDOW_MS = 3000;
const BURST = 300;

const redisUrl = inject('redisUrl');
const haveRedis = requireRedis(redisUrl, 'the nginx topology test');
const haveNginx = spawnSync('nginx', ['-v']).status === 0;
if (!haveNginx) {
  const msg = 'nginx is not installed (apt-get install nginx-light): the nginx topology test is SKIPPED';
  if (process.env.CI === 'true') throw new Error(`${msg}; CI=true makes this fatal`);
  process.stderr.write(`\n!!! WARNING: ${msg} !!!\n\n`);
}

interface Proc {
  child: ChildProcess;
  out: string[];
}

function run(cmd: string, args: string[], env: Record<string, string> = {}, stdoutFd?: number): Proc {
  const child = spawn(cmd, args, {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ['ignore', stdoutFd ?? 'pipe', 'pipe'],
  });
  const out: string[] = [];
  const keep = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') out.push(line);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, out };
}

async function waitFor(url: string, what: Proc, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (what.child.exitCode !== null) throw new Error(`exited early:\n${what.out.slice(-20).join('\n')}`);
    try {
      const res = await request(url);
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms:\n${what.out.slice(-20).join('\n')}`);
}

async function stop(p: Proc | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((resolve) => p.child.once('exit', resolve));
  p.child.kill(signal);
  await Promise.race([exited, sleep(5_000).then(() => p.child.kill('SIGKILL'))]);
}

describe.skipIf(!haveRedis || !haveNginx)(
  'topology: nginx → three gateway processes → emulator, Redis',
  () => {
    let emu: Emulator;
    let dir: string;
    let lb: string;
    const gateways: Proc[] = [];
    let nginx: Proc | undefined;
    let accessLog = '';

    beforeAll(async () => {
      emu = await startEmulator({ apiKey: UPSTREAM_KEY });
      const prefix = uniquePrefix('topology');
      const ports = await Promise.all([freePort(), freePort(), freePort()]);
      for (const port of ports) {
        gateways.push(
          run(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
            PORT: String(port),
            HOST: '127.0.0.1',
            LOG_LEVEL: 'info',
            DASHSCOPE_API_KEY: UPSTREAM_KEY,
            DASHSCOPE_BASE_URL: emu.url,
            GATEWAY_API_KEYS: `flood:${CALLER_KEY}`,
            REDIS_URL: redisUrl,
            RATE_LIMIT_KEY_PREFIX: prefix,
            RATE_LIMIT_RPM: String(BUDGET),
            RATE_LIMIT_WINDOW_MS: String(WINDOW_MS),
            RATE_LIMIT_MAX_WAIT_MS: '6000',
            RATE_LIMIT_REPLICAS: '3',
            // Teardown stops them with SIGTERM: nothing polls /readyz here, so no drain delay is needed.
            SHUTDOWN_DRAIN_DELAY_MS: '0',
            // Five node processes and nginx on a shared 2-core machine: a call can reach the emulator a few hundred
            // ms after its start; the margin is the setting that absorbs that (DashScope counts on arrival).
            RATE_LIMIT_MARGIN_MS: '500',
          }),
        );
      }

      // docker/nginx.conf as is, but for the replica addresses, the listen port and the writable paths.
      dir = mkdtempSync(join(tmpdir(), 'dsgw-nginx-'));
      chmodSync(dir, 0o755); // nginx workers drop root and must reach their temp paths
      const lbPort = await freePort();
      let conf = readFileSync(join(REPO, 'docker', 'nginx.conf'), 'utf8');
      let replaced = 0;
      conf = conf.replace(/\bgateway-(\d):8080/g, (_m, n: string) => {
        replaced++;
        return `127.0.0.1:${ports[Number(n) - 1]}`;
      });
      expect(replaced).toBe(6); // each replica: its own server, and the next one's fallback
      expect(conf).toMatch(/^\s*listen 8080;/m);
      conf = conf
        .replace(/^(\s*)listen 8080;/m, `$1listen 127.0.0.1:${lbPort};`)
        .replaceAll('/tmp/', `${dir}/`);
      const confPath = join(dir, 'nginx.conf');
      writeFileSync(confPath, conf);
      // nginx opens /dev/stdout for its access log, which fails on the socket pairs Node uses for 'pipe': give it
      // a real file as stdout (and read the access log from there).
      accessLog = join(dir, 'access.log');
      const logFd = openSync(accessLog, 'a');
      const check = spawnSync('nginx', ['-t', '-e', 'stderr', '-p', dir, '-c', confPath], {
        encoding: 'utf8',
        stdio: ['ignore', logFd, 'pipe'],
      });
      expect(check.status, check.stderr).toBe(0);
      expect(check.stderr).toMatch(/test is successful/);

      await Promise.all(ports.map((p, i) => waitFor(`http://127.0.0.1:${p}/readyz`, gateways[i]!, 25_000)));
      nginx = run('nginx', ['-e', 'stderr', '-p', dir, '-c', confPath, '-g', 'daemon off;'], {}, logFd);
      closeSync(logFd);
      lb = `http://127.0.0.1:${lbPort}`;
      await waitFor(`${lb}/healthz`, nginx, 10_000);
    }, 45_000);

    afterAll(async () => {
      await stop(nginx, 'SIGQUIT');
      await Promise.all(gateways.map((g) => stop(g)));
      await emu?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('a burst of 300 through the load balancer: ≤ 20 upstream calls in any 3 s, every request answered once', async () => {
      emu.clearReceived();
      // As many connections as requests, so the burst really is concurrent at nginx.
      const agent = new Agent({ connections: BURST, keepAliveTimeout: 10_000 });
      const ids = Array.from({ length: BURST }, (_, i) => `burst-${i}`);
      const results = await Promise.all(
        ids.map(async (id) => {
          const res = await request(`${lb}/v1/embeddings`, {
            method: 'POST',
            dispatcher: agent,
            headers: {
              authorization: `Bearer ${CALLER_KEY}`,
              'content-type': 'application/json',
              'x-request-id': id,
            },
            body: JSON.stringify({ model: 'text-embedding-v4', input: id, encoding_format: 'float' }),
          });
          const text = await res.body.text();
          return { status: res.statusCode, headers: res.headers, text };
        }),
      );
      await agent.close();

      // Every request answered, with its own id back.
      expect(results).toHaveLength(BURST);
      results.forEach((r, i) => {
        expect([200, 429]).toContain(r.status);
        expect(r.headers['x-request-id']).toBe(ids[i]);
        if (r.status === 429) {
          expect(String(r.headers['retry-after'])).toMatch(/^[1-9]\d*$/);
          expect(Number(r.headers['retry-after'])).toBeLessThanOrEqual(60);
          expect(r.text).toMatch(/upstream budget/);
          expect(r.text).not.toMatch(/quota/i);
        }
      });
      const ok = ids.filter((_, i) => results[i]!.status === 200);
      // Served, not just refused: more than one window's worth within the wait (paced per second, so less than two).
      expect(ok.length).toBeGreaterThan(BUDGET);

      // None lost or duplicated: the upstream saw each 200's id exactly once and no 429's id.
      const calls = emu.received.filter((c) => c.url.startsWith(NATIVE));
      const upstreamIds = calls.map((c) => String(c.headers['x-request-id']));
      expect(new Set(upstreamIds).size).toBe(upstreamIds.length);
      expect([...upstreamIds].sort()).toEqual([...ok].sort());

      // The guarantee, on the upstream's arrival clock.
      expect(
        maxInWindow(
          calls.map((c) => c.at),
          WINDOW_MS,
        ),
      ).toBeLessThanOrEqual(BUDGET);

      // The load balancer spread the burst: every replica answered part of it.
      const servedNow = (): number[] =>
        gateways.map(
          (g) => g.out.filter((l) => l.includes('"msg":"request"') && l.includes('/v1/embeddings')).length,
        );
      // The access-log lines reach us through pipes a little after the responses do.
      for (let i = 0; i < 40 && servedNow().reduce((a, b) => a + b, 0) < BURST; i++) await sleep(50);
      const served = servedNow();
      expect(served.reduce((a, b) => a + b, 0)).toBe(BURST);
      for (const n of served) expect(n).toBeGreaterThan(0);
      // nginx logged each request once, with the caller's id.
      const lbLines = readFileSync(accessLog, 'utf8')
        .split('\n')
        .filter((l) => l.includes('/v1/embeddings'));
      expect(lbLines).toHaveLength(BURST);
      expect(new Set(lbLines.map((l) => /rid=(\S+)/.exec(l)?.[1])).size).toBe(BURST);
    }, 30_000);

    it('nginx sets a request id when the caller sends none, and the gateway and DashScope use it', async () => {
      emu.clearReceived();
      await sleep(WINDOW_MS + 200); // a fresh window after the burst
      const res = await request(`${lb}/v1/embeddings`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CALLER_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'text-embedding-v4', input: 'no id', encoding_format: 'float' }),
      });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
      const rid = String(res.headers['x-request-id']);
      expect(rid).toMatch(/^[0-9a-f]{32}$/); // nginx's $request_id
      expect(
        emu.received.filter((c) => c.url.startsWith(NATIVE)).map((c) => c.headers['x-request-id']),
      ).toEqual([rid]);
      expect(res.headers['x-ratelimit-limit-requests']).toBe(String(BUDGET));
    });
  },
);
