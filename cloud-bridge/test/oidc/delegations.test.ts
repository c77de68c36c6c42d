/** mintDelegations (SPEC.md §5.9): pure, clock and keys passed in. */
import { describe, expect, it } from 'vitest';
import { verifyChain } from '../../../protocol/src/chain.js';
import { generateKeyPair } from '../../../protocol/src/keys.js';
import { decodeToken } from '../../../protocol/src/token.js';
import type { IssuerKey } from '../../src/oidc/delegations.js';
import { mintDelegations, shareCti } from '../../src/oidc/delegations.js';
import { isOidcError } from '../../src/oidc/errors.js';
import type { Share } from '../../src/oidc/store.js';

const NOW = 1_796_637_600; // Monday 7 December 2026, 10:00 UTC
const issuer: IssuerKey = { id: 'tandem', kid: new Uint8Array([1]), key: generateKeyPair('EdDSA') };
const phone = generateKeyPair('ES256').publicKey;

function share(over: Partial<Share> = {}): Share {
  return {
    id: 's1',
    owner: 'adam',
    lock: 'lock-1',
    rider: 'bianca',
    scope: ['unlock', 'status'],
    notBefore: NOW - 3600,
    notAfter: NOW + 3600,
    ...over,
  };
}

function mint(shares: Share[], now = NOW) {
  return mintDelegations({ rider: 'bianca', shares, holder: phone, issuer, now });
}

function claims(token: string) {
  return decodeToken(Buffer.from(token, 'base64url')).claims;
}

describe('mintDelegations', () => {
  it('[TANDEM-DLG-2] groups by owner, one entry per lock, ordered by lock id', () => {
    const c = mint([
      share({ id: 'a', lock: 'lock-b' }),
      share({ id: 'b', lock: 'lock-a' }),
      share({ id: 'c', owner: 'dora', lock: 'lock-z' }),
    ]);
    expect(Object.keys(c).sort()).toEqual(['adam', 'dora']);
    expect(c.adam!.map((e) => e.lock)).toEqual(['lock-a', 'lock-b']);
    expect(c.dora!.map((e) => e.share)).toEqual(['c']);
  });

  it('[TANDEM-DLG-3] of two live shares for one lock, the one ending last wins', () => {
    const c = mint([
      share({ id: 'short', notAfter: NOW + 600 }),
      share({ id: 'long', notAfter: NOW + 7200 }),
    ]);
    expect(c.adam).toHaveLength(1);
    expect(c.adam![0]!.share).toBe('long');
  });

  it("[TANDEM-DLG-3] another rider's share is never used, even if the source hands it over", () => {
    expect(mint([share({ rider: 'carol' })])).toEqual({});
  });

  it.each([
    ['revoked', { revoked: true }],
    ['ended', { notAfter: NOW }],
    ['not started', { notBefore: NOW + 1 }],
    ['used up', { maxUses: 3, usesReported: 3 }],
    ['malformed lock id', { lock: 'Lock 1' }],
    ['manage scope', { scope: ['manage'] }],
    ['delegate without re-sharing', { scope: ['unlock', 'delegate'] }],
  ] as const)('[TANDEM-DLG-3] a %s share yields nothing', (_name, over) => {
    expect(mint([share(over as Partial<Share>)])).toEqual({});
  });

  it('[TANDEM-DLG-4] validity: nbf 60 s back, exp 300 s ahead, both within the share', () => {
    const t = claims(mint([share()]).adam![0]!.access_token);
    expect([t.iat, t.nbf, t.exp]).toEqual([NOW, NOW - 60, NOW + 300]);
    const near = mint([share({ notBefore: NOW - 10, notAfter: NOW + 100 })]).adam![0]!;
    const tn = claims(near.access_token);
    expect([tn.nbf, tn.exp, near.expires_in]).toEqual([NOW - 10, NOW + 100, 100]);
  });

  it('[TANDEM-DLG-4] schedule, uses, re-sharing and minimum revocation reach the token', () => {
    const e = mint([
      share({
        scope: ['delegate', 'unlock', 'lock'],
        mayReshare: true,
        schedule: [{ days: 96, start: 600, end: 720 }],
        maxUses: 5,
        usesReported: 2,
        minRevocation: 7,
      }),
    ]).adam![0]!;
    expect(e.scope).toEqual(['unlock', 'lock', 'delegate']);
    const t = claims(e.access_token);
    expect(t.schedule).toEqual([{ days: 96, start: 600, end: 720 }]);
    expect(t.maxUses).toBe(5);
    expect(t.minRevocation).toBe(7);
    expect(t.rider).toBe('bianca');
  });

  it("[TANDEM-DLG-4] cti is the share's and stable; the lock verifies the token with the issuer anchor", () => {
    const a = mint([share()]).adam![0]!.access_token;
    const b = mint([share()], NOW + 1).adam![0]!.access_token;
    expect(a).not.toBe(b);
    expect(Buffer.from(claims(a).cti).equals(Buffer.from(claims(b).cti))).toBe(true);
    expect(Buffer.from(claims(a).cti).equals(Buffer.from(shareCti('s1')))).toBe(true);
    expect(Buffer.from(shareCti('s1')).equals(Buffer.from(shareCti('s2')))).toBe(false);
    const g = verifyChain(
      [Buffer.from(a, 'base64url')],
      (kid) =>
        kid[0] === 1 ? { kid, key: issuer.key.publicKey, role: 'issuer', name: 'tandem' } : undefined,
      'lock-1',
    );
    expect(Buffer.from(g.leaf.cnf.raw).equals(Buffer.from(phone.raw))).toBe(true);
  });

  it('refuses a holder key that is not P-256 and an issuer key that is not Ed25519', () => {
    const ed = generateKeyPair('EdDSA');
    expect(() =>
      mintDelegations({ rider: 'bianca', shares: [share()], holder: ed.publicKey, issuer, now: NOW }),
    ).toThrow(expect.objectContaining({ code: 'ERR_OIDC_PHONE_KEY_INVALID' }));
    try {
      mintDelegations({
        rider: 'bianca',
        shares: [share()],
        holder: phone,
        issuer: { ...issuer, key: generateKeyPair('ES256') },
        now: NOW,
      });
      expect.unreachable();
    } catch (e) {
      expect(isOidcError(e, 'ERR_OIDC_CONFIG')).toBe(true);
      expect((e as Error).message).toMatch(/Ed25519/);
    }
  });
});
