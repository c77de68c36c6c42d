/**
 * Keys and signatures (SPEC.md §3). Two algorithms only: EdDSA with Ed25519 (COSE alg -8) and ES256, ECDSA
 * P-256 with SHA-256 (COSE alg -7, signature as raw r‖s, RFC 9053 §2.1). A {@link PublicKey} binds one key to
 * one algorithm, so that a message header can never choose how a key is used (RFC 9052 §8, SPEC TANDEM-KEY-1).
 * Keys are parsed once into Node `KeyObject`s and cached.
 */
import {
  ECDH,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as nodeSign,
  verify as nodeVerify,
} from 'node:crypto';
import type { JsonWebKey, KeyObject } from 'node:crypto';
import { ProtocolError } from './errors.js';

/** The signature algorithms of Tandem's profile. */
export type Alg = 'EdDSA' | 'ES256';

/** COSE algorithm identifiers (RFC 9053 §2.1, §2.2). */
export const COSE_ALG: Readonly<Record<Alg, number>> = { EdDSA: -8, ES256: -7 };

/** The algorithm for a COSE alg value, or undefined when Tandem does not support it. */
export function algFromCose(value: unknown): Alg | undefined {
  return value === -8 ? 'EdDSA' : value === -7 ? 'ES256' : undefined;
}

/** A public key bound to its algorithm. `raw` is the compact form (SPEC.md TANDEM-KEY-2). */
export interface PublicKey {
  readonly alg: Alg;
  /** Ed25519: the 32-byte key; ES256: the 33-byte compressed SEC1 point. */
  readonly raw: Uint8Array;
  readonly key: KeyObject;
}

/** A private key bound to its algorithm, with its public half. */
export interface PrivateKey {
  readonly alg: Alg;
  readonly key: KeyObject;
  readonly publicKey: PublicKey;
}

// [TANDEM-KEY-5] The y-coordinates (little-endian, sign bit cleared) of the eight points of small order on
// Ed25519 (the torsion subgroup E[8]; libsodium's blocklist): 0 (order 4, both signs), 1 (the identity),
// p-1 (order 2) and the two of order 8, each with both signs. Node's crypto (OpenSSL) accepts these as
// public keys, and with the identity key the signature (R = identity, S = 0) verifies for every message.
// Their non-canonical twins (y = p, p+1; x = 0 with the sign bit set) are refused by the same test on y.
const ED25519_SMALL_ORDER_Y: readonly Buffer[] = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
].map((h) => Buffer.from(h, 'hex'));

/**
 * Why a 32-byte Ed25519 public key is refused, or undefined when it is acceptable ([TANDEM-KEY-5]): its y
 * must be canonical (below p = 2^255 - 19, RFC 8032 §5.1.3) and its point not of small order.
 */
function ed25519KeyRefusal(raw: Uint8Array): string | undefined {
  const y = Buffer.from(raw);
  y[31]! &= 0x7f;
  // y >= p: bytes 31..1 at their maximum (0x7f, 0xff...) and byte 0 at least 0xed (p's low byte).
  let top = y[31] === 0x7f;
  for (let i = 30; top && i >= 1; i--) top = y[i] === 0xff;
  if (top && y[0]! >= 0xed) return 'Ed25519 public key is not canonical: its y-coordinate is not below p';
  if (ED25519_SMALL_ORDER_Y.some((small) => small.equals(y))) {
    return 'Ed25519 public key is a point of small order (TANDEM-KEY-5)';
  }
  return undefined;
}

// Parsed keys by algorithm and raw bytes. Riders' keys recur on every unlock; parsing dominates
// verification cost otherwise. Bounded: the oldest entry goes first.
const CACHE_LIMIT = 512;
const cache = new Map<string, PublicKey>();

// The raw bytes as a latin1 string, one char per byte. The algorithm is not part of the key: a raw key's
// length names it (32 bytes Ed25519, 33 or 65 P-256), and a hit is used only for the algorithm asked for.
// Buffer's latin1Slice straight on the bytes: no Buffer object, no concatenation to flatten on the unlock
// path (a third of a cache hit's cost before).
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice?: (start: number, end: number) => string })
  .latin1Slice;
