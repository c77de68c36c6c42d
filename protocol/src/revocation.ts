/**
 * Revocation updates and their acknowledgements (SPEC.md §6). The payload conventions that §6 to §9 share
 * live in `lib/signed-payload.ts`.
 *
 * A revocation update is signed by the issuer (COSE_Sign1, `kid` in the unprotected header) and names one
 * lock. Payload map ([TANDEM-REV-3]):
 *
 * | key | field         | type                        | rule                                             |
 * | --- | ------------- | --------------------------- | ------------------------------------------------ |
 * | 1   | kind          | uint                        | 0 = full, 1 = delta                              |
 * | 2   | version       | uint                        | > 0, strictly increasing per lock                |
 * | 3   | base version  | uint                        | delta only: applies on exactly that version      |
 * | 4   | issued at     | uint (Unix seconds)         |                                                  |
 * | 5   | lock id       | tstr                        | the audience                                     |
 * | 6   | added         | [* [bstr 1..32, uint]]      | token id and the revoked token's own exp         |
 * | 7   | removed       | [* bstr 1..32]              | delta only, optional                             |
 */
import { createHash } from 'node:crypto';
import type { CborLimits, CborValue } from './cbor.js';
import { encode } from './cbor.js';
import type { Sign1 } from './cose.js';
import { HEADER, signSign1, toHex, verifySign1 } from './cose.js';
import { ProtocolError } from './errors.js';
import type { PrivateKey, PublicKey } from './keys.js';
import {
  CONTENT_FORMAT,
  PayloadReader,
  UINT32_MAX,
  checkLockAudience,
  openSign1,
  signPayload,
  verifyIssuerSigned,
} from './lib/signed-payload.js';
// ---------------------------------------------------------------------------------------------------------
// Revocation updates (SPEC.md §6).
// ---------------------------------------------------------------------------------------------------------

/** Most added plus removed entries in one update, and most entries a lock holds ([TANDEM-REV-4]). */
export const MAX_REVOCATION_ENTRIES = 10_000;
/** Longest token id in a revocation entry, in bytes ([TANDEM-REV-3]). */
export const MAX_TOKEN_ID_BYTES = 32;
/**
 * Largest encoded revocation update ([TANDEM-REV-4]): 10,000 entries of at most 39 bytes each (array head,
 * bstr head, 32-byte id, 5-byte uint) plus headers and signature, rounded up to 400 KiB.
 */
export const MAX_REVOCATION_UPDATE_BYTES = 400 * 1024;

const REVOCATION_LIMITS: CborLimits = {
  maxBytes: MAX_REVOCATION_UPDATE_BYTES,
  maxDepth: 3,
  maxItems: MAX_REVOCATION_ENTRIES,
};

/** One revoked token: its id (`cti`) and its own expiry, after which the entry is dropped. */
export interface RevocationEntry {
  readonly id: Uint8Array;
  /** The revoked token's `exp`, Unix seconds. */
  readonly exp: number;
}

/** The typed body of a revocation update ([TANDEM-REV-3]). */
export interface RevocationUpdate {
  readonly kind: 'full' | 'delta';
  readonly version: number;
  /** Delta only: the version this delta applies on top of ([TANDEM-REV-7]). */
  readonly baseVersion?: number;
  readonly issuedAt: number;
  readonly lockId: string;
  readonly added: readonly RevocationEntry[];
  /** Delta only: token ids no longer revoked (empty for a full update). */
  readonly removed: readonly Uint8Array[];
}

/** A structurally valid revocation update; its signature is not yet verified. */
export interface DecodedRevocationUpdate {
  readonly sign1: Sign1;
  readonly update: RevocationUpdate;
}

const REV_KEYS = {
  1: 'kind',
  2: 'version',
  3: 'base version',
  4: 'issued at',
  5: 'lock id',
  6: 'added',
  7: 'removed',
} as const;
const REV = 'revocation update';

