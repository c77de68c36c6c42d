/**
 * Time as an injected dependency. The simulations and the Linux drivers take a {@link Clock} in their
 * constructor so that tests drive time with {@link ManualClock} instead of waiting on the wall clock, and so
 * that the firmware can reuse one clock for its own timers.
 *
 * This is the project's one clock interface (issue 12): the virtual radio's `RadioClock` is a Clock with one
 * more hook, and the phone side's `Timers` (`gateway/src/lock-client.ts`) is its timer half.
 */

/** An opaque handle for a scheduled callback. */
export interface TimerHandle {
  readonly id: number;
}

/** Monotonic time plus one-shot timers. */
export interface Clock {
  /** Milliseconds on a monotonic scale (not wall-clock time; the Pi Zero has no real-time clock). */
  now(): number;
  /** Run `callback` once after `ms` milliseconds (clamped to >= 0). */
  setTimeout(callback: () => void, ms: number): TimerHandle;
  /** Cancel a timer; unknown or already fired handles are ignored. */
  clearTimeout(handle: TimerHandle): void;
}

/** The process clock: `performance.now()` and Node's timers. */
export class SystemClock implements Clock {
  readonly #timers = new Map<number, ReturnType<typeof setTimeout>>();
  #nextId = 1;
  readonly #unref: boolean;

  /**
   * @param options.unref when true, pending timers do not keep the process alive (for watchdogs that must
   *   never hold a finished program open).
   */
  constructor(options: { unref?: boolean } = {}) {
    this.#unref = options.unref ?? false;
  }

  now(): number {
    return performance.now();
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    const timer = setTimeout(
      () => {
        this.#timers.delete(id);
        callback();
      },
      Math.max(0, ms),
    );
    if (this.#unref) timer.unref();
    this.#timers.set(id, timer);
    return { id };
  }

  clearTimeout(handle: TimerHandle): void {
    const timer = this.#timers.get(handle.id);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.#timers.delete(handle.id);
    }
  }
}

interface ManualTimer {
  readonly id: number;
  readonly due: number;
  readonly callback: () => void;
}

/**
 * A clock that only moves when told to. {@link ManualClock.advance} fires every timer that falls due, in
 * order of due time (ties in order of scheduling), with `now()` set to each timer's due time while it runs,
 * so timers scheduled by a callback fire within the same advance if they fall due in it.
 */
export class ManualClock implements Clock {
  #now: number;
  #nextId = 1;
  #timers: ManualTimer[] = [];

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const delay = Number.isFinite(ms) ? Math.max(0, ms) : 0;
    const timer: ManualTimer = { id: this.#nextId++, due: this.#now + delay, callback };
    this.#timers.push(timer);
    return { id: timer.id };
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers = this.#timers.filter((t) => t.id !== handle.id);
  }

  /** Number of timers not yet fired. */
  pendingTimers(): number {
    return this.#timers.length;
  }

  /** Move time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0)
      throw new RangeError(`ManualClock.advance: ms must be >= 0, got ${ms}`);
    const target = this.#now + ms;
    for (;;) {
      const next = this.#earliestDue(target);
      if (next === undefined) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#now = next.due;
      next.callback();
    }
    this.#now = target;
  }

  /**
   * Advance in steps of `stepMs`, yielding to the event loop between steps so that promise continuations
   * scheduled by fired timers run before the next timer (drivers that await inside timer callbacks need it).
   */
  async advanceAsync(ms: number, stepMs = 1): Promise<void> {
    const target = this.#now + ms;
    await flushMicrotasks();
    while (this.#now < target) {
      this.advance(Math.min(stepMs, target - this.#now));
      await flushMicrotasks();
    }
  }

  #earliestDue(limit: number): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const t of this.#timers) {
      if (
        t.due <= limit &&
        (best === undefined || t.due < best.due || (t.due === best.due && t.id < best.id))
      ) {
        best = t;
      }
    }
    return best;
  }
}

/** Let pending promise continuations run (a macrotask turn, so chained awaits settle too). */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
