import createDebug from 'debug';
import type { Clock, TimerHandle } from '../clock.js';
import { HardwareError } from '../interfaces.js';
import type { Solenoid } from '../interfaces.js';
import { Listeners } from '../listeners.js';
import { checkPulse } from './pulse-limit.js';

const debug = createDebug('tandem:hw:sim');

/**
 * Faults a tester can inject:
 * - 'stuck': the driver transistor has failed short, so the coil stays energised after the pulse and
 *   neither the watchdog nor release() can switch it off; pulse() and release() reject with
 *   ERR_HW_INJECTED_FAULT until the fault is cleared. Tests the firmware's reaction to a coil that will not
 *   let go (it must alarm and never report "locked").
 * - 'open-circuit': the coil is disconnected; from the GPIO side the pulse looks normal (there is no
 *   current sensing on the Pi), but nothing moves, so the latch stays closed.
 */
export type SimSolenoidFault = 'stuck' | 'open-circuit';

/** How a simulated pulse ended. */
export type SimPulseEnd = 'complete' | 'release' | 'watchdog' | 'close';

/** One recorded pulse, with clock timestamps. */
export interface SimPulseRecord {
  readonly startedAt: number;
  readonly requestedMs: number;
  endedAt: number | undefined;
  endedBy: SimPulseEnd | undefined;
  /** Whether current flowed (false with an 'open-circuit' fault). */
  readonly current: boolean;
}

export interface SimSolenoidOptions {
  readonly clock: Clock;
  readonly maxPulseMs: number;
}

/**
 * Simulated solenoid with the same pulse rules as {@link LinuxSolenoid}: refuses pulses over `maxPulseMs`,
 * de-energises on a watchdog after `maxPulseMs`, on release() and on close(). Records every pulse.
 */
export class SimSolenoid implements Solenoid {
  readonly maxPulseMs: number;
  readonly #clock: Clock;
  readonly #coil = new Listeners<boolean>();
  readonly #pulses: SimPulseRecord[] = [];
  #open = false;
  #energised = false;
  #fault: SimSolenoidFault | undefined;
  #active:
    | {
        record: SimPulseRecord;
        timer: TimerHandle;
        watchdog: TimerHandle;
        resolve: () => void;
        reject: (e: Error) => void;
      }
    | undefined;

  constructor(options: SimSolenoidOptions) {
    if (!Number.isInteger(options.maxPulseMs) || options.maxPulseMs < 1) {
      throw new HardwareError(
        'ERR_HW_INVALID_ARGUMENT',
        `solenoid: maxPulseMs must be a positive integer (the coil's rated on-time in ms), got ${options.maxPulseMs}`,
      );
    }
    this.maxPulseMs = options.maxPulseMs;
    this.#clock = options.clock;
  }

  /** Every pulse so far, oldest first. */
  get pulses(): readonly SimPulseRecord[] {
    return this.#pulses;
  }

  get fault(): SimSolenoidFault | undefined {
    return this.#fault;
  }

  async open(): Promise<void> {
    this.#open = true;
  }

  isEnergised(): boolean {
    return this.#energised;
  }

  /** True while current flows through the coil (energised and not open-circuit): what moves the plunger. */
  hasCurrent(): boolean {
    return this.#energised && this.#fault !== 'open-circuit';
  }

  /** Subscribe to coil current switching on or off (used by {@link SimLockMechanism}). */
  onCurrentChange(listener: (current: boolean) => void): () => void {
    return this.#coil.add(listener);
  }

  injectFault(fault: SimSolenoidFault): void {
    debug('solenoid fault injected: %s', fault);
    const hadCurrent = this.hasCurrent();
    this.#fault = fault;
    if (hadCurrent !== this.hasCurrent()) this.#coil.emit(this.hasCurrent());
  }

  /** Clear the fault; a coil held on by 'stuck' switches off now. */
  clearFault(): void {
    const wasStuck = this.#fault === 'stuck';
    const hadCurrent = this.hasCurrent();
    this.#fault = undefined;
    if (wasStuck && this.#active === undefined) this.#setEnergised(false);
    else if (hadCurrent !== this.hasCurrent()) this.#coil.emit(this.hasCurrent());
  }

  pulse(ms: number): Promise<void> {
    if (!this.#open)
      return Promise.reject(new HardwareError('ERR_HW_NOT_OPEN', 'solenoid not open: call open() first'));
    try {
      checkPulse(ms, this.maxPulseMs);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#active !== undefined) {
      return Promise.reject(
        new HardwareError('ERR_HW_BUSY', 'solenoid: a pulse is already in progress; wait for it to finish'),
      );
    }
    if (this.#fault === 'stuck' && this.#energised) return Promise.reject(stuckError());
    const record: SimPulseRecord = {
      startedAt: this.#clock.now(),
      requestedMs: ms,
      endedAt: undefined,
      endedBy: undefined,
      current: this.#fault !== 'open-circuit',
    };
    this.#pulses.push(record);
    return new Promise<void>((resolve, reject) => {
      this.#active = {
        record,
        resolve,
        reject,
        timer: this.#clock.setTimeout(() => this.#end('complete'), ms),
        // Mirrors the Linux driver's watchdog; it can only matter if the pulse timer were lost.
        watchdog: this.#clock.setTimeout(() => this.#end('watchdog'), this.maxPulseMs),
      };
      this.#setEnergised(true);
    });
  }

  async release(): Promise<void> {
    if (this.#active !== undefined) this.#end('release');
    else if (this.#fault === 'stuck' && this.#energised) throw stuckError();
  }

  async close(): Promise<void> {
    if (this.#active !== undefined) this.#end('close');
    this.#open = false;
  }

  #end(how: SimPulseEnd): void {
    const active = this.#active;
    if (active === undefined) return;
    this.#active = undefined;
    this.#clock.clearTimeout(active.timer);
    this.#clock.clearTimeout(active.watchdog);
    active.record.endedAt = this.#clock.now();
    active.record.endedBy = how;
    if (this.#fault === 'stuck') {
      // The output cannot be switched off: the coil stays energised and the caller learns it.
      active.reject(stuckError());
      return;
    }
    this.#setEnergised(false);
    active.resolve();
  }

  #setEnergised(on: boolean): void {
    const hadCurrent = this.hasCurrent();
    this.#energised = on;
    if (hadCurrent !== this.hasCurrent()) this.#coil.emit(this.hasCurrent());
  }
}

function stuckError(): HardwareError {
  return new HardwareError(
    'ERR_HW_INJECTED_FAULT',
    'solenoid output stuck energised (injected fault): the driver cannot switch the coil off; cut the coil supply and clear the fault',
  );
}
