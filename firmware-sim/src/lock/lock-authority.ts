/**
 * The lock's authority (issue 3, "What it does" 3): decides every request offline with {@link decide}
 * (SPEC.md §5.7, the order is in `decision.ts`), counts uses durably before acting, acts through the
 * {@link LockStateMachine}, and writes every attempt to the audit log and the outbox.
 *
 * Before §5.7 (cheap refusals that parse nothing and spend no challenge):
 *   BUSY while another command acts; RATE_LIMITED while the peer (or, briefly, every peer) is backing off.
 * Then, for each request:
 *   1. decode the request and its args ({@link decodeStep}); spend the challenge it names, if this peer read
 *      it ([TANDEM-POP-4], [TANDEM-POP-7]);
 *   2. {@link decide}: pure and synchronous, so nothing interleaves between spending the challenge and
 *      claiming the mechanism;
 *   3. after the verdict: charge lockout evidence a key holder caused ([TANDEM-LOCKOUT-1]), cache the
 *      verified chain (only once its holder proved possession), count the uses durably, act, audit.
 * Any exception that is not a ProtocolError, anywhere, is FAULT and the lock stays locked: the only code that
 * energises the solenoid is the state machine's unlock(), reached only after an OK verdict and a durable count.
 */
import createDebug from 'debug';
import type { Clock } from '../../../hardware/src/clock.js';
import type { CborValue } from '../../../protocol/src/cbor.js';
import { encode } from '../../../protocol/src/cbor.js';
import type { Grant, TimeBound } from '../../../protocol/src/chain.js';
import { ProtocolError } from '../../../protocol/src/errors.js';
import type { Challenge, LockState } from '../../../protocol/src/gatt.js';
import type { PrivateKey } from '../../../protocol/src/keys.js';
import type { UnlockRequest } from '../../../protocol/src/pop.js';
import { Command } from '../../../protocol/src/pop.js';
import { encodeRevocationAck, verifyRevocationUpdate } from '../../../protocol/src/revocation.js';
import {
  applyAnchorUpdate,
  encodeAnchorAck,
  verifyAnchorUpdate,
} from '../../../protocol/src/anchor-update.js';
import {
  AUDIT_GENESIS_HASH,
  auditRecordHash,
  encodeAuditRecord as encodeWireAuditRecord,
} from '../../../protocol/src/mqtt.js';
import type { DetailValue } from '../../../protocol/src/index.js';
import { Status } from '../../../protocol/src/status.js';
import type { BeaconBound } from '../../../protocol/src/time-beacon.js';
import { verifyTimeBeacon } from '../../../protocol/src/time-beacon.js';
import type { AuditLog } from '../store/audit-log.js';
import type { ConfigStore } from '../store/config-store.js';
import { isStoreError } from '../store/errors.js';
import type { Outbox } from '../store/outbox.js';
import type { RevocationStore } from '../store/revocation-store.js';
import { SerialQueue } from '../store/serial-queue.js';
import type { UseCounterStore } from '../store/use-counter-store.js';
import type { AuditEntry } from './audit.js';
import { auditRecordCbor, decodeAuditEntry, encodeAuditEntry } from './audit.js';
import { ChainCache } from './chain-cache.js';
import { ChallengeBook } from './challenges.js';
import type { RandomSource } from './challenges.js';
import type { CountedToken, HeldState, Signers, Verdict } from './decision.js';
import { Refusal, decide, decodeStep, statusOf, tokenStateId } from './decision.js';
import type { LockStateMachine, MechanismState } from './lock-state-machine.js';
import type { AnchorStore, CommandArgs, LockConfig } from './management.js';
import { CONFIG_STORE_KEY, LOCKOUT_STORE_KEY, loadLockConfig } from './management.js';
import { LockoutBook, RateLimiter } from './rate-limiter.js';
import type { TimeSource, TrustedClock } from './trusted-clock.js';

const debug = createDebug('tandem:lock:authority');

/** The stores the authority uses: structural, so that tests can put a failing double in any place. */
export interface AuthorityStores {
  readonly config: ConfigStore;
  readonly useCounters: Pick<
    UseCounterStore,
    'get' | 'consume' | 'prune' | 'groupSize' | 'maxPerGroup' | 'dropGroups'
  >;
  readonly revocations: Pick<RevocationStore, 'has' | 'version' | 'replace' | 'applyDelta' | 'prune'>;
  readonly audit: Pick<AuditLog, 'append' | 'since' | 'lastSeq' | 'records'>;
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
  /** The device key: signs revocation acknowledgements ([TANDEM-REV-11]). */
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
   * always queued; every attempt stays in the audit log (READ_AUDIT) either way.
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
  /** READ_AUDIT: CBOR array of records `[seq, time (8-byte big-endian ms), prevHash, payload, signature]`. */
  readonly data?: Uint8Array;
  /** Why, for logs and the CLI (never sent to an unauthenticated peer by the lead's transports). */
  readonly message?: string;
}

/** The answer to a revocation update, anchor update or time beacon delivered to the lock. */
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

/** The decoded arguments of command `C`. */
type ArgsOf<C extends Command> = ArgsIn<CommandArgs, C>;
type ArgsIn<A, C> = A extends { readonly command: infer K } ? (C extends K ? A : never) : never;

/** One row of the command table: a state precheck (refusal of step 12) and the action. */
interface CommandHandler<A extends CommandArgs> {
  readonly precheck?: (args: A) => Refusal | undefined;
  readonly run: (args: A, attempt: Attempt) => Promise<LockResult>;
}

