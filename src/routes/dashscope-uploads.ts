/**
 * `GET /api/v1/uploads?action=getPolicy&model=…` (docs/dashscope-contract.md §2.7, §3.5, §6.4): the first step of
 * the DashScope SDKs' local-file flow. The policy is passed through unchanged, so the SDK then posts the file straight
 * to `data.upload_host` (an Alibaba Cloud OSS bucket, not DashScope and not this gateway) and sends the resulting
 * `oss://` URL in its next call; the gateway adds `X-DashScope-OssResourceResolve: enable` to calls carrying such
 * URLs. Callers therefore need egress to the OSS host (README "Upload policy").
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { callContext } from '../http/call-context.js';
import { uploadPolicyPath } from '../upstream/paths.js';
import { parseBody } from '../validation.js';

const PolicyQuery = z.object({
  action: z.literal('getPolicy', { error: 'must be "getPolicy" (the only upload action DashScope offers)' }),
  model: z
    .string({ error: 'must name the model the file will be used with' })
    .regex(
      /^[A-Za-z0-9._-]{1,128}$/,
      'must be a model name: 1 to 128 characters of A-Z, a-z, 0-9, ".", "_", "-"',
    ),
});

/** The policy must at least say where to upload, or the SDK fails later with a confusing error. */
const PolicyReply = z.looseObject({
  data: z.looseObject({ upload_host: z.string().min(1), upload_dir: z.string() }),
});

export async function dashscopeUploadRoutes(app: FastifyInstance): Promise<void> {
  const { upstream, models } = app.gw;
  app.get('/api/v1/uploads', async (request, reply) => {
    const q = parseBody(PolicyQuery, { ...(request.query as Record<string, unknown>) });
    request.ctx.model = q.model;
    const ctx = callContext(request, reply);
    const { res } = await upstream.json(
      {
        method: 'GET',
        path: uploadPolicyPath(q.model),
        requestId: ctx.requestId,
        signal: ctx.signal,
        trace: ctx.trace,
        idempotent: true,
        // The budget is per model, and a budget lives as long as the process: a name the gateway does not serve
        // (any well-formed name is accepted here) shares the `*` budget rather than minting one per invented name.
        model: models.get(q.model) ? q.model : undefined,
      },
      PolicyReply,
      'an upload policy with data.upload_host',
    );
    if (res.requestId) reply.header('x-dashscope-request-id', res.requestId);
    return reply.code(200).type('application/json').send(upstream.scrub(res.body));
  });
}
