/**
 * Deliveries to the lock (revocation updates SPEC.md §6, time beacons §7) and the mechanism's outcomes as the
 * authority reports them (JAMMED, FAULT, LOCK, STATUS, audit suppression).
 */
import { describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { Command } from '../../protocol/src/pop.js';
import { encodeRevocationUpdate } from '../../protocol/src/revocation.js';
import { Status } from '../../protocol/src/status.js';
import { encodeTimeBeacon } from '../../protocol/src/time-beacon.js';
import { mintToken } from '../../protocol/src/token.js';
import { decodeAuditEntry } from '../src/lock/audit.js';
import { LOCK, NOW, claims, freshCti, makeLock, settle } from './lock-harness.js';

describe('time beacons through the authority', () => {
  it('a nonce-bound beacon tightens the bound; the challenge then reports a number, not null', async () => {
    const lock = await makeLock({ noBeacon: true });
    expect(lock.authority.issueChallenge().uncertainty).toBeNull();
    await lock.syncTime(NOW);
    const c = lock.authority.issueChallenge();
    expect(c.uncertainty).not.toBeNull();
    expect(c.uncertainty!).toBeLessThanOrEqual(6);
    expect(c.lockTime).toBe(NOW - 2);
    expect(lock.authority.snapshot()).toMatchObject({ timeSource: 'beacon', timeFloor: NOW - 2 });
  });

  it('refuses a beacon for another lock, or signed by a key that is not an issuer anchor', async () => {
    const lock = await makeLock({ noBeacon: true });
    const c = lock.authority.issueChallenge();
    const other = encodeTimeBeacon(
      { time: NOW, nonce: c.nonce, lockId: 'lock-other', accuracy: 1 },
      lock.w.issuer,
      lock.w.issuerKid,
    );
    expect((await settle(lock.clock, lock.authority.applyTimeBeacon(other))).status).toBe(
      Status.WRONG_AUDIENCE,
    );
    const byOwner = encodeTimeBeacon(
      { time: NOW, nonce: c.nonce, accuracy: 1 },
      lock.w.owner,
      lock.w.ownerKid,
    );
    expect((await settle(lock.clock, lock.authority.applyTimeBeacon(byOwner))).status).toBe(
      Status.UNKNOWN_SIGNER,
    );
    const garbage = await settle(lock.clock, lock.authority.applyTimeBeacon(Uint8Array.of(1, 2, 3)));
    expect(garbage.status).toBe(Status.MALFORMED);
    expect(lock.trusted.bound().earliest).toBe(0);
  });

  it('a broadcast beacon (no nonce) raises the floor only; it cannot decide a token by itself', async () => {
    const lock = await makeLock({ noBeacon: true });
    const b = encodeTimeBeacon({ time: NOW, accuracy: 1 }, lock.w.issuer, lock.w.issuerKid);
    const r = await settle(lock.clock, lock.authority.applyTimeBeacon(b));
    expect(r.status).toBe(Status.OK);
    expect(r.beacon).toMatchObject({ kind: 'floor', reason: 'unbound' });
    expect((await lock.send(lock.request({ chain: [lock.token()] }))).status).toBe(Status.TIME_UNCERTAIN);
    expect(lock.pulses).toHaveLength(0);
  });
});

describe('revocation deltas', () => {
  it('applies a delta on the held version; a delta on another base is REVOCATION_STALE', async () => {
    const lock = await makeLock();
    const a = freshCti();
    const b = freshCti();
    const sign = (u: Parameters<typeof encodeRevocationUpdate>[0]) =>
      encodeRevocationUpdate(u, lock.w.issuer, lock.w.issuerKid);
    const apply = (bytes: Uint8Array) => settle(lock.clock, lock.authority.applyRevocationUpdate(bytes));
    const base = { issuedAt: NOW, lockId: LOCK };
    expect(
      (
        await apply(
          sign({ ...base, kind: 'full', version: 1, added: [{ id: a, exp: NOW + 9999 }], removed: [] }),
        )
      ).status,
    ).toBe(Status.OK);
    const delta = sign({
      ...base,
      kind: 'delta',
      version: 2,
      baseVersion: 1,
      added: [{ id: b, exp: NOW + 9999 }],
      removed: [a],
    });
    expect((await apply(delta)).version).toBe(2);
    expect(lock.stores.revocations.has(a)).toBe(false);
    expect(lock.stores.revocations.has(b)).toBe(true);
    const skew = sign({ ...base, kind: 'delta', version: 5, baseVersion: 4, added: [], removed: [] });
    expect((await apply(skew)).status).toBe(Status.REVOCATION_STALE);
    expect(lock.stores.revocations.version).toBe(2);
    // [TANDEM-HOLD-1]: an acknowledged update is held entirely, even entries the lock's clock calls expired;
    // they go only when the persisted floor passes them (the next beacon's prune, [TANDEM-REV-8]).
    await apply(sign({ ...base, kind: 'full', version: 3, added: [{ id: a, exp: NOW - 100 }], removed: [] }));
    expect(lock.stores.revocations.has(a)).toBe(true);
    expect(lock.stores.revocations.version).toBe(3);
    await lock.syncTime(NOW + 1);
    expect(lock.stores.revocations.has(a)).toBe(false);
  });
});

describe('mechanism outcomes through the authority', () => {
  it('a jammed shackle: JAMMED, mayHaveActed, the use is counted', async () => {
    const lock = await makeLock();
    lock.mech.injectFault('jammed');
    const cti = freshCti();
    const r = await lock.send(lock.request({ chain: [lock.token({ cti, maxUses: 3 })] }));
    expect(r.status).toBe(Status.JAMMED);
    expect(r.mayHaveActed).toBe(true);
    expect(r.state).toBe('jammed');
    expect(lock.pulses).toHaveLength(1);
    expect(lock.usesOf(cti)).toBe(1);
  });

  it('a coil stuck on: FAULT, mayHaveActed, and later unlocks are FAULT without a pulse', async () => {
    const lock = await makeLock();
    lock.mech.solenoid.injectFault('stuck');
    const r = await lock.send(lock.request({ chain: [lock.token()] }));
    expect(r.status).toBe(Status.FAULT);
    expect(r.mayHaveActed).toBe(true);
    const again = await lock.send(lock.request({ chain: [lock.token()] }));
    expect(again.status).toBe(Status.FAULT);
    expect(again.mayHaveActed).toBe(false);
    expect(lock.pulses).toHaveLength(1);
  });

  it('LOCK with the shackle out is accepted but the lock stays unlocked until pushed in; STATUS reports without acting', async () => {
    const lock = await makeLock();
    const token = lock.token({ scope: ['unlock', 'lock', 'status'] });
    expect((await lock.send(lock.request({ chain: [token] }))).state).toBe('unlocked');
    const s = await lock.send(lock.request({ chain: [token], command: Command.STATUS }));
    expect(s).toMatchObject({ status: Status.OK, state: 'unlocked', mayHaveActed: false });
    // The shackle is out: LOCK is accepted but the lock stays unlocked until it is pushed in.
    expect((await lock.send(lock.request({ chain: [token], command: Command.LOCK }))).state).toBe('unlocked');
    await lock.relock();
    expect((await lock.send(lock.request({ chain: [token], command: Command.STATUS }))).state).toBe('locked');
  });

  it('an alarm does not keep out a verified rider; the unlock clears it', async () => {
    const lock = await makeLock();
    lock.sm.raiseAlarm();
    expect(lock.authority.snapshot().state).toBe('alarm');
    expect((await lock.send(lock.request({ chain: [lock.token()] }))).status).toBe(Status.OK);
    expect(lock.sm.state).toBe('open');
  });

  it('maxUses on the root bounds every delegated use of the chain', async () => {
    const lock = await makeLock();
    const root = lock.token({ scope: ['unlock', 'delegate'], maxUses: 1 });
    const link = mintToken(
      claims(lock.w, { iss: 'bianca', cnf: lock.w.friend.publicKey, scope: ['unlock'], maxUses: 1 }),
      lock.w.rider,
    );
    expect((await lock.send(lock.request({ chain: [root, link], holder: lock.w.friend }))).status).toBe(
      Status.OK,
    );
    await lock.relock();
    // The rider's own direct use is exhausted too: the root's single use is spent.
    expect((await lock.send(lock.request({ chain: [root] }))).status).toBe(Status.USES_EXHAUSTED);
    expect(lock.pulses).toHaveLength(1);
  });
});

describe('audit of rate-limited peers', () => {
  it('writes the first RATE_LIMITED of a back-off and counts the rest into the next record', async () => {
    const lock = await makeLock();
    for (let i = 0; i < 5; i++) await lock.send(Uint8Array.of(0xff), 'noisy');
    const before = lock.stores.audit.lastSeq;
    for (let i = 0; i < 20; i++) {
      expect((await lock.send(Uint8Array.of(0xff), 'noisy')).status).toBe(Status.RATE_LIMITED);
    }
    expect(lock.stores.audit.lastSeq).toBe(before + 1);
    lock.clock.advance(3_000);
    await lock.send(Uint8Array.of(0xff), 'noisy');
    const last = decodeAuditEntry(lock.stores.audit.records().at(-1)!.payload);
    expect(last).toMatchObject({ status: Status.MALFORMED, peer: 'noisy', suppressed: 19 });
  });

  it('a sender rotating its peer id past the global cap gets one audit record per pause, not one per request', async () => {
    const lock = await makeLock();
    for (let i = 0; i < 40; i++) await lock.send(Uint8Array.of(0xff), `rot-${i}`);
    const before = lock.stores.audit.lastSeq;
    for (let i = 40; i < 100; i++) {
      expect((await lock.send(Uint8Array.of(0xff), `rot-${i}`)).status).toBe(Status.RATE_LIMITED);
    }
    expect(lock.stores.audit.lastSeq).toBe(before + 1);
    lock.clock.advance(5_000);
    expect((await lock.send(lock.request({ chain: [lock.token()], peer: 'rider' }), 'rider')).status).toBe(
      Status.OK,
    );
  });

  it('refusals stop filling the outbox past its audit budget (alerts keep their room); accepted ones never do', async () => {
    const lock = await makeLock({ outboxAuditBudget: 5 });
    for (let i = 0; i < 12; i++) await lock.send(Uint8Array.of(0xff), `peer-${i}`);
    expect(lock.stores.outbox.size).toBe(5);
    // [TANDEM-AUDIT-2]: the local trail keeps the records written (boot, beacon, 3 refusals); the 9 others are
    // counted in the next record.
    expect(lock.stores.audit.lastSeq).toBe(5);
    expect((await lock.send(lock.request({ chain: [lock.token()], peer: 'rider' }), 'rider')).status).toBe(
      Status.OK,
    );
    expect(lock.stores.outbox.size).toBe(6);
    expect(decodeAuditEntry(lock.stores.audit.records().at(-1)!.payload)).toMatchObject({
      status: Status.OK,
      notQueued: 9,
    });
  });

  it('the thief key cannot become a trust anchor through a copied owner token', async () => {
    const lock = await makeLock();
    const thief = generateKeyPair('ES256');
    const r = await lock.send(
      lock.request({ chain: [lock.ownerToken()], holder: thief, command: Command.CLEAR_LOCKOUT }),
    );
    expect(r.status).toBe(Status.POP_INVALID);
  });
});
