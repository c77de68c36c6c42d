/**
 * The delegated access token (SPEC.md §5): a CWT (RFC 8392) in an untagged COSE_Sign1 (RFC 9052 §4.2).
 *
 * Claims map (integer keys, [TANDEM-TOK-1]):
 *
 * | key    | claim  | type        | source                                            |
 * | ------ | ------ | ----------- | ------------------------------------------------- |
 * | 1      | iss    | tstr        | RFC 8392 §3.1.1: the issuer, or the delegating holder |
 * | 2      | sub    | tstr        | RFC 8392 §3.1.2: the resource owner               |
 * | 3      | aud    | tstr        | RFC 8392 §3.1.3: the lock id                      |
 * | 4      | exp    | uint        | RFC 8392 §3.1.4                                   |
 * | 5      | nbf    | uint        | RFC 8392 §3.1.5                                   |
 * | 6      | iat    | uint        | RFC 8392 §3.1.6                                   |
 * | 7      | cti    | bstr 8..16  | RFC 8392 §3.1.7: the token id that revocation and use counting name |
 * | 8      | cnf    | {1: COSE_Key} | RFC 8747 §3.2: the holder's public key          |
 * | 9      | scope  | tstr        | RFC 9200 §5.8.1: space-separated scope tokens     |
 * | -65537 | tandem | map         | private use (RFC 8392 §9.1): Tandem's own claims  |
 *
 * Tandem claims map: {1: rider (tstr), 2: schedule, 3: max uses (uint), 4: minimum revocation version (uint)}.
 */
import type { CborLimits, CborValue } from './cbor.js';
import { ProfileCursor, decodeStrict, encode, readFast } from './cbor.js';
import { HEADER, decodeSign1, signSign1 } from './cose.js';
import type { Sign1 } from './cose.js';
import { ProtocolError } from './errors.js';
import type { Alg, PrivateKey, PublicKey } from './keys.js';
import { publicKeyFromRaw } from './keys.js';
import type { Schedule, ScheduleWindow } from './schedule.js';
import { MAX_WINDOWS, parseSchedule, scheduleToCbor } from './schedule.js';

/** CWT claim keys (RFC 8392 §4, RFC 8747 §3.1, RFC 9200 §8.13) and Tandem's private claim. */
export const CLAIM = {
  iss: 1,
  sub: 2,
  aud: 3,
  exp: 4,
  nbf: 5,
  iat: 6,
  cti: 7,
  cnf: 8,
  scope: 9,
  tandem: -65537,
} as const;

/** Keys inside the Tandem private claim ([TANDEM-TOK-4]). */
export const TANDEM_CLAIM = { rider: 1, schedule: 2, maxUses: 3, minRevocation: 4 } as const;

/** Scope tokens Tandem defines ([TANDEM-TOK-5]); others are carried but grant nothing. */
export const SCOPES = ['unlock', 'lock', 'status', 'manage', 'delegate'] as const;
export type Scope = (typeof SCOPES)[number];

/** Decoded, type-checked token claims. */
export interface TokenClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string;
  readonly exp: number;
  readonly nbf: number;
  readonly iat: number;
  readonly cti: Uint8Array;
  /** The holder's key (RFC 8747 "cnf" with a COSE_Key). */
  readonly cnf: PublicKey;
  readonly scope: readonly string[];
  readonly rider?: string;
  readonly schedule?: Schedule;
  readonly maxUses?: number;
  readonly minRevocation?: number;
}

/** A token whose structure and claims are well formed; its signature is not yet verified. */
export interface DecodedToken {
  readonly bytes: Uint8Array;
  readonly sign1: Sign1;
  readonly claims: TokenClaims;
}

/** Limits for one token ([TANDEM-TOK-2]). */
export const TOKEN_LIMITS: CborLimits = { maxBytes: 1024, maxDepth: 6, maxItems: 24 };
const PAYLOAD_LIMITS: CborLimits = { maxBytes: 1024, maxDepth: 5, maxItems: 24 };

// COSE_Key parameters (RFC 9052 §7.1, RFC 9053 §7): kty 1, crv -1, x -2, y -3.
const KTY_OKP = 1;
const KTY_EC2 = 2;
const CRV_P256 = 1;
const CRV_ED25519 = 6;

