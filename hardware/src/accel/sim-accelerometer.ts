import createDebug from 'debug';
import type { Clock, TimerHandle } from '../clock.js';
import { HardwareError } from '../interfaces.js';
import type { AccelSample, Accelerometer } from '../interfaces.js';
import { Listeners } from '../listeners.js';
import { SeededRandom } from './gaussian.js';

const debug = createDebug('tandem:hw:sim');

/** Standard gravity, m/s². */
export const STANDARD_GRAVITY = 9.80665;

/** An acceleration vector in m/s². */
export interface Vec3 {
  readonly x: number;
  readonly y: number;
  readonly z: number;
}

/**
 * Where the baseline comes from instead of gravity: an array replayed one entry per sample, a function of
 * the time since open() in ms, or an iterator (a generator). When an array or iterator runs out the
 * baseline returns to (tilted) gravity.
 */
export type AccelTrace = readonly Vec3[] | ((elapsedMs: number) => Vec3) | Iterator<Vec3>;

export interface SimAccelerometerOptions {
  readonly clock: Clock;
  /** Default 50. */
  readonly sampleRateHz?: number;
  /** Seed of the noise; same seed, same samples. Default 1. */
  readonly seed?: number;
  /** Standard deviation of the Gaussian noise per axis in m/s²; default 0.05 (an ADXL345 at rest). */
  readonly noiseSd?: number;
  /** Gravity as seen by a level lock; default (0, 0, 9.80665). */
  readonly gravity?: Vec3;
  readonly trace?: AccelTrace;
}

type Axis = 'x' | 'y' | 'z';

/** The most samples a late timer catches up on, in ms of samples (older ones are dropped). */
const MAX_BACKLOG_MS = 5_000;

interface TimedEvent {
  readonly start: number;
  readonly end: number;
  readonly at: (elapsed: number) => Vec3;
}

/**
 * Simulated accelerometer: gravity (optionally tilted) or a trace, plus injected events, plus seeded
 * Gaussian noise, sampled on the injected clock. With a {@link ManualClock}, `clock.advance(1000)` yields
 * exactly `sampleRateHz` samples, the same ones on every run.
 */
export class SimAccelerometer implements Accelerometer {
  readonly sampleRateHz: number;
  readonly #clock: Clock;
  readonly #random: SeededRandom;
  readonly #noiseSd: number;
  readonly #gravity: Vec3;
  readonly #samples = new Listeners<AccelSample>();
  #trace: AccelTrace | undefined;
  #traceIndex = 0;
  #events: TimedEvent[] = [];
  #tilt = { x: 0, y: 0 };
  #timer: TimerHandle | undefined;
  #openedAt = 0;
  #ticks = 0;
  #open = false;

  constructor(options: SimAccelerometerOptions) {
    this.sampleRateHz = options.sampleRateHz ?? 50;
    if (!(this.sampleRateHz > 0 && this.sampleRateHz <= 1000)) {
      throw new HardwareError(
        'ERR_HW_INVALID_ARGUMENT',
        `accelerometer: sampleRateHz must be in (0, 1000], got ${this.sampleRateHz}`,
      );
    }
    this.#clock = options.clock;
    this.#random = new SeededRandom(options.seed ?? 1);
    this.#noiseSd = options.noiseSd ?? 0.05;
    this.#gravity = options.gravity ?? { x: 0, y: 0, z: STANDARD_GRAVITY };
    this.#trace = options.trace;
  }

  async open(): Promise<void> {
    if (this.#open) return;
    this.#open = true;
    this.#openedAt = this.#clock.now();
    this.#ticks = 0;
    this.#schedule();
  }

  onSample(listener: (sample: AccelSample) => void): () => void {
    return this.#samples.add(listener);
  }

  async close(): Promise<void> {
    this.#open = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Replace the baseline trace (from the next sample). */
  setTrace(trace: AccelTrace | undefined): void {
    this.#trace = trace;
    this.#traceIndex = 0;
  }

  /** A knock: a half-sine pulse of `peak` m/s² on `axis` lasting `durationMs` (default 12 m/s², 30 ms, x). */
  bump(options: { peak?: number; axis?: Axis; durationMs?: number } = {}): void {
    const peak = options.peak ?? 12;
    const duration = options.durationMs ?? 30;
    const axis = options.axis ?? 'x';
    this.#add(duration, (elapsed) => along(axis, peak * Math.sin((Math.PI * elapsed) / duration)));
    debug('bump %d m/s² on %s', peak, axis);
  }

  /** Someone shaking or sawing: sinusoids on x and y for `durationMs` (default ±6 m/s² at 4 Hz). */
  shake(durationMs: number, options: { amplitude?: number; frequencyHz?: number } = {}): void {
    const amplitude = options.amplitude ?? 6;
    const w = 2 * Math.PI * (options.frequencyHz ?? 4);
    this.#add(durationMs, (elapsed) => {
      const s = elapsed / 1000;
      return {
        x: amplitude * Math.sin(w * s),
        y: amplitude * Math.cos(w * s * 1.3),
        z: 0.3 * amplitude * Math.sin(w * s * 0.7),
      };
    });
    debug('shake for %d ms', durationMs);
  }

