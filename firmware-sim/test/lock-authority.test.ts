/**
 * The lock's decision (SPEC.md §5.7, §5.8) end to end on a simulated lock: every security refusal asserts the
 * exact status AND that the solenoid never moved.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../hardware/src/clock.js';
import { chainHash } from '../../protocol/src/chain.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { Command, createRequest } from '../../protocol/src/pop.js';
import {
  encodeRevocationUpdate,
  holderRevocationId,
  verifyRevocationAck,
} from '../../protocol/src/revocation.js';
import { Status } from '../../protocol/src/status.js';
import { mintToken } from '../../protocol/src/token.js';
import { decodeAuditEntry } from '../src/lock/audit.js';
import { tokenStateId } from '../src/lock/decision.js';
import { CrashingStoreFs } from '../src/store/crashing-store-fs.js';
import { UseCounterStore } from '../src/store/use-counter-store.js';
import { DIR, LOCK, NOW, claims, freshCti, makeLock, settle } from './lock-harness.js';

describe('LockAuthority: accepted unlock', () => {
  it('pulses once for the configured length, reports OK with mayHaveActed, audits and queues the attempt', async () => {
    const lock = await makeLock();
    const token = lock.token({ rider: 'bianca' });
    const r = await lock.send(lock.request({ chain: [token] }));
    expect(r.status).toBe(Status.OK);
    expect(r.mayHaveActed).toBe(true);
    expect(r.state).toBe('unlocked');
    expect(r.command).toBe(Command.UNLOCK);
    expect(lock.pulses).toHaveLength(1);
    expect(lock.pulses[0]!.requestedMs).toBe(200);
    expect(lock.pulses[0]!.endedBy).toBe('complete');
    expect(lock.mech.solenoid.isEnergised()).toBe(false);
    const last = lock.stores.audit.records().at(-1)!;
    const entry = decodeAuditEntry(last.payload);
    expect(entry).toMatchObject({
      status: Status.OK,
      kind: 'request',
      command: Command.UNLOCK,
      rider: 'bianca',
      peer: 'phone',
    });
    expect(entry.time).toBeGreaterThanOrEqual(NOW - 2);
    expect(lock.stores.outbox.peek(100).some((e) => e.kind === 'audit')).toBe(true);
  });

  it('accepts a repeat by chainRef ([TANDEM-POP-6]) and answers TOKEN_REF_UNKNOWN for a chain it never saw', async () => {
    const lock = await makeLock();
    const token = lock.token();
    expect((await lock.send(lock.request({ chain: [token] }))).status).toBe(Status.OK);
    await lock.relock();
    expect((await lock.send(lock.request({ chain: [token], byRef: true }))).status).toBe(Status.OK);
    await lock.relock();
    const other = lock.token();
    const r = await lock.send(lock.request({ chain: [other], byRef: true }));
    expect(r.status).toBe(Status.TOKEN_REF_UNKNOWN);
    expect(r.mayHaveActed).toBe(false);
    expect(lock.pulses).toHaveLength(2);
  });

  it('accepts a narrowing chain root -> rider -> friend', async () => {
    const lock = await makeLock();
    const root = lock.token({ scope: ['unlock', 'delegate'] });
    const link = mintToken(
      { ...claims(lock.w, { iss: 'bianca', cnf: lock.w.friend.publicKey, scope: ['unlock'] }) },
      lock.w.rider,
    );
    const r = await lock.send(lock.request({ chain: [root, link], holder: lock.w.friend }));
    expect(r.status).toBe(Status.OK);
    expect(lock.pulses).toHaveLength(1);
  });
});

describe('LockAuthority: refusals never move the solenoid', () => {
  const cases: {
    title: string;
    status: Status;
    build: (lock: Awaited<ReturnType<typeof makeLock>>) => Uint8Array | Promise<Uint8Array>;
  }[] = [
    {
      title: 'expired token [TANDEM-TIME-CHECK]',
      status: Status.EXPIRED,
      build: (l) => l.request({ chain: [l.token({ nbf: NOW - 7200, iat: NOW - 7200, exp: NOW - 3600 })] }),
    },
    {
      title: 'not-yet-valid token',
      status: Status.NOT_YET_VALID,
      build: (l) => l.request({ chain: [l.token({ nbf: NOW + 3600, exp: NOW + 7200 })] }),
    },
    {
      title: 'token for another lock',
      status: Status.WRONG_AUDIENCE,
      build: (l) => l.request({ chain: [l.token({ aud: 'lock-other' })] }),
    },
    {
      title: 'token signed by an unknown key',
      status: Status.UNKNOWN_SIGNER,
      build: (l) =>
        l.request({ chain: [mintToken(claims(l.w), generateKeyPair('EdDSA'), Uint8Array.of(0x09))] }),
    },
    {
      title: 'bit-flipped token signature',
      status: Status.BAD_SIGNATURE,
      build: (l) => {
        const t = l.token();
        t[t.length - 1]! ^= 1;
        return l.request({ chain: [t] });
      },
    },
    {
      title: "copied token used with the thief's key [TANDEM-POP-1]",
      status: Status.POP_INVALID,
      build: (l) => l.request({ chain: [l.token()], holder: generateKeyPair('ES256') }),
    },
    {
      title: 'scope without unlock',
      status: Status.SCOPE_DENIED,
      build: (l) => l.request({ chain: [l.token({ scope: ['status'] })] }),
    },
    {
      title: 'outside the weekly schedule (weekends only, now a Wednesday)',
      status: Status.OUTSIDE_SCHEDULE,
      build: (l) => l.request({ chain: [l.token({ schedule: [{ days: 0b1100000, start: 0, end: 1440 }] })] }),
    },
    {
      title: 'token demanding a newer revocation list',
      status: Status.REVOCATION_STALE,
      build: (l) => l.request({ chain: [l.token({ minRevocation: 5 })] }),
    },
    {
      title: 'chain whose link widens its parent (adds manage)',
      status: Status.CHAIN_INVALID,
      build: (l) => {
        const root = l.token({ scope: ['unlock', 'delegate'] });
        const link = mintToken(
          claims(l.w, { iss: 'bianca', cnf: l.w.friend.publicKey, scope: ['unlock', 'manage'] }),
          l.w.rider,
        );
        return l.request({ chain: [root, link], holder: l.w.friend });
      },
    },
    {
      title: 'chain whose link outlives its parent',
      status: Status.CHAIN_INVALID,
      build: (l) => {
        const root = l.token({ scope: ['unlock', 'delegate'], exp: NOW + 3600 });
        const link = mintToken(
          claims(l.w, { iss: 'bianca', cnf: l.w.friend.publicKey, scope: ['unlock'], exp: NOW + 7200 }),
          l.w.rider,
        );
        return l.request({ chain: [root, link], holder: l.w.friend });
      },
    },
    {
      title: 'nonce the lock never issued',
      status: Status.CHALLENGE_UNKNOWN,
      build: (l) => l.request({ chain: [l.token()], nonce: new Uint8Array(16).fill(9) }),
    },
    {
      title: 'garbage bytes',
      status: Status.MALFORMED,
      build: () => Uint8Array.of(0xff, 0x00, 0x13, 0x37),
    },
    {
      title: 'args on UNLOCK (strict decoding)',
      status: Status.MALFORMED,
      build: (l) => l.request({ chain: [l.token()], args: Uint8Array.of(0xa0) }),
    },
  ];
  for (const c of cases) {
    it(`${c.title}: ${Status[c.status]}`, async () => {
      const lock = await makeLock();
      const r = await lock.send(await c.build(lock));
      expect(Status[r.status]).toBe(Status[c.status]);
      expect(r.mayHaveActed).toBe(false);
      expect(lock.pulses).toHaveLength(0);
      expect(lock.sm.state).toBe('locked');
      const entry = decodeAuditEntry(lock.stores.audit.records().at(-1)!.payload);
      expect(entry.status).toBe(c.status);
    });
  }

  it('a replayed request names a spent nonce: CHALLENGE_UNKNOWN, no second pulse [TANDEM-POP-4]', async () => {
    const lock = await makeLock();
    const req = lock.request({ chain: [lock.token()] });
    expect((await lock.send(req)).status).toBe(Status.OK);
    await lock.relock();
    const again = await lock.send(req);
    expect(again.status).toBe(Status.CHALLENGE_UNKNOWN);
    expect(again.mayHaveActed).toBe(false);
    expect(lock.pulses).toHaveLength(1);
  });

  it('a challenge is spent by a refused request naming it too', async () => {
    const lock = await makeLock();
    const nonce = lock.authority.issueChallenge({ peer: 'phone' }).nonce;
    const bad = lock.request({ chain: [lock.token({ scope: ['status'] })], nonce });
    expect((await lock.send(bad)).status).toBe(Status.SCOPE_DENIED);
    const good = lock.request({ chain: [lock.token()], nonce });
    expect((await lock.send(good)).status).toBe(Status.CHALLENGE_UNKNOWN);
    expect(lock.pulses).toHaveLength(0);
  });

  it('an expired challenge: CHALLENGE_EXPIRED', async () => {
    const lock = await makeLock();
    const req = lock.request({ chain: [lock.token()] });
    lock.clock.advance(31_000);
    const r = await lock.send(req);
    expect(r.status).toBe(Status.CHALLENGE_EXPIRED);
    expect(lock.pulses).toHaveLength(0);
  });

  it('a revoked token: REVOKED after a signed revocation update, which is acknowledged', async () => {
    const lock = await makeLock();
    const cti = freshCti();
    const update = encodeRevocationUpdate(
      {
        kind: 'full',
        version: 1,
        issuedAt: NOW,
        lockId: LOCK,
        added: [{ id: cti, exp: NOW + 86_400 }],
        removed: [],
      },
      lock.w.issuer,
      lock.w.issuerKid,
    );
    const d = await settle(lock.clock, lock.authority.applyRevocationUpdate(update));
    expect(d.status).toBe(Status.OK);
    expect(verifyRevocationAck(d.ack!, lock.device.publicKey, LOCK).version).toBe(1);
    const r = await lock.send(lock.request({ chain: [lock.token({ cti })] }));
    expect(r.status).toBe(Status.REVOKED);
    expect(lock.pulses).toHaveLength(0);
    // A revoked link anywhere in the chain counts too.
    const root = lock.token({ cti, scope: ['unlock', 'delegate'] });
    const link = mintToken(
      claims(lock.w, { iss: 'bianca', cnf: lock.w.friend.publicKey, scope: ['unlock'] }),
      lock.w.rider,
    );
    expect((await lock.send(lock.request({ chain: [root, link], holder: lock.w.friend }))).status).toBe(
      Status.REVOKED,
    );
    expect(lock.pulses).toHaveLength(0);
  });

  it('a revoked phone key (holder id, TANDEM-REV-10): its tokens and the links it signed are REVOKED, other keys still open', async () => {
    const lock = await makeLock();
    const update = encodeRevocationUpdate(
      {
        kind: 'full',
        version: 1,
        issuedAt: NOW,
        lockId: LOCK,
        added: [{ id: holderRevocationId(lock.w.friend.publicKey), exp: NOW + 86_400 }],
        removed: [],
      },
      lock.w.issuer,
      lock.w.issuerKid,
    );
    expect((await settle(lock.clock, lock.authority.applyRevocationUpdate(update))).status).toBe(Status.OK);
    const own = lock.token({ cnf: lock.w.friend.publicKey });
    const r1 = await lock.send(lock.request({ chain: [own], holder: lock.w.friend }));
    expect(r1.status).toBe(Status.REVOKED);
    // The revoked key as the delegator of a link: the link's own holder is someone else.
    const root = lock.token({ cnf: lock.w.friend.publicKey, scope: ['unlock', 'delegate'] });
    const stranger = generateKeyPair('ES256');
    const link = mintToken(
      claims(lock.w, { iss: 'bianca', cnf: stranger.publicKey, scope: ['unlock'] }),
      lock.w.friend,
    );
    const r2 = await lock.send(lock.request({ chain: [root, link], holder: stranger }));
    expect(r2.status).toBe(Status.REVOKED);
    expect(lock.pulses).toHaveLength(0);
    // The rider's own key is not listed: it still opens.
    expect((await lock.send(lock.request({ chain: [lock.token()] }))).status).toBe(Status.OK);
    expect(lock.pulses).toHaveLength(1);
  });

  it('revocation updates never go backwards: REVOCATION_ROLLBACK; a re-delivery is acknowledged again', async () => {
    const lock = await makeLock();
    const upd = (version: number) =>
      encodeRevocationUpdate(
        { kind: 'full', version, issuedAt: NOW, lockId: LOCK, added: [], removed: [] },
        lock.w.issuer,
        lock.w.issuerKid,
      );
    expect((await settle(lock.clock, lock.authority.applyRevocationUpdate(upd(3)))).status).toBe(Status.OK);
    const back = await settle(lock.clock, lock.authority.applyRevocationUpdate(upd(2)));
    expect(back.status).toBe(Status.REVOCATION_ROLLBACK);
    expect(back.version).toBe(3);
    const again = await settle(lock.clock, lock.authority.applyRevocationUpdate(upd(3)));
    expect(again.status).toBe(Status.OK);
    expect(again.ack).toBeDefined();
    // An update signed by the owner (not an issuer) is refused.
    const forged = encodeRevocationUpdate(
      { kind: 'full', version: 9, issuedAt: NOW, lockId: LOCK, added: [], removed: [] },
      lock.w.owner,
      lock.w.ownerKid,
    );
    expect((await settle(lock.clock, lock.authority.applyRevocationUpdate(forged))).status).toBe(
      Status.UNKNOWN_SIGNER,
    );
    expect(lock.stores.revocations.version).toBe(3);
  });

  it('uses: N accepted, then USES_EXHAUSTED with no further pulse [TANDEM-USES-1]', async () => {
    const lock = await makeLock();
    const token = lock.token({ maxUses: 2 });
    for (let i = 0; i < 2; i++) {
      expect((await lock.send(lock.request({ chain: [token] }))).status).toBe(Status.OK);
      await lock.relock();
    }
    const r = await lock.send(lock.request({ chain: [token] }));
    expect(r.status).toBe(Status.USES_EXHAUSTED);
    expect(r.mayHaveActed).toBe(false);
    expect(lock.pulses).toHaveLength(2);
    // STATUS changes nothing and counts no use.
    const s = await lock.send(lock.request({ chain: [token], command: Command.STATUS }));
    expect(s.status).toBe(Status.OK);
    expect(s.mayHaveActed).toBe(false);
  });

  it('after a reboot without a beacon the clock is too uncertain: TIME_UNCERTAIN', async () => {
    const first = await makeLock();
    const w = first.w;
    const token = first.token();
    // Power cut and reboot: a fresh monotonic clock, the floor as persisted at the beacon.
    const lock = await makeLock({
      fs: first.fs.reboot({ tornWrites: 'lose' }),
      world: w,
      noBeacon: true,
      clock: new ManualClock(0),
    });
    const b = lock.trusted.bound();
    expect(b.earliest).toBe(NOW - 2);
    expect(b.latest).toBe(2 ** 32 - 1); // unknown until a nonce-bound beacon [TANDEM-TIME-6]
    const r = await lock.send(lock.request({ chain: [token] }));
    expect(r.status).toBe(Status.TIME_UNCERTAIN);
    expect(lock.pulses).toHaveLength(0);
    expect(lock.authority.issueChallenge().uncertainty).toBeNull();
    // A nonce-bound beacon relayed by the phone settles it.
    await lock.syncTime(NOW + 5);
    expect((await lock.send(lock.request({ chain: [token] }))).status).toBe(Status.OK);
  });
});

describe('LockAuthority: failures inside the decision', () => {
  it('an exception inside the decision is FAULT, audited, and the solenoid never moves', async () => {
    const lock = await makeLock({
      wrapStores: (s) => ({
        ...s,
        revocations: {
          get version() {
            return s.revocations.version;
          },
          has: () => {
            throw new TypeError('revocation index exploded');
          },
          replace: (v, t) => s.revocations.replace(v, t),
          applyDelta: (d) => s.revocations.applyDelta(d),
          prune: (n) => s.revocations.prune(n),
        },
      }),
    });
    const r = await lock.send(lock.request({ chain: [lock.token()] }));
    expect(r.status).toBe(Status.FAULT);
    expect(r.mayHaveActed).toBe(false);
    expect(lock.pulses).toHaveLength(0);
    expect(lock.sm.state).toBe('locked');
    expect(decodeAuditEntry(lock.stores.audit.records().at(-1)!.payload).status).toBe(Status.FAULT);
  });

  it('a failing use-count write is FAULT with no pulse', async () => {
    const lock = await makeLock({
      wrapStores: (s) => ({
        ...s,
        useCounters: {
          get: (id) => s.useCounters.get(id),
          consumeAll: () => Promise.reject(new Error('SD card gone')),
          prune: (n) => s.useCounters.prune(n),
          groupSize: (g) => s.useCounters.groupSize(g),
          maxPerGroup: s.useCounters.maxPerGroup,
          dropGroups: (g) => s.useCounters.dropGroups(g),
        },
      }),
    });
    const r = await lock.send(lock.request({ chain: [lock.token({ maxUses: 3 })] }));
    expect(r.status).toBe(Status.FAULT);
    expect(r.mayHaveActed).toBe(false);
    expect(lock.pulses).toHaveLength(0);
  });

  it('power cut at every operation of a counted unlock: never a pulse without a durable count', async () => {
    // Probe: how many filesystem operations setup and the unlock take (setup is deterministic).
    const probeFs = new CrashingStoreFs({ tornWrites: 'keep' });
    const probe = await makeLock({ fs: probeFs });
    const cti = freshCti();
    const token = probe.token({ cti, maxUses: 5 });
    const before = probeFs.operationCount;
    expect((await probe.send(probe.request({ chain: [token] }))).status).toBe(Status.OK);
    const after = probeFs.operationCount;
    expect(after).toBeGreaterThan(before);
    let pulsedRuns = 0;
    let unpulsedRuns = 0;
    for (const mode of ['lose', 'random'] as const) {
      for (let n = before; n <= after; n++) {
        const fs = new CrashingStoreFs({ cutAtOperation: n, tornWrites: mode, seed: n });
        const lock = await makeLock({ fs, world: probe.w, device: probe.device });
        expect(fs.operationCount).toBe(before);
        const r = await lock.send(lock.request({ chain: [token] }));
        const counters = await UseCounterStore.open(fs.reboot({ tornWrites: mode }), DIR);
        const why = `cut at ${n} (${mode}): status ${Status[r.status]}`;
        const counted = counters.get(tokenStateId(probe.w.issuer.publicKey, cti));
        expect(lock.pulses.length, why).toBeLessThanOrEqual(counted);
        if (lock.pulses.length > 0) {
          pulsedRuns++;
        } else {
          unpulsedRuns++;
          expect(r.mayHaveActed, why).toBe(false);
        }
      }
    }
    // The sweep covered cuts before the count (no pulse) and after it (pulse, count durable).
    expect(pulsedRuns).toBeGreaterThan(0);
    expect(unpulsedRuns).toBeGreaterThan(0);
  });
});

describe('LockAuthority: one command at a time', () => {
  it('a second request while an unlock acts gets BUSY and spends nothing', async () => {
    const lock = await makeLock();
    const p1 = lock.authority.handleRequest(lock.request({ chain: [lock.token()], peer: 'a' }), {
      peer: 'a',
    });
    const nonce = lock.authority.issueChallenge({ peer: 'b' }).nonce;
    const second = lock.request({ chain: [lock.token()], nonce });
    // Let the first reach its pulse.
    await lock.clock.advanceAsync(10, 5);
    const r2 = await lock.authority.handleRequest(second, { peer: 'b' });
    expect(r2.status).toBe(Status.BUSY);
    expect(r2.mayHaveActed).toBe(false);
    expect((await settle(lock.clock, p1)).status).toBe(Status.OK);
    expect(lock.pulses).toHaveLength(1);
    // BUSY did not spend the nonce: the same request may be retried.
    await lock.relock();
    expect((await lock.send(second, 'b')).status).toBe(Status.OK);
  });
});

describe('LockAuthority: fuzzing', () => {
  it('500 seeded random and mutated requests: nothing throws, nothing opens', async () => {
    const lock = await makeLock();
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const token = lock.token();
    const statuses = new Set<Status>();
    for (let i = 0; i < 500; i++) {
      let bytes: Uint8Array;
      const kind = rnd(4);
      if (kind === 0) {
        bytes = Uint8Array.from({ length: rnd(400) }, () => rnd(256));
      } else {
        bytes = lock.request({
          chain: [token],
          command: [1, 2, 3, 16, 20, 21, 22][rnd(7)] as Command,
          peer: `p${i}`,
        });
        const flips = 1 + rnd(4);
        if (kind === 3) bytes = bytes.subarray(0, rnd(bytes.length));
        else for (let f = 0; f < flips; f++) bytes[rnd(bytes.length)]! ^= 1 << rnd(8);
      }
      const r = await settle(lock.clock, lock.authority.handleRequest(bytes, { peer: `p${i % 50}` }));
      statuses.add(r.status);
      expect(r.mayHaveActed).toBe(false);
      if (i % 25 === 0) lock.clock.advance(10_000);
    }
    expect(lock.pulses).toHaveLength(0);
    expect(lock.mech.shackle).toBe('closed');
    expect(statuses.has(Status.OK)).toBe(false);
    expect(statuses.has(Status.FAULT)).toBe(false);
    expect(lock.authority.lockedOut).toBe(false);
  });
});

describe('LockAuthority: fuzzing deliveries', () => {
  it('random and mutated revocation updates and beacons never throw and never change the lock', async () => {
    const lock = await makeLock();
    let seed = 99;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const update = encodeRevocationUpdate(
      {
        kind: 'full',
        version: 7,
        issuedAt: NOW,
        lockId: LOCK,
        added: [{ id: freshCti(), exp: NOW + 99 }],
        removed: [],
      },
      lock.w.issuer,
      lock.w.issuerKid,
    );
    const floor = lock.trusted.floor;
    for (let i = 0; i < 200; i++) {
      const base = i % 2 === 0 ? update : Uint8Array.from({ length: 1 + rnd(300) }, () => rnd(256));
      const bytes = base.slice();
      for (let f = 0; f <= rnd(3); f++) bytes[rnd(bytes.length)]! ^= 1 << rnd(8);
      const peer = `f${i}`;
      const r1 = await settle(lock.clock, lock.authority.applyRevocationUpdate(bytes, { peer }));
      const r2 = await settle(lock.clock, lock.authority.applyTimeBeacon(bytes, { peer }));
      expect(r1.status).not.toBe(Status.FAULT);
      expect(r2.status).not.toBe(Status.OK);
      if (i % 20 === 0) lock.clock.advance(10_000);
    }
    expect(lock.stores.revocations.version).toBe(0);
    expect(lock.trusted.floor).toBeGreaterThanOrEqual(floor);
    expect(lock.pulses).toHaveLength(0);
  });
});

describe('LockAuthority: rate limiting and lockout', () => {
  it('refusals from one peer back it off with RATE_LIMITED; other peers are unaffected', async () => {
    const lock = await makeLock();
    for (let i = 0; i < 5; i++) {
      expect((await lock.send(Uint8Array.of(0xff), 'noisy')).status).toBe(Status.MALFORMED);
    }
    const limited = await lock.send(lock.request({ chain: [lock.token()], peer: 'noisy' }), 'noisy');
    expect(limited.status).toBe(Status.RATE_LIMITED);
    expect(lock.pulses).toHaveLength(0);
    expect((await lock.send(lock.request({ chain: [lock.token()], peer: 'rider' }), 'rider')).status).toBe(
      Status.OK,
    );
    // Only the first refusal of a back-off is written on its own; the rest are counted into the next record.
    await lock.relock();
    lock.clock.advance(2_500);
    expect((await lock.send(Uint8Array.of(0xff), 'noisy')).status).toBe(Status.MALFORMED);
  });

  // Changed by issue 7: POP_INVALID and CHALLENGE_UNKNOWN are no longer lockout evidence (a stranger causes
  // them), and the lockout holds only the misbehaving root token and holder key, not the whole lock.
  it('garbage and copied tokens never lock out; a key holder misusing a token locks out only that token and key, until the owner clears it', async () => {
    const lock = await makeLock();
    for (let i = 0; i < 60; i++) {
      await lock.send(
        Uint8Array.from({ length: 20 }, (_, j) => (i * 31 + j) & 0xff),
        `radio-${i}`,
      );
    }
    expect(lock.authority.lockedOut).toBe(false);
    lock.clock.advance(6_000); // the global pause is short and fixed
    const thief = generateKeyPair('ES256');
    const copied = lock.token();
    for (let i = 0; i < 10; i++) {
      const r = await lock.send(lock.request({ chain: [copied], holder: thief, peer: `t${i}` }), `t${i}`);
      expect(r.status).toBe(Status.POP_INVALID);
    }
    expect(lock.authority.lockedOut).toBe(false);
    // The rider, with her own key, asks ten times for a command her token does not grant.
    const statusOnly = lock.token({ scope: ['status'] });
    for (let i = 0; i < 10; i++) {
      const r = await lock.send(lock.request({ chain: [statusOnly], peer: `r${i}` }), `r${i}`);
      expect(r.status).toBe(Status.SCOPE_DENIED);
    }
    expect(lock.authority.lockedOut).toBe(true);
    // That token and that key are locked out, even with another token for the same key ...
    const again = await lock.send(
      lock.request({ chain: [statusOnly], command: Command.STATUS, peer: 'r' }),
      'r',
    );
    expect(again.status).toBe(Status.LOCKED_OUT);
    const sameKey = await lock.send(lock.request({ chain: [lock.token()], peer: 'r2' }), 'r2');
    expect(sameKey.status).toBe(Status.LOCKED_OUT);
    // ... another rider is not.
    const other = lock.token({ cnf: lock.w.friend.publicKey, rider: 'carla' });
    const carla = await lock.send(lock.request({ chain: [other], holder: lock.w.friend, peer: 'c' }), 'c');
    expect(carla.status).toBe(Status.OK);
    await lock.relock();
    // The owner's proof, checked fully, clears it.
    const owner = await lock.send(
      lock.request({
        chain: [lock.ownerToken()],
        holder: lock.w.owner,
        command: Command.CLEAR_LOCKOUT,
        peer: 'owner',
      }),
      'owner',
    );
    expect(owner.status).toBe(Status.OK);
    expect(lock.authority.lockedOut).toBe(false);
    expect((await lock.send(lock.request({ chain: [lock.token()], peer: 'rider3' }), 'rider3')).status).toBe(
      Status.OK,
    );
    expect(lock.pulses).toHaveLength(2);
  });

  it('a lockout survives a reboot', async () => {
    const lock = await makeLock();
    const statusOnly = lock.token({ scope: ['status'] });
    for (let i = 0; i < 10; i++) {
      await lock.send(lock.request({ chain: [statusOnly], peer: `t${i}` }), `t${i}`);
    }
    expect(lock.authority.lockedOut).toBe(true);
    const again = await makeLock({ fs: lock.fs.reboot({ tornWrites: 'lose' }), world: lock.w });
    expect(again.authority.lockedOut).toBe(true);
    expect((await again.send(again.request({ chain: [again.token()] }))).status).toBe(Status.LOCKED_OUT);
    expect(again.pulses).toHaveLength(0);
    const friend = again.token({ cnf: again.w.friend.publicKey });
    expect((await again.send(again.request({ chain: [friend], holder: again.w.friend }))).status).toBe(
      Status.OK,
    );
  });
});

describe('LockAuthority: request for a chain with a PoP by the right key but another lock id', () => {
  it('is refused with POP_INVALID', async () => {
    const lock = await makeLock();
    const token = lock.token();
    const nonce = lock.authority.issueChallenge({ peer: 'phone' }).nonce;
    const req = createRequest({
      lockId: 'lock-other',
      nonce,
      command: Command.UNLOCK,
      chain: [token],
      chainHash: chainHash([token]),
      holderKey: lock.w.rider,
    });
    const r = await lock.send(req);
    expect(r.status).toBe(Status.POP_INVALID);
    expect(lock.pulses).toHaveLength(0);
  });
});
