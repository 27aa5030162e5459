/**
 * The shapes of the rate-limit settings and the parsers for their compact environment syntax. src/config.ts reads
 * the environment and uses these transforms, so every problem is reported together with the other variables'.
 *
 *   RATE_LIMIT_MODELS   `multimodal-embedding-v1=120,text-embedding-v3+text-embedding-v4=1800,text-embedding-v1=1800/1200000`
 *                       a model, or models joined with `+` that share one budget, `=` requests per window, and
 *                       optionally `/` tokens per window (DashScope's TPM; absent: RATE_LIMIT_TPM)
 *   CALLER_RATE_LIMITS  `alice=600/1m,bob=20/10s,*=120/1m`
 *                       a gateway key name (or `*` for every key without its own entry), `=` requests `/` window
 */
import { z } from 'zod';

/** One upstream budget: the models that share it and how many calls it allows per window (0: unlimited). */
export interface BudgetRule {
  /** Stable name of the budget, used in Redis keys and logs: the model names joined with `+`. */
  name: string;
  models: string[];
  limit: number;
  /** Tokens per window (0: not limited); undefined: RATE_LIMIT_TPM. */
  tokens?: number;
}

export interface UpstreamBudgetSettings {
  /** Calls per window for a model without an override; 0 turns the upstream budget off. */
  defaultLimit: number;
  windowMs: number;
  /**
   * Each call is counted for windowMs + marginMs: the gateway decides when a call may go, DashScope counts when it
   * arrives, and the time in between varies from call to call. The margin absorbs that variation.
   */
  marginMs: number;
  rules: BudgetRule[];
  maxWaitMs: number;
  queueSize: number;
  /** Replicas sharing the DashScope account: each uses limit / replicas when it cannot share through Redis. */
  replicas: number;
  /** Prefix of the Redis keys holding the shared budget. */
  keyPrefix: string;
  /** Tokens per window for a model without its own `/tpm` (0: tokens not limited). */
  defaultTokens: number;
  /**
   * The short window DashScope also enforces (per second: RPS = RPM/60, TPS = TPM/60). A budget allows
   * ceil(limit × paceMs / windowMs) + burst calls and floor(tokens × paceMs / windowMs) tokens per paceMs.
   */
  paceMs: number;
  burst: number;
  /**
   * After Redis comes back empty (restart, failover that lost writes) nothing is admitted for this long, so every
   * replica can write its recent calls back before the budget is computed from the log again.
   */
  restoreGraceMs: number;
}

export interface CallerLimit {
  max: number;
  windowMs: number;
}

const MODEL_NAME = /^[A-Za-z0-9._:/-]{1,128}$/;

/** `RATE_LIMIT_MODELS` → budget rules. A model may appear in one rule only. */
export const budgetRules = z.string().transform((raw, ctx) => {
  const rules: BudgetRule[] = [];
  const seen = new Set<string>();
  for (const part of raw.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const eq = item.lastIndexOf('=');
    const models =
      eq > 0
        ? item
            .slice(0, eq)
            .split('+')
            .map((m) => m.trim())
        : [];
    const limitText = eq > 0 ? item.slice(eq + 1).trim() : '';
    const m = /^(\d{1,9})(?:\s*\/\s*(\d{1,12}))?$/.exec(limitText);
    if (models.length === 0 || !models.every((x) => MODEL_NAME.test(x)) || !m) {
      ctx.addIssue({
        code: 'custom',
        message: `"${item}" is not model=requests, model=requests/tokens or model+model2=requests (whole numbers ≥ 0)`,
      });
      continue;
    }
    for (const m of models) {
      if (seen.has(m)) ctx.addIssue({ code: 'custom', message: `model "${m}" appears in two budgets` });
      seen.add(m);
    }
    const rule: BudgetRule = { name: models.join('+'), models, limit: Number(m[1]) };
    if (m[2] !== undefined) rule.tokens = Number(m[2]);
    rules.push(rule);
  }
  return rules;
});

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 };

/** `10s`, `1m`, `m`, `500ms` → milliseconds; undefined when unreadable. */
export function parseWindow(text: string): number | undefined {
  const m = /^(\d{1,7})?\s*(ms|s|min|m|h)$/.exec(text.trim());
  if (!m) return undefined;
  const n = m[1] === undefined ? 1 : Number(m[1]);
  return n > 0 ? n * UNIT_MS[m[2]!]! : undefined;
}

/** `CALLER_RATE_LIMITS` → Map from key name (or `*`) to its limit. */
export const callerLimits = z.string().transform((raw, ctx) => {
  const out = new Map<string, CallerLimit>();
  for (const part of raw.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const m = /^([A-Za-z0-9._-]{1,64}|\*)\s*=\s*(\d{1,9})\s*\/\s*(.+)$/.exec(item);
    const windowMs = m ? parseWindow(m[3]!) : undefined;
    if (!m || windowMs === undefined || Number(m[2]) < 1) {
      ctx.addIssue({
        code: 'custom',
        message: `"${item}" is not name=requests/window (e.g. alice=600/1m; units ms, s, m, h; requests ≥ 1)`,
      });
      continue;
    }
    if (out.has(m[1]!)) ctx.addIssue({ code: 'custom', message: `"${m[1]}" has two limits` });
    out.set(m[1]!, { max: Number(m[2]), windowMs });
  }
  return out;
});
