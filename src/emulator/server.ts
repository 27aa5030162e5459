/**
 * The DashScope emulator: a real HTTP server that answers like DashScope does, following
 * docs/dashscope-contract.md. The demo and the test suite run the gateway against it, so it needs no key
 * and no network. It checks `Authorization` against its own key, enforces the per-model limits with
 * DashScope's exact messages, and answers with deterministic vectors (see vectors.ts).
 *
 * It shares no code with the gateway: its model limits (limits.ts) and token counting (qwen-length.ts) are its
 * own, so a wrong limit in the gateway shows up as a test failure instead of being confirmed by the emulator.
 *
 * Tests steer it through a control API (also usable in-process):
 *   POST   /__emulator/faults    {path?, times?, delayMs?, status?, body?, headers?, reset?, malformed?}
 *   DELETE /__emulator/faults
 *   GET    /__emulator/requests  → what it received (method, url, headers, body, at)
 *   DELETE /__emulator/requests
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { emulatorCatalog } from './limits.js';
import { qwenTokensAtLeast } from './qwen-length.js';
import { arrivalLimiter, type EmuRateLimit, modelAndTexts } from './rate-limits.js';
import { type EmulatorRoute, HttpError } from './route.js';
import { ROUTES } from './routes/index.js';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** Arrival time, epoch ms. */
  at: number;
}

export const FaultSchema = z.object({
  /** Only requests whose path starts with this; all upstream paths when absent. */
  path: z.string().optional(),
  /** How many matching requests it applies to (then it is used up). */
  times: z.number().int().positive().default(1),
  /** Wait this long before answering (or before the other effects). */
  delayMs: z.number().int().nonnegative().optional(),
  /** Answer with this status (and `body`, else DashScope's error body for it). */
  status: z.number().int().min(200).max(599).optional(),
  body: z.unknown().optional(),
  headers: z.record(z.string(), z.string()).optional(),
  /** Destroy the connection without answering. */
  reset: z.boolean().optional(),
  /** Answer 200 with a truncated JSON body. */
  malformed: z.boolean().optional(),
});
export type Fault = z.input<typeof FaultSchema>;
type ActiveFault = z.infer<typeof FaultSchema>;

export interface EmulatorOptions {
  apiKey: string;
  port?: number;
  host?: string;
  /** Per-model batch-size overrides (DashScope has changed them). */
  rowLimits?: Map<string, number>;
  /**
   * DashScope's per-model rate limits to emulate (docs/dashscope-contract.md §6.5), by model name: requests per minute and per
   * second, tokens per minute, over sliding windows of arrival times. None by default.
   */
  rateLimits?: Record<string, EmuRateLimit>;
  /** Cache replies by request body and do not record requests: for benchmarks. */
  fast?: boolean;
}

export interface Emulator {
  url: string;
  port: number;
  received: RecordedRequest[];
  /** Passed to every endpoint as ctx.instance: endpoint modules key per-emulator state (and test getters) on it. */
  instance: object;
  addFault(f: Fault): void;
  clearFaults(): void;
  clearReceived(): void;
  close(): Promise<void>;
}

/** Errors by status, as DashScope words them (docs/dashscope-contract.md §5.2). */
const DEFAULT_ERRORS: Record<number, { code: string; message: string }> = {
  400: {
    code: 'InvalidParameter',
    message: 'Required parameter(s) missing or invalid, please check the request parameters.',
  },
  401: { code: 'InvalidApiKey', message: 'Invalid API-key provided.' },
  403: { code: 'AccessDenied', message: 'Access denied.' },
  408: { code: 'RequestTimeOut', message: 'Request timed out, please try again later.' },
  429: { code: 'Throttling.RateQuota', message: 'Requests rate limit exceeded, please try again later.' },
  500: {
    code: 'InternalError',
    message: 'An internal error has occured, please try again later or contact service support.',
  },
  503: {
    code: 'ServiceUnavailable',
    message: 'Service temporarily unavailable, possibly overloaded or not ready.',
  },
};

const MAX_RECORDED = 50_000;
function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(
  res: ServerResponse,
  status: number,
  body: string,
  requestId: string,
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
    ...extra,
  });
  res.end(body);
}

/** Compatible-mode errors are OpenAI-shaped with DashScope's code inside (docs/dashscope-contract.md §5.3). */
function compatError(err: HttpError, requestId: string): string {
  if (err.status === 401) {
    return JSON.stringify({
      error: {
        message: 'Incorrect API key provided. ',
        type: 'invalid_request_error',
        param: null,
        code: 'invalid_api_key',
      },
      request_id: requestId,
    });
  }
  return JSON.stringify({
    error: {
      message: `<${err.status}> InternalError.Algo.${err.code}: ${err.message}`,
      type: err.code,
      param: null,
      code: err.code,
    },
    id: requestId,
    request_id: requestId,
  });
}

