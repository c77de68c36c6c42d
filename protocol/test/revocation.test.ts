// Revocation updates and acknowledgements, SPEC.md §6 (TANDEM-REV-1..9). Every refusal is asserted with its
// code and the field its message names; a seeded fuzz loop asserts that only ProtocolError ever escapes.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { CborValue } from '../src/cbor.js';
import { encode } from '../src/cbor.js';
import { HEADER, signSign1 } from '../src/cose.js';
import { ProtocolError } from '../src/errors.js';
import { generateKeyPair } from '../src/keys.js';
import type { PublicKey } from '../src/keys.js';
import { CONTENT_FORMAT } from '../src/lib/signed-payload.js';
import {
  EMPTY_REVOCATION_STATE,
  MAX_REVOCATION_ENTRIES,
  applyRevocationUpdate,
  decodeRevocationAck,
  decodeRevocationUpdate,
  encodeRevocationAck,
  encodeRevocationUpdate,
  holderRevocationId,
  isRevoked,
  verifyRevocationAck,
  verifyRevocationUpdate,
} from '../src/revocation.js';
import type { RevocationState, RevocationUpdate } from '../src/revocation.js';
import { encodeTimeBeacon } from '../src/time-beacon.js';
import { outcome as codeOf } from './outcome.js';
import { fuzz } from './fuzz.js';

const issuer = generateKeyPair('EdDSA');
const device = generateKeyPair('EdDSA');
const other = generateKeyPair('EdDSA');
const KID = Uint8Array.from([0x69, 0x73, 0x73, 0x31]);
const resolve = (kid: Uint8Array): PublicKey | undefined =>
  Buffer.from(kid).equals(Buffer.from(KID)) ? issuer.publicKey : undefined;
const id = (n: number, len = 16): Uint8Array => {
  const b = new Uint8Array(len);
  b[0] = n >> 8;
  b[1] = n & 0xff;
  b[len - 1] = 0xa5;
  return b;
};
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const FULL: RevocationUpdate = {
  kind: 'full',
  version: 3,
  issuedAt: 1_800_000_000,
  lockId: 'lock-7',
  added: [
    { id: id(1), exp: 1_800_003_600 },
    { id: id(2, 8), exp: 1_800_007_200 },
  ],
  removed: [],
};
const DELTA: RevocationUpdate = {
  kind: 'delta',
  version: 4,
  baseVersion: 3,
  issuedAt: 1_800_000_100,
  lockId: 'lock-7',
  added: [{ id: id(3, 32), exp: 1_800_010_000 }],
  removed: [id(1)],
};

// Signs an arbitrary payload map as a revocation update, to build malformed but well-signed messages.
function signRaw(
  body: Map<number, CborValue>,
  contentFormat: number = CONTENT_FORMAT.revocationUpdate,
): Uint8Array {
  return signSign1(encode(body), issuer, {
    protectedHeader: new Map<number, CborValue>([[HEADER.contentType, contentFormat]]),
    kid: KID,
  });
}
function body(
  over: [number, CborValue | undefined][] = [],
  base: 'full' | 'delta' = 'full',
): Map<number, CborValue> {
  const m = new Map<number, CborValue>(
    base === 'full'
      ? [
          [1, 0],
          [2, 3],
          [4, 1_800_000_000],
          [5, 'lock-7'],
          [6, [[id(1), 1_800_003_600]]],
        ]
      : [
          [1, 1],
          [2, 4],
          [3, 3],
          [4, 1_800_000_000],
          [5, 'lock-7'],
          [6, []],
          [7, [id(1)]],
        ],
  );
  for (const [k, v] of over) {
    if (v === undefined) m.delete(k);
    else m.set(k, v);
  }
  return m;
}

describe('revocation update round trip (TANDEM-REV-3)', () => {
  it('a full update encodes, decodes and verifies to the same body', () => {
    const bytes = encodeRevocationUpdate(FULL, issuer, KID);
    const { update, sign1 } = decodeRevocationUpdate(bytes);
    expect(update).toEqual(FULL);
    expect(sign1.kid).toEqual(KID);
    expect(sign1.protectedHeader.get(HEADER.contentType)).toBe(CONTENT_FORMAT.revocationUpdate);
    expect(verifyRevocationUpdate(bytes, resolve, 'lock-7')).toEqual(FULL);
  });

  it('a delta encodes, decodes and verifies to the same body', () => {
    const bytes = encodeRevocationUpdate(DELTA, issuer, KID);
    expect(verifyRevocationUpdate(bytes, resolve, 'lock-7')).toEqual(DELTA);
  });

  it('an empty full update (nothing revoked) is valid', () => {
    const u: RevocationUpdate = { ...FULL, added: [] };
    expect(verifyRevocationUpdate(encodeRevocationUpdate(u, issuer, KID), resolve, 'lock-7')).toEqual(u);
  });

  it('EdDSA signing is deterministic: same update, same bytes', () => {
    expect(hex(encodeRevocationUpdate(FULL, issuer, KID))).toBe(
      hex(encodeRevocationUpdate(FULL, issuer, KID)),
    );
  });

  it('the encoder refuses what the decoder would refuse (a full update with removed ids)', () => {
    expect(codeOf(() => encodeRevocationUpdate({ ...FULL, removed: [id(9)] }, issuer, KID))).toMatch(
      /ERR_MESSAGE_INVALID: revocation update "removed" \(key 7\) must be absent in a full update/,
    );
  });
});

