// Anchor updates and their acknowledgements, SPEC.md §6.6 (TANDEM-ANCHOR-1..5). The vectors in
// protocol/vectors/anchor-updates.json cover the apply rules; here: each refusal's code and the field its
// message names, the acknowledgement, and a seeded fuzz loop that lets only ProtocolError escape.
import { describe, expect, it } from 'vitest';
import type { CborValue } from '../src/cbor.js';
import { encode } from '../src/cbor.js';
import { HEADER, signSign1 } from '../src/cose.js';
import { generateKeyPair } from '../src/keys.js';
import type { PublicKey } from '../src/keys.js';
import { CONTENT_FORMAT } from '../src/lib/signed-payload.js';
import {
  MAX_ANCHOR_CHANGES,
  MAX_ISSUER_ANCHORS,
  applyAnchorUpdate,
  decodeAnchorUpdate,
  encodeAnchorAck,
  encodeAnchorUpdate,
  verifyAnchorAck,
  verifyAnchorUpdate,
} from '../src/anchor-update.js';
import type { AnchorKey, AnchorState, AnchorUpdate } from '../src/anchor-update.js';
import { encodeRevocationAck } from '../src/revocation.js';
import { outcome as codeOf } from './outcome.js';
import { fuzz } from './fuzz.js';

const old = generateKeyPair('EdDSA');
const fresh = generateKeyPair('EdDSA');
const owner = generateKeyPair('ES256');
const device = generateKeyPair('EdDSA');
const OLD = Uint8Array.of(1);
const NEW = Uint8Array.of(2);
const OWNER = Uint8Array.of(0x0a);
const LOCK = 'lock-7';

const state: AnchorState = {
  version: 0,
  anchors: [
    { kid: OLD, alg: 'EdDSA', key: old.publicKey.raw, role: 'issuer', name: 'tandem' },
    { kid: OWNER, alg: 'ES256', key: owner.publicKey.raw, role: 'owner', name: 'adam' },
  ],
};
const issuerKeyOf =
  (s: AnchorState) =>
  (kid: Uint8Array): PublicKey | undefined => {
    const a = s.anchors.find((x) => Buffer.compare(x.kid, kid) === 0);
    if (a === undefined || a.role !== 'issuer') return undefined;
    return a.kid[0] === 1 ? old.publicKey : a.kid[0] === 2 ? fresh.publicKey : undefined;
  };
const newAnchor: AnchorKey = { kid: NEW, alg: 'EdDSA', key: fresh.publicKey.raw };
const make = (u: Partial<AnchorUpdate> = {}): Uint8Array =>
  encodeAnchorUpdate(
    { lockId: LOCK, version: 1, issuedAt: 1_800_000_000, add: [newAnchor], remove: [], ...u },
    old,
    OLD,
  );
const signRaw = (body: Map<number, CborValue>): Uint8Array =>
  signSign1(encode(body), old, {
    protectedHeader: new Map<number, CborValue>([[HEADER.contentType, CONTENT_FORMAT.anchorUpdate]]),
    kid: OLD,
  });
const body = (over: [number, CborValue | undefined][]): Map<number, CborValue> => {
  const m = new Map<number, CborValue>([
    [1, LOCK],
    [2, 1],
    [3, 1_800_000_000],
    [4, [[NEW, -8, fresh.publicKey.raw]]],
  ]);
  for (const [k, v] of over) {
    if (v === undefined) m.delete(k);
    else m.set(k, v);
  }
  return m;
};