function parseRevocationBody(payload: Uint8Array): RevocationUpdate {
  const r: PayloadReader = PayloadReader.parse(payload, REVOCATION_LIMITS, REV, REV_KEYS);
  const kindValue = r.get(1);
  if (kindValue !== 0 && kindValue !== 1) r.fail(1, 'must be 0 (full) or 1 (delta)');
  const kind = kindValue === 0 ? 'full' : 'delta';
  const version = r.uint(2, 1);
  let baseVersion: number | undefined;
  if (kind === 'delta') {
    baseVersion = r.uint(3);
    if (baseVersion >= version) r.fail(3, `must be below "version" (${version})`);
  } else {
    r.absent(3, 'in a full update');
    r.absent(7, 'in a full update');
  }
  const issuedAt = r.uint(4);
  const lockId = r.lockId(5);
  const addedRaw = r.array(6, MAX_REVOCATION_ENTRIES);
  const removedRaw = r.has(7) ? r.array(7, MAX_REVOCATION_ENTRIES) : [];
  if (addedRaw.length + removedRaw.length > MAX_REVOCATION_ENTRIES) {
    throw new ProtocolError(
      'ERR_TOO_LARGE',
      `${REV} has ${addedRaw.length + removedRaw.length} entries, more than ${MAX_REVOCATION_ENTRIES}`,
    );
  }
  const seen = new Set<string>();
  const idOf = (key: 6 | 7, i: number, v: CborValue | undefined): Uint8Array => {
    if (!(v instanceof Uint8Array) || v.length === 0 || v.length > MAX_TOKEN_ID_BYTES) {
      r.fail(key, `item ${i}: token id must be a byte string of 1 to ${MAX_TOKEN_ID_BYTES} bytes`);
    }
    const hex = toHex(v);
    if (seen.has(hex)) r.fail(key, `item ${i}: token id ${hex} appears more than once in the update`);
    seen.add(hex);
    return v;
  };
  const added = addedRaw.map((item, i): RevocationEntry => {
    if (!Array.isArray(item) || item.length !== 2) r.fail(6, `item ${i} must be an array [token id, expiry]`);
    const id = idOf(6, i, item[0]);
    const exp = item[1];
    if (typeof exp !== 'number' || !Number.isInteger(exp) || exp < 0 || exp > UINT32_MAX) {
      r.fail(6, `item ${i}: expiry must be an unsigned integer below 2^32`);
    }
    return { id, exp };
  });
  const removed = removedRaw.map((item, i) => idOf(7, i, item));
  return {
    kind,
    version,
    ...(baseVersion === undefined ? {} : { baseVersion }),
    issuedAt,
    lockId,
    added,
    removed,
  };
}

function revocationBodyMap(u: RevocationUpdate): Map<number, CborValue> {
  const m = new Map<number, CborValue>([
    [1, u.kind === 'full' ? 0 : 1],
    [2, u.version],
  ]);
  if (u.baseVersion !== undefined) m.set(3, u.baseVersion);
  m.set(4, u.issuedAt);
  m.set(5, u.lockId);
  m.set(
    6,
    u.added.map((e) => [e.id, e.exp]),
  );
  if (u.removed.length > 0) m.set(7, [...u.removed]);
  return m;
}

/**
 * Encodes and signs a revocation update with the issuer's key; `kid` goes in the unprotected header
 * ([TANDEM-REV-3]). The body is checked by the decoder's own rules first, so Tandem never emits an update it
 * would refuse. Throws ERR_MESSAGE_INVALID or ERR_TOO_LARGE for an invalid update.
 */
export function encodeRevocationUpdate(
  update: RevocationUpdate,
  issuerKey: PrivateKey,
  kid: Uint8Array,
): Uint8Array {
  const payload = encode(revocationBodyMap(update));
  parseRevocationBody(payload);
  return signSign1(payload, issuerKey, {
    protectedHeader: new Map<number, CborValue>([[HEADER.contentType, CONTENT_FORMAT.revocationUpdate]]),
    kid,
  });
}

/**
 * Decodes a revocation update: structure, content format and body ([TANDEM-REV-1], [TANDEM-REV-3],
 * [TANDEM-REV-4]); the signature is not checked. Throws only {@link ProtocolError}.
 */