describe('revocation update signature and audience (TANDEM-REV-5)', () => {
  const bytes = encodeRevocationUpdate(DELTA, issuer, KID);

  it('a bit flip in the signature fails with ERR_SIGNATURE_INVALID', () => {
    for (let i = bytes.length - 64; i < bytes.length; i++) {
      const b = Uint8Array.from(bytes);
      b[i]! ^= 1;
      expect(codeOf(() => verifyRevocationUpdate(b, resolve, 'lock-7'))).toMatch(/^ERR_SIGNATURE_INVALID/);
    }
  });

  it('a bit flip in a signed token id fails with ERR_SIGNATURE_INVALID', () => {
    const at = Buffer.from(bytes).indexOf(Buffer.from(id(3, 32)));
    expect(at).toBeGreaterThan(0);
    for (let i = at; i < at + 32; i++) {
      const b = Uint8Array.from(bytes);
      b[i]! ^= 1;
      expect(codeOf(() => verifyRevocationUpdate(b, resolve, 'lock-7'))).toMatch(/^ERR_SIGNATURE_INVALID/);
    }
  });

  it('a bit flip at any position is refused with a ProtocolError', () => {
    for (let i = 0; i < bytes.length; i++) {
      const b = Uint8Array.from(bytes);
      b[i]! ^= 1;
      expect(codeOf(() => verifyRevocationUpdate(b, resolve, 'lock-7'))).not.toBe('accepted');
    }
  });

  it('an update for another lock fails with ERR_AUDIENCE_MISMATCH after the signature', () => {
    expect(codeOf(() => verifyRevocationUpdate(bytes, resolve, 'lock-8'))).toBe(
      'ERR_AUDIENCE_MISMATCH: revocation update "lock id" is "lock-7", not "lock-8"',
    );
  });

  it('an unknown kid fails with ERR_KEY_UNKNOWN', () => {
    expect(codeOf(() => verifyRevocationUpdate(bytes, () => undefined, 'lock-7'))).toBe(
      'ERR_KEY_UNKNOWN: revocation update is signed by unknown key id 69737331',
    );
  });

  it('a signature by another key fails with ERR_SIGNATURE_INVALID', () => {
    const forged = encodeRevocationUpdate(DELTA, other, KID);
    expect(codeOf(() => verifyRevocationUpdate(forged, resolve, 'lock-7'))).toMatch(/^ERR_SIGNATURE_INVALID/);
  });

  it('a message without kid fails with ERR_COSE_INVALID', () => {
    const noKid = signSign1(encode(body()), issuer, {
      protectedHeader: new Map<number, CborValue>([[HEADER.contentType, CONTENT_FORMAT.revocationUpdate]]),
    });
    expect(codeOf(() => verifyRevocationUpdate(noKid, resolve, 'lock-7'))).toMatch(
      /ERR_COSE_INVALID: revocation update COSE "kid" \(Key ID\) Header Parameter missing/,
    );
  });

  it('a time beacon signed by the same issuer is not a revocation update (TANDEM-REV-1)', () => {
    const beacon = encodeTimeBeacon({ time: 1_800_000_000, accuracy: 2 }, issuer, KID);
    expect(codeOf(() => verifyRevocationUpdate(beacon, resolve, 'lock-7'))).toMatch(
      /ERR_COSE_INVALID: revocation update COSE "content type" \(3\) Header Parameter must be 65100/,
    );
  });

  it('a well-signed revocation payload without content format is refused (TANDEM-REV-1)', () => {
    const bare = signSign1(encode(body()), issuer, { kid: KID });
    expect(codeOf(() => verifyRevocationUpdate(bare, resolve, 'lock-7'))).toMatch(
      /^ERR_COSE_INVALID: .*content type/,
    );
  });
});

