/**
 * A real local Redis Cluster for tests: three redis-server processes with --cluster-enabled yes on free loopback
 * ports, joined with `redis-cli --cluster create … --cluster-replicas 0 --cluster-yes`, and stopped (and their
 * temporary directory removed) by stop().
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './ports.js';

const cli = (port: number, ...args: string[]) =>
  spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: 10_000 });

export class RedisCluster {
  private children: ChildProcess[] = [];
  private dir: string | undefined;
  ports: number[] = [];

  /** redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3 */
  get url(): string {
    return `redis+cluster://${this.ports.map((p) => `127.0.0.1:${p}`).join(',')}`;
  }

  async start(nodes = 3): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'dsgw-cluster-'));
    for (let i = 0; i < nodes; i++) this.ports.push(await freePort());
    for (const port of this.ports) {
      const child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(this.dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          '2000',
          '--save',
          '',
          '--appendonly',
          'no',
          '--dir',
          this.dir,
        ],
        { stdio: 'ignore' },
      );
      this.children.push(child);
    }
    for (const port of this.ports)
      await this.waitFor(() => cli(port, 'ping').stdout?.trim() === 'PONG', port);
    const create = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...this.ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (create.status !== 0)
      throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    for (const port of this.ports) {
      await this.waitFor(() => /cluster_state:ok/.test(cli(port, 'cluster', 'info').stdout ?? ''), port);
    }
  }

  private async waitFor(ok: () => boolean, port: number): Promise<void> {
    const until = Date.now() + 15_000;
    while (Date.now() < until) {
      if (ok()) return;
      await sleep(100);
    }
    throw new Error(`cluster node on port ${port} not ready within 15 s`);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGKILL');
          }),
      ),
    );
    this.children = [];
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}
