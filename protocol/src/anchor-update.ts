/**
 * Anchor updates and their acknowledgements (SPEC.md §6.6): how the issuer rotates its key on a lock. The
 * new issuer anchor travels signed by an issuer anchor the lock already holds (the old key), so a phone or
 * broker carrying it cannot add a key of its own; the lock applies it atomically, never backwards, never
 * removing its last issuer anchor nor an owner key, and acknowledges it with its device key.
 *
 * Anchor update, COSE_Sign1 by an issuer anchor of the lock, content type 65108, `kid` unprotected
 * ([TANDEM-ANCHOR-1]):
 *
 * | key | field     | type                               | rule                                              |
 * | --- | --------- | ---------------------------------- | ------------------------------------------------- |
 * | 1   | lock id   | tstr                               | the audience ([TANDEM-GEN-3])                     |
 * | 2   | version   | uint                               | ≥ 1, strictly increasing per lock                 |
 * | 3   | issued at | uint                               | Unix seconds                                      |
 * | 4   | add       | [* [kid bstr 1..32, alg int, key]] | 0..4 issuer anchors the lock must hold            |
 * | 5   | remove    | [+ kid bstr 1..32]                 | OPTIONAL (absent = none), 1..4 issuer kids        |
 *
 * Anchor acknowledgement, COSE_Sign1 by the lock's device key, content type 65109, no `kid`
 * ([TANDEM-ANCHOR-5]): `{1: lock id, 2: version, 3: lock time}`.
 */
import type { CborLimits, CborValue } from './cbor.js';
import { encode } from './cbor.js';
import type { Sign1 } from './cose.js';
import { HEADER, signSign1, toHex, verifySign1 } from './cose.js';
import { ProtocolError } from './errors.js';
import type { Alg, PrivateKey, PublicKey } from './keys.js';
import { COSE_ALG, algFromCose, publicKeyFromRaw } from './keys.js';
import {
  CONTENT_FORMAT,
  PayloadReader,
  checkLockAudience,
  openSign1,
  signPayload,
  verifyIssuerSigned,
} from './lib/signed-payload.js';

/** Most anchors one update adds, and most kids it removes ([TANDEM-ANCHOR-1]). */
export const MAX_ANCHOR_CHANGES = 4;
/** Most issuer anchors a lock holds after an update ([TANDEM-ANCHOR-3]). */
export const MAX_ISSUER_ANCHORS = 4;
/** Largest encoded anchor update ([TANDEM-ANCHOR-1]): 4 anchors of at most 104 bytes, 4 kids, headers. */
export const MAX_ANCHOR_UPDATE_BYTES = 1024;
/** Largest encoded anchor acknowledgement ([TANDEM-ANCHOR-5]). */
export const MAX_ANCHOR_ACK_BYTES = 256;

const UPDATE_LIMITS: CborLimits = { maxBytes: MAX_ANCHOR_UPDATE_BYTES, maxDepth: 3, maxItems: 8 };
const ACK_LIMITS: CborLimits = { maxBytes: MAX_ANCHOR_ACK_BYTES, maxDepth: 1, maxItems: 8 };

/** An issuer anchor as an update carries it: the kid, the algorithm the key is bound to, the compact key. */
export interface AnchorKey {
  readonly kid: Uint8Array;
  readonly alg: Alg;
  /** Compact public key ([TANDEM-KEY-2]). */
  readonly key: Uint8Array;
}

/** The typed body of an anchor update ([TANDEM-ANCHOR-1]). */
export interface AnchorUpdate {
  readonly lockId: string;
  readonly version: number;
  readonly issuedAt: number;
  /** Issuer anchors the lock must hold afterwards (already held with the same key: no change). */
  readonly add: readonly AnchorKey[];
  /** Issuer kids the lock must no longer hold (not held: no change). */
  readonly remove: readonly Uint8Array[];
}

/** A structurally valid anchor update; its signature is not yet verified. */
export interface DecodedAnchorUpdate {
  readonly sign1: Sign1;
  readonly update: AnchorUpdate;
}

/** A verified anchor update and the kid of the anchor that signed it (the new anchors inherit its name). */
export interface VerifiedAnchorUpdate {
  readonly update: AnchorUpdate;
  readonly signerKid: Uint8Array;
}

const UPD = 'anchor update';
const UPD_KEYS = { 1: 'lock id', 2: 'version', 3: 'issued at', 4: 'add', 5: 'remove' } as const;

