/**
 * Builds Tandem's own test vectors (SPEC.md §10). `npm run vectors` rewrites the JSON files beside this
 * script; `protocol/test/vectors.test.ts` runs every vector, and checks that those marked `reproducible`
 * (EdDSA signatures only, which are deterministic, RFC 8032 §5.1.6) are rebuilt byte for byte.
 * ES256 signatures are randomised by Node, so vectors that contain one are checked for their verdict only.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeStrict, encode } from '../src/cbor.js';
import type { CborValue } from '../src/cbor.js';
import { chainHash } from '../src/chain.js';
import { sigStructure, signSign1 } from '../src/cose.js';
import { COSE_ALG, signBytes } from '../src/keys.js';
import type { PrivateKey } from '../src/keys.js';
import { Command, createRequest } from '../src/pop.js';
import { encodeAnchorUpdate } from '../src/anchor-update.js';
import type { AnchorUpdate } from '../src/anchor-update.js';
import { HEADER } from '../src/cose.js';
import { CONTENT_FORMAT } from '../src/lib/signed-payload.js';
import { encodeRevocationUpdate } from '../src/revocation.js';
import type { RevocationUpdate } from '../src/revocation.js';
import { encodeTimeBeacon } from '../src/time-beacon.js';
import type { TimeBeacon } from '../src/time-beacon.js';
import { MessageType, frameMessage } from '../src/gatt.js';
import { encodeClaimReceipt } from '../src/claim-receipt.js';
import type { ClaimReceipt } from '../src/claim-receipt.js';
import type { MintClaims } from '../src/token.js';
import { encodeClaims, mintToken } from '../src/token.js';
import { encodeLockState } from '../src/mqtt.js';
import type { LockStateReport } from '../src/mqtt.js';
import { encodeRemoteCommand } from '../src/remote-command.js';
import type { RemoteCommand } from '../src/remote-command.js';
import { edKey, p256Key } from './keys.js';

/** One vector. `expected.error` is a ProtocolError code; otherwise the listed fields must match. */
export interface Vector {
  readonly title: string;
  readonly reproducible: boolean;
  readonly input: Record<string, unknown>;
  readonly expected: { readonly ok: true; readonly [k: string]: unknown } | { readonly error: string };
}

