/**
 * The upstream key must never reach a caller. Error bodies are rebuilt from parsed fields and scrubbed there
 * (src/upstream/errors.ts); a 2xx body passed through as bytes (a task, a generation reply) is scrubbed here, so
 * an upstream that echoes the key (a task's input URL, a model's output) does not hand it on.
 */
const REDACTED = Buffer.from('[redacted]');

/** `body` with every occurrence of `secret` replaced by `[redacted]`; the same Buffer when there is none. */
export function scrubSecret(body: Buffer, secret: string): Buffer {
  if (secret === '') return body;
  const needle = Buffer.from(secret);
  let at = body.indexOf(needle);
  if (at < 0) return body;
  const parts: Buffer[] = [];
  let from = 0;
  while (at >= 0) {
    parts.push(body.subarray(from, at), REDACTED);
    from = at + needle.length;
    at = body.indexOf(needle, from);
  }
  parts.push(body.subarray(from));
  return Buffer.concat(parts);
}
