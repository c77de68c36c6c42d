import type { AccelSample } from '../../../hardware/src/interfaces.js';

/**
 * Thresholds and time constants of {@link TheftDetector}. Units: milliseconds, m/s² (acceleration),
 * m/s³ (jerk), degrees, hertz, and fractions in [0, 1]. Defaults are {@link DEFAULT_THEFT_DETECTOR_CONFIG},
 * tuned on the traces of `traces.ts` at 100 Hz (README.md, "Theft detection").
 */
export interface TheftDetectorConfig {
  /** Time constant of the low-pass that estimates gravity (the lock's orientation). */
  gravityTauMs: number;
  /** After arm(), filters settle this long before the reference orientation is taken and detection starts. */
  armSettleMs: number;
  /** Dynamic acceleration (gravity removed) at or above which a spike starts. */
  bumpThreshold: number;
  /** A spike ends (and a bump is reported) after this long below `bumpThreshold`. */
  bumpQuietMs: number;
  /** Time constant of the short-window RMS of dynamic acceleration and of the mean jerk. */
  shortTauMs: number;
  /** Short-window RMS at or above which a sample counts as violent... */
  tamperRms: number;
  /** ...when the short-window mean jerk is also at or above this (shaking and blows, not carrying). */
  tamperJerk: number;
  /** Window over which the fraction of violent samples is taken. */
  tamperWindowMs: number;
  /** Fraction of violent samples in the window that means tampering... */
  tamperActivity: number;
  /** ...when it lasts this long. */
  tamperHoldMs: number;
  /** Tilt of the gravity vector from the armed reference orientation that means the bike is being moved... */
  tiltDeg: number;
  /** ...when it lasts this long. */
  tiltHoldMs: number;
  /** Corner of the second-order low-pass that keeps the walking/pedalling band (~1.5-2 Hz) of dynamic motion. */
  motionBandHz: number;
  /** Time constant of the band and total energy averages. */
  energyTauMs: number;
  /** RMS of the low band at or above which there is sustained motion... */
  motionRms: number;
  /** ...when the low band also holds at least this fraction of the dynamic energy (not vibration)... */
  motionLowRatio: number;
  /** ...for this long. */
  motionHoldMs: number;
  /** A tamper or moved condition must be absent this long before it can be reported again. */
  rearmQuietMs: number;
  /** A larger gap between samples (sensor restart) resets the windows; the orientation estimate is kept. */
  maxGapMs: number;
}

/** Defaults (see {@link TheftDetectorConfig} for units). */
export const DEFAULT_THEFT_DETECTOR_CONFIG: Readonly<TheftDetectorConfig> = Object.freeze({
  gravityTauMs: 1500,
  armSettleMs: 1000,
  bumpThreshold: 4,
  bumpQuietMs: 300,
  shortTauMs: 100,
  tamperRms: 3,
  tamperJerk: 100,
  tamperWindowMs: 3000,
  tamperActivity: 0.35,
  tamperHoldMs: 1000,
  tiltDeg: 25,
  tiltHoldMs: 2000,
  motionBandHz: 3,
  energyTauMs: 1000,
  motionRms: 0.5,
  motionLowRatio: 0.3,
  motionHoldMs: 4000,
  rearmQuietMs: 5000,
  maxGapMs: 250,
});

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

/**
 * Alarm state, escalating only upward while armed: 'armed' -> 'tamper' -> 'moved' (the bike leaving is
 * worse than someone working on the lock). It stays raised until {@link TheftDetector.disarm} or
 * {@link TheftDetector.clearAlarm}.
 */
export type AlarmState = 'disarmed' | 'armed' | 'tamper' | 'moved';

/** Current filtered features, for the dashboard and for tuning. */
export interface TheftFeatures {
  tiltDeg: number;
  shortRms: number;
  meanJerk: number;
  violentFraction: number;
  lowBandRms: number;
  lowBandRatio: number;
}

const RANK: Record<AlarmState, number> = { disarmed: 0, armed: 1, tamper: 2, moved: 3 };