/** One file of vectors of one kind. */
export interface VectorFile {
  readonly file: string;
  readonly kind:
    | 'cbor-decode'
    | 'chain-verify'
    | 'pop-verify'
    | 'revocation-apply'
    | 'anchor-apply'
    | 'time-beacon-verify'
    | 'gatt-frames'
    | 'mqtt-topic'
    | 'claim-receipt-verify'
    | 'lock-state-verify'
    | 'remote-command-verify';
  readonly description: string;
  readonly vectors: Vector[];
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const NOW = 1_795_010_400; // Wednesday 2026-11-18 12:40 Europe/Berlin
const LOCK = 'lock-7f3a';
const TZ = 'Europe/Berlin';

const issuer = edKey('issuer');
const owner = p256Key('owner adam');
const rider = p256Key('rider bianca');
const friend = p256Key('rider carla');
const thief = p256Key('thief');
const ISSUER_KID = Uint8Array.of(0x01);
const OWNER_KID = Uint8Array.of(0x0a);

const anchors = [
  {
    kid: hex(ISSUER_KID),
    alg: issuer.alg,
    publicKey: hex(issuer.publicKey.raw),
    role: 'issuer',
    name: 'tandem',
  },
  { kid: hex(OWNER_KID), alg: owner.alg, publicKey: hex(owner.publicKey.raw), role: 'owner', name: 'adam' },
];

function claims(over: Partial<MintClaims> = {}): MintClaims {
  return {
    iss: 'tandem',
    sub: 'adam',
    aud: LOCK,
    iat: NOW - 3600,
    nbf: NOW - 3600,
    exp: NOW + 7 * 86_400,
    cti: Buffer.from('0102030405060708090a0b0c', 'hex'),
    cnf: rider.publicKey,
    scope: ['unlock', 'status'],
    rider: 'bianca',
    schedule: [{ days: 0b0011111, start: 7 * 60, end: 20 * 60 }],
    ...over,
  };
}

// A COSE_Sign1 over hand-made header bytes or payload, for the envelope negatives that signSign1 (which
// only emits the profile) cannot produce.
function rawSign1(
  protectedHeader: Map<number, CborValue> | Uint8Array,
  unprotected: Map<number, CborValue>,
  payload: Uint8Array,
  key: PrivateKey,
): Uint8Array {
  const protectedBytes = protectedHeader instanceof Uint8Array ? protectedHeader : encode(protectedHeader);
  return encode([
    protectedBytes,
    unprotected,
    payload,
    signBytes(key, sigStructure(protectedBytes, payload)),
  ]);
}

function chainVector(
  title: string,
  chain: Uint8Array[],
  expected: Vector['expected'],
  over: { now?: number; lockId?: string; reproducible?: boolean } = {},
): Vector {
  return {
    title,
    reproducible: over.reproducible ?? true,
    input: {
      anchors,
      lockId: over.lockId ?? LOCK,
      now: over.now ?? NOW,
      timeZone: TZ,
      chain: chain.map(hex),
    },
    expected,
  };
}

function tokens(): VectorFile {
  const typical = mintToken(claims(), issuer, ISSUER_KID);
  const delegate = mintToken(
    claims({ scope: ['unlock', 'status', 'delegate'], maxUses: 10 }),
    issuer,
    ISSUER_KID,
  );
  const link = (over: Partial<MintClaims> = {}) =>
    mintToken(
      claims({
        iss: 'bianca',
        cnf: friend.publicKey,
        rider: 'carla',
        scope: ['unlock'],
        maxUses: 2,
        cti: Buffer.from('a1a2a3a4a5a6a7a8', 'hex'),
        nbf: NOW - 600,
        exp: NOW + 86_400,
        ...over,
      }),
      rider,
    );
  const sigFlipped = Uint8Array.from(typical);
  sigFlipped[sigFlipped.length - 1]! ^= 1;
  const payload = encodeClaims(claims());
  const kidMap = new Map<number, CborValue>([[4, ISSUER_KID]]);
  const dupPayload = Buffer.concat([
    Buffer.from([0xab]),
    Buffer.from(payload.subarray(1)),
    Buffer.from('0163657665', 'hex'),
  ]);
  // The typical claims with one claim replaced, for claims mintToken refuses to issue.
  const withClaim = (key: number, value: CborValue) => {
    const m = decodeStrict(payload) as Map<number, CborValue>;
    m.set(key, value);
    return encode(m);
  };
  // A root whose cnf is an Ed25519 key that mintToken cannot be given (publicKeyFromRaw refuses it).
  const withEdCnf = (x: string) => {
    const m = decodeStrict(payload) as Map<number, CborValue>;
    m.set(
      8,
      new Map([
        [
          1,
          new Map<number, CborValue>([
            [1, 1],
            [-1, 6],
            [-2, Buffer.from(x, 'hex')],
          ]),
        ],
      ]),
    );
    return rawSign1(new Map([[1, -8]]), kidMap, encode(m), issuer);
  };
  const v: Vector[] = [
    chainVector(
      'SPEC §5.3 TANDEM-TOK-1: a typical issuer token (Ed25519 issuer, P-256 cnf, rider, weekday schedule)',
      [typical],
      {
        ok: true,
        rider: 'bianca',
        scope: ['unlock', 'status'],
        exp: NOW + 7 * 86_400,
        bytes: typical.length,
      },
    ),
    chainVector(
      'SPEC §5.5 TANDEM-CHAIN-4: an owner-signed token (offline sharing, ES256)',
      [mintToken(claims({ iss: 'adam' }), owner, OWNER_KID)],
      { ok: true, rider: 'bianca', scope: ['unlock', 'status'] },
      { reproducible: false },
    ),
    chainVector(
      'SPEC §5.5 TANDEM-CHAIN-3: a narrower delegation, signed by the parent holder',
      [delegate, link()],
      { ok: true, rider: 'carla', scope: ['unlock'], exp: NOW + 86_400 },
      { reproducible: false },
    ),
    chainVector(
      'SPEC §4 TANDEM-COSE-1: tagged 61(18(...)) is accepted (RFC 8392 §6)',
      [signSign1(payload, issuer, { kid: ISSUER_KID, tags: [61, 18] })],
      { ok: true, rider: 'bianca', scope: ['unlock', 'status'] },
    ),
    chainVector(
      'expired: SPEC §5.7 step 5, TANDEM-TIME-CHECK',
      [typical],
      { error: 'ERR_TOKEN_EXPIRED' },
      { now: NOW + 8 * 86_400 },
    ),
    chainVector(
      'not-yet-valid: SPEC §5.7 step 5',
      [typical],
      { error: 'ERR_TOKEN_NOT_YET_VALID' },
      { now: NOW - 7200 },
    ),
    chainVector(
      'wrong-audience: SPEC §5.7 step 4',
      [typical],
      { error: 'ERR_AUDIENCE_MISMATCH' },
      { lockId: 'lock-other' },
    ),
    chainVector(
      'outside-schedule: Saturday, SPEC §5.4 TANDEM-SCHED-2',
      [typical],
      { error: 'ERR_OUTSIDE_SCHEDULE' },
      { now: NOW + 3 * 86_400 },
    ),
    chainVector('unknown-kid: SPEC §5.7 step 2', [mintToken(claims(), issuer, Uint8Array.of(0x77))], {
      error: 'ERR_KEY_UNKNOWN',
    }),
    chainVector('signature-bit-flipped: SPEC §5.7 step 2', [sigFlipped], { error: 'ERR_SIGNATURE_INVALID' }),
    chainVector(
      'alg-mismatch: ES256 signature under the Ed25519 issuer kid, TANDEM-COSE-3',
      [mintToken(claims(), owner, ISSUER_KID)],
      { error: 'ERR_ALG_UNSUPPORTED' },
      { reproducible: false },
    ),
    chainVector(
      'alg-unprotected: alg only in the unprotected header, TANDEM-COSE-2',
      [
        rawSign1(
          new Map([[3, 0]]),
          new Map<number, CborValue>([
            [1, COSE_ALG.EdDSA],
            [4, ISSUER_KID],
          ]),
          payload,
          issuer,
        ),
      ],
      { error: 'ERR_COSE_INVALID' },
    ),
    chainVector(
      "empty-protected-map: protected header h'a0', TANDEM-COSE-2",
      [rawSign1(Uint8Array.of(0xa0), kidMap, payload, issuer)],
      { error: 'ERR_COSE_INVALID' },
    ),
    chainVector(
      'unknown-critical-header: crit lists label 99, TANDEM-COSE-4',
      [
        rawSign1(
          new Map<number, CborValue>([
            [1, -8],
            [2, [99]],
            [99, 1],
          ]),
          kidMap,
          payload,
          issuer,
        ),
      ],
      { error: 'ERR_COSE_INVALID' },
    ),
    chainVector(
      'duplicate-claim-key: "sub" twice in the claims map, TANDEM-CBOR-5',
      [rawSign1(new Map([[1, -8]]), kidMap, dupPayload, issuer)],
      { error: 'ERR_CBOR_INVALID' },
    ),
    chainVector(
      'widened-scope: delegation adds "manage", TANDEM-CHAIN-3',
      [delegate, link({ scope: ['unlock', 'manage'] })],
      { error: 'ERR_CHAIN_INVALID' },
      { reproducible: false },
    ),
    chainVector(
      'no-delegate-scope: parent lacks "delegate", TANDEM-CHAIN-3',
      [typical, link()],
      { error: 'ERR_CHAIN_INVALID' },
      { reproducible: false },
    ),
    chainVector('too-deep: four tokens, TANDEM-CHAIN-1', [delegate, delegate, delegate, delegate], {
      error: 'ERR_CHAIN_TOO_DEEP',
    }),
    chainVector(
      'forged-link: link signed by a key other than the parent holder, TANDEM-CHAIN-2',
      [delegate, mintToken(claims({ scope: ['unlock'], maxUses: 1 }), thief)],
      { error: 'ERR_SIGNATURE_INVALID' },
      { reproducible: false },
    ),
    chainVector(
      'unprotected-unknown-label: label 7 beside kid in the unprotected header, TANDEM-COSE-8',
      [
        rawSign1(
          new Map([[1, -8]]),
          new Map<number, CborValue>([
            [4, ISSUER_KID],
            [7, 'smuggled'],
          ]),
          payload,
          issuer,
        ),
      ],
      { error: 'ERR_COSE_INVALID' },
    ),
    chainVector(
      'protected-unknown-label: label 99 in the protected header, not critical, TANDEM-COSE-8',
      [
        rawSign1(
          new Map<number, CborValue>([
            [1, -8],
            [99, 1],
          ]),
          kidMap,
          payload,
          issuer,
        ),
      ],
      { error: 'ERR_COSE_INVALID' },
    ),
    chainVector(
      'link-with-kid: a delegation link that names a kid, TANDEM-TOK-1',
      [
        delegate,
        mintToken(
          claims({
            iss: 'bianca',
            cnf: friend.publicKey,
            scope: ['unlock'],
            maxUses: 2,
            cti: Buffer.from('a1a2a3a4a5a6a7a8', 'hex'),
          }),
          rider,
          ISSUER_KID,
        ),
      ],
      { error: 'ERR_COSE_INVALID' },
      { reproducible: false },
    ),
    chainVector(
      'iat-after-exp: "iat" 2^32-1, after "exp", TANDEM-TOK-3',
      [rawSign1(new Map([[1, -8]]), kidMap, withClaim(6, 0xffffffff), issuer)],
      { error: 'ERR_CLAIM_INVALID' },
    ),
    chainVector(
      'cnf-small-order-key: cnf is the Ed25519 identity point, for which (R = identity, S = 0) verifies every message, TANDEM-KEY-5',
      [withEdCnf('01' + '00'.repeat(31))],
      { error: 'ERR_KEY_INVALID' },
    ),
    chainVector(
      'cnf-non-canonical-key: cnf is an Ed25519 key with y = p + 1 (the identity, not canonical), TANDEM-KEY-5',
      [withEdCnf('ee' + 'ff'.repeat(30) + '7f')],
      { error: 'ERR_KEY_INVALID' },
    ),
  ];
  return {
    file: 'tokens.json',
    kind: 'chain-verify',
    description:
      'Token chains verified as a lock does (SPEC.md §5.7 steps 1-6): decode, signature, narrowing, audience, time, schedule.',
    vectors: v,
  };
}

function pops(): VectorFile {
  const token = mintToken(claims(), issuer, ISSUER_KID);
  const h = chainHash([token]);
  const nonce = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const req = (key: PrivateKey, over: { command?: Command; lockId?: string; chainRef?: boolean } = {}) =>
    createRequest({
      lockId: over.lockId ?? LOCK,
      nonce,
      command: over.command ?? Command.UNLOCK,
      ...(over.chainRef ? { chainRef: h.subarray(0, 16) } : { chain: [token] }),
      chainHash: h,
      holderKey: key,
    });
  const base = { anchors, lockId: LOCK, now: NOW, timeZone: TZ, nonce: hex(nonce), chain: [hex(token)] };
  const vec = (title: string, request: Uint8Array, expected: Vector['expected']): Vector => ({
    title,
    reproducible: false,
    input: { ...base, request: hex(request) },
    expected,
  });
  const truncated = req(rider).subarray(0, 100);
  // The request with its ES256 signature (r, s) replaced by (r, n - s), n the order of P-256 (SEC 2 §2.4.2).
  const highS = (request: Uint8Array) => {
    const m = decodeStrict(request) as Map<number, CborValue>;
    const sig = m.get(6) as Uint8Array;
    const n = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
    const s = BigInt('0x' + hex(sig.subarray(32)));
    const twin = Buffer.concat([
      sig.subarray(0, 32),
      Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex'),
    ]);
    m.set(6, twin);
    return encode(m);
  };
  return {
    file: 'pop.json',
    kind: 'pop-verify',
    description:
      'Unlock requests and proof of possession (SPEC.md §5.8): the holder signs lock id, nonce, command, args and chain hash with its cnf key.',
    vectors: [
      vec('SPEC §5.8 TANDEM-POP-1: the holder unlocks', req(rider), { ok: true, command: Command.UNLOCK }),
      vec('SPEC §5.8 TANDEM-POP-6: a repeat with a chain reference', req(rider, { chainRef: true }), {
        ok: true,
        command: Command.UNLOCK,
      }),
      vec('copied-token: a thief signs with another key, TANDEM-POP-1', req(thief), {
        error: 'ERR_POP_INVALID',
      }),
      vec('other-lock: signed for another lock id, TANDEM-POP-3', req(rider, { lockId: 'lock-other' }), {
        error: 'ERR_POP_INVALID',
      }),
      vec('truncated-request: cut at 100 bytes, TANDEM-CBOR-8', truncated, { error: 'ERR_CBOR_INVALID' }),
      vec(
        "SPEC §3 TANDEM-KEY-6: the high-S twin (r, n - s) of the holder's signature verifies; the spent nonce, not the signature bytes, stops its replay",
        highS(req(rider)),
        { ok: true, command: Command.UNLOCK },
      ),
    ],
  };
}

function cbor(): VectorFile {
  const c = (title: string, input: string, expected: Vector['expected']): Vector => ({
    title,
    reproducible: true,
    input: { hex: input },
    expected,
  });
  return {
    file: 'cbor.json',
    kind: 'cbor-decode',
    description: "Tandem's strict CBOR profile (SPEC.md §2, TANDEM-CBOR-1..8).",
    vectors: [
      c('SPEC §2: a well-formed map', 'a2012604423131', { ok: true }),
      c('duplicate-map-key: TANDEM-CBOR-5', 'a201020103', { error: 'ERR_CBOR_INVALID' }),
      c('regexp-tag-27: TANDEM-CBOR-6', 'd81b8263616263' + '60', { error: 'ERR_CBOR_INVALID' }),
      c('indefinite-array: TANDEM-CBOR-1', '9f01ff', { error: 'ERR_CBOR_INVALID' }),
      c('non-shortest-integer: TANDEM-CBOR-2', '1805', { error: 'ERR_CBOR_INVALID' }),
      c('float: TANDEM-CBOR-3', 'fb3ff0000000000000', { error: 'ERR_CBOR_INVALID' }),
      c('undefined: TANDEM-CBOR-3', 'f7', { error: 'ERR_CBOR_INVALID' }),
      c('invalid-utf8: TANDEM-CBOR-4', '62c328', { error: 'ERR_CBOR_INVALID' }),
      c('huge-length: TANDEM-CBOR-1', '5affffffff00', { error: 'ERR_CBOR_INVALID' }),
      c('deep-nesting: TANDEM-CBOR-7', '81'.repeat(20) + '00', { error: 'ERR_CBOR_INVALID' }),
      c('trailing-bytes: TANDEM-CBOR-8', '0000', { error: 'ERR_CBOR_INVALID' }),
      c('oversized: 5000 bytes, TANDEM-CBOR-7', '591385' + '00'.repeat(4997), { error: 'ERR_TOO_LARGE' }),
    ],
  };
}

function revocations(): VectorFile {
  const id = (n: number) => Buffer.alloc(12, n);
  const update = (u: Partial<RevocationUpdate>, key: PrivateKey = issuer) =>
    hex(
      encodeRevocationUpdate(
        { kind: 'full', version: 1, issuedAt: NOW, lockId: LOCK, added: [], removed: [], ...u },
        key,
        ISSUER_KID,
      ),
    );
  const full = update({
    version: 7,
    added: [
      { id: id(1), exp: NOW + 3600 },
      { id: id(2), exp: NOW - 10 },
    ],
  });
  const delta = update({
    kind: 'delta',
    version: 8,
    baseVersion: 7,
    added: [{ id: id(3), exp: NOW + 60 }],
    removed: [id(1)],
  });
  const vec = (
    title: string,
    updates: string[],
    expected: Vector['expected'],
    reproducible = true,
  ): Vector => ({
    title,
    reproducible,
    input: { anchors, lockId: LOCK, now: NOW, updates },
    expected,
  });
  const flipped = Buffer.from(full, 'hex');
  flipped[flipped.length - 1]! ^= 1;
  return {
    file: 'revocation.json',
    kind: 'revocation-apply',
    description:
      'Revocation updates (SPEC.md §6) applied in order to an empty state; expected: the version and revoked token ids held after the last update.',
    vectors: [
      vec('SPEC §6 TANDEM-REV-3: a full update; the entry already expired is dropped', [full], {
        ok: true,
        version: 7,
        revoked: [hex(id(1))],
      }),
      vec('SPEC §6 TANDEM-REV-7: a delta on top of its base', [full, delta], {
        ok: true,
        version: 8,
        revoked: [hex(id(3))],
      }),
      vec('rollback: the same version again, TANDEM-REV-6', [full, full], {
        error: 'ERR_REVOCATION_ROLLBACK',
      }),
      vec('wrong-base: a delta on an empty lock, TANDEM-REV-7', [delta], {
        error: 'ERR_REVOCATION_BASE_MISMATCH',
      }),
      vec('other-lock: an update for another lock', [update({ lockId: 'lock-other' })], {
        error: 'ERR_AUDIENCE_MISMATCH',
      }),
      vec('signature-bit-flipped', [hex(flipped)], { error: 'ERR_SIGNATURE_INVALID' }),
      vec(
        'owner-signed: only the issuer signs revocations',
        [update({}, owner)],
        { error: 'ERR_ALG_UNSUPPORTED' },
        false,
      ),
    ],
  };
}

function anchorUpdates(): VectorFile {
  const newIssuer = edKey('issuer 2');
  const thirdIssuer = edKey('issuer 3');
  const forger = edKey('forger');
  const NEW_KID = Uint8Array.of(0x02);
  const newAnchor = { kid: NEW_KID, alg: 'EdDSA' as const, key: newIssuer.publicKey.raw };
  const update = (u: Partial<AnchorUpdate>, key: PrivateKey = issuer, kid: Uint8Array = ISSUER_KID) =>
    hex(
      encodeAnchorUpdate(
        { lockId: LOCK, version: 1, issuedAt: NOW, add: [newAnchor], remove: [], ...u },
        key,
        kid,
      ),
    );
  // Bodies the encoder refuses to build, signed by hand to show that the lock refuses them too.
  const raw = (body: Map<number, CborValue>) =>
    hex(
      signSign1(encode(body), issuer, {
        protectedHeader: new Map<number, CborValue>([[HEADER.contentType, CONTENT_FORMAT.anchorUpdate]]),
        kid: ISSUER_KID,
      }),
    );
  const add1 = update({});
  const retire2 = update({ version: 2, remove: [ISSUER_KID] });
  const vec = (
    title: string,
    updates: string[],
    expected: Vector['expected'],
    reproducible = true,
  ): Vector => ({ title, reproducible, input: { anchors, lockId: LOCK, updates }, expected });
  const held = (...a: string[]) => ({ ok: true as const, anchors: a.sort() });
  const flipped = Buffer.from(add1, 'hex');
  flipped[flipped.length - 1]! ^= 1;
  const smallOrder = new Uint8Array(32);
  smallOrder[0] = 1; // the identity point ([TANDEM-KEY-5])
  return {
    file: 'anchor-updates.json',
    kind: 'anchor-apply',
    description:
      'Anchor updates (SPEC.md §6.6) applied in order to a lock holding issuer kid 01 ("tandem") and owner kid 0a ' +
      '("adam") at anchor version 0; expected: the version and the anchors held after the last update, as ' +
      '"kid:role:name".',
    vectors: [
      vec('SPEC §6.6 TANDEM-ANCHOR-3: the old issuer key adds the new one', [add1], {
        ...held('01:issuer:tandem', '02:issuer:tandem', '0a:owner:adam'),
        version: 1,
      }),
      vec('SPEC §6.6 TANDEM-ANCHOR-7: after the overlap, the old key retires itself', [add1, retire2], {
        ...held('02:issuer:tandem', '0a:owner:adam'),
        version: 2,
      }),
      vec('SPEC §6.6 TANDEM-ANCHOR-7: a lock that missed the overlap takes the retirement alone', [retire2], {
        ...held('02:issuer:tandem', '0a:owner:adam'),
        version: 2,
      }),
      vec(
        'SPEC §6.6 TANDEM-ANCHOR-2: the new key then signs the next rotation',
        [
          retire2,
          update(
            { version: 3, add: [{ kid: Uint8Array.of(0x03), alg: 'EdDSA', key: thirdIssuer.publicKey.raw }] },
            newIssuer,
            NEW_KID,
          ),
        ],
        { ...held('02:issuer:tandem', '03:issuer:tandem', '0a:owner:adam'), version: 3 },
      ),
      vec('SPEC §6.6 TANDEM-ANCHOR-3: a re-delivery changes nothing', [add1, add1], {
        ...held('01:issuer:tandem', '02:issuer:tandem', '0a:owner:adam'),
        version: 1,
      }),
      vec(
        'retired-key: the old key signs nothing once removed, TANDEM-ANCHOR-2',
        [retire2, update({ version: 3 })],
        {
          error: 'ERR_KEY_UNKNOWN',
        },
      ),
      vec('rollback: an older version, TANDEM-ANCHOR-3', [update({ version: 3 }), add1], {
        error: 'ERR_ANCHOR_ROLLBACK',
      }),
      vec('remove-last-issuer: TANDEM-ANCHOR-4', [update({ add: [], remove: [ISSUER_KID] })], {
        error: 'ERR_ANCHOR_REFUSED',
      }),
      vec('remove-owner-key: TANDEM-ANCHOR-4', [update({ remove: [OWNER_KID] })], {
        error: 'ERR_ANCHOR_REFUSED',
      }),
      vec(
        'kid-reused-for-another-key: TANDEM-ANCHOR-3',
        [update({ add: [{ kid: ISSUER_KID, alg: 'EdDSA', key: newIssuer.publicKey.raw }] })],
        { error: 'ERR_ANCHOR_REFUSED' },
      ),
      vec('signature-bit-flipped', [hex(flipped)], { error: 'ERR_SIGNATURE_INVALID' }),
      vec('forged: another key under the issuer kid', [update({}, forger)], {
        error: 'ERR_SIGNATURE_INVALID',
      }),
      vec('unknown-kid: a key the lock does not hold', [update({}, forger, Uint8Array.of(0x09))], {
        error: 'ERR_KEY_UNKNOWN',
      }),
      vec(
        'owner-signed: an owner key never adds an issuer, TANDEM-ANCHOR-2',
        [update({}, owner, OWNER_KID)],
        { error: 'ERR_KEY_UNKNOWN' },
        false,
      ),
      vec('other-lock: an update for another lock', [update({ lockId: 'lock-other' })], {
        error: 'ERR_AUDIENCE_MISMATCH',
      }),
      vec(
        'small-order-key: TANDEM-KEY-5',
        [
          raw(
            new Map<number, CborValue>([
              [1, LOCK],
              [2, 1],
              [3, NOW],
              [4, [[NEW_KID, COSE_ALG.EdDSA, smallOrder]]],
            ]),
          ),
        ],
        { error: 'ERR_KEY_INVALID' },
      ),
      vec(
        'duplicate-kid: added and removed at once, TANDEM-ANCHOR-1',
        [
          raw(
            new Map<number, CborValue>([
              [1, LOCK],
              [2, 1],
              [3, NOW],
              [4, [[NEW_KID, COSE_ALG.EdDSA, newIssuer.publicKey.raw]]],
              [5, [NEW_KID]],
            ]),
          ),
        ],
        { error: 'ERR_MESSAGE_INVALID' },
      ),
      vec(
        'revocation-as-anchor: another content type, TANDEM-REV-1',
        [
          hex(
            encodeRevocationUpdate(
              { kind: 'full', version: 1, issuedAt: NOW, lockId: LOCK, added: [], removed: [] },
              issuer,
              ISSUER_KID,
            ),
          ),
        ],
        { error: 'ERR_COSE_INVALID' },
      ),
    ],
  };
}

function beacons(): VectorFile {
  const nonce = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const beacon = (b: Partial<TimeBeacon>, key: PrivateKey = issuer) =>
    hex(encodeTimeBeacon({ time: NOW, accuracy: 2, ...b }, key, ISSUER_KID));
  const vec = (title: string, bytes: string, expected: Vector['expected'], reproducible = true): Vector => ({
    title,
    reproducible,
    input: { anchors, lockId: LOCK, beacon: bytes },
    expected,
  });
  return {
    file: 'time-beacons.json',
    kind: 'time-beacon-verify',
    description:
      'Issuer-signed time beacons (SPEC.md §7); expected: the time, and whether the beacon answers a nonce.',
    vectors: [
      vec('SPEC §7 TANDEM-TIME-1: a broadcast beacon', beacon({}), { ok: true, time: NOW, bound: false }),
      vec('SPEC §7 TANDEM-TIME-2: a beacon bound to a lock nonce', beacon({ nonce, lockId: LOCK }), {
        ok: true,
        time: NOW,
        bound: true,
      }),
      vec('other-lock: a beacon for another lock', beacon({ lockId: 'lock-other' }), {
        error: 'ERR_AUDIENCE_MISMATCH',
      }),
      vec(
        'owner-signed: only the issuer signs beacons',
        beacon({}, owner),
        { error: 'ERR_ALG_UNSUPPORTED' },
        false,
      ),
      vec(
        'token-as-beacon: a token is not a beacon, TANDEM-REV-1',
        hex(mintToken(claims(), issuer, ISSUER_KID)),
        {
          error: 'ERR_COSE_INVALID',
        },
      ),
    ],
  };
}

function frames(): VectorFile {
  const body = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => i & 0xff));
  const vec = (title: string, length: number, mtu: number, count: number): Vector => ({
    title,
    reproducible: true,
    input: { type: MessageType.unlockRequest, body: hex(body(length)), attMtu: mtu },
    expected: {
      ok: true,
      frames: frameMessage(MessageType.unlockRequest, body(length), mtu).map(hex),
      count,
    },
  });
  return {
    file: 'gatt-frames.json',
    kind: 'gatt-frames',
    description: 'GATT framing (SPEC.md §8): a message split into ATT writes; expected: the exact frames.',
    vectors: [
      vec('SPEC §8: a 178-byte message is one write at MTU 185', 178, 185, 1),
      vec('SPEC §8: a 312-byte unlock request is two writes at MTU 185', 312, 185, 2),
      vec('SPEC §8: a 359-byte message is the most two writes carry at MTU 185', 359, 185, 2),
      vec('SPEC §8: a 40-byte message at the minimum MTU 23', 40, 23, 3),
      vec('SPEC §8: an empty message is one frame', 0, 23, 1),
    ],
  };
}

