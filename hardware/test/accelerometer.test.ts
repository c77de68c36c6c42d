import { readFile, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../src/clock.js';
import type { Clock } from '../src/clock.js';
import { LinuxIioAccelerometer } from '../src/accel/linux-iio-accelerometer.js';
import { STANDARD_GRAVITY, SimAccelerometer } from '../src/accel/sim-accelerometer.js';
import type { Vec3 } from '../src/accel/sim-accelerometer.js';
import { HardwareError } from '../src/interfaces.js';
import type { AccelSample } from '../src/interfaces.js';
import { adxl345Flat, makeIioTree } from './fake-iio.js';

function collect(accel: SimAccelerometer): AccelSample[] {
  const samples: AccelSample[] = [];
  accel.onSample((s) => samples.push(s));
  return samples;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]): number => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));

describe('SimAccelerometer', () => {
  it('gives sampleRateHz samples per simulated second at exact period multiples', async () => {
    const clock = new ManualClock();
    const accel = new SimAccelerometer({ clock, sampleRateHz: 50 });
    const samples = collect(accel);
    await accel.open();
    clock.advance(1000);
    expect(samples.length).toBe(50);
    expect(samples.slice(0, 3).map((s) => s.t)).toEqual([20, 40, 60]);
    expect(samples.at(-1)?.t).toBe(1000);
  });

  it('is deterministic for a seed: gravity plus Gaussian noise of the configured spread', async () => {
    const run = async (seed: number): Promise<AccelSample[]> => {
      const clock = new ManualClock();
      const accel = new SimAccelerometer({ clock, seed, noiseSd: 0.05 });
      const samples = collect(accel);
      await accel.open();
      clock.advance(20_000);
      return samples;
    };
    const a = await run(3);
    expect(await run(3)).toEqual(a);
    expect(await run(4)).not.toEqual(a);
    expect(mean(a.map((s) => s.z))).toBeCloseTo(STANDARD_GRAVITY, 1);
    expect(mean(a.map((s) => s.x))).toBeCloseTo(0, 1);
    expect(sd(a.map((s) => s.x))).toBeGreaterThan(0.04);
    expect(sd(a.map((s) => s.x))).toBeLessThan(0.06);
  });

  it('bump: a short spike on one axis, then rest', async () => {
    const clock = new ManualClock();
    const accel = new SimAccelerometer({ clock, sampleRateHz: 100, noiseSd: 0 });
    const samples = collect(accel);
    await accel.open();
    clock.advance(100);
    accel.bump({ peak: 12, axis: 'y', durationMs: 30 });
    clock.advance(100);
    const ys = samples.map((s) => s.y);
    expect(Math.max(...ys)).toBeGreaterThan(10);
    expect(ys.filter((y) => Math.abs(y) > 1).length).toBeLessThanOrEqual(3);
    expect(samples.at(-1)?.y).toBeCloseTo(0, 6);
  });

  it('bump: seen however late its timer fires, each sample at its own due time (a loaded event loop)', async () => {
    // The timers of a loaded machine: every one fires 45 ms after it was due, longer than the bump itself.
    const manual = new ManualClock();
    const late: Clock = {
      now: () => manual.now(),
      setTimeout: (cb, ms) => manual.setTimeout(cb, Math.max(0, ms) + 45),
      clearTimeout: (h) => manual.clearTimeout(h),
    };
    const accel = new SimAccelerometer({ clock: late, sampleRateHz: 50, noiseSd: 0 });
    const samples = collect(accel);
    await accel.open();
    manual.advance(1000);
    const bumps: number[] = [];
    for (let i = 0; i < 20; i++) {
      manual.advance(37);
      bumps.push(manual.now());
      accel.bump({ peak: 12, axis: 'x', durationMs: 30 });
      manual.advance(200);
    }
    manual.advance(1000);
    // Every bump is sampled: a sample within its 30 ms at over a third of its peak (the detector's default
    // threshold is 4 m/s²); the samples keep the 50 Hz grid, none lost.
    for (const start of bumps) {
      const inside = samples.filter((s) => s.t >= start && s.t < start + 30).map((s) => s.x);
      expect(Math.max(0, ...inside)).toBeGreaterThan(4);
    }
    expect(samples.map((s) => s.t)).toEqual(samples.map((_, i) => 20 * (i + 1)));
    expect(samples.length).toBeGreaterThanOrEqual(Math.floor((manual.now() - 45) / 20));
  });

  it('shake: strong motion for the given time only', async () => {
    const clock = new ManualClock();
    const accel = new SimAccelerometer({ clock, sampleRateHz: 50 });
    const samples = collect(accel);
    await accel.open();
    accel.shake(2000);
    clock.advance(4000);
    const during = samples.filter((s) => s.t < 2000).map((s) => s.x);
    const after = samples.filter((s) => s.t > 2000).map((s) => s.x);
    expect(sd(during)).toBeGreaterThan(3);
    expect(sd(after)).toBeLessThan(0.1);
  });

  it('move: sustained extra acceleration while carried away', async () => {
    const clock = new ManualClock();
    const accel = new SimAccelerometer({ clock, sampleRateHz: 50 });
    const samples = collect(accel);
    await accel.open();
    accel.move(5000, { x: 2, y: 0, z: 0 });
    clock.advance(5000);
    expect(mean(samples.map((s) => s.x))).toBeGreaterThan(1.5);
  });

  it('tilt: gravity rotates onto another axis and stays there until levelled', async () => {
    const clock = new ManualClock();
    const accel = new SimAccelerometer({ clock, noiseSd: 0 });
    const samples = collect(accel);
    await accel.open();
    accel.tilt(90, 'x');
    clock.advance(100);
    const last = samples.at(-1) as AccelSample;
    expect(last.y).toBeCloseTo(-STANDARD_GRAVITY, 6);
    expect(last.z).toBeCloseTo(0, 6);
    accel.reset();
    clock.advance(100);
    expect(samples.at(-1)?.z).toBeCloseTo(STANDARD_GRAVITY, 6);
  });

  it('replays an array trace, then returns to gravity', async () => {
    const clock = new ManualClock();
    const trace: Vec3[] = [
      { x: 1, y: 2, z: 3 },
      { x: 4, y: 5, z: 6 },
    ];
    const accel = new SimAccelerometer({ clock, noiseSd: 0, trace });
    const samples = collect(accel);
    await accel.open();
    clock.advance(60);
    expect(samples.map(({ x, y, z }) => [x, y, z])).toEqual([
      [1, 2, 3],
      [4, 5, 6],
      [0, 0, STANDARD_GRAVITY],
    ]);
  });

  it('takes a generator or a function of time as the trace', async () => {
    const clock = new ManualClock();
    function* ramp(): Generator<Vec3> {
      for (let i = 1; ; i++) yield { x: i, y: 0, z: 0 };
    }
    const accel = new SimAccelerometer({ clock, noiseSd: 0, trace: ramp() });
    const samples = collect(accel);
    await accel.open();
    clock.advance(60);
    expect(samples.map((s) => s.x)).toEqual([1, 2, 3]);
    accel.setTrace((ms) => ({ x: ms, y: 0, z: 0 }));
    clock.advance(20);
    expect(samples.at(-1)?.x).toBe(80);
  });
});

