// Time beacons, SPEC.md §7 (TANDEM-TIME-1..5): signed issuer time, nonce-bound versus unbound beacons, and
// the clock bound a lock derives from each.
import { describe, expect, it } from 'vitest';
import type { CborValue } from '../src/cbor.js';
import { encode } from '../src/cbor.js';
import { HEADER, signSign1 } from '../src/cose.js';
import { generateKeyPair } from '../src/keys.js';
import type { PublicKey } from '../src/keys.js';
import { encodeRevocationUpdate } from '../src/revocation.js';
import { CONTENT_FORMAT } from '../src/lib/signed-payload.js';
import { boundFromBeacon, decodeTimeBeacon, encodeTimeBeacon, verifyTimeBeacon } from '../src/time-beacon.js';
import type { TimeBeacon } from '../src/time-beacon.js';
import { outcome as codeOf } from './outcome.js';
import { fuzz } from './fuzz.js';

const issuer = generateKeyPair('EdDSA');
const other = generateKeyPair('EdDSA');
const KID = Uint8Array.of(1, 2, 3);
const resolve = (kid: Uint8Array): PublicKey | undefined =>
  Buffer.from(kid).equals(Buffer.from(KID)) ? issuer.publicKey : undefined;
const NONCE = Uint8Array.from({ length: 16 }, (_, i) => i * 7 + 1);

function signRaw(body: Map<number, CborValue>): Uint8Array {
  return signSign1(encode(body), issuer, {
    protectedHeader: new Map<number, CborValue>([[HEADER.contentType, CONTENT_FORMAT.timeBeacon]]),
    kid: KID,
  });
}

const BOUND: TimeBeacon = { time: 1_800_000_000, nonce: NONCE, lockId: 'lock-7', accuracy: 2 };
const BROADCAST: TimeBeacon = { time: 1_800_000_000, accuracy: 1 };

describe('time beacon round trip (TANDEM-TIME-1, TANDEM-TIME-3)', () => {
  it('a nonce-bound beacon for one lock round trips', () => {
    const bytes = encodeTimeBeacon(BOUND, issuer, KID);
    expect(decodeTimeBeacon(bytes).beacon).toEqual(BOUND);
    expect(verifyTimeBeacon(bytes, resolve, 'lock-7')).toEqual(BOUND);
  });

  it('a broadcast beacon (no nonce, no lock id) verifies for any lock', () => {
    const bytes = encodeTimeBeacon(BROADCAST, issuer, KID);
    expect(verifyTimeBeacon(bytes, resolve, 'lock-7')).toEqual(BROADCAST);
    expect(verifyTimeBeacon(bytes, resolve, 'other-lock')).toEqual(BROADCAST);
  });

  it('is small: a nonce-bound beacon fits one frame at ATT MTU 185 (178 bytes)', () => {
    expect(encodeTimeBeacon(BOUND, issuer, KID).length).toBeLessThanOrEqual(178);
  });
});

describe('time beacon refusals (TANDEM-TIME-1..3)', () => {
  const bytes = encodeTimeBeacon(BOUND, issuer, KID);

  it('a bit flip in the signature fails with ERR_SIGNATURE_INVALID', () => {
    for (let i = bytes.length - 64; i < bytes.length; i++) {
      const b = Uint8Array.from(bytes);
      b[i]! ^= 1;
      expect(codeOf(() => verifyTimeBeacon(b, resolve, 'lock-7'))).toMatch(/^ERR_SIGNATURE_INVALID/);
    }
  });

  it('a bit flip in the signed nonce fails with ERR_SIGNATURE_INVALID', () => {
    const at = Buffer.from(bytes).indexOf(Buffer.from(NONCE));
    for (let i = at; i < at + 16; i++) {
      const b = Uint8Array.from(bytes);
      b[i]! ^= 1;
      expect(codeOf(() => verifyTimeBeacon(b, resolve, 'lock-7'))).toMatch(/^ERR_SIGNATURE_INVALID/);
    }
  });

  it('a bit flip at any position is refused', () => {
    for (let i = 0; i < bytes.length; i++) {
      const b = Uint8Array.from(bytes);
      b[i]! ^= 1;
      expect(codeOf(() => verifyTimeBeacon(b, resolve, 'lock-7'))).not.toBe('accepted');
    }
  });

  it('a beacon for another lock fails with ERR_AUDIENCE_MISMATCH', () => {
    expect(codeOf(() => verifyTimeBeacon(bytes, resolve, 'lock-8'))).toBe(
      'ERR_AUDIENCE_MISMATCH: time beacon "lock id" is "lock-7", not "lock-8"',
    );
  });

  it('an unknown kid fails with ERR_KEY_UNKNOWN, another signer with ERR_SIGNATURE_INVALID', () => {
    expect(codeOf(() => verifyTimeBeacon(bytes, () => undefined, 'lock-7'))).toMatch(/^ERR_KEY_UNKNOWN/);
    expect(codeOf(() => verifyTimeBeacon(encodeTimeBeacon(BOUND, other, KID), resolve, 'lock-7'))).toMatch(
      /^ERR_SIGNATURE_INVALID/,
    );
  });

  it('a revocation update is not a time beacon (TANDEM-REV-1)', () => {
    const rev = encodeRevocationUpdate(
      { kind: 'full', version: 1, issuedAt: 1, lockId: 'lock-7', added: [], removed: [] },
      issuer,
      KID,
    );
    expect(codeOf(() => verifyTimeBeacon(rev, resolve, 'lock-7'))).toMatch(
      /^ERR_COSE_INVALID: time beacon .*65102/,
    );
  });

  const cases: [string, [number, CborValue | undefined][], RegExp][] = [
    ['time missing', [[1, undefined]], /"time" \(key 1\) is missing/],
    ['time negative', [[1, -1]], /"time" \(key 1\) must be an unsigned integer below 2\^32/],
    ['nonce of 15 bytes', [[2, new Uint8Array(15)]], /"nonce" \(key 2\) must be a byte string of 16 bytes/],
    ['nonce as text', [[2, 'abcdefghijklmnop']], /"nonce" \(key 2\)/],
    ['lock id with a separator', [[3, 'a/b']], /"lock id" \(key 3\) must be a lock id/],
    ['accuracy missing', [[4, undefined]], /"accuracy" \(key 4\) is missing/],
    ['accuracy as boolean', [[4, true]], /"accuracy" \(key 4\) must be an unsigned integer/],
    ['unknown key 5', [[5, 0]], /has unknown key 5/],
  ];
  for (const [name, over, expected] of cases) {
    it(`refuses ${name}`, () => {
      const m = new Map<number, CborValue>([
        [1, 1_800_000_000],
        [4, 2],
      ]);
      for (const [k, v] of over) {
        if (v === undefined) m.delete(k);
        else m.set(k, v);
      }
      expect(codeOf(() => decodeTimeBeacon(signRaw(m)))).toMatch(
        new RegExp(`^ERR_MESSAGE_INVALID: time beacon .*${expected.source}`),
      );
    });
  }
});

