/**
 * Configuration: read from the environment once, at start-up, and validated with zod.
 * This is the only module that reads `process.env` (callers pass `env` in); everything else receives a `Config`.
 * A bad or missing value produces one error listing every problem, so an operator fixes them all in one go.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { EmbeddingCacheSettings } from './cache/settings.js';
import { ROW_LIMITED_MODELS } from './models/index.js';
import {
  budgetRules,
  type CallerLimit,
  callerLimits,
  type UpstreamBudgetSettings,
} from './ratelimit/settings.js';
import { redisUrlProblem } from './redis.js';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** A DashScope workspace id (`llm-…`): a plain token, since it goes into an HTTP header as it is. */
export const WORKSPACE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

/** One gateway key; `workspace` is the DashScope workspace its calls go to (DASHSCOPE_WORKSPACE when absent). */
export interface GatewayKey {
  name: string;
  key: string;
  workspace?: string;
}

/**
 * `name:key,name2:key2:workspace` → [{name, key, workspace?}]. Names appear in logs and metrics; keys never do.
 * A key therefore cannot contain ':' (the third part is the workspace); keys without one parse as before.
 */
const gatewayKeys = z.string().transform((raw, ctx) => {
  const keys: GatewayKey[] = [];
  for (const part of raw.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const fields = item.split(':').map((f) => f.trim());
    const [name = '', key = '', workspace] = fields;
    const entry = keys.length + 1;
    if (fields.length > 3 || !/^[A-Za-z0-9._-]{1,64}$/.test(name) || key.length < 8) {
      ctx.addIssue({
        code: 'custom',
        message: `each entry must be name:key or name:key:workspace with a name of [A-Za-z0-9._-] and a key of at least 8 characters without ':' (entry ${entry} is not)`,
      });
      return z.NEVER;
    }
    if (workspace !== undefined && !WORKSPACE_PATTERN.test(workspace)) {
      ctx.addIssue({
        code: 'custom',
        message: `entry ${entry} ("${name}"): the workspace must be a DashScope workspace id such as llm-xxxx (letters, digits, '-' and '_', at most 128)`,
      });
      return z.NEVER;
    }
    if (keys.some((k) => k.name === name)) {
      ctx.addIssue({ code: 'custom', message: `key name "${name}" is used twice` });
      return z.NEVER;
    }
    keys.push(workspace === undefined ? { name, key } : { name, key, workspace });
  }
  return keys;
});

/** `model=rows,model2=rows` → Map: overrides the per-call row limit of a model (DashScope has changed them). */
const rowLimits = z.string().transform((raw, ctx) => {
  const out = new Map<string, number>();
  for (const part of raw.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const m = /^([A-Za-z0-9._-]+)=(\d{1,4})$/.exec(item);
    if (!m || Number(m[2]) < 1) {
      ctx.addIssue({ code: 'custom', message: `"${item}" is not model=rows (rows ≥ 1)` });
      return z.NEVER;
    }
    if (!ROW_LIMITED_MODELS.includes(m[1]!)) {
      ctx.addIssue({
        code: 'custom',
        message: `"${m[1]}" is not a model with a per-call row limit (${ROW_LIMITED_MODELS.join(', ')})`,
      });
      return z.NEVER;
    }
    out.set(m[1]!, Number(m[2]));
  }
  return out;
});

/**
 * REDIS_URL: one server (redis://, rediss://), a Cluster (redis+cluster://h1:p1,h2:p2, seed nodes) or a Sentinel
 * group (redis+sentinel://h1:p1,h2:p2/mastername). src/redis.ts parses it again with the same rules.
 */
