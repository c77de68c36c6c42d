/**
 * The types the authority and its parts share: what it answers (a {@link LockResult} per request, a
 * {@link DeliveryResult} per delivery), what it reports ({@link AuthorityEvent}), and the stores it uses.
 */
import type { Clock } from '../../../hardware/src/clock.js';
import type { Grant, TimeBound } from '../../../protocol/src/chain.js';
import type { PrivateKey } from '../../../protocol/src/keys.js';
import type { Command, UnlockRequest } from '../../../protocol/src/pop.js';
import type { LockState } from '../../../protocol/src/gatt.js';
import type { Status } from '../../../protocol/src/status.js';
import type { BeaconBound } from '../../../protocol/src/time-beacon.js';
import type { AuditLog } from '../store/audit-log.js';
import type { ConfigStore } from '../store/config-store.js';
import type { Outbox } from '../store/outbox.js';
import type { RevocationStore } from '../store/revocation-store.js';
import type { UseCounterStore } from '../store/use-counter-store.js';
import type { Signers } from './decision.js';
import type { RandomSource } from './challenges.js';
import type { LockStateMachine, MechanismState } from './lock-state-machine.js';
import type { AnchorStore, LockConfig } from './management.js';
import type { TimeSource, TrustedClock } from './trusted-clock.js';

/** The stores the authority uses: structural, so that tests can put a failing double in any place. */
export interface AuthorityStores {
  readonly config: ConfigStore;
  readonly useCounters: Pick<
    UseCounterStore,
    'get' | 'consumeAll' | 'prune' | 'groupSize' | 'maxPerGroup' | 'dropGroups'
  >;
  readonly revocations: Pick<RevocationStore, 'has' | 'version' | 'replace' | 'applyDelta' | 'prune'>;
  readonly audit: Pick<AuditLog, 'append' | 'since' | 'lastSeq' | 'records' | 'chainHead'>;
  readonly outbox: Pick<Outbox, 'enqueueWith' | 'size' | 'peek'>;
}

/** Options of {@link LockAuthority}. */
export interface LockAuthorityOptions {
  /** This lock's id ([TANDEM-GEN-3]); tokens' `aud` and PoP signatures name it. */
  readonly lockId: string;
  readonly anchors: AnchorStore;
  readonly stores: AuthorityStores;
  /** Monotonic time (challenge lifetimes, rate limits). */
  readonly clock: Clock;
  /** Random bytes for nonces (node:crypto on the lock; seeded in tests). */
  readonly random: RandomSource;
  readonly stateMachine: LockStateMachine;
  readonly trustedClock: TrustedClock;
  /** The device key: signs revocation acknowledgements ([TANDEM-REV-9]). */
  readonly deviceKey: PrivateKey;
  /** Settings from the lock's config file; values set by SET_CONFIG (persisted) override them. */
  readonly config?: Partial<LockConfig>;
  /** Corrupt stores found at start ({@link openLockStores}): non-empty starts the lock in safe mode. */
  readonly safeModeReasons?: readonly string[];
  /** Verified chains kept for `chainRef` requests ([TANDEM-POP-6]); default 32. */
  readonly chainCacheSize?: number;
  /**
   * Most outbox messages before audit records of refused attempts stop being queued (default 600): the
   * outbox also carries theft alerts, which a flood of refusals must never crowd out. Accepted attempts are
   * always recorded; a refusal over the budget is counted in the next record's `not_queued` detail
   * ([TANDEM-AUDIT-2]).
   */
  readonly outboxAuditBudget?: number;
  /** Most live challenges (default 16) and per peer (default 2). */
  readonly maxChallenges?: number;
  readonly maxChallengesPerPeer?: number;
}

/** Where a request came from: the transport's id of the connection (BLE address, "serial", "mqtt"). */
export interface RequestContext {
  readonly peer?: string;
}

/** The answer to a request (SPEC.md [TANDEM-GATT-9] and [TANDEM-STATUS-3]). */
export interface LockResult {
  readonly status: Status;
  /** The request's command, when it decoded. */
  readonly command?: Command;
  /**
   * Whether the action may have happened: false for every refusal; true for OK of a command that acts and
   * for JAMMED or FAULT after the solenoid was (or may have been) energised or a management change written.
   */
  readonly mayHaveActed: boolean;
  /** The lock's state after the request. */
  readonly state: LockState;
  /** Trusted time (earliest), Unix seconds. */
  readonly lockTime: number;
  /** The nonce of the challenge answered, when the request decoded. */
  readonly nonce?: Uint8Array;
  /** READ_AUDIT: CBOR array of `[seq, signed audit record]` pairs ([TANDEM-AUDIT-3]). */
  readonly data?: Uint8Array;
  /** Why, for logs and the CLI (never sent to an unauthenticated peer by the lead's transports). */
  readonly message?: string;
}

/** The answer to a revocation update or a time beacon delivered to the lock. */
export interface DeliveryResult {
  readonly status: Status;
  /** Revocation or anchor update: the signed acknowledgement to send back ([TANDEM-REV-9], [TANDEM-ANCHOR-5]). */
  readonly ack?: Uint8Array;
  /** Revocation or anchor update: the version the lock holds after the delivery. */
  readonly version?: number;
  /** Beacon: how it was used. */
  readonly beacon?: BeaconBound;
  readonly message?: string;
}

/** A snapshot of the lock's state ({@link LockAuthority.snapshot}). */
export interface LockSnapshot {
  readonly lockId: string;
  /** As reported on BLE and MQTT ([TANDEM-GATT-9]). */
  readonly state: LockState;
  /** The state machine's own state. */
  readonly mechanism: MechanismState;
  readonly lockedOut: boolean;
  /** Non-empty in safe mode: the stores found corrupt. */
  readonly safeModeReasons: readonly string[];
  readonly revocationVersion: number;
  /** Trusted time bound, Unix seconds. */
  readonly time: TimeBound;
  /** The persisted floor of trusted time. */
  readonly timeFloor: number;
  readonly timeSource: TimeSource;
  /** Seconds, or null when no fresh time since boot (as in the challenge, [TANDEM-GATT-8]). */
  readonly uncertainty: number | null;
  readonly liveChallenges: number;
}

/** What the authority reports to the runtime around it. */
export type AuthorityEvent =
  | { readonly type: 'decision'; readonly peer: string; readonly result: LockResult }
  | { readonly type: 'lockout'; readonly active: boolean; readonly subjects?: readonly string[] }
  | { readonly type: 'safe-mode'; readonly active: boolean; readonly reasons: readonly string[] }
  | { readonly type: 'config'; readonly config: LockConfig }
  | { readonly type: 'anchors-changed' }
  | { readonly type: 'revocation'; readonly version: number }
  | { readonly type: 'store-error'; readonly what: string; readonly error: unknown };

/** What is known of one attempt so far, for its result and audit entry. */
export interface Attempt {
  request?: UnlockRequest;
  grant?: Grant;
  signers?: Signers;
}

/** How the authority's parts report an {@link AuthorityEvent}. */
export type Emit = (e: AuthorityEvent) => void;
