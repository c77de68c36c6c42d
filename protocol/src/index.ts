/**
 * The entry points of `protocol/`, one group per SPEC.md section: what a lock, a phone or the cloud calls to
 * make, read and check each wire format, and the types those calls take and return. Limits, tables and the
 * building blocks beneath them (CBOR profile, COSE_Sign1, framing constants, claim keys) stay in their section's
 * module (`src/<section>.ts`), which other folders import directly when they need one; `src/lib/` is internal
 * (`npm run check-imports` refuses imports of it from other folders). Trimmed in issue 12 from an `export *`
 * of every module (199 names, of which other folders took 21 through here, in 7 files).
 */

// §10: errors and wire status codes. TandemError is the base of every coded error class of every folder.
export { ProtocolError, TandemError, isProtocolError, isTandemError } from './errors.js';
export type { ProtocolErrorCode } from './errors.js';
export { STATUS_MEANING, Status } from './status.js';

// §3: keys bound to their algorithm.
export {
  exportJwk,
  generateKeyPair,
  privateKeyFromJwk,
  privateKeyFromKeyObject,
  publicKeyFromJwk,
  publicKeyFromRaw,
  signBytes,
  verifyBytes,
} from './keys.js';
export type { Alg, PrivateKey, PublicKey } from './keys.js';

// §5.1-§5.7: tokens, schedules, delegation chains and their one verification entry point.
export { SCOPES, decodeToken, hasScope, mintToken } from './token.js';
export type { DecodedToken, MintClaims, Scope, TokenClaims } from './token.js';
export { parseSchedule, scheduleAllows } from './schedule.js';
export type { Schedule, ScheduleWindow } from './schedule.js';
export { chainHash, checkGrant, verifyChain, verifyGrant } from './chain.js';
export type { AnchorLookup, Grant, TimeBound, TrustAnchor, VerifyGrantOptions } from './chain.js';

// §5.8: requests and proof of possession.
export { Command, createRequest, decodeRequest, verifyPop } from './pop.js';
export type { UnlockRequest } from './pop.js';

// §6: revocation updates and their acknowledgements.
export {
  decodeRevocationAck,
  decodeRevocationUpdate,
  encodeRevocationAck,
  encodeRevocationUpdate,
  verifyRevocationAck,
  verifyRevocationUpdate,
} from './revocation.js';
export type { RevocationAck, RevocationEntry, RevocationUpdate } from './revocation.js';

// §6.6: issuer anchor updates and their acknowledgements.
export {
  applyAnchorUpdate,
  decodeAnchorUpdate,
  encodeAnchorAck,
  encodeAnchorUpdate,
  verifyAnchorAck,
  verifyAnchorUpdate,
} from './anchor-update.js';
export type {
  AnchorAck,
  AnchorKey,
  AnchorState,
  AnchorUpdate,
  HeldAnchor,
  VerifiedAnchorUpdate,
} from './anchor-update.js';

// §12: claim receipts.
export { decodeClaimReceipt, encodeClaimReceipt, verifyClaimReceipt } from './claim-receipt.js';
export type { ClaimReceipt } from './claim-receipt.js';

// §9.11: remote commands (LOCK only).
export {
  MAX_REMOTE_COMMAND_BYTES,
  MAX_REMOTE_COMMAND_LIFETIME_S,
  checkRemoteCommandSequence,
  checkRemoteCommandTime,
  decodeRemoteCommand,
  encodeRemoteCommand,
  verifyRemoteCommand,
} from './remote-command.js';
export type { RemoteCommand, RemoteCommandKind } from './remote-command.js';

// §7: time beacons.
export { decodeTimeBeacon, encodeTimeBeacon, verifyTimeBeacon } from './time-beacon.js';
export type { BeaconBound, TimeBeacon } from './time-beacon.js';

// §8: the GATT service's messages.
export {
  Reassembler,
  decodeChallenge,
  decodeLockInfo,
  decodeResult,
  encodeChallenge,
  encodeLockInfo,
  encodeResult,
  frameMessage,
} from './gatt.js';
export type { Challenge, LockInfo, LockState, Message, Result } from './gatt.js';

// §9: MQTT topics and signed payloads.
export {
  decodeAlert,
  decodeAuditRecord,
  encodeAlert,
  encodeAuditRecord,
  encodeLockState,
  encodeOutboxAck,
  encodeTimeRequest,
  lockTopicFilter,
  parseTopic,
  topicFor,
  verifyAlert,
  verifyAuditRecord,
  verifyLockState,
  verifyOutboxAck,
  verifyTimeRequest,
} from './mqtt.js';
export type {
  Alert,
  AlertKind,
  AuditRecord,
  LockStateReport,
  LockTopicKind,
  OutboxAck,
  TimeRequest,
} from './mqtt.js';

// The conventions §6-§9 share ([TANDEM-GEN-3] lock ids, uint32 fields, content formats, detail maps); the rest
// of lib/ stays internal.
export { CONTENT_FORMAT, LOCK_ID_PATTERN, UINT32_MAX, isLockId } from './lib/signed-payload.js';
export type { DetailValue } from './lib/signed-payload.js';