/**
 * The COSE_Key of a public key in its most compact legal form ([TANDEM-KEY-2]): OKP with x for Ed25519;
 * EC2 with x and the sign bit of y as a boolean for P-256 (point compression, RFC 9053 §7.1.1).
 */
export function coseKeyOf(key: PublicKey): Map<number, CborValue> {
  if (key.alg === 'EdDSA') {
    return new Map<number, CborValue>([
      [1, KTY_OKP],
      [-1, CRV_ED25519],
      [-2, key.raw],
    ]);
  }
  return new Map<number, CborValue>([
    [1, KTY_EC2],
    [-1, CRV_P256],
    [-2, key.raw.subarray(1)],
    [-3, key.raw[0] === 3],
  ]);
}

/** Parses a COSE_Key (OKP/Ed25519 or EC2/P-256, y as bstr or sign bit). Throws ERR_KEY_INVALID. */
export function publicKeyFromCoseKey(value: unknown, field = 'COSE_Key'): PublicKey {
  if (!(value instanceof Map)) throw new ProtocolError('ERR_KEY_INVALID', `${field} must be a map`);
  for (const k of value.keys()) {
    if (k !== 1 && k !== -1 && k !== -2 && k !== -3 && k !== 2 && k !== 3) {
      throw new ProtocolError('ERR_KEY_INVALID', `${field} has unexpected parameter ${String(k)}`);
    }
  }
  const kty = value.get(1);
  const crv = value.get(-1);
  const x = value.get(-2);
  const alg = value.get(3);
  if (!(x instanceof Uint8Array))
    throw new ProtocolError('ERR_KEY_INVALID', `${field} "x" (-2) must be a byte string`);
  let which: Alg;
  let raw: Uint8Array;
  if (kty === KTY_OKP && crv === CRV_ED25519) {
    which = 'EdDSA';
    raw = x;
  } else if (kty === KTY_EC2 && crv === CRV_P256) {
    which = 'ES256';
    const y = value.get(-3);
    if (x.length !== 32)
      throw new ProtocolError('ERR_KEY_INVALID', `${field} "x" (-2) must be 32 bytes for P-256`);
    if (typeof y === 'boolean') {
      raw = new Uint8Array(33);
      raw[0] = y ? 3 : 2;
      raw.set(x, 1);
    } else if (y instanceof Uint8Array && y.length === 32) {
      raw = new Uint8Array(65);
      raw[0] = 4;
      raw.set(x, 1);
      raw.set(y, 33);
    } else {
      throw new ProtocolError('ERR_KEY_INVALID', `${field} "y" (-3) must be a 32-byte string or a sign bit`);
    }
  } else {
    throw new ProtocolError('ERR_KEY_INVALID', `${field} "kty"/"crv" must be OKP/Ed25519 or EC2/P-256`);
  }
  if (alg !== undefined && alg !== (which === 'EdDSA' ? -8 : -7)) {
    throw new ProtocolError('ERR_KEY_INVALID', `${field} "alg" (3) does not match its key type`);
  }
  return publicKeyFromRaw(which, raw);
}

function claimError(message: string): never {
  throw new ProtocolError('ERR_CLAIM_INVALID', message);
}

const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/; // RFC 6749 §3.3 scope-token characters

function text(m: ReadonlyMap<unknown, unknown>, key: number, name: string, max = 64): string {
  const v = m.get(key);
  if (typeof v !== 'string' || v.length === 0 || v.length > max) {
    claimError(`CWT "${name}" (${key}) claim must be a text string of 1 to ${max} characters`);
  }
  return v;
}

function uint(m: ReadonlyMap<unknown, unknown>, key: number, name: string): number {
  const v = m.get(key);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    claimError(`CWT "${name}" (${key}) claim must be an unsigned integer below 2^32`);
  }
  return v;
}

