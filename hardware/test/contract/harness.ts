import { expect } from 'vitest';
import { HardwareError } from '../../src/interfaces.js';

/** How a contract run gets device time to pass: a ManualClock for simulations, real waiting on hardware. */
export type Elapse = (ms: number) => Promise<void>;

/** Await a rejection and check it is a HardwareError with `code`. */
export async function expectHardwareError(promise: Promise<unknown>, code: string): Promise<HardwareError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected a HardwareError ${code}`).toBeInstanceOf(HardwareError);
  expect((error as HardwareError).code).toBe(code);
  return error as HardwareError;
}

export function realElapse(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Title of a suite, saying what hardware it needs when it is skipped. */
export function suiteTitle(name: string, skip: string | undefined): string {
  return skip === undefined ? name : `${name} (skipped: ${skip})`;
}
