/** The lock mechanism's state machine on the simulated solenoid, latch sensor and mechanism. */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../hardware/src/clock.js';
import { SimLatchSensor } from '../../hardware/src/gpio/sim-latch-sensor.js';
import { SimLockMechanism } from '../../hardware/src/gpio/sim-lock-mechanism.js';
import { SimSolenoid } from '../../hardware/src/gpio/sim-solenoid.js';
import { LockError } from '../src/lock/errors.js';
import { LockStateMachine } from '../src/lock/lock-state-machine.js';
import type { StateTransition } from '../src/lock/lock-state-machine.js';
import { settle } from './lock-harness.js';

function rig(options: { latchSpringsOpen?: boolean; initial?: 'open' | 'closed' } = {}) {
  const clock = new ManualClock(0);
  const mech = SimLockMechanism.create({
    clock,
    maxPulseMs: 500,
    ...(options.initial ? { initial: options.initial } : {}),
  });
  const sm = new LockStateMachine({
    clock,
    solenoid: mech.solenoid,
    latch: mech.latch,
    pulseMs: 200,
    autoRelockMs: 10_000,
    ...(options.latchSpringsOpen === undefined ? {} : { latchSpringsOpen: options.latchSpringsOpen }),
  });
  const transitions: StateTransition[] = [];
  sm.onTransition((t) => transitions.push(t));
  const path = () => transitions.map((t) => `${t.to}:${t.reason}`);
  return { clock, mech, sm, transitions, path };
}

