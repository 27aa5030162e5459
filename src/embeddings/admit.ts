/**
 * The admission of a split embedding request: all its calls at once, before any of them (src/ratelimit/), with the
 * 400 for a request that can never fit worded in the request's own unit (inputs), not only in calls.
 */
import { GatewayError, invalidInput } from '../errors.js';
import type { CallContext } from '../http/call-context.js';
import type { Admission } from '../ratelimit/governor.js';

export async function admitChunks(
  ctx: CallContext,
  model: { name: string; maxRows: number },
  tokensPerCall: number[],
): Promise<Admission | undefined> {
  if (!ctx.governor) return undefined;
  try {
    return await ctx.governor.admit({
      model: model.name,
      calls: tokensPerCall.length,
      tokens: tokensPerCall,
      caller: ctx.caller,
      deadline: ctx.deadline,
      signal: ctx.signal,
    });
  } catch (err) {
    if (!(err instanceof GatewayError) || err.kind !== 'INVALID_INPUT') throw err;
    const mean = tokensPerCall.reduce((a, x) => a + x, 0) / Math.max(1, tokensPerCall.length);
    const calls = ctx.governor.largestRequest(model.name, Math.ceil(mean)) ?? 0;
    throw invalidInput(
      'input',
      `${err.message}, i.e. at most ${calls * model.maxRows} inputs at ${model.maxRows} per call to ${model.name}; split it into smaller requests`,
    );
  }
}