/**
 * Parses the claims of a token payload ([TANDEM-TOK-3]). Throws ERR_CLAIM_INVALID / ERR_KEY_INVALID (and
 * ERR_CBOR_INVALID / ERR_TOO_LARGE for what is not CBOR of Tandem's profile).
 *
 * The claims as Tandem mints them are read in one pass, straight into the claims object
 * ({@link readClaims}, [TANDEM-CBOR-10]); anything else, every refusal included, takes the general path
 * ({@link parseClaimsGeneral}), so both accept the same payloads with the same claims and every refusal has
 * one wording.
 */
export function parseClaims(payload: Uint8Array): TokenClaims {
  return readClaims(payload) ?? parseClaimsGeneral(payload);
}

/**
 * [TANDEM-TOK-3] by the general path: {@link decodeStrict} (any valid encoding of the profile) and the
 * field checks on the decoded maps. Accepts any valid encoding (keys in any order, tags where allowed); the
 * oracle that `protocol/test/fast-decode.test.ts` holds {@link readClaims} to.
 */
export function parseClaimsGeneral(payload: Uint8Array): TokenClaims {
  const m = decodeStrict(payload, PAYLOAD_LIMITS);
  if (!(m instanceof Map)) claimError('CWT claims set must be a map');
  for (const k of m.keys()) {
    if (typeof k !== 'number' || !((k >= 1 && k <= 9) || k === CLAIM.tandem)) {
      claimError(`CWT claims set has unknown claim ${JSON.stringify(k)} (Tandem accepts 1-9 and -65537)`);
    }
  }
  const iss = text(m, CLAIM.iss, 'iss');
  const sub = text(m, CLAIM.sub, 'sub');
  const aud = text(m, CLAIM.aud, 'aud');
  const exp = uint(m, CLAIM.exp, 'exp');
  const nbf = uint(m, CLAIM.nbf, 'nbf');
  const iat = uint(m, CLAIM.iat, 'iat');
  if (nbf >= exp) claimError('CWT "nbf" (5) must be before "exp" (4)');
  // [TANDEM-TOK-3] A token issued after it expired is no token: refused rather than read (issue 7 finding 7).
  if (iat > exp) claimError('CWT "iat" (6) must not be after "exp" (4)');
  const cti = m.get(CLAIM.cti);
  if (!(cti instanceof Uint8Array) || cti.length < 8 || cti.length > 16) {
    claimError('CWT "cti" (7) claim must be a byte string of 8 to 16 bytes');
  }
  const cnf = m.get(CLAIM.cnf);
  if (!(cnf instanceof Map) || cnf.size !== 1 || !cnf.has(1)) {
    claimError('CWT "cnf" (8) claim must be a map holding exactly a COSE_Key (1), RFC 8747 §3.2');
  }
  const holder = publicKeyFromCoseKey(cnf.get(1), 'CWT "cnf" (8) COSE_Key');
  const scopeValue = m.get(CLAIM.scope);
  if (typeof scopeValue !== 'string' || scopeValue.length === 0 || scopeValue.length > 128) {
    claimError('CWT "scope" (9) claim must be a text string of 1 to 128 characters');
  }
  const scope = scopeValue.split(' ');
  if (!scope.every((s) => SCOPE_TOKEN.test(s)))
    claimError('CWT "scope" (9) claim has an empty or invalid scope token');
  const claims: {
    -readonly [K in keyof TokenClaims]: TokenClaims[K];
  } = { iss, sub, aud, exp, nbf, iat, cti, cnf: holder, scope };
  const t = m.get(CLAIM.tandem);
  if (t !== undefined) {
    if (!(t instanceof Map)) claimError('CWT "tandem" (-65537) claim must be a map');
    for (const k of t.keys()) {
      if (k !== 1 && k !== 2 && k !== 3 && k !== 4)
        claimError(`CWT "tandem" (-65537) claim has unknown key ${String(k)}`);
    }
    if (t.has(TANDEM_CLAIM.rider)) claims.rider = text(t, TANDEM_CLAIM.rider, 'tandem.rider');
    if (t.has(TANDEM_CLAIM.schedule)) {
      claims.schedule = parseSchedule(t.get(TANDEM_CLAIM.schedule), 'CWT "tandem.schedule" (-65537/2)');
    }
    if (t.has(TANDEM_CLAIM.maxUses)) {
      claims.maxUses = uint(t, TANDEM_CLAIM.maxUses, 'tandem.maxUses');
      if (claims.maxUses === 0) claimError('CWT "tandem.maxUses" (-65537/3) claim must be at least 1');
    }
    if (t.has(TANDEM_CLAIM.minRevocation)) {
      claims.minRevocation = uint(t, TANDEM_CLAIM.minRevocation, 'tandem.minRevocation');
    }
  }
  return claims;
}

