// The attack catalogue's decision rows (test/security/CATALOGUE.md): each attack is played against the lock's
// real decision (LockAuthority on simulated hardware, stores on a simulated card) and must be refused with
// its exact status while the solenoid never moves. Titles are what the catalogue cites: keep them stable.
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { generateKeyPair } from '../../protocol/src/keys.js';
import type { PrivateKey } from '../../protocol/src/keys.js';
import { encodeRevocationUpdate } from '../../protocol/src/revocation.js';
import type { RevocationUpdate } from '../../protocol/src/revocation.js';
import { Status } from '../../protocol/src/status.js';
import { mintToken } from '../../protocol/src/token.js';
import type { MintClaims } from '../../protocol/src/token.js';
import { LOCK, NOW, claims, makeLock, settle } from '../../firmware-sim/test/lock-harness.js';
import type { Lock } from '../../firmware-sim/test/lock-harness.js';

/** The refusal and the solenoid: the exact status, no "may have acted", no pulse, coil off, still locked. */
function expectRefused(lock: Lock, r: { status: Status; mayHaveActed: boolean }, status: Status): void {
  expect(Status[r.status]).toBe(Status[status]);
  expect(r.mayHaveActed).toBe(false);
  expect(lock.pulses).toHaveLength(0);
  expect(lock.mech.solenoid.isEnergised()).toBe(false);
  expect(lock.sm.state).toBe('locked');
}

/** A delegation link signed by `signer` (default: the rider, the root's holder) for the friend's key. */
function link(lock: Lock, over: Partial<MintClaims> = {}, signer: PrivateKey = lock.w.rider): Uint8Array {
  return mintToken(
    claims(lock.w, { iss: 'bianca', cnf: lock.w.friend.publicKey, scope: ['unlock'], ...over }),
    signer,
  );
}

const delegating = (lock: Lock, over: Partial<MintClaims> = {}) =>
  lock.token({ scope: ['unlock', 'status', 'delegate'], ...over });

describe('attack catalogue: replay and stolen tokens', () => {
  it('a recorded unlock replayed after the rider left: CHALLENGE_UNKNOWN, no second pulse', async () => {
    const lock = await makeLock();
    const req = lock.request({ chain: [lock.token()] });
    expect((await lock.send(req)).status).toBe(Status.OK);
    expect(lock.pulses).toHaveLength(1);
    await lock.relock();
    const again = await lock.send(req, 'attacker');
    expect(Status[again.status]).toBe('CHALLENGE_UNKNOWN');
    expect(again.mayHaveActed).toBe(false);
    expect(lock.pulses).toHaveLength(1);
    expect(lock.sm.state).toBe('locked');
  });

  it('a request for a nonce the lock never issued: CHALLENGE_UNKNOWN', async () => {
    const lock = await makeLock();
    const r = await lock.send(lock.request({ chain: [lock.token()], nonce: new Uint8Array(16).fill(7) }));
    expectRefused(lock, r, Status.CHALLENGE_UNKNOWN);
  });

  it('a token copied off the air, proved with the thief’s own key: POP_INVALID', async () => {
    const lock = await makeLock();
    const r = await lock.send(
      lock.request({ chain: [lock.token()], holder: generateKeyPair('ES256'), peer: 'thief' }),
      'thief',
    );
    expectRefused(lock, r, Status.POP_INVALID);
  });

  it('a token copied off the air with a junk signature: POP_INVALID', async () => {
    const lock = await makeLock();
    const req = lock.request({ chain: [lock.token()], peer: 'thief' });
    // The PoP signature is the request's last field: flip its last byte.
    req[req.length - 1]! ^= 0x55;
    const r = await lock.send(req, 'thief');
    expectRefused(lock, r, Status.POP_INVALID);
  });
});