function parseUpdateBody(payload: Uint8Array): AnchorUpdate {
  const r: PayloadReader = PayloadReader.parse(payload, UPDATE_LIMITS, UPD, UPD_KEYS);
  const lockId = r.lockId(1);
  const version = r.uint(2, 1);
  const issuedAt = r.uint(3);
  const addRaw = r.array(4, MAX_ANCHOR_CHANGES);
  const removeRaw = r.has(5) ? r.array(5, MAX_ANCHOR_CHANGES) : [];
  if (r.has(5) && removeRaw.length === 0) r.fail(5, 'must be omitted when empty');
  if (addRaw.length + removeRaw.length === 0) r.fail(4, 'and "remove" (key 5) are both empty: nothing to do');
  const seen = new Set<string>();
  const kidOf = (key: 4 | 5, i: number, v: CborValue | undefined): Uint8Array => {
    if (!(v instanceof Uint8Array) || v.length === 0 || v.length > 32) {
      r.fail(key, `item ${i}: kid must be a byte string of 1 to 32 bytes`);
    }
    const hex = toHex(v);
    if (seen.has(hex)) r.fail(key, `item ${i}: kid ${hex} appears more than once in the update`);
    seen.add(hex);
    return v;
  };
  const add = addRaw.map((item, i): AnchorKey => {
    if (!Array.isArray(item) || item.length !== 3) r.fail(4, `item ${i} must be an array [kid, alg, key]`);
    const kid = kidOf(4, i, item[0]);
    const alg = algFromCose(item[1]);
    if (alg === undefined) r.fail(4, `item ${i}: alg must be -8 (EdDSA) or -7 (ES256)`);
    const key = item[2];
    if (!(key instanceof Uint8Array)) r.fail(4, `item ${i}: key must be a byte string`);
    // [TANDEM-KEY-2], [TANDEM-KEY-5]: a key that is not a valid compact key of its algorithm is ERR_KEY_INVALID.
    publicKeyFromRaw(alg, key);
    return { kid, alg, key };
  });
  const remove = removeRaw.map((item, i) => kidOf(5, i, item));
  return { lockId, version, issuedAt, add, remove };
}

function updateBodyMap(u: AnchorUpdate): Map<number, CborValue> {
  const m = new Map<number, CborValue>([
    [1, u.lockId],
    [2, u.version],
    [3, u.issuedAt],
    [4, u.add.map((a) => [a.kid, COSE_ALG[a.alg], a.key])],
  ]);
  if (u.remove.length > 0) m.set(5, [...u.remove]);
  return m;
}

/**
 * Encodes and signs an anchor update with an issuer key the lock already trusts; `kid` (that key's id on the
 * lock) goes in the unprotected header ([TANDEM-ANCHOR-1]). The body is checked by the decoder's own rules
 * first. Throws ERR_MESSAGE_INVALID, ERR_KEY_INVALID or ERR_CBOR_INVALID for an invalid update.
 */
export function encodeAnchorUpdate(update: AnchorUpdate, issuerKey: PrivateKey, kid: Uint8Array): Uint8Array {
  const payload = encode(updateBodyMap(update));
  parseUpdateBody(payload);
  return signSign1(payload, issuerKey, {
    protectedHeader: new Map<number, CborValue>([[HEADER.contentType, CONTENT_FORMAT.anchorUpdate]]),
    kid,
  });
}

/** Decodes an anchor update without checking its signature ([TANDEM-ANCHOR-1]). Throws only ProtocolError. */
export function decodeAnchorUpdate(bytes: Uint8Array): DecodedAnchorUpdate {
  const sign1 = openSign1(bytes, MAX_ANCHOR_UPDATE_BYTES, CONTENT_FORMAT.anchorUpdate, UPD);
  return { sign1, update: parseUpdateBody(sign1.payload) };
}

/**
 * Decodes and verifies an anchor update for lock `expectedLockId` ([TANDEM-ANCHOR-2]): structure, the issuer
 * anchor named by `kid` (`resolveIssuerKey` must answer for issuer anchors only: an owner key never signs
 * one), the signature, then the audience. Throws ERR_KEY_UNKNOWN, ERR_SIGNATURE_INVALID,
 * ERR_AUDIENCE_MISMATCH and the decoding errors; never another exception type.
 */
export function verifyAnchorUpdate(
  bytes: Uint8Array,
  resolveIssuerKey: (kid: Uint8Array) => PublicKey | undefined,
  expectedLockId: string,
): VerifiedAnchorUpdate {
  const { sign1, update } = decodeAnchorUpdate(bytes);
  verifyIssuerSigned(sign1, resolveIssuerKey, UPD);
  checkLockAudience(update.lockId, expectedLockId, UPD);
  return { update, signerKid: sign1.kid! };
}

/** A trust anchor as a lock holds it (firmware-sim's AnchorRecord has this shape). */
export interface HeldAnchor extends AnchorKey {
  readonly role: 'issuer' | 'owner';
  /** For an issuer anchor, the issuer id that tokens' `iss` must name ([TANDEM-CHAIN-4]). */
  readonly name: string;
}

/** What a lock holds: its anchors and the version of the last anchor update applied (0: none). */
export interface AnchorState {
  readonly version: number;
  readonly anchors: readonly HeldAnchor[];
}

/** The outcome of {@link applyAnchorUpdate}. */
export interface AnchorApplied {
  readonly state: AnchorState;
  /** False for a re-delivery of the version held or an update that changes no anchor. */
  readonly changed: boolean;
}

const same = (a: Uint8Array, b: Uint8Array): boolean => toHex(a) === toHex(b);