describe('anchor update format (TANDEM-ANCHOR-1)', () => {
  it('round-trips and is signed with content type 65108 and the kid unprotected', () => {
    const bytes = make({ remove: [Uint8Array.of(7)] });
    const { sign1, update } = decodeAnchorUpdate(bytes);
    expect(sign1.protectedHeader.get(HEADER.contentType)).toBe(65108);
    expect(Buffer.from(sign1.kid!)).toEqual(Buffer.from(OLD));
    expect(update.add).toEqual([newAnchor]);
    expect(update.remove).toEqual([Uint8Array.of(7)]);
    // One update with one new Ed25519 anchor fits one frame at ATT MTU 185 ([TANDEM-GATT-5]).
    expect(make().length).toBeLessThanOrEqual(178);
  });

  it('refuses each malformed field, naming it', () => {
    const cases: [string, [number, CborValue | undefined][], string][] = [
      ['missing version', [[2, undefined]], 'anchor update "version" (key 2) is missing'],
      ['version 0', [[2, 0]], '"version" (key 2) must be an unsigned integer from 1'],
      ['bad lock id', [[1, 'Lock 7']], '"lock id" (key 1) must be a lock id'],
      ['nothing to do', [[4, []]], '"add" (key 4) and "remove" (key 5) are both empty'],
      ['empty remove', [[5, []]], '"remove" (key 5) must be omitted when empty'],
      ['alg -7 as text', [[4, [[NEW, 'EdDSA', fresh.publicKey.raw]]]], 'alg must be -8 (EdDSA) or -7'],
      ['a triple of two', [[4, [[NEW, -8]]]], 'item 0 must be an array [kid, alg, key]'],
      [
        'empty kid',
        [[4, [[new Uint8Array(0), -8, fresh.publicKey.raw]]]],
        'kid must be a byte string of 1 to 32',
      ],
      ['kid twice', [[5, [NEW]]], 'kid 02 appears more than once'],
      ['unknown key', [[9, 1]], 'anchor update has unknown key 9'],
      [
        'too many',
        [
          [
            4,
            Array.from({ length: MAX_ANCHOR_CHANGES + 1 }, (_, i) => [
              Uint8Array.of(i + 10),
              -8,
              fresh.publicKey.raw,
            ]),
          ],
        ],
        `"add" (key 4) must have at most ${MAX_ANCHOR_CHANGES} items`,
      ],
    ];
    for (const [name, over, message] of cases) {
      const got = codeOf(() => verifyAnchorUpdate(signRaw(body(over)), issuerKeyOf(state), LOCK));
      expect(got, name).toMatch(/^ERR_MESSAGE_INVALID: /);
      expect(got, name).toContain(message);
    }
  });

  it('refuses a key that is not a valid Ed25519 point (ERR_KEY_INVALID, TANDEM-KEY-5)', () => {
    const identity = new Uint8Array(32);
    identity[0] = 1;
    expect(
      codeOf(() => verifyAnchorUpdate(signRaw(body([[4, [[NEW, -8, identity]]]])), issuerKeyOf(state), LOCK)),
    ).toMatch(/^ERR_KEY_INVALID: /);
  });

  it('the encoder refuses what the decoder would', () => {
    expect(codeOf(() => make({ add: [], remove: [] }))).toMatch(/^ERR_MESSAGE_INVALID: .*both empty/);
  });
});

describe('verification (TANDEM-ANCHOR-2)', () => {
  it('bit flips in the signature and the payload fail as a signature', () => {
    const bytes = make();
    for (const at of [bytes.length - 1, bytes.length - 70]) {
      const flipped = Uint8Array.from(bytes);
      flipped[at]! ^= 1;
      expect(codeOf(() => verifyAnchorUpdate(flipped, issuerKeyOf(state), LOCK))).toMatch(
        /^ERR_(SIGNATURE_INVALID|MESSAGE_INVALID|CBOR_INVALID)/,
      );
    }
    const sig = Uint8Array.from(bytes);
    sig[sig.length - 1]! ^= 1;
    expect(codeOf(() => verifyAnchorUpdate(sig, issuerKeyOf(state), LOCK))).toBe(
      'ERR_SIGNATURE_INVALID: signature verification failed',
    );
  });

  it('an update for another lock is refused after the signature', () => {
    expect(codeOf(() => verifyAnchorUpdate(make({ lockId: 'lock-8' }), issuerKeyOf(state), LOCK))).toMatch(
      /^ERR_AUDIENCE_MISMATCH: anchor update "lock id" is "lock-8"/,
    );
  });

  it('an owner key cannot sign one: the resolver knows issuer anchors only', () => {
    const byOwner = encodeAnchorUpdate(
      { lockId: LOCK, version: 1, issuedAt: 1, add: [newAnchor], remove: [] },
      owner,
      OWNER,
    );
    expect(codeOf(() => verifyAnchorUpdate(byOwner, issuerKeyOf(state), LOCK))).toMatch(/^ERR_KEY_UNKNOWN: /);
  });

  it('an anchor ack or a revocation ack is not an anchor update (content type, TANDEM-REV-1)', () => {
    const ack = encodeAnchorAck({ lockId: LOCK, version: 1, lockTime: 5 }, device);
    expect(codeOf(() => decodeAnchorUpdate(ack))).toMatch(/^ERR_COSE_INVALID: .*must be 65108/);
    const rev = encodeRevocationAck({ lockId: LOCK, version: 1, lockTime: 5 }, device);
    expect(codeOf(() => verifyAnchorAck(rev, device.publicKey, LOCK))).toMatch(
      /^ERR_COSE_INVALID: .*must be 65109/,
    );
  });
});

