/** Configuration of the theft detector: thresholds and time constants, and their tuned defaults. */

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