describe('LinuxIioAccelerometer', () => {
  let root: string | undefined;
  afterEach(async () => {
    if (root !== undefined) await rm(root, { recursive: true, force: true });
    root = undefined;
  });

  it('finds the accelerometer by name among other IIO devices and converts counts to m/s²', async () => {
    root = await makeIioTree({ 'iio:device0': { name: 'bmp280\n' }, 'iio:device1': adxl345Flat() });
    const clock = new ManualClock(5);
    const accel = new LinuxIioAccelerometer({ root, clock });
    await accel.open();
    expect(accel.devicePath).toBe(join(root, 'iio:device1'));
    const sample = await accel.sampleOnce();
    expect(sample.t).toBe(5);
    expect(sample.x).toBe(0);
    expect(sample.y).toBeCloseTo(-0.038307, 9);
    expect(sample.z).toBeCloseTo(256 * 0.038307, 9);
    await accel.close();
  });

  it('applies per-axis scale and offset, which win over the shared ones', async () => {
    root = await makeIioTree({
      'iio:device0': { ...adxl345Flat(), in_accel_z_scale: '0.5\n', in_accel_offset: '10\n' },
    });
    const accel = new LinuxIioAccelerometer({ root, clock: new ManualClock() });
    await accel.open();
    const s = await accel.sampleOnce();
    expect(s.z).toBeCloseTo((256 + 10) * 0.5, 9);
    expect(s.x).toBeCloseTo(10 * 0.038307, 9);
    await accel.close();
  });

  it('sets sampling_frequency to the lowest available rate not below sampleRateHz', async () => {
    root = await makeIioTree({ 'iio:device0': adxl345Flat() });
    const accel = new LinuxIioAccelerometer({ root, clock: new ManualClock(), sampleRateHz: 60 });
    await accel.open();
    expect(await readFile(join(root, 'iio:device0', 'sampling_frequency'), 'utf8')).toBe('100\n');
    await accel.close();
  });

  it('takes an explicit device directory', async () => {
    root = await makeIioTree({
      'iio:device0': adxl345Flat(),
      'iio:device1': { ...adxl345Flat(), name: 'lis3dh\n' },
    });
    const accel = new LinuxIioAccelerometer({ root, clock: new ManualClock(), device: 'iio:device1' });
    await accel.open();
    expect(accel.devicePath).toBe(join(root, 'iio:device1'));
    await accel.close();
  });

  it('without a matching device: ERR_HW_UNAVAILABLE that says to check the overlay', async () => {
    root = await makeIioTree({ 'iio:device0': { name: 'bmp280\n' } });
    const error = await new LinuxIioAccelerometer({ root, clock: new ManualClock() })
      .open()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HardwareError);
    expect((error as HardwareError).code).toBe('ERR_HW_UNAVAILABLE');
    expect((error as HardwareError).message).toMatch(/found: iio:device0=bmp280/);
    expect((error as HardwareError).message).toMatch(/dtoverlay=adxl345.*ls \/sys\/bus\/iio\/devices/);
  });

  it('reports a failing read through onError and keeps polling', async () => {
    root = await makeIioTree({ 'iio:device0': adxl345Flat() });
    const clock = new ManualClock();
    const accel = new LinuxIioAccelerometer({ root, clock, sampleRateHz: 10 });
    const errors: HardwareError[] = [];
    const failed = new Promise<void>((resolve) =>
      accel.onError((e) => {
        errors.push(e);
        resolve();
      }),
    );
    await accel.open();
    await unlink(join(root, 'iio:device0', 'in_accel_x_raw'));
    clock.advance(100);
    await failed;
    expect(errors[0]?.code).toBe('ERR_HW_IO');
    expect(errors[0]?.message).toMatch(/in_accel_x_raw/);
    for (let i = 0; clock.pendingTimers() === 0 && i < 200; i++) await flushMicrotasks();
    expect(clock.pendingTimers()).toBe(1);
    await accel.close();
    expect(clock.pendingTimers()).toBe(0);
  });
});