type CommandTable = { readonly [C in Command]: CommandHandler<ArgsOf<C>> };

interface Attempt {
  request?: UnlockRequest;
  grant?: Grant;
  signers?: Signers;
}
const MAX_SUPPRESSED_PEERS = 64;
const READ_AUDIT_MAX_BYTES = 8 * 1024;

/** The lock's authority (module comment). */
export class LockAuthority {
  readonly lockId: string;
  readonly #anchors: AnchorStore;
  readonly #stores: AuthorityStores;
  readonly #clock: Clock;
  readonly #sm: LockStateMachine;
  readonly #time: TrustedClock;
  readonly #deviceKey: PrivateKey;
  readonly #challenges: ChallengeBook;
  readonly #limiter: RateLimiter;
  readonly #lockout: LockoutBook;
  readonly #cache: ChainCache;
  readonly #outboxAuditBudget: number;
  /** [TANDEM-MQTT-7]: SHA-256 of the last audit record queued for the cloud; recovered at start. */
  #wirePrev: Uint8Array = AUDIT_GENESIS_HASH;
  /** Audit records for the cloud are built one at a time, so that each chains on the one before. */
  readonly #wireQueue = new SerialQueue();
  /** Refused attempts not queued for the cloud since the last queued record (outbox budget). */
  #notQueued = 0;
  readonly #listeners = new Set<(e: AuthorityEvent) => void>();
  readonly #suppressed = new Map<string, number>();
  readonly #baseConfig: Partial<LockConfig>;
  #config: LockConfig;
  #acting = false;
  #safeMode: readonly string[];
  #started = false;
  #closed = false;