function topics(): VectorFile {
  const vec = (title: string, topic: string, expected: Vector['expected']): Vector => ({
    title,
    reproducible: true,
    input: { topic },
    expected,
  });
  return {
    file: 'mqtt-topics.json',
    kind: 'mqtt-topic',
    description: 'The MQTT topic tree (SPEC.md §9); expected: the parsed kind and lock id.',
    vectors: [
      vec('SPEC §9: a lock alert topic', 'tandem/v1/lock/lock-7f3a/alert', {
        ok: true,
        kind: 'alert',
        lockId: LOCK,
      }),
      vec('SPEC §9: the fleet time topic', 'tandem/v1/time', { ok: true, kind: 'time' }),
      vec('wildcard-lock-id', 'tandem/v1/lock/+/alert', { error: 'ERR_TOPIC_INVALID' }),
      vec('multi-level-wildcard', 'tandem/v1/lock/#', { error: 'ERR_TOPIC_INVALID' }),
      vec('other-version', 'tandem/v2/lock/lock-7f3a/alert', { error: 'ERR_TOPIC_INVALID' }),
      vec('unknown-kind', 'tandem/v1/lock/lock-7f3a/unlock', { error: 'ERR_TOPIC_INVALID' }),
      vec('upper-case-lock-id', 'tandem/v1/lock/Lock-7F3A/alert', { error: 'ERR_TOPIC_INVALID' }),
    ],
  };
}

