/**
 * Time source of the virtual radio. Every radio timing (advertising events, connection events, latency,
 * supervision timeout) is scheduled on a {@link RadioClock}: {@link VirtualClock} for fast deterministic
 * tests, {@link RealClock} for demos and for several processes sharing one radio.
 */
import type { Clock, TimerHandle } from '../clock.js';
import { VirtualRadioError } from './errors.js';

/** Opaque handle returned by {@link RadioClock.setTimeout}: the {@link Clock}'s. */
export type RadioTimer = TimerHandle;

/** The clock the radio schedules on: a {@link Clock} (milliseconds) with one more hook. */
export interface RadioClock extends Clock {
  /**
   * Called by the radio with a predicate that is true while hosts still have events to consume; an
   * auto-advancing virtual clock waits for it to turn false before jumping ahead. Real clocks ignore it.
   */
  addBusySource(isBusy: () => boolean): void;
}

/** Wall-clock time (`performance.now()` and Node timers). */
export class RealClock implements RadioClock {
  private nextId = 1;
  private readonly timers = new Map<number, NodeJS.Timeout>();

  now(): number {
    return performance.now();
  }

  setTimeout(fn: () => void, ms: number): RadioTimer {
    const id = this.nextId++;
    const t = setTimeout(
      () => {
        this.timers.delete(id);
        fn();
      },
      Math.max(0, ms),
    );
    this.timers.set(id, t);
    return { id };
  }

  clearTimeout(timer: RadioTimer): void {
    const t = this.timers.get(timer.id);
    if (t !== undefined) {
      clearTimeout(t);
      this.timers.delete(timer.id);
    }
  }

  addBusySource(): void {
    // Real time never waits for hosts: they race the radio as they would on hardware.
  }
}

interface Scheduled {
  readonly id: number;
  readonly due: number;
  readonly seq: number;
  readonly fn: () => void;
}

/** Options of {@link VirtualClock}. */
export interface VirtualClockOptions {
  /** Initial time in ms (default 0). */
  startMs?: number;
  /**
   * When true, the clock jumps to the next timer by itself as soon as the process is otherwise idle (no
   * host still digesting radio events, and `settleTurns` event-loop turns have passed without new work).
   * Default false: time moves only through {@link VirtualClock.advance} / {@link VirtualClock.runUntilIdle}.
   */
  autoAdvance?: boolean;
  /** Event-loop turns (setImmediate hops) to wait for hosts before each auto step (default 2). */
  settleTurns?: number;
}

/**
 * Simulated time. Timers due at the same instant fire in the order they were set. With `autoAdvance`
 * a transfer that takes seconds of radio time completes in milliseconds, and the number of connection
 * events it takes does not depend on the machine's speed.
 */
export class VirtualClock implements RadioClock {
  private t: number;
  private seq = 0;
  private nextId = 1;
  private queue: Scheduled[] = [];
  private readonly busySources: Array<() => boolean> = [];
  private auto: boolean;
  private readonly settleTurns: number;
  private autoScheduled = false;
  private idleTurns = 0;

  constructor(options: VirtualClockOptions = {}) {
    this.t = options.startMs ?? 0;
    this.auto = options.autoAdvance ?? false;
    this.settleTurns = options.settleTurns ?? 2;
    if (!Number.isInteger(this.settleTurns) || this.settleTurns < 0) {
      throw new VirtualRadioError(
        'ERR_RADIO_INVALID_OPTION',
        `VirtualClock "settleTurns" must be a non-negative integer, got ${String(options.settleTurns)}`,
      );
    }
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): RadioTimer {
    const id = this.nextId++;
    const item: Scheduled = { id, due: this.t + Math.max(0, ms), seq: this.seq++, fn };
    // Keep the queue sorted by (due, seq); insertion from the back is cheap because most timers are late.
    let i = this.queue.length;
    while (i > 0) {
      const prev = this.queue[i - 1]!;
      if (prev.due < item.due || (prev.due === item.due && prev.seq < item.seq)) break;
      i--;
    }
    this.queue.splice(i, 0, item);
    this.kick();
    return { id };
  }

  clearTimeout(timer: RadioTimer): void {
    const i = this.queue.findIndex((s) => s.id === timer.id);
    if (i >= 0) this.queue.splice(i, 1);
  }

  addBusySource(isBusy: () => boolean): void {
    this.busySources.push(isBusy);
  }

  /** Number of timers waiting. */
  pending(): number {
    return this.queue.length;
  }

  /** Switch auto-advance on or off. */
  setAutoAdvance(on: boolean): void {
    this.auto = on;
    this.kick();
  }

  /** Move time forward by `ms`, firing every timer that falls due on the way (synchronously). */
  advance(ms: number): void {
    if (!(ms >= 0)) {
      throw new VirtualRadioError('ERR_RADIO_CLOCK', `VirtualClock.advance(ms) needs ms >= 0, got ${ms}`);
    }
    const end = this.t + ms;
    while (this.queue.length > 0 && this.queue[0]!.due <= end) this.fireNext();
    this.t = end;
  }

  /**
   * Fire timers until none is left, synchronously. Throws ERR_RADIO_CLOCK after `maxTimers` timers, which
   * means something re-arms itself forever (e.g. a scanner without duplicate filtering next to an
   * advertiser): use {@link advance} with a bound instead.
   */
  runUntilIdle(maxTimers = 100_000): void {
    let n = 0;
    while (this.queue.length > 0) {
      if (n++ >= maxTimers) {
        throw new VirtualRadioError(
          'ERR_RADIO_CLOCK',
          `VirtualClock.runUntilIdle fired ${maxTimers} timers and more keep coming; advance(ms) with a bound instead`,
        );
      }
      this.fireNext();
    }
  }

  /**
   * Advance by `ms` in small steps, yielding to the event loop between timer instants so that hosts
   * (bleno, noble) react to what the radio delivered before time moves on.
   */
  async advanceAsync(ms: number): Promise<void> {
    const end = this.t + ms;
    while (this.queue.length > 0 && this.queue[0]!.due <= end) {
      await this.settle();
      if (this.queue.length === 0 || this.queue[0]!.due > end) break;
      this.fireDueAtHead();
    }
    this.t = Math.max(this.t, end);
    await this.settle();
  }

  private async settle(): Promise<void> {
    for (let turns = 0; turns < this.settleTurns || this.isBusy(); turns++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  private isBusy(): boolean {
    return this.busySources.some((b) => b());
  }

  private fireNext(): void {
    const item = this.queue.shift()!;
    this.t = Math.max(this.t, item.due);
    item.fn();
  }

  /** Fire every timer due at the earliest instant (including ones set for that instant while firing). */
  private fireDueAtHead(): void {
    const due = this.queue[0]!.due;
    while (this.queue.length > 0 && this.queue[0]!.due === due) this.fireNext();
  }

  private kick(): void {
    if (!this.auto || this.autoScheduled || this.queue.length === 0) return;
    this.autoScheduled = true;
    setImmediate(() => this.autoStep());
  }

  private autoStep(): void {
    this.autoScheduled = false;
    if (!this.auto || this.queue.length === 0) return;
    if (this.isBusy()) {
      this.idleTurns = 0;
    } else if (this.idleTurns < this.settleTurns) {
      this.idleTurns++;
    } else {
      this.idleTurns = 0;
      this.fireDueAtHead();
    }
    this.kick();
  }
}
