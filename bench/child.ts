/**
 * One benchmarked server in its own process, so its CPU time and peak RSS are its own. bench/run.ts bundles this
 * file with esbuild (node_modules left external) and forks the bundle under plain `node`, as production runs
 * compiled JS: tsx's loader thread would add ~35 MB of RSS to every process. Talks to the parent over IPC:
 *   child → parent  {type:'ready', port}
 *   parent → child  {type:'stats', id, reset}  → {type:'stats', id, stats}   (reset: start a new peak-RSS window)
 *   parent → child  {type:'exit'}              → closes the server and exits 0 (flushes --cpu-prof)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { type Role, startRole } from './roles.js';
import type { UpstreamRequest } from './static-upstream.js';

export type { Role } from './roles.js';

export interface ChildOptions {
  upstreamKey: string;
  /** static: the requests whose replies it prepares at start-up. */
  upstreamRequests?: UpstreamRequest[];
  /** reference, gateway: the upstream's URL. */
  upstreamUrl?: string;
  /** gateway: name:key pairs. */
  gatewayKeys?: string;
  /** gateway: LOG_LEVEL. */
  logLevel?: string;
  /** gateway: more environment (e.g. a cache setting for cache-hit cases); wins over the defaults below. */
  env?: Record<string, string>;
  /**
   * --heap-sample: V8's sampling heap profiler runs from start-up to exit, counting objects the GC already
   * collected too (what a request allocates, not what survives), and the profile is written here.
   */
  heapSampleFile?: string;
}

export interface ChildStats {
  /** process.cpuUsage(), µs. */
  userUs: number;
  systemUs: number;
  rssBytes: number;
  /** Peak RSS since the last reset (VmHWM after clear_refs, or sampled when /proc does not allow that). */
  windowPeakRssBytes: number;
  /**
   * Peak RSS over the process lifetime: the highest of every window's peak (each report reads VmHWM before it
   * resets it, so the windows cover all the time). getrusage's ru_maxrss cannot be used once clear_refs has
   * reset the high-water mark: it reports the same mark.
   */
  lifetimePeakRssBytes: number;
  peakSource: 'VmHWM' | 'sampled';
  /** process.memoryUsage() at the time of the report: where the RSS is. */
  heapTotalBytes: number;
  heapUsedBytes: number;
  externalBytes: number;
}

export type ParentMessage = { type: 'stats'; id: number; reset: boolean } | { type: 'exit' };
export type ChildMessage = { type: 'ready'; port: number } | { type: 'stats'; id: number; stats: ChildStats };

const [role, json] = process.argv.slice(2) as [Role, string];
const opts = JSON.parse(json) as ChildOptions;

function vmHwmBytes(): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0), giving a per-case peak. */
function resetHwm(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

const useHwm = vmHwmBytes() !== undefined && resetHwm();
let sampledPeak = 0;
let lifetimePeak = 0;
if (!useHwm) {
  // Fallback: sample RSS (costs a little CPU, which is why VmHWM is preferred).
  setInterval(() => {
    sampledPeak = Math.max(sampledPeak, process.memoryUsage.rss());
  }, 20).unref();
}

const heapSampler = opts.heapSampleFile ? new Session() : undefined;
if (heapSampler) {
  heapSampler.connect();
  await heapSampler.post('HeapProfiler.startSampling', {
    samplingInterval: 16 * 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
}

const server = await startRole(role, {
  upstreamKey: opts.upstreamKey,
  upstreamUrl: opts.upstreamUrl,
  upstreamRequests: opts.upstreamRequests,
  gatewayEnv: {
    GATEWAY_API_KEYS: opts.gatewayKeys,
    LOG_LEVEL: opts.logLevel ?? 'warn',
    // The upstream budget (default 120 calls/min) would turn the load into 429s: the bench measures the hop.
    RATE_LIMIT_RPM: '0',
    ...opts.env,
  },
});
const send = (m: ChildMessage): void => {
  process.send?.(m);
};

process.on('message', (m: ParentMessage) => {
  if (m.type === 'exit') {
    const force = setTimeout(() => process.exit(0), 3_000);
    force.unref();
    const sampled = heapSampler
      ? heapSampler
          .post('HeapProfiler.stopSampling')
          .then(({ profile }) => writeFileSync(opts.heapSampleFile!, JSON.stringify(profile)))
      : Promise.resolve();
    sampled.then(() => server.close()).then(() => process.exit(0));
    return;
  }
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  const rss = mem.rss;
  const windowPeak = useHwm ? (vmHwmBytes() ?? rss) : Math.max(sampledPeak, rss);
  lifetimePeak = Math.max(lifetimePeak, windowPeak);
  const stats: ChildStats = {
    userUs: cpu.user,
    systemUs: cpu.system,
    rssBytes: rss,
    windowPeakRssBytes: windowPeak,
    lifetimePeakRssBytes: lifetimePeak,
    peakSource: useHwm ? 'VmHWM' : 'sampled',
    heapTotalBytes: mem.heapTotal,
    heapUsedBytes: mem.heapUsed,
    externalBytes: mem.external,
  };
  if (m.reset) {
    if (useHwm) resetHwm();
    sampledPeak = 0;
  }
  send({ type: 'stats', id: m.id, stats });
});
// The parent going away must not leave servers behind.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', port: server.port });
