import type { AccelSample } from '../../../hardware/src/interfaces.js';
import { BumpDetector, MovedDetector, TamperDetector } from './detectors.js';
import type { TheftEvent } from './detectors.js';
import { filterStep, initialFilters, isMoving, isViolent, restartWindows, tiltDeg } from './filters.js';
import type { FilterState, Vec3 } from './filters.js';
import { DEFAULT_THEFT_DETECTOR_CONFIG } from './theft-config.js';
import type { TheftDetectorConfig } from './theft-config.js';

export { DEFAULT_THEFT_DETECTOR_CONFIG } from './theft-config.js';
export type { TheftDetectorConfig } from './theft-config.js';
export type { TheftEvent, TheftEventKind } from './detectors.js';

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
  private filters: FilterState | undefined;
  /** Orientation taken `armSettleMs` after arm(); undefined while settling or disarmed. */
  private reference: Vec3 | undefined;
  private armedAt: number | undefined;
  private tilt = 0;
  private readonly tamper: TamperDetector;
  private readonly moved: MovedDetector;
  private readonly bump: BumpDetector;
  private readonly listeners = new Set<(e: TheftEvent) => void>();

  constructor(config: Partial<TheftDetectorConfig> = {}) {
    this.cfg = { ...DEFAULT_THEFT_DETECTOR_CONFIG, ...config };
    this.tamper = new TamperDetector(this.cfg);
    this.moved = new MovedDetector(this.cfg);
    this.bump = new BumpDetector(this.cfg);
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
    this.armedAt = undefined;
    this.reference = undefined;
    this.resetDetectors();
  }

  /** Stop watching (the lock was opened by a rider) and clear any alarm. */
  disarm(): void {
    this.state = 'disarmed';
    this.reference = undefined;
    this.resetDetectors();
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
    const f = this.filters;
    return {
      tiltDeg: this.tilt,
      shortRms: Math.sqrt(f?.shortMeanSquare ?? 0),
      meanJerk: f?.shortMeanJerk ?? 0,
      violentFraction: this.tamper.violentFraction,
      lowBandRms: Math.sqrt(f?.lowBandEnergy ?? 0),
      lowBandRatio: f !== undefined && f.totalEnergy > 1e-9 ? f.lowBandEnergy / f.totalEnergy : 0,
    };
  }

  /** Feed one sample; returns the events it caused (also delivered to listeners). */
  push(s: AccelSample): TheftEvent[] {
    const f = this.filter(s);
    if (f === undefined || this.state === 'disarmed' || !this.settled(s.t, f)) return [];
    const c = this.cfg;
    this.tilt = tiltDeg(f.gravity, this.reference!);
    const events: TheftEvent[] = [];
    const tamper = this.tamper.update(s.t, isViolent(f, c), f.dynamic, this.tilt);
    if (tamper !== undefined) events.push(tamper);
    const moved = this.moved.update(s.t, this.tilt, isMoving(f, c), f.dynamic);
    if (moved !== undefined) events.push(moved);
    for (const e of events) this.escalate(e.kind === 'moved' ? 'moved' : 'tamper');
    const bump = this.bump.update(s.t, f.dynamic, this.tilt);
    // Spikes during a raised alarm are part of it and add nothing.
    if (bump !== undefined && this.state === 'armed') events.push(bump);
    for (const e of events) for (const l of this.listeners) l(e);
    return events;
  }

  /**
   * Validates a sample and runs it through the filters: undefined for a dropped sample (non-finite, not
   * after the previous one) and for the very first, which only seeds them.
   */
  private filter(s: AccelSample): FilterState | undefined {
    const { t, x, y, z } = s;
    if (!Number.isFinite(t) || !Number.isFinite(x) || !Number.isFinite(y) || !Number.isFinite(z)) {
      this.dropped++;
      return undefined;
    }
    if (this.lastT === undefined || this.filters === undefined) {
      this.lastT = t;
      this.filters = initialFilters([x, y, z]);
      return undefined;
    }
    if (t <= this.lastT) {
      this.dropped++;
      return undefined;
    }
    let dt = t - this.lastT;
    this.lastT = t;
    if (dt > this.cfg.maxGapMs) {
      // Windows and energies mean nothing across a hole; time constants restart from the gap's end.
      this.restartWindows();
      dt = this.cfg.maxGapMs;
    }
    this.filters = filterStep(this.filters, [x, y, z], dt, this.cfg);
    return this.filters;
  }

  /** After arm(), filters settle for `armSettleMs`; then the gravity estimate becomes the reference. */
  private settled(t: number, f: FilterState): boolean {
    if (this.reference !== undefined) return true;
    this.armedAt ??= t;
    if (t - this.armedAt < this.cfg.armSettleMs) return false;
    this.reference = f.gravity;
    return true;
  }

  private escalate(to: AlarmState): void {
    if (RANK[to] > RANK[this.state]) this.state = to;
  }

  private restartWindows(): void {
    if (this.filters !== undefined) this.filters = restartWindows(this.filters);
    this.tamper.restartWindow();
  }

  private resetDetectors(): void {
    this.tamper.reset();
    this.moved.reset();
    this.bump.reset();
    this.restartWindows();
  }
}
