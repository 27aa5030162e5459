/**
 * Configuration: read from the environment once, at start-up, and validated with zod (the schema and the list
 * parsers are in ./config-env.ts). This is the only module that reads `process.env` (callers pass `env` in);
 * everything else receives a `Config`. A bad or missing value produces one error listing every problem, so an
 * operator fixes them all in one go.
 */
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import type { EmbeddingCacheSettings } from './cache/settings.js';
import { EnvSchema, type GatewayKey } from './config-env.js';
import type { CallerLimit, UpstreamBudgetSettings } from './ratelimit/settings.js';

export { type Env, type GatewayKey, WORKSPACE_PATTERN } from './config-env.js';

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
