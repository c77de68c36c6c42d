import type { Clock, TimerHandle } from '../clock.js';

/**
 * Debounce a two-level signal: a new level is accepted only once the raw input has stayed at it for
 * `periodMs` without a further change. Shared by the Linux latch driver and the simulation so that both
 * report exactly the same events for the same raw edges.
 */
export class Debouncer<T> {
  readonly #clock: Clock;
  readonly #periodMs: number;
  readonly #onStable: (value: T) => void;
  #stable: T;
  #raw: T;
  #timer: TimerHandle | undefined;

  constructor(clock: Clock, periodMs: number, initial: T, onStable: (value: T) => void) {
    this.#clock = clock;
    this.#periodMs = periodMs;
    this.#stable = initial;
    this.#raw = initial;
    this.#onStable = onStable;
  }

  get stable(): T {
    return this.#stable;
  }

  get raw(): T {
    return this.#raw;
  }

  /** Feed a raw edge. */
  input(value: T): void {
    this.#raw = value;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#periodMs <= 0) {
      this.#settle();
      return;
    }
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#settle();
    }, this.#periodMs);
  }

  /** Forget pending edges and take `value` as the stable level (after a fresh read), without an event. */
  reset(value: T): void {
    this.cancel();
    this.#stable = value;
    this.#raw = value;
  }

  cancel(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #settle(): void {
    if (this.#raw !== this.#stable) {
      this.#stable = this.#raw;
      this.#onStable(this.#stable);
    }
  }
}
