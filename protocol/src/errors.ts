/**
 * The one error family of `protocol/` (SPEC.md §10). Every refusal carries a stable `code`; messages name the
 * exact field at fault, using the names of the SPEC and the RFCs. A failed signature says nothing more than
 * that it failed.
 */
import { Status } from './status.js';

/** Every code a `protocol/` function can throw. SPEC.md §10 maps each one to a wire {@link Status}. */
export type ProtocolErrorCode =
  | 'ERR_CBOR_INVALID'
  | 'ERR_TOO_LARGE'
  | 'ERR_COSE_INVALID'
  | 'ERR_ALG_UNSUPPORTED'
  | 'ERR_KEY_INVALID'
  | 'ERR_KEY_UNKNOWN'
  | 'ERR_SIGNATURE_INVALID'
  | 'ERR_CLAIM_INVALID'
  | 'ERR_AUDIENCE_MISMATCH'
  | 'ERR_TOKEN_EXPIRED'
  | 'ERR_TOKEN_NOT_YET_VALID'
  | 'ERR_TIME_UNCERTAIN'
  | 'ERR_OUTSIDE_SCHEDULE'
  | 'ERR_SCOPE_DENIED'
  | 'ERR_CHAIN_INVALID'
  | 'ERR_CHAIN_TOO_DEEP'
  | 'ERR_REVOKED'
  | 'ERR_REVOCATION_STALE'
  | 'ERR_REVOCATION_ROLLBACK'
  | 'ERR_REVOCATION_BASE_MISMATCH'
  | 'ERR_ANCHOR_ROLLBACK'
  | 'ERR_ANCHOR_REFUSED'
  | 'ERR_COMMAND_REPLAYED'
  | 'ERR_POP_INVALID'
  | 'ERR_CHALLENGE_MISMATCH'
  | 'ERR_MESSAGE_INVALID'
  | 'ERR_FRAME_INVALID'
  | 'ERR_TOPIC_INVALID';

/** Wire status for each error code (SPEC.md §10, "Status codes"). */
export const STATUS_OF_ERROR: Readonly<Record<ProtocolErrorCode, Status>> = {
  ERR_CBOR_INVALID: Status.MALFORMED,
  ERR_TOO_LARGE: Status.MALFORMED,
  ERR_COSE_INVALID: Status.MALFORMED,
  ERR_ALG_UNSUPPORTED: Status.BAD_SIGNATURE,
  ERR_KEY_INVALID: Status.MALFORMED,
  ERR_KEY_UNKNOWN: Status.UNKNOWN_SIGNER,
  ERR_SIGNATURE_INVALID: Status.BAD_SIGNATURE,
  ERR_CLAIM_INVALID: Status.MALFORMED,
  ERR_AUDIENCE_MISMATCH: Status.WRONG_AUDIENCE,
  ERR_TOKEN_EXPIRED: Status.EXPIRED,
  ERR_TOKEN_NOT_YET_VALID: Status.NOT_YET_VALID,
  ERR_TIME_UNCERTAIN: Status.TIME_UNCERTAIN,
  ERR_OUTSIDE_SCHEDULE: Status.OUTSIDE_SCHEDULE,
  ERR_SCOPE_DENIED: Status.SCOPE_DENIED,
  ERR_CHAIN_INVALID: Status.CHAIN_INVALID,
  ERR_CHAIN_TOO_DEEP: Status.CHAIN_INVALID,
  ERR_REVOKED: Status.REVOKED,
  ERR_REVOCATION_STALE: Status.REVOCATION_STALE,
  ERR_REVOCATION_ROLLBACK: Status.REVOCATION_ROLLBACK,
  // A delta for another base version: the lock needs a full update or a delta from the version it holds.
  ERR_REVOCATION_BASE_MISMATCH: Status.REVOCATION_STALE,
  ERR_ANCHOR_ROLLBACK: Status.ANCHOR_ROLLBACK,
  ERR_ANCHOR_REFUSED: Status.ANCHOR_REFUSED,
  ERR_COMMAND_REPLAYED: Status.COMMAND_REPLAYED,
  ERR_POP_INVALID: Status.POP_INVALID,
  ERR_CHALLENGE_MISMATCH: Status.CHALLENGE_UNKNOWN,
  ERR_MESSAGE_INVALID: Status.MALFORMED,
  ERR_FRAME_INVALID: Status.MALFORMED,
  ERR_TOPIC_INVALID: Status.MALFORMED,
};

/**
 * The base of every coded error class in Tandem (`ProtocolError`, `HardwareError`, `StoreError`,
 * `GatewayError`, `CloudError`, ...), as jose's `JOSEError` is of its errors: each subclass has a closed union
 * of codes (`ERR_...`) with a one-line meaning each, and a message that names what is wrong. Catch a
 * `TandemError` and read `code` to handle any of them; test both the code and the message. It takes the
 * constructor of `Error`, so that a subclass sets its own `code` and `name`.
 */
export abstract class TandemError extends Error {
  /** The stable code of the failure, from the subclass's union (`ERR_...`). */
  abstract readonly code: string;
}

/** True when `e` is a {@link TandemError} of any folder, optionally with the given code. */
export function isTandemError(e: unknown, code?: string): e is TandemError {
  return e instanceof TandemError && (code === undefined || e.code === code);
}

/** Base class of every error thrown by `protocol/`. */
export class ProtocolError extends TandemError {
  readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProtocolError';
    this.code = code;
  }
  /** The wire status that reports this error (SPEC.md §10). */
  get status(): Status {
    return STATUS_OF_ERROR[this.code];
  }
}

/** True when `e` is a {@link ProtocolError}, optionally with the given code. */
export function isProtocolError(e: unknown, code?: ProtocolErrorCode): e is ProtocolError {
  return e instanceof ProtocolError && (code === undefined || e.code === code);
}