export function decodeRevocationUpdate(bytes: Uint8Array): DecodedRevocationUpdate {
  const sign1 = openSign1(bytes, MAX_REVOCATION_UPDATE_BYTES, CONTENT_FORMAT.revocationUpdate, REV);
  return { sign1, update: parseRevocationBody(sign1.payload) };
}

/**
 * Decodes and verifies a revocation update for lock `expectedLockId` ([TANDEM-REV-5]): the issuer key named by
 * `kid`, then the signature, then the audience. Throws ERR_KEY_UNKNOWN, ERR_SIGNATURE_INVALID,
 * ERR_AUDIENCE_MISMATCH and the decoding errors; never another exception type.
 */
export function verifyRevocationUpdate(
  bytes: Uint8Array,
  resolveKey: (kid: Uint8Array) => PublicKey | undefined,
  expectedLockId: string,
): RevocationUpdate {
  const { sign1, update } = decodeRevocationUpdate(bytes);
  verifyIssuerSigned(sign1, resolveKey, REV);
  checkLockAudience(update.lockId, expectedLockId, REV);
  return update;
}

/** The revocation list a lock holds: its version and the revoked token ids (hex) with their expiry. */
export interface RevocationState {
  readonly version: number;
  /** Hex of the token id -> the revoked token's exp (Unix seconds). */
  readonly entries: ReadonlyMap<string, number>;
}

/** The state of a lock that has applied no update yet: version 0, nothing revoked ([TANDEM-REV-6]). */
export const EMPTY_REVOCATION_STATE: RevocationState = { version: 0, entries: new Map() };

/**
 * Applies a verified update to `state` and returns the new state; `state` is not changed ([TANDEM-REV-6],
 * [TANDEM-REV-7], [TANDEM-REV-8]).
 *
 * - `update.version` must be greater than `state.version`, else ERR_REVOCATION_ROLLBACK (an equal version is
 *   a re-delivery: the caller may acknowledge it again).
 * - A delta applies only on exactly `state.version`, else ERR_REVOCATION_BASE_MISMATCH: the relay should bring
 *   a full update or a delta from the version the lock reports.
 * - A full update replaces every entry; a delta removes `removed` then adds `added`.
 * - Entries whose exp is at or before `now` are dropped: the token they name has expired anyway. `now` must be
 *   the lower bound of the lock's clock (its time floor), so that a clock running ahead never drops an entry
 *   early.
 * - The resulting list holds at most {@link MAX_REVOCATION_ENTRIES} entries, else ERR_TOO_LARGE.
 */
export function applyRevocationUpdate(
  state: RevocationState,
  update: RevocationUpdate,
  now: number,
): RevocationState {
  if (update.version <= state.version) {
    throw new ProtocolError(
      'ERR_REVOCATION_ROLLBACK',
      `${REV} "version" (key 2) ${update.version} is not newer than the held version ${state.version}`,
    );
  }
  let entries: Map<string, number>;
  if (update.kind === 'delta') {
    if (update.baseVersion !== state.version) {
      throw new ProtocolError(
        'ERR_REVOCATION_BASE_MISMATCH',
        `${REV} "base version" (key 3) ${String(update.baseVersion)} does not match the held version ${state.version}; ` +
          `deliver a full update or a delta from version ${state.version}`,
      );
    }
    entries = new Map(state.entries);
    for (const id of update.removed) entries.delete(toHex(id));
  } else {
    entries = new Map();
  }
  for (const e of update.added) entries.set(toHex(e.id), e.exp);
  // Deleting the current key while iterating a Map is well defined (ECMA-262 §24.1.3.5).
  for (const [id, exp] of entries) if (exp <= now) entries.delete(id);
  if (entries.size > MAX_REVOCATION_ENTRIES) {
    throw new ProtocolError(
      'ERR_TOO_LARGE',
      `applying ${REV} version ${update.version} would hold ${entries.size} entries, more than ${MAX_REVOCATION_ENTRIES}`,
    );
  }
  return { version: update.version, entries };
}

