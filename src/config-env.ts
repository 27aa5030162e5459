/**
 * The environment as the gateway reads it: one zod schema, with the parsers for the compact list syntaxes
 * (GATEWAY_API_KEYS, MODEL_ROW_LIMITS, REDIS_URL). src/config.ts parses with it, cross-checks the values and builds the
 * `Config`; nothing else reads the environment.
 */
import { z } from 'zod';
import { ROW_LIMITED_MODELS } from './models/index.js';
import { budgetRules, callerLimits } from './ratelimit/settings.js';
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

export const EnvSchema = z.object({
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
  // Off unless asked for: it keeps callers' vectors (and, in Redis, for days); npm run demo turns it on.
  EMBEDDING_CACHE: z.enum(['on', 'off']).default('off'),
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
