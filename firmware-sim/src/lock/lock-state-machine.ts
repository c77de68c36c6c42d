/**
 * The lock mechanism's state machine (issue 3, "What it does" 1): the only code that energises the solenoid.
 *
 * States:
 *
 * | state       | meaning                                                                             |
 * | ----------- | ----------------------------------------------------------------------------------- |
 * | `locked`    | bolt engaged, solenoid off, latch closed                                            |
 * | `unlocking` | the solenoid is energised for the configured pulse (never longer: the driver and    |
 * |             | this machine both enforce the rated `maxPulseMs`)                                   |
 * | `open`      | unlocked: the shackle is out (or, for a rider-pulled latch, may be pulled)          |
 * | `relocked`  | the latch closed again after an opening; passes straight on to `locked`             |
 * | `alarm`     | the latch opened without an unlock, or the theft detector raised an alarm           |
 * | `fault`     | a hardware failure (solenoid would not switch, latch unreadable); solenoid released |
 * | `jammed`    | the solenoid was pulsed but the latch did not move within `jamTimeoutMs`            |
 * | `safe-mode` | started after finding a corrupt store; never pulses                                 |
 *
 * Safety rules (ARCHITECTURE.md, "Hardware facts"): start() and every fault release the solenoid, so after
 * any restart or failure the bolt is engaged; one command acts at a time (a second is told `busy`);
 * a latch that opens while nothing unlocked it raises the alarm.
 *
 * Auto-relock: after an unlock, if the latch never opened within `autoRelockMs` (from the pulse), the bolt
 * is back (a pulse-only solenoid lets it spring back as soon as the pulse ends): the machine returns to
 * `locked` once the latch sensor confirms `closed`. With a spring-loaded shackle (the default, as
 * `SimLockMechanism`) a shackle that did not move within `jamTimeoutMs` is reported `jammed` first, then
 * auto-relocks. With a rider-pulled latch (`latchSpringsOpen: false`) the unlock succeeds when the pulse
 * ends and the rider has until `autoRelockMs` to pull; a jam cannot be told apart from a rider who did not
 * pull, so that kind never reports `jammed`.
 */
import createDebug from 'debug';
import type { Clock, TimerHandle } from '../../../hardware/src/clock.js';
import type { LatchSensor, LatchState, Solenoid } from '../../../hardware/src/interfaces.js';
import type { LockState } from '../../../protocol/src/gatt.js';
import { LockError } from './errors.js';

const debug = createDebug('tandem:lock:mechanism');

/** States of {@link LockStateMachine}. */
export type MechanismState =
  'locked' | 'unlocking' | 'open' | 'relocked' | 'alarm' | 'fault' | 'jammed' | 'safe-mode';

/** Why a transition happened. */
export type TransitionReason =
  | 'start'
  | 'unlock'
  | 'latch-open'
  | 'latch-closed'
  | 'forced-open'
  | 'auto-relock'
  | 'jam'
  | 'fault'
  | 'alarm'
  | 'alarm-cleared'
  | 'safe-mode'
  | 'safe-mode-cleared'
  | 'lock-command'
  | 'recover';

/** One transition, as emitted to {@link LockStateMachine.onTransition} listeners. */
export interface StateTransition {
  readonly from: MechanismState;
  readonly to: MechanismState;
  readonly reason: TransitionReason;
  /** Monotonic milliseconds ({@link Clock.now}). */
  readonly at: number;
  /** What failed, for `fault`. */
  readonly error?: unknown;
}

/** What an unlock did. `pulsed`: whether the solenoid may have been energised (SPEC.md [TANDEM-STATUS-3]). */
export type UnlockOutcome =
  | { readonly kind: 'opened'; readonly pulsed: boolean }
  | { readonly kind: 'jammed'; readonly pulsed: true }
  | { readonly kind: 'fault'; readonly pulsed: boolean; readonly error?: unknown }
  | { readonly kind: 'busy'; readonly pulsed: false }
  | { readonly kind: 'safe-mode'; readonly pulsed: false };

/** Options of {@link LockStateMachine}. */
export interface LockStateMachineOptions {
  readonly clock: Clock;
  readonly solenoid: Solenoid;
  readonly latch: LatchSensor;
  /** Pulse length in ms, 1..solenoid.maxPulseMs. */
  readonly pulseMs: number;
  /** After an unlock, the latch must have opened within this long (from the pulse) or the bolt re-locks. */
  readonly autoRelockMs: number;
  /** Spring-loaded shackle: it must leave `closed` within this long of the pulse; default pulseMs + 500. */
  readonly jamTimeoutMs?: number;
  /** True (default) for a spring-loaded shackle that opens by itself; false for a latch the rider pulls. */
  readonly latchSpringsOpen?: boolean;
}

