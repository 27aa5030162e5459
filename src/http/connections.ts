/**
 * How long one caller may hold a connection, and what it gets when Fastify or Node refuse a request before any
 * route sees it. Without these, a client that sends its body one byte a second keeps its connection (and the
 * buffered body) for as long as it likes, and so do 300 of them.
 *
 * - REQUEST_BODY_TIMEOUT_MS: Node's requestTimeout, the whole request (headers and body) from its first byte.
 *   It stops counting once the body is in, so a slow DashScope reply is never cut by it. Node checks it every
 *   `connectionsCheckingInterval`, so that interval is a fraction of the timeout.
 * - REQUEST_HEADERS_TIMEOUT_MS: Node's headersTimeout (slow headers).
 * - CONNECTION_IDLE_TIMEOUT_MS: Fastify's connectionTimeout, a socket with no traffic either way (a caller that
 *   stops reading its reply).
 * - A response sent before the request body was read (401 in onRequest, 413, a parse error) closes the
 *   connection: keeping it alive would mean reading, and waiting for, the rest of the body.
 */
import type { ServerOptions } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { HttpLimits } from '../config.js';
import { dialectFor, type GatewayError, invalidInput, renderError } from '../errors.js';
import { TASK_ID_RULE } from '../tasks/ownership.js';

/**
 * After the early response is written the gateway stops sending (FIN) but still reads, and discards, what the
 * caller sends for this long before closing. Closing at once, with the caller's bytes still arriving, makes the
 * kernel answer with a reset that can destroy the response before the caller reads it (Go's net/http and nginx's
 * lingering close do the same).
 */
export const LINGER_MS = 500;

/** Sockets Node cut for REQUEST_BODY_TIMEOUT_MS / REQUEST_HEADERS_TIMEOUT_MS: their requests are logged as 408. */
const timedOut = new WeakSet<Socket>();

export function wasTimedOut(socket: Socket | null | undefined): boolean {
  return socket != null && timedOut.has(socket);
}

/** How often Node looks for requests past their timeout: a quarter of the shortest one, 100 ms to 1 s. */
export function checkingIntervalMs(limits: HttpLimits): number {
  return Math.max(
    100,
    Math.min(1000, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)),
  );
}

function writeClientError(socket: Socket, status: number, code: string, message: string): void {
  const body = JSON.stringify({ code, message, request_id: '' });
  const reason =
    status === 408 ? 'Request Timeout' : status === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
  socket.write(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/**
 * Errors Node raises on the socket, outside any request: the timeouts above, oversized headers, unparseable HTTP.
 * The URL (and so the dialect) is unknown here, so the body is in DashScope's shape, the default for unknown paths.
 */
export function clientErrorHandler(limits: HttpLimits): (err: NodeJS.ErrnoException, socket: Socket) => void {
  return (err, socket) => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    if (socket.writable) {
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        timedOut.add(socket);
        writeClientError(
          socket,
          408,
          'RequestTimeOut',
          `the request was not received within ${limits.requestTimeoutMs} ms (REQUEST_BODY_TIMEOUT_MS), or its headers within ${limits.headersTimeoutMs} ms (REQUEST_HEADERS_TIMEOUT_MS)`,
        );
      } else if (err.code === 'HPE_HEADER_OVERFLOW') {
        writeClientError(socket, 431, 'InvalidParameter', 'the request headers are larger than 16 KiB');
      } else {
        writeClientError(socket, 400, 'InvalidParameter', 'the request is not valid HTTP/1.1');
      }
    }
    socket.destroy();
  };
}

/** The timeouts as Fastify server options (Fastify hands `http` to http.createServer). */
export function connectionOptions(limits: HttpLimits): {
  requestTimeout: number;
  connectionTimeout: number;
  keepAliveTimeout: number;
  http: ServerOptions;
  clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => void;
} {
  return {
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.idleTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: {
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: checkingIntervalMs(limits),
    },
    clientErrorHandler: clientErrorHandler(limits),
  };
}

/**
 * Errors Fastify answers before routing, in its own shape unless handled here: a path parameter over
 * maxParamLength (a task id, the only parameter) and an undecodable URL. Both are the caller's 400, in its dialect.
 */
export function frameworkErrorHandler(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  const path = request.url.split('?')[0] ?? '';
  let gwErr: GatewayError;
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH' && path.startsWith('/api/v1/tasks/')) {
    gwErr = invalidInput('task_id', TASK_ID_RULE);
  } else if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    gwErr = invalidInput('path', 'a path segment is longer than 100 characters');
  } else {
    gwErr = invalidInput('path', 'the URL path is not valid (bad percent-encoding)');
  }
  const rendered = renderError(gwErr, dialectFor(request.url), request.id);
  reply
    .code(rendered.status)
    .headers({ ...rendered.headers, 'x-request-id': request.id })
    .type('application/json')
    .send(rendered.body);
}

/**
 * A reply sent while the request body is still arriving closes the connection after a short linger, instead of
 * Node reading (and waiting for) the rest of the body to keep the connection alive.
 */
export function closeUnreadBodies(app: FastifyInstance): void {
  app.lifecycle.onSend((request, reply) => {
    const socket = request.raw.socket;
    if (request.raw.complete || !socket || socket.destroyed) return;
    reply.header('connection', 'close');
    // With `Connection: close` Node ends the socket once the reply is written, through destroySoon(), which
    // destroys it as soon as the FIN is out. This socket is closing anyway; let it linger first (see LINGER_MS).
    socket.destroySoon = () => {
      if (socket.destroyed) return;
      socket.end();
      const timer = setTimeout(() => socket.destroy(), LINGER_MS);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
    };
  });
}
