// Claim receipts, SPEC.md §12 (TANDEM-CLAIM-1..3): the lock's signed word that its console registered an owner
// key, verified by the cloud with the lock's device key.
import { describe, expect, it } from 'vitest';
import type { CborValue } from '../src/cbor.js';
import { encode } from '../src/cbor.js';
import { HEADER, signSign1 } from '../src/cose.js';
import { generateKeyPair } from '../src/keys.js';
import type { PrivateKey } from '../src/keys.js';
import { CONTENT_FORMAT } from '../src/lib/signed-payload.js';
import { encodeAlert } from '../src/mqtt.js';
import {
  MAX_CLAIM_RECEIPT_BYTES,
  decodeClaimReceipt,
  encodeClaimReceipt,
  verifyClaimReceipt,
} from '../src/claim-receipt.js';
import type { ClaimReceipt } from '../src/claim-receipt.js';
import { coseKeyOf } from '../src/token.js';
import { outcome } from './outcome.js';
import { fuzz } from './fuzz.js';

const device = generateKeyPair('EdDSA');
const otherDevice = generateKeyPair('EdDSA');
const ownerKey = generateKeyPair('ES256').publicKey;
const RECEIPT: ClaimReceipt = {
  lockId: 'lock-7',
  owner: 'adam',
  ownerKey,
  ownerKid: Uint8Array.of(0x0a),
  claimedAt: 1_800_000_000,
};

function body(over: [number, CborValue | undefined][] = []): Map<number, CborValue> {
  const m = new Map<number, CborValue>([
    [1, 'lock-7'],
    [2, 'adam'],
    [3, coseKeyOf(ownerKey)],
    [4, Uint8Array.of(0x0a)],
    [5, 1_800_000_000],
  ]);
  for (const [k, v] of over) {
    if (v === undefined) m.delete(k);
    else m.set(k, v);
  }
  return m;
}

function signRaw(
  payload: Map<number, CborValue>,
  key: PrivateKey = device,
  contentType: number = CONTENT_FORMAT.claimReceipt,
) {
  return signSign1(encode(payload), key, {
    protectedHeader: new Map<number, CborValue>([[HEADER.contentType, contentType]]),
  });
}

const verify = (bytes: Uint8Array, lockId?: string) =>
  outcome(() => verifyClaimReceipt(bytes, device.publicKey, lockId));

describe('claim receipt round trip (TANDEM-CLAIM-1)', () => {
  it('a receipt for a P-256 owner key round trips, and verifies with the device key', () => {
    const bytes = encodeClaimReceipt(RECEIPT, device);
    const got = verifyClaimReceipt(bytes, device.publicKey, 'lock-7');
    expect(got.lockId).toBe('lock-7');
    expect(got.owner).toBe('adam');
    expect(Buffer.from(got.ownerKey.raw).equals(Buffer.from(ownerKey.raw))).toBe(true);
    expect(got.ownerKey.alg).toBe('ES256');
    expect([...got.ownerKid]).toEqual([0x0a]);
    expect(got.claimedAt).toBe(1_800_000_000);
    expect(decodeClaimReceipt(bytes).receipt.owner).toBe('adam');
  });

  it('an Ed25519 owner key round trips too', () => {
    const ed = generateKeyPair('EdDSA').publicKey;
    const got = verifyClaimReceipt(
      encodeClaimReceipt({ ...RECEIPT, ownerKey: ed }, device),
      device.publicKey,
    );
    expect(got.ownerKey.alg).toBe('EdDSA');
    expect(Buffer.from(got.ownerKey.raw).equals(Buffer.from(ed.raw))).toBe(true);
  });

  it('signing is deterministic: the lock shows the same bytes again (TANDEM-COSE-7)', () => {
    expect(Buffer.from(encodeClaimReceipt(RECEIPT, device))).toEqual(
      Buffer.from(encodeClaimReceipt(RECEIPT, device)),
    );
  });

  it('the longest fields fit the limit (TANDEM-CLAIM-2)', () => {
    const bytes = encodeClaimReceipt(
      {
        lockId: 'l'.repeat(32),
        owner: 'o'.repeat(64),
        ownerKey,
        ownerKid: new Uint8Array(16),
        claimedAt: 0xffff_ffff,
      },
      device,
    );
    expect(bytes.length).toBeLessThanOrEqual(MAX_CLAIM_RECEIPT_BYTES);
  });
});

