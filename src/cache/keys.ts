/**
 * Cache keys: a versioned SHA-256 over everything that changes a vector.
 *
 * The preimage is a sequence of fields, each written as a 4-byte big-endian length followed by its bytes, and each
 * field preceded by its name written the same way. Because every field carries its own length, no two different
 * inputs produce the same byte sequence (no "ab"+"c" = "a"+"bc"), so a key collision needs a SHA-256 collision.
 * Optional values are written with a one-byte presence marker so "absent" never equals any present value.
 *
 * What goes in:
 * - KEY_VERSION: bump it whenever the preimage layout or the stored entry changes meaning; old entries then miss.
 * - the scope: `shared` for every caller, or `caller` plus the gateway key name (EMBEDDING_CACHE_SCOPE).
 * - the kind of request (text, multimodal item, multimodal fused), the model name.
 * - the parameters that shape the vector, resolved as the job resolved them (dimension, output_type), plus every
 *   other parameter the caller passed on (canonical JSON, sorted keys): DashScope may honour keys the gateway
 *   does not know, and a key that merely reduces hits is better than a vector served for the wrong request.
 * - the content: the text itself; for inline media (data: URIs) the SHA-256 of the decoded bytes and the
 *   declared MIME type; a URL string only when the operator opted in (EMBEDDING_CACHE_URLS), because what a URL
 *   points at can change. Items that cannot be keyed (a URL without the opt-in) are simply not cached.
 */
import { hash } from 'node:crypto';
import { MODALITIES, type Modality } from '../models/multimodal-embedding.js';
import type { CacheScope } from './settings.js';

export type { CacheScope } from './settings.js';

/** Part of every preimage: entries written under another version are never read. */
export const KEY_VERSION = 1;

/** Who the key is for: under the `caller` scope the gateway key name is part of every key. */
export interface KeyScope {
  scope: CacheScope;
  /** The gateway key name (or `anonymous`); ignored under the `shared` scope. */
  caller: string;
}

/**
 * Collects length-prefixed fields; `digest()` hashes them in one shot (crypto.hash: no Hash object per key,
 * which for short texts costs more than the hashing). `copy()` shares the collected prefix.
 */
class Preimage {
  constructor(private readonly parts: Buffer[] = []) {}

  private raw(bytes: Buffer | string): void {
    const b = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(b.length, 0);
    this.parts.push(len, b);
  }

  field(name: string, value: Buffer | string): this {
    this.raw(name);
    this.raw(value);
    return this;
  }

  /** An optional field: `\0` when absent, `\1` + value when present. */
  optional(name: string, value: string | undefined): this {
    this.raw(name);
    this.raw(value === undefined ? '\0' : `\u0001${value}`);
    return this;
  }

  /** A copy whose further fields do not change this one; the collected prefix is joined once. */
  copy(): Preimage {
    if (this.parts.length > 1) this.parts.splice(0, this.parts.length, Buffer.concat(this.parts));
    return new Preimage([...this.parts]);
  }

  digest(): string {
    return hash('sha256', Buffer.concat(this.parts), 'base64url');
  }