describe('revocation update fields (TANDEM-REV-2..4): each refusal names its field', () => {
  const cases: [string, Map<number, CborValue>, RegExp][] = [
    ['kind 2', body([[1, 2]]), /"kind" \(key 1\) must be 0 \(full\) or 1 \(delta\)/],
    ['kind as text', body([[1, 'full']]), /"kind" \(key 1\) must be 0/],
    ['version 0', body([[2, 0]]), /"version" \(key 2\) must be an unsigned integer from 1 to 2\^32-1/],
    ['version negative', body([[2, -1]]), /"version" \(key 2\)/],
    ['version missing', body([[2, undefined]]), /"version" \(key 2\) is missing/],
    [
      'base version in a full update',
      body([[3, 2]]),
      /"base version" \(key 3\) must be absent in a full update/,
    ],
    ['delta without base version', body([[3, undefined]], 'delta'), /"base version" \(key 3\) is missing/],
    [
      'delta base not below version',
      body([[3, 4]], 'delta'),
      /"base version" \(key 3\) must be below "version" \(4\)/,
    ],
    ['issued at text', body([[4, '2027']]), /"issued at" \(key 4\) must be an unsigned integer/],
    ['lock id with a wildcard', body([[5, 'lock/+']]), /"lock id" \(key 5\) must be a lock id matching/],
    ['lock id upper case', body([[5, 'Lock-7']]), /"lock id" \(key 5\)/],
    ['added not an array', body([[6, new Map()]]), /"added" \(key 6\) must be an array/],
    [
      'added item not a pair',
      body([[6, [[id(1)]]]]),
      /"added" \(key 6\) item 0 must be an array \[token id, expiry\]/,
    ],
    [
      'empty token id',
      body([[6, [[new Uint8Array(0), 5]]]]),
      /"added" \(key 6\) item 0: token id must be a byte string of 1 to 32/,
    ],
    [
      '33-byte token id',
      body([[6, [[new Uint8Array(33), 5]]]]),
      /item 0: token id must be a byte string of 1 to 32/,
    ],
    ['token id as text', body([[6, [['abc', 5]]]]), /item 0: token id/],
    [
      'expiry negative',
      body([[6, [[id(1), -5]]]]),
      /"added" \(key 6\) item 0: expiry must be an unsigned integer/,
    ],
    [
      'duplicate token id',
      body([
        [
          6,
          [
            [id(1), 5],
            [id(1), 6],
          ],
        ],
      ]),
      /item 1: token id [0-9a-f]+ appears more than once/,
    ],
    [
      'id both added and removed',
      body([[6, [[id(1), 5]]]], 'delta'),
      /"removed" \(key 7\) item 0: token id [0-9a-f]+ appears more than once/,
    ],
    ['removed in a full update', body([[7, [id(1)]]]), /"removed" \(key 7\) must be absent in a full update/],
    ['unknown key 8', body([[8, 1]]), /revocation update has unknown key 8/],
    [
      'text key',
      new Map<number | string, CborValue>([...body(), ['x', 1]]) as Map<number, CborValue>,
      /unknown key "x"/,
    ],
  ];
  for (const [name, m, expected] of cases) {
    it(`refuses ${name}`, () => {
      const message = codeOf(() => decodeRevocationUpdate(signRaw(m)));
      expect(message).toMatch(/^ERR_MESSAGE_INVALID: revocation update /);
      expect(message).toMatch(expected);
    });
  }

  it('refuses version 2^32 (hand-encoded: cbor-x would emit a float, TANDEM-GEN-2)', () => {
    const payload = Buffer.from(
      'a5 01 00 02 1b0000000100000000 04 00 05 61 61 06 80'.replace(/ /g, ''),
      'hex',
    );
    const bytes = signSign1(payload, issuer, {
      protectedHeader: new Map<number, CborValue>([[HEADER.contentType, CONTENT_FORMAT.revocationUpdate]]),
      kid: KID,
    });
    expect(codeOf(() => decodeRevocationUpdate(bytes))).toBe(
      'ERR_MESSAGE_INVALID: revocation update "version" (key 2) must be an unsigned integer from 1 to 2^32-1',
    );
  });

  it('refuses a payload that is not a map', () => {
    const bytes = signSign1(encode([1, 2]), issuer, {
      protectedHeader: new Map<number, CborValue>([[HEADER.contentType, CONTENT_FORMAT.revocationUpdate]]),
      kid: KID,
    });
    expect(codeOf(() => decodeRevocationUpdate(bytes))).toBe(
      'ERR_MESSAGE_INVALID: revocation update must be a CBOR map',
    );
  });
});

