/**
 * Error messages quote what the caller sent (a model name, a key path). Unbounded, a 900 KB model name comes back
 * as a 900 KB error body and a 900 KB access-log line, for every such request: the caller would choose how much
 * the gateway writes. Messages and params are cut here, once, before the error is rendered and logged.
 */
import { GatewayError } from '../errors.js';

export const MAX_ERROR_MESSAGE_CHARS = 2048;
export const MAX_ERROR_PARAM_CHARS = 256;

const cut = (s: string, max: number): string =>
  s.length <= max ? s : `${s.slice(0, max)}… (${s.length - max} more characters cut)`;

/** `err` itself when within bounds, else a copy with its message and param cut. */
export function boundedError(err: GatewayError): GatewayError {
  const paramTooLong = err.param !== undefined && err.param.length > MAX_ERROR_PARAM_CHARS;
  if (err.message.length <= MAX_ERROR_MESSAGE_CHARS && !paramTooLong) return err;
  return new GatewayError(err.kind, cut(err.message, MAX_ERROR_MESSAGE_CHARS), {
    param: err.param === undefined ? undefined : cut(err.param, MAX_ERROR_PARAM_CHARS),
    retryAfterSec: err.retryAfterSec,
    status: err.statusCode,
    code: err.code,
    noRetry: err.noRetry,
    cause: err.cause,
  });
}
