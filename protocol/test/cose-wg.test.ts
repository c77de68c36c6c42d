// COSE_Sign1 against the COSE Working Group examples (protocol/vectors/third-party/cose-wg). Tandem's profile is
// stricter than COSE (SPEC.md §4.3, "Exceptions to general COSE"): each exception is asserted as a refusal
// with its code. Where signing is deterministic (EdDSA) the bytes are reproduced exactly.
import { describe, expect, it } from 'vitest';
import type { JsonWebKey } from 'node:crypto';
import { decodeSign1, signSign1, sigStructure, verifySign1, HEADER, TAG_COSE_SIGN1 } from '../src/cose.js';
import type { CborValue } from '../src/cbor.js';
import { privateKeyFromJwk, publicKeyFromJwk } from '../src/keys.js';
import { isProtocolError } from '../src/errors.js';
import type { ProtocolErrorCode } from '../src/errors.js';
import { listJson, readJson } from './third-party-vectors.js';

interface CoseKey {
  kty: string;
  crv: string;
  kid?: string;
  x?: string;
  y?: string;
  d?: string;
  x_hex?: string;
  y_hex?: string;
  d_hex?: string;
}
interface CoseExample {
  title: string;
  fail?: boolean;
  input: {
    plaintext?: string;
    plaintext_hex?: string;
    sign0?: { key: CoseKey; external?: string; protected?: Record<string, unknown> };
    sign?: unknown;
  };
  output: { cbor: string };
}

const b64u = (hex: string) => Buffer.from(hex, 'hex').toString('base64url');
function jwkOf(k: CoseKey, priv: boolean): JsonWebKey {
  const jwk: JsonWebKey = { kty: k.kty, crv: k.crv, x: k.x ?? b64u(k.x_hex!) };
  if (k.kty === 'EC') jwk.y = k.y ?? b64u(k.y_hex!);
  if (priv) jwk.d = k.d ?? b64u(k.d_hex!);
  return jwk;
}

// What Tandem does with each example, and why (SPEC.md §4.3).
const EXPECTED: Record<
  string,
  { verdict: 'accept' } | { verdict: 'refuse'; code: ProtocolErrorCode; why: string }
> = {
  'sign1-tests/sign-pass-01.json': {
    verdict: 'refuse',
    code: 'ERR_COSE_INVALID',
    why: "empty protected header (h'a0'), alg unprotected",
  },
  'sign1-tests/sign-pass-02.json': { verdict: 'accept' },
  'sign1-tests/sign-pass-03.json': { verdict: 'accept' },
  'sign1-tests/sign-fail-01.json': {
    verdict: 'refuse',
    code: 'ERR_CBOR_INVALID',
    why: 'tag 998 is not COSE_Sign1',
  },
  'sign1-tests/sign-fail-02.json': {
    verdict: 'refuse',
    code: 'ERR_SIGNATURE_INVALID',
    why: 'signature changed',
  },
  'sign1-tests/sign-fail-03.json': { verdict: 'refuse', code: 'ERR_ALG_UNSUPPORTED', why: 'alg -999' },
  'sign1-tests/sign-fail-04.json': { verdict: 'refuse', code: 'ERR_ALG_UNSUPPORTED', why: 'alg "unknown"' },
  'sign1-tests/sign-fail-06.json': {
    verdict: 'refuse',
    code: 'ERR_SIGNATURE_INVALID',
    why: 'protected attribute added',
  },
  'sign1-tests/sign-fail-07.json': {
    verdict: 'refuse',
    code: 'ERR_SIGNATURE_INVALID',
    why: 'protected attribute removed',
  },
  'eddsa-examples/eddsa-sig-01.json': { verdict: 'accept' },
  'eddsa-examples/eddsa-sig-02.json': {
    verdict: 'refuse',
    code: 'ERR_ALG_UNSUPPORTED',
    why: 'Ed448 key: Tandem binds EdDSA to Ed25519',
  },
  'ecdsa-examples/ecdsa-sig-01.json': { verdict: 'accept' },
  'ecdsa-examples/ecdsa-sig-02.json': {
    verdict: 'refuse',
    code: 'ERR_ALG_UNSUPPORTED',
    why: 'ES384 is outside the profile',
  },
  'ecdsa-examples/ecdsa-sig-03.json': {
    verdict: 'refuse',
    code: 'ERR_ALG_UNSUPPORTED',
    why: 'ES512 is outside the profile',
  },
  'ecdsa-examples/ecdsa-sig-04.json': {
    verdict: 'refuse',
    code: 'ERR_ALG_UNSUPPORTED',
    why: 'ES512 with a P-256 key',
  },
  'CWT/A_3.json': { verdict: 'accept' },
};