describe('LockStateMachine', () => {
  it('refuses a pulse longer than the coil is rated for, and use before start()', async () => {
    const clock = new ManualClock(0);
    const mech = SimLockMechanism.create({ clock, maxPulseMs: 500 });
    expect(
      () =>
        new LockStateMachine({
          clock,
          solenoid: mech.solenoid,
          latch: mech.latch,
          pulseMs: 501,
          autoRelockMs: 1000,
        }),
    ).toThrow(LockError);
    const sm = new LockStateMachine({
      clock,
      solenoid: mech.solenoid,
      latch: mech.latch,
      pulseMs: 100,
      autoRelockMs: 1000,
    });
    await expect(sm.unlock()).rejects.toMatchObject({ code: 'ERR_LOCK_NOT_STARTED' });
  });

  it('starts locked with the solenoid released, even if a crashed predecessor left it energised', async () => {
    const { clock, mech, sm, path } = rig();
    await mech.solenoid.open();
    const stale = mech.solenoid.pulse(500);
    stale.catch(() => undefined);
    expect(mech.solenoid.isEnergised()).toBe(true);
    expect(await sm.start()).toBe('locked');
    expect(mech.solenoid.isEnergised()).toBe(false);
    expect(mech.solenoid.pulses[0]!.endedBy).toBe('release');
    expect(path()).toEqual(['locked:start']);
    await clock.advanceAsync(100);
  });

  it('unlock: unlocking for the rated pulse only, open when the latch moves, relocked then locked when pushed', async () => {
    const { clock, mech, sm, path } = rig();
    await sm.start();
    const outcome = await settle(clock, sm.unlock());
    expect(outcome).toEqual({ kind: 'opened', pulsed: true });
    expect(sm.state).toBe('open');
    expect(sm.reportedState).toBe('unlocked');
    const p = mech.solenoid.pulses[0]!;
    expect(p.requestedMs).toBe(200);
    expect(p.endedAt! - p.startedAt).toBe(200);
    mech.push();
    await clock.advanceAsync(100, 5);
    expect(sm.state).toBe('locked');
    expect(path()).toEqual([
      'locked:start',
      'unlocking:unlock',
      'open:latch-open',
      'relocked:latch-closed',
      'locked:latch-closed',
    ]);
  });

  it('jammed: the solenoid pulsed but the latch did not move; auto-relocks once the latch confirms closed', async () => {
    const { clock, mech, sm, path } = rig();
    await sm.start();
    mech.injectFault('jammed');
    const outcome = await settle(clock, sm.unlock());
    expect(outcome).toEqual({ kind: 'jammed', pulsed: true });
    expect(sm.state).toBe('jammed');
    expect(mech.solenoid.isEnergised()).toBe(false);
    await clock.advanceAsync(10_000, 50);
    expect(sm.state).toBe('locked');
    expect(path()).toEqual(['locked:start', 'unlocking:unlock', 'jammed:jam', 'locked:auto-relock']);
  });

  it('auto-relock: a rider-pulled latch that is never opened re-locks after autoRelockMs', async () => {
    const clock = new ManualClock(0);
    const solenoid = new SimSolenoid({ clock, maxPulseMs: 500 });
    const latch = new SimLatchSensor({ clock });
    const sm = new LockStateMachine({
      clock,
      solenoid,
      latch,
      pulseMs: 200,
      autoRelockMs: 8_000,
      latchSpringsOpen: false,
    });
    const reasons: string[] = [];
    sm.onTransition((t) => reasons.push(`${t.to}:${t.reason}`));
    await sm.start();
    expect(await settle(clock, sm.unlock())).toEqual({ kind: 'opened', pulsed: true });
    expect(sm.state).toBe('open');
    await clock.advanceAsync(7_000, 100);
    expect(sm.state).toBe('open');
    await clock.advanceAsync(1_500, 100);
    expect(sm.state).toBe('locked');
    expect(reasons.at(-1)).toBe('locked:auto-relock');
    // Pulled in time: no auto-relock; it locks when the latch closes again.
    await settle(clock, sm.unlock());
    latch.setRaw('open');
    await clock.advanceAsync(20_000, 100);
    expect(sm.state).toBe('open');
    latch.setRaw('closed');
    await clock.advanceAsync(100, 5);
    expect(sm.state).toBe('locked');
  });

  it('a latch that opens while locked raises the alarm (forced open); an unlock clears it', async () => {
    const { clock, mech, sm } = rig();
    await sm.start();
    mech.latch.setRaw('open');
    await clock.advanceAsync(50, 5);
    expect(sm.state).toBe('alarm');
    mech.latch.setRaw('closed');
    await clock.advanceAsync(50, 5);
    expect(sm.state).toBe('alarm');
    expect(await sm.clearAlarm()).toBe('locked');
  });

  it('an unlock with the shackle already out (forced open during an alarm) opens without a pulse', async () => {
    const { clock, mech, sm } = rig();
    await sm.start();
    mech.latch.setRaw('open');
    await clock.advanceAsync(50, 5);
    expect(sm.state).toBe('alarm');
    expect(await sm.unlock()).toEqual({ kind: 'opened', pulsed: false });
    expect(sm.state).toBe('open');
    expect(mech.solenoid.pulses).toHaveLength(0);
  });

  it('a solenoid stuck on is a fault; unlock is refused until recover() succeeds', async () => {
    const { clock, mech, sm } = rig();
    await sm.start();
    mech.solenoid.injectFault('stuck');
    const outcome = await settle(clock, sm.unlock());
    expect(outcome.kind).toBe('fault');
    expect(outcome.pulsed).toBe(true);
    expect(sm.state).toBe('fault');
    expect(await sm.unlock()).toEqual({ kind: 'fault', pulsed: false });
    expect(mech.solenoid.pulses).toHaveLength(1);
    expect(await sm.recover()).toBe('fault');
    mech.solenoid.clearFault();
    expect(await sm.recover()).toBe('open'); // the shackle sprang out while the coil was stuck on
  });

  it('a disconnected latch sensor is a fault and the solenoid stays off', async () => {
    const { clock, mech, sm } = rig();
    await sm.start();
    mech.latch.injectFault('disconnected');
    await clock.advanceAsync(10);
    expect(sm.state).toBe('fault');
    expect(mech.solenoid.isEnergised()).toBe(false);
  });

  it('only one command acts at a time: a second unlock or lock is busy', async () => {
    const { clock, mech, sm } = rig();
    await sm.start();
    const first = sm.unlock();
    expect(await sm.unlock()).toEqual({ kind: 'busy', pulsed: false });
    expect(await sm.lock()).toBe('busy');
    await settle(clock, first);
    expect(mech.solenoid.pulses).toHaveLength(1);
  });

  it('safe mode never pulses', async () => {
    const { mech, sm } = rig();
    await sm.start();
    await sm.enterSafeMode();
    expect(await sm.unlock()).toEqual({ kind: 'safe-mode', pulsed: false });
    expect(mech.solenoid.pulses).toHaveLength(0);
    expect(sm.reportedState).toBe('safe-mode');
    expect(await sm.exitSafeMode()).toBe('locked');
  });

  it('starts open when the shackle is out, and locks when it is pushed in', async () => {
    const { clock, mech, sm } = rig({ initial: 'open' });
    expect(await sm.start()).toBe('open');
    mech.push();
    await clock.advanceAsync(100, 5);
    expect(sm.state).toBe('locked');
  });
});
