/**
 * The gateway's one application/json body parser. It replaces Fastify's so that a body is refused at parse time,
 * with a 400 in the caller's dialect, when it is:
 * - nested deeper than JSON_MAX_DEPTH: JSON.parse copes with ~4,000 levels but JSON.stringify, zod and every
 *   recursive walk after it do not (a RangeError, i.e. a 500), so the depth is checked *before* JSON.parse by a
 *   linear byte scan that skips strings (and their escapes) with indexOf;
 * - holding a number JSON.parse turns into ±Infinity (`1e400`): it would reach DashScope as `null` (400 naming
 *   the field);
 * - not valid UTF-8: decoding would otherwise replace the bytes with U+FFFD and pass on text nobody sent;
 * - carrying `__proto__`, or `constructor.prototype`, as a key (what Fastify's parser refused, kept).
 * The size limit stays Fastify's (BODY_LIMIT_BYTES, 413): the body reaches this parser already bounded.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError, invalidInput } from '../errors.js';

export interface JsonBodyLimits {
  /** Deepest nesting of objects and arrays accepted; the top-level object is depth 1. */
  maxDepth: number;
}

/** What the pre-scan found, before any JSON.parse. */
export interface ScanResult {
  /** Nesting went past the limit (the scan stopped there). */
  tooDeep: boolean;
  /** The first number JSON.parse would turn into ±Infinity, as written. */
  overflow: string | undefined;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isNumberByte = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45;

/**
 * One pass over the bytes, outside strings only: counts nesting and checks the numbers that could overflow (those
 * whose decimal magnitude reaches 308). Malformed JSON is left to JSON.parse, which
 * reports it; the scan only has to be right for well-formed input and linear for any input. UTF-8 continuation
 * bytes are ≥ 0x80, so they are never mistaken for the ASCII structure bytes looked at here.
 */
export function scanJson(buf: Uint8Array, maxDepth: number): ScanResult {
  const bytes = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = bytes.length;
  let depth = 0;
  let i = 0;
  let overflow: string | undefined;
  while (i < n) {
    const c = bytes[i]!;
    if (c === QUOTE) {
      // Jump to the closing quote: the first one preceded by an even number of backslashes. Each run of
      // backslashes is counted once, for the quote right after it, so this stays linear.
      let from = i + 1;
      for (;;) {
        const q = bytes.indexOf(QUOTE, from);
        if (q < 0) return { tooDeep: false, overflow }; // unterminated string: JSON.parse will say so
        let slashes = 0;
        while (q - 1 - slashes > i && bytes[q - 1 - slashes] === BACKSLASH) slashes++;
        if (slashes % 2 === 0) {
          i = q + 1;
          break;
        }
        from = q + 1;
      }
      continue;
    }
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > maxDepth) return { tooDeep: true, overflow };
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--;
    } else if (isDigit(c) || c === 0x2d) {
      // Read the number's parts: a finite double is below 1.8e308, so a number whose decimal magnitude (integer
      // digits - 1 + exponent) is under 308 is finite without converting it; only the rest are converted.
      let j = c === 0x2d ? i + 1 : i;
      let intDigits = 0;
      while (j < n && isDigit(bytes[j]!)) {
        intDigits++;
        j++;
      }
      if (j < n && bytes[j] === 0x2e) {
        j++;
        while (j < n && isDigit(bytes[j]!)) j++;
      }
      let exponent = 0;
      if (j < n && (bytes[j] === 0x65 || bytes[j] === 0x45)) {
        j++;
        let sign = 1;
        if (j < n && (bytes[j] === 0x2b || bytes[j] === 0x2d)) {
          if (bytes[j] === 0x2d) sign = -1;
          j++;
        }
        let value = 0;
        while (j < n && isDigit(bytes[j]!)) {
          if (value < 1_000_000) value = value * 10 + (bytes[j]! - 0x30);
          j++;
        }
        exponent = sign * value;
      }
      while (j < n && isNumberByte(bytes[j]!)) j++; // malformed tails: JSON.parse will refuse them
      if (overflow === undefined && intDigits - 1 + exponent >= 308) {
        const token = bytes.toString('latin1', i, j);
        if (!Number.isFinite(Number(token))) overflow = token;
      }
      i = j;
      continue;
    }
    i++;
  }
  return { tooDeep: false, overflow };
}

