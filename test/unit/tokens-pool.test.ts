import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import { countTokens, createTokenChecker, tokenizerLoaded } from '../../src/tokens/index.js';

const describeInput = (i: number): string => `input[${i}]`;

/** Rejection of `p` as a GatewayError (fails the test when `p` resolves or throws something else). */
async function refusal(p: Promise<unknown>): Promise<GatewayError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  return err as GatewayError;
}

describe('token checker: cheap decisions never start a worker', () => {
  const checker = createTokenChecker({ workers: 1, maxBytesPerRequest: 64 * 1024, timeoutMs: 2000 });
  afterAll(() => checker.close());

  it('clears short texts and refuses provably long ones without the tokenizer', async () => {
    const counts = await checker.checkTexts(
      ['hello world', '你好，世界', 'a'.repeat(8192)],
      8192,
      describeInput,
      'm',
    );
    expect(counts).toEqual({ tokens: [3, 4, 2048], exact: [false, false, false] });
    const err = await refusal(
      checker.checkTexts(['ok', 'a'.repeat(128 * 8192 + 1)], 8192, describeInput, 'text-embedding-v4'),
    );
    expect(err.statusCode).toBe(400);
    expect(err.param).toBe('input[1]');
    expect(err.message).toBe(
      'input[1]: is at least 8193 tokens long (1048577 bytes); text-embedding-v4 accepts at most 8192 tokens per input',
    );
    expect(checker.workersStarted).toBe(0);
    expect(tokenizerLoaded()).toBe(false);
  });

  it('refuses a request whose texts to count exceed the byte cap before counting any', async () => {
    const big = 'word '.repeat(8000); // 40,000 bytes: over the byte bound, under the lower bound
    const err = await refusal(checker.checkTexts(['x', big, big], 8192, describeInput, 'm'));
    expect(err.statusCode).toBe(400);
    expect(err.message).toBe(
      'input[1]: and 1 other texts need an exact token count, 80000 bytes in all; the gateway counts at most 65536 bytes per request (TOKENIZER_MAX_BYTES_PER_REQUEST): split the request or shorten the texts',
    );
    const one = await refusal(checker.checkTexts(['a'.repeat(70_000)], 8192, () => 'input', 'm'));
    expect(one.message).toMatch(
      /^input: is 70000 bytes and needs an exact token count; .* at most 65536 bytes/,
    );
    expect(checker.workersStarted).toBe(0);
  });
});

describe('token checker: exact counts in a worker', () => {
  const checker = createTokenChecker({ workers: 1, maxBytesPerRequest: 1 << 20, timeoutMs: 5000 });
  afterAll(() => checker.close());

  it('counts exactly what the tokenizer counts, and refuses the first text over the limit', async () => {
    const texts = ['short', 'word '.repeat(3000), '字'.repeat(5000), '你好。'.repeat(2000)];
    const counts = await checker.checkTexts(texts, 8192, describeInput, 'text-embedding-v4');
    expect(checker.workersStarted).toBe(1);
    expect(tokenizerLoaded()).toBe(false); // counted in the worker, not here
    expect(counts.exact).toEqual([false, true, true, true]);
    expect(counts.tokens.slice(1)).toEqual(texts.slice(1).map((t) => countTokens(t)));
    expect(counts.tokens.slice(1)).toEqual([3001, 5000, 4000]);

    const atLimit = ['word', ...Array<string>(8191).fill(' word')].join('');
    const ok = await checker.checkTexts([atLimit], 8192, describeInput, 'text-embedding-v4');
    expect(ok).toEqual({ tokens: [8192], exact: [true] });
    const err = await refusal(
      checker.checkTexts([atLimit, `${atLimit} word`], 8192, describeInput, 'text-embedding-v4'),
    );
    expect(err.message).toBe(
      'input[1]: is 8193 tokens long; text-embedding-v4 accepts at most 8192 per input',
    );
    expect(checker.workersStarted).toBe(1);
  });

  it('keeps the event loop responsive while a worker counts', async () => {
    const fresh = createTokenChecker({ workers: 1, maxBytesPerRequest: 1 << 20, timeoutMs: 10_000 });
    try {
      await fresh.checkTexts(['warm '.repeat(2000)], 8192, describeInput, 'm');
      let last = performance.now();
      let maxGap = 0;
      let ticks = 0;
      const probe = setInterval(() => {
        const now = performance.now();
        maxGap = Math.max(maxGap, now - last);
        last = now;
        ticks++;
      }, 10);
      const started = performance.now();
      // ~1 s of tokenizer CPU on an idle core: BPE is quadratic on a long run without spaces.
      const counts = await fresh.checkTexts(['a'.repeat(64_000)], 8192, describeInput, 'm');
      const took = performance.now() - started;
      clearInterval(probe);
      expect(counts).toEqual({ tokens: [8000], exact: [true] });
      expect(ticks).toBeGreaterThan(10);
      // Counted on the main thread, the count would be one gap as long as the whole count. Off it, gaps are
      // timer jitter: well under 100 ms on an idle machine (20-50 ms measured); 250 ms leaves room for a loaded
      // CI box (107 ms seen at load average 14 on 2 cores), and the count must be at least 4x the longest gap.
      expect(maxGap).toBeLessThan(250);
      expect(maxGap).toBeLessThan(took / 4);
    } finally {
      await fresh.close();
    }
  });
});