const redisUrl = z.string().superRefine((raw, ctx) => {
  const problem = redisUrlProblem(raw);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const EnvSchema = z.object({
  PORT: int(0, 65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DASHSCOPE_API_KEY: z.string().optional(),
  DASHSCOPE_API_KEY_FILE: z.string().optional(),
  DASHSCOPE_WORKSPACE: z.string().optional(),
  DASHSCOPE_BASE_URL: z
    .url({ protocol: /^https?$/ })
    .default('https://dashscope.aliyuncs.com')
    .transform((u) => u.replace(/\/+$/, '')),
  GATEWAY_API_KEYS: gatewayKeys.default([]),
  GATEWAY_ALLOW_ANONYMOUS: bool.default(false),
  // Prometheus metrics on a listener of their own; none unless METRICS_PORT is set (0 = any free port, for tests).
  METRICS_PORT: int(0, 65535).optional(),
  METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  BODY_LIMIT_BYTES: int(1024, 512 * 1024 * 1024).default(32 * 1024 * 1024),
  // Incoming connections (src/http/): what one caller can hold, however slowly it sends.
  JSON_MAX_DEPTH: int(8, 512).default(64),
  REQUEST_BODY_TIMEOUT_MS: int(100, 600_000).default(30_000),
  REQUEST_HEADERS_TIMEOUT_MS: int(100, 600_000).default(10_000),
  CONNECTION_IDLE_TIMEOUT_MS: int(0, 3_600_000).default(300_000),
  UPSTREAM_CONNECT_TIMEOUT_MS: int(1, 600_000).default(5_000),
  UPSTREAM_HEADERS_TIMEOUT_MS: int(1, 600_000).default(60_000),
  UPSTREAM_BODY_TIMEOUT_MS: int(1, 600_000).default(60_000),
  UPSTREAM_CONNECTIONS: int(1, 4096).default(64),
  UPSTREAM_RETRIES: int(0, 10).default(2),
  UPSTREAM_RETRY_BASE_MS: int(0, 60_000).default(200),
  UPSTREAM_SPLIT_CONCURRENCY: int(1, 64).default(4),
  // The whole of a request's upstream work (budget waits, attempts, backoffs, retries), from its arrival.
  REQUEST_TIMEOUT_MS: int(1000, 3_600_000).default(120_000),
  // A relayed SSE stream may go this long without a byte from DashScope; the overall deadline does not cut streams.
  STREAM_IDLE_TIMEOUT_MS: int(1000, 600_000).default(60_000),
  MODEL_ROW_LIMITS: rowLimits.default(new Map()),
  MAX_INPUTS_PER_REQUEST: int(1, 100_000).default(2048),
  REDIS_URL: redisUrl.optional(),
  // Upstream budget (src/ratelimit/): calls to DashScope per window, per model or group of models.
  RATE_LIMIT_RPM: int(0, 1_000_000).default(120),
  RATE_LIMIT_TPM: int(0, 1_000_000_000_000).default(0),
  RATE_LIMIT_PACE_MS: int(10, 60_000).default(1000),
  RATE_LIMIT_BURST: int(0, 1_000_000).default(0),
  RATE_LIMIT_RESTORE_GRACE_MS: int(0, 60_000).default(2500),
  RATE_LIMIT_WINDOW_MS: int(100, 3_600_000).default(60_000),
  RATE_LIMIT_MARGIN_MS: int(0, 60_000).default(100),
  RATE_LIMIT_MODELS: budgetRules.default([]),
  RATE_LIMIT_MAX_WAIT_MS: int(0, 600_000).default(30_000),
  RATE_LIMIT_QUEUE_SIZE: int(1, 1_000_000).default(1000),
  RATE_LIMIT_REPLICAS: int(1, 1000).default(1),
  RATE_LIMIT_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,64}$/)
    .default('dsgw:'),
  CALLER_RATE_LIMITS: callerLimits.default(new Map()),
  // Embedding cache (src/cache/): a memory tier bounded in bytes, plus Redis (shared by replicas) with REDIS_URL.
  EMBEDDING_CACHE: z.enum(['on', 'off']).default('on'),
  EMBEDDING_CACHE_SCOPE: z.enum(['shared', 'caller']).default('caller'),
  EMBEDDING_CACHE_URLS: bool.default(false),
  EMBEDDING_CACHE_MEMORY_BYTES: int(0, 64 * 1024 * 1024 * 1024).default(64 * 1024 * 1024),
  EMBEDDING_CACHE_TTL_SEC: int(1, 365 * 24 * 3600).default(7 * 24 * 3600),
  EMBEDDING_CACHE_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._:{}-]{1,64}$/)
    .default('dsgw:emb:'),
  EMBEDDING_CACHE_REDIS_TIMEOUT_MS: int(1, 10_000).default(200),
  EMBEDDING_CACHE_MAX_PENDING_WRITES: int(1, 1_000_000).default(10_000),
  // Exact token counting (src/tokens/): worker threads, bytes per request, time per request. 1 MiB of English
  // prose (~200k tokens) counts in ~1.3-2.7 s on one core, so 5 s lets a legitimate request at the byte cap
  // finish on a loaded box, while a pathological text (BPE is quadratic on long runs without spaces) is cut off.
  TOKENIZER_WORKERS: int(1, 32).default(1),
  TOKENIZER_MAX_BYTES_PER_REQUEST: int(64 * 1024, 64 * 1024 * 1024).default(1024 * 1024),
  TOKENIZER_TIMEOUT_MS: int(100, 600_000).default(5_000),
  // Graceful stop (src/server.ts): how long /readyz says "closing" while still serving, and the hard limit.
  SHUTDOWN_DRAIN_DELAY_MS: int(0, 600_000).default(5_000),
  SHUTDOWN_TIMEOUT_MS: int(1_000, 3_600_000).default(25_000),
  // Signs task handles (src/tasks/handles.ts); derived from the DashScope key when unset. Never logged.
  TASK_HANDLE_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
});

