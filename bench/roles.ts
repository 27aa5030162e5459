/**
 * Starts one benchmarked server for a bench child process (bench/child.ts, bench/ratelimit-child.ts).
 * Each role imports only its own modules, so the reference's RSS does not include the gateway's code.
 */
import type { AddressInfo } from 'node:net';
import type { UpstreamRequest } from './static-upstream.js';

export type Role = 'emulator' | 'static' | 'reference' | 'gateway';

export interface RoleOptions {
  upstreamKey: string;
  /** static: the requests whose (emulator) replies it serves. */
  upstreamRequests?: readonly UpstreamRequest[];
  /** reference, gateway: the upstream's URL (emulator or static upstream). */
  upstreamUrl?: string;
  /** gateway: environment on top of the upstream key, base URL and a loopback listener (LOG_LEVEL defaults to warn). */
  gatewayEnv?: Record<string, string | undefined>;
}

export interface RunningRole {
  port: number;
  close: () => Promise<void>;
}

export async function startRole(role: Role, opts: RoleOptions): Promise<RunningRole> {
  if (role === 'emulator') {
    const { startEmulator } = await import('../src/emulator/server.js');
    const emu = await startEmulator({ apiKey: opts.upstreamKey, fast: true });
    return { port: emu.port, close: () => emu.close() };
  }
  if (role === 'static') {
    const { prepareReplies, startStaticUpstream } = await import('./static-upstream.js');
    const replies = await prepareReplies(opts.upstreamKey, opts.upstreamRequests ?? []);
    return startStaticUpstream(replies);
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
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: '0',
    ...opts.gatewayEnv,
  });
  // Logs go to stdout, which the parent points at a file: the access-log cost includes a real write.
  const app = await buildApp(config);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
}