function lockStates(): VectorFile {
  const device = edKey('lock device 7f3a');
  const base: LockStateReport = {
    lockId: LOCK,
    state: 'locked',
    time: NOW,
    uncertainty: 3,
    revocationVersion: 13,
    outboxEpoch: 7,
    outboxSequence: 42,
  };
  const report = (over: Partial<LockStateReport> = {}) => hex(encodeLockState({ ...base, ...over }, device));
  // A payload the encoder refuses to make, signed by the device key, for the field negatives.
  const raw = (battery: CborValue) =>
    hex(
      signSign1(
        encode(
          new Map<number, CborValue>([
            [1, LOCK],
            [2, 'locked'],
            [3, NOW],
            [4, 3],
            [5, 13],
            [6, 7],
            [7, 42],
            [8, battery],
          ]),
        ),
        device,
        { protectedHeader: new Map<number, CborValue>([[HEADER.contentType, CONTENT_FORMAT.lockState]]) },
      ),
    );
  const vec = (title: string, bytes: string, expected: Vector['expected']): Vector => ({
    title,
    reproducible: true,
    input: { deviceKey: hex(device.publicKey.raw), lockId: LOCK, state: bytes },
    expected,
  });
  const ok = (battery: number | null) => ({
    ok: true as const,
    lockId: LOCK,
    state: 'locked',
    time: NOW,
    uncertainty: 3,
    revocationVersion: 13,
    outboxEpoch: 7,
    outboxSequence: 42,
    battery,
  });
  return {
    file: 'lock-states.json',
    kind: 'lock-state-verify',
    description:
      'Lock state reports signed by the lock device key (SPEC.md §9.5); expected: the fields, battery null when absent.',
    vectors: [
      vec('SPEC §9.5 TANDEM-MQTT-10: a state report without a battery (no fuel gauge)', report(), ok(null)),
      vec(
        'SPEC §9.5 TANDEM-MQTT-14: a state report with the battery at 87 %',
        report({ battery: 87 }),
        ok(87),
      ),
      vec('TANDEM-MQTT-14: battery 0 % is a reading', report({ battery: 0 }), ok(0)),
      vec('TANDEM-MQTT-14: battery 100 %', report({ battery: 100 }), ok(100)),
      vec('battery-101: above 100 %, TANDEM-MQTT-14', raw(101), { error: 'ERR_MESSAGE_INVALID' }),
      vec('battery-negative', raw(-1), { error: 'ERR_MESSAGE_INVALID' }),
      vec('battery-null: absent is the way to say "no gauge"', raw(null), { error: 'ERR_MESSAGE_INVALID' }),
      vec('battery-text', raw('87'), { error: 'ERR_MESSAGE_INVALID' }),
    ],
  };
}

