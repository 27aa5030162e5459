/**
 * The error catalogue: every error the gateway answers with is a GatewayError built from one row here.
 * A row says the HTTP status and how the error is named in each caller dialect:
 * - OpenAI shape on /v1/* (and /compatible-mode/v1/*): {error:{message,type,code,param}}
 * - DashScope shape on /api/v1/*: {code,message,request_id}
 * Rendering lives in one place (renderError) and is called only by the error handler.
 */

export type Dialect = 'openai' | 'dashscope';

interface ErrorRow {
  status: number;
  /** DashScope-style code (native dialect). */
  dashscope: string;
  /** OpenAI `error.type`. */
  openaiType: string;
  /** OpenAI `error.code`. */
  openaiCode: string;
}

export const ERRORS = {
  INVALID_INPUT: {
    status: 400,
    dashscope: 'InvalidParameter',
    openaiType: 'invalid_request_error',
    openaiCode: 'invalid_parameter',
  },
  INVALID_JSON: {
    status: 400,
    dashscope: 'InvalidParameter',
    openaiType: 'invalid_request_error',
    openaiCode: 'invalid_json',
  },
  UNKNOWN_MODEL: {
    status: 400,
    dashscope: 'InvalidParameter',
    openaiType: 'invalid_request_error',
    openaiCode: 'model_not_found',
  },
  UNAUTHORIZED: {
    status: 401,
    dashscope: 'InvalidApiKey',
    openaiType: 'invalid_request_error',
    openaiCode: 'invalid_api_key',
  },
  NOT_FOUND: {
    status: 404,
    dashscope: 'NotFound',
    openaiType: 'invalid_request_error',
    openaiCode: 'not_found',
  },
  METHOD_NOT_ALLOWED: {
    status: 405,
    dashscope: 'MethodNotAllowed',
    openaiType: 'invalid_request_error',
    openaiCode: 'method_not_allowed',
  },
  BODY_TOO_LARGE: {
    status: 413,
    dashscope: 'BadRequest.TooLarge',
    openaiType: 'invalid_request_error',
    openaiCode: 'request_too_large',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    dashscope: 'InvalidParameter',
    openaiType: 'invalid_request_error',
    openaiCode: 'unsupported_media_type',
  },
  /** The upstream answered 429, or the gateway's own upstream budget is spent. */
  RATE_LIMITED: {
    status: 429,
    dashscope: 'Throttling',
    openaiType: 'rate_limit_error',
    openaiCode: 'rate_limit_exceeded',
  },
  /** Another upstream 4xx: status and message kept, code taken from the upstream body. */
  UPSTREAM_REJECTED: {
    status: 400,
    dashscope: 'InvalidParameter',
    openaiType: 'invalid_request_error',
    openaiCode: 'upstream_rejected',
  },
  /** DashScope said 401/403 to the gateway's own key: an operator problem, not the caller's. */
  UPSTREAM_AUTH: {
    status: 502,
    dashscope: 'UpstreamAuthenticationFailed',
    openaiType: 'api_error',
    openaiCode: 'upstream_auth_failed',
  },
  UPSTREAM_BAD_RESPONSE: {
    status: 502,
    dashscope: 'BadGateway',
    openaiType: 'api_error',
    openaiCode: 'upstream_bad_response',
  },
  UPSTREAM_UNAVAILABLE: {
    status: 503,
    dashscope: 'ServiceUnavailable',
    openaiType: 'api_error',
    openaiCode: 'upstream_unavailable',
  },
  UPSTREAM_TIMEOUT: {
    status: 504,
    dashscope: 'RequestTimeOut',
    openaiType: 'api_error',
    openaiCode: 'upstream_timeout',
  },
  /** Shared gateway state (Redis) is unreachable and the answer depends on it (task ownership). */
  STATE_UNAVAILABLE: {
    status: 503,
    dashscope: 'ServiceUnavailable',
    openaiType: 'api_error',
    openaiCode: 'service_unavailable',
  },
  /** The caller went away before the reply was ready (nginx's 499): nothing is sent, it is logged at info. */
  CALLER_CLOSED: {
    status: 499,
    dashscope: 'ClientClosedRequest',
    openaiType: 'api_error',
    openaiCode: 'client_closed_request',
  },
  INTERNAL: {
    status: 500,
    dashscope: 'InternalError',
    openaiType: 'api_error',
    openaiCode: 'internal_error',
  },
} as const satisfies Record<string, ErrorRow>;

export type ErrorKind = keyof typeof ERRORS;

export interface GatewayErrorOptions {
  /** The request field at fault, e.g. `input[3]` or `input.contents[0].image`. */
  param?: string;
  /** Seconds the caller should wait (429, 503). */
  retryAfterSec?: number;
  /** Override the row's status (upstream 4xx pass-through). */
  status?: number;
  /** Override the dialect codes (upstream 4xx pass-through keeps the upstream code). */
  code?: string;
  /** Tell OpenAI SDKs not to retry a 5xx that will not heal by retrying. */
  noRetry?: boolean;
  cause?: unknown;
}

export class GatewayError extends Error {
  readonly kind: ErrorKind;
  readonly statusCode: number;
  readonly param: string | undefined;
  readonly retryAfterSec: number | undefined;
  readonly code: string | undefined;
  readonly noRetry: boolean;

  constructor(kind: ErrorKind, message: string, opts: GatewayErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GatewayError';
    this.kind = kind;
    this.statusCode = opts.status ?? ERRORS[kind].status;
    this.param = opts.param;
    this.retryAfterSec = opts.retryAfterSec;
    this.code = opts.code;
    this.noRetry = opts.noRetry ?? false;
  }
}

export function invalidInput(param: string, message: string): GatewayError {
  return new GatewayError('INVALID_INPUT', `${param}: ${message}`, { param });
}

export interface RenderedError {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

/** The single place that turns a GatewayError into a status, headers and a body in the caller's dialect. */
export function renderError(err: GatewayError, dialect: Dialect, requestId: string): RenderedError {
  const row = ERRORS[err.kind];
  const headers: Record<string, string> = {};
  if (err.retryAfterSec !== undefined) {
    // Whole seconds, 1 to 60: LangChain and the openai SDK ignore (LangChain: give up on) a retry-after above 60 s,
    // so a longer upstream hold is better answered with 60 s and, if still held then, another 429.
    const sec = Math.min(60, Math.max(1, Math.ceil(err.retryAfterSec)));
    headers['retry-after'] = String(sec);
    headers['retry-after-ms'] = String(Math.min(60_000, Math.max(1, Math.round(err.retryAfterSec * 1000))));
  }
  if (err.noRetry) headers['x-should-retry'] = 'false';
  if (dialect === 'dashscope') {
    return {
      status: err.statusCode,
      headers,
      body: { code: err.code ?? row.dashscope, message: err.message, request_id: requestId },
    };
  }
  return {
    status: err.statusCode,
    headers,
    body: {
      error: {
        message: err.message,
        type: row.openaiType,
        code: err.kind === 'UPSTREAM_REJECTED' && err.code ? err.code : row.openaiCode,
        param: err.param ?? null,
      },
    },
  };
}

/** Which error dialect a URL speaks: OpenAI-compatible paths get OpenAI errors, everything else DashScope's. */
export function dialectFor(url: string): Dialect {
  return url.startsWith('/v1/') || url.startsWith('/compatible-mode/') ? 'openai' : 'dashscope';
}
