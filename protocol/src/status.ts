/**
 * Wire status codes shared by lock, phone and cloud (SPEC.md §10). One byte on the wire. The table
 * {@link STATUS_MEANING} is the text the rider CLI prints; SPEC.md §10 is normative.
 */
export enum Status {
  OK = 0x00,
  MALFORMED = 0x01,
  UNSUPPORTED_VERSION = 0x02,
  TOO_LARGE = 0x03,
  BAD_SIGNATURE = 0x10,
  UNKNOWN_SIGNER = 0x11,
  CHAIN_INVALID = 0x12,
  WRONG_AUDIENCE = 0x13,
  NOT_YET_VALID = 0x14,
  EXPIRED = 0x15,
  TIME_UNCERTAIN = 0x16,
  OUTSIDE_SCHEDULE = 0x17,
  REVOKED = 0x18,
  REVOCATION_STALE = 0x19,
  USES_EXHAUSTED = 0x1a,
  SCOPE_DENIED = 0x1b,
  POP_INVALID = 0x1c,
  CHALLENGE_UNKNOWN = 0x1d,
  CHALLENGE_EXPIRED = 0x1e,
  TOKEN_REF_UNKNOWN = 0x1f,
  RATE_LIMITED = 0x20,
  LOCKED_OUT = 0x21,
  REVOCATION_ROLLBACK = 0x22,
  QUOTA_EXCEEDED = 0x23,
  ACK_MISMATCH = 0x24,
  ANCHOR_ROLLBACK = 0x25,
  ANCHOR_REFUSED = 0x26,
  COMMAND_REPLAYED = 0x27,
  BUSY = 0x30,
  JAMMED = 0x31,
  FAULT = 0x32,
  SAFE_MODE = 0x33,
  ALARM = 0x34,
}

/** What each status means, as printed to people (SPEC.md §10). */
export const STATUS_MEANING: Readonly<Record<Status, string>> = {
  [Status.OK]: 'accepted and done',
  [Status.MALFORMED]: 'the message is not well formed (CBOR, COSE, framing or a field of the wrong type)',
  [Status.UNSUPPORTED_VERSION]: 'the message uses a protocol version this peer does not speak',
  [Status.TOO_LARGE]: 'the message is larger than the limit for its kind',
  [Status.BAD_SIGNATURE]: 'a signature did not verify, or used an algorithm the key is not bound to',
  [Status.UNKNOWN_SIGNER]: 'the token is signed by a key the lock does not trust',
  [Status.CHAIN_INVALID]: 'a delegation chain is too deep or a link widens its parent',
  [Status.WRONG_AUDIENCE]: 'the token is for another lock',
  [Status.NOT_YET_VALID]: 'the token is not valid yet',
  [Status.EXPIRED]: 'the token has expired',
  [Status.TIME_UNCERTAIN]:
    "the lock's clock is too uncertain to decide the token's validity; relay a time beacon",
  [Status.OUTSIDE_SCHEDULE]: "the token's weekly schedule does not allow this time",
  [Status.REVOKED]: 'the token (or a link of its chain) has been revoked',
  [Status.REVOCATION_STALE]:
    'the lock holds an older revocation list than the token requires; relay the latest revocation update',
  [Status.USES_EXHAUSTED]: 'the token has no uses left on this lock',
  [Status.SCOPE_DENIED]: "the token's scope does not include this command",
  [Status.POP_INVALID]: 'the proof of possession does not verify against the key bound to the token',
  [Status.CHALLENGE_UNKNOWN]: 'the challenge is unknown to the lock or was already used',
  [Status.CHALLENGE_EXPIRED]: 'the challenge expired; ask for a fresh one',
  [Status.TOKEN_REF_UNKNOWN]: 'the lock no longer holds the token this reference names; send the full token',
  [Status.RATE_LIMITED]: 'too many refused attempts; wait and retry',
  [Status.LOCKED_OUT]: 'the lock is in lockout after repeated failures; an owner proof clears it',
  [Status.REVOCATION_ROLLBACK]: 'the revocation update is older than the one the lock holds',
  [Status.QUOTA_EXCEEDED]:
    'the tokens under this root already hold all the use counters the lock keeps for one root; ask its owner for a token without a use limit or wait until one expires',
  [Status.ACK_MISMATCH]:
    'the outbox acknowledgement names another outbox epoch or records the lock never queued; nothing dropped',
  [Status.ANCHOR_ROLLBACK]:
    'the anchor update is older than the anchor version the lock holds; nothing changed',
  [Status.ANCHOR_REFUSED]:
    'the anchor update would remove the last issuer anchor or an owner key, reuse a kid for another key, or hold too many issuer anchors; nothing changed',
  [Status.COMMAND_REPLAYED]:
    'a remote command whose sequence is not above the last one the lock accepted (a replay or a re-delivery); nothing done',
  [Status.BUSY]: 'the lock is busy with another command; retry',
  [Status.JAMMED]: 'the solenoid was pulsed but the latch did not move',
  [Status.FAULT]: 'a hardware fault; the lock stays locked',
  [Status.SAFE_MODE]:
    'the lock started in safe mode after finding a corrupt store; only owner management works',
  [Status.ALARM]: 'the lock is in alarm',
};

/** True for a known status byte. */
export function isStatus(n: unknown): n is Status {
  return typeof n === 'number' && Object.prototype.hasOwnProperty.call(STATUS_MEANING, n);
}