function outcome(file: string, ex: CoseExample): { ok: true } | { ok: false; code: string } {
  const bytes = Buffer.from(ex.output.cbor, 'hex');
  try {
    const msg = decodeSign1(bytes, undefined, [TAG_COSE_SIGN1]);
    const k = ex.input.sign0!.key;
    let key;
    try {
      key = publicKeyFromJwk(jwkOf(k, false));
    } catch (e) {
      if (isProtocolError(e, 'ERR_KEY_INVALID')) return { ok: false, code: 'ERR_ALG_UNSUPPORTED' };
      throw e;
    }
    const aad = ex.input.sign0!.external ? Buffer.from(ex.input.sign0!.external, 'hex') : undefined;
    verifySign1(msg, key, aad);
    void file;
    return { ok: true };
  } catch (e) {
    if (!isProtocolError(e)) throw e;
    return { ok: false, code: e.code };
  }
}

describe('cose-wg Examples, COSE_Sign1 (sign0)', () => {
  const files = ['sign1-tests', 'eddsa-examples', 'ecdsa-examples']
    .flatMap((d) => listJson('cose-wg', d).map((f) => `${d}/${f}`))
    .concat(['CWT/A_3.json']);
  for (const file of files) {
    const ex = readJson<CoseExample>('cose-wg', ...file.split('/'));
    if (!ex.input.sign0) {
      // COSE_Sign (multi-signer, tag 98) examples: not a COSE_Sign1, refused by the profile.
      it(`${file} (${ex.title}): COSE_Sign is refused as not a COSE_Sign1`, () => {
        let code = '';
        try {
          decodeSign1(Buffer.from(ex.output.cbor, 'hex'));
        } catch (e) {
          code = isProtocolError(e) ? e.code : 'not a ProtocolError';
        }
        expect(code).toBe('ERR_CBOR_INVALID');
      });
      continue;
    }
    const expected = EXPECTED[file];
    it(`${file} (${ex.title}) -> ${expected ? expected.verdict : 'listed'}`, () => {
      expect(expected, `${file} has no expectation in the table`).toBeDefined();
      if (ex.fail) expect(expected!.verdict).toBe('refuse');
      const got = outcome(file, ex);
      if (expected!.verdict === 'accept') expect(got).toEqual({ ok: true });
      else expect(got).toEqual({ ok: false, code: expected!.code });
    });
  }

  it('EdDSA examples are reproduced byte for byte (eddsa-sig-01)', () => {
    const ex = readJson<CoseExample>('cose-wg', 'eddsa-examples', 'eddsa-sig-01.json');
    const key = privateKeyFromJwk(jwkOf(ex.input.sign0!.key, true));
    const out = signSign1(Buffer.from(ex.input.plaintext!, 'utf8'), key, {
      protectedHeader: new Map<number, CborValue>([[3, 0]]),
      kid: Buffer.from('11'),
      tags: [TAG_COSE_SIGN1],
    });
    expect(Buffer.from(out).toString('hex').toUpperCase()).toBe(ex.output.cbor);
  });

  it('the Sig_structure matches the intermediates of every accepted example', () => {
    for (const file of [
      'sign1-tests/sign-pass-02.json',
      'eddsa-examples/eddsa-sig-01.json',
      'CWT/A_3.json',
    ]) {
      const ex = readJson<CoseExample & { intermediates: { ToBeSign_hex: string } }>(
        'cose-wg',
        ...file.split('/'),
      );
      const msg = decodeSign1(Buffer.from(ex.output.cbor, 'hex'));
      const aad = ex.input.sign0!.external ? Buffer.from(ex.input.sign0!.external, 'hex') : undefined;
      expect(
        Buffer.from(sigStructure(msg.protectedBytes, msg.payload, aad))
          .toString('hex')
          .toUpperCase(),
      ).toBe(ex.intermediates.ToBeSign_hex);
    }
  });

  it('a bit flip anywhere in the signed bytes of A.3 fails with the signature error', () => {
    const ex = readJson<CoseExample>('cose-wg', 'CWT', 'A_3.json');
    const bytes = Buffer.from(ex.output.cbor, 'hex');
    const key = publicKeyFromJwk(jwkOf(ex.input.sign0!.key, false));
    const msg = decodeSign1(bytes);
    let refused = 0;
    for (let i = 0; i < msg.payload.length; i++) {
      const flipped = Buffer.from(msg.payload);
      flipped[i]! ^= 1;
      expect(() => verifySign1({ ...msg, payload: flipped }, key)).toThrow(/signature verification failed/);
      refused++;
    }
    expect(refused).toBe(msg.payload.length);
  });

  it('a key bound to EdDSA refuses an ES256 message and vice versa (TANDEM-COSE-3)', () => {
    const ed = readJson<CoseExample>('cose-wg', 'eddsa-examples', 'eddsa-sig-01.json');
    const es = readJson<CoseExample>('cose-wg', 'ecdsa-examples', 'ecdsa-sig-01.json');
    const edKey = publicKeyFromJwk(jwkOf(ed.input.sign0!.key, false));
    const esMsg = decodeSign1(Buffer.from(es.output.cbor, 'hex'));
    expect(() => verifySign1(esMsg, edKey)).toThrow(
      expect.objectContaining({ code: 'ERR_ALG_UNSUPPORTED' }) as unknown as Error,
    );
    expect(esMsg.protectedHeader.get(HEADER.alg)).toBe(-7);
  });
});
