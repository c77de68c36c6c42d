// Delegation chains, time, schedule and scope checks, SPEC.md §5.5-§5.7 ([TANDEM-CHAIN-*]).
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  MAX_CHAIN_LENGTH,
  checkGrant,
  checkSchedule,
  checkScope,
  checkTime,
  verifyChain,
  verifyGrant,
} from '../src/chain.js';
import { Command } from '../src/pop.js';
import type { MintClaims } from '../src/token.js';
import { mintToken } from '../src/token.js';
import { LOCK, NOW, claims, issued, world } from './fixtures.js';
import { outcome as refusal } from './outcome.js';

describe('verifyChain', () => {
  const w = world();
  const root = issued(w, { scope: ['unlock', 'status', 'delegate'], maxUses: 10 });
  const link = (over: Partial<MintClaims> = {}) =>
    mintToken(
      claims(w, {
        iss: 'bianca',
        cnf: w.friend.publicKey,
        rider: 'carla',
        scope: ['unlock'],
        maxUses: 2,
        nbf: NOW,
        exp: NOW + 86_400,
        schedule: [{ days: 0b0000001, start: 8 * 60, end: 9 * 60 }],
        ...over,
      }),
      w.rider,
    );

  it('accepts an issuer token and reports what it grants', () => {
    const t = issued(w);
    const g = verifyChain([t], w.lookup, LOCK);
    expect(g.anchor.role).toBe('issuer');
    expect(g.leaf.rider).toBe('bianca');
    expect(g.chainHash).toHaveLength(32);
  });

  it('refuses a delegation link that carries a kid, before any signature [TANDEM-TOK-1]', () => {
    const withKid = mintToken(
      claims(w, {
        iss: 'bianca',
        cnf: w.friend.publicKey,
        scope: ['unlock'],
        maxUses: 2,
        nbf: NOW,
        exp: NOW + 86_400,
      }),
      w.rider,
      w.issuerKid,
    );
    expect(refusal(() => verifyChain([root, withKid], w.lookup, LOCK))).toBe(
      'ERR_COSE_INVALID: link 1 carries a "kid" (Key ID) Header Parameter; delegation links carry none (TANDEM-TOK-1)',
    );
    // The same link without the kid is a good one: the kid alone is the fault.
    const without = mintToken(
      claims(w, {
        iss: 'bianca',
        cnf: w.friend.publicKey,
        scope: ['unlock'],
        maxUses: 2,
        nbf: NOW,
        exp: NOW + 86_400,
      }),
      w.rider,
    );
    expect(refusal(() => verifyChain([root, without], w.lookup, LOCK))).toBe('accepted');
  });

  it('accepts an owner-signed token (offline sharing) [TANDEM-CHAIN-4]', () => {
    const t = mintToken(claims(w, { iss: 'adam' }), w.owner, w.ownerKid);
    expect(verifyChain([t], w.lookup, LOCK).anchor.role).toBe('owner');
  });

  it('refuses an owner-signed token for another owner [TANDEM-CHAIN-4]', () => {
    const t = mintToken(claims(w, { iss: 'adam', sub: 'eve' }), w.owner, w.ownerKid);
    expect(refusal(() => verifyChain([t], w.lookup, LOCK))).toMatch(/ERR_CLAIM_INVALID: owner-signed token/);
  });

  it('accepts a narrower delegation and narrows the grant [TANDEM-CHAIN-3]', () => {
    const g = verifyChain([root, link()], w.lookup, LOCK);
    expect(g.leaf.rider).toBe('carla');
    expect(g.nbf).toBe(NOW);
    expect(g.exp).toBe(NOW + 86_400);
    expect(g.ctis).toHaveLength(2);
  });

  const widening: [string, Partial<MintClaims>, RegExp][] = [
    ['a scope the parent lacks', { scope: ['unlock', 'manage'] }, /widens its parent with "manage"/],
    ['a later exp', { exp: NOW + 30 * 86_400 }, /"exp" \(4\) is later/],
    ['an earlier nbf', { nbf: NOW - 86_400 }, /"nbf" \(5\) is earlier/],
    ['more uses', { maxUses: 11 }, /"tandem.maxUses" must be at most its parent's 10/],
    ['unlimited uses under a limited parent', { maxUses: undefined }, /"tandem.maxUses" must be at most/],
    [
      'a schedule outside the parent',
      { schedule: [{ days: 0b1000000, start: 8 * 60, end: 9 * 60 }] },
      /not inside its parent's/,
    ],
    ['no schedule under a scheduled parent', { schedule: undefined }, /not inside its parent's/],
    ['another owner', { sub: 'eve' }, /"sub" \(2\) differs/],
    ['another lock', { aud: 'lock-other' }, /"aud" \(3\) differs/],
  ];
  for (const [name, over, expected] of widening) {
    it(`refuses a link with ${name} [TANDEM-CHAIN-3]`, () => {
      expect(refusal(() => verifyChain([root, link(over)], w.lookup, LOCK))).toMatch(
        new RegExp('ERR_CHAIN_INVALID: .*' + expected.source),
      );
    });
  }

  it('refuses delegation from a parent without "delegate" [TANDEM-CHAIN-3]', () => {
    const plain = issued(w, { scope: ['unlock', 'status'], maxUses: 10 });
    expect(refusal(() => verifyChain([plain, link()], w.lookup, LOCK))).toMatch(
      /parent's "scope" \(9\) lacks "delegate"/,
    );
  });

  it('refuses a link not signed by the parent holder [TANDEM-CHAIN-2]', () => {
    const forged = mintToken(claims(w, { scope: ['unlock'], maxUses: 1 }), w.friend);
    expect(refusal(() => verifyChain([root, forged], w.lookup, LOCK))).toBe(
      'ERR_SIGNATURE_INVALID: signature verification failed',
    );
  });

  it(`refuses a chain longer than ${MAX_CHAIN_LENGTH} [TANDEM-CHAIN-1]`, () => {
    const t = [root, root, root, root];
    expect(refusal(() => verifyChain(t, w.lookup, LOCK))).toMatch(/ERR_CHAIN_TOO_DEEP/);
  });

  it('refuses a repeated cti within a chain', () => {
    const r = issued(w, { scope: ['unlock', 'delegate'], cti: new Uint8Array(8).fill(7) });
    const c = mintToken(claims(w, { scope: ['unlock'], cti: new Uint8Array(8).fill(7) }), w.rider);
    expect(refusal(() => verifyChain([r, c], w.lookup, LOCK))).toMatch(/repeats the "cti"/);
  });

  it('refuses an unknown kid, a missing kid and a wrong audience', () => {
    expect(
      refusal(() => verifyChain([mintToken(claims(w), w.issuer, Uint8Array.of(9))], w.lookup, LOCK)),
    ).toMatch(/ERR_KEY_UNKNOWN/);
    expect(refusal(() => verifyChain([mintToken(claims(w), w.issuer)], w.lookup, LOCK))).toMatch(
      /ERR_KEY_UNKNOWN: root token has no "kid"/,
    );
    expect(refusal(() => verifyChain([issued(w)], w.lookup, 'lock-other'))).toMatch(/ERR_AUDIENCE_MISMATCH/);
  });

  it('refuses a token signed by the owner key under the issuer kid (key bound to its algorithm)', () => {
    const t = mintToken(claims(w), w.owner, w.issuerKid);
    expect(refusal(() => verifyChain([t], w.lookup, LOCK))).toMatch(
      /ERR_ALG_UNSUPPORTED: .*ES256 does not match .*EdDSA/,
    );
  });

  it('a bit flip in any byte of the token fails with a coded error, never acceptance', () => {
    const t = issued(w);
    for (let i = 0; i < t.length; i++) {
      const f = Uint8Array.from(t);
      f[i]! ^= 1;
      expect(refusal(() => verifyChain([f], w.lookup, LOCK))).not.toBe('accepted');
    }
  });

  it('every prefix of a token is refused with a coded error', () => {
    const t = issued(w);
    for (let n = 0; n < t.length; n++)
      expect(refusal(() => verifyChain([t.subarray(0, n)], w.lookup, LOCK))).toMatch(/^ERR_/);
  });
});

describe('checkTime [TANDEM-TIME-CHECK]', () => {
  const g = { nbf: 1000, exp: 2000 };
  const table: [number, number, string][] = [
    [1000, 1000, 'accepted'],
    [1500, 1600, 'accepted'],
    [2000, 2100, 'ERR_TOKEN_EXPIRED'],
    [500, 900, 'ERR_TOKEN_NOT_YET_VALID'],
    [1900, 2100, 'ERR_TIME_UNCERTAIN'],
    [900, 1100, 'ERR_TIME_UNCERTAIN'],
    [1999, 1999, 'accepted'],
  ];
  for (const [earliest, latest, expected] of table) {
    it(`[${earliest}, ${latest}] -> ${expected}`, () => {
      expect(refusal(() => checkTime(g, { earliest, latest }))).toMatch(new RegExp('^' + expected));
    });
  }
});

describe('checkSchedule [TANDEM-SCHED-2]', () => {
  // Weekdays 07:00-20:00 in Europe/Berlin. NOW = 2026-11-18T... UTC.
  const schedule = [{ days: 0b0011111, start: 7 * 60, end: 20 * 60 }];
  const wed = Date.UTC(2026, 10, 18, 0, 0, 0) / 1000; // Wednesday 2026-11-18 00:00 UTC = 01:00 Berlin
  const at = (h: number, m = 0) => wed + (h - 1) * 3600 + m * 60; // Berlin local time on that Wednesday
  const table: [string, number, number, string][] = [
    ['Wednesday 12:00', at(12), at(12), 'accepted'],
    ['Wednesday 06:59', at(6, 59), at(6, 59), 'ERR_OUTSIDE_SCHEDULE'],
    ['Wednesday 20:00', at(20), at(20), 'ERR_OUTSIDE_SCHEDULE'],
    ['Wednesday 19:50 ± 20 min', at(19, 30), at(20, 10), 'ERR_TIME_UNCERTAIN'],
    ['Saturday 12:00', at(12) + 3 * 86_400, at(12) + 3 * 86_400, 'ERR_OUTSIDE_SCHEDULE'],
    ['two weeks of uncertainty', at(12), at(12) + 14 * 86_400, 'ERR_TIME_UNCERTAIN'],
  ];
  for (const [name, earliest, latest, expected] of table) {
    it(`${name} -> ${expected}`, () => {
      expect(refusal(() => checkSchedule(schedule, { earliest, latest }, 'Europe/Berlin'))).toMatch(
        new RegExp('^' + expected),
      );
    });
  }
  it('an unknown time zone is a coded error', () => {
    expect(refusal(() => checkSchedule(schedule, { earliest: wed, latest: wed }, 'Mars/Olympus'))).toMatch(
      /unknown time zone/,
    );
  });
});

describe('checkScope [TANDEM-TOK-5]', () => {
  it('grants only listed scopes', () => {
    const w = world();
    const leaf = verifyChain([issued(w, { scope: ['status'], cti: randomBytes(8) })], w.lookup, LOCK).leaf;
    expect(refusal(() => checkScope(leaf, 'status'))).toBe('accepted');
    expect(refusal(() => checkScope(leaf, 'unlock'))).toBe(
      'ERR_SCOPE_DENIED: CWT "scope" (9) claim does not grant "unlock"',
    );
  });
});

describe('verifyGrant: one entry point for chain, time, schedule and scope (SPEC.md §5.7 steps 1-6, 9)', () => {
  const w = world();
  // NOW is Wednesday 2026-11-18 around 09:00 in Berlin, inside the fixture's weekday 07:00-20:00 schedule.
  const at = (t: number) => ({ earliest: t, latest: t });
  const options = { anchors: w.lookup, lockId: LOCK, time: at(NOW), timeZone: 'Europe/Berlin' };

  it('accepts a good chain and returns what verifyChain returns', () => {
    const t = issued(w);
    const g = verifyGrant([t], { ...options, command: Command.UNLOCK });
    expect(g.leaf.rider).toBe('bianca');
    expect(Buffer.from(g.chainHash).equals(Buffer.from(verifyChain([t], w.lookup, LOCK).chainHash))).toBe(
      true,
    );
  });

  // Each row breaks the named step and every later one (NOW + 3 and + 10 days are Saturdays, outside the
  // weekday schedule), so only the order decides which refusal comes first.
  const table: [string, () => Uint8Array, Partial<typeof options> & { command?: Command }, string][] = [
    [
      'bad signature beats expiry, schedule and scope (step 2)',
      () => {
        const t = Uint8Array.from(issued(w, { scope: ['status'] }));
        t[t.length - 1]! ^= 1;
        return t;
      },
      { time: at(NOW + 30 * 86_400), command: Command.UNLOCK },
      'ERR_SIGNATURE_INVALID',
    ],
    [
      'wrong lock beats expiry (step 4)',
      () => issued(w),
      { lockId: 'lock-other', time: at(NOW + 30 * 86_400) },
      'ERR_AUDIENCE_MISMATCH',
    ],
    [
      'expiry beats schedule and scope (step 5)',
      () => issued(w, { scope: ['status'] }),
      { time: at(NOW + 10 * 86_400), command: Command.UNLOCK },
      'ERR_TOKEN_EXPIRED',
    ],
    [
      'schedule beats scope (step 6)',
      () => issued(w, { scope: ['status'] }),
      { time: at(NOW + 3 * 86_400), command: Command.UNLOCK },
      'ERR_OUTSIDE_SCHEDULE',
    ],
    [
      'scope last (step 9)',
      () => issued(w, { scope: ['status'] }),
      { command: Command.UNLOCK },
      'ERR_SCOPE_DENIED',
    ],
  ];
  for (const [name, token, over, code] of table) {
    it(`${name} -> ${code}`, () => {
      expect(refusal(() => verifyGrant([token()], { ...options, ...over }))).toMatch(
        new RegExp(`^${code}: `),
      );
    });
  }

  it('without a command the scope is not checked; with one it is', () => {
    const t = issued(w, { scope: ['status'] });
    expect(refusal(() => verifyGrant([t], options))).toBe('accepted');
    expect(refusal(() => verifyGrant([t], { ...options, command: Command.STATUS }))).toBe('accepted');
    expect(refusal(() => verifyGrant([t], { ...options, command: Command.READ_AUDIT }))).toBe(
      'ERR_SCOPE_DENIED: CWT "scope" (9) claim does not grant "manage"',
    );
  });

  it('checkGrant re-runs time, schedule and scope on a cached grant [TANDEM-POP-6]', () => {
    const g = verifyGrant([issued(w)], options);
    expect(refusal(() => checkGrant(g, { time: at(NOW), timeZone: 'Europe/Berlin' }))).toBe('accepted');
    expect(refusal(() => checkGrant(g, { time: at(NOW + 8 * 86_400), timeZone: 'Europe/Berlin' }))).toMatch(
      /^ERR_TOKEN_EXPIRED/,
    );
    expect(
      refusal(() => checkGrant(g, { time: at(NOW), timeZone: 'Europe/Berlin', command: Command.LOCK })),
    ).toMatch(/^ERR_SCOPE_DENIED/);
  });
});
