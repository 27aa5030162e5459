/**
 * Billed tokens in a conversation reply, for per-caller accounting: OpenAI-compatible replies carry
 * `usage.total_tokens`; native generation replies `usage.input_tokens` + `usage.output_tokens` (some also a total).
 * A reply without a readable usage counts nothing rather than failing the request: this is accounting, not a check.
 */
import { z } from 'zod';

const count = z.number().finite().nonnegative();
const Usage = z.looseObject({
  usage: z.looseObject({
    total_tokens: count.optional(),
    input_tokens: count.optional(),
    output_tokens: count.optional(),
  }),
});

export function conversationTokens(reply: unknown): number | undefined {
  const parsed = Usage.safeParse(reply);
  if (!parsed.success) return undefined;
  const u = parsed.data.usage;
  if (u.total_tokens !== undefined) return u.total_tokens;
  if (u.input_tokens === undefined && u.output_tokens === undefined) return undefined;
  return (u.input_tokens ?? 0) + (u.output_tokens ?? 0);
}
