/**
 * The native multimodal-embedding reply for a request served partly or wholly from the cache (a request served
 * wholly by one upstream call keeps passing the upstream body through). Vectors are spliced as bytes, as the
 * other renderers do; a fused vector is one item of type `fusion` (the shape qwen3-vl answers with enable_fusion)
 * or, for a model whose output is always fused (ONE-PEACE), `output.embedding`.
 */
import type { Parts } from '../http/parts-body.js';
import type { VectorRef } from '../translate/openai-render.js';
import { modalityOf } from './merge.js';

export function renderNativeMultimodal(
  vectors: readonly VectorRef[],
  types: readonly string[],
  shape: 'items' | 'fused',
  usage: Record<string, unknown>,
  requestId: string,
): Parts {
  const parts: Buffer[] = [];
  let text = '{"output":{';
  if (shape === 'fused') {
    const v = vectors[0]!;
    text += '"embedding":';
    parts.push(Buffer.from(text), v.buf.subarray(v.span.start, v.span.end));
    text = '';
  } else {
    text += '"embeddings":[';
    vectors.forEach((v, i) => {
      text += `${i === 0 ? '' : ','}{"index":${i},"embedding":`;
      parts.push(Buffer.from(text), v.buf.subarray(v.span.start, v.span.end));
      text = `,"type":${JSON.stringify(types[i] ?? 'unknown')}}`;
    });
    text += ']';
  }
  text += `},"usage":${JSON.stringify(usage)},"request_id":${JSON.stringify(requestId)}}`;
  parts.push(Buffer.from(text));
  return parts;
}

/**
 * The native reply for a multimodal result: DashScope's own body when one call served the whole request, else one
 * built from the merged vectors, with usage for only what this request's upstream call billed (0 on a full hit),
 * under the name DashScope uses for the model (`total_usage` for always-fused ONE-PEACE, `input_tokens` otherwise).
 */
export function multimodalToNative(
  result: { vectors: VectorRef[]; tokens: number; passthrough: Buffer | undefined },
  job: {
    contents: readonly Record<string, unknown>[];
    fused: boolean;
    model: { output: 'fused' | 'per-item' };
  },
  requestId: string,
): Parts {
  if (result.passthrough) return [result.passthrough];
  if (job.model.output === 'fused') {
    return renderNativeMultimodal(result.vectors, [], 'fused', { total_usage: result.tokens }, requestId);
  }
  const types = job.fused ? ['fusion'] : job.contents.map(modalityOf);
  return renderNativeMultimodal(result.vectors, types, 'items', { input_tokens: result.tokens }, requestId);
}
