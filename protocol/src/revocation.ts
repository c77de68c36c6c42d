/**
 * Revocation updates and their acknowledgements (SPEC.md §6), plus the payload conventions that §6 to §9
 * share: integer-keyed CBOR maps read field by field ([TANDEM-REV-2], [TANDEM-GEN-1]), unsigned integers
 * below 2^32 ([TANDEM-GEN-2]), lock ids ([TANDEM-GEN-3]), and COSE_Sign1 with a Tandem content format in the
 * protected header ([TANDEM-REV-1]).
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
import type { CborLimits, CborValue } from './cbor.js';
import { decodeStrict, encode } from './cbor.js';
import type { Sign1 } from './cose.js';
import { HEADER, decodeSign1, signSign1, toHex, verifySign1 } from './cose.js';
import { ProtocolError } from './errors.js';
import type { PrivateKey, PublicKey } from './keys.js';

// ---------------------------------------------------------------------------------------------------------
// Conventions shared by SPEC.md §6-§9. They live here because §6 is the first of those sections; gatt.ts,
// time-beacon.ts and mqtt.ts import them.
// ---------------------------------------------------------------------------------------------------------

/** Lock id syntax ([TANDEM-GEN-3]): never an MQTT wildcard, separator or `$` prefix (MQTT 5.0 §4.7). */
export const LOCK_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;

/** True for a lock id that follows [TANDEM-GEN-3]. */
export function isLockId(value: unknown): value is string {
  return typeof value === 'string' && LOCK_ID_PATTERN.test(value);
}

/** Largest unsigned integer in §6-§9 payloads ([TANDEM-GEN-2]): times, versions, sequences fit 32 bits. */
export const UINT32_MAX = 0xffff_ffff;

/**
 * Content formats in the protected header of each signed payload ([TANDEM-REV-1]), from the CoAP
 * Content-Formats experimental range 65000-65535 (RFC 7252 §12.3). The issuer signs tokens, revocation updates,
 * time beacons and outbox acknowledgements with the same key; the content format makes each signature mean
 * exactly one kind of statement (RFC 9052 §3.1 "content type"), so no payload can be replayed as another.
 */
export const CONTENT_FORMAT = {
  revocationUpdate: 65100,
  revocationAck: 65101,
  timeBeacon: 65102,
  alert: 65103,
  auditRecord: 65104,
  lockState: 65105,
  outboxAck: 65106,
} as const;

/** A value in a `detail` map of alerts and audit records ([TANDEM-MQTT-9]). */
export type DetailValue = number | boolean | string;

const DETAIL_KEY = /^[a-z][a-z0-9_-]{0,31}$/;
/** Most entries in a detail map ([TANDEM-MQTT-9]). */
export const MAX_DETAIL_ENTRIES = 16;
/** Longest text value in a detail map ([TANDEM-MQTT-9]). */
export const MAX_DETAIL_TEXT = 64;

function messageError(message: string): never {
  throw new ProtocolError('ERR_MESSAGE_INVALID', message);
}

/**
 * Reads one integer-keyed payload map field by field ([TANDEM-REV-2]). Every refusal is ERR_MESSAGE_INVALID
 * and names the message, the field and its key, e.g. `revocation update "version" (key 2) must be ...`.
 * Shared by §6-§9; not part of the public surface of `protocol/`.
 *
 * @internal
 */
export class PayloadReader {
  private constructor(
    private readonly what: string,
    private readonly names: Readonly<Record<number, string>>,
    private readonly map: ReadonlyMap<number | string, CborValue>,
  ) {}

  /** Decodes `bytes` under `limits`; refuses anything but a map whose keys are all in `names`. */
  static parse(
    bytes: Uint8Array,
    limits: CborLimits,
    what: string,
    names: Readonly<Record<number, string>>,
  ): PayloadReader {
    const value = decodeStrict(bytes, limits);
    if (!(value instanceof Map)) messageError(`${what} must be a CBOR map`);
    for (const k of value.keys()) {
      if (typeof k !== 'number' || !Object.prototype.hasOwnProperty.call(names, k)) {
        messageError(`${what} has unknown key ${JSON.stringify(k)}`);
      }
    }
    return new PayloadReader(what, names, value);
  }

  /** Throws ERR_MESSAGE_INVALID naming field `key`. */
  fail(key: number, problem: string): never {
    messageError(`${this.what} "${this.names[key]}" (key ${key}) ${problem}`);
  }

  /** Whether field `key` is present. */
  has(key: number): boolean {
    return this.map.has(key);
  }

  /** The raw value of a required field. */
  get(key: number): CborValue {
    const v = this.map.get(key);
    if (v === undefined) this.fail(key, 'is missing');
    return v;
  }

  /** Refuses field `key` when present (`why` completes the sentence). */
  absent(key: number, why: string): void {
    if (this.map.has(key)) this.fail(key, `must be absent ${why}`);
  }

