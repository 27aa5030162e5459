/**
 * A validating scanner for DashScope embedding replies that does not materialise the vectors.
 *
 * Why: a 10 × 1024 reply is ~200 KB of decimal floats. JSON.parse + JSON.stringify of that costs more than
 * the whole proxy hop, and the gateway only needs to reorder items and re-wrap them. So the scanner walks the
 * bytes once, checks that the document is well-formed JSON (strict on output), and records for each item its
 * index and the byte range of its `embedding` array (plus the raw bytes of any other keys, e.g.
 * `sparse_embedding`). Callers splice those byte ranges into the reply they build.
 *
 * Shapes handled (see README "Upstream contract"):
 *   text-embedding:       {"output":{"embeddings":[{"embedding":[..],"text_index":0,...}]},"usage":{..},"request_id":".."}
 *   multimodal-embedding: {"output":{"embeddings":[{"embedding":[..],"index":0,"type":"text"}]},...}
 *   ONE-PEACE:            {"output":{"embedding":[..]},"usage":{..},"request_id":".."}
 */

export class ScanError extends Error {
  constructor(message: string, at: number) {
    super(`${message} at byte ${at}`);
    this.name = 'ScanError';
  }
}

/** A byte range [start, end) in the scanned buffer. */
export interface Span {
  start: number;
  end: number;
}

export interface ScannedItem {
  /** `text_index` (text) or `index` (multimodal); -1 if absent. */
  index: number;
  /** The `[ ... ]` of `embedding`, or undefined when the item has none (sparse-only output). */
  embedding: Span | undefined;
  /** Number of elements in `embedding`. */
  dims: number;
  /** Other keys of the item, raw: [key, value span]. */
  extras: [string, Span][];
}

export interface ScannedEmbeddingReply {
  items: ScannedItem[];
  /** ONE-PEACE's single fused vector (`output.embedding`). */
  fused: { embedding: Span; dims: number } | undefined;
  usage: Record<string, unknown> | undefined;
  requestId: string | undefined;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}
function isDigit(c: number): boolean {
  return c >= ZERO && c <= NINE;
}

class Cursor {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  fail(what: string): never {
    throw new ScanError(what, this.pos);
  }

  ws(): void {
    const b = this.buf;
    while (this.pos < b.length && isWs(b[this.pos]!)) this.pos++;
  }

  peek(): number {
    this.ws();
    if (this.pos >= this.buf.length) this.fail('unexpected end of input');
    return this.buf[this.pos]!;
  }

  expect(c: number): void {
    if (this.peek() !== c) this.fail(`expected '${String.fromCharCode(c)}'`);
    this.pos++;
  }

  /** Reads a string token and returns its decoded value. */
  string(): string {
    this.expect(QUOTE);
    const b = this.buf;
    const start = this.pos;
    let escaped = false;
    for (;;) {
      if (this.pos >= b.length) this.fail('unterminated string');
      const c = b[this.pos]!;
      if (c === QUOTE) break;
      if (c < 0x20) this.fail('control character in string');
      if (c === BACKSLASH) {
        escaped = true;
        this.pos += 2;
        continue;
      }
      this.pos++;
    }
    const end = this.pos;
    this.pos++;
    if (!escaped) return b.toString('utf8', start, end);
    try {
      return JSON.parse(b.toString('utf8', start - 1, end + 1)) as string;
    } catch {
      return this.fail('bad string escape');
    }
  }

  /** Skips one number, enforcing the JSON number grammar. */
  number(): void {
    const b = this.buf;
    let p = this.pos;
    if (b[p] === MINUS) p++;
    if (b[p] === ZERO) p++;
    else if (isDigit(b[p] ?? -1)) while (isDigit(b[p] ?? -1)) p++;
    else this.fail('bad number');
    if (b[p] === DOT) {
      p++;
      if (!isDigit(b[p] ?? -1)) this.fail('bad number fraction');
      while (isDigit(b[p] ?? -1)) p++;
    }
    const e = b[p];
    if (e === 0x65 || e === 0x45) {
      p++;
      if (b[p] === PLUS || b[p] === MINUS) p++;
      if (!isDigit(b[p] ?? -1)) this.fail('bad number exponent');
      while (isDigit(b[p] ?? -1)) p++;
    }
    this.pos = p;
  }

  /** Reads a non-negative integer. */
  integer(): number {
    this.peek();
    const start = this.pos;
    this.number();
    const n = Number(this.buf.toString('latin1', start, this.pos));
    if (!Number.isSafeInteger(n) || n < 0) this.fail('expected a non-negative integer');
    return n;
  }

  literal(word: string): void {
    for (let i = 0; i < word.length; i++) {
      if (this.buf[this.pos + i] !== word.charCodeAt(i)) this.fail(`expected ${word}`);
    }
    this.pos += word.length;
  }

