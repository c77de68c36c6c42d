/**
 * COSE_Sign1 (RFC 9052 §4.2) under Tandem's profile (SPEC.md §4). Stricter than general COSE, on purpose:
 *
 * - [TANDEM-COSE-1] the message is an array of four: protected (bstr), unprotected (map), payload (bstr, not
 *   detached), signature (bstr); untagged or with tag 18, and for a CWT optionally inside tag 61 (RFC 8392 §6).
 * - [TANDEM-COSE-2] the protected header is a non-empty serialized map that carries `alg` (label 1). An empty
 *   protected header, or `alg` in the unprotected header, is refused: `alg` must be covered by the signature.
 * - [TANDEM-COSE-3] `alg` is EdDSA (-8) or ES256 (-7), and must equal the algorithm the verifying key is
 *   bound to; the header never chooses how a key is used.
 * - [TANDEM-COSE-4] `crit` (label 2) may list only labels this implementation understands (1, 3, 4) that are
 *   present in the protected header; any other critical label is refused (RFC 9052 §3.1).
 * - [TANDEM-COSE-5] a label appears in at most one of the two header maps (RFC 9052 §3).
 * - [TANDEM-COSE-6] `kid` (label 4), where present, is a byte string of at most 32 bytes.
 * - [TANDEM-COSE-8] a header carries no label other than 1, 2, 3 and 4; the unprotected header only 3 and 4.
 */
import type { CborLimits, CborValue } from './cbor.js';
import { DEFAULT_LIMITS, ProfileCursor, Tag, decodeStrict, encode, readFast } from './cbor.js';
import { ProtocolError } from './errors.js';
import type { Alg, PrivateKey, PublicKey } from './keys.js';
import { COSE_ALG, algFromCose, signBytes, verifyBytes } from './keys.js';

/** COSE header labels used by Tandem (RFC 9052 §3.1). */
export const HEADER = { alg: 1, crit: 2, contentType: 3, kid: 4 } as const;

/** CBOR tags around a COSE_Sign1 (RFC 9052 §2, RFC 8392 §6). */
export const TAG_COSE_SIGN1 = 18;
export const TAG_CWT = 61;

const UNDERSTOOD = new Set<number>([HEADER.alg, HEADER.contentType, HEADER.kid]);
const KNOWN = new Set<number>([HEADER.alg, HEADER.crit, HEADER.contentType, HEADER.kid]);
const HEADER_LIMITS: CborLimits = { maxBytes: 256, maxDepth: 3, maxItems: 16 };
const PROTECTED_EDDSA: ReadonlyMap<number | string, CborValue> = new Map([[1, -8]]);
const PROTECTED_ES256: ReadonlyMap<number | string, CborValue> = new Map([[1, -7]]);

/** A decoded COSE_Sign1 whose structure passed the profile; its signature is not yet checked. */
export interface Sign1 {
  /** The protected header exactly as received: the signature covers these bytes. */
  readonly protectedBytes: Uint8Array;
  readonly protectedHeader: ReadonlyMap<number | string, CborValue>;
  readonly unprotectedHeader: ReadonlyMap<number | string, CborValue>;
  readonly payload: Uint8Array;
  readonly signature: Uint8Array;
  readonly alg: Alg;
  readonly kid: Uint8Array | undefined;
  /** Tags found around the message, outermost first. */
  readonly tags: readonly number[];
}

function invalid(message: string): never {
  throw new ProtocolError('ERR_COSE_INVALID', message);
}

/**
 * Decodes a COSE_Sign1 and checks its structure against TANDEM-COSE-1..6. Throws ERR_CBOR_INVALID,
 * ERR_TOO_LARGE, ERR_COSE_INVALID or ERR_ALG_UNSUPPORTED.
 *
 * The encoding Tandem emits is read in one pass ({@link readSign1}, [TANDEM-CBOR-10]); any other input,
 * valid or not, takes the general path ({@link decodeSign1General}), which decides and words every refusal.
 */
export function decodeSign1(
  bytes: Uint8Array,
  limits: CborLimits = DEFAULT_LIMITS,
  allowedTags: readonly number[] = [TAG_COSE_SIGN1],
): Sign1 {
  return (
    (limits.maxDepth >= 2 && limits.maxItems >= 4 ? readSign1(bytes, limits.maxBytes) : undefined) ??
    decodeSign1General(bytes, limits, allowedTags)
  );
}

/**
 * {@link decodeSign1} by the general path: {@link decodeStrict} (any valid encoding of the profile) and
 * the header checks on the decoded maps. Accepts every valid form (tags, other header parameters); the oracle
 * that `protocol/test/fast-decode.test.ts` holds {@link readSign1} to.
 */
