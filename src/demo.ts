/**
 * `npm run demo`: the gateway on the built-in DashScope emulator, no key or network needed.
 * Prints a ready-to-paste curl with the demo caller key.
 *
 * The production upstream budget (RATE_LIMIT_RPM=120 per model) protects a real DashScope account; against the
 * local emulator it would only make a newcomer's second client run wait, so the demo's default is 100000 calls per
 * window. Set RATE_LIMIT_RPM (or RATE_LIMIT_MODELS) to try the budget on the emulator.
 * Start-up problems (a malformed variable, a port in use) end in one line on stderr and exit 1, like `npm start`.
 */
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { type Emulator, startEmulator } from './emulator/server.js';

const DEMO_UPSTREAM_KEY = 'sk-emulator-demo';
const DEMO_CALLER_KEY = 'demo-key-123456';
/** The demo's upstream budget unless RATE_LIMIT_RPM is set: the emulator has no limits to protect. */
const DEMO_RATE_LIMIT_RPM = '100000';

function startupError(err: unknown): string {
  if (err instanceof ConfigError) return `${err.message}\nSee .env.example for every variable.`;
  const code = (err as { code?: unknown }).code;
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    return `cannot listen: ${(err as Error).message} (set PORT or HOST)`;
  }
  return `failed to start: ${err instanceof Error ? err.message : String(err)}`;
}

let emu: Emulator | undefined;
let app: FastifyInstance | undefined;
try {
  emu = await startEmulator({ apiKey: DEMO_UPSTREAM_KEY });
  const config = loadConfig({
    ...process.env,
    PORT: process.env.PORT ?? '8080',
    HOST: process.env.HOST ?? '127.0.0.1',
    DASHSCOPE_API_KEY: DEMO_UPSTREAM_KEY,
    DASHSCOPE_API_KEY_FILE: undefined,
    DASHSCOPE_BASE_URL: emu.url,
    GATEWAY_API_KEYS: process.env.GATEWAY_API_KEYS ?? `demo:${DEMO_CALLER_KEY}`,
    RATE_LIMIT_RPM: process.env.RATE_LIMIT_RPM ?? DEMO_RATE_LIMIT_RPM,
    // The embedding cache is off by default in production (it keeps callers' vectors); the demo shows it.
    EMBEDDING_CACHE: process.env.EMBEDDING_CACHE ?? 'on',
  });
  app = await buildApp(config);
  const address = await app.listen({ port: config.port, host: config.host });
  const key = config.gatewayKeys[0]?.key ?? DEMO_CALLER_KEY;
  process.stdout.write(`
dashscope-gateway demo: gateway ${address} → built-in DashScope emulator ${emu.url}
Upstream budget: ${config.upstreamBudget.defaultLimit} calls per model per ${config.upstreamBudget.windowMs / 1000} s (RATE_LIMIT_RPM; the demo's default is ${DEMO_RATE_LIMIT_RPM}). Embedding cache: ${config.embeddingCache.enabled ? 'on' : 'off'} (EMBEDDING_CACHE; on in the demo).
Try it:

  curl -s ${address}/v1/embeddings \\
    -H 'Authorization: Bearer ${key}' -H 'Content-Type: application/json' \\
    -d '{"model":"text-embedding-v4","input":["hello","world"],"dimensions":64}'

  curl -s ${address}/api/v1/services/embeddings/text-embedding/text-embedding \\
    -H 'Authorization: Bearer ${key}' -H 'Content-Type: application/json' \\
    -d '{"model":"text-embedding-v4","input":{"texts":["hello"]},"parameters":{"dimension":64,"output_type":"dense&sparse"}}'

Ctrl-C to stop.
`);
} catch (err) {
  process.stderr.write(`dashscope-gateway demo: ${startupError(err)}\n`);
  await Promise.allSettled([app?.close(), emu?.close()]);
  process.exit(1);
}

const stop = (): void => {
  Promise.allSettled([app?.close(), emu?.close()]).then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