/**
 * Applies a verified update to `state` ([TANDEM-ANCHOR-3], [TANDEM-ANCHOR-4]) and returns the new state;
 * `state` is not changed. Pure: the caller stores the result atomically.
 *
 * - version below the held one: ERR_ANCHOR_ROLLBACK; equal: a re-delivery, nothing changes (acknowledge).
 * - an added kid already held with the same algorithm and key as an issuer anchor changes nothing; held with
 *   another key or as an owner key: ERR_ANCHOR_REFUSED (a kid selects exactly one key).
 * - new anchors are issuer anchors named like the anchor `signerKid` that signed the update: a key
 *   rotation changes the issuer's key, never the issuer id tokens name.
 * - a removed kid not held changes nothing; one naming an owner key: ERR_ANCHOR_REFUSED.
 * - afterwards at least one and at most {@link MAX_ISSUER_ANCHORS} issuer anchors: ERR_ANCHOR_REFUSED.
 */
export function applyAnchorUpdate(state: AnchorState, verified: VerifiedAnchorUpdate): AnchorApplied {
  const { update, signerKid } = verified;
  if (update.version < state.version) {
    throw new ProtocolError(
      'ERR_ANCHOR_ROLLBACK',
      `${UPD} "version" (key 2) ${update.version} is older than the held anchor version ${state.version}`,
    );
  }
  if (update.version === state.version) return { state, changed: false };
  const signer = state.anchors.find((a) => a.role === 'issuer' && same(a.kid, signerKid));
  if (signer === undefined) {
    // verifyAnchorUpdate resolved the signer among these anchors; a caller that mixed states gets a refusal.
    throw new ProtocolError('ERR_KEY_UNKNOWN', `${UPD} signer ${toHex(signerKid)} is not an issuer anchor`);
  }
  let anchors = [...state.anchors];
  let changed = false;
  for (const a of update.add) {
    const held = anchors.find((h) => same(h.kid, a.kid));
    if (held === undefined) {
      anchors.push({ kid: a.kid, alg: a.alg, key: a.key, role: 'issuer', name: signer.name });
      changed = true;
    } else if (held.role !== 'issuer' || held.alg !== a.alg || !same(held.key, a.key)) {
      throw new ProtocolError(
        'ERR_ANCHOR_REFUSED',
        `${UPD} "add" (key 4) kid ${toHex(a.kid)} is held for another ${held.role === 'owner' ? 'owner key' : 'key'}`,
      );
    }
  }
  for (const kid of update.remove) {
    const held = anchors.find((h) => same(h.kid, kid));
    if (held === undefined) continue;
    if (held.role === 'owner') {
      throw new ProtocolError(
        'ERR_ANCHOR_REFUSED',
        `${UPD} "remove" (key 5) kid ${toHex(kid)} names an owner key; only its owner removes it`,
      );
    }
    anchors = anchors.filter((h) => h !== held);
    changed = true;
  }
  const issuers = anchors.filter((a) => a.role === 'issuer').length;
  if (issuers === 0) {
    throw new ProtocolError('ERR_ANCHOR_REFUSED', `${UPD} would remove the lock's last issuer anchor`);
  }
  if (issuers > MAX_ISSUER_ANCHORS) {
    throw new ProtocolError(
      'ERR_ANCHOR_REFUSED',
      `${UPD} would leave ${issuers} issuer anchors, more than ${MAX_ISSUER_ANCHORS}`,
    );
  }
  return { state: { version: update.version, anchors }, changed };
}

// ---------------------------------------------------------------------------------------------------------
// Anchor acknowledgements (lock -> cloud).
// ---------------------------------------------------------------------------------------------------------

/** A lock's statement that it holds anchor version `version` ([TANDEM-ANCHOR-5]). */
export interface AnchorAck {
  readonly lockId: string;
  readonly version: number;
  /** The lock's clock when it applied the update, Unix seconds. */
  readonly lockTime: number;
}

const ACK = 'anchor ack';
const ACK_KEYS = { 1: 'lock id', 2: 'version', 3: 'lock time' } as const;

function parseAckBody(payload: Uint8Array): AnchorAck {
  const r: PayloadReader = PayloadReader.parse(payload, ACK_LIMITS, ACK, ACK_KEYS);
  return { lockId: r.lockId(1), version: r.uint(2, 1), lockTime: r.uint(3) };
}

/** Encodes and signs an anchor acknowledgement with the lock's device key ([TANDEM-ANCHOR-5]). */
export function encodeAnchorAck(ack: AnchorAck, deviceKey: PrivateKey): Uint8Array {
  const body = new Map<number, CborValue>([
    [1, ack.lockId],
    [2, ack.version],
    [3, ack.lockTime],
  ]);
  parseAckBody(encode(body));
  return signPayload(body, deviceKey, CONTENT_FORMAT.anchorAck);
}

/** Verifies an anchor acknowledgement with the device key of `expectedLockId`, then its lock id. */
export function verifyAnchorAck(bytes: Uint8Array, deviceKey: PublicKey, expectedLockId: string): AnchorAck {
  const sign1 = openSign1(bytes, MAX_ANCHOR_ACK_BYTES, CONTENT_FORMAT.anchorAck, ACK);
  const ack = parseAckBody(sign1.payload);
  verifySign1(sign1, deviceKey);
  checkLockAudience(ack.lockId, expectedLockId, ACK);
  return ack;
}
