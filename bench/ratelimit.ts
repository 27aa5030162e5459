/**
 * `npm run bench:ratelimit`: what the upstream budget costs, in one run (see bench/README.md).
 *
 * 1. Budget-check cost: the same gateway without a budget (RATE_LIMIT_RPM=0) and with the Redis budget (a budget
 *    too large to refuse anything, so every request pays the Lua round trip), under the same load, alternated in
 *    rounds so machine noise hits both. Reported: p50/p99 latency and throughput of each, the ratio, the p99 the
 *    limiter adds (target < 1 ms with a local Redis), and Redis scripts per request.
 * 2. Rejection path: a flood far over the budget (RATE_LIMIT_RPM=1: after one call everything is refused):
 *    429s per second, p99, gateway CPU per rejection, heap and RSS after two floods (no growth), against the
 *    minimal pass-through proxy (bench/reference.ts) under the same load (target ≥ 0.5× its throughput).
 *
 * Every server is a child process (bench/ratelimit-child.ts); the load generator runs here: `connections`
 * keep-alive connections, each sending its next request when the last one is answered, timed with
 * performance.now() (autocannon's histograms have 1 ms resolution, too coarse for a sub-millisecond cost).
 * Loopback only; every loop is bounded by its duration. A redis-server of its own is started on a free port
 * unless REDIS_URL is set.
 *
 * Options: --duration <s per measurement> (4) --connections <n> (16) --rounds <n> (2)
 */
import { type ChildProcess, fork, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { freePort } from '../test/support/ports.js';
import type { RlChildMessage, RlChildOptions, RlParentMessage, RlRole, RlStats } from './ratelimit-child.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const RESULTS = join(HERE, 'results');
const UPSTREAM_KEY = 'sk-bench-upstream-key-0123456789';
const GATEWAY_KEY = 'gw-bench-key-0123456789';
const PATH = '/api/v1/services/embeddings/text-embedding/text-embedding';
// bench/run.ts's "1×1024" request, so the reference figure here is the one that bench reports.
const BODY = JSON.stringify({
  model: 'text-embedding-v4',
  input: { texts: ['benchmark passage 0: a self-hosted gateway relays embedding requests to DashScope'] },
  parameters: { dimension: 1024 },
});

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '4' },
    connections: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '2' },
  },
});
const DURATION_MS = Number(args.duration) * 1000;
const CONNECTIONS = Number(args.connections);
const ROUNDS = Number(args.rounds);

// ---------------------------------------------------------------- processes

async function startRedis(): Promise<{ url: string; stop: () => void }> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: () => {} };
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  for (let i = 0; i < 50; i++) {
    if (
      spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout?.trim() === 'PONG'
    ) {
      return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') };
    }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error('redis-server did not start (install it, or set REDIS_URL)');
}

interface Child {
  name: string;
  port: number;
  stats(gc?: boolean): Promise<RlStats>;
  stop(): Promise<void>;
}

let statsId = 0;

async function bundleChild(): Promise<string> {
  const outdir = join(RESULTS, 'build-ratelimit');
  await build({
    entryPoints: [join(HERE, 'ratelimit-child.ts')],
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    outExtension: { '.js': '.mjs' },
    logLevel: 'warning',
  });
  return join(outdir, 'ratelimit-child.mjs');
}

function startChild(script: string, name: string, role: RlRole, opts: RlChildOptions): Promise<Child> {
  const proc: ChildProcess = fork(script, [role, JSON.stringify(opts)], {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const waiting = new Map<number, (s: RlStats) => void>();
  return new Promise((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`${name} exited with ${code} before it was ready`)));
    proc.on('message', (m: RlChildMessage) => {
      if (m.type === 'stats') {
        waiting.get(m.id)?.(m.stats);
        waiting.delete(m.id);
        return;
      }
      resolve({
        name,
        port: m.port,
        stats: (gc = false) =>
          new Promise((res) => {
            const id = ++statsId;
            waiting.set(id, res);
            proc.send({ type: 'stats', id, gc } satisfies RlParentMessage);
          }),
        stop: () =>
          new Promise((res) => {
            proc.removeAllListeners('exit');
            proc.once('exit', () => res());
            proc.send({ type: 'exit' } satisfies RlParentMessage);
          }),
      });
    });
  });
}

// ---------------------------------------------------------------- load

interface Load {
  requests: number;
  statuses: Record<number, number>;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
  cpuUsPerRequest: number;
}

const pct = (sorted: number[], p: number): number =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

