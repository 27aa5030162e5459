/** The DashScope headers a conversation call carries upstream, besides key, workspace and request id. */
import type { IncomingHttpHeaders } from 'node:http';
import { type MediaRef, needsOssResolve } from '../media/url-policy.js';

export function conversationHeaders(
  callerHeaders: IncomingHttpHeaders,
  media: readonly MediaRef[],
): Record<string, string> {
  const headers: Record<string, string> = {};
  // Without it DashScope does not resolve oss:// temporary-storage URLs (docs/dashscope-contract.md §4.1, §2.7).
  if (needsOssResolve(media)) headers['x-dashscope-ossresourceresolve'] = 'enable';
  // The caller's content-inspection choice is theirs to make (docs/dashscope-contract.md §4.1); a plain token, bounded.
  const inspection = callerHeaders['x-dashscope-datainspection'];
  if (typeof inspection === 'string' && inspection.length <= 256 && !/[\r\n]/.test(inspection)) {
    headers['x-dashscope-datainspection'] = inspection;
  }
  return headers;
}
