/**
 * Hostile input, as a caller with a valid key would send it, against a REAL gateway process (BODY_LIMIT_BYTES
 * 1 MiB so a body at the limit stays small) pointed at the emulator in this process. While the cases run, a
 * prober asks /healthz every 20 ms on a connection of its own. For every case:
 *   - the documented status (a 4xx for invalid input);
 *   - no upstream call where the input is invalid (the emulator's recorded requests), exactly one where it is valid;
 *   - no probe slower than 100 ms and none failed: no single request stalls the gateway.
 *
 * Cases marked `dependsOn` assert the final behaviour of work done on other branches (issue 7): the tokenizer
 * worker pool (src/tokens) and bounded media parsing (src/media). Without that work they fail, on the probe bound
 * (tokenizing on the event loop) or the status (a WAV header's claims believed).
 */
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Emulator, startEmulator } from '../../src/emulator/server.js';
import { dataUri, png, wav } from '../fixtures/media/index.js';
import {
  CALLER_KEY,
  type GatewayProcess,
  HealthProbe,
  RawConnection,
  startGateway,
  UPSTREAM_KEY,
} from './support.js';

const BODY_LIMIT = 1024 * 1024;
const PROBE_BOUND_MS = 100;

const OPENAI = '/v1/embeddings';
const CHAT = '/v1/chat/completions';
const TEXT = '/api/v1/services/embeddings/text-embedding/text-embedding';
const MULTIMODAL = '/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding';
const GENERATION = '/api/v1/services/aigc/multimodal-generation/generation';
const ONE_PEACE = 'multimodal-embedding-one-peace-v1';

type Dependency = 'tokenizer pool (src/tokens)' | 'bounded media parsing (src/media)';

interface HostileCase {
  name: string;
  method?: 'GET' | 'POST';
  path: string;
  /** A JSON value (serialised here), or the exact body bytes. */
  body?: unknown;
  raw?: string | Buffer;
  /** Extra headers; the caller key and `content-type: application/json` are sent unless overridden. */
  headers?: Record<string, string>;
  /** Send these bytes over a raw socket instead (what HTTP clients refuse to send); the whole request. */
  wire?: string | Buffer;
  status: number;
  /** Upstream calls expected: 0 for anything invalid. */
  upstream: number;
  message?: RegExp;
  dependsOn?: Dependency;
}

// ---- building blocks -----------------------------------------------------------------------------------------

const nestedObjects = (levels: number): string => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
const nestedArrays = (levels: number): string => `${'['.repeat(levels)}${']'.repeat(levels)}`;
const json = (v: unknown): string => JSON.stringify(v);

/** A body of exactly `bytes` bytes: `head` then spaces then `tail` (JSON allows whitespace anywhere between). */
function padded(head: string, tail: string, bytes: number): string {
  return `${head}${' '.repeat(bytes - Buffer.byteLength(head) - Buffer.byteLength(tail))}${tail}`;
}

/** A WAV whose RIFF and data chunk sizes claim 4 GiB, with one second of real samples behind them. */
function wavClaiming4GiB(): Buffer {
  const b = wav(1);
  b.writeUInt32LE(0xffffffff, 4);
  b.writeUInt32LE(0xffffffff, 40);
  return b;
}

/** A FLAC stream header: `fLaC` and one STREAMINFO block claiming `totalSamples` at `rate` Hz, no frames. */
function flacClaiming(totalSamples: bigint, rate = 8000): Buffer {
  const info = Buffer.alloc(34);
  info.writeUInt16BE(4096, 0); // min block size
  info.writeUInt16BE(4096, 2); // max block size
  // bytes 4..9: min/max frame size, 0 = unknown
  const packed = (BigInt(rate) << 44n) | (0n << 41n) | (15n << 36n) | (totalSamples & 0xfffffffffn);
  info.writeBigUInt64BE(packed, 10); // 20 bits rate, 3 bits channels-1, 5 bits bits-per-sample-1, 36 bits samples
  const header = Buffer.from([0x80, 0, 0, 34]); // last block, STREAMINFO, length 34
  return Buffer.concat([Buffer.from('fLaC', 'latin1'), header, info]);
}

/** A FLAC whose second metadata block claims 16 MiB that are not there. */
function flacWithLyingBlock(): Buffer {
  const first = flacClaiming(8000n);
  first[4] = 0x00; // STREAMINFO no longer the last block
  const lying = Buffer.from([0x84, 0xff, 0xff, 0xff]); // last block, VORBIS_COMMENT, length 16 MiB - 1
  return Buffer.concat([first, lying, Buffer.alloc(64)]);
}

