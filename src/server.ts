/**
 * Production entry point: parse config from the environment, build the app, listen, and close gracefully on
 * SIGTERM/SIGINT (readiness answers 503 while in-flight requests finish). Exits 1 with one message listing
 * every configuration problem.
 */
import pino from 'pino';
import { buildApp, loggerOptions } from './app.js';
import { ConfigError, loadConfig } from './config.js';

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

  let closing = false;
  const shutdown = (signal: string): void => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'shutting down: draining in-flight requests');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error while closing');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(
    `dashscope-gateway: failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