  /** An unsigned integer in [min, 2^32-1] ([TANDEM-GEN-2]). */
  uint(key: number, min = 0): number {
    const v = this.get(key);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > UINT32_MAX) {
      this.fail(
        key,
        min === 0
          ? 'must be an unsigned integer below 2^32'
          : `must be an unsigned integer from ${min} to 2^32-1`,
      );
    }
    return v;
  }

  /** An unsigned integer below 2^32, or null for "unbounded" (clock uncertainty, [TANDEM-GATT-9]). */
  uintOrNull(key: number): number | null {
    const v = this.get(key);
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > UINT32_MAX) {
      this.fail(key, 'must be an unsigned integer below 2^32 or null');
    }
    return v;
  }

  /** A text string of 1..`max` characters, optionally matching `pattern`. */
  text(key: number, max: number, pattern?: RegExp): string {
    const v = this.get(key);
    if (typeof v !== 'string' || v.length === 0 || v.length > max) {
      this.fail(key, `must be a text string of 1 to ${max} characters`);
    }
    if (pattern !== undefined && !pattern.test(v)) this.fail(key, `must match ${pattern.source}`);
    return v;
  }

  /** One of the given text values. */
  oneOf<T extends string>(key: number, values: readonly T[]): T {
    const v = this.get(key);
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
      this.fail(key, `must be one of ${values.map((s) => JSON.stringify(s)).join(', ')}`);
    }
    return v as T;
  }

  /** A lock id ([TANDEM-GEN-3]). */
  lockId(key: number): string {
    const v = this.get(key);
    if (!isLockId(v)) this.fail(key, `must be a lock id matching ${LOCK_ID_PATTERN.source}`);
    return v;
  }

  /** A byte string of `min`..`max` bytes. */
  bstr(key: number, min: number, max: number): Uint8Array {
    const v = this.get(key);
    if (!(v instanceof Uint8Array) || v.length < min || v.length > max) {
      this.fail(
        key,
        min === max
          ? `must be a byte string of ${min} bytes`
          : `must be a byte string of ${min} to ${max} bytes`,
      );
    }
    return v;
  }

  /** An array of at most `max` items. */
  array(key: number, max: number): readonly CborValue[] {
    const v = this.get(key);
    if (!Array.isArray(v)) this.fail(key, 'must be an array');
    if (v.length > max) this.fail(key, `must have at most ${max} items`);
    return v;
  }

  /** A detail map ([TANDEM-MQTT-9]): text keys, integer, boolean or short text values; absent = empty. */
  detail(key: number): ReadonlyMap<string, DetailValue> {
    if (!this.map.has(key)) return new Map();
    const v = this.get(key);
    if (!(v instanceof Map)) this.fail(key, 'must be a map');
    if (v.size === 0) this.fail(key, 'must be omitted when empty');
    if (v.size > MAX_DETAIL_ENTRIES) this.fail(key, `must have at most ${MAX_DETAIL_ENTRIES} entries`);
    const out = new Map<string, DetailValue>();
    for (const [k, x] of v) {
      if (typeof k !== 'string' || !DETAIL_KEY.test(k))
        this.fail(key, `keys must match ${DETAIL_KEY.source}`);
      if (typeof x === 'string') {
        if (x.length > MAX_DETAIL_TEXT)
          this.fail(key, `entry "${k}" text must be at most ${MAX_DETAIL_TEXT} characters`);
      } else if (typeof x !== 'boolean' && !(typeof x === 'number' && Number.isSafeInteger(x))) {
        this.fail(key, `entry "${k}" must be an integer, a boolean or a text string`);
      }
      out.set(k, x);
    }
    return out;
  }
}

/**
 * Signs a payload map as a COSE_Sign1 with the content format `contentFormat` in the protected header
 * ([TANDEM-REV-1]) and, for issuer-signed messages, `kid` in the unprotected header.
 *
 * @internal
 */
export function signPayload(
  body: ReadonlyMap<number, CborValue>,
  key: PrivateKey,
  contentFormat: number,
  kid?: Uint8Array,
): Uint8Array {
  return signSign1(encode(body), key, {
    protectedHeader: new Map<number, CborValue>([[HEADER.contentType, contentFormat]]),
    ...(kid === undefined ? {} : { kid }),
  });
}

/**
 * Decodes a COSE_Sign1 of at most `maxBytes` and checks its protected content format ([TANDEM-REV-1]).
 *
 * @internal
 */
export function openSign1(bytes: Uint8Array, maxBytes: number, contentFormat: number, what: string): Sign1 {
  const sign1 = decodeSign1(bytes, { maxBytes, maxDepth: 3, maxItems: 8 });
  if (sign1.protectedHeader.get(HEADER.contentType) !== contentFormat) {
    throw new ProtocolError(
      'ERR_COSE_INVALID',
      `${what} COSE "content type" (3) Header Parameter must be ${contentFormat} in the protected header`,
    );
  }
  return sign1;
}

/**
 * Resolves the issuer key named by the message's `kid` and verifies the signature ([TANDEM-REV-5]).
 * `resolveKey` is the caller's trust-anchor lookup; it must not throw (whatever it throws passes through).
 *
 * @internal
 */
export function verifyIssuerSigned(
  sign1: Sign1,
  resolveKey: (kid: Uint8Array) => PublicKey | undefined,
  what: string,
): void {
  if (sign1.kid === undefined) {
    throw new ProtocolError('ERR_COSE_INVALID', `${what} COSE "kid" (Key ID) Header Parameter missing`);
  }
  const key = resolveKey(sign1.kid);
  if (key === undefined) {
    throw new ProtocolError('ERR_KEY_UNKNOWN', `${what} is signed by unknown key id ${toHex(sign1.kid)}`);
  }
  verifySign1(sign1, key);
}

/**
 * Refuses, with ERR_AUDIENCE_MISMATCH, a verified message whose lock id is not `expectedLockId`. Called after
 * the signature check, so that an unauthenticated sender learns nothing from the refusal ([TANDEM-REV-5]).
 *
 * @internal
 */
export function checkLockAudience(lockId: string, expectedLockId: string, what: string): void {
  if (lockId !== expectedLockId) {
    throw new ProtocolError(
      'ERR_AUDIENCE_MISMATCH',
      `${what} "lock id" is ${JSON.stringify(lockId)}, not ${JSON.stringify(expectedLockId)}`,
    );
  }
}

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