/** `connections` closed-loop clients for `ms`, each request timed. CPU is the server's own, from its process. */
async function load(target: Child, connections: number, ms: number): Promise<Load> {
  const pool = new Pool(`http://127.0.0.1:${target.port}`, { connections, pipelining: 1 });
  const headers = { authorization: `Bearer ${GATEWAY_KEY}`, 'content-type': 'application/json' };
  const lat: number[] = [];
  const statuses: Record<number, number> = {};
  let errors = 0;
  const before = await target.stats();
  const started = performance.now();
  const until = started + ms;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        try {
          const res = await pool.request({ method: 'POST', path: PATH, headers, body: BODY });
          await res.body.dump();
          statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
          lat.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = performance.now() - started;
  const after = await target.stats();
  await pool.close();
  lat.sort((a, b) => a - b);
  const cpuUs = after.userUs - before.userUs + (after.systemUs - before.systemUs);
  return {
    requests: lat.length,
    statuses,
    errors,
    rps: (lat.length / elapsed) * 1000,
    p50: pct(lat, 50),
    p99: pct(lat, 99),
    cpuUsPerRequest: lat.length > 0 ? cpuUs / lat.length : Number.NaN,
  };
}

/** Several loads of one target, merged (weighted by requests for averages; worst p99 kept as well). */
function merge(runs: Load[]): Load & { p99Worst: number } {
  const requests = runs.reduce((s, r) => s + r.requests, 0);
  const w = (f: (r: Load) => number) => runs.reduce((s, r) => s + f(r) * r.requests, 0) / requests;
  const statuses: Record<number, number> = {};
  for (const r of runs)
    for (const [k, v] of Object.entries(r.statuses)) statuses[Number(k)] = (statuses[Number(k)] ?? 0) + v;
  return {
    requests,
    statuses,
    errors: runs.reduce((s, r) => s + r.errors, 0),
    rps: runs.reduce((s, r) => s + r.rps, 0) / runs.length,
    p50: w((r) => r.p50),
    p99: w((r) => r.p99),
    p99Worst: Math.max(...runs.map((r) => r.p99)),
    cpuUsPerRequest: w((r) => r.cpuUsPerRequest),
  };
}

const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '-');
const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : '-');
const mb = (b: number): string => (b / 1024 / 1024).toFixed(1);

