/**
 * The one error class of the lock runtime (`firmware-sim/src/lock/`), modelled on `HardwareError`
 * (`hardware/src/interfaces.ts`): a stable `code`, a message that says what is wrong and what to do.
 *
 * A `LockError` never reaches a rider: the authority turns every failure into a wire status (SPEC.md §10).
 * It is thrown to the code that builds the runtime (bad options, use after close).
 */

import { TandemError } from '../../../protocol/src/errors.js';

/** Codes for every failure of the lock runtime's own API. */
export type LockErrorCode =
  | 'ERR_LOCK_INVALID_ARGUMENT' // an option or argument outside its documented range
  | 'ERR_LOCK_NOT_STARTED' // used before start() resolved
  | 'ERR_LOCK_CLOSED'; // used after close()

/** The one error class of `firmware-sim/src/lock/`. */
export class LockError extends TandemError {
  readonly code: LockErrorCode;
  constructor(code: LockErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LockError';
    this.code = code;
  }
}

/** True when `err` is a {@link LockError}, optionally with the given code. */
export function isLockError(err: unknown, code?: LockErrorCode): err is LockError {
  return err instanceof LockError && (code === undefined || err.code === code);
}