export type Env = z.input<typeof EnvSchema>;

export interface Config {
  port: number;
  host: string;
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
  upstream: {
    baseUrl: string;
    apiKey: string;
    workspace: string | undefined;
    connectTimeoutMs: number;
    headersTimeoutMs: number;
    bodyTimeoutMs: number;
    connections: number;
    retries: number;
    retryBaseMs: number;
    splitConcurrency: number;
    /** Deadline of a request's upstream work, from the request's arrival (REQUEST_TIMEOUT_MS). */
    requestTimeoutMs: number;
    /** Longest silence between two chunks of a relayed stream (STREAM_IDLE_TIMEOUT_MS). */
    streamIdleTimeoutMs: number;
  };
  gatewayKeys: GatewayKey[];
  allowAnonymous: boolean;
  /**
   * GET /metrics on its own listener, off when `port` is undefined. Loopback by default: the port the load balancer
   * forwards to never serves it, and exposing it elsewhere is an explicit METRICS_HOST choice.
   */
  metrics: { port: number | undefined; host: string };
  bodyLimit: number;
  /** Limits on incoming connections and bodies (src/http/). */
  http: HttpLimits;
  rowLimits: Map<string, number>;
  maxInputsPerRequest: number;
  /** Shared state between replicas (upstream budget, task owners); in-memory state when absent. */
  redisUrl: string | undefined;
  /** The budget of calls to DashScope, shared through Redis when redisUrl is set. */
  upstreamBudget: UpstreamBudgetSettings;
  /** Per gateway key name (or `*`): incoming requests allowed per window. */
  callerLimits: Map<string, CallerLimit>;
  /** The embedding cache; Redis is its shared tier when redisUrl is set. */
  embeddingCache: EmbeddingCacheSettings;
  /** Exact token counts in worker threads (src/tokens/). */
  tokenizer: { workers: number; maxBytesPerRequest: number; timeoutMs: number };
  /** After SIGTERM/SIGINT: serve on (readiness 503) for drainDelayMs, cut what is left at timeoutMs. */
  shutdown: { drainDelayMs: number; timeoutMs: number };
  /** Overrides the task-handle secret derived from the upstream key (src/tasks/handles.ts). */
  taskHandleSecret: string | undefined;
}

/** The gateway's keep-alive timeout: longer than typical load-balancer idle timeouts (60 s) so the LB closes first. */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;

