/**
 * The one error family of `gateway/`: every failure of the phone-side client carries a stable `code` and
 * says whether a retry is safe. Shaped after Tesla's vehicle-command errors (`MayHaveSucceeded()`,
 * `Temporary()`): an unlock whose result was lost may still have opened the lock ([TANDEM-STATUS-3]), and a
 * client that retries it blindly could unlock twice.
 */
import type { Status } from '../../protocol/src/status.js';
import { TandemError } from '../../protocol/src/errors.js';

/** Every code a `gateway/` function can throw. */
export type GatewayErrorCode =
  | 'ERR_GW_LOCK_NOT_FOUND' // no advertisement with the lock's tag within the scan timeout
  | 'ERR_GW_TIMEOUT' // the lock did not answer in time (connect, challenge, result)
  | 'ERR_GW_DISCONNECTED' // the link dropped before the exchange finished
  | 'ERR_GW_BLE_UNAVAILABLE' // no usable Bluetooth adapter, or no permission to use it
  | 'ERR_GW_REFUSED' // the lock refused a delivery (time beacon, revocation update, outbox ack)
  | 'ERR_GW_PROTOCOL' // the lock sent something that breaks the GATT flow (SPEC §8)
  | 'ERR_GW_KEY_FILE' // a rider key file is unreadable, malformed or too widely readable
  | 'ERR_GW_OFFLINE' // the cloud cannot be reached (refused, unresolvable, timed out): cached data still serves
  | 'ERR_GW_UNAUTHORIZED' // the cloud refused the session (401, refresh refused): log in again
  | 'ERR_GW_CLOUD' // the cloud refused a request (4xx, with its own code and message) or failed (5xx)
  | 'ERR_GW_LOGIN' // the device authorization grant ended without tokens (denied, expired)
  | 'ERR_GW_SESSION'; // the session file is unreadable, malformed, too widely readable, or there is none

/** Options of {@link GatewayError}. */
export interface GatewayErrorOptions {
  readonly cause?: unknown;
  /**
   * True once the last frame of a request that acts (UNLOCK, LOCK, management) was written and no result
   * arrived: the lock may have acted. Do not retry blindly; ask STATUS first (`LockClient.unlockSafely`).
   */
  readonly mayHaveActed?: boolean;
  /** True when the same call may well succeed a moment later (lock out of range, link dropped early). */
  readonly temporary?: boolean;
  /** For ERR_GW_REFUSED: the status the lock answered. */
  readonly status?: Status;
  /** For ERR_GW_CLOUD and ERR_GW_UNAUTHORIZED: the HTTP status and the cloud's error code (`ERR_API_*`). */
  readonly httpStatus?: number;
  readonly cloudCode?: string;
}

/** Base class of every error thrown by `gateway/`. */
export class GatewayError extends TandemError {
  readonly code: GatewayErrorCode;
  readonly mayHaveActed: boolean;
  readonly temporary: boolean;
  readonly status: Status | undefined;
  readonly httpStatus: number | undefined;
  readonly cloudCode: string | undefined;
  constructor(code: GatewayErrorCode, message: string, options: GatewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.mayHaveActed = options.mayHaveActed ?? false;
    this.temporary = options.temporary ?? false;
    this.status = options.status;
    this.httpStatus = options.httpStatus;
    this.cloudCode = options.cloudCode;
  }
}

/** True when `e` is a {@link GatewayError}, optionally with the given code. */
export function isGatewayError(e: unknown, code?: GatewayErrorCode): e is GatewayError {
  return e instanceof GatewayError && (code === undefined || e.code === code);
}
