/**
 * The pure decision (firmware-sim/src/lock/decision.ts, SPEC.md [TANDEM-DECIDE-1], [TANDEM-DECIDE-2]): the
 * order of the steps, and that nothing the lock holds is consulted before the holder proved possession.
 */
import { describe, expect, it } from 'vitest';
import { chainHash } from '../../protocol/src/chain.js';
import type { TimeBound } from '../../protocol/src/chain.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import type { PrivateKey } from '../../protocol/src/keys.js';
import { Command, createRequest } from '../../protocol/src/pop.js';
import { Status } from '../../protocol/src/status.js';
import { mintToken } from '../../protocol/src/token.js';
import type { MintClaims } from '../../protocol/src/token.js';
import { LOCK, NOW, claims, world } from '../../protocol/test/fixtures.js';
import type { TakenChallenge } from '../src/lock/challenges.js';
import { decide, decodeStep, isOwnerSelf, tokenStateId } from '../src/lock/decision.js';
import type { HeldState } from '../src/lock/decision.js';

const w = world();
const BOUND: TimeBound = { earliest: NOW - 2, latest: NOW + 4 };
const NONCE = new Uint8Array(16).fill(3);
const LIVE: TakenChallenge = { kind: 'live', challenge: { nonce: NONCE, issuedAtMs: 0, peer: 'p' } };

/** What the lock holds, with a log of every query the decision made. */
function held(over: Partial<HeldState> = {}): { state: HeldState; asked: string[] } {
  const asked: string[] = [];
  const state: HeldState = {
    lockId: LOCK,
    anchors: w.lookup,
    timeZone: 'UTC',
    safeMode: false,
    revocationVersion: 0,
    cachedGrant: () => undefined,
    revoked: () => (asked.push('revoked'), false),
    usesCounted: () => (asked.push('uses'), 0),
    groupHasRoom: () => (asked.push('room'), true),
    lockedOut: () => (asked.push('lockout'), false),
    ...over,
  };
  return { state, asked };
}

function request(chain: Uint8Array[], holder: PrivateKey = w.rider, command = Command.UNLOCK): Uint8Array {
  return createRequest({
    lockId: LOCK,
    nonce: NONCE,
    command,
    chain,
    chainHash: chainHash(chain),
    holderKey: holder,
  });
}

const token = (over: Partial<MintClaims> = {}): Uint8Array =>
  mintToken(claims(w, { schedule: undefined, ...over }), w.issuer, w.issuerKid);

function run(bytes: Uint8Array, h: HeldState, challenge: TakenChallenge = LIVE, bound = BOUND) {
  return decide({ ...decodeStep(bytes, 500), challenge }, h, bound);
}

describe('decide: the order of SPEC.md §5.7 [TANDEM-DECIDE-1]', () => {
  it('accepts a valid request and lists the tokens to count under their root', () => {
    const { state } = held();
    const t = token({ maxUses: 2 });
    const v = run(request([t]), state);
    expect(v.status).toBe(Status.OK);
    if (!v.ok) throw new Error('refused');
    expect(v.counted).toHaveLength(1);
    expect(v.counted[0]!.id).toEqual(v.counted[0]!.group);
  });

  const cases: { title: string; bytes: () => Uint8Array; over?: Partial<HeldState>; status: Status }[] = [
    {
      title: 'revoked, expired and out of scope, with a junk proof: POP_INVALID (possession first)',
      bytes: () =>
        request(
          [token({ exp: NOW - 10, nbf: NOW - 100, iat: NOW - 100, scope: ['status'] })],
          generateKeyPair('ES256'),
        ),
      over: { revoked: () => true },
      status: Status.POP_INVALID,
    },
    {
      title: 'locked out and expired: LOCKED_OUT before time',
      bytes: () => request([token({ exp: NOW - 10, nbf: NOW - 100, iat: NOW - 100 })]),
      over: { lockedOut: () => true },
      status: Status.LOCKED_OUT,
    },
    {
      title: 'expired and revoked: EXPIRED before revocation',
      bytes: () => request([token({ exp: NOW - 10, nbf: NOW - 100, iat: NOW - 100 })]),
      over: { revoked: () => true },
      status: Status.EXPIRED,
    },
    {
      title: 'revoked and exhausted: REVOKED before uses',
      bytes: () => request([token({ maxUses: 1 })]),
      over: { revoked: () => true, usesCounted: () => 1 },
      status: Status.REVOKED,
    },
    {
      title: 'exhausted and out of scope: USES_EXHAUSTED before scope',
      bytes: () => request([token({ maxUses: 1, scope: ['status'] })]),
      over: { usesCounted: () => 1 },
      status: Status.USES_EXHAUSTED,
    },
    {
      title: 'a new counter in a full root group: QUOTA_EXCEEDED',
      bytes: () => request([token({ maxUses: 1 })]),
      over: { groupHasRoom: () => false },
      status: Status.QUOTA_EXCEEDED,
    },
    {
      title: 'out of scope only: SCOPE_DENIED',
      bytes: () => request([token({ scope: ['status'] })]),
      status: Status.SCOPE_DENIED,
    },
  ];
  for (const c of cases) {
    it(c.title, () => {
      expect(Status[run(c.bytes(), held(c.over).state).status]).toBe(Status[c.status]);
    });
  }

  it('a challenge of another peer (unknown) or expired comes before the proof', () => {
    const bytes = request([token()], generateKeyPair('ES256'));
    expect(run(bytes, held().state, { kind: 'unknown' }).status).toBe(Status.CHALLENGE_UNKNOWN);
    expect(run(bytes, held().state, { kind: 'expired', challenge: LIVE.challenge }).status).toBe(
      Status.CHALLENGE_EXPIRED,
    );
  });
});

