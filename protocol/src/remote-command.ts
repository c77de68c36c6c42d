/**
 * Remote commands (SPEC.md §9.11): the issuer's signed order to a lock, delivered over MQTT. Only LOCK is
 * defined, and the types below cannot hold anything else, so a remote UNLOCK is impossible by construction
 * ([TANDEM-RCMD-2]): unlocking takes a rider's token and proof of possession at the lock (§5.7).
 *
 * COSE_Sign1 by the issuer, `kid` unprotected, content type 65111 ([TANDEM-RCMD-1], [TANDEM-REV-1]):
 *
 * | key | field     | type | rule                                                                   |
 * | --- | --------- | ---- | ---------------------------------------------------------------------- |
 * | 1   | lock id   | tstr | the audience ([TANDEM-GEN-3])                                          |
 * | 2   | command   | uint | 2 = LOCK ([TANDEM-POP-5] numbering); anything else ERR_SCOPE_DENIED     |
 * | 3   | sequence  | uint | ≥ 1, strictly increasing per lock ([TANDEM-RCMD-4])                    |
 * | 4   | issued at | uint | Unix seconds, start of validity                                        |
 * | 5   | expiry    | uint | Unix seconds, end of validity (exclusive): issued at < expiry ≤ +60 s   |
 */
import type { CborLimits, CborValue } from './cbor.js';
import { encode } from './cbor.js';
import type { TimeBound } from './chain.js';
import type { Sign1 } from './cose.js';
import { ProtocolError } from './errors.js';
import type { PrivateKey, PublicKey } from './keys.js';
import {
  CONTENT_FORMAT,
  PayloadReader,
  checkLockAudience,
  openSign1,
  signPayload,
  verifyIssuerSigned,
} from './lib/signed-payload.js';
import { Command } from './pop.js';

/** Largest encoded remote command ([TANDEM-RCMD-1]). */
export const MAX_REMOTE_COMMAND_BYTES = 256;
/** Longest validity of a remote command, seconds ([TANDEM-RCMD-3]). */
export const MAX_REMOTE_COMMAND_LIFETIME_S = 60;
/** The only command a remote command may carry ([TANDEM-RCMD-2]). */
export const REMOTE_COMMANDS = [Command.LOCK] as const;
/** A command a remote command may carry: LOCK only. */
export type RemoteCommandKind = (typeof REMOTE_COMMANDS)[number];

const LIMITS: CborLimits = { maxBytes: MAX_REMOTE_COMMAND_BYTES, maxDepth: 1, maxItems: 8 };
const KEYS = { 1: 'lock id', 2: 'command', 3: 'sequence', 4: 'issued at', 5: 'expiry' } as const;
const WHAT = 'remote command';

/** The typed body of a remote command ([TANDEM-RCMD-1]). */
export interface RemoteCommand {
  readonly lockId: string;
  readonly command: RemoteCommandKind;
  readonly sequence: number;
  readonly issuedAt: number;
  readonly expiry: number;
}

/** A structurally valid remote command; its signature is not yet verified. */
export interface DecodedRemoteCommand {
  readonly sign1: Sign1;
  readonly command: RemoteCommand;
}

function parseBody(payload: Uint8Array): RemoteCommand {
  const r: PayloadReader = PayloadReader.parse(payload, LIMITS, WHAT, KEYS);
  const lockId = r.lockId(1);
  const raw = r.uint(2);
  // [TANDEM-RCMD-2]: LOCK only. A well-formed number naming another command (UNLOCK above all) is a scope the
  // issuer does not have over MQTT, refused before anything else is looked at and never acted on.
  if (!(REMOTE_COMMANDS as readonly number[]).includes(raw)) {
    throw new ProtocolError(
      'ERR_SCOPE_DENIED',
      `${WHAT} "command" (key 2) ${raw} is not allowed: only ${Command.LOCK} (LOCK) may be sent remotely`,
    );
  }
  const sequence = r.uint(3, 1);
  const issuedAt = r.uint(4);
  const expiry = r.uint(5, 1);
  if (expiry <= issuedAt) r.fail(5, `must be after "issued at" (key 4) ${issuedAt}`);
  if (expiry - issuedAt > MAX_REMOTE_COMMAND_LIFETIME_S) {
    r.fail(5, `must be at most ${MAX_REMOTE_COMMAND_LIFETIME_S} s after "issued at" (key 4) ${issuedAt}`);
  }
  return { lockId, command: raw as RemoteCommandKind, sequence, issuedAt, expiry };
}