  constructor(options: LockAuthorityOptions) {
    this.lockId = options.lockId;
    this.#anchors = options.anchors;
    this.#stores = options.stores;
    this.#clock = options.clock;
    this.#sm = options.stateMachine;
    this.#time = options.trustedClock;
    this.#deviceKey = options.deviceKey;
    this.#baseConfig = options.config ?? {};
    this.#config = loadLockConfig(options.stores.config, this.#baseConfig);
    this.#safeMode = [...(options.safeModeReasons ?? [])];
    this.#cache = new ChainCache(options.chainCacheSize ?? 32);
    this.#outboxAuditBudget = options.outboxAuditBudget ?? 600;
    const c = this.#config;
    this.#challenges = new ChallengeBook({
      clock: options.clock,
      random: options.random,
      lifetimeMs: c.challengeLifetimeS * 1000,
      ...(options.maxChallenges === undefined ? {} : { maxOutstanding: options.maxChallenges }),
      ...(options.maxChallengesPerPeer === undefined ? {} : { maxPerPeer: options.maxChallengesPerPeer }),
    });
    this.#limiter = new RateLimiter({
      clock: options.clock,
      windowMs: c.rateWindowS * 1000,
      threshold: c.rateThreshold,
      backoffMaxMs: c.backoffMaxS * 1000,
      globalThreshold: c.globalRateThreshold,
    });
    this.#lockout = new LockoutBook({
      clock: options.clock,
      threshold: c.lockoutThreshold,
      windowMs: c.lockoutWindowS * 1000,
    });
    this.#lockout.restore(storedLockout(options.stores.config.get(LOCKOUT_STORE_KEY)));
  }

  /** The configuration in force. */
  get config(): LockConfig {
    return this.#config;
  }

  /** True while some token root or holder key is locked out ([TANDEM-LOCKOUT-2]). */
  get lockedOut(): boolean {
    return this.#lockout.locked.length > 0;
  }

  /** The locked-out subjects (`root:<hex>`, `key:<hex>`), oldest first. */
  get lockedOutSubjects(): readonly string[] {
    return this.#lockout.locked;
  }

  /** The corrupt stores that put the lock in safe mode; empty when not in safe mode. */
  get safeModeReasons(): readonly string[] {
    return this.#safeMode;
  }

  /** What the lock reports about itself (lock info, [TANDEM-GATT-10]; the dashboard and the console). */
  snapshot(): LockSnapshot {
    const bound = this.#safeBound();
    const source = this.#time.source();
    return {
      lockId: this.lockId,
      state: this.#reportedState(),
      mechanism: this.#sm.state,
      lockedOut: this.lockedOut,
      safeModeReasons: this.#safeMode,
      revocationVersion: this.#stores.revocations.version,
      time: bound,
      timeFloor: this.#time.floor,
      timeSource: source,
      uncertainty: source === 'unknown' ? null : bound.latest - bound.earliest,
      liveChallenges: this.#challenges.size,
    };
  }

  /** Subscribe to {@link AuthorityEvent}s; returns the unsubscribe function. */
  onEvent(listener: (e: AuthorityEvent) => void): () => void {
    const entry = (e: AuthorityEvent): void => listener(e);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /**
   * Starts the state machine (which releases the solenoid and reads the latch), applies the configuration,
   * and enters safe mode if a store was found corrupt (audited). Idempotent.
   */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#recoverWireChain();
    await this.#sm.start();
    this.#applyConfig(this.#config);
    await this.#auditEvent(this.#safeMode.length > 0 ? Status.SAFE_MODE : Status.OK, 'boot');
    // A lost floor fails closed (every token uncertain until a beacon) but the owner should know why.
    if (this.#time.floorWasCorrupt) await this.#auditEvent(Status.TIME_UNCERTAIN, 'time-floor-lost');
    if (this.#safeMode.length > 0) {
      await this.#sm.enterSafeMode();
      this.#emit({ type: 'safe-mode', active: true, reasons: this.#safeMode });
      await this.#auditEvent(Status.SAFE_MODE, 'safe-mode');
    }
  }

  /** Stop answering: later requests get FAULT. The stores, clock and state machine belong to the caller. */
  close(): void {
    this.#closed = true;
    this.#challenges.clear();
  }

  /**
   * A fresh challenge for `peer` ([TANDEM-GATT-8]): 16 random bytes, single use, valid for the configured
   * lifetime; with the lock's time, its uncertainty (null when no fresh time since boot) and revocation
   * version, so that the phone knows to relay a beacon or an update.
   */
  issueChallenge(context: RequestContext = {}): Challenge {
    const issued = this.#challenges.issue(context.peer ?? 'unknown');
    const bound = this.#time.bound();
    return {
      lockId: this.lockId,
      nonce: issued.nonce,
      lockTime: bound.earliest,
      uncertainty: this.#time.source() === 'unknown' ? null : bound.latest - bound.earliest,
      revocationVersion: this.#stores.revocations.version,
    };
  }

  /** Decides and, if accepted, carries out one request (module comment). Never rejects. */
  async handleRequest(bytes: Uint8Array, context: RequestContext = {}): Promise<LockResult> {
    const peer = context.peer ?? 'unknown';
    if (this.#closed || !this.#started) {
      return this.#result(Status.FAULT, {}, false, this.#closed ? 'lock authority closed' : 'not started');
    }
    if (this.#acting || this.#sm.busy) {
      const r = this.#result(Status.BUSY, {}, false, 'another command is acting; retry');
      await this.#audit({ status: Status.BUSY, kind: 'request', peer });
      return this.#done(peer, r);
    }
    const rate = this.#limiter.check(peer);
    if (rate.limited) {
      const r = this.#result(
        Status.RATE_LIMITED,
        {},
        false,
        `retry in ${Math.ceil((rate.untilMs - this.#clock.now()) / 1000)} s`,
      );
      if (rate.first) await this.#audit({ status: Status.RATE_LIMITED, kind: 'request', peer });
      else this.#suppress(peer);
      return this.#done(peer, r);
    }
    let verdict: Verdict;
    let bound: TimeBound;
    try {
      bound = this.#time.bound();
      verdict = this.#decide(bytes, peer, bound);
    } catch (error) {
      // Step 1 (decoding) and anything unexpected: no chain, no possession, no evidence.
      return this.#refused(peer, {}, error);
    }
    const attempt: Attempt = {
      ...(verdict.request === undefined ? {} : { request: verdict.request }),
      ...(verdict.grant === undefined ? {} : { grant: verdict.grant }),
      ...(verdict.signers === undefined ? {} : { signers: verdict.signers }),
    };
    // Only a chain whose holder proved possession is cached ([TANDEM-POP-6]): a stranger re-sending sniffed
    // chains must not push riders' chains out of the cache.
    if (verdict.grant !== undefined && (verdict.ok || verdict.possession)) this.#cache.put(verdict.grant);
    if (!verdict.ok) {
      return this.#refused(peer, attempt, new Refusal(verdict.status, verdict.message), verdict.evidence);
    }
    return this.#act(peer, verdict, bound);
  }

  /**
   * A revocation update delivered over BLE or MQTT (SPEC.md §6): verified with the issuer anchors, applied to
   * the revocation store (never backwards: REVOCATION_ROLLBACK; a delta on another base: REVOCATION_STALE),
   * acknowledged with a signed ack. Re-delivery of the version held is acknowledged again. Never rejects.
   */
  async applyRevocationUpdate(bytes: Uint8Array, context: RequestContext = {}): Promise<DeliveryResult> {
    const peer = context.peer ?? 'unknown';
    const limited = this.#limiter.check(peer);
    if (limited.limited) return { status: Status.RATE_LIMITED, message: 'rate limited' };
    let result: DeliveryResult;
    let offered: number | undefined;
    try {
      const update = verifyRevocationUpdate(bytes, this.#anchors.issuerKey, this.lockId);
      offered = update.version;
      const held = this.#stores.revocations.version;
      if (update.version < held) {
        throw new Refusal(
          Status.REVOCATION_ROLLBACK,
          `version ${update.version} is older than the held ${held}`,
        );
      }
      if (update.version > held) {
        // [TANDEM-HOLD-1]: an acknowledged update is held entirely. Nothing is dropped against the clock on
        // the way in (a clock running ahead would drop live entries); a list the store cannot hold is refused
        // (TOO_LARGE) and nothing is acknowledged. Expired entries go later, by the persisted floor only.
        const add = update.added.map((e) => ({ id: e.id, exp: e.exp }));
        if (update.kind === 'full') {
          await this.#stores.revocations.replace(update.version, add);
        } else {
          if (update.baseVersion !== held) {
            throw new Refusal(
              Status.REVOCATION_STALE,
              `delta on version ${String(update.baseVersion)}, the lock holds ${held}: send a full update`,
            );
          }
          await this.#stores.revocations.applyDelta({
            baseVersion: held,
            version: update.version,
            add,
            remove: update.removed,
          });
        }
        this.#emit({ type: 'revocation', version: update.version });
        await this.#freeRevokedRoots(update.added.map((e) => e.id));
      }
      const version = this.#stores.revocations.version;
      const ack = encodeRevocationAck(
        { lockId: this.lockId, version, lockTime: this.#time.bound().earliest },
        this.#deviceKey,
      );
      result = { status: Status.OK, ack, version };
    } catch (error) {
      const status = deliveryStatus(error);
      result = { status, version: this.#stores.revocations.version, message: messageOf(error) };
      if (status !== Status.FAULT) this.#limiter.refused(peer);
    }
    await this.#audit({
      status: result.status,
      kind: 'revocation',
      peer,
      ...(offered === undefined ? {} : { version: offered }),
    });
    return result;
  }

  /**
   * A time beacon delivered to the lock (SPEC.md §7): verified with the issuer anchors; a beacon answering
   * one of this lock's recent nonces within the relay limit anchors the trusted bound, any other raises the
   * floor only. Use counters and revocation entries of tokens expired before the new floor are pruned.
   */
  async applyTimeBeacon(bytes: Uint8Array, context: RequestContext = {}): Promise<DeliveryResult> {
    const peer = context.peer ?? 'unknown';
    const limited = this.#limiter.check(peer);
    if (limited.limited) return { status: Status.RATE_LIMITED, message: 'rate limited' };
    let result: DeliveryResult;
    try {
      const beacon = verifyTimeBeacon(bytes, this.#anchors.issuerKey, this.lockId);
      const issued = beacon.nonce === undefined ? undefined : this.#challenges.recent(beacon.nonce);
      const used = await this.#time.applyBeacon(
        beacon,
        issued === undefined ? undefined : { nonce: issued.nonce, issuedAtMs: issued.issuedAtMs },
      );
      result = { status: Status.OK, beacon: used };
    } catch (error) {
      const status = deliveryStatus(error);
      result = { status, message: messageOf(error) };
      if (status !== Status.FAULT) this.#limiter.refused(peer);
    }
    await this.#audit({ status: result.status, kind: 'time', peer });
    if (result.status === Status.OK) await this.#prune();
    return result;
  }

  /**
   * An anchor update delivered over BLE or MQTT (SPEC.md §6.6): verified with the issuer anchors only
   * ([TANDEM-ANCHOR-2]), applied by the pure rules of `applyAnchorUpdate` and stored in one atomic write
   * ([TANDEM-ANCHOR-3], [TANDEM-ANCHOR-4]), then acknowledged with a signed anchor ack ([TANDEM-ANCHOR-5]).
   * A re-delivery of the version held is acknowledged again without change. The chain cache is emptied when
   * an anchor changed: a chain verified under a removed key must not be accepted by reference. Never rejects.
   */
  async applyAnchorUpdate(bytes: Uint8Array, context: RequestContext = {}): Promise<DeliveryResult> {
    const peer = context.peer ?? 'unknown';
    const limited = this.#limiter.check(peer);
    if (limited.limited) return { status: Status.RATE_LIMITED, message: 'rate limited' };
    let result: DeliveryResult;
    let offered: number | undefined;
    let redelivered = false;
    try {
      const verified = verifyAnchorUpdate(bytes, this.#anchors.issuerKey, this.lockId);
      offered = verified.update.version;
      const applied = applyAnchorUpdate(this.#anchors.state(), verified);
      redelivered = applied.state.version === this.#anchors.version && !applied.changed;
      if (!redelivered) {
        await this.#anchors.replaceState(applied.state);
        this.#cache.clear();
        this.#emit({ type: 'anchors-changed' });
      }
      const version = this.#anchors.version;
      const ack = encodeAnchorAck(
        { lockId: this.lockId, version, lockTime: this.#time.bound().earliest },
        this.#deviceKey,
      );
      result = { status: Status.OK, ack, version };
    } catch (error) {
      const status = deliveryStatus(error);
      result = { status, version: this.#anchors.version, message: messageOf(error) };
      if (status !== Status.FAULT) this.#limiter.refused(peer);
    }
    // A re-delivery (a phone carries the update until the cloud has the lock's ack) is not audited again.
    if (!redelivered) {
      await this.#audit({
        status: result.status,
        kind: 'event',
        peer,
        event: result.status === Status.OK ? 'anchor-applied' : 'anchor-refused',
        ...(offered === undefined ? {} : { version: offered }),
      });
    }
    return result;
  }

  // -------------------------------------------------------------------------------------------------------
  // The decision, steps 1-11: synchronous, so nothing can interleave between spending the challenge and
  // claiming the mechanism in #act.
  // -------------------------------------------------------------------------------------------------------

  /** Steps 1 and the spending of the challenge, then the pure decision of `decision.ts`. Synchronous. */
  #decide(bytes: Uint8Array, peer: string, bound: TimeBound): Verdict {
    const decoded = decodeStep(bytes, this.#sm.maxPulseMs);
    // The challenge is spent by any request of its peer that names it, whatever follows ([TANDEM-POP-4]).
    const challenge = this.#challenges.take(decoded.request.nonce, peer);
    return decide({ ...decoded, challenge }, this.#held(), bound);
  }

  /** What the decision reads of the lock now ({@link HeldState}); queries only. */
  #held(): HeldState {
    return {
      lockId: this.lockId,
      anchors: this.#anchors.lookup,
      timeZone: this.#config.timeZone,
      safeMode: this.#safeMode.length > 0,
      revocationVersion: this.#stores.revocations.version,
      cachedGrant: (ref) => this.#cache.get(ref),
      revoked: (cti) => this.#stores.revocations.has(cti),
      usesCounted: (id) => this.#stores.useCounters.get(id),
      groupHasRoom: (group) =>
        this.#stores.useCounters.groupSize(group) < this.#stores.useCounters.maxPerGroup,
      lockedOut: (subjects) => this.#lockout.isLocked(subjects),
    };
  }

  /**
   * [TANDEM-USES-3]: revoking a root frees the use counters its chains hold. A revocation id is a `cti` as
   * its signer wrote it, and roots are signed by trust anchors, so each id is tried under every anchor key.
   * A failure here is reported and changes nothing of the acknowledged update.
   */
  async #freeRevokedRoots(ids: readonly Uint8Array[]): Promise<void> {
    const keys = this.#anchors
      .list()
      .map((a) => this.#anchors.lookup(a.kid)?.key)
      .filter((k) => k !== undefined);
    const groups: Uint8Array[] = [];
    for (const id of ids) {
      for (const key of keys) {
        const g = tokenStateId(key, id);
        if (this.#stores.useCounters.groupSize(g) > 0) groups.push(g);
      }
    }
    if (groups.length === 0) return;
    try {
      await this.#stores.useCounters.dropGroups(groups);
    } catch (error) {
      this.#emit({ type: 'store-error', what: 'use-counters', error });
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Step 12 and the bookkeeping of every attempt.
  // -------------------------------------------------------------------------------------------------------

  async #act(peer: string, v: Extract<Verdict, { ok: true }>, bound: TimeBound): Promise<LockResult> {
    const { request, args, grant, signers } = v;
    const attempt: Attempt = { request, grant, signers };
    this.#acting = true;
    let stage: 'before' | 'acting' = 'before';
    let result: LockResult;
    try {
      const precheck = this.#precheck(args);
      if (precheck !== undefined) throw precheck;
      // Count durably BEFORE acting ([TANDEM-USES-1]): a power cut here loses a use, never lets one go
      // uncounted. Read-only commands have nothing to count ([TANDEM-USES-2]).
      await this.#count(v.counted);
      stage = 'acting';
      result = await this.#perform(args, attempt);
    } catch (error) {
      this.#acting = false;
      if (stage === 'before') return this.#refused(peer, attempt, error);
      debug('action failed: %O', error);
      result = this.#result(Status.FAULT, attempt, true, messageOf(error));
    } finally {
      this.#acting = false;
    }
    if (result.status === Status.OK) this.#limiter.accepted(peer);
    await this.#audit(this.#entry(result.status, peer, attempt, bound), result.mayHaveActed);
    return this.#done(peer, result);
  }

  /** Counts each token of `counted` under its root's quota ([TANDEM-USES-3], [TANDEM-USES-4]). */
  async #count(counted: readonly CountedToken[]): Promise<void> {
    for (const t of counted) {
      const r = await this.#stores.useCounters.consume(t.id, t.exp, t.maxUses, t.group);
      if (r.refused === 'quota') {
        throw new Refusal(
          Status.QUOTA_EXCEEDED,
          'the tokens under this root already hold every use counter the lock keeps for one root',
        );
      }
      if (!r.allowed) throw new Refusal(Status.USES_EXHAUSTED, `all ${t.maxUses} uses of a token are spent`);
    }
  }

  /**
   * The commands ([TANDEM-POP-5]) as a table, one small handler each: `precheck` is a refusal of step 12 that
   * depends on the lock's state, checked before a use is counted; `run` acts.
   */
  readonly #commands: CommandTable = {
    [Command.UNLOCK]: { run: (_, attempt) => this.#unlock(attempt) },
    [Command.LOCK]: {
      run: async (_, attempt) => {
        const s = await this.#sm.lock();
        return s === 'busy'
          ? this.#result(Status.BUSY, attempt, false, 'the mechanism is busy')
          : this.#result(s === 'fault' ? Status.FAULT : Status.OK, attempt, true);
      },
    },
    [Command.STATUS]: { run: (_, attempt) => Promise.resolve(this.#result(Status.OK, attempt, false)) },
    [Command.ADD_ANCHOR]: {
      precheck: (a) => this.#checkAdd(a),
      run: (a, attempt) => this.#addAnchor(a, attempt),
    },
    [Command.ADD_OWNER_KEY]: {
      precheck: (a) => this.#checkAdd(a),
      run: (a, attempt) => this.#addAnchor(a, attempt),
    },
    [Command.REMOVE_ANCHOR]: {
      precheck: (a) => this.#checkRemove(a),
      run: (a, attempt) => this.#removeAnchor(a, attempt),
    },
    [Command.REMOVE_OWNER_KEY]: {
      precheck: (a) => this.#checkRemove(a),
      run: (a, attempt) => this.#removeAnchor(a, attempt),
    },
    [Command.SET_CONFIG]: { run: (a, attempt) => this.#setConfig(a, attempt) },
    [Command.READ_AUDIT]: { run: (a, attempt) => Promise.resolve(this.#readAudit(a, attempt)) },
    [Command.CLEAR_LOCKOUT]: {
      run: async (_, attempt) => {
        await this.#clearLockout();
        return this.#result(Status.OK, attempt, true);
      },
    },
  };

  #precheck(args: CommandArgs): Refusal | undefined {
    const handler = this.#commands[args.command] as CommandHandler<CommandArgs>;
    return handler.precheck?.(args);
  }

  #perform(args: CommandArgs, attempt: Attempt): Promise<LockResult> {
    const handler = this.#commands[args.command] as CommandHandler<CommandArgs>;
    return handler.run(args, attempt);
  }

  async #unlock(attempt: Attempt): Promise<LockResult> {
    const o = await this.#sm.unlock();
    switch (o.kind) {
      case 'opened':
        return this.#result(Status.OK, attempt, o.pulsed);
      case 'jammed':
        return this.#result(Status.JAMMED, attempt, true, 'the latch did not move');
      case 'busy':
        return this.#result(Status.BUSY, attempt, false, 'the mechanism is busy');
      case 'safe-mode':
        return this.#result(Status.SAFE_MODE, attempt, false, 'safe mode');
      case 'fault':
        return this.#result(
          Status.FAULT,
          attempt,
          o.pulsed,
          o.error === undefined ? 'hardware fault' : messageOf(o.error),
        );
    }
  }

  #checkAdd(args: ArgsOf<Command.ADD_ANCHOR>): Refusal | undefined {
    return this.#anchors.has(args.anchor.kid)
      ? new Refusal(Status.MALFORMED, 'an anchor with this kid exists; remove it first')
      : undefined;
  }

  #checkRemove(args: ArgsOf<Command.REMOVE_ANCHOR>): Refusal | undefined {
    const why = this.#anchors.checkRemove(args.kid, args.command === Command.REMOVE_OWNER_KEY);
    if (why === 'last-issuer') return new Refusal(Status.MALFORMED, 'cannot remove the last issuer anchor');
    if (why === 'unknown-kid') return new Refusal(Status.MALFORMED, 'no anchor has this kid');
    if (why === 'not-owner')
      return new Refusal(Status.MALFORMED, 'this kid names an issuer, not an owner key');
    return undefined;
  }

  async #addAnchor(args: ArgsOf<Command.ADD_ANCHOR>, attempt: Attempt): Promise<LockResult> {
    await this.#anchors.add(args.anchor);
    this.#cache.clear();
    this.#emit({ type: 'anchors-changed' });
    return this.#result(Status.OK, attempt, true);
  }

  async #removeAnchor(args: ArgsOf<Command.REMOVE_ANCHOR>, attempt: Attempt): Promise<LockResult> {
    const why = await this.#anchors.remove(args.kid, args.command === Command.REMOVE_OWNER_KEY);
    if (why !== undefined) return this.#result(Status.MALFORMED, attempt, false, why);
    // Chains verified with the removed key must not be accepted by reference any more.
    this.#cache.clear();
    this.#emit({ type: 'anchors-changed' });
    return this.#result(Status.OK, attempt, true);
  }

  async #setConfig(args: ArgsOf<Command.SET_CONFIG>, attempt: Attempt): Promise<LockResult> {
    const stored = this.#stores.config.get(CONFIG_STORE_KEY);
    const prev =
      stored !== null &&
      typeof stored === 'object' &&
      !Array.isArray(stored) &&
      !(stored instanceof Uint8Array)
        ? stored
        : {};
    await this.#stores.config.set(CONFIG_STORE_KEY, { ...prev, ...args.changes });
    this.#config = loadLockConfig(this.#stores.config, this.#baseConfig);
    this.#applyConfig(this.#config);
    this.#emit({ type: 'config', config: this.#config });
    return this.#result(Status.OK, attempt, true);
  }

  #readAudit(args: ArgsOf<Command.READ_AUDIT>, attempt: Attempt): LockResult {
    const out: CborValue[] = [];
    let size = 0;
    for (const r of this.#stores.audit.since(args.fromSeq - 1)) {
      if (out.length >= args.max) break;
      size += r.payload.length + r.signature.length + 64;
      if (size > READ_AUDIT_MAX_BYTES && out.length > 0) break;
      out.push(auditRecordCbor(r));
    }
    return { ...this.#result(Status.OK, attempt, false), data: encode(out) };
  }

  async #clearLockout(): Promise<void> {
    if (this.#stores.config.get(LOCKOUT_STORE_KEY) !== undefined)
      await this.#stores.config.delete(LOCKOUT_STORE_KEY);
    const was = this.lockedOut;
    this.#limiter.reset();
    this.#lockout.clear();
    if (was) this.#emit({ type: 'lockout', active: false });
    if (this.#safeMode.length > 0) {
      // The owner acknowledges the data loss of safe mode (README.md, "Lock runtime", "Safe mode").
      this.#safeMode = [];
      await this.#sm.exitSafeMode();
      this.#emit({ type: 'safe-mode', active: false, reasons: [] });
    }
  }

  /**
   * A refusal: counted against the peer's rate (never persisted) and, when a key holder caused it
   * (`evidence`, [TANDEM-LOCKOUT-1]), charged to the chain's root and holder key; audited.
   */
  async #refused(
    peer: string,
    attempt: Attempt,
    error: unknown,
    evidence?: readonly string[],
  ): Promise<LockResult> {
    const status = statusOf(error);
    if (status === Status.FAULT) debug('exception inside the decision: %O', error);
    const result = this.#result(status, attempt, false, messageOf(error));
    if (status !== Status.FAULT && status !== Status.BUSY) {
      this.#limiter.refused(peer);
      if (evidence !== undefined) {
        const newly = this.#lockout.charge(evidence);
        if (newly.length > 0) await this.#enterLockout(newly);
      }
    }
    await this.#audit(this.#entry(status, peer, attempt, this.#safeBound()));
    return this.#done(peer, result);
  }

  /** Subjects just locked out ([TANDEM-LOCKOUT-2]): persisted (bounded), announced and audited. */
  async #enterLockout(subjects: readonly string[]): Promise<void> {
    this.#emit({ type: 'lockout', active: true, subjects });
    try {
      await this.#stores.config.set(LOCKOUT_STORE_KEY, {
        v: 2,
        subjects: [...this.#lockout.locked],
      });
    } catch (error) {
      // Still locked out in memory: refusing is the safe side.
      this.#emit({ type: 'store-error', what: 'lockout', error });
    }
    await this.#auditEvent(Status.LOCKED_OUT, 'lockout');
  }

  #applyConfig(c: LockConfig): void {
    this.#sm.setPulseMs(Math.min(c.pulseMs, this.#sm.maxPulseMs));
    this.#sm.setAutoRelockMs(c.autoRelockS * 1000);
    this.#challenges.lifetimeMs = c.challengeLifetimeS * 1000;
    this.#limiter.configure({
      windowMs: c.rateWindowS * 1000,
      threshold: c.rateThreshold,
      backoffMaxMs: c.backoffMaxS * 1000,
      globalThreshold: c.globalRateThreshold,
    });
    this.#lockout.configure({ threshold: c.lockoutThreshold, windowMs: c.lockoutWindowS * 1000 });
  }

  #result(status: Status, attempt: Attempt, mayHaveActed: boolean, message?: string): LockResult {
    const r = attempt.request;
    return {
      status,
      mayHaveActed:
        status === Status.OK || status === Status.JAMMED || status === Status.FAULT ? mayHaveActed : false,
      state: this.#reportedState(),
      lockTime: this.#safeBound().earliest,
      ...(r === undefined ? {} : { command: r.command, nonce: r.nonce }),
      ...(message === undefined ? {} : { message }),
    };
  }

  #reportedState(): LockState {
    try {
      return this.#sm.reportedState;
    } catch {
      return 'fault';
    }
  }

  #safeBound(): TimeBound {
    try {
      return this.#time.bound();
    } catch {
      return { earliest: 0, latest: 0xffff_ffff };
    }
  }

  #entry(status: Status, peer: string, attempt: Attempt, bound: TimeBound): AuditEntry {
    const leaf = attempt.grant?.leaf;
    return {
      status,
      kind: 'request',
      peer,
      time: bound.earliest,
      ...(attempt.request === undefined ? {} : { command: attempt.request.command }),
      ...(leaf === undefined ? {} : { cti: leaf.cti }),
      ...(leaf?.rider === undefined ? {} : { rider: leaf.rider }),
      ...(attempt.signers === undefined
        ? {}
        : { signers: attempt.signers.signers, holder: attempt.signers.holder }),
    };
  }

  #suppress(peer: string): void {
    if (!this.#suppressed.has(peer) && this.#suppressed.size >= MAX_SUPPRESSED_PEERS) {
      this.#suppressed.delete(this.#suppressed.keys().next().value as string);
    }
    this.#suppressed.set(peer, (this.#suppressed.get(peer) ?? 0) + 1);
  }

  /**
   * Every attempt and lock event: first the signed audit record for the cloud ([TANDEM-MQTT-6], chained by
   * [TANDEM-MQTT-7], numbered in the outbox sequence [TANDEM-MQTT-8]), then the local audit log entry, which
   * notes that record's sequence and hash so that the chain continues after a reboot. Failures are reported
   * as events and never change the answer.
   */
  async #audit(entry: Omit<AuditEntry, 'time'> & { time?: number }, acted = false): Promise<void> {
    const suppressed = this.#suppressed.get(entry.peer);
    if (suppressed !== undefined) this.#suppressed.delete(entry.peer);
    let full: AuditEntry = {
      ...entry,
      time: entry.time ?? this.#safeBound().earliest,
      ...(suppressed === undefined ? {} : { suppressed }),
    };
    const queue =
      full.kind === 'event' ||
      full.status === Status.OK ||
      this.#stores.outbox.size < this.#outboxAuditBudget;
    if (queue) {
      try {
        const wire = await this.#queueWire(full, acted);
        full = { ...full, wireSequence: wire.sequence, wireHash: wire.hash };
      } catch (error) {
        debug('outbox enqueue failed: %O', error);
        this.#emit({ type: 'store-error', what: 'outbox', error });
      }
    } else {
      this.#notQueued++;
    }
    try {
      await this.#stores.audit.append(encodeAuditEntry(full));
    } catch (error) {
      debug('audit append failed: %O', error);
      this.#emit({ type: 'store-error', what: 'audit', error });
    }
  }

  /** Queues one signed audit record; records are built one after the other so that each chains on the last. */
  #queueWire(e: AuditEntry, acted: boolean): Promise<{ sequence: number; hash: Uint8Array }> {
    const run = async (): Promise<{ sequence: number; hash: Uint8Array }> => {
      const detail = new Map<string, DetailValue>([['peer', e.peer.slice(0, 64)]]);
      if (e.suppressed !== undefined) detail.set('suppressed', e.suppressed);
      if (e.version !== undefined) detail.set('version', e.version);
      // [TANDEM-AUDIT-1]: who signed each link and who holds the leaf (the rider name is only a label).
      if (e.signers !== undefined) detail.set('signers', e.signers.map(hexOf).join('.'));
      if (e.holder !== undefined) detail.set('holder', hexOf(e.holder));
      const notQueued = this.#notQueued;
      if (notQueued > 0) detail.set('not_queued', notQueued);
      for (const [k, v] of e.detail ?? []) detail.set(k, v);
      let bytes: Uint8Array | undefined;
      const previousHash = this.#wirePrev;
      const sequence = await this.#stores.outbox.enqueueWith('audit', (seq, epoch) => {
        bytes = encodeWireAuditRecord(
          {
            lockId: this.lockId,
            sequence: seq,
            epoch,
            time: e.time,
            previousHash,
            event: wireEvent(e, acted),
            status: e.status,
            ...(e.command === undefined ? {} : { command: e.command }),
            ...(e.cti === undefined ? {} : { tokenId: e.cti }),
            ...(e.rider === undefined ? {} : { rider: e.rider }),
            detail,
          },
          this.#deviceKey,
        );
        return bytes;
      });
      // Only a record that is durable in the outbox moves the chain on.
      const hash = auditRecordHash(bytes!);
      this.#wirePrev = hash;
      this.#notQueued -= notQueued;
      return { sequence, hash };
    };
    return this.#wireQueue.run(run);
  }

  /**
   * [TANDEM-MQTT-7] across reboots: the chain continues from the newest audit record this lock queued, found
   * in the outbox (not yet acknowledged) or noted in the local audit log, whichever has the higher sequence.
   */
  #recoverWireChain(): void {
    let best = 0;
    for (const m of this.#stores.outbox.peek(this.#stores.outbox.size)) {
      if (m.kind !== 'audit' || m.seq <= best) continue;
      best = m.seq;
      this.#wirePrev = auditRecordHash(m.payload);
    }
    const local = this.#stores.audit.records();
    for (let i = local.length - 1; i >= 0; i--) {
      let e: AuditEntry;
      try {
        e = decodeAuditEntry(local[i]!.payload);
      } catch {
        continue;
      }
      if (e.wireSequence === undefined || e.wireHash === undefined) continue;
      if (e.wireSequence > best) this.#wirePrev = e.wireHash;
      break;
    }
  }

  #auditEvent(status: Status, event: string): Promise<void> {
    return this.#audit({ status, kind: 'event', peer: 'lock', event });
  }

  /** [TANDEM-HOLD-2]: expired entries go by the persisted floor only, never a later bound. */
  async #prune(): Promise<void> {
    const floor = this.#time.floor;
    try {
      await this.#stores.useCounters.prune(floor);
      await this.#stores.revocations.prune(floor);
    } catch (error) {
      this.#emit({ type: 'store-error', what: 'prune', error });
    }
  }

  #done(peer: string, result: LockResult): LockResult {
    this.#emit({ type: 'decision', peer, result });
    return result;
  }

  #emit(e: AuthorityEvent): void {
    for (const l of [...this.#listeners]) {
      try {
        l(e);
      } catch (error) {
        debug('event listener threw: %O', error);
      }
    }
  }

  /**
   * Audits a lock event decided outside this class (a refused outbox ack, [TANDEM-MQTT-11], in
   * `ble/authority-backend.ts`), with a small detail map carried into the signed record. Never rejects.
   */
  auditEvent(
    event: string,
    status: Status,
    peer: string,
    detail?: ReadonlyMap<string, number>,
  ): Promise<void> {
    return this.#audit({ status, kind: 'event', peer, event, ...(detail === undefined ? {} : { detail }) });
  }
}

