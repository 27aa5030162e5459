/**
 * What an emulator endpoint is: one module per DashScope endpoint, listed in routes/index.ts.
 * The server does the shared parts (auth, faults, recording, error bodies in the endpoint's dialect).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EmuCatalog } from './limits.js';

/** An error DashScope would answer with; rendered as {code,message,request_id} or compat-mode's shape. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface EmulatorContext {
  req: IncomingMessage;
  /** For endpoints that stream (SSE); others return an EmulatorReply. */
  res: ServerResponse;
  path: string;
  query: URLSearchParams;
  /** The raw request body. */
  body: string;
  requestId: string;
  /** The emulator's own model limits (limits.ts), with the instance's row overrides. */
  catalog: EmuCatalog;
  /** Identity of this emulator instance, for endpoints that keep state (tasks): key a WeakMap with it. */
  instance: object;
  /** The key the emulator accepts, for endpoints that mint or compare credentials. */
  apiKey: string;
}

export interface EmulatorReply {
  status: number;
  /** Objects are sent as JSON. */
  body: unknown;
  headers?: Record<string, string>;
}

export interface EmulatorRoute {
  method: 'GET' | 'POST';
  path: string | RegExp;
  /** Which error shape this endpoint speaks: native {code,message,request_id} or compatible mode's. */
  dialect: 'native' | 'compat';
  /** Replies may be cached by body in fast (benchmark) mode. */
  cacheable?: boolean;
  /** Returns the reply, or undefined when it wrote to ctx.res itself (streaming). Throws HttpError. */
  handle(ctx: EmulatorContext): EmulatorReply | undefined | Promise<EmulatorReply | undefined>;
}

/** JSON.parse that turns a syntax error into DashScope's 400. */
export function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw new HttpError(400, 'InvalidParameter', 'Request body is not valid JSON.');
  }
}
