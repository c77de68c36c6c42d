/**
 * The one error class of the lock's stores, modelled on `HardwareError` in `hardware/src/interfaces.ts`: a
 * stable `code`, a message that says what is wrong and what to do, and the underlying `cause` when there is one.
 */

import { TandemError } from '../../../protocol/src/errors.js';

/** Codes for every failure of a store or of a {@link StoreFs} implementation. */
export type StoreErrorCode =
  | 'ERR_STORE_CORRUPT' // bytes on disk fail their checksum or do not decode: never trusted
  | 'ERR_STORE_FULL' // a documented bound (or the SD card) is full; nothing was written
  | 'ERR_STORE_IO' // the operating system refused a read or write
  | 'ERR_STORE_NOT_FOUND' // a file or directory does not exist (StoreFs only; stores treat it as empty)
  | 'ERR_STORE_STALE_VERSION' // a revocation version older than or equal to the stored one was offered
  | 'ERR_STORE_BASE_MISMATCH' // a revocation delta whose base version is not the stored version
  | 'ERR_STORE_INVALID_ARGUMENT' // a caller passed a value outside the documented range
  | 'ERR_STORE_CLOSED' // the store was used after close() or after a failed write poisoned it
  | 'ERR_STORE_POWER_LOST'; // simulated power cut (CrashingStoreFs): nothing after it happened

/** The one error class of `firmware-sim/src/store/`. `code` is stable; `message` names what is wrong. */
export class StoreError extends TandemError {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}

/** True when `err` is a {@link StoreError} with the given code. */
export function isStoreError(err: unknown, code?: StoreErrorCode): err is StoreError {
  return err instanceof StoreError && (code === undefined || err.code === code);
}
