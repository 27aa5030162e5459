/**
 * A JSON reply built from Buffer parts: the rendered text around the vectors and the vectors' bytes themselves
 * (spans of DashScope's reply, or the cache's stored text), written to the socket as one corked writev instead of
 * being copied into one Buffer first.
 *
 * Why not Buffer.concat: a 10 × 1,024 float reply is about 216 KB. A fresh Buffer of that size per request is
 * memory outside V8's heap that V8 still accounts for, and every 64 MB of it starts a full mark-compact; at a few
 * thousand replies a second that was a major GC every ~150 ms, with V8's marking threads taking a third of a core
 * (perf, bench/README.md "Reply bodies without a copy"). The parts are already in memory; the copy bought nothing.
 */
import { Readable, type Writable } from 'node:stream';
import type { FastifyReply } from 'fastify';

export type Parts = readonly Buffer[];

/** The parts as one Buffer (for tests and small bodies); a single part is returned as is. */
export function joinParts(parts: Parts): Buffer {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * A readable whose `pipe` writes every part to the response while it is corked, so Node sends the head and the
 * parts in one writev, then ends. Fastify sends any stream payload by `payload.pipe(res)` after setting the
 * headers; the stream then ends itself so Fastify's end-of-stream watch sees it finish.
 */
class PartsStream extends Readable {
  constructor(private parts: Parts) {
    super();
  }

  override _read(): void {
    // Only reached if something other than Fastify reads the stream: pipe() below hands the parts over itself.
    for (const p of this.parts) this.push(p);
    this.push(null);
  }

  override pipe<T extends NodeJS.WritableStream>(dest: T, options?: { end?: boolean }): T {
    const parts = this.parts;
    this.parts = [];
    const out = dest as unknown as Writable;
    out.cork();
    for (const p of parts) out.write(p);
    // ServerResponse.end() uncorks fully; without an end (Fastify's trailer mode) uncork ourselves.
    if (options?.end === false) out.uncork();
    else out.end();
    this.push(null);
    this.resume();
    return dest;
  }
}

/**
 * Below this a reply is joined into one Buffer: copying a few KB costs less than a stream object and its
 * end-of-stream watch (measured at 1 × 1,024 float, about 21 KB), and V8's external-memory trigger is far away.
 */
const JOIN_BELOW_BYTES = 64 * 1024;

/** Sends `parts` as an `application/json` reply with an exact Content-Length. */
export function sendJsonParts(reply: FastifyReply, parts: Parts): FastifyReply {
  let length = 0;
  for (const p of parts) length += p.length;
  reply.type('application/json');
  // One part (a pass-through upstream body) needs no stream: Fastify writes a Buffer in one go already.
  if (parts.length === 1 || length < JOIN_BELOW_BYTES) return reply.send(joinParts(parts));
  return reply.header('content-length', String(length)).send(new PartsStream(parts));
}