describe('decide: nothing the lock holds is read before possession [TANDEM-DECIDE-2]', () => {
  it('a junk proof consults no revocation, counter, room or lockout', () => {
    const { state, asked } = held();
    const v = run(request([token({ maxUses: 3 })], generateKeyPair('ES256')), state);
    expect(v.status).toBe(Status.POP_INVALID);
    expect(v.ok ? undefined : v.evidence).toBeUndefined();
    expect(asked).toEqual([]);
  });

  it('the same input gives the same verdict (no hidden state)', () => {
    const { state } = held({ revoked: () => true });
    const bytes = request([token()]);
    const a = run(bytes, state);
    const b = run(bytes, state);
    expect([a.status, b.status]).toEqual([Status.REVOKED, Status.REVOKED]);
    expect(a.ok ? [] : a.evidence).toEqual(b.ok ? [] : b.evidence);
  });

  it('misuse after possession names the root and the holder key as evidence; an owner chain names none', () => {
    const statusOnly = token({ scope: ['status'] });
    const v = run(request([statusOnly]), held().state);
    expect(v.status).toBe(Status.SCOPE_DENIED);
    expect(v.ok ? undefined : v.evidence).toHaveLength(2);
    const own = mintToken(
      claims(w, { iss: 'adam', sub: 'adam', cnf: w.owner.publicKey, scope: ['unlock'], schedule: undefined }),
      w.owner,
      w.ownerKid,
    );
    const o = run(request([own], w.owner, Command.LOCK), held().state);
    expect(o.status).toBe(Status.SCOPE_DENIED);
    expect(o.ok ? undefined : o.evidence).toBeUndefined();
  });
});

describe("decide: the owner's own token needs no time [TANDEM-DECIDE-3]", () => {
  it('skips time and schedule for a one-token owner chain held by the owner key, not for an owner delegation', () => {
    const unknown: TimeBound = { earliest: 0, latest: 0xffff_ffff };
    const own = mintToken(
      claims(w, { iss: 'adam', sub: 'adam', cnf: w.owner.publicKey, scope: ['unlock'] }),
      w.owner,
      w.ownerKid,
    );
    expect(run(request([own], w.owner), held().state, LIVE, unknown).status).toBe(Status.OK);
    const shared = mintToken(
      claims(w, { iss: 'adam', sub: 'adam', cnf: w.friend.publicKey, scope: ['unlock'] }),
      w.owner,
      w.ownerKid,
    );
    expect(run(request([shared], w.friend), held().state, LIVE, unknown).status).toBe(Status.TIME_UNCERTAIN);
    expect(isOwnerSelf(decideGrant(own, w.owner))).toBe(true);
    expect(isOwnerSelf(decideGrant(shared, w.friend))).toBe(false);
  });

  it('token state ids differ by signer for the same cti [TANDEM-USES-4]', () => {
    const cti = new Uint8Array(12).fill(1);
    expect(tokenStateId(w.issuer.publicKey, cti)).not.toEqual(tokenStateId(w.rider.publicKey, cti));
    expect(tokenStateId(w.issuer.publicKey, cti)).toEqual(
      tokenStateId(w.issuer.publicKey, Uint8Array.from(cti)),
    );
  });
});

function decideGrant(t: Uint8Array, holder: PrivateKey) {
  const v = run(request([t], holder), held().state, LIVE, { earliest: 0, latest: 0xffff_ffff });
  if (v.grant === undefined) throw new Error('no grant');
  return v.grant;
}