/**
 * Drives one solenoid and reads one latch sensor; see the module comment for states and rules. Emits every
 * transition; all timing comes from the injected {@link Clock}.
 */
export class LockStateMachine {
  readonly #clock: Clock;
  readonly #solenoid: Solenoid;
  readonly #latch: LatchSensor;
  readonly #springs: boolean;
  readonly #listeners = new Set<(t: StateTransition) => void>();
  readonly #unsubscribe: (() => void)[] = [];
  #pulseMs: number;
  #autoRelockMs: number;
  #jamTimeoutMs: number;
  #jamTimeoutExplicit: boolean;
  #state: MechanismState = 'locked';
  #started = false;
  #closed = false;
  #busy = false;
  /** The latch has opened since the current unlock began. */
  #openedSinceUnlock = false;
  #relockTimer: TimerHandle | undefined;
  #waiter: { resolve: (opened: boolean) => void; timer: TimerHandle } | undefined;

  constructor(options: LockStateMachineOptions) {
    this.#clock = options.clock;
    this.#solenoid = options.solenoid;
    this.#latch = options.latch;
    this.#springs = options.latchSpringsOpen ?? true;
    this.#pulseMs = checkPulseMs(options.pulseMs, options.solenoid.maxPulseMs);
    this.#autoRelockMs = checkPositive(options.autoRelockMs, 'autoRelockMs');
    this.#jamTimeoutExplicit = options.jamTimeoutMs !== undefined;
    this.#jamTimeoutMs = checkPositive(options.jamTimeoutMs ?? this.#pulseMs + 500, 'jamTimeoutMs');
  }

  /** The current state. */
  get state(): MechanismState {
    return this.#state;
  }