export interface HttpLimits {
  /** Deepest nesting of objects and arrays in a JSON body (JSON_MAX_DEPTH). */
  jsonMaxDepth: number;
  /** The whole request, headers and body, must arrive within this (REQUEST_BODY_TIMEOUT_MS); else 408 and close. */
  requestTimeoutMs: number;
  /** The request headers must arrive within this (REQUEST_HEADERS_TIMEOUT_MS), at most requestTimeoutMs. */
  headersTimeoutMs: number;
  /** A socket with no traffic either way for this long is closed (CONNECTION_IDLE_TIMEOUT_MS); 0: never. */
  idleTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Parse and cross-check the environment. Throws ConfigError with every problem found.
 * `readFile` is injectable so tests do not need real secret files.
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): Config {
  const problems: string[] = [];
  // Empty strings mean "unset": .env files and compose often leave `FOO=` lines.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    for (const issue of parsed.error.issues)
      problems.push(`${issue.path.join('.') || 'env'}: ${issue.message}`);
  }

  // The key checks read the raw strings so they are reported even when other variables are malformed.
  let apiKey = cleaned.DASHSCOPE_API_KEY;
  const keyFile = cleaned.DASHSCOPE_API_KEY_FILE;
  if (apiKey && keyFile) {
    problems.push('DASHSCOPE_API_KEY and DASHSCOPE_API_KEY_FILE are both set: set only one');
  } else if (keyFile) {
    try {
      apiKey = readFile(keyFile).trim();
      if (apiKey === '') problems.push(`DASHSCOPE_API_KEY_FILE: ${keyFile} is empty`);
    } catch (err) {
      problems.push(`DASHSCOPE_API_KEY_FILE: cannot read ${keyFile} (${(err as Error).message})`);
    }
  }
  if (!apiKey) problems.push('DASHSCOPE_API_KEY (or DASHSCOPE_API_KEY_FILE) is required: the upstream key');
  if (parsed.success) {
    const e = parsed.data;
    if (e.GATEWAY_API_KEYS.length === 0 && !e.GATEWAY_ALLOW_ANONYMOUS) {
      problems.push(
        'GATEWAY_API_KEYS is empty: set name:key pairs for callers, or GATEWAY_ALLOW_ANONYMOUS=true to let anyone in',
      );
    }
    if (apiKey && e.GATEWAY_API_KEYS.some((k) => k.key === apiKey)) {
      problems.push('GATEWAY_API_KEYS must not contain the upstream DashScope key');
    }
    for (const { name, limit } of [
      { name: 'RATE_LIMIT_RPM', limit: e.RATE_LIMIT_RPM },
      ...e.RATE_LIMIT_MODELS.map((r) => ({ name: `RATE_LIMIT_MODELS ${r.name}`, limit: r.limit })),
    ]) {
      if (limit > 0 && limit < e.RATE_LIMIT_REPLICAS) {
        problems.push(
          `${name}: ${limit} is less than RATE_LIMIT_REPLICAS (${e.RATE_LIMIT_REPLICAS}); each replica's fallback share would be below one call per window`,
        );
      }
    }
    if (e.REQUEST_HEADERS_TIMEOUT_MS > e.REQUEST_BODY_TIMEOUT_MS) {
      problems.push('REQUEST_HEADERS_TIMEOUT_MS must not be larger than REQUEST_BODY_TIMEOUT_MS');
    }
    // A request waiting for DashScope is silent on its connection: the idle timeout must not cut it first.
    if (
      e.CONNECTION_IDLE_TIMEOUT_MS !== 0 &&
      e.CONNECTION_IDLE_TIMEOUT_MS <= Math.max(e.REQUEST_TIMEOUT_MS, e.STREAM_IDLE_TIMEOUT_MS)
    ) {
      problems.push(
        'CONNECTION_IDLE_TIMEOUT_MS must be 0 (off) or longer than REQUEST_TIMEOUT_MS and STREAM_IDLE_TIMEOUT_MS',
      );
    }
    if (e.REQUEST_TIMEOUT_MS <= e.RATE_LIMIT_MAX_WAIT_MS) {
      problems.push(
        'REQUEST_TIMEOUT_MS must be longer than RATE_LIMIT_MAX_WAIT_MS: a request that waits its turn needs time left for DashScope',
      );
    }
    // The idle timeout also runs between keep-alive requests: shorter than the keep-alive timeout, it would cut
    // connections a load balancer still counts as open.
    if (e.CONNECTION_IDLE_TIMEOUT_MS !== 0 && e.CONNECTION_IDLE_TIMEOUT_MS <= KEEP_ALIVE_TIMEOUT_MS) {
      problems.push(
        `CONNECTION_IDLE_TIMEOUT_MS must be 0 (off) or longer than the keep-alive timeout (${KEEP_ALIVE_TIMEOUT_MS} ms)`,
      );
    }
    if (e.SHUTDOWN_DRAIN_DELAY_MS >= e.SHUTDOWN_TIMEOUT_MS) {
      problems.push(
        `SHUTDOWN_DRAIN_DELAY_MS (${e.SHUTDOWN_DRAIN_DELAY_MS}) must be smaller than SHUTDOWN_TIMEOUT_MS (${e.SHUTDOWN_TIMEOUT_MS}): both count from the signal`,
      );
    }
    if (e.METRICS_PORT !== undefined && e.METRICS_PORT !== 0 && e.METRICS_PORT === e.PORT) {
      problems.push(`METRICS_PORT must differ from PORT (${e.PORT}): /metrics has a listener of its own`);
    }
    if (e.RATE_LIMIT_PACE_MS > e.RATE_LIMIT_WINDOW_MS) {
      problems.push('RATE_LIMIT_PACE_MS must not be larger than RATE_LIMIT_WINDOW_MS');
    }
    if (e.RATE_LIMIT_MARGIN_MS >= e.RATE_LIMIT_WINDOW_MS) {
      problems.push('RATE_LIMIT_MARGIN_MS must be smaller than RATE_LIMIT_WINDOW_MS');
    }
    const callerNames = new Set([
      ...e.GATEWAY_API_KEYS.map((k) => k.name),
      '*',
      ...(e.GATEWAY_ALLOW_ANONYMOUS ? ['anonymous'] : []),
    ]);
    for (const name of e.CALLER_RATE_LIMITS.keys()) {
      if (!callerNames.has(name)) {
        problems.push(`CALLER_RATE_LIMITS: "${name}" is not a key name in GATEWAY_API_KEYS`);
      }
    }
  }
  if (problems.length > 0 || !parsed.success || !apiKey) throw new ConfigError(problems);
  const e = parsed.data;

  return {
    port: e.PORT,
    host: e.HOST,
    logLevel: e.LOG_LEVEL,
    upstream: {
      baseUrl: e.DASHSCOPE_BASE_URL,
      apiKey,
      workspace: e.DASHSCOPE_WORKSPACE,
      connectTimeoutMs: e.UPSTREAM_CONNECT_TIMEOUT_MS,
      headersTimeoutMs: e.UPSTREAM_HEADERS_TIMEOUT_MS,
      bodyTimeoutMs: e.UPSTREAM_BODY_TIMEOUT_MS,
      connections: e.UPSTREAM_CONNECTIONS,
      retries: e.UPSTREAM_RETRIES,
      retryBaseMs: e.UPSTREAM_RETRY_BASE_MS,
      splitConcurrency: e.UPSTREAM_SPLIT_CONCURRENCY,
      requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
      streamIdleTimeoutMs: e.STREAM_IDLE_TIMEOUT_MS,
    },
    gatewayKeys: e.GATEWAY_API_KEYS,
    allowAnonymous: e.GATEWAY_ALLOW_ANONYMOUS,
    metrics: { port: e.METRICS_PORT, host: e.METRICS_HOST },
    bodyLimit: e.BODY_LIMIT_BYTES,
    http: {
      jsonMaxDepth: e.JSON_MAX_DEPTH,
      requestTimeoutMs: e.REQUEST_BODY_TIMEOUT_MS,
      headersTimeoutMs: e.REQUEST_HEADERS_TIMEOUT_MS,
      idleTimeoutMs: e.CONNECTION_IDLE_TIMEOUT_MS,
      keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS,
    },
    rowLimits: e.MODEL_ROW_LIMITS,
    maxInputsPerRequest: e.MAX_INPUTS_PER_REQUEST,
    redisUrl: e.REDIS_URL,
    upstreamBudget: {
      defaultLimit: e.RATE_LIMIT_RPM,
      windowMs: e.RATE_LIMIT_WINDOW_MS,
      marginMs: e.RATE_LIMIT_MARGIN_MS,
      rules: e.RATE_LIMIT_MODELS,
      maxWaitMs: e.RATE_LIMIT_MAX_WAIT_MS,
      queueSize: e.RATE_LIMIT_QUEUE_SIZE,
      replicas: e.RATE_LIMIT_REPLICAS,
      keyPrefix: e.RATE_LIMIT_KEY_PREFIX,
      defaultTokens: e.RATE_LIMIT_TPM,
      paceMs: e.RATE_LIMIT_PACE_MS,
      burst: e.RATE_LIMIT_BURST,
      restoreGraceMs: e.RATE_LIMIT_RESTORE_GRACE_MS,
    },
    callerLimits: e.CALLER_RATE_LIMITS,
    embeddingCache: {
      enabled: e.EMBEDDING_CACHE === 'on',
      scope: e.EMBEDDING_CACHE_SCOPE,
      cacheUrls: e.EMBEDDING_CACHE_URLS,
      memoryBytes: e.EMBEDDING_CACHE_MEMORY_BYTES,
      ttlSec: e.EMBEDDING_CACHE_TTL_SEC,
      keyPrefix: e.EMBEDDING_CACHE_KEY_PREFIX,
      redisTimeoutMs: e.EMBEDDING_CACHE_REDIS_TIMEOUT_MS,
      maxPendingWrites: e.EMBEDDING_CACHE_MAX_PENDING_WRITES,
    },
    tokenizer: {
      workers: e.TOKENIZER_WORKERS,
      maxBytesPerRequest: e.TOKENIZER_MAX_BYTES_PER_REQUEST,
      timeoutMs: e.TOKENIZER_TIMEOUT_MS,
    },
    shutdown: { drainDelayMs: e.SHUTDOWN_DRAIN_DELAY_MS, timeoutMs: e.SHUTDOWN_TIMEOUT_MS },
    taskHandleSecret: e.TASK_HANDLE_SECRET,
  };
}