describe('revocation update size limit: 10,000 entries (TANDEM-REV-4)', () => {
  const many = (n: number): RevocationUpdate => ({
    ...FULL,
    added: Array.from({ length: n }, (_, i) => ({ id: id(i, 32), exp: 4_000_000_000 })),
  });

  it('accepts exactly 10,000 entries of 32-byte ids', () => {
    const bytes = encodeRevocationUpdate(many(MAX_REVOCATION_ENTRIES), issuer, KID);
    expect(verifyRevocationUpdate(bytes, resolve, 'lock-7').added).toHaveLength(MAX_REVOCATION_ENTRIES);
  });

  it('refuses 10,001 entries', () => {
    expect(
      codeOf(() =>
        decodeRevocationUpdate(signRaw(body([[6, many(10_001).added.map((e) => [e.id, e.exp])]]))),
      ),
    ).toMatch(/^ERR_(CBOR_INVALID|TOO_LARGE|MESSAGE_INVALID): .*10000/);
  });

  it('refuses added plus removed over 10,000 with ERR_TOO_LARGE', () => {
    const m = body(
      [
        [6, Array.from({ length: 6000 }, (_, i) => [id(i), 5])],
        [7, Array.from({ length: 4001 }, (_, i) => id(i + 6000))],
      ],
      'delta',
    );
    expect(codeOf(() => decodeRevocationUpdate(signRaw(m)))).toBe(
      'ERR_TOO_LARGE: revocation update has 10001 entries, more than 10000',
    );
  });
});

