/**
 * Builds OpenAI-shaped embedding replies by splicing the upstream's raw vector bytes (float) or encoding them
 * (base64), without re-serialising numbers, as Buffer parts (sent without a copy: src/http/parts-body.ts). Shared by every /v1/embeddings translator.
 *
 * base64 is standard base64 of little-endian float32, which is what the `openai` SDK decodes. The gateway does
 * the encoding itself: DashScope's compatible mode only speaks float, and an SDK that asked for base64 but gets a
 * float array silently produces a vector a quarter as long.
 */
import { endianness } from 'node:os';
import type { Parts } from '../http/parts-body.js';
import { type Span, spanToFloat32 } from '../upstream/embedding-scan.js';

export type EncodingFormat = 'float' | 'base64';

export interface VectorRef {
  buf: Buffer;
  span: Span;
  /** The span's numbers as float32 when the scan already decoded them (base64 requests); else decoded here. */
  values?: Float32Array | undefined;
}

const LITTLE_ENDIAN = endianness() === 'LE';

export function float32Base64(f32: Float32Array): string {
  if (!LITTLE_ENDIAN) {
    const out = Buffer.alloc(f32.length * 4);
    for (let i = 0; i < f32.length; i++) out.writeFloatLE(f32[i]!, i * 4);
    return out.toString('base64');
  }
  return Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength).toString('base64');
}

/** `{object:"list", data:[{object:"embedding", index, embedding}], model, usage}` with `data` in the given order. */
export function renderOpenAIEmbeddings(
  model: string,
  vectors: readonly VectorRef[],
  tokens: number,
  encoding: EncodingFormat,
): Parts {
  const parts: Buffer[] = [];
  let text = '{"object":"list","data":[';
  for (let i = 0; i < vectors.length; i++) {
    const { buf, span, values } = vectors[i]!;
    text += `${i === 0 ? '' : ','}{"object":"embedding","index":${i},"embedding":`;
    if (encoding === 'base64') {
      text += `"${float32Base64(values ?? spanToFloat32(buf, span))}"}`;
    } else {
      parts.push(Buffer.from(text), buf.subarray(span.start, span.end));
      text = '}';
    }
  }
  text += `],"model":${JSON.stringify(model)},"usage":{"prompt_tokens":${tokens},"total_tokens":${tokens}}}`;
  parts.push(Buffer.from(text));
  return parts;
}
