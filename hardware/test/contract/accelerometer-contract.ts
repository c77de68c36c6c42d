import { afterEach, describe, expect, it } from 'vitest';
import type { AccelSample, Accelerometer } from '../../src/interfaces.js';
import { suiteTitle } from './harness.js';
import type { Elapse } from './harness.js';

export interface AccelerometerHarness {
  readonly accelerometer: Accelerometer;
  readonly elapse: Elapse;
  cleanup?(): Promise<void>;
}

/**
 * The behaviour every {@link Accelerometer} must show. The device is assumed to lie still, so the magnitude
 * of each sample is near 1 g; the band is wide enough for an uncalibrated part.
 */
export function accelerometerContract(
  name: string,
  build: () => Promise<AccelerometerHarness>,
  skip?: string,
): void {
  describe.skipIf(skip !== undefined)(suiteTitle(`Accelerometer contract: ${name}`, skip), () => {
    let harness: AccelerometerHarness | undefined;
    const make = async (): Promise<AccelerometerHarness> => {
      harness = await build();
      return harness;
    };
    afterEach(async () => {
      await harness?.accelerometer.close();
      await harness?.cleanup?.();
      harness = undefined;
    });
    const periods = (a: Accelerometer, n: number): number => Math.ceil((n * 1000) / a.sampleRateHz);

    it('has a positive sample rate', async () => {
      const { accelerometer } = await make();
      expect(accelerometer.sampleRateHz).toBeGreaterThan(0);
    });

    it('delivers nothing before open()', async () => {
      const { accelerometer, elapse } = await make();
      const seen: AccelSample[] = [];
      accelerometer.onSample((s) => seen.push(s));
      await elapse(periods(accelerometer, 3));
      expect(seen).toEqual([]);
    });

    it('delivers finite samples in m/s² with non-decreasing time, about 1 g at rest', async () => {
      const { accelerometer, elapse } = await make();
      const seen: AccelSample[] = [];
      accelerometer.onSample((s) => seen.push(s));
      await accelerometer.open();
      await elapse(periods(accelerometer, 5));
      expect(seen.length).toBeGreaterThanOrEqual(3);
      for (let i = 0; i < seen.length; i++) {
        const s = seen[i] as AccelSample;
        expect([s.t, s.x, s.y, s.z].every(Number.isFinite)).toBe(true);
        const g = Math.hypot(s.x, s.y, s.z);
        expect(g).toBeGreaterThan(7);
        expect(g).toBeLessThan(12.6);
        if (i > 0) expect(s.t).toBeGreaterThanOrEqual((seen[i - 1] as AccelSample).t);
      }
    });

    it('stops calling an unsubscribed listener', async () => {
      const { accelerometer, elapse } = await make();
      const kept: AccelSample[] = [];
      const dropped: AccelSample[] = [];
      accelerometer.onSample((s) => kept.push(s));
      const off = accelerometer.onSample((s) => dropped.push(s));
      await accelerometer.open();
      await elapse(periods(accelerometer, 2));
      off();
      const before = dropped.length;
      await elapse(periods(accelerometer, 3));
      expect(dropped.length).toBe(before);
      expect(kept.length).toBeGreaterThan(before);
    });

    it('stops sampling on close(), which is idempotent', async () => {
      const { accelerometer, elapse } = await make();
      const seen: AccelSample[] = [];
      accelerometer.onSample((s) => seen.push(s));
      await accelerometer.open();
      await elapse(periods(accelerometer, 2));
      await accelerometer.close();
      await accelerometer.close();
      const before = seen.length;
      await elapse(periods(accelerometer, 3));
      expect(seen.length).toBe(before);
    });
  });
}
