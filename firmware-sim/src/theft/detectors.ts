/**
 * One small detector per theft event (README.md, "Theft detection", "Signals"), each fed the features of
 * `filters.ts` sample by sample: {@link TamperDetector}, {@link MovedDetector}, {@link BumpDetector}.
 */
import type { TheftDetectorConfig } from './theft-config.js';

/** What the detector reports. */
export type TheftEventKind = 'bump' | 'tamper' | 'moved';

/** One detection. */
export interface TheftEvent {
  kind: TheftEventKind;
  /** Sample time (ms) at which it was decided. */
  t: number;
  /** Largest dynamic acceleration (m/s²) seen in the episode. */
  peak: number;
  /** How long the episode had lasted when reported (ms). */
  durationMs: number;
  /** Tilt from the armed reference orientation at `t` (degrees). */
  tiltDeg: number;
  /** Why 'moved' was decided: sustained tilt, sustained low-frequency motion, or both. */
  cause?: 'tilt' | 'motion' | 'tilt+motion';
}

/** Tracks how long a condition has held, and reports each episode once, re-arming after a quiet time. */
export class Episode {
  private since: number | undefined;
  private active = false;
  private lastHeld = 0;
  /** Largest dynamic acceleration since the condition last became true. */
  peak = 0;
  /** True while the condition has held for at least the hold time (reported or not). */
  held = false;

  /** Returns the episode duration when this sample makes it reportable for the first time, else undefined. */
  update(cond: boolean, t: number, holdMs: number, quietMs: number, dynamic: number): number | undefined {
    this.held = false;
    if (!cond) {
      this.since = undefined;
      if (this.active && t - this.lastHeld >= quietMs) this.active = false;
      return undefined;
    }
    if (this.since === undefined) {
      this.since = t;
      this.peak = 0;
    }
    this.peak = Math.max(this.peak, dynamic);
    const held = t - this.since;
    if (held < holdMs) return undefined;
    this.held = true;
    this.lastHeld = t;
    if (this.active) return undefined;
    this.active = true;
    return held;
  }

  reset(): void {
    this.since = undefined;
    this.active = false;
    this.held = false;
  }
}

/** Sliding time window of violent/calm flags with a running count of the violent ones. */
class ActivityWindow {
  private times: number[] = [];
  private flags: boolean[] = [];
  private head = 0;
  private violent = 0;

  constructor(private readonly windowMs: number) {}

  push(t: number, violent: boolean): void {
    this.times.push(t);
    this.flags.push(violent);
    if (violent) this.violent++;
    while (this.head < this.times.length && t - this.times[this.head]! > this.windowMs) {
      if (this.flags[this.head]) this.violent--;
      this.head++;
    }
    // Compact now and then so the arrays stay the size of one window.
    if (this.head > 1024 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.flags = this.flags.slice(this.head);
      this.head = 0;
    }
  }

  /** Fraction of violent samples in the window (0 when empty). */
  fraction(): number {
    const n = this.times.length - this.head;
    return n > 0 ? this.violent / n : 0;
  }

  /**
   * The window spans (nearly) its full length: the fraction needs one behind it, or the first violent
   * sample would already be 100 %.
   */
  full(t: number): boolean {
    return this.times.length - this.head > 0 && t - this.times[this.head]! >= this.windowMs * 0.9;
  }

  clear(): void {
    this.times = [];
    this.flags = [];
    this.head = 0;
    this.violent = 0;
  }
}

/** Tamper: a violent fraction of at least `tamperActivity` over a full window, held `tamperHoldMs`. */
export class TamperDetector {
  private readonly window: ActivityWindow;
  private readonly episode = new Episode();

  constructor(private readonly c: Readonly<TheftDetectorConfig>) {
    this.window = new ActivityWindow(c.tamperWindowMs);
  }

  get violentFraction(): number {
    return this.window.fraction();
  }

  update(t: number, violent: boolean, dynamic: number, tiltDeg: number): TheftEvent | undefined {
    this.window.push(t, violent);
    const cond = this.window.full(t) && this.window.fraction() >= this.c.tamperActivity;
    const held = this.episode.update(cond, t, this.c.tamperHoldMs, this.c.rearmQuietMs, dynamic);
    if (held === undefined) return undefined;
    return { kind: 'tamper', t, peak: this.episode.peak, durationMs: held, tiltDeg };
  }

  /** The window starts again (gap in the samples); an episode in progress is kept. */
  restartWindow(): void {
    this.window.clear();
  }

  reset(): void {
    this.episode.reset();
    this.window.clear();
  }
}

/** Moved: tilt of at least `tiltDeg` held `tiltHoldMs`, or sustained motion held `motionHoldMs`. */
export class MovedDetector {
  private readonly tilt = new Episode();
  private readonly motion = new Episode();
  private readonly moved = new Episode();

  constructor(private readonly c: Readonly<TheftDetectorConfig>) {}

  update(t: number, tiltDeg: number, moving: boolean, dynamic: number): TheftEvent | undefined {
    const c = this.c;
    const tiltAt = this.tilt.update(tiltDeg >= c.tiltDeg, t, c.tiltHoldMs, c.rearmQuietMs, dynamic);
    const motionAt = this.motion.update(moving, t, c.motionHoldMs, c.rearmQuietMs, dynamic);
    const tiltHeld = this.tilt.held;
    const motionHeld = this.motion.held;
    if (this.moved.update(tiltHeld || motionHeld, t, 0, c.rearmQuietMs, dynamic) === undefined) {
      return undefined;
    }
    return {
      kind: 'moved',
      t,
      peak: Math.max(this.tilt.peak, this.motion.peak),
      durationMs: Math.max(tiltAt ?? 0, motionAt ?? 0),
      tiltDeg,
      cause: tiltHeld && motionHeld ? 'tilt+motion' : tiltHeld ? 'tilt' : 'motion',
    };
  }

  reset(): void {
    this.tilt.reset();
    this.motion.reset();
    this.moved.reset();
  }
}

/** Bump: a spike of `dynamic >= bumpThreshold`, over once it stayed below for `bumpQuietMs`. */
export class BumpDetector {
  private start: number | undefined;
  private lastAbove = 0;
  private peak = 0;

  constructor(private readonly c: Readonly<TheftDetectorConfig>) {}

  /** The spike that ended at this sample, if one did. */
  update(t: number, dynamic: number, tiltDeg: number): TheftEvent | undefined {
    if (dynamic >= this.c.bumpThreshold) {
      if (this.start === undefined) {
        this.start = t;
        this.peak = 0;
      }
      this.peak = Math.max(this.peak, dynamic);
      this.lastAbove = t;
      return undefined;
    }
    if (this.start === undefined || t - this.lastAbove < this.c.bumpQuietMs) return undefined;
    const durationMs = this.lastAbove - this.start;
    this.start = undefined;
    return { kind: 'bump', t, peak: this.peak, durationMs, tiltDeg };
  }

  reset(): void {
    this.start = undefined;
  }
}