function claimReceipts(): VectorFile {
  const device = edKey('lock device 7f3a');
  const other = edKey('lock device other');
  const base: ClaimReceipt = {
    lockId: LOCK,
    owner: 'adam',
    ownerKey: owner.publicKey,
    ownerKid: OWNER_KID,
    claimedAt: NOW,
  };
  const receipt = (over: Partial<ClaimReceipt> = {}, key: PrivateKey = device) =>
    hex(encodeClaimReceipt({ ...base, ...over }, key));
  // A payload the encoder refuses to make, signed by the device key, for the field negatives.
  const rawReceipt = (body: Map<number, CborValue>) =>
    hex(
      signSign1(encode(body), device, {
        protectedHeader: new Map<number, CborValue>([[HEADER.contentType, CONTENT_FORMAT.claimReceipt]]),
      }),
    );
  const body = (over: [number, CborValue | undefined][]) => {
    // The owner key as the encoder writes it ([TANDEM-KEY-2]): EC2, P-256, x, sign bit of y.
    const ownerCoseKey = new Map<number, CborValue>([
      [1, 2],
      [-1, 1],
      [-2, owner.publicKey.raw.subarray(1)],
      [-3, owner.publicKey.raw[0] === 3],
    ]);
    const m = new Map<number, CborValue>([
      [1, LOCK],
      [2, 'adam'],
      [3, ownerCoseKey],
      [4, OWNER_KID],
      [5, NOW],
    ]);
    for (const [k, v] of over) {
      if (v === undefined) m.delete(k);
      else m.set(k, v);
    }
    return m;
  };
  const vec = (title: string, bytes: string, expected: Vector['expected'], lockId = LOCK): Vector => ({
    title,
    reproducible: true,
    input: { deviceKey: hex(device.publicKey.raw), lockId, receipt: bytes },
    expected,
  });
  return {
    file: 'claim-receipts.json',
    kind: 'claim-receipt-verify',
    description:
      'Claim receipts signed by the lock device key (SPEC.md §12); expected: the owner, its key and kid.',
    vectors: [
      vec('SPEC §12 TANDEM-CLAIM-1: a claim receipt for a P-256 owner key', receipt(), {
        ok: true,
        owner: 'adam',
        ownerKey: hex(owner.publicKey.raw),
        ownerKid: hex(OWNER_KID),
        claimedAt: NOW,
      }),
      vec('SPEC §12 TANDEM-CLAIM-1: a never-synchronised lock claims at time 0', receipt({ claimedAt: 0 }), {
        ok: true,
        owner: 'adam',
        ownerKey: hex(owner.publicKey.raw),
        ownerKid: hex(OWNER_KID),
        claimedAt: 0,
      }),
      vec('other-device-key: signed by another lock, TANDEM-CLAIM-3', receipt({}, other), {
        error: 'ERR_SIGNATURE_INVALID',
      }),
      vec(
        'other-lock: a genuine receipt for another lock id',
        receipt(),
        { error: 'ERR_AUDIENCE_MISMATCH' },
        'lock-other',
      ),
      vec(
        'beacon-as-receipt: a time beacon is not a claim receipt, TANDEM-REV-1',
        hex(encodeTimeBeacon({ time: NOW, accuracy: 2 }, device, ISSUER_KID)),
        {
          error: 'ERR_COSE_INVALID',
        },
      ),
      vec('owner-missing', rawReceipt(body([[2, undefined]])), { error: 'ERR_MESSAGE_INVALID' }),
      vec('owner-with-space', rawReceipt(body([[2, 'adam smith']])), { error: 'ERR_MESSAGE_INVALID' }),
      vec('owner-kid-17-bytes', rawReceipt(body([[4, new Uint8Array(17)]])), {
        error: 'ERR_MESSAGE_INVALID',
      }),
      vec('unknown-key-6', rawReceipt(body([[6, 1]])), { error: 'ERR_MESSAGE_INVALID' }),
      vec(
        'owner-key-small-order',
        rawReceipt(
          body([
            [
              3,
              new Map<number, CborValue>([
                [1, 1],
                [-1, 6],
                [-2, Uint8Array.of(1, ...new Uint8Array(31))],
              ]),
            ],
          ]),
        ),
        {
          error: 'ERR_KEY_INVALID',
        },
      ),
    ],
  };
}

