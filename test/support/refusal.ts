/**
 * How a test reads a refusal: the GatewayError a call threw (or its promise rejected with). Anything else — no
 * error at all, or an error of another type — fails the test, so a check that stopped refusing cannot pass.
 */
import { expect } from 'vitest';
import { GatewayError } from '../../src/errors.js';

export async function refusal(work: Promise<unknown> | (() => unknown)): Promise<GatewayError> {
  let err: unknown;
  try {
    await (typeof work === 'function' ? work() : work);
  } catch (e) {
    err = e;
  }
  expect(err, 'expected the call to be refused with a GatewayError').toBeInstanceOf(GatewayError);
  return err as GatewayError;
}
