/**
 * The binary entry format (float32 bit for bit, sparse bytes byte for byte, anything malformed a miss), the text
 * rendering of float32 values (reads back to the same bits), and the memory tier's byte bound under a flood.
 */
import { describe, expect, it } from 'vitest';
import {
  type CachedItem,
  decodeEntry,
  ENTRY_OVERHEAD,
  encodeEntry,
  entryBytes,
  renderFloatText,
} from '../../src/cache/entry.js';
import { MemoryStore } from '../../src/cache/memory-store.js';

/** Awkward float32 values: ±0, the smallest subnormal, the largest finite, values with long shortest decimals. */
function awkward(): Float32Array {
  const bits = new Uint32Array([
    0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007fffff, 0x00800000, 0x7f7fffff, 0xff7fffff,
    0x3f800001, 0x3eaaaaab, 0xbd4ccccd, 0x33d6bf95, 0x4b7fffff, 0x3c23d70a,
  ]);
  const f = new Float32Array(bits.buffer);
  const rnd = new Float32Array(1024);
  let s = 12345;
  for (let i = 0; i < rnd.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    rnd[i] = (s / 2 ** 32 - 0.5) * 0.2;
  }
  const out = new Float32Array(f.length + rnd.length);
  out.set(f);
  out.set(rnd, f.length);
  return out;
}

const bitsOf = (f: Float32Array): number[] => Array.from(new Uint32Array(new Float32Array(f).buffer));

describe('entry encoding', () => {
  it('round-trips float32 bit for bit and sparse JSON byte for byte', () => {
    const dense = awkward();
    const sparse = Buffer.from('[{"index":7,"value":0.25,"token":"cat"},{"index":9,"value":-1.5e-7}]');
    const item: CachedItem = { dense, sparse, tokens: 12.5, type: 'image', text: Buffer.from('ignored') };
    const enc = encodeEntry(item);
    // The memory-only text is not encoded.
    expect(enc.length).toBe(4 + 4 + dense.length * 4 + 4 + sparse.length + 8 + 2 + 5);
    // Decode from an odd offset of a larger buffer, as a socket's pooled Buffer may be.
    const host = Buffer.alloc(enc.length + 3);
    enc.copy(host, 3);
    const back = decodeEntry(host.subarray(3));
    expect(back).toBeDefined();
    expect(bitsOf(back!.dense!)).toEqual(bitsOf(dense));
    expect(back!.sparse!.equals(sparse)).toBe(true);
    expect(back!.tokens).toBe(12.5);
    expect(back!.type).toBe('image');
    expect(back!.text).toBeUndefined();
  });

  it('round-trips partial entries (sparse only, dense only, nothing optional)', () => {
    const s: CachedItem = { dense: undefined, sparse: Buffer.from('[]'), tokens: undefined, type: undefined };
    expect(decodeEntry(encodeEntry(s))).toEqual(s);
    const d: CachedItem = {
      dense: new Float32Array([1.5, -2]),
      sparse: undefined,
      tokens: 3,
      type: undefined,
    };
    const back = decodeEntry(encodeEntry(d))!;
    expect(Array.from(back.dense!)).toEqual([1.5, -2]);
    expect(back.tokens).toBe(3);
  });

  it('treats anything malformed as a miss', () => {
    const good = encodeEntry({
      dense: new Float32Array([1, 2, 3]),
      sparse: Buffer.from('[1]'),
      tokens: 1,
      type: 'x',
    });
    expect(decodeEntry(good)).toBeDefined();
    for (let cut = 0; cut < good.length; cut++) expect(decodeEntry(good.subarray(0, cut))).toBeUndefined();
    expect(decodeEntry(Buffer.concat([good, Buffer.from([0])]))).toBeUndefined();
    const otherVersion = Buffer.from(good);
    otherVersion[0] = 2;
    expect(decodeEntry(otherVersion)).toBeUndefined();
    const unknownFlag = Buffer.from(good);
    unknownFlag[1] = unknownFlag[1]! | 0x80;
    expect(decodeEntry(unknownFlag)).toBeUndefined();
    const bigCount = Buffer.from(good);
    bigCount.writeUInt32LE(0xffffffff, 4);
    expect(decodeEntry(bigCount)).toBeUndefined();
  });
});

describe('renderFloatText', () => {
  it('prints values that JSON.parse reads back to the same float32 bits, as JSON.stringify prints them', () => {
    const values = awkward();
    const text = renderFloatText(values).toString('latin1');
    const parsed = JSON.parse(text) as number[];
    expect(bitsOf(new Float32Array(parsed))).toEqual(bitsOf(values));
    // Shortest repr of the widened double: identical to JSON.stringify except that -0 keeps its sign.
    const expected = JSON.stringify(Array.from(values)).replace(/^\[0,0,/, '[0,-0,');
    expect(text).toBe(expected);
  });
});

describe('memory tier', () => {
  const item = (n: number): CachedItem => ({
    dense: new Float32Array(n),
    sparse: undefined,
    tokens: undefined,
    type: undefined,
  });

  it('never holds more bytes than its bound under a flood of distinct keys', () => {
    const max = 1024 * 1024;
    const store = new MemoryStore(max);
    let peak = 0;
    for (let i = 0; i < 20_000; i++) {
      store.set(`key-${i}`, item(1 + (i % 300)));
      peak = Math.max(peak, store.bytes);
    }
    expect(peak).toBeLessThanOrEqual(max);
    // Full (within one entry of the bound) and evicting, and the count matches the sum of what it holds.
    expect(peak).toBeGreaterThan(max - (ENTRY_OVERHEAD + 20 + 300 * 4));
    expect(store.evictions).toBe(20_000 - store.size);
    let sum = 0;
    for (let i = 20_000 - store.size; i < 20_000; i++) {
      const k = `key-${i}`;
      const got = store.get(k);
      expect(got).toBeDefined();
      sum += entryBytes(k, got!);
    }
    expect(sum).toBe(store.bytes);
    // An entry larger than the whole bound is not kept (and evicts nothing).
    const before = store.size;
    store.set('huge', item(max));
    expect(store.get('huge')).toBeUndefined();
    expect(store.size).toBe(before);
  });

  it('evicts the least recently used entry, counting a get as a use', () => {
    const one = entryBytes('a', item(10));
    const store = new MemoryStore(one * 3);
    store.set('a', item(10));
    store.set('b', item(10));
    store.set('c', item(10));
    expect(store.get('a')).toBeDefined();
    store.set('d', item(10));
    expect(store.get('b')).toBeUndefined();
    expect(store.get('a')).toBeDefined();
    expect(store.get('c')).toBeDefined();
    expect(store.get('d')).toBeDefined();
    // Replacing an entry re-counts its bytes instead of adding them.
    store.set('a', item(10));
    expect(store.bytes).toBe(one * 3);
  });
});
