/**
 * `npm run demo`: the gateway on the built-in DashScope emulator, no key or network needed.
 * Prints a ready-to-paste curl with the demo caller key.
 */
import { buildApp } from './app.js';
import { loadConfig } from './config.js';
import { startEmulator } from './emulator/server.js';

const DEMO_UPSTREAM_KEY = 'sk-emulator-demo';
const DEMO_CALLER_KEY = 'demo-key-123456';

const emu = await startEmulator({ apiKey: DEMO_UPSTREAM_KEY });
const config = loadConfig({
  ...process.env,
  PORT: process.env.PORT ?? '8080',
  HOST: process.env.HOST ?? '127.0.0.1',
  DASHSCOPE_API_KEY: DEMO_UPSTREAM_KEY,
  DASHSCOPE_API_KEY_FILE: undefined,
  DASHSCOPE_BASE_URL: emu.url,
  GATEWAY_API_KEYS: process.env.GATEWAY_API_KEYS ?? `demo:${DEMO_CALLER_KEY}`,
});
const app = await buildApp(config);
const address = await app.listen({ port: config.port, host: config.host });
const key = config.gatewayKeys[0]?.key ?? DEMO_CALLER_KEY;
process.stdout.write(`
dashscope-gateway demo: gateway ${address} → built-in DashScope emulator ${emu.url}
Try it:

  curl -s ${address}/v1/embeddings \\
    -H 'Authorization: Bearer ${key}' -H 'Content-Type: application/json' \\
    -d '{"model":"text-embedding-v4","input":["hello","world"],"dimensions":64}'

  curl -s ${address}/api/v1/services/embeddings/text-embedding/text-embedding \\
    -H 'Authorization: Bearer ${key}' -H 'Content-Type: application/json' \\
    -d '{"model":"text-embedding-v4","input":{"texts":["hello"]},"parameters":{"dimension":64,"output_type":"dense&sparse"}}'

Ctrl-C to stop.
`);
const stop = (): void => {
  Promise.all([app.close(), emu.close()]).then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
