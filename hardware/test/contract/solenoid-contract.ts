import { afterEach, describe, expect, it } from 'vitest';
import type { Solenoid } from '../../src/interfaces.js';
import { expectHardwareError, suiteTitle } from './harness.js';
import type { Elapse } from './harness.js';

export interface SolenoidHarness {
  readonly solenoid: Solenoid;
  readonly elapse: Elapse;
  cleanup?(): Promise<void>;
}

/**
 * The behaviour every {@link Solenoid} must show (interfaces.ts): the rated maximum is enforced by the
 * implementation, pulses end de-energised, release() and close() switch the coil off.
 * `skip` names the hardware the run needs when it is not there.
 */
export function solenoidContract(name: string, build: () => Promise<SolenoidHarness>, skip?: string): void {
  describe.skipIf(skip !== undefined)(suiteTitle(`Solenoid contract: ${name}`, skip), () => {
    let harness: SolenoidHarness | undefined;
    const make = async (): Promise<SolenoidHarness> => {
      harness = await build();
      return harness;
    };
    afterEach(async () => {
      await harness?.solenoid.close();
      await harness?.cleanup?.();
      harness = undefined;
    });

    it('has a positive integer maxPulseMs', async () => {
      const { solenoid } = await make();
      expect(Number.isInteger(solenoid.maxPulseMs) && solenoid.maxPulseMs > 0).toBe(true);
    });

    it('refuses to pulse before open()', async () => {
      const { solenoid } = await make();
      await expectHardwareError(solenoid.pulse(1), 'ERR_HW_NOT_OPEN');
    });

    it('is de-energised after open()', async () => {
      const { solenoid } = await make();
      await solenoid.open();
      expect(solenoid.isEnergised()).toBe(false);
    });

    it('refuses a pulse longer than maxPulseMs with ERR_HW_PULSE_LIMIT and stays off', async () => {
      const { solenoid } = await make();
      await solenoid.open();
      const error = await expectHardwareError(solenoid.pulse(solenoid.maxPulseMs + 1), 'ERR_HW_PULSE_LIMIT');
      expect(error.message).toContain(String(solenoid.maxPulseMs));
      expect(solenoid.isEnergised()).toBe(false);
    });

    it('refuses zero, negative, fractional and non-numeric lengths with ERR_HW_INVALID_ARGUMENT', async () => {
      const { solenoid } = await make();
      await solenoid.open();
      for (const ms of [0, -5, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        await expectHardwareError(solenoid.pulse(ms), 'ERR_HW_INVALID_ARGUMENT');
      }
      expect(solenoid.isEnergised()).toBe(false);
    });

    it('is energised during a pulse and off once pulse() resolves', async () => {
      const { solenoid, elapse } = await make();
      await solenoid.open();
      const ms = Math.min(50, solenoid.maxPulseMs);
      const pulse = solenoid.pulse(ms);
      expect(solenoid.isEnergised()).toBe(true);
      await elapse(ms);
      await pulse;
      expect(solenoid.isEnergised()).toBe(false);
    });

    it('accepts a pulse of exactly maxPulseMs', async () => {
      const { solenoid, elapse } = await make();
      await solenoid.open();
      const pulse = solenoid.pulse(solenoid.maxPulseMs);
      await elapse(solenoid.maxPulseMs);
      await pulse;
      expect(solenoid.isEnergised()).toBe(false);
    });

    it('refuses a second pulse while one runs with ERR_HW_BUSY', async () => {
      const { solenoid, elapse } = await make();
      await solenoid.open();
      const ms = Math.min(50, solenoid.maxPulseMs);
      const first = solenoid.pulse(ms);
      await expectHardwareError(solenoid.pulse(ms), 'ERR_HW_BUSY');
      await elapse(ms);
      await first;
    });

    it('release() ends a pulse early; the pulse resolves and the coil is off', async () => {
      const { solenoid } = await make();
      await solenoid.open();
      const pulse = solenoid.pulse(solenoid.maxPulseMs);
      await solenoid.release();
      await pulse;
      expect(solenoid.isEnergised()).toBe(false);
      await solenoid.release();
    });

    it('close() de-energises, is idempotent, and pulses afterwards are ERR_HW_NOT_OPEN', async () => {
      const { solenoid } = await make();
      await solenoid.open();
      const pulse = solenoid.pulse(solenoid.maxPulseMs);
      await solenoid.close();
      await pulse;
      expect(solenoid.isEnergised()).toBe(false);
      await solenoid.close();
      await expectHardwareError(solenoid.pulse(1), 'ERR_HW_NOT_OPEN');
    });
  });
}
