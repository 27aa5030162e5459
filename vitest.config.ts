import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    environment: 'node',
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests start real servers on loopback ports; files run in parallel forks, tests inside a file in order.
    pool: 'forks',
    globalSetup: ['test/global-setup.ts'],
  },
});
