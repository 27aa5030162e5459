/**
 * `npm run bench`: throughput, latency, CPU per request and peak RSS of the gateway against a minimal
 * pass-through proxy (bench/reference.ts) and against the upstream called directly, in one run.
 * See bench/README.md for what each case is and how to read the figures.
 *
 * Processes: the static upstream (bench/static-upstream.ts: the emulator's replies, computed once at start-up
 * and replayed as prepared bytes, so the upstream costs next to nothing), the reference proxy, the gateway at
 * LOG_LEVEL=warn and a second gateway at LOG_LEVEL=info each run as a child (bench/child.ts), so CPU and RSS are
 * per process; autocannon runs here, in the parent. Loopback only; every load loop is bounded by its duration.
 *
 * Before any ratio is printed, the run shows how much faster the direct case (client → static upstream) is than
 * the reference: the ratios only measure the proxies when the upstream is far from being the bottleneck.
 *
 * Each case's measuring time is cut into --rounds slices and the slices of all cases are interleaved
 * (round 1: every case for duration/rounds seconds, round 2: again, ...), so a burst of background load on a
 * shared machine hits the reference and the gateway alike and the ratios stay meaningful.
 *
 * Options: --duration <s> (8, per case) --rounds <n> (4) --warmup <s> (5, per case, once: the gateway's JIT needs it, bench/README.md "Warm-up")
 *          --connections <n> (32) --cases <regex> (all)
 *          --profile (every server process but the upstream writes a .cpuprofile under bench/results/profiles/<role>/)
 *          --gateway-flags '<node flags>' (for both gateway children, e.g. --max-semi-space-size=8)
 *          --heap-sample (each gateway child writes bench/results/profiles/<role>.heapprofile: sampled allocations,
 *          collected ones included, from start to exit; the stop waits up to 3 s for it)
 *          --baseline <git ref> (that commit's src/, bundled with this bench's child, runs as one more gateway:
 *          `baseline … float` cases measure it in the same interleaved run, the only fair before/after here)
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { build } from 'esbuild';
import type { ChildMessage, ChildOptions, ChildStats, ParentMessage, Role } from './child.js';
import { prepareReplies, type UpstreamRequest } from './static-upstream.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const RESULTS = join(HERE, 'results');
const UPSTREAM_KEY = 'sk-bench-upstream-key-0123456789';
const GATEWAY_KEY = 'gw-bench-key-0123456789';
const NATIVE_PATH = '/api/v1/services/embeddings/text-embedding/text-embedding';
const MODEL = 'text-embedding-v4';
const DIM = 1024;
/** Below this direct-to-reference throughput factor the upstream is too close to being the bottleneck. */
const MIN_HEADROOM = 3;

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '5' },
    connections: { type: 'string', default: '32' },
    cases: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'gateway-flags': { type: 'string', default: '' },
    baseline: { type: 'string' },
    'heap-sample': { type: 'boolean', default: false },
  },
});
/** Extra node flags for both gateway children, e.g. --gateway-flags=--max-semi-space-size=8 (memory experiments). */
const GATEWAY_FLAGS = args['gateway-flags'].split(' ').filter((f) => f !== '');
const DURATION = Number(args.duration);
const ROUNDS = Math.max(1, Math.round(Number(args.rounds)));
const WARMUP = Number(args.warmup);
const CONNECTIONS = Number(args.connections);
const CASE_FILTER = args.cases ? new RegExp(args.cases) : undefined;

// ---------------------------------------------------------------- child processes

interface Child {
  name: string;
  proc: ChildProcess;
  port: number;
  stats(reset: boolean): Promise<ChildStats>;
  stop(): Promise<void>;
}

let statsId = 0;

/**
 * Bundles bench/child.ts (and the src/ it imports) to plain JS, node_modules left external, one chunk per role.
 * esbuild is the compiler tsx itself uses; production runs tsc output, which is equivalent JS.
 */
