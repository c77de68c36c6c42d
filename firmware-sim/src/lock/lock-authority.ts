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
 *
 * This class is the router; each part lives in its own module: the decision's steps (`decision.ts`), the
 * chain cache (`chain-cache.ts`), the command handlers (`commands.ts`), revocation and beacon delivery
 * (`deliveries.ts`), lockout bookkeeping (`lockout.ts`), the signed audit trail (`audit-trail.ts`) and the
 * shape of every answer (`results.ts`).
 */
import createDebug from 'debug';
import type { Clock } from '../../../hardware/src/clock.js';
import type { TimeBound } from '../../../protocol/src/chain.js';
import type { Challenge } from '../../../protocol/src/gatt.js';
import { Status } from '../../../protocol/src/status.js';
import { AuditTrail, requestEntry } from './audit-trail.js';
import type {
  Attempt,
  AuthorityEvent,
  AuthorityStores,
  DeliveryResult,
  LockAuthorityOptions,
  LockResult,
  LockSnapshot,
  RequestContext,
} from './authority-types.js';
import { ChainCache } from './chain-cache.js';
import { ChallengeBook } from './challenges.js';
import { commandTable, handlerOf } from './commands.js';
import type { CommandTable } from './commands.js';
import type { CountedToken, HeldState, Verdict } from './decision.js';
import { Refusal, decide, decodeStep, statusOf } from './decision.js';
import { applyAnchorUpdate, applyRevocationUpdate, applyTimeBeacon } from './deliveries.js';
import type { DeliveryTarget } from './deliveries.js';
import type { LockStateMachine } from './lock-state-machine.js';
import { Lockout } from './lockout.js';
import type { AnchorStore, LockConfig } from './management.js';
import { loadLockConfig } from './management.js';
import { RateLimiter } from './rate-limiter.js';
import { Results, messageOf } from './results.js';
import { runRemoteCommand } from './remote-command.js';
import type { RemoteCommandResult } from './remote-command.js';
import type { TrustedClock } from './trusted-clock.js';

export type {
  AuthorityEvent,
  AuthorityStores,
  DeliveryResult,
  LockAuthorityOptions,
  LockResult,
  LockSnapshot,
  RequestContext,
} from './authority-types.js';

const debug = createDebug('tandem:lock:authority');