function errorBody(err: HttpError, dialect: 'native' | 'compat', requestId: string): string {
  return dialect === 'compat'
    ? compatError(err, requestId)
    : JSON.stringify({ code: err.code, message: err.message, request_id: requestId });
}

function findRoute(method: string, path: string): EmulatorRoute | undefined {
  return ROUTES.find(
    (r) => r.method === method && (typeof r.path === 'string' ? r.path === path : r.path.test(path)),
  );
}

export async function startEmulator(opts: EmulatorOptions): Promise<Emulator> {
  const catalog = emulatorCatalog(opts.rowLimits);
  const limiter = opts.rateLimits ? arrivalLimiter(opts.rateLimits) : undefined;
  const received: RecordedRequest[] = [];
  let faults: ActiveFault[] = [];
  const cache = new Map<string, string>();
  const instance = {};

  const takeFault = (path: string): ActiveFault | undefined => {
    const f = faults.find((x) => path.startsWith(x.path ?? '/'));
    if (!f) return undefined;
    f.times--;
    if (f.times <= 0) faults = faults.filter((x) => x !== f);
    return f;
  };

  const control = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    const rid = randomUUID();
    if (path === '/__emulator/requests' && req.method === 'GET')
      return send(res, 200, JSON.stringify(received), rid);
    if (path === '/__emulator/requests' && req.method === 'DELETE') {
      received.length = 0;
      return send(res, 204, '', rid);
    }
    if (path === '/__emulator/faults' && req.method === 'DELETE') {
      faults = [];
      return send(res, 204, '', rid);
    }
    if (path === '/__emulator/faults' && req.method === 'POST') {
      let json: unknown;
      try {
        json = JSON.parse(await readBody(req));
      } catch {
        return send(res, 400, '{"message":"fault must be JSON"}', rid);
      }
      const f = FaultSchema.safeParse(json);
      if (!f.success) return send(res, 400, JSON.stringify({ message: f.error.message }), rid);
      faults.push(f.data);
      return send(res, 201, '{}', rid);
    }
    return send(res, 404, '{"message":"no such control route"}', rid);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path.startsWith('/__emulator/')) return control(req, res, path);
    const arrivedAt = Date.now();
    const raw = await readBody(req);
    if (!opts.fast) {
      if (received.length >= MAX_RECORDED) received.shift();
      received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: raw,
        at: Date.now(),
      });
    }
    const requestId = randomUUID();
    const route = findRoute(req.method ?? '', path);
    const dialect = route?.dialect ?? (path.startsWith('/compatible-mode/') ? 'compat' : 'native');

    const fault = takeFault(path);
    if (fault?.delayMs) await sleep(fault.delayMs);
    if (fault?.reset) {
      req.socket.destroy();
      return;
    }
    if (fault?.malformed) return send(res, 200, '{"output":{"embeddings":[{"embedding":[0.1,', requestId);
    if (fault?.status !== undefined) {
      const def = DEFAULT_ERRORS[fault.status] ?? {
        code: 'InternalError',
        message: `status ${fault.status}`,
      };
      const body =
        fault.body !== undefined
          ? JSON.stringify(fault.body)
          : errorBody(new HttpError(fault.status, def.code, def.message), dialect, requestId);
      return send(res, fault.status, body, requestId, fault.headers);
    }

    try {
      if (req.headers.authorization !== `Bearer ${opts.apiKey}`) {
        throw new HttpError(401, 'InvalidApiKey', 'Invalid API-key provided.');
      }
      if (!route) throw new HttpError(404, 'NotFound', `emulator: no such endpoint ${req.method} ${path}`);
      const call = limiter ? modelAndTexts(raw) : undefined;
      if (limiter && call) {
        const tokens = call.texts.reduce((sum, t) => sum + qwenTokensAtLeast(t), 0);
        limiter.admit(call.model, tokens, arrivedAt);
      }
      const cacheKey = opts.fast && route.cacheable ? path + raw : undefined;
      const cached = cacheKey ? cache.get(cacheKey) : undefined;
      if (cached) return send(res, 200, cached, requestId);
      const reply = await route.handle({
        req,
        res,
        path,
        query: new URL(req.url ?? '/', 'http://emulator').searchParams,
        body: raw,
        requestId,
        catalog,
        instance,
        apiKey: opts.apiKey,
      });
      if (!reply) return; // the endpoint streamed its own reply
      const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
      if (cacheKey && reply.status === 200 && cache.size < 256) cache.set(cacheKey, text);
      return send(res, reply.status, text, requestId, reply.headers);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      return send(res, err.status, errorBody(err, dialect, requestId), requestId);
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent)
        send(res, 500, JSON.stringify({ code: 'InternalError', message: String(err) }), randomUUID());
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const host = opts.host ?? '127.0.0.1';

  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    received,
    instance,
    addFault: (f) => faults.push(FaultSchema.parse(f)),
    clearFaults: () => {
      faults = [];
    },
    clearReceived: () => {
      received.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