async function buildChild(from = HERE, outdir = join(RESULTS, 'build')): Promise<string> {
  await build({
    entryPoints: [join(from, 'child.ts')],
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
  return join(outdir, 'child.mjs');
}

let childEntry = '';

/**
 * The gateway of another commit, for a same-run A/B: that commit's src/ (git archive) next to a copy of this
 * bench's child files, bundled like ours. Its node_modules imports resolve to this checkout's, so a baseline that
 * needs a package this checkout no longer has will not start.
 */
async function buildBaseline(ref: string): Promise<string> {
  // Outside the checkout, so tsc and biome never see a second copy of src/ (the bundle stays in bench/results/ to
  // find node_modules).
  const root = mkdtempSync(join(tmpdir(), 'bench-baseline-'));
  mkdirSync(join(root, 'bench'), { recursive: true });
  const tar = execFileSync('git', ['archive', '--format=tar', ref, 'src'], { cwd: join(HERE, '..') });
  execFileSync('tar', ['-x', '-C', root], { input: tar });
  for (const f of ['child.ts', 'roles.ts', 'static-upstream.ts', 'reference.ts']) {
    copyFileSync(join(HERE, f), join(root, 'bench', f));
  }
  try {
    return await buildChild(join(root, 'bench'), join(RESULTS, 'baseline-build'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

async function startChild(
  name: string,
  role: Role,
  opts: ChildOptions,
  extra: { stdoutFile?: string; execArgv?: string[]; entry?: string } = {},
): Promise<Child> {
  const stdout = extra.stdoutFile ? openSync(extra.stdoutFile, 'w') : 'ignore';
  const proc = fork(extra.entry ?? childEntry, [role, JSON.stringify(opts)], {
    execArgv: extra.execArgv ?? [],
    stdio: ['ignore', stdout, 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 30 s`)), 30_000);
    proc.once('exit', (code) => reject(new Error(`${name} exited with ${code} before it was ready`)));
    proc.on('message', (m: ChildMessage) => {
      if (m.type === 'ready') {
        clearTimeout(timer);
        resolve(m.port);
      }
    });
  });
  proc.removeAllListeners('exit');
  const stats = (reset: boolean): Promise<ChildStats> =>
    new Promise((resolve, reject) => {
      const id = ++statsId;
      const timer = setTimeout(() => reject(new Error(`${name} did not report stats`)), 5_000);
      const onMsg = (m: ChildMessage): void => {
        if (m.type === 'stats' && m.id === id) {
          clearTimeout(timer);
          proc.off('message', onMsg);
          resolve(m.stats);
        }
      };
      proc.on('message', onMsg);
      proc.send({ type: 'stats', id, reset } satisfies ParentMessage);
    });
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      if (proc.exitCode !== null) return resolve();
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        resolve();
      }, 5_000);
      proc.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      proc.send({ type: 'exit' } satisfies ParentMessage);
    });
  return { name, proc, port, stats, stop };
}

// ---------------------------------------------------------------- payloads and checks

const TEXTS = Array.from(
  { length: 10 },
  (_, i) => `benchmark passage ${i}: a self-hosted gateway relays embedding requests to DashScope`,
);

/** Exactly the body the gateway sends upstream, so every case gets the same prepared reply from the upstream. */
const nativeBody = (rows: number): string =>
  JSON.stringify({ model: MODEL, input: { texts: TEXTS.slice(0, rows) }, parameters: { dimension: DIM } });

const openAIBody = (rows: number, encoding: 'float' | 'base64'): string =>
  JSON.stringify({ model: MODEL, input: TEXTS.slice(0, rows), dimensions: DIM, encoding_format: encoding });

type Vectors = number[][];

function nativeVectors(body: string): Vectors {
  const j = JSON.parse(body) as { output: { embeddings: { embedding: number[]; text_index: number }[] } };
  return j.output.embeddings.map((e) => e.embedding);
}

function openAIVectors(body: string): Vectors {
  const j = JSON.parse(body) as { data: { embedding: number[] | string; index: number }[] };
  return j.data.map((d) => {
    if (typeof d.embedding !== 'string') return d.embedding;
    const b = Buffer.from(d.embedding, 'base64');
    return Array.from(new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4));
  });
}

function sameVectors(a: Vectors, b: Vectors): boolean {
  return (
    a.length === b.length && a.every((v, i) => v.length === b[i]!.length && v.every((x, k) => x === b[i]![k]))
  );
}

// ---------------------------------------------------------------- cases

type Kind = 'direct' | 'reference' | 'gateway' | 'gateway-info' | 'gateway-cache' | 'baseline';

interface CaseSpec {
  name: string;
  kind: Kind;
  rows: number;
  encoding: 'float' | 'base64';
  target: Child;
  path: string;
  body: string;
  headers: Record<string, string>;
  vectors: (body: string) => Vectors;
}

type Target = 'upstream' | 'reference' | 'gateway' | 'gateway-info' | 'gateway-cache' | 'baseline';

const JSON_HEADERS = { 'content-type': 'application/json' };
const UPSTREAM_AUTH = { ...JSON_HEADERS, authorization: `Bearer ${UPSTREAM_KEY}` };
const GATEWAY_AUTH = { ...JSON_HEADERS, authorization: `Bearer ${GATEWAY_KEY}` };

/** Input texts per request: every case runs once per entry. */
const ROWS = [1, 10] as const;

/** What the static upstream must be able to answer: every body a case (or a gateway behind it) sends upstream. */
/**
 * Every body a gateway sends upstream: the whole request, and for the cache-hit gateway also the misses of a larger
 * request whose first texts a smaller case already cached (texts `from`…`rows`).
 */
const UPSTREAM_REQUESTS: readonly UpstreamRequest[] = ROWS.flatMap((rows, k) =>
  [0, ...ROWS.slice(0, k)].map((from) => ({
    path: NATIVE_PATH,
    body: JSON.stringify({
      model: MODEL,
      input: { texts: TEXTS.slice(from, rows) },
      parameters: { dimension: DIM },
    }),
  })),
);

/** The request of a case, for `rows` texts. */
type CaseRequest = Pick<CaseSpec, 'path' | 'body' | 'headers' | 'vectors' | 'encoding'>;

/**
 * One row of the case table, run once per ROWS entry. To add a case, add a row (and, if its process sends a new
 * body upstream, an entry in UPSTREAM_REQUESTS; for a new process, e.g. a gateway with other settings, a Target and a
 * startChild in main() with ChildOptions.env).
 */
interface CaseDef {
  /** `size` is e.g. "10×1024". */
  name: (size: string) => string;
  kind: Kind;
  target: Target;
  request: (rows: number) => CaseRequest;
}

const native =
  (headers: Record<string, string>) =>
  (rows: number): CaseRequest => ({
    path: NATIVE_PATH,
    body: nativeBody(rows),
    headers,
    vectors: nativeVectors,
    encoding: 'float',
  });

const openai =
  (encoding: 'float' | 'base64') =>
  (rows: number): CaseRequest => ({
    path: '/v1/embeddings',
    body: openAIBody(rows, encoding),
    headers: GATEWAY_AUTH,
    vectors: openAIVectors,
    encoding,
  });

const CASES: readonly CaseDef[] = [
  { name: (s) => `direct ${s}`, kind: 'direct', target: 'upstream', request: native(UPSTREAM_AUTH) },
  { name: (s) => `reference ${s}`, kind: 'reference', target: 'reference', request: native(JSON_HEADERS) },
  { name: (s) => `gateway ${s} float`, kind: 'gateway', target: 'gateway', request: openai('float') },
  { name: (s) => `gateway ${s} base64`, kind: 'gateway', target: 'gateway', request: openai('base64') },
  {
    name: (s) => `gateway ${s} float LOG_LEVEL=info`,
    kind: 'gateway-info',
    target: 'gateway-info',
    request: openai('float'),
  },
  // The same request again and again on a gateway with the cache on: after the warm-up every request is a hit
  // from the memory tier (no upstream call). The other gateway cases run with the cache off: they measure the hop.
  {
    name: (s) => `gateway ${s} float cache hit`,
    kind: 'gateway-cache',
    target: 'gateway-cache',
    request: openai('float'),
  },
  {
    name: (s) => `gateway ${s} base64 cache hit`,
    kind: 'gateway-cache',
    target: 'gateway-cache',
    request: openai('base64'),
  },
  // Only with --baseline: the same requests as the gateway float/base64 cases, on the baseline commit's gateway.
  { name: (s) => `baseline ${s} float`, kind: 'baseline', target: 'baseline', request: openai('float') },
  { name: (s) => `baseline ${s} base64`, kind: 'baseline', target: 'baseline', request: openai('base64') },
];

interface CaseResult {
  name: string;
  kind: Kind;
  rows: number;
  encoding: string;
  process: string;
  ok: boolean;
  problem?: string;
  requests: number;
  /** All slices' requests over all slices' seconds. */
  reqPerSec: number;
  /** Per slice, to show how much the background load moved things. */
  reqPerSecBySlice: number[];
  /** Per slice: a same-run A/B (--baseline) compares these slice by slice (bench/README.md). */
  cpuUsPerReqBySlice: number[];
  /** Request-weighted means of the slices' percentiles (autocannon does not expose its histograms). */
  p50Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
  timeouts: number;
  cpuUsPerReq: number;
  /** CPU of the static upstream per request of this case. */
  upstreamCpuUsPerReq: number;
  /** Highest RSS of the process while this case ran. */
  peakRssMB: number;
  /** Highest RSS of the process since it started (all cases it served so far). */
  lifetimePeakRssMB: number;
  peakSource: string;
  /** After the last slice: V8 heap reserved and used, and memory outside it (Buffers). */
  endHeapTotalMB: number;
  endHeapUsedMB: number;
  endExternalMB: number;
  ratio?: { reqPerSec: number; p50: number; p99: number; cpuPerReq: number; peakRss: number };
}

interface Slice {
  requests: number;
  seconds: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  timeouts: number;
  cpuUs: number;
  upstreamCpuUs: number;
  end: ChildStats;
}

const MB = 1024 * 1024;
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const urlOf = (c: CaseSpec): string => `http://127.0.0.1:${c.target.port}${c.path}`;
const loadOf = (c: CaseSpec) => ({
  url: urlOf(c),
  method: 'POST' as const,
  headers: c.headers,
  body: c.body,
  connections: CONNECTIONS,
});

/** One checked request (a fast wrong answer is not a result), then the warm-up. Returns a problem or undefined. */
async function prepareCase(c: CaseSpec, expected: Vectors): Promise<string | undefined> {
  const res = await fetch(urlOf(c), {
    method: 'POST',
    headers: c.headers,
    body: c.body,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (res.status !== 200) return `status ${res.status}: ${text.slice(0, 200)}`;
  if (!sameVectors(c.vectors(text), expected)) return 'vectors differ from the emulator';
  await autocannon({ ...loadOf(c), duration: WARMUP });
  return undefined;
}

async function measureSlice(c: CaseSpec, upstream: Child, seconds: number): Promise<Slice> {
  const [t0, e0] = await Promise.all([c.target.stats(true), upstream.stats(true)]);
  const r = await autocannon({ ...loadOf(c), duration: seconds, timeout: 10 });
  const [t1, e1] = await Promise.all([c.target.stats(false), upstream.stats(false)]);
  const cpu = (a: ChildStats, b: ChildStats): number => b.userUs + b.systemUs - a.userUs - a.systemUs;
  return {
    requests: r.requests.total,
    seconds: r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors,
    non2xx: r.non2xx,
    timeouts: r.timeouts,
    cpuUs: cpu(t0, t1),
    upstreamCpuUs: cpu(e0, e1),
    end: t1,
  };
}

function summarise(c: CaseSpec, slices: Slice[], problem: string | undefined): CaseResult {
  const sum = (f: (s: Slice) => number): number => slices.reduce((a, s) => a + f(s), 0);
  const requests = sum((s) => s.requests);
  const n = Math.max(1, requests);
  const errors = sum((s) => s.errors);
  const non2xx = sum((s) => s.non2xx);
  const timeouts = sum((s) => s.timeouts);
  const ok = problem === undefined && errors === 0 && non2xx === 0 && timeouts === 0 && requests > 0;
  const last = slices.at(-1)?.end;
  return {
    name: c.name,
    kind: c.kind,
    rows: c.rows,
    encoding: c.encoding,
    process: c.target.name,
    ok,
    problem: problem ?? (ok ? undefined : `errors ${errors}, non-2xx ${non2xx}, timeouts ${timeouts}`),
    requests,
    reqPerSec: round(
      requests /
        Math.max(
          0.001,
          sum((s) => s.seconds),
        ),
      0,
    ),
    reqPerSecBySlice: slices.map((s) => round(s.requests / s.seconds, 0)),
    cpuUsPerReqBySlice: slices.map((s) => round(s.cpuUs / Math.max(1, s.requests))),
    p50Ms: round(sum((s) => s.p50 * s.requests) / n),
    p99Ms: round(sum((s) => s.p99 * s.requests) / n),
    errors,
    non2xx,
    timeouts,
    cpuUsPerReq: round(sum((s) => s.cpuUs) / n),
    upstreamCpuUsPerReq: round(sum((s) => s.upstreamCpuUs) / n),
    peakRssMB: round(Math.max(0, ...slices.map((s) => s.end.windowPeakRssBytes)) / MB),
    lifetimePeakRssMB: round((last?.lifetimePeakRssBytes ?? 0) / MB),
    peakSource: last?.peakSource ?? '',
    endHeapTotalMB: round((last?.heapTotalBytes ?? 0) / MB),
    endHeapUsedMB: round((last?.heapUsedBytes ?? 0) / MB),
    endExternalMB: round((last?.externalBytes ?? 0) / MB),
  };
}

const referenceFor = (results: CaseResult[], rows: number): CaseResult | undefined =>
  results.find((r) => r.kind === 'reference' && r.rows === rows && r.ok);

function printTable(results: CaseResult[]): void {
  const x = (v: number | undefined): string => (v === undefined ? '' : ` (${v.toFixed(2)}×)`);
  const rows = results.map((r) => [
    r.name,
    r.ok ? `${r.reqPerSec}${x(r.ratio?.reqPerSec)}` : `FAILED: ${r.problem}`,
    r.ok ? `${r.p50Ms}${x(r.ratio?.p50)}` : '',
    r.ok ? `${r.p99Ms}${x(r.ratio?.p99)}` : '',
    r.ok ? `${r.cpuUsPerReq}${x(r.ratio?.cpuPerReq)}` : '',
    r.ok ? `${r.peakRssMB}${x(r.ratio?.peakRss)}` : '',
    r.ok ? `${r.upstreamCpuUsPerReq}` : '',
  ]);
  const head = ['case', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'peak RSS MB', 'upstream µs/req'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  process.stdout.write(`\n${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const r of rows) process.stdout.write(`${line(r)}\n`);
  process.stdout.write(
    '(×) = ratio to the reference proxy for the same payload; CPU and RSS are those of the process under test\n',
  );
}

/**
 * How many times faster the direct case is than the reference, per payload, printed before any ratio: when the
 * upstream is close to the reference's speed, the ratios measure the upstream, not the proxies.
 */
function printHeadroom(results: CaseResult[]): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = {};
  process.stdout.write('\nUpstream headroom (direct req/s ÷ reference req/s, must be well above 1):\n');
  for (const rows of ROWS) {
    const direct = results.find((r) => r.kind === 'direct' && r.rows === rows && r.ok);
    const ref = referenceFor(results, rows);
    const size = `${rows}×${DIM}`;
    if (!direct || !ref) {
      out[size] = undefined;
      process.stdout.write(`  ${size}: n/a (direct or reference case missing or failed)\n`);
      continue;
    }
    const factor = round(direct.reqPerSec / ref.reqPerSec, 2);
    out[size] = factor;
    process.stdout.write(`  ${size}: ${direct.reqPerSec} / ${ref.reqPerSec} = ${factor}×\n`);
    if (factor < MIN_HEADROOM) {
      process.stdout.write(
        `\n  !!!!!!!! WARNING: the direct case is only ${factor}× the reference at ${size} (< ${MIN_HEADROOM}×).\n` +
          '  !!!!!!!! The upstream or the load generator is near saturation: the ratios below are NOT meaningful.\n\n',
      );
    }
  }
  return out;
}

async function main(): Promise<void> {
  mkdirSync(join(RESULTS, 'profiles'), { recursive: true });
  const started = new Date();
  const loadBefore = loadavg();
  const profileArgv = (who: string): string[] =>
    args.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(RESULTS, 'profiles', who)}`] : [];

  childEntry = await buildChild();
  const baselineEntry = args.baseline ? await buildBaseline(args.baseline) : undefined;
  const children: Child[] = [];
  try {
    // The upstream: the emulator's answers to UPSTREAM_REQUESTS, prepared once, replayed as bytes.
    const upstream = await startChild('upstream', 'static', {
      upstreamKey: UPSTREAM_KEY,
      upstreamRequests: [...UPSTREAM_REQUESTS],
    });
    children.push(upstream);
    const upstreamUrl = `http://127.0.0.1:${upstream.port}`;
    /** A gateway child; its stdout (the access log at info) goes to bench/results/<name>.log. */
    const startGateway = (
      name: string,
      logLevel: 'warn' | 'info',
      cache: 'on' | 'off',
      entry?: string,
    ): Promise<Child> =>
      startChild(
        name,
        'gateway',
        {
          upstreamKey: UPSTREAM_KEY,
          upstreamUrl,
          gatewayKeys: `bench:${GATEWAY_KEY}`,
          logLevel,
          env: { EMBEDDING_CACHE: cache },
          ...(args['heap-sample']
            ? { heapSampleFile: join(RESULTS, 'profiles', `${name}.heapprofile`) }
            : {}),
        },
        {
          stdoutFile: join(RESULTS, `${name}.log`),
          execArgv: [...GATEWAY_FLAGS, ...profileArgv(name)],
          ...(entry ? { entry } : {}),
        },
      );
    const [reference, gateway, gatewayInfo, gatewayCache] = await Promise.all([
      startChild(
        'reference',
        'reference',
        { upstreamKey: UPSTREAM_KEY, upstreamUrl },
        { execArgv: profileArgv('reference') },
      ),
      startGateway('gateway', 'warn', 'off'),
      startGateway('gateway-info', 'info', 'off'),
      startGateway('gateway-cache', 'warn', 'on'),
    ]);
    children.push(reference, gateway, gatewayInfo, gatewayCache);
    const baseline = baselineEntry ? await startGateway('baseline', 'warn', 'off', baselineEntry) : undefined;
    if (baseline) children.push(baseline);
    const processes: Partial<Record<Target, Child>> = {
      upstream,
      reference,
      gateway,
      'gateway-info': gatewayInfo,
      'gateway-cache': gatewayCache,
      baseline,
    };

    // The truth every case's vectors are compared with: a fresh emulator's own answers (in this process), so a
    // static upstream that replayed the wrong bytes fails the direct case's check.
    const truth = await prepareReplies(UPSTREAM_KEY, UPSTREAM_REQUESTS);
    const planned: { spec: CaseSpec; expected: Vectors }[] = [];
    for (const rows of ROWS) {
      const size = `${rows}×${DIM}`;
      const expected = nativeVectors(truth.get(nativeBody(rows))!.body);
      for (const def of CASES) {
        const name = def.name(size);
        const target = processes[def.target];
        if (!target || (CASE_FILTER && !CASE_FILTER.test(name))) continue;
        const spec: CaseSpec = {
          name,
          kind: def.kind,
          rows,
          target,
          ...def.request(rows),
        };
        planned.push({ spec, expected });
      }
    }

    const problems = new Map<CaseSpec, string | undefined>();
    const slices = new Map<CaseSpec, Slice[]>();
    for (const { spec, expected } of planned) {
      process.stdout.write(`check + warm up: ${spec.name}\n`);
      problems.set(spec, await prepareCase(spec, expected));
      slices.set(spec, []);
    }
    const sliceSeconds = DURATION / ROUNDS;
    for (let r = 1; r <= ROUNDS; r++) {
      process.stdout.write(`round ${r}/${ROUNDS}:`);
      for (const { spec } of planned) {
        if (problems.get(spec) !== undefined) continue;
        const slice = await measureSlice(spec, upstream, sliceSeconds);
        slices.get(spec)!.push(slice);
        process.stdout.write(` ${Math.round(slice.requests / slice.seconds)}`);
      }
      process.stdout.write(' req/s\n');
    }
    const results = planned.map(({ spec }) => summarise(spec, slices.get(spec)!, problems.get(spec)));

    for (const r of results) {
      const ref = referenceFor(results, r.rows);
      if (!ref || !r.ok) continue;
      r.ratio = {
        reqPerSec: round(r.reqPerSec / ref.reqPerSec, 2),
        p50: round(r.p50Ms / ref.p50Ms, 2),
        p99: round(r.p99Ms / ref.p99Ms, 2),
        cpuPerReq: round(r.cpuUsPerReq / ref.cpuUsPerReq, 2),
        peakRss: round(r.peakRssMB / ref.peakRssMB, 2),
      };
    }
    const headroom = printHeadroom(results);
    printTable(results);

    const at = (kind: Kind, rows: number, encoding: string): CaseResult | undefined =>
      results.find((r) => r.kind === kind && r.rows === rows && r.encoding === encoding && r.ok);
    const float10 = at('gateway', 10, 'float');
    const b64x10 = at('gateway', 10, 'base64');
    const hit10 = at('gateway-cache', 10, 'float');
    const gatewayPeak = Math.max(
      0,
      ...results
        .filter((r) => r.kind.startsWith('gateway') && r.ok)
        .map((r) => Math.max(r.peakRssMB, r.lifetimePeakRssMB)),
    );
    const targets = {
      'float 10×1024 ≥ 0.8× reference req/s': {
        value: float10?.ratio?.reqPerSec,
        met: (float10?.ratio?.reqPerSec ?? 0) >= 0.8,
      },
      'base64 10×1024 ≥ 0.5× reference req/s': {
        value: b64x10?.ratio?.reqPerSec,
        met: (b64x10?.ratio?.reqPerSec ?? 0) >= 0.5,
      },
      'float 10×1024 cache hit ≥ 1.5× reference req/s': {
        value: hit10?.ratio?.reqPerSec,
        met: (hit10?.ratio?.reqPerSec ?? 0) >= 1.5,
      },
      'gateway peak RSS < 150 MB': { value: gatewayPeak, met: gatewayPeak > 0 && gatewayPeak < 150 },
    };
    process.stdout.write('\nTargets:\n');
    for (const [name, t] of Object.entries(targets))
      process.stdout.write(`  ${t.met ? 'met    ' : 'MISSED '} ${name}: ${t.value ?? 'n/a'}\n`);

    const logLines = readFileSync(join(RESULTS, 'gateway-info.log'), 'utf8').split('\n').length - 1;
    const report = {
      started: started.toISOString(),
      finished: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model,
        node: process.version,
        loadavgBefore: loadBefore.map((l) => round(l, 2)),
        loadavgAfter: loadavg().map((l) => round(l, 2)),
      },
      settings: {
        durationS: DURATION,
        warmupS: WARMUP,
        connections: CONNECTIONS,
        model: MODEL,
        dimensions: DIM,
        gatewayFlags: GATEWAY_FLAGS,
        baseline: args.baseline,
      },
      gatewayInfoLogLines: logLines,
      references: ROWS.map((rows) => referenceFor(results, rows)).filter((r) => r !== undefined),
      headroom,
      cases: results,
      targets,
    };
    writeFileSync(join(RESULTS, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`\nwrote ${join(RESULTS, 'latest.json')}\n`);
  } finally {
    await Promise.all(children.map((c) => c.stop()));
  }
}

await main();