function bodyMap(c: RemoteCommand): Map<number, CborValue> {
  return new Map<number, CborValue>([
    [1, c.lockId],
    [2, c.command],
    [3, c.sequence],
    [4, c.issuedAt],
    [5, c.expiry],
  ]);
}

/**
 * Encodes and signs a remote command with the issuer key; `kid` goes in the unprotected header
 * ([TANDEM-RCMD-1]). The body is checked by the decoder's own rules first, so no other command than LOCK can be
 * encoded. Throws ERR_MESSAGE_INVALID, ERR_SCOPE_DENIED or ERR_CBOR_INVALID for an invalid command.
 */
export function encodeRemoteCommand(
  command: RemoteCommand,
  issuerKey: PrivateKey,
  kid: Uint8Array,
): Uint8Array {
  const payload = encode(bodyMap(command));
  parseBody(payload);
  return signPayload(payload, issuerKey, CONTENT_FORMAT.remoteCommand, kid);
}

/** Decodes a remote command without checking its signature ([TANDEM-RCMD-1]). Throws only ProtocolError. */
export function decodeRemoteCommand(bytes: Uint8Array): DecodedRemoteCommand {
  const sign1 = openSign1(bytes, MAX_REMOTE_COMMAND_BYTES, CONTENT_FORMAT.remoteCommand, WHAT);
  return { sign1, command: parseBody(sign1.payload) };
}

/**
 * Decodes and verifies a remote command for lock `expectedLockId` ([TANDEM-RCMD-5] steps 1-3): structure
 * (ERR_TOO_LARGE, ERR_CBOR_INVALID, ERR_COSE_INVALID, ERR_MESSAGE_INVALID, ERR_SCOPE_DENIED), the issuer anchor
 * named by `kid` (ERR_KEY_UNKNOWN), the signature (ERR_SIGNATURE_INVALID), then the audience
 * (ERR_AUDIENCE_MISMATCH). Time and sequence are the lock's state: {@link checkRemoteCommandTime} and the
 * caller. Throws only ProtocolError.
 */
export function verifyRemoteCommand(
  bytes: Uint8Array,
  resolveIssuerKey: (kid: Uint8Array) => PublicKey | undefined,
  expectedLockId: string,
): RemoteCommand {
  const { sign1, command } = decodeRemoteCommand(bytes);
  verifyIssuerSigned(sign1, resolveIssuerKey, WHAT);
  checkLockAudience(command.lockId, expectedLockId, WHAT);
  return command;
}

/**
 * [TANDEM-RCMD-3]: every instant of the lock's trusted interval must lie in [issued at, expiry), as for a
 * token ([TANDEM-TIME-CHECK]). Entirely after: ERR_TOKEN_EXPIRED (EXPIRED); entirely before:
 * ERR_TOKEN_NOT_YET_VALID (NOT_YET_VALID); straddling an edge, including an unbounded interval after a reboot
 * ([TANDEM-TIME-6]): ERR_TIME_UNCERTAIN.
 */
export function checkRemoteCommandTime(command: RemoteCommand, bound: TimeBound): void {
  if (bound.earliest >= command.expiry) {
    throw new ProtocolError(
      'ERR_TOKEN_EXPIRED',
      `${WHAT} expired ("expiry" (key 5) ${command.expiry} has passed)`,
    );
  }
  if (bound.latest < command.issuedAt) {
    throw new ProtocolError(
      'ERR_TOKEN_NOT_YET_VALID',
      `${WHAT} is not valid yet ("issued at" (key 4) ${command.issuedAt} is in the future)`,
    );
  }
  if (bound.latest >= command.expiry || bound.earliest < command.issuedAt) {
    throw new ProtocolError(
      'ERR_TIME_UNCERTAIN',
      `clock uncertainty [${bound.earliest}, ${bound.latest}] straddles the ${WHAT}'s validity [${command.issuedAt}, ${command.expiry})`,
    );
  }
}

/**
 * [TANDEM-RCMD-4]: a command whose sequence is not above the last one the lock accepted is a replay (or a
 * broker's re-delivery of one already done): ERR_COMMAND_REPLAYED (COMMAND_REPLAYED).
 */
export function checkRemoteCommandSequence(command: RemoteCommand, lastAccepted: number): void {
  if (command.sequence <= lastAccepted) {
    throw new ProtocolError(
      'ERR_COMMAND_REPLAYED',
      `${WHAT} "sequence" (key 3) ${command.sequence} is not above the last accepted ${lastAccepted}`,
    );
  }
}
