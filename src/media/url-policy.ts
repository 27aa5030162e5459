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

const DATA_URI = /^data:([\w.+-]+\/[\w.+-]+)?((?:;[\w-]+=[^;,]*)*);base64,/i;
const BASE64_BODY = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

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
    const m = DATA_URI.exec(v);
    if (!m) throw invalidInput(param, 'is a data URI but not base64 (expected data:<mime>;base64,<data>)');
    const payload = v.slice(m[0].length);
    if (!BASE64_BODY.test(payload))
      throw invalidInput(param, 'has a data URI whose payload is not valid base64');
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

/** True when any value needs DashScope to resolve temporary-storage URLs. */
export function needsOssResolve(refs: readonly MediaRef[]): boolean {
  return refs.some((r) => r.kind === 'oss');
}