const audioItem = (bytes: Buffer, mime: string) => ({
  model: ONE_PEACE,
  input: { contents: [{ audio: dataUri(mime, bytes) }] },
});

// ---- the corpus ----------------------------------------------------------------------------------------------

const CASES: HostileCase[] = [
  // Deep JSON, in every kind of field that is passed on.
  {
    name: 'deep JSON (5,000 levels) in native text-embedding parameters',
    path: TEXT,
    raw: `{"model":"text-embedding-v4","input":{"texts":["a"]},"parameters":${nestedObjects(5000)}}`,
    status: 400,
    upstream: 0,
    message: /deeper than 64 levels.*JSON_MAX_DEPTH/,
  },
  {
    name: 'deep JSON (5,000 levels) in chat message content',
    path: CHAT,
    raw: `{"model":"qwen-vl-plus","messages":[{"role":"user","content":${nestedArrays(5000)}}]}`,
    status: 400,
    upstream: 0,
    message: /JSON_MAX_DEPTH/,
  },
  {
    name: 'deep JSON (5,000 levels) in an extra generation field',
    path: GENERATION,
    raw: `{"model":"qwen-vl-plus","input":{"messages":[{"role":"user","content":"hi"}]},"x":${nestedObjects(5000)}}`,
    status: 400,
    upstream: 0,
    message: /JSON_MAX_DEPTH/,
  },
  {
    name: '100,000 unclosed brackets (deep and truncated)',
    path: OPENAI,
    raw: `{"model":"text-embedding-v4","input":${'['.repeat(100_000)}`,
    status: 400,
    upstream: 0,
    message: /JSON_MAX_DEPTH/,
  },
  {
    name: 'brackets and escaped quotes inside a string are not nesting',
    path: OPENAI,
    body: { model: 'text-embedding-v4', input: `\\"${'['.repeat(3000)}\\\\"${'{'.repeat(3000)}` },
    status: 200,
    upstream: 1,
  },
  {
    name: 'nesting at the limit (64 levels) is served',
    path: TEXT,
    raw: `{"model":"text-embedding-v4","input":{"texts":["a"]},"parameters":{"x":${nestedObjects(62)}}}`,
    status: 200,
    upstream: 1,
  },

  // Big strings, many inputs, long texts.
  {
    name: 'a huge string (900 KB) as the model name: the error quotes at most 2,048 characters of it',
    path: OPENAI,
    body: { model: 'm'.repeat(900_000), input: 'x' },
    status: 400,
    upstream: 0,
    message: /^.{0,2400}$/s,
  },
  {
    name: 'a huge string (100 KB of one letter) as the text',
    path: OPENAI,
    body: { model: 'text-embedding-v4', input: 'a'.repeat(100_000) },
    status: 400,
    upstream: 0,
    // Counted in time: "is N tokens long; … at most 8192"; else "could not be checked against the 8192-token limit".
    message: /8192/,
    dependsOn: 'tokenizer pool (src/tokens)',
  },
  {
    name: '2,049 inputs (one over MAX_INPUTS_PER_REQUEST)',
    path: OPENAI,
    body: { model: 'text-embedding-v4', input: Array.from({ length: 2049 }, () => 'x') },
    status: 400,
    upstream: 0,
    message: /at most 2048/,
  },
  {
    name: 'a text just under the token limit (8,000 words) is served',
    path: OPENAI,
    body: { model: 'text-embedding-v4', input: 'hello '.repeat(8000) },
    status: 200,
    upstream: 1,
    dependsOn: 'tokenizer pool (src/tokens)',
  },
  {
    name: 'a text just over the token limit (9,000 words)',
    path: OPENAI,
    body: { model: 'text-embedding-v4', input: 'hello '.repeat(9000) },
    status: 400,
    upstream: 0,
    message: /9001 tokens.*at most 8192/,
    dependsOn: 'tokenizer pool (src/tokens)',
  },

  // Media.
  {
    name: 'a data URI with a 160 KB whitespace payload',
    path: MULTIMODAL,
    body: {
      model: ONE_PEACE,
      input: { contents: [{ image: `data:image/png;base64,${' '.repeat(160_000)}` }] },
    },
    status: 400,
    upstream: 0,
    dependsOn: 'bounded media parsing (src/media)',
  },
  {
    name: 'a WAV whose header claims 4 GiB',
    path: MULTIMODAL,
    body: audioItem(wavClaiming4GiB(), 'audio/wav'),
    status: 400,
    upstream: 0,
    dependsOn: 'bounded media parsing (src/media)',
  },
  {
    name: 'a FLAC whose STREAMINFO claims 2^36 samples',
    path: MULTIMODAL,
    body: audioItem(flacClaiming(0xfffffffffn), 'audio/flac'),
    status: 400,
    upstream: 0,
    dependsOn: 'bounded media parsing (src/media)',
  },
  {
    name: 'a FLAC with a metadata block claiming 16 MiB that is not there',
    path: MULTIMODAL,
    body: audioItem(flacWithLyingBlock(), 'audio/flac'),
    status: 400,
    upstream: 0,
    dependsOn: 'bounded media parsing (src/media)',
  },
  {
    name: 'a file:// image',
    path: MULTIMODAL,
    body: { model: ONE_PEACE, input: { contents: [{ image: 'file:///etc/passwd' }] } },
    status: 400,
    upstream: 0,
  },
  {
    name: 'a local path as an image',
    path: MULTIMODAL,
    body: { model: ONE_PEACE, input: { contents: [{ image: '../../etc/passwd' }] } },
    status: 400,
    upstream: 0,
  },
  {
    name: 'a file:// batch input file',
    path: TEXT,
    headers: { 'x-dashscope-async': 'enable' },
    body: { model: 'text-embedding-async-v2', input: { url: 'file:///etc/passwd' } },
    status: 400,
    upstream: 0,
  },

  // Odd headers.
  {
    name: 'content-type text/plain',
    path: OPENAI,
    headers: { 'content-type': 'text/plain' },
    raw: json({ model: 'text-embedding-v4', input: 'x' }),
    status: 415,
    upstream: 0,
  },
  {
    name: 'a UTF-16 body labelled application/json; charset=utf-16',
    path: OPENAI,
    headers: { 'content-type': 'application/json; charset=utf-16' },
    raw: Buffer.from(json({ model: 'text-embedding-v4', input: 'x' }), 'utf16le'),
    status: 400,
    upstream: 0,
  },
  {
    name: 'a 10 KB bearer key',
    path: OPENAI,
    headers: { authorization: `Bearer ${'k'.repeat(10_000)}` },
    body: { model: 'text-embedding-v4', input: 'x' },
    status: 401,
    upstream: 0,
  },
  {
    name: 'headers over 16 KiB',
    path: OPENAI,
    headers: { 'x-padding': 'p'.repeat(20_000) },
    body: { model: 'text-embedding-v4', input: 'x' },
    status: 431,
    upstream: 0,
  },
  {
    name: 'Content-Length and Transfer-Encoding together (request smuggling)',
    path: OPENAI,
    wire: `POST ${OPENAI} HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer ${CALLER_KEY}\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    status: 400,
    upstream: 0,
  },
  {
    name: 'two different Content-Length headers',
    path: OPENAI,
    wire: `POST ${OPENAI} HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer ${CALLER_KEY}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}`,
    status: 400,
    upstream: 0,
  },
  {
    name: 'an x-request-id with spaces and markup is replaced, the request served',
    path: OPENAI,
    headers: { 'x-request-id': '<script>alert(1)</script> ../../x' },
    body: { model: 'text-embedding-v4', input: 'x' },
    status: 200,
    upstream: 1,
  },

  // Unicode.
  {
    name: 'a lone surrogate escape is passed on as it is',
    path: OPENAI,
    raw: '{"model":"text-embedding-v4","input":"a\\ud800b"}',
    status: 200,
    upstream: 1,
  },
  {
    name: 'NUL, bidi overrides, zero-width joiners and emoji sequences are served',
    path: OPENAI,
    body: { model: 'text-embedding-v4', input: 'a\u0000b \u202eevil\u202c \u200d\u200d 👩‍👩‍👧‍👦 🏳️‍🌈' },
    status: 200,
    upstream: 1,
  },
  {
    name: 'a text that NFC normalisation makes 5× longer in tokens (U+FB2C × 3,000)',
    path: OPENAI,
    body: { model: 'text-embedding-v4', input: '\ufb2c'.repeat(3000) },
    status: 400,
    upstream: 0,
    message: /accepts at most 8192/,
    dependsOn: 'tokenizer pool (src/tokens)',
  },

  // Bodies at and over the limit, and bytes that are not UTF-8.
  {
    name: 'a body of exactly BODY_LIMIT_BYTES (1 MiB, nearly all one string in parameters) is served',
    path: TEXT,
    raw: padded(
      '{"model":"text-embedding-v4","input":{"texts":["a"]},"parameters":{"x":"',
      `${'\\"'.repeat(1000)}"}}`,
      BODY_LIMIT,
    ).replace(/ {2}/g, '[]'),
    status: 200,
    upstream: 1,
  },
  {
    name: '50,000 numbers in a parameters array (the scanner walks them byte by byte) are served',
    path: TEXT,
    raw: `{"model":"text-embedding-v4","input":{"texts":["a"]},"parameters":{"x":[${Array(50_000).fill('-1.5e3').join(',')}]}}`,
    status: 200,
    upstream: 1,
  },
  {
    name: 'a body one byte over BODY_LIMIT_BYTES',
    path: OPENAI,
    raw: padded(json({ model: 'text-embedding-v4', input: 'x' }).slice(0, -1), '}', BODY_LIMIT + 1),
    status: 413,
    upstream: 0,
  },
  {
    name: 'invalid UTF-8 (0xff 0xfe) inside a text',
    path: OPENAI,
    raw: Buffer.concat([
      Buffer.from('{"model":"text-embedding-v4","input":"a'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}'),
    ]),
    status: 400,
    upstream: 0,
    message: /not valid UTF-8/,
  },
  {
    name: 'an overlong UTF-8 encoding of "/" (0xc0 0xaf)',
    path: OPENAI,
    raw: Buffer.concat([
      Buffer.from('{"model":"text-embedding-v4","input":"'),
      Buffer.from([0xc0, 0xaf]),
      Buffer.from('"}'),
    ]),
    status: 400,
    upstream: 0,
    message: /not valid UTF-8/,
  },

  // Prototype pollution.
  {
    name: '__proto__ at the top level',
    path: OPENAI,
    raw: '{"__proto__":{"polluted":true},"model":"text-embedding-v4","input":"x"}',
    status: 400,
    upstream: 0,
    message: /__proto__/,
  },
  {
    name: '__proto__ written with a \\u escape, in parameters',
    path: TEXT,
    raw: '{"model":"text-embedding-v4","input":{"texts":["a"]},"parameters":{"\\u005f_proto__":{"polluted":true}}}',
    status: 400,
    upstream: 0,
    message: /parameters\.__proto__/,
  },
  {
    name: 'constructor.prototype in a generation field',
    path: GENERATION,
    raw: '{"model":"qwen-vl-plus","input":{"messages":[{"role":"user","content":"hi"}]},"parameters":{"constructor":{"prototype":{"polluted":true}}}}',
    status: 400,
    upstream: 0,
    message: /constructor\.prototype/,
  },
  {
    name: 'a plain "constructor" string in parameters is harmless and served',
    path: TEXT,
    raw: '{"model":"text-embedding-v4","input":{"texts":["a"]},"parameters":{"constructor":"x"}}',
    status: 200,
    upstream: 1,
  },

  // Numbers JSON.parse turns into Infinity.
  {
    name: '1e400 in parameters.dimension',
    path: TEXT,
    raw: '{"model":"text-embedding-v4","input":{"texts":["a"]},"parameters":{"dimension":1e400}}',
    status: 400,
    upstream: 0,
    message: /parameters\.dimension: must be a finite number/,
  },
  {
    name: '-1e400 in an extra generation parameter',
    path: GENERATION,
    raw: '{"model":"qwen-vl-plus","input":{"messages":[{"role":"user","content":"hi"}]},"parameters":{"seed":-1e400}}',
    status: 400,
    upstream: 0,
    message: /parameters\.seed: must be a finite number/,
  },
  {
    name: 'a 400-digit integer as the chat temperature',
    path: CHAT,
    raw: `{"model":"qwen-vl-plus","messages":[{"role":"user","content":"hi"}],"temperature":${'9'.repeat(400)}}`,
    status: 400,
    upstream: 0,
    message: /temperature: must be a finite number/,
  },

  // Task ids.
  {
    name: 'a task id of 101 characters',
    method: 'GET',
    path: `/api/v1/tasks/${'a'.repeat(101)}`,
    status: 400,
    upstream: 0,
    message: /task_id: must be 1 to 100 characters/,
  },
  {
    name: 'a task id of 8,000 characters, on cancel',
    path: `/api/v1/tasks/${'a'.repeat(8000)}/cancel`,
    raw: '',
    status: 400,
    upstream: 0,
    message: /task_id/,
  },
  {
    name: 'an encoded path traversal as a task id',
    method: 'GET',
    path: '/api/v1/tasks/..%2F..%2Fapi%2Fv1%2Fuploads',
    status: 400,
    upstream: 0,
  },
];

