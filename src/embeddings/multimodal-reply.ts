/**
 * The strict check of a multimodal-embedding reply: the right shape, one vector per item (or one fused), consistent
 * dimensions; and the usage number OpenAI-shaped replies report.
 */
import type { VectorRef } from '../translate/openai-render.js';
import { ScanError, type ScannedEmbeddingReply, scanEmbeddingReply } from '../upstream/embedding-scan.js';
import { unusableReply as badReply } from './fan-out.js';
import type { MultimodalEmbeddingJob } from './multimodal-input.js';

/** A usage number: text tokens where the model reports them, else ONE-PEACE's weighted total. */
function usageNumber(usage: Record<string, unknown> | undefined): number {
  for (const key of ['total_tokens', 'input_tokens', 'total_usage']) {
    const v = usage?.[key];
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  }
  return 0;
}

export interface ChunkReply {
  vectors: VectorRef[];
  dims: number;
  tokens: number;
  requestId: string;
  buf: Buffer;
}

/** Strict check of one reply: the right shape, one vector per item (or one fused), consistent dimensions. */
export function checkReply(
  buf: Buffer,
  count: number,
  job: MultimodalEmbeddingJob,
  fallbackId: string,
): ChunkReply {
  let scanned: ScannedEmbeddingReply;
  try {
    scanned = scanEmbeddingReply(buf, { decode: job.decode === true });
  } catch (err) {
    throw badReply(err instanceof ScanError ? err.message : 'not JSON', err);
  }
  const vectors: VectorRef[] = [];
  const dimsSeen: number[] = [];
  if (job.fused) {
    if (scanned.fused) {
      vectors.push({ buf, span: scanned.fused.embedding, values: scanned.fused.values });
      dimsSeen.push(scanned.fused.dims);
    } else if (job.model.output === 'per-item' && scanned.items.length === 1 && scanned.items[0]!.embedding) {
      // enable_fusion: the exact upstream shape is uncertain; one item in `embeddings` is accepted too.
      vectors.push({ buf, span: scanned.items[0]!.embedding, values: scanned.items[0]!.values });
      dimsSeen.push(scanned.items[0]!.dims);
    } else {
      throw badReply('expected one fused embedding');
    }
  } else {
    if (scanned.items.length !== count) {
      throw badReply(`${scanned.items.length} embeddings for ${count} contents`);
    }
    const ordered = new Array<VectorRef>(count);
    for (let k = 0; k < scanned.items.length; k++) {
      const item = scanned.items[k]!;
      if (item.index < 0 || item.index >= count || ordered[item.index]) {
        throw badReply(`item ${k} has a missing, out-of-range or repeated index`);
      }
      if (!item.embedding) throw badReply(`index ${item.index} has no embedding`);
      ordered[item.index] = { buf, span: item.embedding, values: item.values };
      dimsSeen.push(item.dims);
    }
    vectors.push(...ordered);
  }
  const dims = dimsSeen[0]!;
  for (const d of dimsSeen) {
    if (job.dimension !== undefined ? d !== job.dimension : !job.model.dimensions.includes(d) || d !== dims) {
      throw badReply(
        `an embedding has ${d} dimensions, expected ${job.dimension ?? `one of ${job.model.dimensions.join(', ')}`}`,
      );
    }
  }
  return {
    vectors,
    dims,
    tokens: usageNumber(scanned.usage),
    requestId: scanned.requestId ?? fallbackId,
    buf,
  };
}