function cacheKey(raw: Uint8Array): string {
  return typeof latin1Slice === 'function'
    ? latin1Slice.call(raw, 0, raw.length)
    : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1');
}

/**
 * Parses a raw public key: 32 bytes for Ed25519 (canonical and not of small order, [TANDEM-KEY-5]); a
 * 33-byte compressed or 65-byte uncompressed SEC1 point
 * for P-256 (the point is checked to be on the curve). Throws ERR_KEY_INVALID.
 */
export function publicKeyFromRaw(alg: Alg, raw: Uint8Array): PublicKey {
  const id = cacheKey(raw);
  const hit = cache.get(id);
  if (hit !== undefined && hit.alg === alg) return hit;
  let key: KeyObject;
  let compact: Uint8Array;
  try {
    if (alg === 'EdDSA') {
      if (raw.length !== 32) throw new Error('length');
      const refusal = ed25519KeyRefusal(raw);
      if (refusal !== undefined) throw new ProtocolError('ERR_KEY_INVALID', refusal);
      // A JWK, not SPKI DER: Node imports an OKP JWK with EVP_PKEY_new_raw_public_key, without OpenSSL 3's
      // decoder framework, several times faster (see p256FromSec1).
      const x = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url');
      key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
      compact = Uint8Array.from(raw);
    } else {
      // Compressed (02/03 ‖ x) or uncompressed (04 ‖ x ‖ y) SEC1 point; never the 1-byte point at infinity.
      if (!(raw.length === 33 && (raw[0] === 2 || raw[0] === 3)) && !(raw.length === 65 && raw[0] === 4)) {
        throw new Error('length');
      }
      key = p256FromSec1(raw);
      compact = raw.length === 33 ? Uint8Array.from(raw) : compressP256(raw);
    }
  } catch (cause) {
    if (cause instanceof ProtocolError) throw cause;
    throw new ProtocolError(
      'ERR_KEY_INVALID',
      alg === 'EdDSA'
        ? 'Ed25519 public key must be 32 bytes encoding a valid point'
        : 'P-256 public key must be a valid 33-byte compressed or 65-byte uncompressed point',
      { cause },
    );
  }
  const pk: PublicKey = { alg, raw: compact, key };
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
  cache.set(id, pk);
  return pk;
}

/** What `new KeyObjectHandle()` of Node's crypto binding offers us: WebCrypto's raw EC import. */
interface RawEcHandle {
  initECRaw(curve: string, point: Uint8Array): boolean;
}

/**
 * Node's own native raw EC import, the one WebCrypto's `importKey('raw')` runs (its `KeyObjectHandle`
 * `initECRaw`: EC_KEY_new_by_curve_name, EC_POINT_oct2point, EC_KEY_set_public_key), reached synchronously
 * through the handle of a KeyObject; undefined when this Node does not have it (then {@link p256FromSec1}
 * takes the public JWK route). Node 20 has no public synchronous raw import (`createPublicKey` reads no
 * `raw` format), and WebCrypto's asynchronous one costs about as much as the JWK route in argument
 * conversions and promises. Checked once at load against the public route on a fixed key, and on a point
 * that is not on the curve, so a Node whose internals differ falls back instead of misbehaving.
 */