/**
 * The one-pass read of the "scope" (9) claim ([TANDEM-TOK-5]): a text string of 1 to 128 characters whose
 * space-separated tokens each match SCOPE_TOKEN (RFC 6749 §3.3: no empty token, so no leading, trailing or
 * double space, and only %x21 / %x23-5B / %x5D-7E), checked on the bytes and split while reading, with no
 * string of the whole claim to flatten and split again. A byte outside those (any non-ASCII byte included)
 * declines, and the general path refuses.
 */
function readScope(c: ProfileCursor): string[] {
  const n = c.head(3);
  const b = c.bytes;
  const start = c.pos;
  if (n === 0 || n > 128 || n > b.length - start) c.decline();
  const end = start + n;
  c.pos = end;
  const scope: string[] = [];
  let token = '';
  for (let i = start; i < end; i++) {
    const ch = b[i]!;
    if (ch === 0x20) {
      if (token === '') c.decline();
      scope.push(token);
      token = '';
    } else if (ch === 0x21 || (ch >= 0x23 && ch <= 0x5b) || (ch >= 0x5d && ch <= 0x7e)) {
      token += String.fromCharCode(ch);
    } else {
      c.decline();
    }
  }
  if (token === '') c.decline();
  scope.push(token);
  return scope;
}

// The claims map's first byte: 9 pairs (keys 1-9) or 10 (with the Tandem claim).
const CLAIMS_9 = 0xa9;
const CLAIMS_10 = 0xaa;
// -65537, the Tandem claim's key: major type 1, argument 65536 in four bytes (its shortest form).
const TANDEM_KEY = [0x3a, 0x00, 0x01, 0x00, 0x00] as const;

/**
 * The one-pass read of a claims set as {@link encodeClaims} writes it ([TANDEM-CBOR-10]): keys 1-9 in
 * ascending order, then optionally -65537 with its keys ascending; the cnf a COSE_Key with parameters among
 * kty, crv, alg, x and y, each once. Every check of {@link parseClaimsGeneral} is made on the way, so that
 * what this returns is what that returns; on anything else it declines ({@link ProfileCursor}), and a
 * refusal is always the general path's: undefined, and {@link parseClaims} runs the general path. Depth
 * (at most 4) and items (at most 14) stay within the claims limits by construction.
 */
export function readClaims(payload: Uint8Array): TokenClaims | undefined {
  if (!(payload instanceof Uint8Array) || payload.length > PAYLOAD_LIMITS.maxBytes) return undefined;
  return readFast(() => readClaimsBody(payload));
}

