/**
 * openapi.yaml as the contract test reads it: parsed once, `$ref`s resolved into plain objects, each response
 * schema compiled once with ajv (OpenAPI 3.1 schemas are JSON Schema 2020-12), and a lookup from a real request
 * (method + path) to the operation that documents it. Nothing here knows the gateway: it only reads the description,
 * so a route or status the description forgets shows up as a failure rather than being assumed.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { parseDocument } from 'yaml';
import { z } from 'zod';

export const SPEC_PATH = fileURLToPath(new URL('../../openapi.yaml', import.meta.url));

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** The parts of the description the test reads; everything else is kept as it is (loose objects). */
const MediaTypeShape = z.looseObject({ schema: z.unknown().optional() });
const ResponseShape = z.looseObject({
  description: z.string().optional(),
  headers: z.record(z.string(), z.looseObject({ schema: z.unknown().optional() })).optional(),
  content: z.record(z.string(), MediaTypeShape).optional(),
});
const OperationShape = z.looseObject({
  operationId: z.string(),
  responses: z.record(z.string(), ResponseShape),
});
const SpecShape = z.looseObject({
  openapi: z.string().startsWith('3.1'),
  paths: z.record(z.string(), z.record(z.string(), z.unknown())),
  components: z.looseObject({ schemas: z.record(z.string(), z.unknown()) }),
});

export type SpecResponse = z.infer<typeof ResponseShape>;

export interface SpecOperation {
  operationId: string;
  method: string;
  /** The path template as documented, e.g. `/api/v1/tasks/{task_id}`. */
  path: string;
  responses: Record<string, SpecResponse>;
}

export interface Spec {
  operations: SpecOperation[];
  /** A component schema by name (e.g. `DashScopeError`), `$ref`s resolved. */
  schema(name: string): unknown;
  /** A component response by name (e.g. `OpenAIUpstreamRejected`), `$ref`s resolved. */
  response(name: string): SpecResponse;
  /** The operation documenting `method path` (path without query), if any. */
  match(method: string, path: string): SpecOperation | undefined;
  /** The ajv validator of a (resolved) schema, compiled on first use and reused. */
  validator(schema: unknown): ValidateFunction;
}

/** Follows a local JSON pointer (`#/components/schemas/X`) in the raw document. */
function pointer(root: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`openapi.yaml: only local $refs are supported, got ${ref}`);
  let node = root;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (node === null || typeof node !== 'object' || !(key in node)) {
      throw new Error(`openapi.yaml: $ref ${ref} does not resolve (no "${key}")`);
    }
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/**
 * A copy of `node` with every `$ref` replaced by its target. OpenAPI 3.1 allows keys beside a `$ref` (a
 * `description` that overrides the target's): they are kept over the target's. A cycle is reported rather than
 * followed forever (the description has none today; a recursive schema would need ajv's own $ref handling).
 */
function resolveRefs(node: unknown, root: unknown, trail: readonly string[] = []): unknown {
  if (Array.isArray(node)) return node.map((n) => resolveRefs(n, root, trail));
  if (node === null || typeof node !== 'object') return node;
  const { $ref, ...rest } = node as Record<string, unknown>;
  const siblings = Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, resolveRefs(v, root, trail)]));
  if (typeof $ref !== 'string') return siblings;
  if (trail.includes($ref)) throw new Error(`openapi.yaml: $ref cycle ${[...trail, $ref].join(' → ')}`);
  const target = resolveRefs(pointer(root, $ref), root, [...trail, $ref]);
  if (Object.keys(siblings).length === 0) return target;
  return target !== null && typeof target === 'object' && !Array.isArray(target)
    ? { ...target, ...siblings }
    : target;
}

/** `/api/v1/tasks/{task_id}` → a regex matching real paths (a parameter is one non-empty segment). */
function templateRegex(template: string): RegExp {
  const escaped = template
    .split(/\{[^}]+\}/)
    .map((part) => part.replace(/[.*+?^$()|[\]\\]/g, '\\$&'))
    .join('[^/]+');
  return new RegExp(`^${escaped}$`);
}

/** ajv for OpenAPI 3.1: strict about schema keywords, with OpenAPI's `example` and the formats the description uses. */
function makeAjv(): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false, strictRequired: false });
  // OpenAPI's own (deprecated in 3.1, still valid) annotation keyword.
  ajv.addKeyword({ keyword: 'example' });
  ajv.addFormat('uri', (s: string) => URL.canParse(s));
  ajv.addFormat('date-time', (s: string) =>
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(s),
  );
  return ajv;
}

export function loadSpec(path: string = SPEC_PATH): Spec {
  const doc = parseDocument(readFileSync(path, 'utf8'), { uniqueKeys: true, strict: true });
  if (doc.errors.length > 0) {
    throw new Error(`openapi.yaml does not parse:\n${doc.errors.map((e) => e.message).join('\n')}`);
  }
  // Aliases (`*openaiEmbeddingResponses`) are expanded; the description uses a handful, so no alias limit.
  const raw: unknown = doc.toJS({ maxAliasCount: -1 });
  const spec = SpecShape.parse(raw);

  const operations: SpecOperation[] = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of HTTP_METHODS) {
      if (!(method in item)) continue;
      const op = OperationShape.parse(resolveRefs(item[method], raw));
      operations.push({
        operationId: op.operationId,
        method: method.toUpperCase(),
        path,
        responses: op.responses,
      });
    }
  }
  const matchers = operations.map((op) => ({ op, re: templateRegex(op.path) }));

  const ajv = makeAjv();
  // Keyed by the schema's text: a component response shared by many operations is resolved into equal copies.
  const compiled = new Map<string, ValidateFunction>();
  return {
    operations,
    schema: (name) => resolveRefs(pointer(raw, `#/components/schemas/${name}`), raw),
    response: (name) => ResponseShape.parse(resolveRefs(pointer(raw, `#/components/responses/${name}`), raw)),
    match: (method, p) => matchers.find((m) => m.op.method === method && m.re.test(p))?.op,
    validator: (schema) => {
      if (schema === null || typeof schema !== 'object')
        throw new Error('a response schema must be an object');
      const key = JSON.stringify(schema);
      let v = compiled.get(key);
      if (!v) {
        v = ajv.compile(schema);
        compiled.set(key, v);
      }
      return v;
    },
  };
}

/** The documented response for a status: the exact code, else its range (`4XX`), else `default`. */
export function responseKeyFor(responses: Record<string, SpecResponse>, status: number): string | undefined {
  return [String(status), `${Math.floor(status / 100)}XX`, 'default'].find((k) => k in responses);
}

/** ajv's errors, one per line, with where in the body each one is. */
export function describeErrors(errors: readonly ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .map((e) => `  at ${e.instancePath || '(root)'}: ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`)
    .join('\n');
}