const rawEcImport: ((point: Uint8Array) => KeyObject | undefined) | undefined = (() => {
  try {
    // The P-256 base point G (SEC 2 §2.4.2), uncompressed and compressed (its y is odd).
    const gx = '6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296';
    const gy = '4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5';
    const probe = createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: Buffer.from(gx, 'hex').toString('base64url'),
        y: Buffer.from(gy, 'hex').toString('base64url'),
      },
      format: 'jwk',
    });
    const symbol = Object.getOwnPropertySymbols(probe).find((s) => s.description === 'kHandle');
    if (symbol === undefined) return undefined;
    const handle = (probe as unknown as Record<symbol, unknown>)[symbol] as object | undefined;
    const Handle = handle?.constructor as (new () => Partial<RawEcHandle>) | undefined;
    const PublicKeyObject = probe.constructor as new (handle: object) => KeyObject;
    if (Handle === undefined || typeof Handle.prototype.initECRaw !== 'function') return undefined;
    const importRaw = (point: Uint8Array): KeyObject | undefined => {
      const h = new Handle() as RawEcHandle;
      return h.initECRaw('prime256v1', point) ? new PublicKeyObject(h) : undefined;
    };
    const g = importRaw(Buffer.from('03' + gx, 'hex'));
    const same = g?.type === 'public' && g.equals(probe);
    // x = 1 has no point on P-256 (1 - 3 + b is not a square mod p): must be refused, not decoded.
    const offCurve = importRaw(Buffer.from('02' + '00'.repeat(31) + '01', 'hex'));
    return same && offCurve === undefined ? importRaw : undefined;
  } catch {
    return undefined;
  }
})();

/**
 * A P-256 key object from a SEC1 point (33-byte compressed or 65-byte uncompressed), all in the platform's
 * native code ([TANDEM-KEY-4]): a rider key the lock has never seen is parsed on the unlock path (issue 8,
 * "a first-time rider is cold"). OpenSSL's EC_POINT_oct2point refuses x or y not below p, decompresses a
 * compressed x with a modular square root and refuses one with no root, and refuses an uncompressed point
 * that is not on the curve; P-256 has cofactor 1, so a point on it other than the identity (which no 33- or
 * 65-byte encoding can name) is in the prime-order group and needs no multiplication by the order
 * ([TANDEM-KEY-2]). Measured on Node 20 / OpenSSL 3.0 (bench/README.md, `pop.verify_cold_key_ratio`): the
 * raw import costs about 0.4 of an ES256 verification, `ECDH.convertKey` plus a JWK import (which also
 * multiplies the point by the group order) about 1.4, SPKI DER through OpenSSL 3's decoder framework about 2.3.
 * `route` 'jwk' forces the fallback (tests compare the two). Throws a plain Error for a bad point.
 */
export function p256FromSec1(point: Uint8Array, route: 'native' | 'jwk' = 'native'): KeyObject {
  // Only the two point encodings: OpenSSL would also read the 1-byte 00, the point at infinity.
  if (
    !(point.length === 33 && (point[0] === 2 || point[0] === 3)) &&
    !(point.length === 65 && point[0] === 4)
  ) {
    throw new Error('a P-256 point is 33 bytes (02/03 ‖ x) or 65 bytes (04 ‖ x ‖ y)');
  }
  if (rawEcImport !== undefined && route === 'native') {
    const key = rawEcImport(point);
    if (key === undefined) throw new Error('not a point on P-256');
    return key;
  }
  // Without encodings, convertKey returns a Buffer (the overload types cannot say so).
  const b =
    point.length === 33
      ? (ECDH.convertKey(point, 'prime256v1', undefined, undefined, 'uncompressed') as Buffer)
      : Buffer.from(point.buffer, point.byteOffset, point.byteLength);
  return createPublicKey({
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: b.subarray(1, 33).toString('base64url'),
      y: b.subarray(33, 65).toString('base64url'),
    },
    format: 'jwk',
  });
}

/** Whether P-256 points are imported by Node's native raw import (true) or the JWK fallback. */
export const P256_RAW_IMPORT = rawEcImport !== undefined;

function compressP256(point: Uint8Array): Uint8Array {
  const out = new Uint8Array(33);
  out[0] = (point[64]! & 1) === 1 ? 3 : 2;
  out.set(point.subarray(1, 33), 1);
  return out;
}

