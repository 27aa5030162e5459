/**
 * The graceful stop of a real gateway process (`node --import tsx src/server.ts`, configured only through the
 * environment) in front of the emulator, whose fault API holds a call in flight:
 *   - SIGTERM with one request in flight upstream and one queued for the upstream budget: /readyz answers 503
 *     {"status":"closing"} during SHUTDOWN_DRAIN_DELAY_MS while a new request is still accepted and served (with
 *     `connection: close`); after the delay new connections are refused; all three requests are answered 200 and
 *     the process exits 0;
 *   - a request still running at SHUTDOWN_TIMEOUT_MS is cut: one log line names how many and which, exit code 1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type Emulator, startEmulator } from '../../src/emulator/server.js';
import { freePort } from '../support/ports.js';

const UPSTREAM_KEY = 'sk-drain-upstream-0123456789';
const CALLER_KEY = 'gw-drain-caller-0001';
const NATIVE = '/api/v1/services/embeddings/text-embedding/text-embedding';
const REPO = join(import.meta.dirname, '..', '..');

interface Gateway {
  child: ChildProcess;
  base: string;
  /** Parsed JSON log lines (stdout), in order. */
  logs: Record<string, unknown>[];
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

async function startGateway(emu: Emulator, env: Record<string, string>): Promise<Gateway> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: REPO,
    env: {
      PATH: process.env.PATH ?? '',
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      DASHSCOPE_API_KEY: UPSTREAM_KEY,
      DASHSCOPE_BASE_URL: emu.url,
      GATEWAY_API_KEYS: `drain:${CALLER_KEY}`,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  let pending = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const gw: Gateway = { child, base: `http://127.0.0.1:${port}`, logs, exited };
  running.push(gw);
  for (let i = 0; i < 150; i++) {
    if (child.exitCode !== null) throw new Error(`gateway exited early: ${stderr.join('')}`);
    if (logs.some((l) => l.msg === 'gateway ready')) return gw;
    await sleep(100);
  }
  throw new Error(`gateway not ready within 15 s: ${stderr.join('')}`);
}

const running: Gateway[] = [];
const emulators: Emulator[] = [];
afterEach(async () => {
  for (const g of running.splice(0)) if (g.child.exitCode === null) g.child.kill('SIGKILL');
  for (const e of emulators.splice(0)) await e.close();
});

async function emulator(): Promise<Emulator> {
  const emu = await startEmulator({ apiKey: UPSTREAM_KEY });
  emulators.push(emu);
  return emu;
}

/** POST /v1/embeddings on its own connection (so no socket is shared between the requests under test). */
async function embed(base: string, id: string): Promise<{ status: number; connection: unknown }> {
  const agent = new Agent({ connections: 1 });
  try {
    const res = await request(`${base}/v1/embeddings`, {
      method: 'POST',
      dispatcher: agent,
      headers: {
        authorization: `Bearer ${CALLER_KEY}`,
        'content-type': 'application/json',
        'x-request-id': id,
      },
      body: JSON.stringify({ model: 'text-embedding-v4', input: id, dimensions: 64 }),
    });
    await res.body.dump();
    return { status: res.statusCode, connection: res.headers.connection };
  } finally {
    await agent.close();
  }
}

async function readyz(base: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(`${base}/readyz`, { reset: true });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

/** Poll until `check` is true; fails after `tries` × 50 ms (a bound on the wait, not a timing assertion). */
async function until(what: string, check: () => boolean | Promise<boolean>, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe('graceful stop of a gateway process', () => {
  it('SIGTERM: /readyz 503 while still serving, in-flight and budget-queued requests answered, exit 0', async () => {
    const emu = await emulator();
    // The first upstream call is held 1.5 s: request A is in flight when the signal comes.
    emu.addFault({ path: NATIVE, delayMs: 1500, times: 1 });
    const gw = await startGateway(emu, {
      // One upstream call per 1.5 s window: B (and later C) wait in the budget queue.
      RATE_LIMIT_RPM: '1',
      RATE_LIMIT_WINDOW_MS: '1500',
      SHUTDOWN_DRAIN_DELAY_MS: '1000',
      SHUTDOWN_TIMEOUT_MS: '20000',
    });

    const a = embed(gw.base, 'drain-a');
    await until('A to reach the emulator', () => emu.received.some((c) => c.url.startsWith(NATIVE)));
    const b = embed(gw.base, 'drain-b');
    await until('B to wait in the budget queue', async () => {
      const r = await readyz(gw.base);
      // Admitted and paced: it waits for its start time in the budget (or for its turn in the waiting room).
      const budget = r.body.upstream_budget as { queued?: number; paced?: number } | undefined;
      return (budget?.queued ?? 0) + (budget?.paced ?? 0) === 1;
    });

    gw.child.kill('SIGTERM');
    await until('the shutdown log line', () => gw.logs.some((l) => l.signal === 'SIGTERM'));
    // During the drain delay: not ready, but still serving.
    const r = await readyz(gw.base);
    expect(r).toEqual({ status: 503, body: { status: 'closing' } });
    const c = embed(gw.base, 'drain-c');
    await until('the drain delay to end', () =>
      gw.logs.some((l) => String(l.msg).startsWith('drain delay over')),
    );
    // Not accepting any more: new connections are refused (polled: the listener closes just after the log line).
    await until('new connections to be refused', async () => {
      try {
        const res = await request(`${gw.base}/healthz`, { reset: true });
        await res.body.dump();
        return false;
      } catch (err) {
        return (err as { code?: string }).code === 'ECONNREFUSED';
      }
    });

    const [ra, rb, rc] = await Promise.all([a, b, c]);
    expect(ra.status).toBe(200);
    expect(rb.status).toBe(200);
    expect(rc.status).toBe(200);
    // C was answered during the drain: it asked the client to take its next request elsewhere.
    expect(rc.connection).toBe('close');
    expect(await gw.exited).toBe(0);
    // Each of the three reached DashScope once, in order.
    const upstreamIds = emu.received
      .filter((x) => x.url.startsWith(NATIVE))
      .map((x) => String(x.headers['x-request-id']));
    expect(upstreamIds).toEqual(['drain-a', 'drain-b', 'drain-c']);
    expect(gw.logs.some((l) => l.msg === 'stopped: every request answered')).toBe(true);
    expect(gw.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('shutdown timeout'))).toBe(
      false,
    );
  }, 30_000);

  it('a request still running at SHUTDOWN_TIMEOUT_MS is cut, logged with its id, exit 1', async () => {
    const emu = await emulator();
    // Held far longer than the shutdown timeout below.
    emu.addFault({ path: NATIVE, delayMs: 8000, times: 1 });
    const gw = await startGateway(emu, { SHUTDOWN_DRAIN_DELAY_MS: '100', SHUTDOWN_TIMEOUT_MS: '1000' });

    const slow = embed(gw.base, 'drain-cut-1').then(
      (r) => r.status,
      (err: unknown) => (err as { code?: string }).code ?? 'error',
    );
    await until('the slow request to reach the emulator', () =>
      emu.received.some((c) => c.url.startsWith(NATIVE)),
    );
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(1);
    // The caller gets no reply: the connection closes under it.
    expect(await slow).not.toBe(200);
    const cut = gw.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('shutdown timeout'));
    expect(cut).toHaveLength(1);
    expect(cut[0]).toMatchObject({ level: 50, cut: 1, request_ids: ['drain-cut-1'], timeout_ms: 1000 });
    expect(cut[0]!.msg).toMatch(/cut 1 request/);
  }, 30_000);
});
