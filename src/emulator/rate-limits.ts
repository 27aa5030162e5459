/**
 * DashScope's per-model rate limits, emulated (docs/dashscope-contract.md §6.5): requests per minute, requests per
 * second (DashScope may apply RPM/60 per second, so a burst inside the minute's budget can still be refused) and
 * tokens per minute. Windows slide over arrival times, so a test sees exactly what a client would see from a
 * rolling limiter, not a fixed-window reset. Only admitted requests count: a refused call does not use budget.
 *
 * Tokens are the emulator's lower bound (qwen-length.ts), so the emulator never throttles a call that DashScope,
 * counting real tokens, would let through; a gateway whose own budget lets far more through is still caught.
 */
import { z } from 'zod';
import { HttpError } from './route.js';

export const EmuRateLimitSchema = z
  .object({
    rpm: z.number().int().positive().optional(),
    rps: z.number().int().positive().optional(),
    tpm: z.number().int().positive().optional(),
  })
  .strict();
export type EmuRateLimit = z.infer<typeof EmuRateLimitSchema>;

const MINUTE = 60_000;
const SECOND = 1_000;

/** The refusals, worded as DashScope words them. */
const RPM_EXCEEDED = new HttpError(
  429,
  'Throttling.RateQuota',
  'Requests rate limit exceeded, please try again later.',
);
// DashScope's code for the per-second refusal is not documented; RateQuota is the closest documented one.
const RPS_EXCEEDED = new HttpError(429, 'Throttling.RateQuota', 'Request rate increased too quickly');
const TPM_EXCEEDED = new HttpError(
  429,
  'Throttling.AllocationQuota',
  'Allocated quota exceeded, please increase your quota limit.',
);

interface ModelWindow {
  limit: EmuRateLimit;
  /** Arrival times (ms) of admitted requests in the last minute, oldest first. */
  arrivals: number[];
  /** Tokens of those requests, same order. */
  tokens: number[];
  tokenSum: number;
}

export interface ArrivalLimiter {
  /** Records the call and returns, or throws DashScope's 429 when it is over a limit (then nothing is recorded). */
  admit(model: string, tokens: number, now?: number): void;
}

export function arrivalLimiter(limits: Readonly<Record<string, EmuRateLimit>> = {}): ArrivalLimiter {
  const windows = new Map<string, ModelWindow>();
  for (const [model, raw] of Object.entries(limits)) {
    windows.set(model, { limit: EmuRateLimitSchema.parse(raw), arrivals: [], tokens: [], tokenSum: 0 });
  }
  return {
    admit(model, tokens, now = Date.now()) {
      const w = windows.get(model);
      if (!w) return;
      let drop = 0;
      while (drop < w.arrivals.length && w.arrivals[drop]! <= now - MINUTE) {
        w.tokenSum -= w.tokens[drop]!;
        drop++;
      }
      if (drop > 0) {
        w.arrivals.splice(0, drop);
        w.tokens.splice(0, drop);
      }
      const { rpm, rps, tpm } = w.limit;
      if (rpm !== undefined && w.arrivals.length >= rpm) throw RPM_EXCEEDED;
      if (rps !== undefined) {
        let inSecond = 0;
        for (let i = w.arrivals.length - 1; i >= 0 && w.arrivals[i]! > now - SECOND; i--) inSecond++;
        if (inSecond >= rps) throw RPS_EXCEEDED;
      }
      if (tpm !== undefined && w.tokenSum + tokens > tpm) throw TPM_EXCEEDED;
      w.arrivals.push(now);
      w.tokens.push(tokens);
      w.tokenSum += tokens;
    },
  };
}

/**
 * The model a native or compatible-mode call names and the texts it carries (text embedding, multimodal text items,
 * conversation text parts), from the raw body. Anything unexpected counts as no model: the endpoint's own
 * validation then answers as usual.
 */
export function modelAndTexts(raw: string): { model: string; texts: string[] } | undefined {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const body = json as Record<string, unknown>;
  if (typeof body.model !== 'string') return undefined;
  const texts: string[] = [];
  const collect = (v: unknown): void => {
    if (typeof v === 'string') texts.push(v);
    else if (Array.isArray(v)) for (const x of v) collect(x);
    else if (typeof v === 'object' && v !== null) {
      const o = v as Record<string, unknown>;
      // Only text-bearing keys: media values (URLs, base64) are not tokens.
      for (const key of ['texts', 'contents', 'messages', 'content', 'text']) if (key in o) collect(o[key]);
    }
  };
  collect(body.input);
  collect(body.messages);
  return { model: body.model, texts };
}