describe('applying (TANDEM-ANCHOR-3, TANDEM-ANCHOR-4)', () => {
  const apply = (s: AnchorState, bytes: Uint8Array) =>
    applyAnchorUpdate(s, verifyAnchorUpdate(bytes, issuerKeyOf(s), LOCK));

  it('adds the new key under the issuer name of the anchor that signed it, and leaves the input alone', () => {
    const r = apply(state, make());
    expect(r.changed).toBe(true);
    expect(r.state.version).toBe(1);
    expect(r.state.anchors.map((a) => [a.kid[0], a.role, a.name])).toEqual([
      [1, 'issuer', 'tandem'],
      [10, 'owner', 'adam'],
      [2, 'issuer', 'tandem'],
    ]);
    expect(state.anchors).toHaveLength(2);
  });

  it('a re-delivery changes nothing; an older version is a rollback', () => {
    const one = apply(state, make()).state;
    expect(apply(one, make())).toEqual({ state: one, changed: false });
    const three = apply(one, make({ version: 3 })).state;
    expect(codeOf(() => apply(three, make({ version: 2 })))).toBe(
      'ERR_ANCHOR_ROLLBACK: anchor update "version" (key 2) 2 is older than the held anchor version 3',
    );
  });

  it(`never more than ${MAX_ISSUER_ANCHORS} issuer anchors`, () => {
    const add = Array.from({ length: MAX_ISSUER_ANCHORS }, (_, i) => ({
      kid: Uint8Array.of(0x20 + i),
      alg: 'EdDSA' as const,
      key: generateKeyPair('EdDSA').publicKey.raw,
    }));
    expect(codeOf(() => apply(state, make({ add })))).toMatch(
      /^ERR_ANCHOR_REFUSED: anchor update would leave 5 issuer anchors, more than 4/,
    );
  });

  it('never the last issuer anchor, never an owner key', () => {
    expect(codeOf(() => apply(state, make({ add: [], remove: [OLD] })))).toBe(
      "ERR_ANCHOR_REFUSED: anchor update would remove the lock's last issuer anchor",
    );
    expect(codeOf(() => apply(state, make({ remove: [OWNER] })))).toMatch(
      /^ERR_ANCHOR_REFUSED: .*kid 0a names an owner key/,
    );
    expect(
      codeOf(() => apply(state, make({ add: [{ kid: OWNER, alg: 'EdDSA', key: fresh.publicKey.raw }] }))),
    ).toMatch(/^ERR_ANCHOR_REFUSED: .*kid 0a is held for another owner key/);
  });
});

describe('anchor acknowledgement (TANDEM-ANCHOR-5)', () => {
  it('is signed by the device key and names its lock', () => {
    const ack = encodeAnchorAck({ lockId: LOCK, version: 4, lockTime: 1_800_000_030 }, device);
    expect(ack.length).toBeLessThanOrEqual(256);
    expect(verifyAnchorAck(ack, device.publicKey, LOCK)).toEqual({
      lockId: LOCK,
      version: 4,
      lockTime: 1_800_000_030,
    });
    expect(codeOf(() => verifyAnchorAck(ack, old.publicKey, LOCK))).toMatch(/^ERR_SIGNATURE_INVALID/);
    expect(codeOf(() => verifyAnchorAck(ack, device.publicKey, 'lock-8'))).toMatch(/^ERR_AUDIENCE_MISMATCH/);
  });
});

describe('robustness (TANDEM-GEN-5)', () => {
  fuzz(
    'verifyAnchorUpdate',
    (b) => verifyAnchorUpdate(b, issuerKeyOf(state), LOCK),
    [make(), make({ remove: [Uint8Array.of(9)] })],
    0xa9c4,
  );
});
