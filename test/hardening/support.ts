/**
 * Shared pieces of the hardening tests: a real gateway process (`node --import tsx src/server.ts`, configured only
 * through the environment) pointed at an emulator in the test process, a raw-socket client that sends exactly the
 * bytes it is given (at the pace it is given), and a /healthz prober on a connection of its own.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { request } from 'undici';
import { freePort } from '../support/ports.js';

const REPO = join(import.meta.dirname, '..', '..');

export const UPSTREAM_KEY = 'sk-hardening-upstream-0123456789';
export const CALLER_KEY = 'gw-hardening-caller-0001';

export interface GatewayProcess {
  url: string;
  port: number;
  /** stdout and stderr lines (the access log among them). */
  out: string[];
  /** The access-log lines, parsed. */
  accessLog(): Record<string, unknown>[];
  stop(): Promise<void>;
}

async function waitReady(url: string, child: ChildProcess, out: string[], timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`gateway exited early:\n${out.slice(-20).join('\n')}`);
    try {
      const res = await request(`${url}/readyz`);
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`gateway not ready within ${timeoutMs} ms:\n${out.slice(-20).join('\n')}`);
}

/** Start a gateway process on a free loopback port; `env` overrides the defaults below. */
export async function startGateway(
  upstreamUrl: string,
  env: Record<string, string> = {},
): Promise<GatewayProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: REPO,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      DASHSCOPE_API_KEY: UPSTREAM_KEY,
      DASHSCOPE_BASE_URL: upstreamUrl,
      GATEWAY_API_KEYS: `hostile:${CALLER_KEY}`,
      RATE_LIMIT_RPM: '100000',
      UPSTREAM_RETRY_BASE_MS: '5',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: string[] = [];
  const keep = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') out.push(line);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitReady(url, child, out, 30_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    url,
    port,
    out,
    accessLog: () =>
      out.filter((l) => l.includes('"msg":"request"')).map((l) => JSON.parse(l) as Record<string, unknown>),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5_000).then(() => child.kill('SIGKILL'))]);
    },
  };
}

/**
 * GET /healthz every `everyMs` on one keep-alive connection of its own, recording how long each answer took.
 * The prober runs in a worker thread, so what it records is the gateway's delay, not this test process's (which
 * also runs the emulator and reads the gateway's log). Probes do not overlap: a slow one delays the next.
 */
const PROBER = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const { performance } = require('node:perf_hooks');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let timings = [];
let failures = [];
let running = true;
parentPort.on('message', (m) => {
  if (m === 'take') {
    parentPort.postMessage({ timings, failures });
    timings = [];
    failures = [];
  } else if (m === 'stop') {
    running = false;
  }
});
function once() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.get(workerData.url + '/healthz', { agent, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode !== 200) failures.push('status ' + res.statusCode);
        timings.push(performance.now() - t0);
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out after 5 s')));
    req.on('error', (err) => {
      failures.push(err.message);
      timings.push(performance.now() - t0);
      resolve();
    });
  });
}
(async () => {
  while (running) {
    await once();
    await new Promise((r) => setTimeout(r, workerData.everyMs));
  }
  agent.destroy();
  parentPort.close();
})();
`;

export interface ProbeStats {
  count: number;
  maxMs: number;
  failures: string[];
}

export class HealthProbe {
  private readonly worker: Worker;

  constructor(url: string, everyMs = 20) {
    this.worker = new Worker(PROBER, { eval: true, workerData: { url, everyMs } });
  }

  /** What was recorded since the last take(), and start afresh. */
  take(): Promise<ProbeStats> {
    return new Promise((resolve) => {
      this.worker.once('message', (m: { timings: number[]; failures: string[] }) => {
        resolve({
          count: m.timings.length,
          maxMs: m.timings.reduce((a, t) => Math.max(a, t), 0),
          failures: m.failures,
        });
      });
      this.worker.postMessage('take');
    });
  }

  async stop(): Promise<void> {
    this.worker.postMessage('stop');
    await Promise.race([new Promise((r) => this.worker.once('exit', r)), sleep(6_000)]);
    await this.worker.terminate();
  }
}

export interface RawReply {
  /** Everything the server sent. */
  text: string;
  status: number | undefined;
  /** ms from the first byte written until the server closed the connection (undefined: still open at the end). */
  closedAfterMs: number | undefined;
}

/** A raw TCP connection: writes what it is told and collects what comes back, noting when the server closed it. */
export class RawConnection {
  readonly socket: Socket;
  private received = '';
  private readonly opened = performance.now();
  private closedAt: number | undefined;
  readonly closed: Promise<void>;

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.socket.on('data', (d) => {
      this.received += d.toString('latin1');
    });
    this.socket.on('error', () => {});
    this.closed = new Promise((resolve) => {
      this.socket.once('close', () => {
        this.closedAt = performance.now();
        resolve();
      });
      // The server's FIN: the connection is over for the caller even if our side lingers.
      this.socket.once('end', () => {
        this.closedAt ??= performance.now();
        this.socket.destroy();
      });
    });
  }

  write(data: string | Buffer): boolean {
    if (this.socket.destroyed || this.closedAt !== undefined) return false;
    this.socket.write(data);
    return true;
  }

  /** Send `body` one byte every `everyMs` until it is sent or the server closes the connection. */
  async drip(body: string, everyMs: number): Promise<void> {
    for (const ch of body) {
      if (!this.write(ch)) return;
      await Promise.race([sleep(everyMs), this.closed]);
    }
  }

  reply(): RawReply {
    const m = /^HTTP\/1\.1 (\d{3})/.exec(this.received);
    return {
      text: this.received,
      status: m ? Number(m[1]) : undefined,
      closedAfterMs: this.closedAt === undefined ? undefined : this.closedAt - this.opened,
    };
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** The head of a POST with a JSON body of `length` bytes, to be followed by the body. */
export function postHead(path: string, length: number, headers: Record<string, string> = {}): string {
  const lines = [
    `POST ${path} HTTP/1.1`,
    'Host: gateway',
    'Content-Type: application/json',
    `Content-Length: ${length}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  return `${lines.join('\r\n')}\r\n\r\n`;
}