/** Status of a failed delivery (revocation update, time beacon). */
function deliveryStatus(error: unknown): Status {
  if (error instanceof Refusal || error instanceof ProtocolError) return statusOf(error);
  if (isStoreError(error, 'ERR_STORE_STALE_VERSION')) return Status.REVOCATION_ROLLBACK;
  if (isStoreError(error, 'ERR_STORE_BASE_MISMATCH')) return Status.REVOCATION_STALE;
  if (isStoreError(error, 'ERR_STORE_FULL')) return Status.TOO_LARGE;
  return Status.FAULT;
}

const hexOf = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

function messageOf(error: unknown): string {
  if (error instanceof Refusal) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * The persisted lockout ([TANDEM-LOCKOUT-2]): `{v: 2, subjects: [...]}`. The whole-lock lockout of earlier
 * versions (`{since}`) named no subject; it is read as none (the owner would otherwise need to clear a lockout
 * that no longer has a meaning).
 */
function storedLockout(value: unknown): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array)
    return [];
  const subjects = (value as { subjects?: unknown }).subjects;
  return Array.isArray(subjects) ? subjects.filter((x): x is string => typeof x === 'string') : [];
}

/** The `event` of an audit record ([TANDEM-MQTT-6]): what happened, in the record's own words. */
function wireEvent(e: AuditEntry, acted: boolean): string {
  switch (e.kind) {
    case 'event':
      return e.event ?? 'event';
    case 'revocation':
      return e.status === Status.OK ? 'revocation-applied' : 'revocation-refused';
    case 'time':
      return e.status === Status.OK ? 'time-beacon' : 'time-refused';
    case 'request':
      if ((e.status === Status.OK || acted) && e.command !== undefined) {
        return Command[e.command].toLowerCase().replace(/_/g, '-');
      }
      if (e.status === Status.BUSY) return 'busy';
      if (e.status === Status.RATE_LIMITED) return 'rate-limited';
      if (e.status === Status.FAULT) return 'fault';
      return 'refused';
  }
}