/** The lock's authority (module comment). */
export class LockAuthority {
  readonly lockId: string;
  readonly #anchors: AnchorStore;
  readonly #stores: AuthorityStores;
  readonly #clock: Clock;
  readonly #sm: LockStateMachine;
  readonly #time: TrustedClock;
  readonly #challenges: ChallengeBook;
  readonly #limiter: RateLimiter;
  readonly #lockout: Lockout;
  readonly #cache: ChainCache;
  readonly #trail: AuditTrail;
  readonly #results: Results;
  readonly #commands: CommandTable;
  readonly #deliveries: DeliveryTarget;
  readonly #listeners = new Set<(e: AuthorityEvent) => void>();
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
    this.#baseConfig = options.config ?? {};
    this.#config = loadLockConfig(options.stores.config, this.#baseConfig);
    this.#safeMode = [...(options.safeModeReasons ?? [])];
    this.#cache = new ChainCache(options.chainCacheSize ?? 32);
    const emit = (e: AuthorityEvent): void => this.#emit(e);
    this.#results = new Results(options.stateMachine, options.trustedClock);
    this.#trail = new AuditTrail({
      lockId: options.lockId,
      stores: options.stores,
      deviceKey: options.deviceKey,
      now: () => this.#results.bound().earliest,
      outboxBudget: options.outboxAuditBudget ?? 600,
      emit,
    });
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
    this.#lockout = new Lockout({
      clock: options.clock,
      config: c,
      store: options.stores.config,
      limiter: this.#limiter,
      audit: this.#trail,
      emit,
    });
    this.#commands = commandTable({
      sm: options.stateMachine,
      anchors: options.anchors,
      stores: options.stores,
      cache: this.#cache,
      results: this.#results,
      emit,
      reloadConfig: () => {
        this.#config = loadLockConfig(this.#stores.config, this.#baseConfig);
        this.#applyConfig(this.#config);
        this.#emit({ type: 'config', config: this.#config });
      },
      clearLockout: () => this.#clearLockout(),
    });
    this.#deliveries = {
      lockId: options.lockId,
      anchors: options.anchors,
      stores: options.stores,
      limiter: this.#limiter,
      time: options.trustedClock,
      challenges: this.#challenges,
      cache: this.#cache,
      deviceKey: options.deviceKey,
      audit: this.#trail,
      emit,
    };
  }

  /** The configuration in force. */
  get config(): LockConfig {
    return this.#config;
  }

  /** True while some token root or holder key is locked out ([TANDEM-LOCKOUT-2]). */
  get lockedOut(): boolean {
    return this.#lockout.active;
  }

  /** The locked-out subjects (`root:<hex>`, `key:<hex>`), oldest first. */
  get lockedOutSubjects(): readonly string[] {
    return this.#lockout.subjects;
  }

  /** The corrupt stores that put the lock in safe mode; empty when not in safe mode. */
  get safeModeReasons(): readonly string[] {
    return this.#safeMode;
  }

  /** What the lock reports about itself (lock info, [TANDEM-GATT-10]; the dashboard and the console). */
  snapshot(): LockSnapshot {
    const bound = this.#results.bound();
    const source = this.#time.source();
    return {
      lockId: this.lockId,
      state: this.#results.state(),
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
    await this.#trail.recover();
    await this.#sm.start();
    this.#applyConfig(this.#config);
    await this.#trail.event(this.#safeMode.length > 0 ? Status.SAFE_MODE : Status.OK, 'boot');
    // A lost floor fails closed (every token uncertain until a beacon) but the owner should know why.
    if (this.#time.floorWasCorrupt) await this.#trail.event(Status.TIME_UNCERTAIN, 'time-floor-lost');
    if (this.#safeMode.length > 0) {
      await this.#sm.enterSafeMode();
      this.#emit({ type: 'safe-mode', active: true, reasons: this.#safeMode });
      await this.#trail.event(Status.SAFE_MODE, 'safe-mode');
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
      return this.#results.of(
        Status.FAULT,
        {},
        false,
        this.#closed ? 'lock authority closed' : 'not started',
      );
    }
    if (this.#acting || this.#sm.busy) {
      const r = this.#results.of(Status.BUSY, {}, false, 'another command is acting; retry');
      await this.#trail.record({ status: Status.BUSY, kind: 'request', peer });
      return this.#done(peer, r);
    }
    const rate = this.#limiter.check(peer);
    if (rate.limited) {
      const r = this.#results.of(
        Status.RATE_LIMITED,
        {},
        false,
        `retry in ${Math.ceil((rate.untilMs - this.#clock.now()) / 1000)} s`,
      );
      if (rate.first) await this.#trail.record({ status: Status.RATE_LIMITED, kind: 'request', peer });
      else this.#trail.suppress(peer);
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

  /** A revocation update delivered over BLE or MQTT (SPEC.md §6; `deliveries.ts`). Never rejects. */
  applyRevocationUpdate(bytes: Uint8Array, context: RequestContext = {}): Promise<DeliveryResult> {
    return applyRevocationUpdate(this.#deliveries, bytes, context.peer ?? 'unknown');
  }

  /** An issuer anchor update delivered to the lock (SPEC.md §6.6; `deliveries.ts`). Never rejects. */
  applyAnchorUpdate(bytes: Uint8Array, context: RequestContext = {}): Promise<DeliveryResult> {
    return applyAnchorUpdate(this.#deliveries, bytes, context.peer ?? 'unknown');
  }

  /** A time beacon delivered to the lock (SPEC.md §7; `deliveries.ts`). Never rejects. */
  applyTimeBeacon(bytes: Uint8Array, context: RequestContext = {}): Promise<DeliveryResult> {
    return applyTimeBeacon(this.#deliveries, bytes, context.peer ?? 'unknown');
  }

  /**
   * A remote command from the cloud over MQTT (SPEC.md §9.11, `remote-command.ts`): LOCK only, under the
   * same one-command-at-a-time rule as BLE requests, never charged to a rate limit. Never rejects.
   */
  async runRemoteCommand(bytes: Uint8Array, context: RequestContext = {}): Promise<RemoteCommandResult> {
    if (this.#closed || !this.#started) {
      return { status: Status.FAULT, message: this.#closed ? 'lock authority closed' : 'not started' };
    }
    return runRemoteCommand(
      {
        lockId: this.lockId,
        issuerKey: this.#anchors.issuerKey,
        config: this.#stores.config,
        time: this.#time,
        sm: this.#sm,
        audit: this.#trail,
        busy: () => this.#acting || this.#sm.busy,
        claim: () => {
          this.#acting = true;
          return () => {
            this.#acting = false;
          };
        },
      },
      bytes,
      context.peer ?? 'unknown',
    );
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
    return this.#trail.event(status, event, peer, detail);
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

  /**
   * What the decision reads of the lock ({@link HeldState}); queries only, each reading the lock's state when
   * asked. Built once: a request allocates none of it.
   */
  #held(): HeldState {
    if (this.#heldState !== undefined) return this.#heldState;
    const stores = this.#stores;
    const anchors = () => this.#anchors.lookup;
    const timeZone = () => this.#config.timeZone;
    const safeMode = () => this.#safeMode.length > 0;
    this.#heldState = {
      lockId: this.lockId,
      get anchors() {
        return anchors();
      },
      get timeZone() {
        return timeZone();
      },
      get safeMode() {
        return safeMode();
      },
      get revocationVersion() {
        return stores.revocations.version;
      },
      cachedGrant: (ref) => this.#cache.get(ref),
      revoked: (cti) => stores.revocations.has(cti),
      usesCounted: (id) => stores.useCounters.get(id),
      groupHasRoom: (group) => stores.useCounters.groupSize(group) < stores.useCounters.maxPerGroup,
      lockedOut: (subjects) => this.#lockout.isLocked(subjects),
    };
    return this.#heldState;
  }
  #heldState: HeldState | undefined;

  // -------------------------------------------------------------------------------------------------------
  // Step 12 and the bookkeeping of every attempt.
  // -------------------------------------------------------------------------------------------------------

  async #act(peer: string, v: Extract<Verdict, { ok: true }>, bound: TimeBound): Promise<LockResult> {
    const { request, args, grant, signers } = v;
    const attempt: Attempt = { request, grant, signers };
    const handler = handlerOf(this.#commands, args);
    this.#acting = true;
    let stage: 'before' | 'acting' = 'before';
    let result: LockResult;
    try {
      const precheck = handler.precheck?.(args);
      if (precheck !== undefined) throw precheck;
      // Count durably BEFORE acting ([TANDEM-USES-1]): a power cut here loses a use, never lets one go
      // uncounted. Read-only commands have nothing to count ([TANDEM-USES-2]).
      await this.#count(v.counted);
      stage = 'acting';
      result = await handler.run(args, attempt);
    } catch (error) {
      this.#acting = false;
      if (stage === 'before') return this.#refused(peer, attempt, error);
      debug('action failed: %O', error);
      result = this.#results.of(Status.FAULT, attempt, true, messageOf(error));
    } finally {
      this.#acting = false;
    }
    if (result.status === Status.OK) this.#limiter.accepted(peer);
    await this.#trail.record(requestEntry(result.status, peer, attempt, bound), result.mayHaveActed);
    return this.#done(peer, result);
  }

  /**
   * Counts each token of `counted` under its root's quota ([TANDEM-USES-3], [TANDEM-USES-4]), all in one
   * durable append ([TANDEM-USES-6]); a refusal counts none of them.
   */
  async #count(counted: readonly CountedToken[]): Promise<void> {
    if (counted.length === 0) return;
    const r = await this.#stores.useCounters.consumeAll(counted);
    if (r.allowed) return;
    if (r.refused === 'quota') {
      throw new Refusal(
        Status.QUOTA_EXCEEDED,
        'the tokens under this root already hold every use counter the lock keeps for one root',
      );
    }
    throw new Refusal(Status.USES_EXHAUSTED, `all ${counted[r.index]!.maxUses} uses of a token are spent`);
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
    const result = this.#results.of(status, attempt, false, messageOf(error));
    if (status !== Status.FAULT && status !== Status.BUSY) {
      this.#limiter.refused(peer);
      if (evidence !== undefined) await this.#lockout.charge(evidence);
    }
    await this.#trail.record(requestEntry(status, peer, attempt, this.#results.bound()));
    return this.#done(peer, result);
  }

  /** CLEAR_LOCKOUT: lockouts and back-offs end, and so does safe mode. */
  async #clearLockout(): Promise<void> {
    await this.#lockout.clear();
    if (this.#safeMode.length > 0) {
      // The owner acknowledges the data loss of safe mode (README.md, "Lock runtime", "Safe mode").
      this.#safeMode = [];
      await this.#sm.exitSafeMode();
      this.#emit({ type: 'safe-mode', active: false, reasons: [] });
    }
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
    this.#lockout.configure(c);
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
}