  /** The state as reported on BLE and MQTT (SPEC.md [TANDEM-GATT-9]). */
  get reportedState(): LockState {
    return reportedState(this.#state);
  }

  /** True while a command is acting (an unlock pulse or its latch wait). */
  get busy(): boolean {
    return this.#busy;
  }

  /** The coil's rated maximum pulse, ms (SET_CONFIG's bound on `pulseMs`). */
  get maxPulseMs(): number {
    return this.#solenoid.maxPulseMs;
  }

  get pulseMs(): number {
    return this.#pulseMs;
  }

  get autoRelockMs(): number {
    return this.#autoRelockMs;
  }

  /** Change the pulse length (SET_CONFIG); takes effect from the next unlock. */
  setPulseMs(ms: number): void {
    this.#pulseMs = checkPulseMs(ms, this.#solenoid.maxPulseMs);
    if (!this.#jamTimeoutExplicit) this.#jamTimeoutMs = this.#pulseMs + 500;
  }

  /** Change the auto-relock delay (SET_CONFIG); takes effect from the next unlock. */
  setAutoRelockMs(ms: number): void {
    this.#autoRelockMs = checkPositive(ms, 'autoRelockMs');
  }

  /** Subscribe to transitions; returns the unsubscribe function. A throwing listener is logged and ignored. */
  onTransition(listener: (t: StateTransition) => void): () => void {
    const entry = (t: StateTransition): void => listener(t);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /**
   * Opens the hardware, releases the solenoid (whatever a crashed predecessor left), and reads the latch:
   * `locked` when closed, `open` when the shackle is out, `fault` when either part fails. Never pulses.
   */
  async start(): Promise<MechanismState> {
    if (this.#closed) throw new LockError('ERR_LOCK_CLOSED', 'lock state machine closed: build a new one');
    if (this.#started) return this.#state;
    this.#started = true;
    this.#unsubscribe.push(this.#latch.onChange((s) => this.#onLatch(s)));
    if (this.#latch.onError) {
      this.#unsubscribe.push(this.#latch.onError((e) => this.#fault(e)));
    }
    try {
      await this.#solenoid.open();
      await this.#solenoid.release();
      await this.#latch.open();
      const latch = await this.#latch.read();
      this.#set(latch === 'closed' ? 'locked' : 'open', 'start');
      this.#openedSinceUnlock = latch === 'open';
    } catch (error) {
      await this.#fault(error);
    }
    return this.#state;
  }

  /**
   * Unlock: pulse the solenoid once for the configured length, then watch the latch (module comment).
   * Never throws; a hardware failure is a `fault` outcome with the solenoid released.
   */
  async unlock(): Promise<UnlockOutcome> {
    this.#checkStarted();
    if (this.#busy) return { kind: 'busy', pulsed: false };
    const from = this.#state;
    if (from === 'safe-mode') return { kind: 'safe-mode', pulsed: false };
    if (from === 'fault') return { kind: 'fault', pulsed: false };
    if (from === 'open' || from === 'unlocking') return { kind: 'opened', pulsed: false };
    this.#busy = true;
    try {
      // A shackle already out (forced open during an alarm, or never pushed in) needs no pulse.
      let latch: LatchState;
      try {
        latch = await this.#latch.read();
      } catch (error) {
        await this.#fault(error);
        return { kind: 'fault', pulsed: false, error };
      }
      if (latch === 'open') {
        this.#cancelRelock();
        this.#openedSinceUnlock = true;
        this.#set('open', 'latch-open');
        return { kind: 'opened', pulsed: false };
      }
      this.#cancelRelock();
      this.#openedSinceUnlock = false;
      const start = this.#clock.now();
      this.#set('unlocking', 'unlock');
      try {
        await this.#solenoid.pulse(this.#pulseMs);
      } catch (error) {
        await this.#fault(error);
        return { kind: 'fault', pulsed: true, error };
      }
      if (this.#solenoid.isEnergised()) {
        // The driver resolved but the coil is still on: never leave it energised past its pulse.
        await this.#fault(new Error('solenoid still energised after its pulse'));
        return { kind: 'fault', pulsed: true };
      }
      if (this.#state !== 'unlocking') {
        // A latch error or a fault during the pulse already moved us on.
        return this.#state === 'open' ? { kind: 'opened', pulsed: true } : { kind: 'fault', pulsed: true };
      }
      if (!this.#springs) {
        this.#set('open', 'unlock');
        this.#armRelock(start);
        return { kind: 'opened', pulsed: true };
      }
      const opened = this.#openedSinceUnlock || (await this.#waitOpened(start + this.#jamTimeoutMs));
      if (this.#state !== 'unlocking') {
        return this.#state === 'open' ? { kind: 'opened', pulsed: true } : { kind: 'fault', pulsed: true };
      }
      if (opened) {
        this.#set('open', 'latch-open');
        return { kind: 'opened', pulsed: true };
      }
      this.#set('jammed', 'jam');
      this.#armRelock(start);
      return { kind: 'jammed', pulsed: true };
    } finally {
      this.#busy = false;
    }
  }

  /**
   * LOCK command: ends an unlock window. Releases the solenoid if energised; from `open` with the latch
   * closed, or from `jammed`, returns to `locked`. A shackle that is out must be pushed in: the state stays
   * `open` until the latch closes. Returns the state after the command, or `busy`.
   */
  async lock(): Promise<MechanismState | 'busy'> {
    this.#checkStarted();
    if (this.#busy) return 'busy';
    try {
      if (this.#solenoid.isEnergised()) await this.#solenoid.release();
      if (this.#state === 'open' || this.#state === 'jammed') {
        const latch = await this.#latch.read();
        if (latch === 'closed') {
          this.#cancelRelock();
          this.#set('locked', 'lock-command');
        }
      }
    } catch (error) {
      await this.#fault(error);
    }
    return this.#state;
  }

  /** The theft detector's alarm (or any caller's). Keeps the bolt engaged; an unlock clears it. */
  raiseAlarm(): void {
    this.#checkStarted();
    if (this.#state === 'fault' || this.#state === 'safe-mode' || this.#state === 'alarm') return;
    if (this.#state === 'unlocking' || this.#state === 'open') return; // the owner's rider is using it
    this.#set('alarm', 'alarm');
  }

  /** Clear an alarm: back to `locked` or `open` as the latch reads. */
  async clearAlarm(): Promise<MechanismState> {
    this.#checkStarted();
    if (this.#state !== 'alarm') return this.#state;
    await this.#settleFromLatch('alarm-cleared');
    return this.#state;
  }

  /** Safe mode (a corrupt store at start): solenoid released, every unlock refused. */
  async enterSafeMode(): Promise<void> {
    this.#checkStarted();
    this.#cancelRelock();
    try {
      await this.#solenoid.release();
    } catch (error) {
      debug('release on entering safe mode failed: %O', error);
    }
    this.#set('safe-mode', 'safe-mode');
  }

  /** Leave safe mode after the owner acknowledged it. */
  async exitSafeMode(): Promise<MechanismState> {
    this.#checkStarted();
    if (this.#state === 'safe-mode') await this.#settleFromLatch('safe-mode-cleared');
    return this.#state;
  }

  /** Try to leave `fault`: release the solenoid and read the latch; stays in `fault` if either fails. */
  async recover(): Promise<MechanismState> {
    this.#checkStarted();
    if (this.#state !== 'fault') return this.#state;
    try {
      await this.#solenoid.release();
    } catch (error) {
      debug('recover: release failed: %O', error);
      return this.#state;
    }
    await this.#settleFromLatch('recover');
    return this.#state;
  }

  /** Stop timers and listeners, release the solenoid and close the hardware. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelRelock();
    this.#resolveWaiter(false);
    for (const u of this.#unsubscribe.splice(0)) u();
    try {
      await this.#solenoid.release();
    } catch (error) {
      debug('release on close failed: %O', error);
    }
    await this.#solenoid.close();
    await this.#latch.close();
  }

  #checkStarted(): void {
    if (this.#closed) throw new LockError('ERR_LOCK_CLOSED', 'lock state machine closed: build a new one');
    if (!this.#started) throw new LockError('ERR_LOCK_NOT_STARTED', 'call start() before using the lock');
  }

  #set(to: MechanismState, reason: TransitionReason, error?: unknown): void {
    const from = this.#state;
    if (from === to && reason !== 'start') return;
    this.#state = to;
    const t: StateTransition = {
      from,
      to,
      reason,
      at: this.#clock.now(),
      ...(error === undefined ? {} : { error }),
    };
    // Checked first: `debug` takes its arguments as a rest array even when its namespace is off, and every
    // unlock makes three transitions (issue 8, decision cost).
    if (debug.enabled) debug('%s -> %s (%s)', from, to, reason);
    for (const l of [...this.#listeners]) {
      try {
        l(t);
      } catch (e) {
        debug('transition listener threw: %O', e);
      }
    }
  }

  #onLatch(latch: LatchState): void {
    if (this.#closed) return;
    const s = this.#state;
    if (latch === 'open') {
      this.#openedSinceUnlock = true;
      if (s === 'unlocking') {
        this.#resolveWaiter(true);
      } else if (s === 'open') {
        this.#cancelRelock();
      } else if (s === 'locked' || s === 'relocked' || s === 'jammed') {
        // Nothing unlocked it: forced open (or a jam that freed itself after we gave up: still report it).
        this.#cancelRelock();
        this.#set('alarm', 'forced-open');
      }
      return;
    }
    if (s === 'open' && this.#openedSinceUnlock) {
      this.#cancelRelock();
      this.#set('relocked', 'latch-closed');
      this.#set('locked', 'latch-closed');
    }
  }

  #waitOpened(deadline: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const timer = this.#clock.setTimeout(
        () => this.#resolveWaiter(this.#openedSinceUnlock),
        deadline - this.#clock.now(),
      );
      this.#waiter = { resolve, timer };
    });
  }

  #resolveWaiter(opened: boolean): void {
    const w = this.#waiter;
    if (w === undefined) return;
    this.#waiter = undefined;
    this.#clock.clearTimeout(w.timer);
    w.resolve(opened);
  }

  #armRelock(pulseStart: number): void {
    this.#cancelRelock();
    this.#relockTimer = this.#clock.setTimeout(
      () => {
        this.#relockTimer = undefined;
        void this.#autoRelock();
      },
      pulseStart + this.#autoRelockMs - this.#clock.now(),
    );
  }

  async #autoRelock(): Promise<void> {
    if (this.#openedSinceUnlock) return;
    if (this.#state !== 'open' && this.#state !== 'jammed') return;
    try {
      const latch = await this.#latch.read();
      if (latch === 'closed' && (this.#state === 'open' || this.#state === 'jammed')) {
        this.#set('locked', 'auto-relock');
      }
    } catch (error) {
      await this.#fault(error);
    }
  }

  #cancelRelock(): void {
    if (this.#relockTimer !== undefined) this.#clock.clearTimeout(this.#relockTimer);
    this.#relockTimer = undefined;
  }

  async #settleFromLatch(reason: TransitionReason): Promise<void> {
    try {
      const latch = await this.#latch.read();
      this.#openedSinceUnlock = latch === 'open';
      this.#set(latch === 'closed' ? 'locked' : 'open', reason);
    } catch (error) {
      await this.#fault(error);
    }
  }

  async #fault(error: unknown): Promise<void> {
    this.#cancelRelock();
    this.#resolveWaiter(false);
    if (this.#state !== 'safe-mode') this.#set('fault', 'fault', error);
    try {
      await this.#solenoid.release();
    } catch (e) {
      debug('release after fault failed (coil may be stuck): %O', e);
    }
  }
}

/** The wire state for a mechanism state (SPEC.md [TANDEM-GATT-9]). */
export function reportedState(state: MechanismState): LockState {
  switch (state) {
    case 'locked':
    case 'relocked':
      return 'locked';
    case 'unlocking':
    case 'open':
      return 'unlocked';
    default:
      return state;
  }
}

function checkPulseMs(ms: number, max: number): number {
  if (!Number.isInteger(ms) || ms < 1 || ms > max) {
    throw new LockError(
      'ERR_LOCK_INVALID_ARGUMENT',
      `pulseMs must be a whole number of milliseconds from 1 to the solenoid's rated ${max}, got ${ms}`,
    );
  }
  return ms;
}

function checkPositive(ms: number, name: string): number {
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new LockError('ERR_LOCK_INVALID_ARGUMENT', `${name} must be a positive number of ms, got ${ms}`);
  }
  return ms;
}
