// The attack catalogue's clock, scope and schedule rows (test/security/CATALOGUE.md): each attack is played
// against the lock's real decision (LockAuthority on simulated hardware, stores on a simulated card) and must be
// refused with its exact status while the solenoid never moves. Titles are what the catalogue cites.
import { describe, expect, it } from 'vitest';
import { Command } from '../../protocol/src/pop.js';
import { Status } from '../../protocol/src/status.js';
import { encodeTimeBeacon } from '../../protocol/src/time-beacon.js';
import { LOCK, NOW, makeLock, settle } from '../../firmware-sim/test/lock-harness.js';
import type { Lock } from '../../firmware-sim/test/lock-harness.js';

const DAY = 86_400;

function expectRefused(lock: Lock, r: { status: Status; mayHaveActed: boolean }, status: Status): void {
  expect(Status[r.status]).toBe(Status[status]);
  expect(r.mayHaveActed).toBe(false);
  expect(lock.pulses).toHaveLength(0);
  expect(lock.mech.solenoid.isEnergised()).toBe(false);
  expect(lock.sm.state).toBe('locked');
}

/** An issuer-signed beacon at `time`, bound to `nonce` for this lock when given, else a broadcast. */
function beacon(lock: Lock, time: number, nonce?: Uint8Array): Uint8Array {
  return encodeTimeBeacon(
    { time, accuracy: 2, ...(nonce === undefined ? {} : { nonce, lockId: LOCK }) },
    lock.w.issuer,
    lock.w.issuerKid,
  );
}

describe('attack catalogue: clock attacks [TANDEM-TIME-5] [TANDEM-TIME-6]', () => {
  it('a replayed old broadcast beacon moves nothing: a token that expired 10 days ago stays EXPIRED', async () => {
    const lock = await makeLock();
    const before = lock.authority.snapshot().time;
    const d = await settle(lock.clock, lock.authority.applyTimeBeacon(beacon(lock, NOW - 30 * DAY)));
    expect(Status[d.status]).toBe('OK');
    expect(d.beacon?.kind).toBe('floor');
    expect(lock.authority.snapshot().time.earliest).toBeGreaterThanOrEqual(before.earliest);
    const expired = lock.token({ nbf: NOW - 20 * DAY, iat: NOW - 20 * DAY, exp: NOW - 10 * DAY });
    expectRefused(lock, await lock.send(lock.request({ chain: [expired] })), Status.EXPIRED);
  });

  it('after a power-off, a nonce-bound beacon recorded before it only raises the floor: TIME_UNCERTAIN', async () => {
    const first = await makeLock({ noBeacon: true });
    const c = first.authority.issueChallenge({ peer: 'time' });
    const recorded = beacon(first, NOW, c.nonce);
    expect((await settle(first.clock, first.authority.applyTimeBeacon(recorded))).beacon?.kind).toBe('bound');
    first.authority.close();
    // Power off, back on: the same card, a new boot. Only the floor survived ([TANDEM-TIME-6]).
    const lock = await makeLock({ fs: first.fs, world: first.w, device: first.device, noBeacon: true });
    const d = await settle(lock.clock, lock.authority.applyTimeBeacon(recorded));
    expect(d.beacon?.kind).toBe('floor');
    expect(lock.authority.issueChallenge({ peer: 'x' }).uncertainty).toBeNull();
    expectRefused(lock, await lock.send(lock.request({ chain: [lock.token()] })), Status.TIME_UNCERTAIN);
  });

  it('a broadcast beacon from the future fails closed: a token valid now is EXPIRED, and the owner still opens', async () => {
    const lock = await makeLock();
    await settle(lock.clock, lock.authority.applyTimeBeacon(beacon(lock, NOW + 30 * DAY)));
    expect(lock.authority.snapshot().timeFloor).toBeGreaterThanOrEqual(NOW + 30 * DAY - 2);
    expectRefused(lock, await lock.send(lock.request({ chain: [lock.token()] })), Status.EXPIRED);
    // [TANDEM-DECIDE-3]: the owner's own token needs no time, so a wrong floor never shuts the owner out.
    const r = await lock.send(lock.request({ chain: [lock.ownerToken()], holder: lock.w.owner }));
    expect(Status[r.status]).toBe('OK');
    expect(lock.pulses).toHaveLength(1);
  });
});

describe('attack catalogue: scope and schedule [TANDEM-POP-5] [TANDEM-SCHED-2]', () => {
  it('a status-only token asks to UNLOCK: SCOPE_DENIED', async () => {
    const lock = await makeLock();
    const token = lock.token({ scope: ['status'] });
    const r = await lock.send(lock.request({ chain: [token], command: Command.UNLOCK }));
    expectRefused(lock, r, Status.SCOPE_DENIED);
  });

  it('an unlock token asks for a management command: SCOPE_DENIED', async () => {
    const lock = await makeLock();
    const r = await lock.send(lock.request({ chain: [lock.token()], command: Command.CLEAR_LOCKOUT }));
    expectRefused(lock, r, Status.SCOPE_DENIED);
  });

  it('a weekend-only token on a Wednesday: OUTSIDE_SCHEDULE', async () => {
    const lock = await makeLock();
    const token = lock.token({ schedule: [{ days: 0b1100000, start: 0, end: 1440 }] });
    expectRefused(lock, await lock.send(lock.request({ chain: [token] })), Status.OUTSIDE_SCHEDULE);
  });
});
