/**
 * What both multimodal-embedding front doors (native multimodal-embedding and OpenAI /v1/embeddings) share once
 * a request has passed its input checks (./multimodal-input.ts): the upstream call(s), split and fanned out, and the
 * strict check of each reply (./multimodal-reply.ts).
 * The caller-facing shapes are built by the translator modules in ../translate/.
 */
import { finishContents, lookupContents } from '../cache/lookup.js';
import type { CallContext } from '../http/call-context.js';
import type { Admission } from '../ratelimit/governor.js';
import { MULTIMODAL_EMBEDDING_PATH } from '../upstream/paths.js';
import { admitChunks } from './admit.js';
import { unusableReply as badReply, mapLimit } from './fan-out.js';
import type { MultimodalEmbeddingJob } from './multimodal-input.js';
import { type ChunkReply, checkReply } from './multimodal-reply.js';

export {
  type CheckedParameters,
  type ContentCheckOptions,
  checkContents,
  checkParameters,
  type MultimodalEmbeddingJob,
} from './multimodal-input.js';

import type { MultimodalEmbeddingResult } from './results.js';

export type { MultimodalEmbeddingResult } from './results.js';

/**
 * Looks the items up in the cache, then calls DashScope for the rest and checks the replies. A fused job is one
 * call; a per-item job is split into calls of at most the model's row limit (the native route never needs to: it
 * refuses more), run with bounded concurrency, all or nothing. Throws GatewayError; never returns a partial result.
 */
export async function runMultimodalEmbedding(
  ctx: CallContext,
  job: MultimodalEmbeddingJob,
): Promise<MultimodalEmbeddingResult> {
  // The cache first (src/cache/lookup.ts): only what it does not hold is sent.
  const lookup = await lookupContents(ctx, job);
  if (!lookup) return callMultimodalEmbedding(ctx, job);
  const send = lookup.send;
  const upstream =
    send.length > 0
      ? await callMultimodalEmbedding(ctx, { ...job, contents: send, decode: true })
      : undefined;
  return finishContents(lookup, upstream);
}

/** Splits, calls and checks. */
async function callMultimodalEmbedding(
  ctx: CallContext,
  job: MultimodalEmbeddingJob,
): Promise<MultimodalEmbeddingResult> {
  const size = job.fused ? job.contents.length : job.model.maxRows;
  const chunks: Record<string, unknown>[][] = [];
  for (let i = 0; i < job.contents.length; i += size) chunks.push(job.contents.slice(i, i + size));
  const headers = job.ossResolve ? { 'X-DashScope-OssResourceResolve': 'enable' } : undefined;

  // One admission for every call of the request, before any of them. No token estimate for images and video
  // (DashScope's multimodal budgets are per call); the billed usage still corrects a token budget if one is set.
  const admission = await admitChunks(
    ctx,
    job.model,
    chunks.map(() => 0),
  );
  try {
    return await callChunks(ctx, job, chunks, headers, admission);
  } finally {
    admission?.release();
  }
}

async function callChunks(
  ctx: CallContext,
  job: MultimodalEmbeddingJob,
  chunks: Record<string, unknown>[][],
  headers: Record<string, string> | undefined,
  admission: Admission | undefined,
): Promise<MultimodalEmbeddingResult> {
  const replies: ChunkReply[] = await mapLimit(
    chunks,
    ctx.concurrency,
    ctx.signal,
    async (contents, i, signal) => {
      const body = JSON.stringify({
        model: job.model.name,
        input: { contents },
        ...(job.parameters ? { parameters: job.parameters } : {}),
      });
      const res = await ctx.upstream.call({
        path: MULTIMODAL_EMBEDDING_PATH,
        body,
        headers,
        requestId: ctx.requestId,
        signal,
        deadline: ctx.deadline,
        trace: ctx.trace,
        idempotent: true,
        model: job.model.name,
        expect: 200,
        ...(admission ? { admission, slot: i } : {}),
      });
      const reply = checkReply(res.body, contents.length, job, res.requestId ?? '');
      admission?.report(i, reply.tokens);
      return reply;
    },
  );

  const first = replies[0]!;
  for (const r of replies) {
    if (r.dims !== first.dims) throw badReply(`calls answered with ${first.dims} and ${r.dims} dimensions`);
  }
  return {
    vectors: replies.flatMap((r) => r.vectors),
    tokens: replies.reduce((s, r) => s + r.tokens, 0),
    upstreamRequestIds: replies.map((r) => r.requestId),
    passthrough: replies.length === 1 ? first.buf : undefined,
  };
}