describe('attack catalogue: chain narrowing [TANDEM-CHAIN-3]', () => {
  const cases: { title: string; status: Status; chain: (l: Lock) => Uint8Array[] }[] = [
    {
      title: 'a link under a parent without "delegate"',
      status: Status.CHAIN_INVALID,
      chain: (l) => [l.token({ scope: ['unlock', 'status'] }), link(l)],
    },
    {
      title: 'a link that widens its parent’s scope (adds manage)',
      status: Status.CHAIN_INVALID,
      chain: (l) => [delegating(l), link(l, { scope: ['unlock', 'manage'] })],
    },
    {
      title: 'a link for another subject (sub)',
      status: Status.CHAIN_INVALID,
      chain: (l) => [delegating(l), link(l, { sub: 'eve' })],
    },
    {
      title: 'a link for another lock (aud)',
      status: Status.CHAIN_INVALID,
      chain: (l) => [delegating(l), link(l, { aud: 'lock-other' })],
    },
    {
      title: 'a link valid before its parent (nbf)',
      status: Status.CHAIN_INVALID,
      chain: (l) => [delegating(l), link(l, { nbf: NOW - 3600, iat: NOW - 3600 })],
    },
    {
      title: 'a link that outlives its parent (exp)',
      status: Status.CHAIN_INVALID,
      chain: (l) => [delegating(l, { exp: NOW + 3600 }), link(l, { exp: NOW + 7200 })],
    },
    {
      title: 'a link whose schedule is wider than its parent’s',
      status: Status.CHAIN_INVALID,
      chain: (l) => [delegating(l), link(l, { schedule: [{ days: 0b1111111, start: 0, end: 1440 }] })],
    },
    {
      title: 'a link that drops its parent’s use limit',
      status: Status.CHAIN_INVALID,
      chain: (l) => [delegating(l, { maxUses: 5 }), link(l, { maxUses: undefined })],
    },
    {
      title: 'a link that raises its parent’s use limit',
      status: Status.CHAIN_INVALID,
      chain: (l) => [delegating(l, { maxUses: 5 }), link(l, { maxUses: 6 })],
    },
    {
      title: 'a link that repeats its parent’s token id (cti)',
      status: Status.CHAIN_INVALID,
      chain: (l) => {
        const cti = randomBytes(12);
        return [delegating(l, { cti }), link(l, { cti })];
      },
    },
    {
      title: 'a chain of four tokens (deeper than 3)',
      status: Status.CHAIN_INVALID,
      chain: (l) => {
        const deleg = ['unlock', 'delegate'];
        return [
          delegating(l),
          link(l, { scope: deleg }),
          mintToken(claims(l.w, { iss: 'c', cnf: l.w.rider.publicKey, scope: deleg }), l.w.friend),
          link(l, { iss: 'd' }),
        ];
      },
    },
    {
      title: 'a link signed by a key other than its parent’s holder',
      status: Status.BAD_SIGNATURE,
      chain: (l) => [delegating(l), link(l, {}, generateKeyPair('ES256'))],
    },
  ];
  for (const c of cases) {
    it(`${c.title}: ${Status[c.status]}`, async () => {
      const lock = await makeLock();
      const r = await lock.send(lock.request({ chain: c.chain(lock), holder: lock.w.friend }));
      expectRefused(lock, r, c.status);
    });
  }

  it('the control: a link that narrows correctly unlocks (so the rows above fail for their reason)', async () => {
    const lock = await makeLock();
    const r = await lock.send(lock.request({ chain: [delegating(lock), link(lock)], holder: lock.w.friend }));
    expect(Status[r.status]).toBe('OK');
    expect(lock.pulses).toHaveLength(1);
  });
});

describe('attack catalogue: revocation rollback and gaps [TANDEM-REV]', () => {
  const update = (lock: Lock, u: Partial<RevocationUpdate> & { version: number }): Uint8Array =>
    encodeRevocationUpdate(
      { kind: 'full', issuedAt: NOW, lockId: LOCK, added: [], removed: [], ...u },
      lock.w.issuer,
      lock.w.issuerKid,
    );

  it('an older signed revocation list replayed to un-revoke a token: REVOCATION_ROLLBACK, the token stays revoked', async () => {
    const lock = await makeLock();
    const cti = randomBytes(12);
    const revoking = update(lock, { version: 3, added: [{ id: cti, exp: NOW + 86_400 }] });
    const older = update(lock, { version: 2 });
    expect((await settle(lock.clock, lock.authority.applyRevocationUpdate(revoking))).status).toBe(Status.OK);
    const back = await settle(lock.clock, lock.authority.applyRevocationUpdate(older, { peer: 'attacker' }));
    expect(Status[back.status]).toBe('REVOCATION_ROLLBACK');
    expect(lock.stores.revocations.version).toBe(3);
    const r = await lock.send(lock.request({ chain: [lock.token({ cti })] }));
    expectRefused(lock, r, Status.REVOKED);
  });

  it('a delta that skips versions (base the lock does not hold): REVOCATION_STALE, nothing applied', async () => {
    const lock = await makeLock();
    expect(
      (await settle(lock.clock, lock.authority.applyRevocationUpdate(update(lock, { version: 3 })))).status,
    ).toBe(Status.OK);
    const gap = update(lock, {
      kind: 'delta',
      baseVersion: 5,
      version: 6,
      added: [{ id: randomBytes(8), exp: NOW + 60 }],
    });
    const d = await settle(lock.clock, lock.authority.applyRevocationUpdate(gap, { peer: 'attacker' }));
    expect(Status[d.status]).toBe('REVOCATION_STALE');
    expect(lock.stores.revocations.version).toBe(3);
    expect(lock.pulses).toHaveLength(0);
  });

  it('a token that demands a newer revocation list than the lock holds: REVOCATION_STALE', async () => {
    const lock = await makeLock();
    const r = await lock.send(lock.request({ chain: [lock.token({ minRevocation: 9 })] }));
    expectRefused(lock, r, Status.REVOCATION_STALE);
  });
});