  /** The collected bytes, joined. */
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** The digest of `prefix` followed by `value` as one length-prefixed field value (the hot per-text path). */
function digestWith(prefix: Buffer, value: string): string {
  const len = Buffer.byteLength(value, 'utf8');
  const buf = Buffer.allocUnsafe(prefix.length + 4 + len);
  prefix.copy(buf, 0);
  buf.writeUInt32BE(len, prefix.length);
  buf.write(value, prefix.length + 4, 'utf8');
  return hash('sha256', buf, 'base64url');
}

/** JSON with object keys sorted at every level, so `{a,b}` and `{b,a}` key the same. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

function without(
  params: Record<string, unknown> | undefined,
  keys: readonly string[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params ?? {})) if (!keys.includes(k)) out[k] = v;
  return out;
}

function begin(kind: string, scope: KeyScope, model: string): Preimage {
  return new Preimage()
    .field('version', String(KEY_VERSION))
    .field('scope', scope.scope === 'shared' ? 'shared' : `caller:${scope.caller}`)
    .field('kind', kind)
    .field('model', model);
}

function stringParam(params: Record<string, unknown> | undefined, key: string): string | undefined {
  const v = params?.[key];
  return v === undefined ? undefined : typeof v === 'string' ? v : canonicalJson(v);
}

/** What a text-embedding job contributes to every key of its texts. */
export interface TextKeyJob {
  model: { name: string };
  parameters: Record<string, unknown>;
  dimension: number;
  /** dense, sparse or dense&sparse, as the job resolved it. */
  outputType: string;
}

const TEXT_NAMED = ['dimension', 'text_type', 'output_type', 'instruct'] as const;

/**
 * Keys for the texts of a text-embedding job, one per text in order. The shared part of the preimage is hashed
 * once and copied per text.
 */
export function textKeys(scope: KeyScope, job: TextKeyJob, texts: readonly string[]): string[] {
  const params = job.parameters;
  const prefix = begin('text', scope, job.model.name)
    .field('dimension', String(job.dimension))
    .field('output_type', job.outputType)
    .optional('text_type', stringParam(params, 'text_type'))
    .optional('instruct', stringParam(params, 'instruct'))
    .field('other', canonicalJson(without(params, TEXT_NAMED)));
  // Equal to prefix.copy().field('text', t).digest(), without the intermediate buffers.
  const head = Buffer.concat([prefix.bytes(), Buffer.from([0, 0, 0, 4]), Buffer.from('text')]);
  return texts.map((t) => digestWith(head, t));
}

/** What a multimodal job contributes to its keys. */
export interface MultimodalKeyJob {
  model: { name: string };
  contents: readonly Record<string, unknown>[];
  parameters: Record<string, unknown> | undefined;
  dimension: number | undefined;
  fused: boolean;
}

export interface MultimodalKeyOptions {
  /** Key http(s):// and oss:// values by their URL string (EMBEDDING_CACHE_URLS); else such items are not cached. */
  cacheUrls: boolean;
}

const DATA_URI = /^data:([^,]*),/i;

/** The content of one item as a preimage field value, or undefined when it cannot be keyed. */
function contentField(item: Record<string, unknown>, opts: MultimodalKeyOptions): string | undefined {
  const modality = MODALITIES.find((m) => Object.hasOwn(item, m)) as Modality | undefined;
  if (modality === undefined) return undefined;
  const value = item[modality];
  if (typeof value !== 'string') return undefined;
  const factor = item.factor === undefined ? '' : canonicalJson(item.factor);
  // The inner fields are length-prefixed too, so the whole item is one unambiguous value.
  const inner = new Preimage().field('modality', modality).field('factor', factor);
  if (modality === 'text') return inner.field('text', value).digest();
  const v = value.trim();
  const m = DATA_URI.exec(v.slice(0, 256));
  if (m) {
    // Validation already decoded and checked this payload; the key uses the decoded bytes, so two spellings of
    // the same data (line breaks in the base64) share a key. The header (MIME type, parameters) is kept as sent.
    const bytes = Buffer.from(v.slice(m[0].length), 'base64');
    const digest = hash('sha256', bytes, 'base64url');
    return inner.field('data-header', m[1]!.toLowerCase()).field('data-sha256', digest).digest();
  }
  if (!opts.cacheUrls) return undefined;
  return inner.field('url', v).digest();
}

const MULTIMODAL_NAMED = [
  'dimension',
  'output_type',
  'instruct',
  'fps',
  'res_level',
  'max_video_frames',
  'enable_fusion',
  'auto_truncation',
] as const;

function multimodalPrefix(scope: KeyScope, job: MultimodalKeyJob, kind: string): Preimage {
  const p = job.parameters;
  let pre = begin(kind, scope, job.model.name).optional(
    'dimension',
    job.dimension === undefined ? undefined : String(job.dimension),
  );
  for (const name of MULTIMODAL_NAMED) {
    if (name !== 'dimension') pre = pre.optional(name, stringParam(p, name));
  }
  return pre.field('other', canonicalJson(without(p, MULTIMODAL_NAMED)));
}

/**
 * Keys for a multimodal job. Per-item output: one key per content item (undefined for an item that cannot be
 * keyed). Fused output (ONE-PEACE, enable_fusion): a single key over the whole list, factors included, or
 * undefined when any item cannot be keyed.
 */
export function multimodalKeys(
  scope: KeyScope,
  job: MultimodalKeyJob,
  opts: MultimodalKeyOptions,
): (string | undefined)[] {
  const items = job.contents.map((c) => contentField(c, opts));
  if (job.fused) {
    if (items.some((i) => i === undefined)) return [undefined];
    const pre = multimodalPrefix(scope, job, 'multimodal-fused').field('count', String(items.length));
    for (const i of items) pre.field('item', i!);
    return [pre.digest()];
  }
  const prefix = multimodalPrefix(scope, job, 'multimodal-item');
  return items.map((i) => (i === undefined ? undefined : prefix.copy().field('item', i).digest()));
}
