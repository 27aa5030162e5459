/**
 * Upstream HTTP status → gateway error. One table, used by every route.
 *
 * | upstream            | caller gets                                                         |
 * |---------------------|---------------------------------------------------------------------|
 * | 401                 | 502: DashScope rejected the *gateway's* credentials (logged error)  |
 * | 429                 | 429 with Retry-After in whole seconds (upstream's value, else 1)    |
 * | other 4xx           | same status, upstream code and message kept                         |
 * | 500 / other 5xx     | 502 bad gateway                                                     |
 * | 503                 | 503                                                                 |
 * | 504                 | 504                                                                 |
 *
 * Error body shapes read: native {code,message,request_id} (also `msg`), compatible mode {error:{code,message}}.
 */

import type { IncomingHttpHeaders } from 'node:http';
import { z } from 'zod';
import { GatewayError } from '../errors.js';

/** A buffered DashScope reply (what the upstream client's call() resolves with). */
export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** DashScope's request id: the `x-request-id` response header (equal to the body's `request_id`). */
  requestId: string | undefined;
}

const NativeError = z.object({
  code: z.string().optional(),
  message: z.string().optional(),
  msg: z.string().optional(),
});
const CompatError = z.object({
  error: z.object({ code: z.string().nullish(), message: z.string().optional(), type: z.string().nullish() }),
});

interface UpstreamErrorInfo {
  code: string | undefined;
  message: string | undefined;
}

export function readUpstreamError(body: Buffer): UpstreamErrorInfo {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return { code: undefined, message: undefined };
  }
  const compat = CompatError.safeParse(json);
  if (compat.success)
    return { code: compat.data.error.code ?? undefined, message: compat.data.error.message };
  const native = NativeError.safeParse(json);
  if (native.success) return { code: native.data.code, message: native.data.message ?? native.data.msg };
  return { code: undefined, message: undefined };
}

/** `Retry-After` as seconds: delta-seconds or an HTTP date; undefined when absent or unusable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Number(v);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, (at - now) / 1000);
}

/** ` (DashScope request_id …)`, or '' without one: the suffix every upstream-related message carries. */
export function requestIdRef(requestId: string | undefined): string {
  return requestId ? ` (DashScope request_id ${requestId})` : '';
}

/** A 2xx reply the gateway cannot use (not JSON, missing fields): 502 naming what was wrong. */
export function badUpstreamReply(what: string, requestId: string | undefined, cause?: unknown): GatewayError {
  return new GatewayError('UPSTREAM_BAD_RESPONSE', `DashScope sent ${what}${requestIdRef(requestId)}`, {
    cause,
  });
}

/**
 * Build the caller-facing error for a non-2xx upstream reply. `secret` is scrubbed from any echoed text.
 * Only the upstream client calls this (it holds the secret); routes never see the key.
 */
export function upstreamFailure(res: UpstreamResponse, secret: string): GatewayError {
  const info = readUpstreamError(res.body);
  const scrub = (s: string): string => (secret ? s.split(secret).join('[redacted]') : s);
  const upstreamText = info.message ? scrub(info.message).slice(0, 1000) : undefined;
  const code = info.code ? scrub(info.code).slice(0, 100) : undefined;
  const ref = requestIdRef(res.requestId);

  if (res.status === 401 || (res.status === 403 && code === 'InvalidApiKey')) {
    return new GatewayError(
      'UPSTREAM_AUTH',
      `DashScope rejected the gateway's own credentials (${code ?? res.status}); this is a gateway configuration problem, not the caller's. The operator should check DASHSCOPE_API_KEY and DASHSCOPE_WORKSPACE${ref}.`,
      { noRetry: true },
    );
  }
  if (res.status === 429) {
    const retryAfterSec = parseRetryAfter(res.headers['retry-after']) ?? 1;
    // No upstream wording here: DashScope's codes contain "Quota", and LangChain stops retrying on that word.
    return new GatewayError(
      'RATE_LIMITED',
      `DashScope is throttling requests right now; retry after ${Math.max(1, Math.ceil(retryAfterSec))} s${ref}.`,
      { retryAfterSec, code: code ?? 'Throttling' },
    );
  }
  if (res.status >= 400 && res.status < 500) {
    return new GatewayError(
      'UPSTREAM_REJECTED',
      upstreamText ?? `DashScope rejected the request (HTTP ${res.status})`,
      {
        status: res.status,
        code,
      },
    );
  }
  const detail = `${code ? `${code}: ` : ''}${upstreamText ?? `HTTP ${res.status}`}${ref}`;
  if (res.status === 503)
    return new GatewayError('UPSTREAM_UNAVAILABLE', `DashScope is unavailable: ${detail}`);
  if (res.status === 504) return new GatewayError('UPSTREAM_TIMEOUT', `DashScope timed out: ${detail}`);
  return new GatewayError('UPSTREAM_BAD_RESPONSE', `DashScope failed: ${detail}`);
}
