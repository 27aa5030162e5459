/**
 * Transport failures of a DashScope call (no HTTP status to map): connect and read timeouts, refused or reset
 * connections, DNS failures, truncated replies → the gateway error and whether a retry may help.
 */
import { GatewayError } from '../errors.js';

/**
 * Transport error code → gateway error. Modelled on @fastify/reply-from's table, but with the statuses a
 * gateway should use: a reset is a bad gateway (502), not an internal error.
 */
const TRANSPORT_FAILURES: Record<
  string,
  {
    kind: 'UPSTREAM_TIMEOUT' | 'UPSTREAM_UNAVAILABLE' | 'UPSTREAM_BAD_RESPONSE';
    what: string;
    retry: boolean;
  }
> = {
  UND_ERR_CONNECT_TIMEOUT: {
    kind: 'UPSTREAM_TIMEOUT',
    what: 'connecting to DashScope timed out',
    retry: true,
  },
  // DashScope may still be working on a call whose reply is late: retrying would double the wait and the cost.
  UND_ERR_HEADERS_TIMEOUT: {
    kind: 'UPSTREAM_TIMEOUT',
    what: 'DashScope did not answer in time',
    retry: false,
  },
  UND_ERR_BODY_TIMEOUT: {
    kind: 'UPSTREAM_TIMEOUT',
    what: 'DashScope stopped sending its reply',
    retry: false,
  },
  ECONNREFUSED: { kind: 'UPSTREAM_UNAVAILABLE', what: 'DashScope refused the connection', retry: true },
  ENOTFOUND: { kind: 'UPSTREAM_UNAVAILABLE', what: 'DashScope host name did not resolve', retry: true },
  EAI_AGAIN: { kind: 'UPSTREAM_UNAVAILABLE', what: 'DashScope host name did not resolve', retry: true },
  EHOSTUNREACH: { kind: 'UPSTREAM_UNAVAILABLE', what: 'DashScope host unreachable', retry: true },
  ENETUNREACH: { kind: 'UPSTREAM_UNAVAILABLE', what: 'DashScope network unreachable', retry: true },
  ECONNRESET: { kind: 'UPSTREAM_BAD_RESPONSE', what: 'DashScope reset the connection', retry: true },
  EPIPE: { kind: 'UPSTREAM_BAD_RESPONSE', what: 'DashScope closed the connection', retry: true },
  UND_ERR_SOCKET: { kind: 'UPSTREAM_BAD_RESPONSE', what: 'DashScope closed the connection', retry: true },
  UND_ERR_CLOSED: { kind: 'UPSTREAM_BAD_RESPONSE', what: 'DashScope closed the connection', retry: true },
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: {
    kind: 'UPSTREAM_BAD_RESPONSE',
    what: 'DashScope sent a truncated reply',
    retry: true,
  },
};

export function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  // undici wraps socket errors; the useful code can sit one level down in `cause`.
  for (let depth = 0; depth < 3 && e && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code in TRANSPORT_FAILURES) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Map a transport failure to a GatewayError. Never includes the upstream key or a stack in the message. */
export function classify(err: unknown): { error: GatewayError; retry: boolean } {
  if (err instanceof GatewayError) return { error: err, retry: false };
  const code = errorCode(err);
  const row = code ? TRANSPORT_FAILURES[code] : undefined;
  if (row)
    return { error: new GatewayError(row.kind, `${row.what} (${code})`, { cause: err }), retry: row.retry };
  return {
    error: new GatewayError('UPSTREAM_BAD_RESPONSE', 'the call to DashScope failed', { cause: err }),
    retry: false,
  };
}
