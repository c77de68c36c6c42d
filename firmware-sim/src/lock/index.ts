/** The lock runtime core (README.md, "Lock runtime"): state machine, trusted time, the authority, management. */
export { LockError, isLockError } from './errors.js';
export type { LockErrorCode } from './errors.js';
export { LockStateMachine, reportedState } from './lock-state-machine.js';
export type {
  LockStateMachineOptions,
  MechanismState,
  StateTransition,
  TransitionReason,
  UnlockOutcome,
} from './lock-state-machine.js';
export { TrustedClock, TRUSTED_CLOCK_DEFAULTS } from './trusted-clock.js';
export type { TimeSource, TrustedClockOptions } from './trusted-clock.js';
export { ChallengeBook } from './challenges.js';
export type { ChallengeBookOptions, IssuedChallenge, RandomSource, TakenChallenge } from './challenges.js';
export { LOCKOUT_EVIDENCE, LockoutBook, RateLimiter } from './rate-limiter.js';
export type { LockoutBookOptions, RateLimiterOptions, RateVerdict } from './rate-limiter.js';
export {
  ANCHORS_STORE_KEY,
  ANCHOR_VERSION_STORE_KEY,
  AnchorStore,
  CONFIG_KEYS,
  CONFIG_STORE_KEY,
  DEFAULT_LOCK_CONFIG,
  LOCKOUT_STORE_KEY,
  READ_AUDIT_MAX,
  decodeCommandArgs,
  isManagementCommand,
  isTimeZone,
  loadLockConfig,
} from './management.js';
export type { AnchorRecord, AnchorRemoveRefusal, CommandArgs, LockConfig } from './management.js';
export {
  AUDIT_PEER_MAX,
  auditRecordCbor,
  decodeAuditEntry,
  describeAuditRecord,
  kindOfEvent,
  legacyChainHead,
  verifyAuditTrail,
} from './audit.js';
export type { AuditEntry, AuditKind, AuditTrailVerification } from './audit.js';
export { openLockStores } from './stores.js';
export type { LockStores, OpenLockStoresOptions, OpenedLockStores } from './stores.js';
export { ChainCache } from './chain-cache.js';
export {
  READ_ONLY_COMMANDS,
  decide,
  decodeStep,
  isOwnerSelf,
  keyThumbprint,
  shortThumbprint,
  tokenStateId,
} from './decision.js';
export type { CountedToken, DecodedRequest, HeldState, Signers, Verdict } from './decision.js';
export { LockAuthority } from './lock-authority.js';
export { REMOTE_SEQUENCE_KEY, lastRemoteSequence, runRemoteCommand } from './remote-command.js';
export type { RemoteCommandResult, RemoteCommandTarget } from './remote-command.js';
export type {
  AuthorityEvent,
  AuthorityStores,
  DeliveryResult,
  LockAuthorityOptions,
  LockResult,
  LockSnapshot,
  RequestContext,
} from './lock-authority.js';
