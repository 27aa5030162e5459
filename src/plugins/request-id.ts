/**
 * Request ids: accept the load balancer's X-Request-Id when it is well formed, else make one.
 * Fastify's `requestIdHeader` would take the header as-is, so validation happens in genReqId instead.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

const WELL_FORMED = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

export function genRequestId(req: IncomingMessage): string {
  const h = req.headers['x-request-id'];
  if (typeof h === 'string' && WELL_FORMED.test(h)) return h;
  return randomUUID();
}