  /**
   * Sustained motion, e.g. the bike carried away: a constant extra acceleration `accel` for `durationMs`
   * with a small walking sway on top.
   */
  move(durationMs: number, accel: Vec3 = { x: 1.5, y: 0.5, z: 0.8 }): void {
    this.#add(durationMs, (elapsed) => {
      const sway = Math.sin((2 * Math.PI * 1.8 * elapsed) / 1000);
      return { x: accel.x + 0.8 * sway, y: accel.y, z: accel.z + 1.2 * Math.abs(sway) };
    });
    debug('move for %d ms', durationMs);
  }

  /** Tilt the lock: rotate gravity by `degrees` about `axis` (until changed; 0 levels it again). */
  tilt(degrees: number, axis: 'x' | 'y' = 'x'): void {
    this.#tilt = { ...this.#tilt, [axis]: (degrees * Math.PI) / 180 };
    debug('tilt %d° about %s', degrees, axis);
  }

  /** Drop all pending events and level the lock. */
  reset(): void {
    this.#events = [];
    this.#tilt = { x: 0, y: 0 };
  }

  #add(durationMs: number, at: (elapsed: number) => Vec3): void {
    if (!(durationMs > 0))
      throw new HardwareError('ERR_HW_INVALID_ARGUMENT', `durationMs must be > 0, got ${durationMs}`);
    const start = this.#clock.now();
    this.#events.push({ start, end: start + durationMs, at });
  }

  /** When sample `tick` (1, 2, ...) is due: from the tick count, not "now + period", so rounding never drifts. */
  #dueAt(tick: number): number {
    return this.#openedAt + (tick * 1000) / this.sampleRateHz;
  }

  #schedule(): void {
    this.#timer = this.#clock.setTimeout(
      () => {
        this.#timer = undefined;
        if (!this.#open) return;
        // A sensor samples on its own clock and keeps what it took in its FIFO until it is read; only the
        // reading is late when the event loop is. So every sample that fell due while the timer waited is taken
        // now, each at its own due time: with the time of the late callback instead, a 30 ms bump() fell between
        // two samples whenever a late timer left more than ~24 ms between them (a loaded machine), and the lock
        // never saw it (the dashboard's Bump left no mark). A backlog beyond MAX_BACKLOG_MS (a suspended process) is dropped,
        // as a full FIFO drops its oldest entries.
        const now = this.#clock.now();
        const skip = Math.floor(((now - MAX_BACKLOG_MS - this.#openedAt) * this.sampleRateHz) / 1000);
        if (skip > this.#ticks) this.#ticks = skip;
        do {
          this.#ticks++;
          this.#samples.emit(this.#sample(this.#dueAt(this.#ticks)));
        } while (this.#open && this.#dueAt(this.#ticks + 1) <= now);
        if (this.#open && this.#timer === undefined) this.#schedule();
      },
      this.#dueAt(this.#ticks + 1) - this.#clock.now(),
    );
  }

  #sample(t: number): AccelSample {
    const base = this.#baseline(t - this.#openedAt);
    let { x, y, z } = base;
    this.#events = this.#events.filter((e) => e.end > t);
    for (const event of this.#events) {
      if (t < event.start) continue;
      const v = event.at(t - event.start);
      x += v.x;
      y += v.y;
      z += v.z;
    }
    return {
      t,
      x: x + this.#random.gaussian(this.#noiseSd),
      y: y + this.#random.gaussian(this.#noiseSd),
      z: z + this.#random.gaussian(this.#noiseSd),
    };
  }

  #baseline(elapsed: number): Vec3 {
    const trace = this.#trace;
    if (typeof trace === 'function') return trace(elapsed);
    if (Array.isArray(trace)) {
      const entry = (trace as readonly Vec3[])[this.#traceIndex++];
      if (entry !== undefined) return entry;
      this.#trace = undefined;
    } else if (trace !== undefined) {
      const next = (trace as Iterator<Vec3>).next();
      if (next.done !== true) return next.value;
      this.#trace = undefined;
    }
    return this.#tilted();
  }

  #tilted(): Vec3 {
    const g = this.#gravity;
    // Rotate about x, then about y.
    const cx = Math.cos(this.#tilt.x);
    const sx = Math.sin(this.#tilt.x);
    const y1 = g.y * cx - g.z * sx;
    const z1 = g.y * sx + g.z * cx;
    const cy = Math.cos(this.#tilt.y);
    const sy = Math.sin(this.#tilt.y);
    return { x: g.x * cy + z1 * sy, y: y1, z: -g.x * sy + z1 * cy };
  }
}

function along(axis: Axis, value: number): Vec3 {
  return { x: axis === 'x' ? value : 0, y: axis === 'y' ? value : 0, z: axis === 'z' ? value : 0 };
}
