/**
 * The signal chain of the theft detector as pure functions: one accelerometer sample in, the next filter
 * state out, with the named features the detectors read (README.md, "Theft detection", "Signals").
 * Deterministic: time comes only from the samples (`dt` between two of them).
 */
import type { TheftDetectorConfig } from './theft-config.js';

/** A vector in m/s² (x, y, z). */
export type Vec3 = readonly [number, number, number];

/** What the filters carry from one sample to the next; also the features the detectors read. */
export interface FilterState {
  /** The previous raw sample (for jerk). */
  readonly raw: Vec3;
  /** Gravity: first-order low-pass of the raw vector (`gravityTauMs`), i.e. the lock's orientation. */
  readonly gravity: Vec3;
  /** |raw − gravity| of the last sample: the dynamic acceleration's magnitude. */
  readonly dynamic: number;
  /** First and second stage of the low-pass at `motionBandHz` of the dynamic acceleration. */
  readonly bandStage1: Vec3;
  readonly bandStage2: Vec3;
  /** Mean square of the low band and of all dynamic acceleration (`energyTauMs`). */
  readonly lowBandEnergy: number;
  readonly totalEnergy: number;
  /** Short-window (`shortTauMs`) mean square of the dynamic acceleration, and mean jerk (|Δa|/Δt, m/s³). */
  readonly shortMeanSquare: number;
  readonly shortMeanJerk: number;
}

const ZERO: Vec3 = [0, 0, 0];

/** Filters at the first sample: gravity is the sample itself, nothing dynamic yet. */
export function initialFilters(first: Vec3): FilterState {
  return {
    raw: first,
    gravity: first,
    dynamic: 0,
    bandStage1: ZERO,
    bandStage2: ZERO,
    lowBandEnergy: 0,
    totalEnergy: 0,
    shortMeanSquare: 0,
    shortMeanJerk: 0,
  };
}

/**
 * The windowed features start again (after a gap in the samples, or when arming): energies, short-window
 * averages and the band filters; the orientation estimate is kept.
 */
export function restartWindows(f: FilterState): FilterState {
  return {
    ...f,
    bandStage1: ZERO,
    bandStage2: ZERO,
    lowBandEnergy: 0,
    totalEnergy: 0,
    shortMeanSquare: 0,
    shortMeanJerk: 0,
  };
}

/** Smoothing factor of a first-order low-pass with time constant `tauMs` over `dt` ms. */
const alpha = (dt: number, tauMs: number): number => 1 - Math.exp(-dt / tauMs);

const lowPass = (prev: Vec3, input: Vec3, a: number): Vec3 => [
  prev[0] + a * (input[0] - prev[0]),
  prev[1] + a * (input[1] - prev[1]),
  prev[2] + a * (input[2] - prev[2]),
];

/** One sample `dt` ms after the previous one through every filter. */
export function filterStep(
  f: FilterState,
  raw: Vec3,
  dt: number,
  c: Readonly<TheftDetectorConfig>,
): FilterState {
  const gravity = lowPass(f.gravity, raw, alpha(dt, c.gravityTauMs));
  const d: Vec3 = [raw[0] - gravity[0], raw[1] - gravity[1], raw[2] - gravity[2]];
  const dynamic = Math.hypot(d[0], d[1], d[2]);
  // Two cascaded first-order low-passes per axis keep 0.1-3 Hz of the dynamic acceleration: pedalling,
  // walking and the sway of a bike being wheeled, not the 10-30 Hz of traffic or the 5-8 Hz of shaking.
  const aBand = 1 - Math.exp((-dt * 2 * Math.PI * c.motionBandHz) / 1000);
  const bandStage1 = lowPass(f.bandStage1, d, aBand);
  const b = lowPass(f.bandStage2, bandStage1, aBand);
  const aEnergy = alpha(dt, c.energyTauMs);
  const jerk = Math.hypot(raw[0] - f.raw[0], raw[1] - f.raw[1], raw[2] - f.raw[2]) / (dt / 1000);
  const aShort = alpha(dt, c.shortTauMs);
  return {
    raw,
    gravity,
    dynamic,
    bandStage1,
    bandStage2: b,
    lowBandEnergy: f.lowBandEnergy + aEnergy * (b[0] * b[0] + b[1] * b[1] + b[2] * b[2] - f.lowBandEnergy),
    totalEnergy: f.totalEnergy + aEnergy * (dynamic * dynamic - f.totalEnergy),
    shortMeanSquare: f.shortMeanSquare + aShort * (dynamic * dynamic - f.shortMeanSquare),
    shortMeanJerk: f.shortMeanJerk + aShort * (jerk - f.shortMeanJerk),
  };
}

/** Angle in degrees between the gravity estimate and the reference orientation (0 if either is ~zero). */
export function tiltDeg(gravity: Vec3, ref: Vec3): number {
  const gn = Math.hypot(gravity[0], gravity[1], gravity[2]);
  const rn = Math.hypot(ref[0], ref[1], ref[2]);
  const cos =
    gn > 1e-6 && rn > 1e-6
      ? (gravity[0] * ref[0] + gravity[1] * ref[1] + gravity[2] * ref[2]) / (gn * rn)
      : 1;
  return (Math.acos(Math.min(1, Math.max(-1, cos))) * 180) / Math.PI;
}

/** Blows and shaking: high short-window RMS together with high mean jerk (carrying has only the first). */
export function isViolent(f: FilterState, c: Readonly<TheftDetectorConfig>): boolean {
  return Math.sqrt(f.shortMeanSquare) >= c.tamperRms && f.shortMeanJerk >= c.tamperJerk;
}

/** Sustained low-frequency motion that dominates the dynamic energy (not a lorry's vibration). */
export function isMoving(f: FilterState, c: Readonly<TheftDetectorConfig>): boolean {
  return Math.sqrt(f.lowBandEnergy) >= c.motionRms && f.lowBandEnergy >= c.motionLowRatio * f.totalEnergy;
}