describe('boundFromBeacon: nonce-bound versus unbound (TANDEM-TIME-4, TANDEM-TIME-5)', () => {
  const ctx = { lockNonce: NONCE, issuedAtLocalMs: 10_000, nowLocalMs: 12_500, maxRelayDelayMs: 30_000 };

  it('a beacon carrying the lock nonce gives [time - accuracy, time + accuracy + relay delay]', () => {
    expect(boundFromBeacon(BOUND, ctx)).toEqual({
      kind: 'bound',
      earliest: 1_800_000_000 - 2,
      latest: 1_800_000_000 + 2 + 3, // 2.5 s relay delay, rounded up
      floor: 1_800_000_000 - 2,
    });
  });

  it('an unbound beacon only gives a floor', () => {
    expect(boundFromBeacon(BROADCAST, ctx)).toEqual({
      kind: 'floor',
      floor: 1_800_000_000 - 1,
      reason: 'unbound',
    });
  });

  it('a nonce-bound beacon without the lock context is treated as unbound', () => {
    expect(boundFromBeacon(BOUND, { nowLocalMs: 1, maxRelayDelayMs: 1 })).toMatchObject({
      kind: 'floor',
      reason: 'unbound',
    });
  });

  it('a beacon for another challenge (replayed) only gives a floor', () => {
    const replay = { ...BOUND, nonce: new Uint8Array(16) };
    expect(boundFromBeacon(replay, ctx)).toEqual({
      kind: 'floor',
      floor: 1_800_000_000 - 2,
      reason: 'nonce-mismatch',
    });
  });

  it('a beacon relayed slower than maxRelayDelayMs only gives a floor', () => {
    expect(boundFromBeacon(BOUND, { ...ctx, nowLocalMs: 40_001 })).toMatchObject({
      kind: 'floor',
      reason: 'relay-too-slow',
    });
    expect(boundFromBeacon(BOUND, { ...ctx, nowLocalMs: 9_999 })).toMatchObject({
      kind: 'floor',
      reason: 'relay-too-slow',
    });
  });

  it('a NaN anywhere in the lock context falls to the safe side (floor only)', () => {
    expect(boundFromBeacon(BOUND, { ...ctx, maxRelayDelayMs: Number.NaN })).toMatchObject({ kind: 'floor' });
    expect(boundFromBeacon(BOUND, { ...ctx, nowLocalMs: Number.NaN })).toMatchObject({ kind: 'floor' });
  });

  it('a relay delay of exactly maxRelayDelayMs is still bound', () => {
    expect(boundFromBeacon(BOUND, { ...ctx, nowLocalMs: 40_000 })).toMatchObject({
      kind: 'bound',
      latest: 1_800_000_032,
    });
  });

  it('the floor never goes below 0', () => {
    expect(boundFromBeacon({ time: 3, accuracy: 10 }, ctx)).toMatchObject({ floor: 0 });
  });

  it('a replayed old beacon can never move time backwards: the floor it gives is below the held one', () => {
    const held = 1_800_000_000;
    const old = boundFromBeacon({ time: 1_700_000_000, accuracy: 1 }, ctx);
    expect(Math.max(held, old.floor)).toBe(held);
  });
});

describe('fuzz (only ProtocolError escapes)', () => {
  const seeds = [encodeTimeBeacon(BOUND, issuer, KID), encodeTimeBeacon(BROADCAST, issuer, KID)];
  fuzz('decodeTimeBeacon', (b) => decodeTimeBeacon(b), seeds, 7);
  fuzz('verifyTimeBeacon', (b) => verifyTimeBeacon(b, resolve, 'lock-7'), seeds, 8);
});