/** The public key of a Node `KeyObject` (public or private), bound to `alg`. Throws ERR_KEY_INVALID. */
export function publicKeyFromKeyObject(alg: Alg, key: KeyObject): PublicKey {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const expected = alg === 'EdDSA' ? 'ed25519' : 'ec';
  if (pub.asymmetricKeyType !== expected) {
    throw new ProtocolError(
      'ERR_KEY_INVALID',
      `key is ${pub.asymmetricKeyType ?? 'symmetric'}, not usable with ${alg}`,
    );
  }
  if (alg === 'ES256' && pub.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new ProtocolError('ERR_KEY_INVALID', 'ES256 needs a P-256 key');
  }
  const der = pub.export({ format: 'der', type: 'spki' });
  const raw = alg === 'EdDSA' ? der.subarray(der.length - 32) : der.subarray(der.length - 65);
  return publicKeyFromRaw(alg, raw);
}

/** Algorithm for a JWK (`kty`/`crv`): OKP/Ed25519 is EdDSA, EC/P-256 is ES256. Throws ERR_KEY_INVALID. */
export function algOfJwk(jwk: JsonWebKey): Alg {
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  throw new ProtocolError('ERR_KEY_INVALID', `JWK "kty"/"crv" must be OKP/Ed25519 or EC/P-256`);
}

/** Imports a public JWK (RFC 7517; RFC 8037 for OKP). Throws ERR_KEY_INVALID. */
export function publicKeyFromJwk(jwk: JsonWebKey): PublicKey {
  const alg = algOfJwk(jwk);
  try {
    const { d: _d, ...pub } = jwk;
    return publicKeyFromKeyObject(alg, createPublicKey({ key: pub, format: 'jwk' }));
  } catch (cause) {
    if (cause instanceof ProtocolError) throw cause;
    throw new ProtocolError('ERR_KEY_INVALID', 'JWK is not a valid public key', { cause });
  }
}

/** Imports a private JWK. Throws ERR_KEY_INVALID. */
export function privateKeyFromJwk(jwk: JsonWebKey): PrivateKey {
  const alg = algOfJwk(jwk);
  if (typeof jwk.d !== 'string') throw new ProtocolError('ERR_KEY_INVALID', 'JWK "d" (private key) missing');
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: jwk, format: 'jwk' });
  } catch (cause) {
    throw new ProtocolError('ERR_KEY_INVALID', 'JWK is not a valid private key', { cause });
  }
  return { alg, key, publicKey: publicKeyFromKeyObject(alg, key) };
}

/** Wraps a Node private `KeyObject`. Throws ERR_KEY_INVALID. */
export function privateKeyFromKeyObject(alg: Alg, key: KeyObject): PrivateKey {
  if (key.type !== 'private') throw new ProtocolError('ERR_KEY_INVALID', 'key is not a private key');
  return { alg, key, publicKey: publicKeyFromKeyObject(alg, key) };
}

/** Generates a fresh key pair for `alg`. */
export function generateKeyPair(alg: Alg): PrivateKey {
  const { privateKey } =
    alg === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return privateKeyFromKeyObject(alg, privateKey);
}

/** Exports a key as a JWK, with its `alg`; private keys include `d`. */
export function exportJwk(key: PublicKey | PrivateKey, kid?: string): JsonWebKey {
  const jwk = key.key.export({ format: 'jwk' }) as JsonWebKey;
  return { ...jwk, alg: key.alg, ...(kid === undefined ? {} : { kid }) };
}

/** Signs `data` (SPEC.md TANDEM-KEY-3): Ed25519 (RFC 8032) or ECDSA P-256/SHA-256 as raw 64-byte r‖s. */
export function signBytes(key: PrivateKey, data: Uint8Array): Uint8Array {
  const sig =
    key.alg === 'EdDSA'
      ? nodeSign(null, data, key.key)
      : nodeSign('sha256', data, { key: key.key, dsaEncoding: 'ieee-p1363' });
  return new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength);
}

/**
 * Verifies a signature made by {@link signBytes}. Returns false for any wrong signature, including one of
 * the wrong length; never throws for bad input.
 */
export function verifyBytes(key: PublicKey, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    return key.alg === 'EdDSA'
      ? nodeVerify(null, data, key.key, signature)
      : nodeVerify('sha256', data, { key: key.key, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}
