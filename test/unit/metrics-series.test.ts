/**
 * The hot-path metrics (src/metrics/series.ts) must scrape exactly as prom-client's own Counter and Histogram would
 * for the same observations: same lines, same bucket counts (cumulative, `+Inf`), sum and count, label escaping.
 */
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { SeriesCounter, SeriesHistogram } from '../../src/metrics/series.js';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Deterministic values spread over every bucket, bounds included, and beyond the last. */
const values = Array.from({ length: 400 }, (_, i) =>
  i % 7 === 0 ? BUCKETS[i % BUCKETS.length]! : ((i * 37) % 1300) / 100,
);

describe('SeriesHistogram and SeriesCounter', () => {
  it('scrape the same text as prom-client for the same observations', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const h = new SeriesHistogram('x_seconds', 'help "text"\\n', ['method', 'route'] as const, BUCKETS, ours);
    const c = new SeriesCounter('x_total', 'counted', ['route', 'status'] as const, ours);
    const ph = new Histogram({
      name: 'x_seconds',
      help: 'help "text"\\n',
      labelNames: ['method', 'route'] as const,
      buckets: BUCKETS,
      registers: [theirs],
    });
    const pc = new Counter({
      name: 'x_total',
      help: 'counted',
      labelNames: ['route', 'status'] as const,
      registers: [theirs],
    });
    const routes = ['/v1/embeddings', '/api/v1/tasks/:id', 'with "quote" and \\ and\nnewline'];
    values.forEach((v, i) => {
      const route = routes[i % routes.length]!;
      h.observe({ method: 'POST', route }, v);
      ph.observe({ method: 'POST', route }, v);
      c.inc({ route, status: String(200 + (i % 3)) }, i % 5);
      pc.inc({ route, status: String(200 + (i % 3)) }, i % 5);
    });
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('ignore what prom-client would throw on instead of breaking a request: non-finite or negative amounts', async () => {
    const r = new Registry();
    const h = new SeriesHistogram('y_seconds', 'y', ['m'] as const, BUCKETS, r);
    const c = new SeriesCounter('y_total', 'y', ['m'] as const, r);
    h.observe({ m: 'a' }, Number.NaN);
    h.observe({ m: 'a' }, Number.POSITIVE_INFINITY);
    c.inc({ m: 'a' }, -1);
    c.inc({ m: 'a' }, Number.NaN);
    h.observe({ m: 'a' }, 0.02);
    c.inc({ m: 'a' });
    const text = await r.metrics();
    expect(text).toContain('y_seconds_count{m="a"} 1');
    expect(text).toContain('y_seconds_bucket{le="0.025",m="a"} 1');
    expect(text).toContain('y_seconds_bucket{le="0.01",m="a"} 0');
    expect(text).toContain('y_total{m="a"} 1');
  });
});