function readClaimsBody(payload: Uint8Array): TokenClaims {
  const c = new ProfileCursor(payload);
  const withTandem = c.take(CLAIMS_10);
  if (!withTandem) c.expect(CLAIMS_9);
  c.expect(CLAIM.iss);
  const iss = c.textString();
  c.expect(CLAIM.sub);
  const sub = c.textString();
  c.expect(CLAIM.aud);
  const aud = c.textString();
  if (iss.length === 0 || iss.length > 64 || sub.length === 0 || sub.length > 64) c.decline();
  if (aud.length === 0 || aud.length > 64) c.decline();
  c.expect(CLAIM.exp);
  const exp = c.uint();
  c.expect(CLAIM.nbf);
  const nbf = c.uint();
  c.expect(CLAIM.iat);
  const iat = c.uint();
  if (nbf >= exp || iat > exp) c.decline();
  c.expect(CLAIM.cti);
  const cti = c.byteString();
  if (cti.length < 8 || cti.length > 16) c.decline();
  c.expect(CLAIM.cnf);
  c.expect(0xa1); // {1: COSE_Key}
  c.expect(0x01);
  const holder = readCoseKey(c);
  c.expect(CLAIM.scope);
  const scope = readScope(c);
  let rider: string | undefined;
  let schedule: Schedule | undefined;
  let maxUses: number | undefined;
  let minRevocation: number | undefined;
  if (withTandem) {
    for (const byte of TANDEM_KEY) c.expect(byte);
    const pairs = c.head(5);
    let last = 0;
    for (let i = 0; i < pairs; i++) {
      const key = c.uint();
      if (key <= last || key > 4) c.decline(); // ascending, so each key once
      last = key;
      if (key === TANDEM_CLAIM.rider) {
        rider = c.textString();
        if (rider.length === 0 || rider.length > 64) c.decline();
      } else if (key === TANDEM_CLAIM.schedule) {
        schedule = readSchedule(c);
      } else if (key === TANDEM_CLAIM.maxUses) {
        maxUses = c.uint();
        if (maxUses === 0) c.decline();
      } else {
        minRevocation = c.uint();
      }
    }
  }
  if (!c.atEnd) c.decline();
  // The key is parsed last, as the general path parses it only once the whole payload has decoded (a bad
  // key before a CBOR fault is refused for the CBOR fault); a bad key declines, and the general path words it.
  const cnf = publicKeyFromRaw(holder.alg, holder.raw);
  const claims: {
    -readonly [K in keyof TokenClaims]: TokenClaims[K];
  } = { iss, sub, aud, exp, nbf, iat, cti, cnf, scope };
  if (rider !== undefined) claims.rider = rider;
  if (schedule !== undefined) claims.schedule = schedule;
  if (maxUses !== undefined) claims.maxUses = maxUses;
  if (minRevocation !== undefined) claims.minRevocation = minRevocation;
  return claims;
}

// COSE_Key parameter labels (RFC 9052 §7.1, RFC 9053 §7) as one-byte CBOR integers, and their bits.
const KEY_PARAM_BIT: Readonly<Record<number, number>> = { 0x01: 1, 0x03: 2, 0x20: 4, 0x21: 8, 0x22: 16 };

/**
 * The one-pass read of a COSE_Key with the parameters kty (1), alg (3), crv (-1), x (-2) and y (-3), in any
 * order, each once: the point's algorithm and raw SEC1/Ed25519 bytes, checked as
 * {@link publicKeyFromCoseKey} checks them, not yet parsed. A kid (2), any other label or value type
 * declines.
 */
function readCoseKey(c: ProfileCursor): { alg: Alg; raw: Uint8Array } {
  const pairs = c.head(5);
  if (pairs > 5) c.decline();
  let seen = 0;
  let kty: number | undefined;
  let crv: number | undefined;
  let coseAlg: number | undefined;
  let x: Uint8Array | undefined;
  let y: Uint8Array | boolean | undefined;
  for (let i = 0; i < pairs; i++) {
    const label = c.pos < c.bytes.length ? c.bytes[c.pos]! : -1;
    const bit = KEY_PARAM_BIT[label] ?? c.decline();
    if ((seen & bit) !== 0) c.decline();
    seen |= bit;
    c.pos++;
    if (label === 0x01) kty = c.int();
    else if (label === 0x03) coseAlg = c.int();
    else if (label === 0x20) crv = c.int();
    else if (label === 0x21) x = c.byteString();
    else y = c.peekMajor() === 2 ? c.byteString() : c.boolean();
  }
  if (x === undefined) return c.decline();
  let alg: Alg;
  let raw: Uint8Array;
  if (kty === KTY_OKP && crv === CRV_ED25519) {
    alg = 'EdDSA';
    raw = x;
  } else if (kty === KTY_EC2 && crv === CRV_P256) {
    alg = 'ES256';
    if (x.length !== 32) c.decline();
    if (typeof y === 'boolean') {
      raw = new Uint8Array(33);
      raw[0] = y ? 3 : 2;
      raw.set(x, 1);
    } else if (y !== undefined && y.length === 32) {
      raw = new Uint8Array(65);
      raw[0] = 4;
      raw.set(x, 1);
      raw.set(y, 33);
    } else {
      return c.decline();
    }
  } else {
    return c.decline();
  }
  if (coseAlg !== undefined && coseAlg !== (alg === 'EdDSA' ? -8 : -7)) c.decline();
  return { alg, raw };
}

