/** The problems loadConfig reports for `env` (empty when it loads): one helper for every config test. */
import { ConfigError, loadConfig } from '../../src/config.js';

export function configProblems(
  env: Record<string, string | undefined>,
  readFile?: (path: string) => string,
): string[] {
  try {
    loadConfig(env, readFile);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}
