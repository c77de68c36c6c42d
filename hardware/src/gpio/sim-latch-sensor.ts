import createDebug from 'debug';
import type { Clock } from '../clock.js';
import { HardwareError } from '../interfaces.js';
import type { LatchSensor, LatchState } from '../interfaces.js';
import { Listeners } from '../listeners.js';
import { Debouncer } from './debouncer.js';

const debug = createDebug('tandem:hw:sim');

/** 'disconnected': the sensor wire is cut; read() rejects and an error is reported. */
export type SimLatchFault = 'disconnected';

export interface SimLatchSensorOptions {
  readonly clock: Clock;
  /** Same meaning and default as the Linux driver: a change is reported after 20 ms steady. */
  readonly debounceMs?: number;
  /** Physical position at start; default 'closed' (a lock starts locked). */
  readonly initial?: LatchState;
}

/**
 * Simulated latch switch. The raw contact is set by {@link SimLockMechanism} (or a test) with
 * {@link SimLatchSensor.setRaw} or, with contact bounce, {@link SimLatchSensor.bounceTo}; changes are
 * debounced by the same {@link Debouncer} as the Linux driver.
 */
export class SimLatchSensor implements LatchSensor {
  readonly #clock: Clock;
  readonly #changes = new Listeners<LatchState>();
  readonly #errors = new Listeners<HardwareError>();
  readonly #debouncer: Debouncer<LatchState>;
  #open = false;
  #fault: SimLatchFault | undefined;

  constructor(options: SimLatchSensorOptions) {
    this.#clock = options.clock;
    const debounceMs = options.debounceMs ?? 20;
    if (!(debounceMs >= 0))
      throw new HardwareError('ERR_HW_INVALID_ARGUMENT', 'latch sensor: debounceMs must be >= 0');
    this.#debouncer = new Debouncer<LatchState>(
      this.#clock,
      debounceMs,
      options.initial ?? 'closed',
      (state) => {
        if (this.#open && this.#fault === undefined) this.#changes.emit(state);
      },
    );
  }

  /** The raw (undebounced) contact position. */
  get raw(): LatchState {
    return this.#debouncer.raw;
  }

  async open(): Promise<void> {
    this.#open = true;
  }

  async read(): Promise<LatchState> {
    if (!this.#open) throw new HardwareError('ERR_HW_NOT_OPEN', 'latch sensor not open: call open() first');
    if (this.#fault === 'disconnected') throw disconnectedError();
    return this.#debouncer.stable;
  }

  onChange(listener: (state: LatchState) => void): () => void {
    return this.#changes.add(listener);
  }

  onError(listener: (error: HardwareError) => void): () => void {
    return this.#errors.add(listener);
  }

  async close(): Promise<void> {
    this.#open = false;
  }

  /** Move the contact to `state` cleanly. */
  setRaw(state: LatchState): void {
    this.#debouncer.input(state);
  }

  /**
   * Move the contact to `state` the way a real switch does: `edges` extra flips `intervalMs` apart before it
   * settles. With intervals shorter than the debounce period only the final state is reported.
   */
  bounceTo(state: LatchState, edges = 3, intervalMs = 1): void {
    const other: LatchState = state === 'open' ? 'closed' : 'open';
    this.#debouncer.input(state);
    for (let i = 1; i <= edges; i++) {
      const level = i % 2 === 1 ? other : state;
      this.#clock.setTimeout(() => this.#debouncer.input(level), i * intervalMs);
    }
    if (edges % 2 === 1) this.#clock.setTimeout(() => this.#debouncer.input(state), (edges + 1) * intervalMs);
  }

  injectFault(fault: SimLatchFault): void {
    debug('latch fault injected: %s', fault);
    this.#fault = fault;
    this.#errors.emit(disconnectedError());
  }

  clearFault(): void {
    this.#fault = undefined;
  }
}

function disconnectedError(): HardwareError {
  return new HardwareError(
    'ERR_HW_INJECTED_FAULT',
    'latch sensor disconnected (injected fault): no reading; check the sensor wiring and clear the fault',
  );
}
