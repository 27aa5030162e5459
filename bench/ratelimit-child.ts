/**
 * One server of bench/ratelimit.ts in its own process (CPU time and memory are its own). Bundled with esbuild and
 * forked under plain `node --expose-gc`, like bench/child.ts. IPC:
 *   child → parent  {type:'ready', port}
 *   parent → child  {type:'stats', id, gc}  → {type:'stats', id, stats}   (gc: collect garbage first)
 *   parent → child  {type:'exit'}
 */
import { type Role, startRole } from './roles.js';

export type RlRole = Role;

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

const server = await startRole(role, {
  upstreamKey: opts.upstreamKey,
  upstreamUrl: opts.upstreamUrl,
  gatewayEnv: { GATEWAY_API_KEYS: 'bench:gw-bench-key-0123456789', ...opts.env },
});
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