  /** Skips any JSON value, validating it; returns its span. */
  value(): Span {
    const c = this.peek();
    const start = this.pos;
    if (c === LBRACE) {
      this.pos++;
      if (this.peek() === RBRACE) this.pos++;
      else
        for (;;) {
          this.string();
          this.expect(COLON);
          this.value();
          const d = this.peek();
          this.pos++;
          if (d === RBRACE) break;
          if (d !== COMMA) this.fail("expected ',' or '}'");
        }
    } else if (c === LBRACKET) {
      this.pos++;
      if (this.peek() === RBRACKET) this.pos++;
      else
        for (;;) {
          this.value();
          const d = this.peek();
          this.pos++;
          if (d === RBRACKET) break;
          if (d !== COMMA) this.fail("expected ',' or ']'");
        }
    } else if (c === QUOTE) this.string();
    else if (c === 0x74) this.literal('true');
    else if (c === 0x66) this.literal('false');
    else if (c === 0x6e) this.literal('null');
    else this.number();
    return { start, end: this.pos };
  }

  /** An array of numbers only (the hot loop); returns its span and length. */
  numberArray(): { span: Span; count: number } {
    this.expect(LBRACKET);
    const start = this.pos - 1;
    const b = this.buf;
    let count = 0;
    this.ws();
    if (b[this.pos] === RBRACKET) {
      this.pos++;
      return { span: { start, end: this.pos }, count };
    }
    for (;;) {
      this.ws();
      this.number();
      count++;
      let d = b[this.pos];
      if (d !== COMMA && d !== RBRACKET) {
        this.ws();
        d = b[this.pos];
      }
      this.pos++;
      if (d === RBRACKET) break;
      if (d !== COMMA) this.fail("expected ',' or ']' in embedding");
    }
    return { span: { start, end: this.pos }, count };
  }

  /** Iterates the keys of an object, calling `onKey` positioned at each value; onKey must consume it. */
  object(onKey: (key: string) => void): void {
    this.expect(LBRACE);
    if (this.peek() === RBRACE) {
      this.pos++;
      return;
    }
    for (;;) {
      const key = this.string();
      this.expect(COLON);
      onKey(key);
      const d = this.peek();
      this.pos++;
      if (d === RBRACE) return;
      if (d !== COMMA) this.fail("expected ',' or '}'");
    }
  }

  array(onItem: () => void): void {
    this.expect(LBRACKET);
    if (this.peek() === RBRACKET) {
      this.pos++;
      return;
    }
    for (;;) {
      onItem();
      const d = this.peek();
      this.pos++;
      if (d === RBRACKET) return;
      if (d !== COMMA) this.fail("expected ',' or ']'");
    }
  }

  end(): void {
    this.ws();
    if (this.pos !== this.buf.length) this.fail('trailing data');
  }
}

function scanItem(cur: Cursor): ScannedItem {
  const item: ScannedItem = { index: -1, embedding: undefined, dims: 0, extras: [] };
  cur.object((key) => {
    if (key === 'embedding') {
      const { span, count } = cur.numberArray();
      item.embedding = span;
      item.dims = count;
    } else if (key === 'text_index' || key === 'index') {
      item.index = cur.integer();
    } else {
      item.extras.push([key, cur.value()]);
    }
  });
  return item;
}

/** Scan an embedding reply. Throws ScanError on anything that is not well-formed JSON of the expected shape. */
export function scanEmbeddingReply(buf: Buffer): ScannedEmbeddingReply {
  const cur = new Cursor(buf);
  const out: ScannedEmbeddingReply = { items: [], fused: undefined, usage: undefined, requestId: undefined };
  let sawOutput = false;
  cur.object((key) => {
    if (key === 'output') {
      sawOutput = true;
      cur.object((k) => {
        if (k === 'embeddings') cur.array(() => out.items.push(scanItem(cur)));
        else if (k === 'embedding') {
          const { span, count } = cur.numberArray();
          out.fused = { embedding: span, dims: count };
        } else cur.value();
      });
    } else if (key === 'usage') {
      const span = cur.value();
      const usage: unknown = JSON.parse(buf.toString('utf8', span.start, span.end));
      if (usage !== null && typeof usage === 'object' && !Array.isArray(usage)) {
        out.usage = usage as Record<string, unknown>;
      }
    } else if (key === 'request_id') {
      if (cur.peek() === QUOTE) out.requestId = cur.string();
      else cur.value();
    } else cur.value();
  });
  cur.end();
  if (!sawOutput) throw new ScanError('no "output" in reply', 0);
  return out;
}

/** Decode the numbers of an embedding span to float32 (for base64 output). */
export function spanToFloat32(buf: Buffer, span: Span): Float32Array {
  // The span was validated as an array of JSON numbers, so JSON.parse cannot fail and yields number[].
  return new Float32Array(JSON.parse(buf.toString('latin1', span.start, span.end)) as number[]);
}