/** Valid requests sent once before the cases (see beforeAll). */
const WARM_UP: HostileCase[] = [
  {
    name: 'embeddings',
    path: OPENAI,
    body: { model: 'text-embedding-v4', input: 'warm' },
    status: 200,
    upstream: 1,
  },
  {
    name: 'native text',
    path: TEXT,
    body: { model: 'text-embedding-v4', input: { texts: ['warm'] } },
    status: 200,
    upstream: 1,
  },
  {
    name: 'a long text (starts the tokenizer pool)',
    path: OPENAI,
    body: { model: 'text-embedding-v4', input: 'warm up the tokenizer with words. '.repeat(400) },
    status: 200,
    upstream: 1,
  },
  {
    name: 'multimodal: text, image and audio',
    path: MULTIMODAL,
    body: {
      model: ONE_PEACE,
      input: {
        contents: [
          { text: 'warm' },
          { image: dataUri('image/png', png()) },
          { audio: dataUri('audio/wav', wav(1)) },
        ],
      },
    },
    status: 200,
    upstream: 1,
  },
  {
    name: 'generation',
    path: GENERATION,
    body: { model: 'qwen-vl-plus', input: { messages: [{ role: 'user', content: 'warm' }] } },
    status: 200,
    upstream: 1,
  },
  {
    name: 'chat',
    path: CHAT,
    body: { model: 'qwen-vl-plus', messages: [{ role: 'user', content: 'warm' }] },
    status: 200,
    upstream: 1,
  },
];

