import createDebug from 'debug';
import type { Clock, TimerHandle } from '../clock.js';
import type { LatchState } from '../interfaces.js';
import { SimLatchSensor } from './sim-latch-sensor.js';
import { SimSolenoid } from './sim-solenoid.js';

const debug = createDebug('tandem:hw:sim');

/** 'jammed': the shackle is stuck in the bolt (bike leaning on it, grit): a pulse does not open it. */
export type SimMechanismFault = 'jammed';

export interface SimLockMechanismOptions {
  readonly clock: Clock;
  readonly solenoid: SimSolenoid;
  readonly latch: SimLatchSensor;
  /** Plunger travel: current must flow this long before the shackle springs open; default 15 ms. */
  readonly actuationMs?: number;
  /** Contact bounce of the latch switch on each movement; default 3 edges 1 ms apart. */
  readonly bounceEdges?: number;
  readonly bounceIntervalMs?: number;
}

/**
 * The mechanics between the simulated solenoid and latch switch: current through the coil for
 * `actuationMs` pulls the bolt and the spring-loaded shackle opens (the latch switch reads 'open'), unless
 * 'jammed' is injected; the shackle stays open until a user pushes it back in with {@link push}, which
 * latches only while the coil is off.
 */
export class SimLockMechanism {
  readonly solenoid: SimSolenoid;
  readonly latch: SimLatchSensor;
  readonly #clock: Clock;
  readonly #actuationMs: number;
  readonly #bounceEdges: number;
  readonly #bounceIntervalMs: number;
  readonly #unsubscribe: () => void;
  #shackle: LatchState;
  #fault: SimMechanismFault | undefined;
  #travel: TimerHandle | undefined;

  constructor(options: SimLockMechanismOptions) {
    this.#clock = options.clock;
    this.solenoid = options.solenoid;
    this.latch = options.latch;
    this.#actuationMs = options.actuationMs ?? 15;
    this.#bounceEdges = options.bounceEdges ?? 3;
    this.#bounceIntervalMs = options.bounceIntervalMs ?? 1;
    this.#shackle = this.latch.raw;
    this.#unsubscribe = this.solenoid.onCurrentChange((current) => this.#coil(current));
  }

  /** Build a solenoid, latch sensor and mechanism on one clock. */
  static create(options: {
    clock: Clock;
    maxPulseMs: number;
    debounceMs?: number;
    actuationMs?: number;
    initial?: LatchState;
  }): SimLockMechanism {
    const solenoid = new SimSolenoid({ clock: options.clock, maxPulseMs: options.maxPulseMs });
    const latch = new SimLatchSensor({
      clock: options.clock,
      ...(options.debounceMs === undefined ? {} : { debounceMs: options.debounceMs }),
      ...(options.initial === undefined ? {} : { initial: options.initial }),
    });
    return new SimLockMechanism({
      clock: options.clock,
      solenoid,
      latch,
      ...(options.actuationMs === undefined ? {} : { actuationMs: options.actuationMs }),
    });
  }

  /** Physical shackle position (what the latch switch will read once debounced). */
  get shackle(): LatchState {
    return this.#shackle;
  }

  injectFault(fault: SimMechanismFault): void {
    debug('mechanism fault injected: %s', fault);
    this.#fault = fault;
  }

  clearFault(): void {
    this.#fault = undefined;
  }

  /**
   * A user pushes the shackle in. Returns whether it latched: not while the coil holds the bolt back
   * (the shackle springs out again).
   */
  push(): boolean {
    if (this.solenoid.hasCurrent()) {
      debug('push: coil energised, bolt retracted, shackle does not latch');
      return false;
    }
    if (this.#shackle !== 'closed') this.#move('closed');
    return true;
  }

  /** Stop listening to the solenoid. */
  dispose(): void {
    this.#unsubscribe();
    if (this.#travel !== undefined) this.#clock.clearTimeout(this.#travel);
  }

  #coil(current: boolean): void {
    if (this.#travel !== undefined) this.#clock.clearTimeout(this.#travel);
    this.#travel = undefined;
    if (!current) return;
    this.#travel = this.#clock.setTimeout(() => {
      this.#travel = undefined;
      if (this.#fault === 'jammed') {
        debug('coil pulled but the shackle is jammed');
        return;
      }
      if (this.#shackle !== 'open') this.#move('open');
    }, this.#actuationMs);
  }

  #move(to: LatchState): void {
    this.#shackle = to;
    this.latch.bounceTo(to, this.#bounceEdges, this.#bounceIntervalMs);
  }
}
