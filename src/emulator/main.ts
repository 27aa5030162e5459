/**
 * `npm run emulator`: the DashScope emulator on its own.
 * EMULATOR_PORT (default 9090), EMULATOR_HOST (127.0.0.1), EMULATOR_API_KEY (default sk-emulator),
 * EMULATOR_FAST=true caches replies and records nothing (benchmarks),
 * EMULATOR_RATE_LIMITS='{"text-embedding-v4":{"rpm":1800,"rps":30,"tpm":1200000}}' emulates DashScope's per-model
 * rate limits (none by default).
 */
import { z } from 'zod';
import { EmuRateLimitSchema } from './rate-limits.js';
import { startEmulator } from './server.js';

const port = Number(process.env.EMULATOR_PORT ?? 9090);
const host = process.env.EMULATOR_HOST ?? '127.0.0.1';
const apiKey = process.env.EMULATOR_API_KEY ?? 'sk-emulator';
const fast = process.env.EMULATOR_FAST === 'true';
const rateLimits = process.env.EMULATOR_RATE_LIMITS
  ? z.record(z.string(), EmuRateLimitSchema).parse(JSON.parse(process.env.EMULATOR_RATE_LIMITS))
  : undefined;

const emu = await startEmulator({ port, host, apiKey, fast, rateLimits });
process.stdout.write(
  `DashScope emulator listening on ${emu.url} (key ${apiKey}${fast ? ', fast mode' : ''}${rateLimits ? ', rate limits on' : ''})\n`,
);
const stop = (): void => {
  emu.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