// ---- the run -------------------------------------------------------------------------------------------------

describe('hostile input against a real gateway process, /healthz probed every 20 ms', () => {
  let emu: Emulator;
  let gw: GatewayProcess;
  let probe: HealthProbe;
  let agent: Agent;

  beforeAll(async () => {
    emu = await startEmulator({ apiKey: UPSTREAM_KEY });
    gw = await startGateway(emu.url, { BODY_LIMIT_BYTES: String(BODY_LIMIT) });
    agent = new Agent({ connections: 8 });
    // One-time costs are not what a hostile request can repeat: the first use of each route, of the media parsers
    // (module loading) and of the tokenizer pool (worker start, vocabulary load) are paid here, before any case.
    for (const c of WARM_UP) {
      const res = await send(c);
      expect(res.status, `warm-up ${c.name}: ${res.text.slice(0, 200)}`).toBe(c.status);
    }
    probe = new HealthProbe(gw.url, 20);
  }, 90_000);

  afterAll(async () => {
    await probe?.stop();
    await agent?.close();
    await gw?.stop();
    await emu?.close();
  });

  async function send(c: HostileCase): Promise<{ status: number; text: string }> {
    if (c.wire !== undefined) {
      const conn = new RawConnection(gw.port);
      conn.write(c.wire);
      await Promise.race([conn.closed, new Promise((r) => setTimeout(r, 2_000))]);
      conn.destroy();
      const r = conn.reply();
      return { status: r.status ?? 0, text: r.text };
    }
    const method = c.method ?? 'POST';
    const body = c.raw ?? (c.body === undefined ? undefined : json(c.body));
    const res = await request(`${gw.url}${c.path}`, {
      method,
      dispatcher: agent,
      headers: {
        authorization: `Bearer ${CALLER_KEY}`,
        ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
        ...c.headers,
      },
      body: method === 'POST' ? (body ?? '') : undefined,
      headersTimeout: 20_000,
      bodyTimeout: 20_000,
    });
    return { status: res.statusCode, text: await res.body.text() };
  }

  for (const c of CASES) {
    const label = c.dependsOn ? `${c.name} [depends on: ${c.dependsOn}]` : c.name;
    it(label, async () => {
      emu.clearReceived();
      await probe.take();
      const res = await send(c);
      // Let a few more probes through after the answer, so each case is watched by some.
      await new Promise((r) => setTimeout(r, 100));
      const probes = await probe.take();
      expect(res.status, res.text.slice(0, 300)).toBe(c.status);
      if (c.message) expect(res.text).toMatch(c.message);
      expect(res.text).not.toContain(UPSTREAM_KEY);
      expect(emu.received, 'upstream calls').toHaveLength(c.upstream);
      expect(probes.failures).toEqual([]);
      expect(probes.count).toBeGreaterThan(0);
      expect(probes.maxMs, 'slowest /healthz probe during the case (ms)').toBeLessThan(PROBE_BOUND_MS);
    }, 30_000);
  }

  it('the gateway still serves a plain request after all of them, and nothing was polluted', async () => {
    const res = await send({
      name: 'plain',
      path: OPENAI,
      body: { model: 'text-embedding-v4', input: 'x' },
      status: 200,
      upstream: 1,
    });
    expect(res.status).toBe(200);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
