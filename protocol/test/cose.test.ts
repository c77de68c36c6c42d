// COSE_Sign1 profile, SPEC.md §4 ([TANDEM-COSE-*]): what Tandem's decoder refuses beyond general COSE.
import { describe, expect, it } from 'vitest';
import type { CborValue } from '../src/cbor.js';
import { encode } from '../src/cbor.js';
import { decodeSign1, sigStructure, signSign1, verifySign1 } from '../src/cose.js';
import { generateKeyPair, signBytes } from '../src/keys.js';
import { outcome } from './outcome.js';

const key = generateKeyPair('EdDSA');
const payload = encode(new Map([[1, 'x']]));

function sign1(
  protectedHeader: Map<number | string, CborValue>,
  unprotected: Map<number | string, CborValue>,
) {
  const p = encode(protectedHeader);
  return encode([p, unprotected, payload, signBytes(key, sigStructure(p, payload))]);
}

describe('COSE header labels [TANDEM-COSE-8]', () => {
  it('accepts kid and content type unprotected, and verifies', () => {
    const bytes = signSign1(payload, key, { kid: Uint8Array.of(1), unprotectedHeader: new Map([[3, 0]]) });
    const msg = decodeSign1(bytes);
    expect(outcome(() => verifySign1(msg, key.publicKey))).toBe('accepted');
  });

  for (const label of [5, 33, -1, 'x5chain']) {
    it(`refuses the unknown unprotected label ${JSON.stringify(label)}`, () => {
      const bytes = sign1(new Map([[1, -8]]), new Map<number | string, CborValue>([[label, 1]]));
      expect(outcome(() => decodeSign1(bytes))).toBe(
        `ERR_COSE_INVALID: COSE unprotected header label ${JSON.stringify(label)} is not understood; only "kid" (4) and "content type" (3) may be unprotected (TANDEM-COSE-8)`,
      );
    });
  }

  it('refuses an unknown protected label that is not critical', () => {
    const bytes = sign1(
      new Map<number | string, CborValue>([
        [1, -8],
        [99, 1],
      ]),
      new Map(),
    );
    expect(outcome(() => decodeSign1(bytes))).toMatch(
      /^ERR_COSE_INVALID: COSE protected header label 99 is not understood/,
    );
  });

  it('the unprotected label is refused although the signature does not cover it (anyone on the way could add it)', () => {
    const good = signSign1(payload, key, { kid: Uint8Array.of(1) });
    const msg = decodeSign1(good);
    const tampered = encode([
      msg.protectedBytes,
      new Map<number, CborValue>([
        [4, Uint8Array.of(1)],
        [7, 'smuggled'],
      ]),
      msg.payload,
      msg.signature,
    ]);
    expect(outcome(() => decodeSign1(tampered))).toMatch(
      /^ERR_COSE_INVALID: COSE unprotected header label 7/,
    );
  });
});