async function scriptCalls(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats');
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) n += Number(m[2]);
  return n;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  mkdirSync(RESULTS, { recursive: true });
  const redis = await startRedis();
  const probe = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  const script = await bundleChild();
  const children: Child[] = [];
  try {
    const emu = await startChild(script, 'emulator', 'emulator', { upstreamKey: UPSTREAM_KEY });
    children.push(emu);
    const upstreamUrl = `http://127.0.0.1:${emu.port}`;
    const base = { upstreamKey: UPSTREAM_KEY, upstreamUrl };
    const prefix = `bench:${process.pid}:`;
    const [reference, open, limited, flood] = await Promise.all([
      startChild(script, 'reference', 'reference', base),
      startChild(script, 'gateway, no budget', 'gateway', { ...base, env: { RATE_LIMIT_RPM: '0' } }),
      startChild(script, 'gateway, Redis budget', 'gateway', {
        ...base,
        // Never refuses at this load, so every request pays the full check: the Lua round trip.
        env: {
          REDIS_URL: redis.url,
          RATE_LIMIT_KEY_PREFIX: `${prefix}a:`,
          RATE_LIMIT_RPM: '1000000',
          RATE_LIMIT_WINDOW_MS: '1000',
        },
      }),
      startChild(script, 'gateway, Redis budget spent', 'gateway', {
        ...base,
        env: { REDIS_URL: redis.url, RATE_LIMIT_KEY_PREFIX: `${prefix}b:`, RATE_LIMIT_RPM: '1' },
      }),
    ]);
    children.push(reference, open, limited, flood);

    process.stdout.write(
      `bench:ratelimit on ${cpus().length} cores (load average ${loadavg()[0]!.toFixed(2)}), ${CONNECTIONS} connections, ${ROUNDS} × ${DURATION_MS / 1000} s per target\n`,
    );
    // Warm-up: JIT, connection pools, Redis script cache. 5 s each: with 1 s the JIT was still cold and the
    // gateways' CPU per request came out 2-3× too high (bench/README.md "Warm-up").
    for (const c of [open, limited, reference]) await load(c, CONNECTIONS, 5000);

    // 1. Budget-check cost, unloaded (one connection) and loaded, alternating targets round by round.
    const single = { open: [] as Load[], limited: [] as Load[] };
    const loaded = { open: [] as Load[], limited: [] as Load[] };
    let scripts = 0;
    for (let r = 0; r < ROUNDS; r++) {
      single.open.push(await load(open, 1, DURATION_MS / 2));
      const s0 = await scriptCalls(probe);
      const one = await load(limited, 1, DURATION_MS / 2);
      scripts += (await scriptCalls(probe)) - s0;
      single.limited.push(one);
      loaded.open.push(await load(open, CONNECTIONS, DURATION_MS));
      const s1 = await scriptCalls(probe);
      const many = await load(limited, CONNECTIONS, DURATION_MS);
      scripts += (await scriptCalls(probe)) - s1;
      loaded.limited.push(many);
    }
    const so = merge(single.open);
    const sl = merge(single.limited);
    const lo = merge(loaded.open);
    const ll = merge(loaded.limited);
    const scriptsPerRequest = scripts / (sl.requests + ll.requests);

    // 2. Rejection path against the reference.
    const first = await load(flood, 1, 50); // takes the only unit; the rest of the minute is refused
    await load(flood, CONNECTIONS, 5000); // warm-up of the rejection path (the JIT needs seconds: bench/README.md "Warm-up")
    const memBefore = await flood.stats(true);
    const floods: Load[] = [];
    const refs: Load[] = [];
    const memAfter: RlStats[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      refs.push(await load(reference, CONNECTIONS, DURATION_MS));
      floods.push(await load(flood, CONNECTIONS, DURATION_MS));
      memAfter.push(await flood.stats(true));
    }
    const fl = merge(floods);
    const rf = merge(refs);

    const out = {
      when: new Date().toISOString(),
      machine: { cores: cpus().length, loadavg1: loadavg()[0] },
      settings: { connections: CONNECTIONS, rounds: ROUNDS, durationMs: DURATION_MS },
      budgetCheck: {
        unloaded: { open: so, limited: sl, addedP50Ms: sl.p50 - so.p50, addedP99Ms: sl.p99 - so.p99 },
        loaded: {
          open: lo,
          limited: ll,
          throughputRatio: ll.rps / lo.rps,
          addedP50Ms: ll.p50 - lo.p50,
          addedP99Ms: ll.p99 - lo.p99,
        },
        redisScriptsPerRequest: scriptsPerRequest,
      },
      rejection: {
        firstCall: first.statuses,
        flood: fl,
        reference: rf,
        throughputVsReference: fl.rps / rf.rps,
        heapUsedMb: [memBefore, ...memAfter].map((m) => Number(mb(m.heapUsedBytes))),
        rssMb: [memBefore, ...memAfter].map((m) => Number(mb(m.rssBytes))),
      },
    };
    writeFileSync(join(RESULTS, 'ratelimit-latest.json'), `${JSON.stringify(out, null, 2)}\n`);

    const row = (name: string, l: Load) =>
      `  ${name.padEnd(34)} ${f1(l.rps).padStart(8)} req/s  p50 ${f2(l.p50).padStart(6)} ms  p99 ${f2(l.p99).padStart(6)} ms  ${f1(l.cpuUsPerRequest).padStart(6)} µs CPU/req  ${JSON.stringify(l.statuses)}`;
    process.stdout.write(
      [
        '',
        '1. budget-check cost (same load, alternated rounds)',
        '  one connection:',
        row('gateway, no budget', so),
        row('gateway, Redis budget', sl),
        `  added by the budget: p50 ${f2(sl.p50 - so.p50)} ms, p99 ${f2(sl.p99 - so.p99)} ms (target < 1 ms)`,
        `  ${CONNECTIONS} connections:`,
        row('gateway, no budget', lo),
        row('gateway, Redis budget', ll),
        `  throughput ratio ${f2(ll.rps / lo.rps)}; added p50 ${f2(ll.p50 - lo.p50)} ms, p99 ${f2(ll.p99 - lo.p99)} ms`,
        `  Redis scripts per upstream call: ${f2(scriptsPerRequest)}`,
        '',
        `2. rejection path (budget spent; first call: ${JSON.stringify(first.statuses)})`,
        row('reference pass-through', rf),
        row('gateway flood (429s)', fl),
        `  429 throughput vs reference: ${f2(fl.rps / rf.rps)}× (target ≥ 0.5×); gateway CPU per rejection ${f1(fl.cpuUsPerRequest)} µs`,
        `  gateway heap after GC: ${out.rejection.heapUsedMb.join(' → ')} MB; RSS ${out.rejection.rssMb.join(' → ')} MB (before, after each flood)`,
        '',
        `written to ${join(RESULTS, 'ratelimit-latest.json')}`,
        '',
      ].join('\n'),
    );
  } finally {
    await Promise.all(children.map((c) => c.stop().catch(() => {})));
    await probe.quit().catch(() => {});
    redis.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench:ratelimit failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