/** The one-pass read of a schedule ([TANDEM-SCHED-1]) with the checks of `parseSchedule`. */
function readSchedule(c: ProfileCursor): Schedule {
  const n = c.head(4);
  if (n === 0 || n > MAX_WINDOWS) c.decline();
  const windows: ScheduleWindow[] = [];
  for (let i = 0; i < n; i++) {
    c.expect(0x83);
    const days = c.uint();
    const start = c.uint();
    const end = c.uint();
    if (days < 1 || days > 127 || end > 1440 || start >= end) c.decline();
    windows.push({ days, start, end });
  }
  return windows;
}

/** Decodes a token's COSE_Sign1 envelope and claims without checking its signature. */
export function decodeToken(bytes: Uint8Array): DecodedToken {
  const sign1 = decodeSign1(bytes, TOKEN_LIMITS, [61, 18]);
  // The other signed payloads carry a Tandem content format ([TANDEM-REV-1]); a token carries none, so that
  // a revocation update, beacon or audit record can never be presented as a token ([TANDEM-TOK-1]).
  if (sign1.protectedHeader.has(HEADER.contentType) || sign1.unprotectedHeader.has(HEADER.contentType)) {
    throw new ProtocolError(
      'ERR_COSE_INVALID',
      'a token carries no COSE "content type" Header Parameter (TANDEM-TOK-1)',
    );
  }
  return { bytes, sign1, claims: parseClaims(sign1.payload) };
}

/** Claims to mint; the holder key is given as a public key. */
export interface MintClaims {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  nbf: number;
  iat: number;
  cti: Uint8Array;
  cnf: PublicKey;
  scope: readonly string[];
  rider?: string;
  schedule?: Schedule;
  maxUses?: number;
  minRevocation?: number;
}

/** Encodes the claims set in Tandem's canonical order (keys ascending, [TANDEM-TOK-1]). */
export function encodeClaims(c: MintClaims): Uint8Array {
  const m = new Map<number, CborValue>([
    [CLAIM.iss, c.iss],
    [CLAIM.sub, c.sub],
    [CLAIM.aud, c.aud],
    [CLAIM.exp, c.exp],
    [CLAIM.nbf, c.nbf],
    [CLAIM.iat, c.iat],
    [CLAIM.cti, c.cti],
    [CLAIM.cnf, new Map<number, CborValue>([[1, coseKeyOf(c.cnf)]])],
    [CLAIM.scope, c.scope.join(' ')],
  ]);
  const t = new Map<number, CborValue>();
  if (c.rider !== undefined) t.set(TANDEM_CLAIM.rider, c.rider);
  if (c.schedule !== undefined) t.set(TANDEM_CLAIM.schedule, scheduleToCbor(c.schedule));
  if (c.maxUses !== undefined) t.set(TANDEM_CLAIM.maxUses, c.maxUses);
  if (c.minRevocation !== undefined) t.set(TANDEM_CLAIM.minRevocation, c.minRevocation);
  if (t.size > 0) m.set(CLAIM.tandem, t);
  return encode(m);
}

/**
 * Mints a token: the claims are checked by parsing them back ([TANDEM-TOK-3]) so that no token is issued
 * that a lock would refuse as malformed. `kid` names the signer's trust anchor; chain links omit it (their
 * signer is the parent's holder key, [TANDEM-CHAIN-2]).
 */
export function mintToken(claims: MintClaims, signer: PrivateKey, kid?: Uint8Array): Uint8Array {
  const payload = encodeClaims(claims);
  parseClaims(payload);
  const bytes = signSign1(payload, signer, kid === undefined ? {} : { kid });
  if (bytes.length > TOKEN_LIMITS.maxBytes) {
    throw new ProtocolError(
      'ERR_TOO_LARGE',
      `token of ${bytes.length} bytes exceeds ${TOKEN_LIMITS.maxBytes}`,
    );
  }
  return bytes;
}

/** True when `scope` grants `needed` ([TANDEM-TOK-5]). */
export function hasScope(scope: readonly string[], needed: Scope): boolean {
  return scope.includes(needed);
}
