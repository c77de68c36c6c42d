import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../src/clock.js';
import { SimLockMechanism } from '../src/gpio/sim-lock-mechanism.js';
import { HardwareError } from '../src/interfaces.js';
import type { LatchState } from '../src/interfaces.js';

async function lock() {
  const clock = new ManualClock();
  const mechanism = SimLockMechanism.create({ clock, maxPulseMs: 200, debounceMs: 20, actuationMs: 15 });
  await mechanism.solenoid.open();
  await mechanism.latch.open();
  const changes: LatchState[] = [];
  mechanism.latch.onChange((s) => changes.push(s));
  return { clock, mechanism, solenoid: mechanism.solenoid, latch: mechanism.latch, changes };
}

describe('SimSolenoid', () => {
  it('records each pulse with clock timestamps and how it ended', async () => {
    const { clock, solenoid } = await lock();
    clock.advance(1000);
    const first = solenoid.pulse(80);
    clock.advance(80);
    await first;
    clock.advance(20);
    const second = solenoid.pulse(150);
    clock.advance(30);
    await solenoid.release();
    await second;
    expect(solenoid.pulses).toEqual([
      { startedAt: 1000, requestedMs: 80, endedAt: 1080, endedBy: 'complete', current: true },
      { startedAt: 1100, requestedMs: 150, endedAt: 1130, endedBy: 'release', current: true },
    ]);
  });

  it('refuses an over-long pulse without recording it', async () => {
    const { solenoid } = await lock();
    await expect(solenoid.pulse(201)).rejects.toMatchObject({ code: 'ERR_HW_PULSE_LIMIT' });
    expect(solenoid.pulses).toEqual([]);
  });
});

describe('SimLockMechanism', () => {
  it('a pulse opens the shackle; the latch reports one debounced open; a push closes it again', async () => {
    const { clock, solenoid, latch, mechanism, changes } = await lock();
    expect(await latch.read()).toBe('closed');
    const pulse = solenoid.pulse(100);
    clock.advance(14);
    expect(mechanism.shackle).toBe('closed');
    clock.advance(1);
    expect(mechanism.shackle).toBe('open');
    expect(latch.raw).toBe('open');
    clock.advance(85);
    await pulse;
    expect(changes).toEqual(['open']);
    expect(mechanism.push()).toBe(true);
    clock.advance(100);
    expect(changes).toEqual(['open', 'closed']);
    expect(await latch.read()).toBe('closed');
  });

  it('a pulse shorter than the plunger travel does not open it', async () => {
    const { clock, solenoid, mechanism, changes } = await lock();
    const pulse = solenoid.pulse(10);
    clock.advance(100);
    await pulse;
    expect(mechanism.shackle).toBe('closed');
    expect(changes).toEqual([]);
  });

  it("'jammed': the coil pulls but the shackle stays closed", async () => {
    const { clock, solenoid, mechanism, changes } = await lock();
    mechanism.injectFault('jammed');
    const pulse = solenoid.pulse(100);
    clock.advance(200);
    await pulse;
    expect(solenoid.pulses[0]?.current).toBe(true);
    expect(changes).toEqual([]);
    mechanism.clearFault();
    const retry = solenoid.pulse(100);
    clock.advance(200);
    await retry;
    expect(changes).toEqual(['open']);
  });

  it("'open-circuit': the pulse looks normal from the GPIO side, no current flows, nothing moves", async () => {
    const { clock, solenoid, changes } = await lock();
    solenoid.injectFault('open-circuit');
    const pulse = solenoid.pulse(100);
    expect(solenoid.isEnergised()).toBe(true);
    expect(solenoid.hasCurrent()).toBe(false);
    clock.advance(200);
    await pulse;
    expect(solenoid.pulses[0]?.current).toBe(false);
    expect(changes).toEqual([]);
  });

  it("'stuck': the coil stays energised past the pulse, the caller is told, and the shackle cannot be latched", async () => {
    const { clock, solenoid, mechanism, changes } = await lock();
    solenoid.injectFault('stuck');
    const pulse = solenoid.pulse(100);
    const outcome = pulse.catch((e: unknown) => e);
    clock.advance(100);
    const error = await outcome;
    expect(error).toBeInstanceOf(HardwareError);
    expect((error as HardwareError).code).toBe('ERR_HW_INJECTED_FAULT');
    expect(solenoid.isEnergised()).toBe(true);
    await expect(solenoid.release()).rejects.toMatchObject({ code: 'ERR_HW_INJECTED_FAULT' });
    clock.advance(100);
    expect(changes).toEqual(['open']);
    expect(mechanism.push()).toBe(false);
    solenoid.clearFault();
    expect(solenoid.isEnergised()).toBe(false);
    expect(mechanism.push()).toBe(true);
    clock.advance(100);
    expect(changes).toEqual(['open', 'closed']);
  });

  it('bounce shorter than the debounce period is not reported; a sensor fault is', async () => {
    const { clock, latch, changes } = await lock();
    latch.setRaw('open');
    clock.advance(5);
    latch.setRaw('closed');
    clock.advance(100);
    expect(changes).toEqual([]);
    const errors: HardwareError[] = [];
    latch.onError((e) => errors.push(e));
    latch.injectFault('disconnected');
    expect(errors.map((e) => e.code)).toEqual(['ERR_HW_INJECTED_FAULT']);
    await expect(latch.read()).rejects.toMatchObject({ code: 'ERR_HW_INJECTED_FAULT' });
    latch.clearFault();
    expect(await latch.read()).toBe('closed');
    await flushMicrotasks();
  });
});