const HOLDER_ID_PREFIX = new TextEncoder().encode('Tandem-holder-v1\0');

/**
 * The holder id of a key ([TANDEM-REV-10]): the revocation entry that revokes every token bound to that key and
 * every delegation it signed. SHA-256 over a domain-separation prefix and the key's raw form, cut to 16 bytes.
 */
export function holderRevocationId(key: PublicKey): Uint8Array {
  // Cached per parsed key (keys.ts caches the parsed keys themselves): every verified chain computes one per
  // link, and a rider's key recurs on every unlock. A copy, so that no caller can change the cached value.
  let id = holderIds.get(key);
  if (id === undefined) {
    id = new Uint8Array(
      createHash('sha256').update(HOLDER_ID_PREFIX).update(key.raw).digest().subarray(0, 16),
    );
    holderIds.set(key, id);
  }
  return id.slice();
}

const holderIds = new WeakMap<PublicKey, Uint8Array>();

/** Whether `tokenId` is revoked in `state` at time `now` (an expired entry no longer counts). */
export function isRevoked(state: RevocationState, tokenId: Uint8Array, now: number): boolean {
  const exp = state.entries.get(toHex(tokenId));
  return exp !== undefined && exp > now;
}

// ---------------------------------------------------------------------------------------------------------
// Revocation acknowledgements (lock -> cloud, SPEC.md §6.5).
// ---------------------------------------------------------------------------------------------------------

/** Largest encoded revocation acknowledgement ([TANDEM-REV-9]). */
export const MAX_REVOCATION_ACK_BYTES = 256;
const ACK_LIMITS: CborLimits = { maxBytes: MAX_REVOCATION_ACK_BYTES, maxDepth: 1, maxItems: 8 };
const ACK_KEYS = { 1: 'lock id', 2: 'version', 3: 'lock time' } as const;
const ACK = 'revocation ack';

/** A lock's statement that it has applied revocation version `version` ([TANDEM-REV-9]). */
export interface RevocationAck {
  readonly lockId: string;
  readonly version: number;
  /** The lock's clock when it applied the update, Unix seconds. */
  readonly lockTime: number;
}

/** A structurally valid revocation acknowledgement; its signature is not yet verified. */
export interface DecodedRevocationAck {
  readonly sign1: Sign1;
  readonly ack: RevocationAck;
}

function parseAckBody(payload: Uint8Array): RevocationAck {
  const r: PayloadReader = PayloadReader.parse(payload, ACK_LIMITS, ACK, ACK_KEYS);
  return { lockId: r.lockId(1), version: r.uint(2, 1), lockTime: r.uint(3) };
}

/** Encodes and signs a revocation acknowledgement with the lock's device key ([TANDEM-REV-9]). */
export function encodeRevocationAck(ack: RevocationAck, deviceKey: PrivateKey): Uint8Array {
  const body = new Map<number, CborValue>([
    [1, ack.lockId],
    [2, ack.version],
    [3, ack.lockTime],
  ]);
  parseAckBody(encode(body));
  return signPayload(body, deviceKey, CONTENT_FORMAT.revocationAck);
}

/** Decodes a revocation acknowledgement without checking its signature. Throws only {@link ProtocolError}. */
export function decodeRevocationAck(bytes: Uint8Array): DecodedRevocationAck {
  const sign1 = openSign1(bytes, MAX_REVOCATION_ACK_BYTES, CONTENT_FORMAT.revocationAck, ACK);
  return { sign1, ack: parseAckBody(sign1.payload) };
}

/**
 * Verifies a revocation acknowledgement with the device key of `expectedLockId` (the cloud looks it up by the
 * lock id of the MQTT topic it arrived on), then its lock id ([TANDEM-REV-9]).
 */
export function verifyRevocationAck(
  bytes: Uint8Array,
  deviceKey: PublicKey,
  expectedLockId: string,
): RevocationAck {
  const { sign1, ack } = decodeRevocationAck(bytes);
  verifySign1(sign1, deviceKey);
  checkLockAudience(ack.lockId, expectedLockId, ACK);
  return ack;
}