describe('applyRevocationUpdate (TANDEM-REV-6, TANDEM-REV-7, TANDEM-REV-8)', () => {
  const NOW = 1_800_000_500;
  const v3 = applyRevocationUpdate(EMPTY_REVOCATION_STATE, FULL, NOW);

  it('a full update replaces the state', () => {
    expect(v3.version).toBe(3);
    expect([...v3.entries]).toEqual([
      [hex(id(1)), 1_800_003_600],
      [hex(id(2, 8)), 1_800_007_200],
    ]);
    expect(isRevoked(v3, id(1), NOW)).toBe(true);
    expect(isRevoked(v3, id(3, 32), NOW)).toBe(false);
  });

  it('a delta on its base removes then adds', () => {
    const v4 = applyRevocationUpdate(v3, DELTA, NOW);
    expect(v4.version).toBe(4);
    expect(new Set(v4.entries.keys())).toEqual(new Set([hex(id(2, 8)), hex(id(3, 32))]));
  });

  it('is pure: the held state is not changed', () => {
    applyRevocationUpdate(v3, DELTA, NOW);
    expect(v3.version).toBe(3);
    expect(v3.entries.size).toBe(2);
  });

  it('rollback: an older version fails with ERR_REVOCATION_ROLLBACK', () => {
    const v4 = applyRevocationUpdate(v3, DELTA, NOW);
    expect(codeOf(() => applyRevocationUpdate(v4, FULL, NOW))).toBe(
      'ERR_REVOCATION_ROLLBACK: revocation update "version" (key 2) 3 is not newer than the held version 4',
    );
  });

  it('rollback: the same version again fails with ERR_REVOCATION_ROLLBACK', () => {
    expect(codeOf(() => applyRevocationUpdate(v3, FULL, NOW))).toMatch(
      /^ERR_REVOCATION_ROLLBACK: .* 3 is not newer than the held version 3/,
    );
  });

  it('wrong base: a delta on another version fails with ERR_REVOCATION_BASE_MISMATCH (status REVOCATION_STALE)', () => {
    let err: unknown;
    try {
      applyRevocationUpdate({ version: 2, entries: new Map() }, DELTA, NOW);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe('ERR_REVOCATION_BASE_MISMATCH');
    expect((err as ProtocolError).message).toMatch(
      /"base version" \(key 3\) 3 does not match the held version 2/,
    );
    expect((err as ProtocolError).status).toBe(0x19);
  });

  it('wrong base: a delta from a version older than held is refused too', () => {
    const v5: RevocationState = { version: 3, entries: new Map() };
    const skip: RevocationUpdate = { ...DELTA, version: 6, baseVersion: 1 };
    expect(codeOf(() => applyRevocationUpdate(v5, skip, NOW))).toMatch(/^ERR_REVOCATION_BASE_MISMATCH/);
  });

  it('expired entries are dropped: exp at or before now', () => {
    const s = applyRevocationUpdate(EMPTY_REVOCATION_STATE, FULL, 1_800_003_600);
    expect([...s.entries.keys()]).toEqual([hex(id(2, 8))]);
    const later = applyRevocationUpdate(
      s,
      { ...DELTA, version: 4, baseVersion: 3, added: [], removed: [] },
      1_800_007_201,
    );
    expect(later.entries.size).toBe(0);
  });

  it('an expired entry no longer counts as revoked even before it is dropped', () => {
    expect(isRevoked(v3, id(1), 1_800_003_600)).toBe(false);
  });

  it('a held list over 10,000 entries fails with ERR_TOO_LARGE', () => {
    const big: RevocationState = {
      version: 1,
      entries: new Map(Array.from({ length: MAX_REVOCATION_ENTRIES }, (_, i) => [hex(id(i)), 4_000_000_000])),
    };
    const d: RevocationUpdate = {
      ...DELTA,
      version: 2,
      baseVersion: 1,
      added: [{ id: id(60_000, 20), exp: 4_000_000_000 }],
      removed: [],
    };
    expect(codeOf(() => applyRevocationUpdate(big, d, NOW))).toMatch(/^ERR_TOO_LARGE: .*10001 entries/);
  });
});

describe('revocation acknowledgement (TANDEM-REV-9)', () => {
  const ACK = { lockId: 'lock-7', version: 4, lockTime: 1_800_000_600 };
  const bytes = encodeRevocationAck(ACK, device);

  it('round trips and verifies with the device key', () => {
    expect(decodeRevocationAck(bytes).ack).toEqual(ACK);
    expect(verifyRevocationAck(bytes, device.publicKey, 'lock-7')).toEqual(ACK);
  });

  it('a bit flip in the signature fails with ERR_SIGNATURE_INVALID', () => {
    const b = Uint8Array.from(bytes);
    b[b.length - 1]! ^= 1;
    expect(codeOf(() => verifyRevocationAck(b, device.publicKey, 'lock-7'))).toMatch(
      /^ERR_SIGNATURE_INVALID/,
    );
  });

  it('a bit flip in the signed version fails with ERR_SIGNATURE_INVALID', () => {
    const b = Uint8Array.from(bytes);
    const at = Buffer.from(b).indexOf(Buffer.from([0x02, 0x04])); // key 2, version 4
    b[at + 1]! ^= 1;
    expect(codeOf(() => verifyRevocationAck(b, device.publicKey, 'lock-7'))).toMatch(
      /^ERR_SIGNATURE_INVALID/,
    );
  });

  it('refuses another lock, another key, and version 0', () => {
    expect(codeOf(() => verifyRevocationAck(bytes, device.publicKey, 'lock-8'))).toMatch(
      /^ERR_AUDIENCE_MISMATCH: revocation ack/,
    );
    expect(codeOf(() => verifyRevocationAck(bytes, other.publicKey, 'lock-7'))).toMatch(
      /^ERR_SIGNATURE_INVALID/,
    );
    expect(codeOf(() => encodeRevocationAck({ ...ACK, version: 0 }, device))).toMatch(
      /^ERR_MESSAGE_INVALID: revocation ack "version" \(key 2\) must be an unsigned integer from 1/,
    );
  });

  it('a revocation update is not an acknowledgement (TANDEM-REV-1)', () => {
    expect(codeOf(() => decodeRevocationAck(encodeRevocationUpdate(FULL, issuer, KID)))).toMatch(
      /^ERR_COSE_INVALID: .*65101/,
    );
  });
});

describe('fuzz (only ProtocolError escapes)', () => {
  const seeds = [encodeRevocationUpdate(FULL, issuer, KID), encodeRevocationUpdate(DELTA, issuer, KID)];
  fuzz('decodeRevocationUpdate', decodeRevocationUpdate, seeds, 6);
  fuzz('verifyRevocationUpdate', (b) => verifyRevocationUpdate(b, resolve, 'lock-7'), seeds, 61);
  fuzz(
    'decodeRevocationAck',
    decodeRevocationAck,
    [encodeRevocationAck({ lockId: 'a', version: 1, lockTime: 2 }, device)],
    62,
  );
});

describe('holder ids [TANDEM-REV-10]', () => {
  it('are SHA-256("Tandem-holder-v1\\0" ‖ raw key) cut to 16 bytes, cached per key, and a caller cannot change the cache', () => {
    const key = generateKeyPair('ES256').publicKey;
    const expected = createHash('sha256')
      .update(Buffer.from('Tandem-holder-v1\0'))
      .update(key.raw)
      .digest()
      .subarray(0, 16);
    const a = holderRevocationId(key);
    expect(Buffer.from(a).equals(expected)).toBe(true);
    a.fill(0);
    expect(Buffer.from(holderRevocationId(key)).equals(expected)).toBe(true);
  });
});