export function decodeSign1General(
  bytes: Uint8Array,
  limits: CborLimits = DEFAULT_LIMITS,
  allowedTags: readonly number[] = [TAG_COSE_SIGN1],
): Sign1 {
  let value = decodeStrict(bytes, limits, allowedTags);
  const tags: number[] = [];
  while (value instanceof Tag) {
    tags.push(value.tag);
    value = value.value as CborValue;
  }
  if (tags.length > 0 && tags[tags.length - 1] !== TAG_COSE_SIGN1) {
    invalid(`COSE_Sign1 tag must be ${TAG_COSE_SIGN1}, found ${tags[tags.length - 1]}`);
  }
  if (!Array.isArray(value) || value.length !== 4) invalid('COSE_Sign1 must be an array of 4 elements');
  const [p, u, payload, signature] = value;
  if (!(p instanceof Uint8Array)) invalid('COSE_Sign1 protected header must be a byte string');
  if (!(u instanceof Map)) invalid('COSE_Sign1 unprotected header must be a map');
  if (!(payload instanceof Uint8Array))
    invalid('COSE_Sign1 payload must be a byte string (detached payloads are not allowed)');
  if (!(signature instanceof Uint8Array)) invalid('COSE_Sign1 signature must be a byte string');
  if (p.length === 0)
    invalid('COSE_Sign1 protected header is empty; "alg" must be protected (TANDEM-COSE-2)');
  // The two protected headers Tandem itself emits ({1: -8}, {1: -7}) skip the decoder: they are on the
  // unlock hot path, and their bytes fully determine their value.
  const ph =
    p.length === 3 && p[0] === 0xa1 && p[1] === 0x01 && (p[2] === 0x27 || p[2] === 0x26)
      ? p[2] === 0x27
        ? PROTECTED_EDDSA
        : PROTECTED_ES256
      : decodeStrict(p, HEADER_LIMITS);
  if (!(ph instanceof Map)) invalid('COSE_Sign1 protected header must be a serialized map');
  if (ph.size === 0)
    invalid('COSE_Sign1 protected header is an empty map; "alg" must be protected (TANDEM-COSE-2)');
  for (const label of u.keys()) {
    if (ph.has(label))
      invalid(`COSE header label ${String(label)} appears in both header maps (TANDEM-COSE-5)`);
  }
  if (u.has(HEADER.alg)) invalid('COSE "alg" (Algorithm) Header Parameter must be in the protected header');
  if (u.has(HEADER.crit)) invalid('COSE "crit" (Critical) Header Parameter must be in the protected header');
  const algValue = ph.get(HEADER.alg);
  if (algValue === undefined) invalid('COSE "alg" (Algorithm) Header Parameter missing');
  const alg = algFromCose(algValue);
  if (alg === undefined) {
    throw new ProtocolError(
      'ERR_ALG_UNSUPPORTED',
      `COSE "alg" (Algorithm) Header Parameter ${typeof algValue === 'string' ? JSON.stringify(algValue) : String(algValue)} is not supported; Tandem accepts EdDSA (-8) and ES256 (-7)`,
    );
  }
  const crit = ph.get(HEADER.crit);
  if (crit !== undefined) {
    if (!Array.isArray(crit) || crit.length === 0)
      invalid('COSE "crit" (Critical) Header Parameter must be a non-empty array');
    for (const label of crit) {
      if (typeof label !== 'number' && typeof label !== 'string')
        invalid('COSE "crit" entries must be labels');
      if (typeof label !== 'number' || !UNDERSTOOD.has(label)) {
        invalid(
          `COSE "crit" (Critical) Header Parameter lists label ${JSON.stringify(label)} that is not understood`,
        );
      }
      if (!ph.has(label))
        invalid(
          `COSE "crit" (Critical) Header Parameter lists label ${label} absent from the protected header`,
        );
    }
  }
  // [TANDEM-COSE-8] Unknown labels are refused, as every Tandem map refuses unknown keys ([TANDEM-GEN-1]): an
  // unprotected one could be added or changed by anyone on the way, and a protected one would be a field a
  // later version might give meaning to. Only `kid` and `content type` may travel unprotected.
  for (const label of ph.keys()) {
    if (typeof label !== 'number' || !KNOWN.has(label)) {
      invalid(
        `COSE protected header label ${JSON.stringify(label)} is not understood; Tandem's profile knows 1, 2, 3 and 4 (TANDEM-COSE-8)`,
      );
    }
  }
  for (const label of u.keys()) {
    if (label !== HEADER.kid && label !== HEADER.contentType) {
      invalid(
        `COSE unprotected header label ${JSON.stringify(label)} is not understood; only "kid" (4) and "content type" (3) may be unprotected (TANDEM-COSE-8)`,
      );
    }
  }
  const ct = ph.get(HEADER.contentType) ?? u.get(HEADER.contentType);
  if (ct !== undefined && typeof ct !== 'string' && !(typeof ct === 'number' && ct >= 0)) {
    invalid('COSE "content type" Header Parameter must be an unsigned integer or a text string');
  }
  const kidValue = ph.get(HEADER.kid) ?? u.get(HEADER.kid);
  if (kidValue !== undefined && (!(kidValue instanceof Uint8Array) || kidValue.length > 32)) {
    invalid('COSE "kid" (Key ID) Header Parameter must be a byte string of at most 32 bytes');
  }
  return {
    protectedBytes: p,
    protectedHeader: ph,
    unprotectedHeader: u,
    payload,
    signature,
    alg,
    kid: kidValue as Uint8Array | undefined,
    tags,
  };
}