describe('claim receipt refusals (TANDEM-CLAIM-1..3)', () => {
  const good = encodeClaimReceipt(RECEIPT, device);

  it('another lock signed it: ERR_SIGNATURE_INVALID, and nothing more is said', () => {
    expect(
      outcome(() => verifyClaimReceipt(encodeClaimReceipt(RECEIPT, otherDevice), device.publicKey)),
    ).toBe('ERR_SIGNATURE_INVALID: signature verification failed');
  });

  it('a flipped bit in the signature fails the signature', () => {
    const bad = Uint8Array.from(good);
    bad[bad.length - 1]! ^= 1;
    expect(verify(bad)).toMatch(/^ERR_SIGNATURE_INVALID/);
  });

  it('a genuine receipt for another lock: ERR_AUDIENCE_MISMATCH', () => {
    expect(verify(good, 'lock-8')).toBe(
      'ERR_AUDIENCE_MISMATCH: claim receipt "lock id" is "lock-7", not "lock-8"',
    );
  });

  it('another signed kind is not a receipt (TANDEM-REV-1)', () => {
    const alert = encodeAlert(
      { lockId: 'lock-7', sequence: 1, time: 1, kind: 'moved', detail: new Map(), epoch: 1 },
      device,
    );
    expect(verify(alert)).toBe(
      'ERR_COSE_INVALID: claim receipt COSE "content type" (3) Header Parameter must be 65110 in the protected header',
    );
  });

  it('more than 320 bytes: ERR_TOO_LARGE before decoding', () => {
    expect(verify(new Uint8Array(MAX_CLAIM_RECEIPT_BYTES + 1))).toMatch(/^ERR_TOO_LARGE/);
  });

  const cases: [string, [number, CborValue | undefined][], string][] = [
    ['lock id missing', [[1, undefined]], 'ERR_MESSAGE_INVALID: claim receipt "lock id" (key 1) is missing'],
    [
      'lock id upper case',
      [[1, 'Lock-7']],
      'ERR_MESSAGE_INVALID: claim receipt "lock id" (key 1) must be a lock id matching ^[a-z0-9][a-z0-9-]{0,31}$',
    ],
    [
      'owner with a space',
      [[2, 'adam smith']],
      'ERR_MESSAGE_INVALID: claim receipt "owner" (key 2) must match ^[A-Za-z0-9._@-]{1,64}$',
    ],
    [
      'owner of 65 characters',
      [[2, 'a'.repeat(65)]],
      'ERR_MESSAGE_INVALID: claim receipt "owner" (key 2) must be a text string of 1 to 64 characters',
    ],
    [
      'owner key as bytes',
      [[3, new Uint8Array(33)]],
      'ERR_MESSAGE_INVALID: claim receipt "owner key" (key 3) must be a COSE_Key map',
    ],
    [
      'owner key off the curve',
      [
        [
          3,
          new Map<number, CborValue>([
            [1, 2],
            [-1, 1],
            [-2, new Uint8Array(32).fill(0xff)],
            [-3, true],
          ]),
        ],
      ],
      'ERR_KEY_INVALID',
    ],
    [
      'owner kid empty',
      [[4, new Uint8Array(0)]],
      'ERR_MESSAGE_INVALID: claim receipt "owner kid" (key 4) must be a byte string of 1 to 16 bytes',
    ],
    [
      'claimed at negative',
      [[5, -1]],
      'ERR_MESSAGE_INVALID: claim receipt "claimed at" (key 5) must be an unsigned integer below 2^32',
    ],
    ['an unknown key 6', [[6, 0]], 'ERR_MESSAGE_INVALID: claim receipt has unknown key 6'],
  ];
  for (const [name, over, expected] of cases) {
    it(`${name}: ${expected.split(':')[0]}`, () => {
      const got = verify(signRaw(body(over)));
      if (expected.includes(':')) expect(got).toBe(expected);
      else expect(got.startsWith(`${expected}:`)).toBe(true);
    });
  }

  it('the encoder refuses to sign what the decoder would refuse', () => {
    expect(outcome(() => encodeClaimReceipt({ ...RECEIPT, owner: '' }, device))).toMatch(
      /^ERR_MESSAGE_INVALID: claim receipt "owner" \(key 2\)/,
    );
  });

  const seeds = [
    good,
    encodeClaimReceipt({ ...RECEIPT, ownerKey: generateKeyPair('EdDSA').publicKey }, device),
  ];
  fuzz('decodeClaimReceipt', (b) => decodeClaimReceipt(b), seeds, 11);
  fuzz('verifyClaimReceipt', (b) => verifyClaimReceipt(b, device.publicKey, 'lock-7'), seeds, 12);
});
