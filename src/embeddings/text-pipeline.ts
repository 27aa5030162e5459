/**
 * What both text-embedding front doors (OpenAI /v1/embeddings and native text-embedding) share:
 * per-text checks before any upstream call, splitting into calls of at most the model's row limit,
 * bounded-concurrency fan-out (all or nothing), and the strict check of each reply.
 * The caller-facing shapes are built by the translator modules in ../translate/.
 */
import { finishTexts, lookupTexts } from '../cache/lookup.js';
import { invalidInput } from '../errors.js';
import type { CallContext } from '../http/call-context.js';
import type { TextEmbeddingModel } from '../models/index.js';
import type { Admission } from '../ratelimit/governor.js';
import type { TokenChecker, TokenCounts } from '../tokens/index.js';
import { ScanError, type ScannedItem, scanEmbeddingReply } from '../upstream/embedding-scan.js';
import { TEXT_EMBEDDING_PATH } from '../upstream/paths.js';
import { admitChunks } from './admit.js';
import { unusableReply as badReply, mapLimit } from './fan-out.js';

export type OutputType = 'dense' | 'sparse' | 'dense&sparse';

/** A validated text-embedding request, whichever API it came in through. */
export interface TextEmbeddingJob {
  model: TextEmbeddingModel;
  texts: string[];
  /** Token count (or estimate) per text, from the checks: the governor's per-call token estimates. */
  tokens?: number[];
  /** Upstream `parameters`, already validated (dimension, text_type, output_type) plus any passed-on keys. */
  parameters: Record<string, unknown>;
  /** Dimension the reply must have when dense vectors are asked for. */
  dimension: number;
  outputType: OutputType;
  /** Decode the vectors to float32 while checking the reply (the caller wants base64): one pass, not two. */
  decode?: boolean;
}

import type { MergedItem, TextEmbeddingResult } from './results.js';

export type { MergedItem, TextEmbeddingResult } from './results.js';

/**
 * Checks each text: a non-empty string within the model's token limit (the token checks run after every text
 * passed the type checks; see src/tokens/). `param(i)` names the field for errors. Returns the texts and their
 * token counts or estimates.
 */
export async function checkTexts(
  texts: unknown[],
  model: TextEmbeddingModel,
  param: (i: number) => string,
  tokens: TokenChecker,
): Promise<{ texts: string[]; counts: TokenCounts }> {
  for (let i = 0; i < texts.length; i++) {
    const t = texts[i];
    if (typeof t !== 'string') {
      throw invalidInput(
        param(i),
        Array.isArray(t) || typeof t === 'number'
          ? 'token arrays are not supported by DashScope; send text'
          : `must be a string, got ${t === null ? 'null' : typeof t}`,
      );
    }
    if (t.length === 0) throw invalidInput(param(i), 'must not be empty');
  }
  const strings = texts as string[];
  const counts = await tokens.checkTexts(strings, model.maxTokens, param, model.name);
  return { texts: strings, counts };
}

/**
 * Looks the texts up in the cache, then splits, calls and checks what it does not hold, and merges both in input
 * order. Throws GatewayError; never returns a partial result.
 */
export async function runTextEmbedding(
  ctx: CallContext,
  job: TextEmbeddingJob,
): Promise<TextEmbeddingResult> {
  const lookup = await lookupTexts(ctx, job);
  if (!lookup) return callTextEmbedding(ctx, job);
  const send = lookup.plan.send;
  // Misses are decoded while scanned: the cache keeps float32, and the scan reads the digits once either way.
  const upstream =
    send.length > 0 ? await callTextEmbedding(ctx, { ...job, texts: send, decode: true }) : undefined;
  return finishTexts(lookup, upstream);
}

/** Splits, calls, checks and merges. */
async function callTextEmbedding(ctx: CallContext, job: TextEmbeddingJob): Promise<TextEmbeddingResult> {
  const rows = job.model.maxRows;
  const chunks: string[][] = [];
  for (let i = 0; i < job.texts.length; i += rows) chunks.push(job.texts.slice(i, i + rows));
  const wantDense = job.outputType !== 'sparse';
  const estimates = chunks.map((_, c) => sumTokens(job.tokens, c * rows, rows));
  // One admission for every call of the request, before any of them: all of it fits the budget or none goes.
  const admission = await admitChunks(ctx, job.model, estimates);
  try {
    return await callChunks(ctx, job, chunks, wantDense, admission);
  } finally {
    admission?.release();
  }
}

function sumTokens(tokens: number[] | undefined, from: number, n: number): number {
  let s = 0;
  for (let i = from; i < from + n && tokens && i < tokens.length; i++) s += tokens[i]!;
  return s;
}

async function callChunks(
  ctx: CallContext,
  job: TextEmbeddingJob,
  chunks: string[][],
  wantDense: boolean,
  admission: Admission | undefined,
): Promise<TextEmbeddingResult> {
  const replies = await mapLimit(chunks, ctx.concurrency, ctx.signal, async (texts, i, signal) => {
    const body = JSON.stringify({ model: job.model.name, input: { texts }, parameters: job.parameters });
    const res = await ctx.upstream.call({
      path: TEXT_EMBEDDING_PATH,
      body,
      model: job.model.name,
      requestId: ctx.requestId,
      signal,
      deadline: ctx.deadline,
      trace: ctx.trace,
      idempotent: true,
      expect: 200,
      ...(admission ? { admission, slot: i } : {}),
    });
    let scanned: ReturnType<typeof scanEmbeddingReply>;
    try {
      scanned = scanEmbeddingReply(res.body, { decode: job.decode === true });
    } catch (err) {
      throw badReply(err instanceof ScanError ? err.message : 'not JSON', err);
    }
    // Put items in input order and check there is exactly one per text with the asked dimension.
    const ordered = new Array<ScannedItem>(texts.length);
    let inOrder = true;
    for (let k = 0; k < scanned.items.length; k++) {
      const item = scanned.items[k]!;
      if (item.index < 0 || item.index >= texts.length || ordered[item.index]) {
        throw badReply(`item ${k} has a missing, out-of-range or repeated text_index`);
      }
      if (item.index !== k) inOrder = false;
      if (wantDense && item.dims !== job.dimension) {
        throw badReply(`text_index ${item.index} has ${item.dims} dimensions, expected ${job.dimension}`);
      }
      ordered[item.index] = item;
    }
    if (scanned.items.length !== texts.length) {
      throw badReply(`${scanned.items.length} embeddings for ${texts.length} texts`);
    }
    const tokens = scanned.usage?.total_tokens;
    // What DashScope billed corrects the estimate this call was admitted with (tokens per minute).
    if (typeof tokens === 'number' && Number.isFinite(tokens)) admission?.report(i, tokens);
    return {
      buf: res.body,
      ordered,
      inOrder,
      tokens: typeof tokens === 'number' && Number.isFinite(tokens) ? tokens : 0,
      requestId: scanned.requestId ?? res.requestId ?? '',
    };
  });

  const items: MergedItem[] = [];
  let totalTokens = 0;
  for (const r of replies) {
    for (const item of r.ordered) items.push({ buf: r.buf, item });
    totalTokens += r.tokens;
  }
  const only = replies.length === 1 ? replies[0] : undefined;
  return {
    items,
    totalTokens,
    upstreamRequestIds: replies.map((r) => r.requestId),
    passthrough: only?.inOrder ? only.buf : undefined,
  };
}
