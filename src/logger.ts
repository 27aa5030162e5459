import type pino from 'pino';

/** Logger options shared by the server and the tests: secrets are redacted by configuration, not discipline. */
export function loggerOptions(level: string): pino.LoggerOptions {
  return {
    level,
    base: { service: 'dashscope-gateway' },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers["x-api-key"]',
        'headers.authorization',
        'headers["x-api-key"]',
        '*.apiKey',
        'apiKey',
      ],
      censor: '[redacted]',
    },
  };
}