/** Tracks how long a condition has held, and reports each episode once, re-arming after a quiet time. */
class Episode {
  private since: number | undefined;
  private active = false;
  private lastHeld = 0;
  /** Largest dynamic acceleration since the condition last became true. */
  peak = 0;
  /** True while the condition has held for at least the hold time (reported or not). */
  held = false;

  /** Returns the episode duration when this sample makes it reportable for the first time, else undefined. */
  update(cond: boolean, t: number, holdMs: number, quietMs: number, dm: number): number | undefined {
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
    this.peak = Math.max(this.peak, dm);
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

/**
 * Theft detection on accelerometer samples (ARCHITECTURE.md flow 7). Deterministic: it uses only the samples'
 * own timestamps, never a clock. Samples with a non-finite field or a time not after the previous one are
 * dropped and counted, never thrown on.
 *
 * Signals: gravity is a slow low-pass of the raw vector; dynamic acceleration is raw minus gravity. A
 * **bump** is a spike of dynamic acceleration that ends within a short time. **Tamper** is a high fraction
 * of violent samples (high short-window RMS and high jerk together: blows and shaking) over a window, held.
 * **Moved** is either the gravity vector tilted away from the orientation taken at arm() (lifted, wheeled
 * off the stand), held, or sustained energy in the walking/pedalling band of the vertical dynamic
 * acceleration that also dominates the total (so a lorry's vibration does not count), held.
 */
export class TheftDetector {
  private readonly cfg: TheftDetectorConfig;
  private state: AlarmState = 'disarmed';
  private dropped = 0;
  private lastT: number | undefined;
  private ax = 0;
  private ay = 0;
  private az = 0;
  private gx = 0;
  private gy = 0;
  private gz = 0;
  private ref: [number, number, number] | undefined;
  private armedAt: number | undefined;
  private armPending = false;
  private band1: [number, number, number] = [0, 0, 0];
  private band2: [number, number, number] = [0, 0, 0];
  private eLow = 0;
  private eTotal = 0;
  private msShort = 0;
  private jerkShort = 0;
  private tilt = 0;
  // Sliding window of violent flags: times and flags in a ring, with a running count.
  private winT: number[] = [];
  private winV: boolean[] = [];
  private winHead = 0;
  private winViolent = 0;
  private bumpStart: number | undefined;
  private bumpLastAbove = 0;
  private bumpPeak = 0;
  private readonly tamper = new Episode();
  private readonly tiltEp = new Episode();
  private readonly motionEp = new Episode();
  private readonly moved = new Episode();
  private readonly listeners = new Set<(e: TheftEvent) => void>();

  constructor(config: Partial<TheftDetectorConfig> = {}) {
    this.cfg = { ...DEFAULT_THEFT_DETECTOR_CONFIG, ...config };
  }

  /** The configuration in force. */
  get config(): Readonly<TheftDetectorConfig> {
    return this.cfg;
  }

  get alarm(): AlarmState {
    return this.state;
  }

  /** Samples dropped as non-finite or out of order. */
  get droppedSamples(): number {
    return this.dropped;
  }

  /** Start watching (the lock was locked); the reference orientation is taken after `armSettleMs`. */
  arm(): void {
    this.state = 'armed';
    this.armPending = true;
    this.armedAt = undefined;
    this.ref = undefined;
    this.resetEpisodes();
  }

  /** Stop watching (the lock was opened by a rider) and clear any alarm. */
  disarm(): void {
    this.state = 'disarmed';
    this.armPending = false;
    this.ref = undefined;
    this.resetEpisodes();
  }

  /** The owner has seen the alarm: back to 'armed' with the current orientation as the new reference. */
  clearAlarm(): void {
    if (this.state === 'disarmed') return;
    this.arm();
  }

  /** Subscribe to events; returns an unsubscribe function. */
  onEvent(listener: (e: TheftEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Current features (for the dashboard). */
  features(): TheftFeatures {
    return {
      tiltDeg: this.tilt,
      shortRms: Math.sqrt(this.msShort),
      meanJerk: this.jerkShort,
      violentFraction:
        this.winT.length - this.winHead > 0 ? this.winViolent / (this.winT.length - this.winHead) : 0,
      lowBandRms: Math.sqrt(this.eLow),
      lowBandRatio: this.eTotal > 1e-9 ? this.eLow / this.eTotal : 0,
    };
  }

  /** Feed one sample; returns the events it caused (also delivered to listeners). */
  push(s: AccelSample): TheftEvent[] {
    const { t, x, y, z } = s;
    if (!Number.isFinite(t) || !Number.isFinite(x) || !Number.isFinite(y) || !Number.isFinite(z)) {
      this.dropped++;
      return [];
    }
    if (this.lastT === undefined) {
      this.lastT = t;
      this.ax = this.gx = x;
      this.ay = this.gy = y;
      this.az = this.gz = z;
      return [];
    }
    if (t <= this.lastT) {
      this.dropped++;
      return [];
    }
    let dt = t - this.lastT;
    this.lastT = t;
    if (dt > this.cfg.maxGapMs) {
      // Windows and energies mean nothing across a hole; time constants restart from the gap's end.
      this.resetWindows();
      dt = this.cfg.maxGapMs;
    }
    const c = this.cfg;
    const aG = 1 - Math.exp(-dt / c.gravityTauMs);
    this.gx += aG * (x - this.gx);
    this.gy += aG * (y - this.gy);
    this.gz += aG * (z - this.gz);
    const dx = x - this.gx;
    const dy = y - this.gy;
    const dz = z - this.gz;
    const dm = Math.hypot(dx, dy, dz);
    const gn = Math.hypot(this.gx, this.gy, this.gz);
    // Two cascaded first-order low-passes per axis keep 0.1-3 Hz of the dynamic acceleration: pedalling,
    // walking and the sway of a bike being wheeled, not the 10-30 Hz of traffic or the 5-8 Hz of shaking.
    const aB = 1 - Math.exp((-dt * 2 * Math.PI * c.motionBandHz) / 1000);
    const b1 = this.band1;
    const b2 = this.band2;
    b1[0] += aB * (dx - b1[0]);
    b1[1] += aB * (dy - b1[1]);
    b1[2] += aB * (dz - b1[2]);
    b2[0] += aB * (b1[0] - b2[0]);
    b2[1] += aB * (b1[1] - b2[1]);
    b2[2] += aB * (b1[2] - b2[2]);
    const aE = 1 - Math.exp(-dt / c.energyTauMs);
    this.eLow += aE * (b2[0] * b2[0] + b2[1] * b2[1] + b2[2] * b2[2] - this.eLow);
    this.eTotal += aE * (dm * dm - this.eTotal);
    const jerk = Math.hypot(x - this.ax, y - this.ay, z - this.az) / (dt / 1000);
    const aS = 1 - Math.exp(-dt / c.shortTauMs);
    this.msShort += aS * (dm * dm - this.msShort);
    this.jerkShort += aS * (jerk - this.jerkShort);
    this.ax = x;
    this.ay = y;
    this.az = z;

    if (this.state === 'disarmed') return [];
    if (this.armPending) {
      this.armedAt ??= t;
      if (t - this.armedAt < c.armSettleMs) return [];
      this.armPending = false;
      this.ref = [this.gx, this.gy, this.gz];
    }
    const ref = this.ref!;
    const rn = Math.hypot(ref[0], ref[1], ref[2]);
    const cos =
      gn > 1e-6 && rn > 1e-6 ? (this.gx * ref[0] + this.gy * ref[1] + this.gz * ref[2]) / (gn * rn) : 1;
    this.tilt = (Math.acos(Math.min(1, Math.max(-1, cos))) * 180) / Math.PI;

    const violent = Math.sqrt(this.msShort) >= c.tamperRms && this.jerkShort >= c.tamperJerk;
    this.pushWindow(t, violent);
    const n = this.winT.length - this.winHead;
    const fraction = n > 0 ? this.winViolent / n : 0;
    // The fraction needs a full window behind it, or the first violent sample would already be 100 %.
    const windowFull = n > 0 && t - this.winT[this.winHead]! >= c.tamperWindowMs * 0.9;
    const events: TheftEvent[] = [];

    const tamperAt = this.tamper.update(
      windowFull && fraction >= c.tamperActivity,
      t,
      c.tamperHoldMs,
      c.rearmQuietMs,
      dm,
    );
    if (tamperAt !== undefined) {
      events.push({ kind: 'tamper', t, peak: this.tamper.peak, durationMs: tamperAt, tiltDeg: this.tilt });
      this.escalate('tamper');
    }

    const tiltAt = this.tiltEp.update(this.tilt >= c.tiltDeg, t, c.tiltHoldMs, c.rearmQuietMs, dm);
    const lowRms = Math.sqrt(this.eLow);
    const motion = lowRms >= c.motionRms && this.eLow >= c.motionLowRatio * this.eTotal;
    const motionAt = this.motionEp.update(motion, t, c.motionHoldMs, c.rearmQuietMs, dm);
    const tiltHeld = this.tiltEp.held;
    const motionHeld = this.motionEp.held;
    const movedAt = this.moved.update(tiltHeld || motionHeld, t, 0, c.rearmQuietMs, dm);
    if (movedAt !== undefined) {
      const cause = tiltHeld && motionHeld ? 'tilt+motion' : tiltHeld ? 'tilt' : 'motion';
      const peak = Math.max(this.tiltEp.peak, this.motionEp.peak);
      const durationMs = Math.max(tiltAt ?? 0, motionAt ?? 0);
      events.push({ kind: 'moved', t, peak, durationMs, tiltDeg: this.tilt, cause });
      this.escalate('moved');
    }

    if (dm >= c.bumpThreshold) {
      if (this.bumpStart === undefined) {
        this.bumpStart = t;
        this.bumpPeak = 0;
      }
      this.bumpPeak = Math.max(this.bumpPeak, dm);
      this.bumpLastAbove = t;
    } else if (this.bumpStart !== undefined && t - this.bumpLastAbove >= c.bumpQuietMs) {
      // Spikes during a raised alarm are part of it and add nothing.
      if (this.state === 'armed') {
        events.push({
          kind: 'bump',
          t,
          peak: this.bumpPeak,
          durationMs: this.bumpLastAbove - this.bumpStart,
          tiltDeg: this.tilt,
        });
      }
      this.bumpStart = undefined;
    }

    for (const e of events) for (const l of this.listeners) l(e);
    return events;
  }

  private escalate(to: AlarmState): void {
    if (RANK[to] > RANK[this.state]) this.state = to;
  }

  private pushWindow(t: number, violent: boolean): void {
    this.winT.push(t);
    this.winV.push(violent);
    if (violent) this.winViolent++;
    while (this.winHead < this.winT.length && t - this.winT[this.winHead]! > this.cfg.tamperWindowMs) {
      if (this.winV[this.winHead]) this.winViolent--;
      this.winHead++;
    }
    // Compact now and then so the arrays stay the size of one window.
    if (this.winHead > 1024 && this.winHead * 2 > this.winT.length) {
      this.winT = this.winT.slice(this.winHead);
      this.winV = this.winV.slice(this.winHead);
      this.winHead = 0;
    }
  }

  private resetWindows(): void {
    this.winT = [];
    this.winV = [];
    this.winHead = 0;
    this.winViolent = 0;
    this.eLow = 0;
    this.eTotal = 0;
    this.msShort = 0;
    this.jerkShort = 0;
    this.band1 = [0, 0, 0];
    this.band2 = [0, 0, 0];
  }

  private resetEpisodes(): void {
    this.tamper.reset();
    this.tiltEp.reset();
    this.motionEp.reset();
    this.moved.reset();
    this.bumpStart = undefined;
    this.resetWindows();
  }
}
