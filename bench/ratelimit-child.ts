/**
 * One server of bench/ratelimit.ts in its own process (CPU time and memory are its own). Bundled with esbuild and
 * forked under plain `node --expose-gc`, like bench/child.ts. IPC:
 *   child → parent  {type:'ready', port}
 *   parent → child  {type:'stats', id, gc}  → {type:'stats', id, stats}   (gc: collect garbage first)
 *   parent → child  {type:'exit'}
 */
import type { AddressInfo } from 'node:net';

export type RlRole = 'emulator' | 'reference' | 'gateway';

export interface RlChildOptions {
  upstreamKey: string;
  upstreamUrl?: string;
  /** gateway: the environment on top of the basics (budget settings, REDIS_URL). */
  env?: Record<string, string>;
}

export interface RlStats {
  userUs: number;
  systemUs: number;
  rssBytes: number;
  heapUsedBytes: number;
}

export type RlParentMessage = { type: 'stats'; id: number; gc: boolean } | { type: 'exit' };
export type RlChildMessage = { type: 'ready'; port: number } | { type: 'stats'; id: number; stats: RlStats };

const [role, json] = process.argv.slice(2) as [RlRole, string];
const opts = JSON.parse(json) as RlChildOptions;

async function start(): Promise<{ port: number; close: () => Promise<void> }> {
  if (role === 'emulator') {
    const { startEmulator } = await import('../src/emulator/server.js');
    const emu = await startEmulator({ apiKey: opts.upstreamKey, fast: true });
    return { port: emu.port, close: () => emu.close() };
  }
  if (role === 'reference') {
    const { buildReference } = await import('./reference.js');
    const app = await buildReference({ upstream: opts.upstreamUrl!, apiKey: opts.upstreamKey });
    await app.listen({ port: 0, host: '127.0.0.1' });
    return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
  }
  const { buildApp } = await import('../src/app.js');
  const { loadConfig } = await import('../src/config.js');
  const config = loadConfig({
    DASHSCOPE_API_KEY: opts.upstreamKey,
    DASHSCOPE_BASE_URL: opts.upstreamUrl,
    GATEWAY_API_KEYS: 'bench:gw-bench-key-0123456789',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: '0',
    ...opts.env,
  });
  const app = await buildApp(config);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
}

const server = await start();
const send = (m: RlChildMessage): void => {
  process.send?.(m);
};
const gc = (globalThis as { gc?: () => void }).gc;

process.on('message', (m: RlParentMessage) => {
  if (m.type === 'exit') {
    setTimeout(() => process.exit(0), 3_000).unref();
    server.close().then(() => process.exit(0));
    return;
  }
  if (m.gc && gc) {
    gc();
    gc();
  }
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  send({
    type: 'stats',
    id: m.id,
    stats: { userUs: cpu.user, systemUs: cpu.system, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed },
  });
});
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', port: server.port });