describe('token checker: per-request time limit', () => {
  const checker = createTokenChecker({ workers: 1, maxBytesPerRequest: 1 << 20, timeoutMs: 300 });
  afterAll(() => checker.close());

  it('terminates a worker stuck on a pathological text, refuses it, and counts with a fresh worker afterwards', async () => {
    // Load the tokenizer first (a cold start is not charged to the time limit, but keep this test about counting).
    await checker.checkTexts(['ab '.repeat(2731)], 8192, describeInput, 'm');
    expect(checker.workersStarted).toBe(1);
    const started = performance.now();
    // 200 KB without spaces: several seconds of tokenizer CPU, far beyond 300 ms.
    const err = await refusal(
      checker.checkTexts(['fine', 'a'.repeat(200_000)], 8192, describeInput, 'text-embedding-v4'),
    );
    expect(performance.now() - started).toBeLessThan(2000);
    expect(err.statusCode).toBe(400);
    expect(err.message).toBe(
      'input[1]: could not be checked against the 8192-token limit of text-embedding-v4 within 300 ms (TOKENIZER_TIMEOUT_MS); split it into shorter texts',
    );
    const after = await checker.checkTexts(['word '.repeat(1700)], 8192, describeInput, 'm');
    expect(after).toEqual({ tokens: [1701], exact: [true] });
    expect(checker.workersStarted).toBe(2);
  });

  it('refuses when closed', async () => {
    await checker.close();
    await expect(checker.checkTexts(['word '.repeat(3000)], 8192, describeInput, 'm')).rejects.toThrow(
      /closed/,
    );
  });
});

describe('token checker: queue bound', () => {
  it('answers 429 when the worker is busy and the queue is full', async () => {
    const checker = createTokenChecker({
      workers: 1,
      maxBytesPerRequest: 1 << 20,
      timeoutMs: 3000,
      queueSize: 1,
    });
    try {
      const slow = 'a'.repeat(40_000); // a few hundred ms each
      const results = await Promise.allSettled([
        checker.checkTexts([slow], 8192, describeInput, 'm'),
        checker.checkTexts([slow], 8192, describeInput, 'm'),
        checker.checkTexts([slow], 8192, describeInput, 'm'),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
      const err = (results[2] as PromiseRejectedResult).reason as GatewayError;
      expect(err.statusCode).toBe(429);
      expect(err.retryAfterSec).toBe(3);
    } finally {
      await checker.close();
    }
  });
});

describe('token checker: process lifetime', () => {
  it('does not keep the process alive once idle (workers are unref’d)', async () => {
    const script = [
      "import { createTokenChecker } from './src/tokens/index.ts';",
      'const c = createTokenChecker({ workers: 1, maxBytesPerRequest: 1 << 20, timeoutMs: 5000 });',
      "const r = await c.checkTexts(['word '.repeat(3000)], 8192, () => 'input', 'm');",
      'console.log(JSON.stringify(r));',
      '// no close(): the process must still exit on its own',
    ].join('\n');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let errOut = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      errOut += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(null);
      }, 25_000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(errOut).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(out)).toEqual({ tokens: [3001], exact: [true] });
  });
});