/**
 * The one-pass read of a COSE_Sign1 as Tandem signs it ([TANDEM-CBOR-10]): untagged; a protected header of
 * `{1: alg}` or `{1: alg, 3: content format}` (EdDSA or ES256, [TANDEM-COSE-7] order); an unprotected header
 * that is empty or `{4: kid}` with a kid of at most 32 bytes; payload and signature byte strings; nothing
 * after. What it returns is what the general path returns for the same bytes (views of the input, fresh
 * maps). Anything else declines ({@link ProfileCursor}): undefined, and the general path decides. Needs
 * limits of at least depth 2 and 4 items (the caller's to check); `maxBytes` is checked here.
 */
export function readSign1(bytes: Uint8Array, maxBytes: number): Sign1 | undefined {
  if (!(bytes instanceof Uint8Array) || bytes.length > maxBytes) return undefined;
  return readFast(() => readSign1Body(bytes));
}

function readSign1Body(bytes: Uint8Array): Sign1 {
  const c = new ProfileCursor(bytes);
  c.expect(0x84);
  const p = c.byteString();
  let alg: Alg;
  let ph: ReadonlyMap<number | string, CborValue>;
  if (p.length === 3 && p[0] === 0xa1 && p[1] === 0x01 && (p[2] === 0x27 || p[2] === 0x26)) {
    alg = p[2] === 0x27 ? 'EdDSA' : 'ES256';
    ph = p[2] === 0x27 ? PROTECTED_EDDSA : PROTECTED_ES256;
  } else if (
    p.length >= 5 &&
    p[0] === 0xa2 &&
    p[1] === 0x01 &&
    (p[2] === 0x27 || p[2] === 0x26) &&
    p[3] === 0x03
  ) {
    alg = p[2] === 0x27 ? 'EdDSA' : 'ES256';
    const h = new ProfileCursor(p, 4);
    const contentType = h.uint();
    if (!h.atEnd) c.decline();
    ph = new Map<number | string, CborValue>([
      [HEADER.alg, COSE_ALG[alg]],
      [HEADER.contentType, contentType],
    ]);
  } else {
    return c.decline();
  }
  const u = new Map<number | string, CborValue>();
  let kid: Uint8Array | undefined;
  const pairs = c.head(5);
  if (pairs === 1) {
    c.expect(0x04);
    kid = c.byteString();
    if (kid.length > 32) c.decline();
    u.set(HEADER.kid, kid);
  } else if (pairs !== 0) {
    c.decline();
  }
  const payload = c.byteString();
  const signature = c.byteString();
  if (!c.atEnd) c.decline();
  return {
    protectedBytes: p,
    protectedHeader: ph,
    unprotectedHeader: u,
    payload,
    signature,
    alg,
    kid,
    tags: [],
  };
}

