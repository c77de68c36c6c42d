/**
 * Conventions shared by the signed payloads of SPEC.md §6-§9 (internal to `protocol/`, not exported from its
 * index except the few public names re-exported there): integer-keyed CBOR maps read field by field
 * ([TANDEM-REV-2], [TANDEM-GEN-1]), unsigned integers below 2^32 ([TANDEM-GEN-2]), lock ids ([TANDEM-GEN-3]),
 * and COSE_Sign1 with a Tandem content format in the protected header ([TANDEM-REV-1]).
 */
import type { CborLimits, CborValue } from '../cbor.js';
import { decodeStrict, encode } from '../cbor.js';
import type { Sign1 } from '../cose.js';
import { HEADER, decodeSign1, signSign1, toHex, verifySign1 } from '../cose.js';
import { ProtocolError } from '../errors.js';
import type { PrivateKey, PublicKey } from '../keys.js';

// ---------------------------------------------------------------------------------------------------------
// Conventions shared by SPEC.md §6-§9.
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
  timeRequest: 65107,
  anchorUpdate: 65108,
  anchorAck: 65109,
  claimReceipt: 65110,
  remoteCommand: 65111,
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
  body: ReadonlyMap<number, CborValue> | Uint8Array,
  key: PrivateKey,
  contentFormat: number,
  kid?: Uint8Array,
): Uint8Array {
  // Already encoded (and checked by parsing it back, mqtt.ts `checked`): not encoded a second time.
  return signSign1(body instanceof Uint8Array ? body : encode(body), key, {
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
