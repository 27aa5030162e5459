/**
 * The bench's upstream: a node:net server that answers every request with bytes prepared before the first
 * request arrived, so the upstream costs next to nothing and the ratios measure the proxies, not the emulator
 * (the emulator in fast mode spent ~1.4 ms of CPU per 10×1024 reply, more than the reference proxy itself).
 *
 * It reads a request only as far as it must: the head up to CRLFCRLF, `content-length` from it, then that many
 * body bytes. The reply is chosen by the body (the bench sends a handful of fixed bodies) and written as one
 * Buffer, head and body together. Keep-alive and pipelining work because the loop consumes exactly one request
 * at a time from the connection's buffer. There is no chunked request support: the gateway, the reference and
 * autocannon all send content-length bodies.
 *
 * The replies come from the emulator itself (`prepareReplies`), so the vectors the bench checks are still the
 * emulator's deterministic ones.
 */
import { createServer, type Server, type Socket } from 'node:net';

export interface StaticUpstream {
  port: number;
  close(): Promise<void>;
}

/** An upstream answer: status and JSON body text. */
export interface StaticReply {
  status: number;
  body: string;
}

const HEAD_END = Buffer.from('\r\n\r\n');
/** Request heads longer than this are not a bench client: the connection is dropped. */
const MAX_HEAD = 64 * 1024;

function response(reply: StaticReply, requestId: string): Buffer {
  const body = Buffer.from(reply.body);
  const head =
    `HTTP/1.1 ${reply.status} ${reply.status === 200 ? 'OK' : 'Error'}\r\n` +
    'content-type: application/json\r\n' +
    `content-length: ${body.length}\r\n` +
    `x-request-id: ${requestId}\r\n` +
    'connection: keep-alive\r\n\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

function contentLength(head: string): number {
  const m = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
  return m ? Number(m[1]) : 0;
}

/**
 * Serves `replies` (request body → reply) on a loopback port. A body not in the table gets a 404 JSON error, so
 * a case whose bytes differ from what was prepared fails its check loudly instead of being measured.
 */
export async function startStaticUpstream(
  replies: ReadonlyMap<string, StaticReply>,
  port = 0,
): Promise<StaticUpstream> {
  const prepared = new Map<string, Buffer>();
  let n = 0;
  for (const [body, reply] of replies) prepared.set(body, response(reply, `static-${++n}`));
  const miss = response(
    { status: 404, body: '{"code":"NotFound","message":"static upstream: no reply prepared for this body"}' },
    'static-miss',
  );

  const serve = (socket: Socket): void => {
    socket.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      for (;;) {
        const headEnd = buf.indexOf(HEAD_END);
        if (headEnd < 0) {
          if (buf.length > MAX_HEAD) socket.destroy();
          return;
        }
        const bodyStart = headEnd + HEAD_END.length;
        const length = contentLength(buf.toString('latin1', 0, headEnd));
        if (buf.length < bodyStart + length) return;
        const body = buf.toString('utf8', bodyStart, bodyStart + length);
        buf = buf.subarray(bodyStart + length);
        socket.write(prepared.get(body) ?? miss);
      }
    });
    socket.on('error', () => socket.destroy());
  };

  const server: Server = createServer(serve);
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('static upstream: no TCP address');
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** One request the bench will send upstream, whose reply is prepared at start-up. */
export interface UpstreamRequest {
  path: string;
  body: string;
}

/**
 * Asks a real emulator (started here, in this process, and closed again) for its answer to each request, so the
 * static upstream replays exactly what the emulator would have said.
 */
export async function prepareReplies(
  apiKey: string,
  requests: readonly UpstreamRequest[],
): Promise<Map<string, StaticReply>> {
  const { startEmulator } = await import('../src/emulator/server.js');
  const emu = await startEmulator({ apiKey });
  try {
    const replies = new Map<string, StaticReply>();
    for (const r of requests) {
      const res = await fetch(`${emu.url}${r.path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
        body: r.body,
        signal: AbortSignal.timeout(10_000),
      });
      replies.set(r.body, { status: res.status, body: await res.text() });
    }
    return replies;
  } finally {
    await emu.close();
  }
}