/** A CBOR byte-string head for length `n` (RFC 8949 §3.1, shortest form). */
export function byteStringHead(n: number): Uint8Array {
  if (n < 24) return Uint8Array.of(0x40 | n);
  if (n < 0x100) return Uint8Array.of(0x58, n);
  if (n < 0x10000) return Uint8Array.of(0x59, n >> 8, n & 0xff);
  return Uint8Array.of(0x5a, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

// "Signature1" as a CBOR text string, after the array head 0x84.
const SIG1_PREFIX = Uint8Array.of(0x84, 0x6a, 0x53, 0x69, 0x67, 0x6e, 0x61, 0x74, 0x75, 0x72, 0x65, 0x31);
const EMPTY = new Uint8Array(0);

/**
 * The Sig_structure for COSE_Sign1 (RFC 9052 §4.4): ["Signature1", body_protected, external_aad, payload],
 * built directly as bytes (it is on the unlock hot path).
 */
export function sigStructure(
  protectedBytes: Uint8Array,
  payload: Uint8Array,
  externalAad: Uint8Array = EMPTY,
): Uint8Array {
  const size =
    SIG1_PREFIX.length +
    headSize(protectedBytes.length) +
    protectedBytes.length +
    headSize(externalAad.length) +
    externalAad.length +
    headSize(payload.length) +
    payload.length;
  const out = new Uint8Array(size);
  out.set(SIG1_PREFIX, 0);
  let o = writeByteString(out, SIG1_PREFIX.length, protectedBytes);
  o = writeByteString(out, o, externalAad);
  writeByteString(out, o, payload);
  return out;
}

/** Bytes of a shortest-form byte-string head for length `n` (RFC 8949 §3.1). */
export function headSize(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

/**
 * Writes `part` as a CBOR byte string (shortest-form head, then the bytes) into `out` at `o`, with no
 * temporary head array; returns the offset after it.
 */
export function writeByteString(out: Uint8Array, o: number, part: Uint8Array): number {
  const n = part.length;
  if (n < 24) out[o++] = 0x40 | n;
  else if (n < 0x100) {
    out[o++] = 0x58;
    out[o++] = n;
  } else if (n < 0x10000) {
    out[o++] = 0x59;
    out[o++] = n >> 8;
    out[o++] = n & 0xff;
  } else {
    out[o++] = 0x5a;
    out[o++] = n >>> 24;
    out[o++] = (n >> 16) & 0xff;
    out[o++] = (n >> 8) & 0xff;
    out[o++] = n & 0xff;
  }
  if (n > 0) out.set(part, o);
  return o + n;
}

/**
 * Verifies the signature of a decoded COSE_Sign1 with `key` (TANDEM-COSE-3). Throws ERR_ALG_UNSUPPORTED when
 * the header's algorithm is not the one the key is bound to, ERR_SIGNATURE_INVALID when the signature fails.
 */
export function verifySign1(msg: Sign1, key: PublicKey, externalAad: Uint8Array = EMPTY): void {
  if (msg.alg !== key.alg) {
    throw new ProtocolError(
      'ERR_ALG_UNSUPPORTED',
      `COSE "alg" (Algorithm) Header Parameter ${msg.alg} does not match the key's algorithm ${key.alg}`,
    );
  }
  if (!verifyBytes(key, sigStructure(msg.protectedBytes, msg.payload, externalAad), msg.signature)) {
    throw new ProtocolError('ERR_SIGNATURE_INVALID', 'signature verification failed');
  }
}

/** Options of {@link signSign1}. */
export interface SignOptions {
  /** Extra protected header parameters besides `alg`, which is always set from the key. */
  readonly protectedHeader?: ReadonlyMap<number, CborValue>;
  readonly unprotectedHeader?: ReadonlyMap<number, CborValue>;
  readonly kid?: Uint8Array;
  readonly externalAad?: Uint8Array;
  /** Outer tags, outermost first; default none (Tandem messages are untagged, SPEC.md §4). */
  readonly tags?: readonly number[];
}

/**
 * Signs `payload` as a COSE_Sign1 with `key`. The protected header is `alg` followed by the given
 * parameters, in that order (deterministic for EdDSA: the same inputs give the same bytes).
 */
export function signSign1(payload: Uint8Array, key: PrivateKey, options: SignOptions = {}): Uint8Array {
  const ph = new Map<number, CborValue>([[HEADER.alg, COSE_ALG[key.alg]]]);
  for (const [k, v] of options.protectedHeader ?? []) if (k !== HEADER.alg) ph.set(k, v);
  const uh = new Map<number, CborValue>(options.unprotectedHeader ?? []);
  if (options.kid !== undefined) uh.set(HEADER.kid, options.kid);
  const protectedBytes = encode(ph);
  const signature = signBytes(key, sigStructure(protectedBytes, payload, options.externalAad));
  let value: unknown = [protectedBytes, uh, payload, signature];
  const tags = options.tags ?? [];
  for (let i = tags.length - 1; i >= 0; i--) value = new Tag(value, tags[i]!);
  return encode(value, undefined, tags);
}

/** Hex of bytes, for messages. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}
