/**
 * The lock's hardware ports (ARCHITECTURE.md, "Hardware facts"). Each interface has a Linux implementation
 * for the Raspberry Pi Zero W / Zero 2 W (`Linux*`) and a simulation (`Sim*`) that are both first-class
 * code. Nothing here touches hardware at import time.
 *
 * Error behaviour (all implementations): every failure is a {@link HardwareError} with a code from
 * {@link HardwareErrorCode}; the message says what to do about it.
 */

import { TandemError } from '../../protocol/src/errors.js';

/** Codes for every failure of a hardware adapter. */
export type HardwareErrorCode =
  | 'ERR_HW_NOT_OPEN' // used before open() or after close()
  | 'ERR_HW_UNAVAILABLE' // device node / chip / IIO device missing or no permission
  | 'ERR_HW_IO' // the operating system refused a read or write
  | 'ERR_HW_BUSY' // the line or device is held by another consumer
  | 'ERR_HW_INVALID_ARGUMENT' // a caller passed a value outside the documented range
  | 'ERR_HW_PULSE_LIMIT' // a solenoid pulse longer than the rated maximum was requested
  | 'ERR_HW_INJECTED_FAULT' // a simulated fault injected by a tester
  | 'ERR_HW_TIMEOUT'; // a device or helper process did not answer in time

/** The one error class of `hardware/`. `code` is stable; `message` names what is wrong and how to fix it. */
export class HardwareError extends TandemError {
  readonly code: HardwareErrorCode;
  constructor(code: HardwareErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HardwareError';
    this.code = code;
  }
}

/**
 * Solenoid on a GPIO output. The driver itself enforces `maxPulseMs`: a pulse request longer than that is
 * refused with ERR_HW_PULSE_LIMIT, and the output is de-energised after at most `maxPulseMs` whatever the
 * caller does. close() always de-energises.
 */
export interface Solenoid {
  /** Rated maximum on-time in milliseconds, enforced by the driver. */
  readonly maxPulseMs: number;
  open(): Promise<void>;
  /** Energise for `ms` milliseconds (1..maxPulseMs), resolving once the output is off again. */
  pulse(ms: number): Promise<void>;
  /** True while the coil is energised. */
  isEnergised(): boolean;
  /** De-energise now (idempotent). */
  release(): Promise<void>;
  close(): Promise<void>;
}

/** Latch position as reported by the latch sensor. */
export type LatchState = 'closed' | 'open';

/** Latch sensor on a GPIO input (debounced by the implementation). */
export interface LatchSensor {
  open(): Promise<void>;
  read(): Promise<LatchState>;
  /** Subscribe to debounced changes; returns an unsubscribe function. */
  onChange(listener: (state: LatchState) => void): () => void;
  /**
   * Subscribe to failures that happen after open() with no caller to reject (the monitor process died, a
   * read failed); returns an unsubscribe function. Optional so that simple doubles need not implement it.
   */
  onError?(listener: (error: HardwareError) => void): () => void;
  close(): Promise<void>;
}

/** One accelerometer sample: time in milliseconds (monotonic), acceleration in m/s² on each axis. */
export interface AccelSample {
  readonly t: number;
  readonly x: number;
  readonly y: number;
  readonly z: number;
}

/** Accelerometer delivering samples at `sampleRateHz`. */
export interface Accelerometer {
  readonly sampleRateHz: number;
  open(): Promise<void>;
  /** Subscribe to samples; returns an unsubscribe function. */
  onSample(listener: (sample: AccelSample) => void): () => void;
  /** Subscribe to failures of background sampling (a read of the device failed); see LatchSensor.onError. */
  onError?(listener: (error: HardwareError) => void): () => void;
  close(): Promise<void>;
}

/** Line-oriented serial console (provisioning and diagnostics). */
export interface SerialConsole {
  open(): Promise<void>;
  /** Subscribe to complete input lines (without the line terminator); returns an unsubscribe function. */
  onLine(listener: (line: string) => void): () => void;
  write(text: string): Promise<void>;
  /** Subscribe to transport failures after open() (port unplugged, helper process died). */
  onError?(listener: (error: HardwareError) => void): () => void;
  close(): Promise<void>;
}
