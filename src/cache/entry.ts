/**
 * A cached embedding and its compact binary form (what Redis stores).
 *
 * The dense vector is kept as float32, which is what DashScope computes: its decimal text is a float32 printed as
 * the shortest decimal of the widened double, so the float32 values are the whole truth and 4 bytes each instead
 * of ~20. The sparse form is kept as the raw JSON bytes DashScope sent, so it is served byte for byte.
 *
 * Layout (all integers little-endian):
 *   u8  format version (ENTRY_VERSION; anything else decodes as a miss)
 *   u8  flags: 1 dense, 2 sparse, 4 tokens, 8 type; other bits must be 0
 *   u16 reserved, 0
 *   [dense]  u32 count, count × f32
 *   [sparse] u32 length, bytes (JSON)
 *   [tokens] f64 (ONE-PEACE reports a weighted, possibly fractional, usage)
 *   [type]   u16 length, bytes (UTF-8; the multimodal item's `type`, e.g. "text", "fusion")
 * A buffer that does not decode exactly (short, trailing bytes, unknown flags) is treated as a miss.
 */
import { endianness } from 'node:os';

export const ENTRY_VERSION = 1;

const DENSE = 1;
const SPARSE = 2;
const TOKENS = 4;
const TYPE = 8;
const LITTLE_ENDIAN = endianness() === 'LE';

export interface CachedItem {
  /** The dense vector exactly as DashScope returned it, as float32. */
  dense: Float32Array | undefined;
  /** The raw JSON value of `sparse_embedding`, as DashScope sent it. */
  sparse: Buffer | undefined;
  /** Tokens DashScope billed for this item, when one call carried only it; informational (never re-billed). */
  tokens: number | undefined;
  /** A multimodal item's `type` as DashScope sent it. */
  type: string | undefined;
  /**
   * The dense vector's `[...]` text, byte for byte as DashScope (or an earlier render) wrote it: float replies
   * splice it instead of printing 1,024 numbers per hit. Kept in the memory tier only, never encoded.
   */
  text?: Buffer | undefined;
}

export function encodeEntry(item: CachedItem): Buffer {
  const sparse = item.sparse;
  const type = item.type === undefined ? undefined : Buffer.from(item.type, 'utf8');
  if (type && type.length > 0xffff) throw new RangeError('type is too long to cache');
  let size = 4;
  let flags = 0;
  if (item.dense) {
    flags |= DENSE;
    size += 4 + item.dense.length * 4;
  }
  if (sparse) {
    flags |= SPARSE;
    size += 4 + sparse.length;
  }
  if (item.tokens !== undefined) {
    flags |= TOKENS;
    size += 8;
  }
  if (type) {
    flags |= TYPE;
    size += 2 + type.length;
  }
  const out = Buffer.allocUnsafe(size);
  out.writeUInt8(ENTRY_VERSION, 0);
  out.writeUInt8(flags, 1);
  out.writeUInt16LE(0, 2);
  let p = 4;
  if (item.dense) {
    const d = item.dense;
    out.writeUInt32LE(d.length, p);
    p += 4;
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), p);
      p += d.byteLength;
    } else {
      for (let i = 0; i < d.length; i++, p += 4) out.writeFloatLE(d[i]!, p);
    }
  }
  if (sparse) {
    out.writeUInt32LE(sparse.length, p);
    p += 4;
    p += sparse.copy(out, p);
  }
  if (item.tokens !== undefined) {
    out.writeDoubleLE(item.tokens, p);
    p += 8;
  }
  if (type) {
    out.writeUInt16LE(type.length, p);
    p += 2;
    p += type.copy(out, p);
  }
  return out;
}

/** The entry in `buf`, or undefined when it is not exactly one well-formed entry of this version. */
export function decodeEntry(buf: Buffer): CachedItem | undefined {
  if (buf.length < 4 || buf[0] !== ENTRY_VERSION || buf.readUInt16LE(2) !== 0) return undefined;
  const flags = buf[1]!;
  if ((flags & ~(DENSE | SPARSE | TOKENS | TYPE)) !== 0) return undefined;
  let p = 4;
  const item: CachedItem = { dense: undefined, sparse: undefined, tokens: undefined, type: undefined };
  if (flags & DENSE) {
    if (p + 4 > buf.length) return undefined;
    const count = buf.readUInt32LE(p);
    p += 4;
    if (p + count * 4 > buf.length) return undefined;
    // Copied into a fresh, aligned array: a Buffer from a socket may sit at any offset of a shared pool.
    const dense = new Float32Array(count);
    if (LITTLE_ENDIAN) new Uint8Array(dense.buffer).set(buf.subarray(p, p + count * 4));
    else for (let i = 0; i < count; i++) dense[i] = buf.readFloatLE(p + i * 4);
    p += count * 4;
    item.dense = dense;
  }
  if (flags & SPARSE) {
    if (p + 4 > buf.length) return undefined;
    const len = buf.readUInt32LE(p);
    p += 4;
    if (p + len > buf.length) return undefined;
    item.sparse = Buffer.from(buf.subarray(p, p + len));
    p += len;
  }
  if (flags & TOKENS) {
    if (p + 8 > buf.length) return undefined;
    item.tokens = buf.readDoubleLE(p);
    p += 8;
  }
  if (flags & TYPE) {
    if (p + 2 > buf.length) return undefined;
    const len = buf.readUInt16LE(p);
    p += 2;
    if (p + len > buf.length) return undefined;
    item.type = buf.toString('utf8', p, p + len);
    p += len;
  }
  return p === buf.length ? item : undefined;
}

/**
 * A float32 vector as JSON text: each value widened to double and printed as the shortest decimal that reads
 * back as that double (what DashScope and JSON.stringify print), so parsing it and rounding to float32 gives the
 * same bits. -0 is printed as `-0` (JSON.stringify would lose its sign).
 */
export function renderFloatText(values: Float32Array): Buffer {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    parts[i] = v === 0 && Object.is(v, -0) ? '-0' : String(v);
  }
  return Buffer.from(`[${parts.join(',')}]`, 'latin1');
}

/** Bytes an entry holds in memory (what the memory tier's bound counts), plus a fixed overhead per entry. */
export const ENTRY_OVERHEAD = 256;
export function entryBytes(key: string, item: CachedItem): number {
  return (
    ENTRY_OVERHEAD +
    key.length * 2 +
    (item.dense?.byteLength ?? 0) +
    (item.sparse?.length ?? 0) +
    (item.text?.length ?? 0) +
    (item.type?.length ?? 0) * 2
  );
}
