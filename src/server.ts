/**
 * Production entry point (`npm start` = `node dist/server.js`): parse config from the environment, build the app,
 * listen, and stop gracefully on SIGTERM/SIGINT (see shutdown below). Exits 1 with one message listing every
 * configuration problem, or one line when the port cannot be taken.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { buildApp, loggerOptions } from './app.js';
import { type Config, ConfigError, loadConfig } from './config.js';

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dashscope-gateway: ${err.message}\nSee .env.example for every variable.\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = pino(loggerOptions(config.logLevel));
  const app = await buildApp(config, { logger });
  if (config.gatewayKeys.length === 0) {
    logger.warn(
      'GATEWAY_ALLOW_ANONYMOUS=true and no GATEWAY_API_KEYS: anyone who can reach this port can spend the DashScope key',
    );
  }
  await app.listen({ port: config.port, host: config.host });
  logger.info(
    { upstream: config.upstream.baseUrl, callers: config.gatewayKeys.map((k) => k.name) },
    'gateway ready',
  );

  let stopping = false;
  const onSignal = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    void shutdown(app, config.shutdown, logger, signal);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

/**
 * The graceful stop, in three steps counted from the signal:
 *   1. at once: /readyz answers 503 {"status":"closing"} and replies carry `connection: close`, while the gateway
 *      still serves everything, for drainDelayMs: long enough for a load balancer polling /readyz to notice;
 *   2. then: stop accepting, close idle kept-alive sockets, answer everything in flight (calls queued for the
 *      upstream budget included) and exit 0;
 *   3. at timeoutMs: cut what is still running, log one line with how many requests and their ids, exit 1.
 * A second signal changes nothing: the timeout already bounds the stop (kill -9 is there for the impatient).
 */
async function shutdown(
  app: FastifyInstance,
  opts: Config['shutdown'],
  logger: Logger,
  signal: string,
): Promise<void> {
  app.drain.begin();
  logger.info(
    {
      signal,
      drain_delay_ms: opts.drainDelayMs,
      timeout_ms: opts.timeoutMs,
      in_flight: app.drain.inFlight().length,
    },
    'shutting down: /readyz answers 503, still serving until the drain delay ends',
  );
  // Not unref'd: this timer is the backstop that ends the process whatever else happens.
  setTimeout(() => {
    const ids = app.drain.inFlight();
    logger.error(
      { cut: ids.length, request_ids: ids, timeout_ms: opts.timeoutMs },
      `shutdown timeout: cut ${ids.length} request(s) still running after SHUTDOWN_TIMEOUT_MS`,
    );
    process.exit(1);
  }, opts.timeoutMs);
  await sleep(opts.drainDelayMs);
  logger.info(
    { in_flight: app.drain.inFlight().length },
    'drain delay over: no longer accepting connections',
  );
  // Node closes the sockets idle at close(); one that turns idle later (its reply had no `connection: close`,
  // because it began before the signal and was hijacked) would hold the stop until the keep-alive timeout.
  const idle = setInterval(() => app.server.closeIdleConnections(), 250);
  idle.unref();
  try {
    await app.close();
  } catch (err) {
    logger.error({ err }, 'error while closing');
    process.exit(1);
  }
  logger.info('stopped: every request answered');
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `dashscope-gateway: failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
