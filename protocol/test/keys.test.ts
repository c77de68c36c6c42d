// Keys and signatures, SPEC.md §3 ([TANDEM-KEY-*]).
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { CborValue } from '../src/cbor.js';
import { decodeStrict, encode } from '../src/cbor.js';
import { signSign1 } from '../src/cose.js';
import {
  P256_RAW_IMPORT,
  generateKeyPair,
  p256FromSec1,
  publicKeyFromJwk,
  publicKeyFromRaw,
  signBytes,
  verifyBytes,
} from '../src/keys.js';
import { Command, createRequest, decodeRequest, verifyPop } from '../src/pop.js';
import { CLAIM, decodeToken, encodeClaims, mintToken, publicKeyFromCoseKey } from '../src/token.js';
import { verifyChain } from '../src/chain.js';
import { LOCK, claims, world } from './fixtures.js';
import { outcome } from './outcome.js';

const hex = (h: string) => Buffer.from(h, 'hex');
const ED25519_SPKI = hex('302a300506032b6570032100');
const IDENTITY = '01' + '00'.repeat(31);
/** (R = identity, S = 0): with the identity as public key, R = S·B − k·A holds for every message. */
const IDENTITY_SIGNATURE = hex(IDENTITY + '00'.repeat(32));

// The eight points of small order on Ed25519 (E[8]) in canonical encoding, and non-canonical encodings of
// the same points (y >= p, or x = 0 with the sign bit set; RFC 8032 §5.1.3). Derived from the curve
// equation and checked against libsodium's blocklist; the vendored Wycheproof ed25519_test.json has no
// group with such a key (its public keys are all valid), so they are listed here.
const SMALL_ORDER: [string, string][] = [
  ['identity (order 1)', IDENTITY],
  ['(0, -1) (order 2)', 'ec' + 'ff'.repeat(30) + '7f'],
  ['(sqrt(-1), 0) (order 4)', '00'.repeat(32)],
  ['(-sqrt(-1), 0) (order 4)', '00'.repeat(31) + '80'],
  ['order 8, y8', '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05'],
  ['order 8, y8 negative x', '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85'],
  ['order 8, -y8', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'],
  ['order 8, -y8 negative x', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa'],
];
const NON_CANONICAL_SMALL: [string, string][] = [
  ['identity with the sign bit (x = -0)', '01' + '00'.repeat(30) + '80'],
  ['(0, -1) with the sign bit (x = -0)', 'ec' + 'ff'.repeat(31)],
  ['y = p (= 0)', 'ed' + 'ff'.repeat(30) + '7f'],
  ['y = p with the sign bit', 'ed' + 'ff'.repeat(31)],
  ['y = p + 1 (= 1, the identity)', 'ee' + 'ff'.repeat(30) + '7f'],
  ['y = p + 1 with the sign bit', 'ee' + 'ff'.repeat(31)],
];

describe('Ed25519 public keys [TANDEM-KEY-5]', () => {
  it('the attack is real: Node accepts the identity key, and (R = identity, S = 0) verifies any message', () => {
    // Why the check exists: the platform does not refuse such a key itself.
    const key = createPublicKey({
      key: Buffer.concat([ED25519_SPKI, hex(IDENTITY)]),
      format: 'der',
      type: 'spki',
    });
    expect(nodeVerify(null, Buffer.from('any challenge at all'), key, IDENTITY_SIGNATURE)).toBe(true);
  });

  for (const [name, h] of [...SMALL_ORDER, ...NON_CANONICAL_SMALL]) {
    it(`refuses the small-order key ${name}`, () => {
      expect(outcome(() => publicKeyFromRaw('EdDSA', hex(h)))).toMatch(
        /^ERR_KEY_INVALID: Ed25519 public key is (a point of small order|not canonical)/,
      );
    });
  }

  it('refuses every non-canonical y >= p, with and without the sign bit', () => {
    for (let low = 0xed; low <= 0xff; low++) {
      for (const top of ['7f', 'ff']) {
        const h = low.toString(16) + 'ff'.repeat(30) + top;
        expect(
          outcome(() => publicKeyFromRaw('EdDSA', hex(h))),
          h,
        ).toMatch(/^ERR_KEY_INVALID: /);
      }
    }
  });

  it('accepts real keys: the checks do not refuse honest ones', () => {
    expect(outcome(() => publicKeyFromRaw('EdDSA', generateKeyPair('EdDSA').publicKey.raw))).toBe('accepted');
    // The Wycheproof keys are ordinary keys: all accepted (wycheproof.test.ts verifies with them).
    expect(
      outcome(() =>
        publicKeyFromRaw('EdDSA', hex('7d4d0e7f6153a69b6242b522abbee685fda4420f8834b108c3bdae369ef549fa')),
      ),
    ).toBe('accepted');
    // For an honest key, the identity trick is just a wrong signature.
    expect(verifyBytes(generateKeyPair('EdDSA').publicKey, Buffer.from('x'), IDENTITY_SIGNATURE)).toBe(false);
  });

  it('refuses a small-order key in a COSE_Key and in a JWK, not only as raw bytes', () => {
    const coseKey = new Map<number, CborValue>([
      [1, 1],
      [-1, 6],
      [-2, hex(IDENTITY)],
    ]);
    expect(outcome(() => publicKeyFromCoseKey(coseKey))).toMatch(/^ERR_KEY_INVALID: .*small order/);
    const jwk = { kty: 'OKP', crv: 'Ed25519', x: hex(IDENTITY).toString('base64url') };
    expect(outcome(() => publicKeyFromJwk(jwk))).toMatch(/^ERR_KEY_INVALID/);
  });

  it('a token whose cnf is the identity key, with the (R = identity, S = 0) proof, is refused as ERR_KEY_INVALID while decoding', () => {
    const w = world();
    // Minted by hand: mintToken cannot be given a key that publicKeyFromRaw refuses.
    const m = decodeStrict(encodeClaims(claims(w))) as Map<number, CborValue>;
    m.set(
      CLAIM.cnf,
      new Map([
        [
          1,
          new Map<number, CborValue>([
            [1, 1],
            [-1, 6],
            [-2, hex(IDENTITY)],
          ]),
        ],
      ]),
    );
    const token = signSign1(encode(m), w.issuer, { kid: w.issuerKid });
    expect(outcome(() => decodeToken(token))).toMatch(/^ERR_KEY_INVALID: .*small order/);
    // The chain is refused at step 1 (decode), before any signature, so no proof of possession is ever
    // checked against the identity key.
    expect(outcome(() => verifyChain([token], w.lookup, LOCK))).toMatch(/^ERR_KEY_INVALID: .*small order/);
  });
});

// The order of the P-256 group (SEC 2 §2.4.2).
const P256_N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
/** The other valid ES256 signature of the same message: (r, n - s). */
function twin(signature: Uint8Array): Uint8Array {
  const s = BigInt('0x' + Buffer.from(signature.subarray(32)).toString('hex'));
  const out = Uint8Array.from(signature);
  out.set(Buffer.from((P256_N - s).toString(16).padStart(64, '0'), 'hex'), 32);
  return out;
}

describe('ES256 malleability is harmless, not refused [TANDEM-KEY-6]', () => {
  const w = world();

  it('the platform accepts both (r, s) and (r, n - s): the SPEC rule is a decision, not an accident', () => {
    const data = Buffer.from('Tandem');
    const sig = signBytes(w.rider, data);
    const other = twin(sig);
    expect(Buffer.from(other).equals(Buffer.from(sig))).toBe(false);
    expect(verifyBytes(w.rider.publicKey, data, sig)).toBe(true);
    expect(verifyBytes(w.rider.publicKey, data, other)).toBe(true);
  });

  it("a twin of a link's signature changes the chain hash, so the holder's proof for the real chain fails on it [TANDEM-POP-3]", () => {
    const root = mintToken(claims(w, { scope: ['unlock', 'delegate'], maxUses: 3 }), w.issuer, w.issuerKid);
    const link = mintToken(
      claims(w, { iss: 'bianca', cnf: w.friend.publicKey, scope: ['unlock'], maxUses: 1 }),
      w.rider,
    );
    const msg = decodeToken(link).sign1;
    const twinLink = encode([msg.protectedBytes, new Map(), msg.payload, twin(msg.signature)]);
    const real = verifyChain([root, link], w.lookup, LOCK);
    const forged = verifyChain([root, twinLink], w.lookup, LOCK);
    // The same grant, naming the same token ids (use counts and revocation key on them, not on bytes)...
    expect(forged.ctis.map((c) => Buffer.from(c).toString('hex'))).toEqual(
      real.ctis.map((c) => Buffer.from(c).toString('hex')),
    );
    // ...under another chain hash, which the holder's proof of possession binds.
    expect(Buffer.from(forged.chainHash).equals(Buffer.from(real.chainHash))).toBe(false);
    const nonce = new Uint8Array(16).fill(7);
    const request = decodeRequest(
      createRequest({
        lockId: LOCK,
        nonce,
        command: Command.UNLOCK,
        chain: [root, link],
        chainHash: real.chainHash,
        holderKey: w.friend,
      }),
    );
    expect(outcome(() => verifyPop(request, LOCK, real.leaf.cnf, real.chainHash))).toBe('accepted');
    expect(outcome(() => verifyPop(request, LOCK, forged.leaf.cnf, forged.chainHash))).toBe(
      'ERR_POP_INVALID: proof-of-possession signature verification failed',
    );
  });

  it('a twin proof of possession verifies too: what stops its replay is the spent nonce, not the signature bytes [TANDEM-POP-4]', () => {
    const token = mintToken(claims(w), w.issuer, w.issuerKid);
    const grant = verifyChain([token], w.lookup, LOCK);
    const nonce = new Uint8Array(16).fill(9);
    const request = decodeRequest(
      createRequest({
        lockId: LOCK,
        nonce,
        command: Command.UNLOCK,
        chain: [token],
        chainHash: grant.chainHash,
        holderKey: w.rider,
      }),
    );
    const twinRequest = { ...request, signature: twin(request.signature) };
    expect(outcome(() => verifyPop(twinRequest, LOCK, grant.leaf.cnf, grant.chainHash))).toBe('accepted');
  });
});

describe('P-256 public keys [TANDEM-KEY-2]', () => {
  it('a compressed x with no point on the curve is refused; one with a point round-trips', () => {
    let refused = 0;
    let accepted = 0;
    for (let i = 1; i <= 24; i++) {
      const raw = new Uint8Array(33);
      raw[0] = 2;
      raw[32] = i;
      const got = outcome(() => publicKeyFromRaw('ES256', raw));
      if (got === 'accepted') {
        const full = publicKeyFromRaw('ES256', raw).key.export({ format: 'der', type: 'spki' });
        // The uncompressed point (the last 65 bytes of the SPKI) compresses back to the same 33 bytes.
        expect(publicKeyFromRaw('ES256', full.subarray(full.length - 65)).raw).toEqual(raw);
        accepted++;
      } else {
        expect(got).toBe(
          'ERR_KEY_INVALID: P-256 public key must be a valid 33-byte compressed or 65-byte uncompressed point',
        );
        refused++;
      }
    }
    // About half of all x have a point: both branches ran.
    expect(refused).toBeGreaterThan(0);
    expect(accepted).toBeGreaterThan(0);
  });

  it('an uncompressed point off the curve is refused', () => {
    const raw = Buffer.from(generateKeyPair('ES256').publicKey.key.export({ format: 'der', type: 'spki' }));
    const point = Uint8Array.from(raw.subarray(raw.length - 65));
    point[64]! ^= 1;
    expect(outcome(() => publicKeyFromRaw('ES256', point))).toMatch(/^ERR_KEY_INVALID/);
  });

  // The prime p of P-256 (SEC 2 §2.4.2): x = 5 has a point on the curve, so p + 5 names it non-canonically.
  const P256_P = BigInt('0xffffffff00000001000000000000000000000000ffffffffffffffffffffffff');
  const be32 = (v: bigint) => Buffer.from(v.toString(16).padStart(64, '0'), 'hex');

  it('a coordinate not below p is refused, even where it is a point modulo p (non-canonical encoding)', () => {
    const five = Buffer.concat([Buffer.of(2), be32(5n)]);
    expect(outcome(() => publicKeyFromRaw('ES256', five))).toBe('accepted');
    const aliased = Buffer.concat([Buffer.of(2), be32(P256_P + 5n)]);
    expect(outcome(() => publicKeyFromRaw('ES256', aliased))).toBe(
      'ERR_KEY_INVALID: P-256 public key must be a valid 33-byte compressed or 65-byte uncompressed point',
    );
    const full = Buffer.from(publicKeyFromRaw('ES256', five).key.export({ format: 'jwk' }).y!, 'base64url');
    const y = BigInt('0x' + full.toString('hex'));
    // (5, y + p) and (5 + p, y): the same point, not canonically encoded.
    for (const point of [
      Buffer.concat([Buffer.of(4), be32(5n), be32(y + P256_P)]),
      Buffer.concat([Buffer.of(4), be32(P256_P + 5n), full]),
    ]) {
      expect(outcome(() => publicKeyFromRaw('ES256', point))).toMatch(/^ERR_KEY_INVALID/);
    }
  });

  it('the identity and malformed prefixes are refused: no 33- or 65-byte encoding names the point at infinity', () => {
    for (const h of [
      '00',
      '04' + '00'.repeat(64),
      '02' + 'ff'.repeat(32),
      '05' + '00'.repeat(32),
      '04' + '00'.repeat(32),
    ]) {
      expect(
        outcome(() => publicKeyFromRaw('ES256', hex(h))),
        h,
      ).toMatch(/^ERR_KEY_INVALID/);
    }
  });

  it('[TANDEM-KEY-4] on this Node the point is imported by the native raw import, and it agrees with the JWK route', () => {
    // Node 20 has it; a Node without it falls back to the JWK route, which this test would then show.
    expect(P256_RAW_IMPORT).toBe(true);
    const data = Buffer.from('Tandem-PoP-v1');
    for (let i = 0; i < 16; i++) {
      const k = generateKeyPair('ES256');
      const full = k.publicKey.key.export({ format: 'jwk' });
      const uncompressed = Buffer.concat([
        Buffer.of(4),
        Buffer.from(full.x!, 'base64url'),
        Buffer.from(full.y!, 'base64url'),
      ]);
      const sig = signBytes(k, data);
      for (const point of [k.publicKey.raw, uncompressed]) {
        const native = p256FromSec1(point);
        const viaJwk = p256FromSec1(point, 'jwk');
        expect(native.equals(viaJwk)).toBe(true);
        expect(native.equals(k.publicKey.key)).toBe(true);
        expect(verifyBytes({ alg: 'ES256', raw: k.publicKey.raw, key: native }, data, sig)).toBe(true);
      }
    }
    // Neither route reads the point at infinity (00), which OpenSSL itself would.
    for (const route of ['native', 'jwk'] as const) {
      expect(() => p256FromSec1(hex('00'), route)).toThrow(/33 bytes/);
    }
    // Both routes refuse an x with no point (x = 1) and a point off the curve.
    const offCurve = hex('02' + '00'.repeat(31) + '01');
    expect(() => p256FromSec1(offCurve)).toThrow();
    expect(() => p256FromSec1(offCurve, 'jwk')).toThrow();
  });
});
