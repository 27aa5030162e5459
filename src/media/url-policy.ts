/**
 * What a media value in a caller's request may be, for every route that carries images, audio or video:
 * - `http(s)://…`: passed on as is (the gateway does not fetch it; DashScope does);
 * - `oss://…`: a DashScope temporary-storage object; passed on, and the upstream call must carry
 *   `X-DashScope-OssResourceResolve: enable` or DashScope will not resolve it;
 * - `data:<mime>;base64,…`: decoded here so its real size and format can be checked before any upstream call.
 * Anything else — `file://` URIs, bare paths, other schemes — is refused: the gateway never reads its own
 * filesystem on a caller's behalf (the DashScope SDKs upload local files first; callers must do the same).
 */
import { invalidInput } from '../errors.js';

export type MediaRef =
  | { kind: 'url'; value: string }
  | { kind: 'oss'; value: string }
  | { kind: 'data'; declaredMime: string; bytes: Buffer };

/**
 * Longest data-URI header accepted, in characters: everything between `data:` and the first `,` (the mime type,
 * any `;name=value` parameters and `;base64`). A registered mime type is at most 127 + 1 + 127 characters, so 256
 * leaves room for a parameter or two; the bound keeps the header regex's work constant whatever the caller sends.
 */
export const DATA_URI_MAX_HEADER_CHARS = 256;

// Applied only to the header (at most DATA_URI_MAX_HEADER_CHARS characters), so its work is bounded; within it,
// no two parts can match the same characters (`[^;,]` stops at the next `;`), so it does not backtrack either.
const DATA_URI_HEADER = /^([\w.+-]+\/[\w.+-]+)?((?:;[\w-]+=[^;,]*)*);base64$/i;

/** Classify a media value or throw a 400 naming `param`. */
export function classifyMedia(value: unknown, param: string): MediaRef {
  if (typeof value !== 'string' || value.trim() === '') {
    throw invalidInput(param, 'must be an http(s) URL, an oss:// URL or a base64 data URI');
  }
  const v = value.trim();
  const lower = v.slice(0, 16).toLowerCase();
  if (lower.startsWith('https://') || lower.startsWith('http://')) {
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      throw invalidInput(param, 'is not a valid URL');
    }
    if (url.hostname === '') throw invalidInput(param, 'is not a valid URL');
    return { kind: 'url', value: v };
  }
  if (lower.startsWith('oss://')) return { kind: 'oss', value: v };
  if (lower.startsWith('data:')) {
    // Only the first DATA_URI_MAX_HEADER_CHARS + 1 characters are searched for the comma: a 5 MB value without
    // one costs no more than a short one.
    const comma = v.slice(0, 5 + DATA_URI_MAX_HEADER_CHARS + 1).indexOf(',');
    if (comma < 0) {
      throw invalidInput(
        param,
        v.length > 5 + DATA_URI_MAX_HEADER_CHARS
          ? `has a data URI whose header (the part between data: and the first comma) is longer than ${DATA_URI_MAX_HEADER_CHARS} characters (expected data:<mime>;base64,<data>)`
          : 'is a data URI but not base64 (expected data:<mime>;base64,<data>)',
      );
    }
    const m = DATA_URI_HEADER.exec(v.slice(5, comma));
    if (!m) throw invalidInput(param, 'is a data URI but not base64 (expected data:<mime>;base64,<data>)');
    const payload = v.slice(comma + 1);
    if (!isBase64Body(payload)) throw invalidInput(param, 'has a data URI whose payload is not valid base64');
    const bytes = Buffer.from(payload, 'base64');
    if (bytes.length === 0) throw invalidInput(param, 'has an empty data URI');
    return { kind: 'data', declaredMime: (m[1] ?? '').toLowerCase(), bytes };
  }
  if (lower.startsWith('file:')) {
    throw invalidInput(
      param,
      'file:// URIs are refused: the gateway never reads its own filesystem. Send an http(s) URL or a base64 data URI (or upload the file to DashScope first and send its oss:// URL)',
    );
  }
  throw invalidInput(
    param,
    'must be an http(s) URL, an oss:// URL or a base64 data URI; local paths are refused (the gateway never reads its own filesystem)',
  );
}

// The payload check in two sticky (`y`) regexes, each a greedy character-class run with nothing after it: it
// matches the longest run at one position and can never backtrack, so each character is looked at once, in
// irregexp's compiled code (7 MB in ~10 ms; a JavaScript loop over the characters took ~80 ms).
const BASE64_RUN = /[A-Za-z0-9+/\s]*/y;
const SPACE_RUN = /\s*/y;

/**
 * The language of the former regex `^[A-Za-z0-9+/\s]*={0,2}\s*$` (which backtracked quadratically over whitespace:
 * 160 KB of it took ~20 s), checked in one linear pass: base64 characters and whitespace (JavaScript's `\s`, as
 * before: Node's decoder skips it), then at most two adjacent `=`, then only whitespace. `=` inside the data, a
 * third `=`, or whitespace between the two `=` are refused, exactly as before.
 */
export function isBase64Body(s: string): boolean {
  BASE64_RUN.lastIndex = 0;
  BASE64_RUN.test(s);
  let i = BASE64_RUN.lastIndex;
  if (i === s.length) return true;
  if (s.charCodeAt(i) !== 0x3d) return false; // stopped at a character that is neither base64, space nor `=`
  i += s.charCodeAt(i + 1) === 0x3d ? 2 : 1;
  SPACE_RUN.lastIndex = i;
  SPACE_RUN.test(s);
  return SPACE_RUN.lastIndex === s.length;
}

/** True when any value needs DashScope to resolve temporary-storage URLs. */
export function needsOssResolve(refs: readonly MediaRef[]): boolean {
  return refs.some((r) => r.kind === 'oss');
}
