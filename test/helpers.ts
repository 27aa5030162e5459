/**
 * Test harness: a real DashScope emulator on a free loopback port and the gateway pointed at it, with its log
 * lines captured. Tests talk to the gateway with app.inject, or over a real port (`listen()`) for real clients.
 */
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { type Emulator, type EmulatorOptions, startEmulator } from '../src/emulator/server.js';

export const UPSTREAM_KEY = 'sk-test-upstream-key-0123456789abcdef';
export const KEYS = { alice: 'gw-alice-secret-key-0001', bob: 'gw-bob-secret-key-0002' } as const;
export const WORKSPACE = 'llm-test-workspace';

export interface Stack {
  emu: Emulator;
  app: FastifyInstance;
  /** Every log line the gateway wrote, as raw JSON text. */
  logs: string[];
  /** Parsed log lines. */
  logRecords(): Record<string, unknown>[];
  /** Listen on a free loopback port and return the base URL (for real HTTP clients). */
  listen(): Promise<string>;
  close(): Promise<void>;
}

export interface StackOptions {
  /** Extra or overriding gateway environment variables. */
  env?: Record<string, string | undefined>;
  emulator?: Partial<EmulatorOptions>;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const emu = await startEmulator({ apiKey: UPSTREAM_KEY, ...opts.emulator });
  const logs: string[] = [];
  const logStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(line);
      cb();
    },
  });
  const config = loadConfig({
    DASHSCOPE_API_KEY: UPSTREAM_KEY,
    DASHSCOPE_BASE_URL: emu.url,
    DASHSCOPE_WORKSPACE: WORKSPACE,
    GATEWAY_API_KEYS: `alice:${KEYS.alice},bob:${KEYS.bob}`,
    LOG_LEVEL: 'info',
    UPSTREAM_RETRY_BASE_MS: '5',
    // Tests of other features must not be paced by the upstream budget; test/ratelimit/ sets its own.
    RATE_LIMIT_RPM: '100000',
    ...opts.env,
  });
  const app = await buildApp(config, { logStream });
  await app.ready();
  return {
    emu,
    app,
    logs,
    logRecords: () => logs.map((l) => JSON.parse(l) as Record<string, unknown>),
    listen: async () => {
      const address = await app.listen({ port: 0, host: '127.0.0.1' });
      return address;
    },
    close: async () => {
      await app.close();
      await emu.close();
    },
  };
}

export const auth = (key: string = KEYS.alice): Record<string, string> => ({
  authorization: `Bearer ${key}`,
});

/** The emulator's requests to an upstream path (control routes are never recorded). */
export function upstreamCalls(emu: Emulator, pathPrefix = '/'): Emulator['received'] {
  return emu.received.filter((r) => r.url.startsWith(pathPrefix));
}

/**
 * A handle whose properties resolve to `get()`'s value when a test uses them: hooks create the stacks, but the
 * describe body that holds the handle runs before any hook.
 */
function lateHandle(get: () => Stack | undefined, who: string): Stack {
  return new Proxy({} as Stack, {
    get: (_target, key) => {
      const current = get();
      if (!current) throw new Error(`${who}: the stack is used before beforeAll has started it`);
      return current[key as keyof Stack];
    },
  });
}

/**
 * One stack for the tests of the enclosing describe block: started before them, closed after them, and the
 * emulator's recorded requests and faults cleared before each test. Returns a handle whose properties resolve to
 * the running stack when a test uses them (the stack does not exist yet when the describe body runs).
 * A file's own beforeAll/afterAll hooks registered after this call run after the start and before the close.
 */
export function useStack(opts: StackOptions = {}): Stack {
  let current: Stack | undefined;
  beforeAll(async () => {
    current = await startStack(opts);
  });
  afterAll(async () => current?.close());
  beforeEach(() => {
    current!.emu.clearReceived();
    current!.emu.clearFaults();
  });
  return lateHandle(() => current, 'useStack()');
}

/**
 * `count` gateways in front of ONE upstream, as replicas in front of DashScope: the first stack's emulator serves
 * all of them (the others' own emulators stay idle). `opts.env` applies to every replica (e.g. one REDIS_URL they
 * share). Close them with closeReplicas(), which closes the emulator's owner last.
 */
export async function startReplicas(count: number, opts: StackOptions = {}): Promise<Stack[]> {
  const first = await startStack(opts);
  const stacks = [first];
  try {
    for (let i = 1; i < count; i++) {
      stacks.push(await startStack({ ...opts, env: { ...opts.env, DASHSCOPE_BASE_URL: first.emu.url } }));
    }
  } catch (err) {
    // No caller holds the ones already started: close them rather than leak their ports and timers.
    await closeReplicas(stacks);
    throw err;
  }
  return stacks;
}

/** Closes replicas in reverse order: the others still use the first one's emulator until they are closed. */
export async function closeReplicas(stacks: readonly Stack[]): Promise<void> {
  for (const s of [...stacks].reverse()) await s.close();
}

/**
 * startReplicas() for the tests of the enclosing describe block, with useStack()'s lifecycle: started before them,
 * closed after them, the shared emulator's requests and faults cleared before each test.
 */
export function useReplicas(count: number, opts: StackOptions = {}): Stack[] {
  const stacks: Stack[] = [];
  beforeAll(async () => {
    stacks.push(...(await startReplicas(count, opts)));
  });
  afterAll(async () => closeReplicas(stacks.splice(0)));
  beforeEach(() => {
    stacks[0]!.emu.clearReceived();
    stacks[0]!.emu.clearFaults();
  });
  return Array.from({ length: count }, (_, i) => lateHandle(() => stacks[i], 'useReplicas()'));
}

/**
 * A stack of one test's own (a setting no other test in the file should see, or a state that would stall the
 * shared one): started, handed to `fn`, and closed whatever `fn` does.
 */
export async function withStack<T>(opts: StackOptions, fn: (s: Stack) => Promise<T>): Promise<T> {
  const s = await startStack(opts);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}
