/**
 * The gateway's Prometheus metrics: one registry per app instance (tests run several apps in one process, and a
 * global registry would mix their numbers), the metric objects, and small record functions the hooks call. Served
 * by ./listener.ts on METRICS_PORT; fed by plugins/metrics.ts (requests, tokens, cache), the upstream client's
 * observer (upstream calls) and the upstream budget's event hook (waits, refusals).
 *
 * Label values are bounded on purpose: routes are route patterns (never raw URLs), models come from the model
 * table, callers are gateway key names (or 'anonymous'), upstream statuses are HTTP statuses or transport codes.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { UpstreamObserver, UpstreamTrace } from '../upstream/client.js';
import { SeriesCounter, SeriesHistogram } from './series.js';

/** Why the gateway did not (or could not) get a call to DashScope through. */
export type RefusalReason =
  | 'late' // no unit free within RATE_LIMIT_MAX_WAIT_MS
  | 'full' // the budget's wait queue is full
  | 'never_fits' // larger than the budget could ever admit
  | 'shutdown' // the replica is closing while the call waited
  | 'upstream_429'; // DashScope itself answered 429

/** What the upstream budget reports (its `onEvent` hook). */
export type BudgetEvent = { kind: 'admitted'; waitMs: number } | { kind: 'refused'; reason: RefusalReason };

/** Latency buckets in seconds: a cached or tiny call takes milliseconds, a big split batch or a long wait tens of s. */
const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class GatewayMetrics {
  readonly registry = new Registry();
  /** Where the /metrics listener answers once started (http://host:port/metrics); undefined while off. */
  url: string | undefined;

  // The per-request and per-attempt series: src/metrics/series.ts (prom-client's own cost ~7 µs per request).
  readonly requests = new SeriesCounter(
    'dsgw_http_requests_total',
    'Requests answered by the gateway, by method, route pattern and HTTP status.',
    ['method', 'route', 'status'] as const,
    this.registry,
  );
  readonly requestDuration = new SeriesHistogram(
    'dsgw_http_request_duration_seconds',
    'Time from request arrival to the reply being written, by method and route pattern.',
    ['method', 'route'] as const,
    SECONDS,
    this.registry,
  );
  readonly upstreamCalls = new SeriesCounter(
    'dsgw_upstream_requests_total',
    'Attempts sent to DashScope (each retry counts), by model and HTTP status or transport error code.',
    ['model', 'status'] as const,
    this.registry,
  );
  readonly upstreamDuration = new SeriesHistogram(
    'dsgw_upstream_request_duration_seconds',
    'Time of one DashScope attempt: to the end of the reply body (to the headers for streams), by model.',
    ['model'] as const,
    SECONDS,
    this.registry,
  );
  readonly budgetWait = new Histogram({
    name: 'dsgw_budget_wait_seconds',
    help: 'Time an upstream attempt waited for the upstream budget before it could go.',
    buckets: [0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly budgetRefusals = new Counter({
    name: 'dsgw_budget_refusals_total',
    help: 'Upstream calls refused (429 to the caller) or throttled by DashScope, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly tokens = new SeriesCounter(
    'dsgw_tokens_total',
    'Tokens DashScope billed (the usage of successful replies), by model and gateway key name.',
    ['model', 'caller'] as const,
    this.registry,
  );
  readonly cache = new SeriesCounter(
    'dsgw_cache_lookups_total',
    'Embedding cache lookups per input item, by result (hit or miss).',
    ['result'] as const,
    this.registry,
  );

  /**
   * `queued` is read at scrape time (a gauge kept up to date on every change would cost on the hot path).
   * `processMetrics`: Node's default metrics (CPU, memory, event-loop lag, GC) in the same registry, unprefixed as is
   * customary. Only when something can scrape them: they start a GC observer and an event-loop sampler that
   * prom-client never stops, which a test process building hundreds of apps must not accumulate.
   */
  constructor(queued: () => number, processMetrics = false) {
    const registry = this.registry;
    new Gauge({
      name: 'dsgw_budget_queued_calls',
      help: 'Upstream calls waiting for the upstream budget on this replica.',
      registers: [registry],
      collect() {
        this.set(queued());
      },
    });
    if (processMetrics) collectDefaultMetrics({ register: registry });
  }

  recordRequest(method: string, route: string, status: number, seconds: number): void {
    this.requests.inc({ method, route, status: String(status) });
    this.requestDuration.observe({ method, route }, seconds);
  }

  recordUpstream(model: string | undefined, status: number | string, seconds: number): void {
    const m = model ?? 'none';
    this.upstreamCalls.inc({ model: m, status: String(status) });
    this.upstreamDuration.observe({ model: m }, seconds);
  }

  recordTokens(model: string, caller: string, tokens: number): void {
    if (tokens > 0 && Number.isFinite(tokens)) this.tokens.inc({ model, caller }, tokens);
  }

  recordCache(hits: number, misses: number): void {
    if (hits > 0) this.cache.inc({ result: 'hit' }, hits);
    if (misses > 0) this.cache.inc({ result: 'miss' }, misses);
  }

  recordBudget(e: BudgetEvent): void {
    if (e.kind === 'admitted') this.budgetWait.observe(Math.max(0, e.waitMs) / 1000);
    else this.budgetRefusals.inc({ reason: e.reason });
  }

  /** The upstream client's observer: one attempt, as its trace entry ends up. */
  readonly upstreamObserver: UpstreamObserver = {
    attempt: (model: string | undefined, entry: Readonly<UpstreamTrace>) => {
      this.recordUpstream(model, entry.status, entry.ms / 1000);
      // DashScope's own 429: every replica holds off the budget (src/ratelimit/), which counts as a refusal.
      if (entry.status === 429) this.budgetRefusals.inc({ reason: 'upstream_429' });
    },
  };
}
