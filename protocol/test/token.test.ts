// Delegated access token, SPEC.md §5 ([TANDEM-TOK-*], [TANDEM-KEY-2]).
import { describe, expect, it } from 'vitest';
import { decodeStrict, encode } from '../src/cbor.js';
import type { CborValue } from '../src/cbor.js';
import { signSign1 } from '../src/cose.js';
import { generateKeyPair } from '../src/keys.js';
import {
  coseKeyOf,
  decodeToken,
  encodeClaims,
  mintToken,
  publicKeyFromCoseKey,
  CLAIM,
} from '../src/token.js';
import { LOCK, NOW, claims, issued, world } from './fixtures.js';
import { outcome as refusal } from './outcome.js';

describe('token', () => {
  const w = world();

  it('round-trips every claim [TANDEM-TOK-1]', () => {
    const c = claims(w, { maxUses: 5, minRevocation: 42 });
    const t = decodeToken(mintToken(c, w.issuer, w.issuerKid));
    expect(t.claims).toMatchObject({
      iss: 'tandem',
      sub: 'adam',
      aud: LOCK,
      exp: c.exp,
      nbf: c.nbf,
      iat: c.iat,
      scope: ['unlock', 'status'],
      rider: 'bianca',
      schedule: c.schedule,
      maxUses: 5,
      minRevocation: 42,
    });
    expect(Buffer.from(t.claims.cti)).toEqual(Buffer.from(c.cti));
    expect(Buffer.from(t.claims.cnf.raw)).toEqual(Buffer.from(w.rider.publicKey.raw));
    expect(t.sign1.alg).toBe('EdDSA');
    expect(Buffer.from(t.sign1.kid!)).toEqual(Buffer.from(w.issuerKid));
  });

  it('a typical token (P-256 cnf, rider, schedule) stays under 240 bytes [TANDEM-TOK-2]', () => {
    expect(issued(w).length).toBeLessThan(240);
  });

  it('the cnf key is a compressed EC2 COSE_Key with y as a sign bit [TANDEM-KEY-2]', () => {
    const k = coseKeyOf(w.rider.publicKey);
    expect(k.get(1)).toBe(2);
    expect(k.get(-1)).toBe(1);
    expect((k.get(-2) as Uint8Array).length).toBe(32);
    expect(typeof k.get(-3)).toBe('boolean');
    expect(Buffer.from(publicKeyFromCoseKey(k).raw)).toEqual(Buffer.from(w.rider.publicKey.raw));
    const ed = generateKeyPair('EdDSA');
    expect(publicKeyFromCoseKey(coseKeyOf(ed.publicKey)).alg).toBe('EdDSA');
  });

  it('accepts the tagged forms 18 and 61(18) (RFC 8392 §6)', () => {
    const payload = encodeClaims(claims(w));
    const tagged = signSign1(payload, w.issuer, { kid: w.issuerKid, tags: [61, 18] });
    expect(decodeToken(tagged).claims.aud).toBe(LOCK);
    const bad = signSign1(payload, w.issuer, { kid: w.issuerKid, tags: [18, 61] });
    expect(refusal(() => decodeToken(bad))).toMatch(/ERR_COSE_INVALID: COSE_Sign1 tag must be 18/);
  });

  const malformed: [string, (m: Map<number, CborValue>) => void, RegExp][] = [
    ['missing aud', (m) => m.delete(CLAIM.aud), /"aud" \(3\) claim must be a text string/],
    ['exp as text', (m) => m.set(CLAIM.exp, 'tomorrow'), /"exp" \(4\) claim must be an unsigned integer/],
    ['negative nbf', (m) => m.set(CLAIM.nbf, -5), /"nbf" \(5\) claim must be an unsigned integer/],
    ['nbf after exp', (m) => m.set(CLAIM.nbf, NOW + 30 * 86_400), /"nbf" \(5\) must be before "exp" \(4\)/],
    // Issue 7 finding 7: iat after exp, even the largest uint32, was accepted.
    [
      'iat after exp',
      (m) => m.set(CLAIM.iat, NOW + 30 * 86_400),
      /"iat" \(6\) must not be after "exp" \(4\)/,
    ],
    ['iat at 2^32-1', (m) => m.set(CLAIM.iat, 0xffffffff), /"iat" \(6\) must not be after "exp" \(4\)/],
    [
      'short cti',
      (m) => m.set(CLAIM.cti, new Uint8Array(4)),
      /"cti" \(7\) claim must be a byte string of 8 to 16/,
    ],
    [
      'cnf without COSE_Key',
      (m) => m.set(CLAIM.cnf, new Map([[3, new Uint8Array(8)]])),
      /"cnf" \(8\) claim must be a map/,
    ],
    [
      'cnf with an X25519 key',
      (m) =>
        m.set(
          CLAIM.cnf,
          new Map([
            [
              1,
              new Map<number, CborValue>([
                [1, 1],
                [-1, 4],
                [-2, new Uint8Array(32)],
              ]),
            ],
          ]),
        ),
      /ERR_KEY_INVALID: .*"kty"\/"crv"/,
    ],
    [
      'cnf point not on the curve',
      (m) =>
        m.set(
          CLAIM.cnf,
          new Map([
            [
              1,
              new Map<number, CborValue>([
                [1, 2],
                [-1, 1],
                [-2, new Uint8Array(32).fill(0xff)],
                [-3, true],
              ]),
            ],
          ]),
        ),
      /ERR_KEY_INVALID/,
    ],
    ['scope as array', (m) => m.set(CLAIM.scope, ['unlock']), /"scope" \(9\) claim must be a text string/],
    ['scope with double space', (m) => m.set(CLAIM.scope, 'unlock  status'), /invalid scope token/],
    ['unknown claim', (m) => m.set(10, 1), /unknown claim 10/],
    ['tandem claim not a map', (m) => m.set(CLAIM.tandem, 1), /"tandem" \(-65537\) claim must be a map/],
    [
      'zero max uses',
      (m) => m.set(CLAIM.tandem, new Map([[3, 0]])),
      /"tandem.maxUses" \(-65537\/3\) claim must be at least 1/,
    ],
    [
      'schedule window reversed',
      (m) => m.set(CLAIM.tandem, new Map([[2, [[1, 600, 300]]]])),
      /window 0 needs 0 <= start < end <= 1440/,
    ],
  ];
  for (const [name, mutate, expected] of malformed) {
    it(`refuses a token with ${name} [TANDEM-TOK-3]`, () => {
      const m = decodeStrict(encodeClaims(claims(w))) as Map<number, CborValue>;
      mutate(m);
      const bytes = signSign1(encode(m), w.issuer, { kid: w.issuerKid });
      expect(refusal(() => decodeToken(bytes))).toMatch(expected);
    });
  }

  it('refuses a token with a content type, so that another signed payload cannot pass as one [TANDEM-TOK-1]', () => {
    const payload = encodeClaims(claims(w));
    const typed = signSign1(payload, w.issuer, { kid: w.issuerKid, protectedHeader: new Map([[3, 65100]]) });
    expect(refusal(() => decodeToken(typed))).toMatch(
      /ERR_COSE_INVALID: a token carries no COSE "content type"/,
    );
  });

  it('accepts iat equal to exp, the last instant the rule allows [TANDEM-TOK-3]', () => {
    const c = claims(w);
    expect(decodeToken(mintToken({ ...c, iat: c.exp }, w.issuer, w.issuerKid)).claims.iat).toBe(c.exp);
  });

  it('mintToken refuses to issue claims a lock would refuse', () => {
    expect(refusal(() => mintToken(claims(w, { scope: [''] }), w.issuer))).toMatch(/ERR_CLAIM_INVALID/);
  });
});