function remoteCommands(): VectorFile {
  const base: RemoteCommand = {
    lockId: LOCK,
    command: Command.LOCK,
    sequence: 7,
    issuedAt: NOW - 30,
    expiry: NOW + 30,
  };
  const signed = (c: Partial<RemoteCommand>, key: PrivateKey = issuer) =>
    hex(encodeRemoteCommand({ ...base, ...c }, key, ISSUER_KID));
  // Bodies the encoder refuses to make (it runs the decoder's rules): signed by hand, as a forger would.
  const rawBody = (over: [number, CborValue][]) => {
    const m = new Map<number, CborValue>([
      [1, LOCK],
      [2, Command.LOCK],
      [3, 7],
      [4, NOW - 30],
      [5, NOW + 30],
    ]);
    for (const [k, v] of over) m.set(k, v);
    return hex(
      rawSign1(
        new Map<number, CborValue>([
          [1, -8],
          [3, 65111],
        ]),
        new Map([[4, ISSUER_KID]]),
        encode(m),
        issuer,
      ),
    );
  };
  const vec = (
    title: string,
    command: string,
    expected: Vector['expected'],
    over: { earliest?: number; latest?: number; lastSequence?: number } = {},
    reproducible = true,
  ): Vector => ({
    title,
    reproducible,
    input: {
      anchors,
      lockId: LOCK,
      command,
      earliest: over.earliest ?? NOW - 2,
      latest: over.latest ?? NOW + 2,
      lastSequence: over.lastSequence ?? 6,
    },
    expected,
  });
  return {
    file: 'remote-commands.json',
    kind: 'remote-command-verify',
    description:
      "Issuer-signed remote commands (SPEC.md §9.11): verified, then checked against the lock's interval " +
      '[earliest, latest] and the last sequence it accepted; expected: the command and its sequence.',
    vectors: [
      vec('SPEC §9.11 TANDEM-RCMD-1: LOCK, sequence 7 after 6', signed({}), {
        ok: true,
        command: Command.LOCK,
        sequence: 7,
      }),
      vec('unlock: TANDEM-RCMD-2, only LOCK may be sent', rawBody([[2, Command.UNLOCK]]), {
        error: 'ERR_SCOPE_DENIED',
      }),
      vec('lifetime-61s: TANDEM-RCMD-3', rawBody([[5, NOW + 31]]), { error: 'ERR_MESSAGE_INVALID' }),
      vec('forged: signed by another key under the issuer kid', signed({}, edKey('thief issuer')), {
        error: 'ERR_SIGNATURE_INVALID',
      }),
      vec('other-lock: TANDEM-RCMD-5', signed({ lockId: 'lock-other' }), { error: 'ERR_AUDIENCE_MISMATCH' }),
      vec(
        'replayed: sequence not above the last accepted, TANDEM-RCMD-4',
        signed({}),
        { error: 'ERR_COMMAND_REPLAYED' },
        {
          lastSequence: 7,
        },
      ),
      vec(
        'expired: TANDEM-RCMD-3',
        signed({}),
        { error: 'ERR_TOKEN_EXPIRED' },
        { earliest: NOW + 30, latest: NOW + 33 },
      ),
      vec(
        'not-yet-valid: TANDEM-RCMD-3',
        signed({}),
        { error: 'ERR_TOKEN_NOT_YET_VALID' },
        {
          earliest: NOW - 40,
          latest: NOW - 31,
        },
      ),
      vec(
        'time-uncertain: unbounded after a reboot, TANDEM-TIME-6',
        signed({}),
        { error: 'ERR_TIME_UNCERTAIN' },
        {
          earliest: NOW - 2,
          latest: 0xffff_ffff,
        },
      ),
      vec(
        'beacon-as-command: TANDEM-REV-1',
        hex(encodeTimeBeacon({ time: NOW, accuracy: 2 }, issuer, ISSUER_KID)),
        { error: 'ERR_COSE_INVALID' },
      ),
    ],
  };
}

/** Builds every vector file. */
export function build(): VectorFile[] {
  return [
    cbor(),
    tokens(),
    pops(),
    revocations(),
    anchorUpdates(),
    beacons(),
    frames(),
    topics(),
    claimReceipts(),
    lockStates(),
    remoteCommands(),
  ];
}

/** Writes the files beside this script. */
export function writeAll(dir = dirname(fileURLToPath(import.meta.url))): void {
  for (const f of build()) {
    writeFileSync(
      join(dir, f.file),
      JSON.stringify({ kind: f.kind, description: f.description, vectors: f.vectors }, null, 2) + '\n',
    );
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) writeAll();
