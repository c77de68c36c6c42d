import { HardwareError } from '../interfaces.js';

/** The pulse-length rule every Solenoid implementation shares, so that the simulation refuses exactly what the driver refuses. */
export function checkPulse(ms: number, maxPulseMs: number): void {
  if (!Number.isInteger(ms) || ms < 1) {
    throw new HardwareError(
      'ERR_HW_INVALID_ARGUMENT',
      `solenoid: pulse length must be a whole number of milliseconds from 1 to ${maxPulseMs}, got ${ms}`,
    );
  }
  if (ms > maxPulseMs) {
    throw new HardwareError(
      'ERR_HW_PULSE_LIMIT',
      `solenoid: pulse of ${ms} ms refused, the coil is rated for at most ${maxPulseMs} ms; use a shorter pulse`,
    );
  }
}