// The cheap test first (as Fastify's secure-json-parse does): only a body whose text could hold one of these keys,
// written plainly or with \u escapes, gets the walk over the parsed value.
const MAYBE_PROTO =
  /"(?:_|\\u005[Ff])(?:_|\\u005[Ff])(?:p|\\u0070)(?:r|\\u0072)(?:o|\\u006[Ff])(?:t|\\u0074)(?:o|\\u006[Ff])(?:_|\\u005[Ff])(?:_|\\u005[Ff])"\s*:/;
const MAYBE_CONSTRUCTOR =
  /"(?:c|\\u0063)(?:o|\\u006[Ff])(?:n|\\u006[Ee])(?:s|\\u0073)(?:t|\\u0074)(?:r|\\u0072)(?:u|\\u0075)(?:c|\\u0063)(?:t|\\u0074)(?:o|\\u006[Ff])(?:r|\\u0072)"\s*:/;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** The path of the first ±Infinity in a parsed value (only walked when the scan saw an overflowing number). */
export function findNonFinite(value: unknown, path = ''): string | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : path || 'body';
  if (!isRecord(value)) return undefined;
  if (Array.isArray(value)) {
    for (let k = 0; k < value.length; k++) {
      const found = findNonFinite(value[k], `${path}[${k}]`);
      if (found) return found;
    }
    return undefined;
  }
  for (const key of Object.keys(value)) {
    const found = findNonFinite(value[key], path === '' ? key : `${path}.${key}`);
    if (found) return found;
  }
  return undefined;
}

/**
 * The path of the first key that could pollute a prototype once the value is merged into another object. The walk
 * is recursive, but only over a value already bounded by the depth scan.
 */
export function findPrototypeKey(value: unknown, path = ''): string | undefined {
  if (!isRecord(value)) return undefined;
  if (Array.isArray(value)) {
    for (let k = 0; k < value.length; k++) {
      const found = findPrototypeKey(value[k], `${path}[${k}]`);
      if (found) return found;
    }
    return undefined;
  }
  const at = (key: string): string => (path === '' ? key : `${path}.${key}`);
  if (Object.hasOwn(value, '__proto__')) return at('__proto__');
  const ctor = Object.hasOwn(value, 'constructor') ? value.constructor : undefined;
  if (isRecord(ctor) && Object.hasOwn(ctor, 'prototype')) return at('constructor.prototype');
  for (const key of Object.keys(value)) {
    const found = findPrototypeKey(value[key], at(key));
    if (found) return found;
  }
  return undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parse a request body, or throw the GatewayError (400) the caller gets. */
export function parseJsonBody(body: Buffer, limits: JsonBodyLimits): unknown {
  if (body.length === 0) {
    throw new GatewayError('INVALID_JSON', 'the request body is empty; send a JSON object', {
      param: 'body',
    });
  }
  const scan = scanJson(body, limits.maxDepth);
  if (scan.tooDeep) {
    throw new GatewayError(
      'INVALID_JSON',
      `the request body is nested deeper than ${limits.maxDepth} levels of objects and arrays (JSON_MAX_DEPTH)`,
      { param: 'body' },
    );
  }
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new GatewayError('INVALID_JSON', 'the request body is not valid UTF-8', { param: 'body' });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new GatewayError('INVALID_JSON', 'the request body is not valid JSON', { param: 'body' });
  }
  if (scan.overflow !== undefined) {
    // Refused wherever it is, passed-on fields included: JSON.stringify would send it to DashScope as null.
    const token = scan.overflow.length > 40 ? `${scan.overflow.slice(0, 40)}…` : scan.overflow;
    throw invalidInput(
      findNonFinite(value) ?? 'body',
      `must be a finite number; got Infinity (${token} is beyond the range of a double, ±1.8e308)`,
    );
  }
  if (MAYBE_PROTO.test(text) || MAYBE_CONSTRUCTOR.test(text)) {
    const key = findPrototypeKey(value);
    if (key) {
      throw new GatewayError(
        'INVALID_INPUT',
        `${key}: this key is not accepted (it could alter object prototypes)`,
        {
          param: key,
        },
      );
    }
  }
  return value;
}

/**
 * Install the parser on `app` (replacing Fastify's). Plugins registered afterwards inherit it; one that needs
 * another (the task routes accept an empty body) removes it in its own scope.
 */
export function registerJsonBody(app: FastifyInstance, limits: JsonBodyLimits): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer' },
    (_request: FastifyRequest, body: Buffer | string, done: (err: Error | null, value?: unknown) => void) => {
      try {
        done(null, parseJsonBody(typeof body === 'string' ? Buffer.from(body) : body, limits));
      } catch (err) {
        done(err as Error);
      }
    },
  );
}
