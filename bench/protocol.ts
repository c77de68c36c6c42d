/**
 * Bench group `protocol` (issue 2 §5): how small Tandem's delegated token and unlock request are, and what
 * verifying them costs beyond the signature check itself.
 *
 * The token is the typical one of `protocol/test/fixtures.ts` (P-256 holder key, rider, weekday schedule,
 * Ed25519 issuer with a 1-byte kid); the JWT it is compared with carries the same claims the JOSE way.
 */
import { randomBytes, verify as nodeVerify } from 'node:crypto';
import { SignJWT } from 'jose';
import { checkSchedule, chainHash, verifyGrant } from '../protocol/src/chain.js';
import type { TimeBound } from '../protocol/src/chain.js';
import { decodeSign1, sigStructure, verifySign1 } from '../protocol/src/cose.js';
import { MIN_ATT_MTU, MessageType, frameMessage } from '../protocol/src/gatt.js';
import { exportJwk, generateKeyPair, p256FromSec1, signBytes } from '../protocol/src/keys.js';
import { Command, createRequest, decodeRequest, popSignedBytes, verifyPop } from '../protocol/src/pop.js';
import {
  TOKEN_LIMITS,
  coseKeyOf,
  decodeToken,
  mintToken,
  publicKeyFromCoseKey,
} from '../protocol/src/token.js';
import { LOCK, NOW, claims, world } from '../protocol/test/fixtures.js';
import type { BenchContext, BenchGroup, CompareOptions } from './lib.js';
import { QUICK, atMost, compare, comparisonNote } from './lib.js';

// The lock's configured zone: one with daylight saving, so the schedule check does real zone arithmetic.
const TIME_ZONE = 'Europe/Berlin';
// A lock whose clock was recently confirmed knows the time to within a few seconds; the bound is not a
// single instant, so the schedule is sampled at both ends as on a real lock.
const BOUND: TimeBound = { earliest: NOW - 5, latest: NOW + 5 };

/** ATT_MTU values: 185 is what iOS negotiates, 23 the minimum every central supports (ARCHITECTURE.md). */
const MTU_FAST = 185;
const MTU_MIN = MIN_ATT_MTU;

/** The frames of one message as written over GATT ([TANDEM-GATT-5]): their count and total bytes. */
function framing(body: Uint8Array, attMtu: number): { frames: number; bytes: number } {
  const frames = frameMessage(MessageType.unlockRequest, body, attMtu);
  return { frames: frames.length, bytes: frames.reduce((sum, f) => sum + f.length, 0) };
}

function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

async function run(ctx: BenchContext): Promise<void> {
  const opts: CompareOptions = ctx.quick ? QUICK : {};
  const w = world();
  const c = claims(w);
  // Exactly fixtures.ts issued(), with the claims kept so that the JWT can carry the same ones.
  const token = mintToken(c, w.issuer, w.issuerKid);

  // 1. Size against a JWT with the same claims (RFC 7519; cnf per RFC 7800 §3.2 as a JWK; scope as the
  // space-separated string of RFC 8693 §4.2; rider and schedule as private claims with readable names).
  const holder = exportJwk(c.cnf);
  const jwt = await new SignJWT({
    cnf: { jwk: { kty: holder.kty, crv: holder.crv, x: holder.x, y: holder.y } },
    scope: c.scope.join(' '),
    rider: c.rider,
    schedule: c.schedule,
  })
    .setProtectedHeader({ alg: 'EdDSA', kid: '01' })
    .setIssuer(c.iss)
    .setSubject(c.sub)
    .setAudience(c.aud)
    .setExpirationTime(c.exp)
    .setNotBefore(c.nbf)
    .setIssuedAt(c.iat)
    .setJti(base64url(c.cti))
    .sign(w.issuer.key);
  const jwtBytes = Buffer.byteLength(jwt, 'ascii');
  ctx.report({
    name: 'token.size_ratio_vs_jwt',
    value: token.length / jwtBytes,
    unit: 'ratio',
    goal: atMost(0.5),
    note: `CWT ${token.length} B / JWS compact JWT ${jwtBytes} B, same claims`,
  });
  ctx.report({
    name: 'token.bytes',
    value: token.length,
    unit: 'bytes',
    goal: null,
    note: 'COSE_Sign1 CWT: Ed25519, kid 1 B, cti 12 B, P-256 cnf (compressed), rider, 1 schedule window',
  });
  ctx.report({
    name: 'token.jwt_bytes',
    value: jwtBytes,
    unit: 'bytes',
    goal: null,
    note: 'EdDSA JWS compact',
  });

  // 2. The whole unlock request as it goes over the air.
  const nonce = new Uint8Array(randomBytes(16));
  const hash = chainHash([token]);
  const request = createRequest({
    lockId: LOCK,
    nonce,
    command: Command.UNLOCK,
    chain: [token],
    chainHash: hash,
    holderKey: w.rider,
  });
  const fast = framing(request, MTU_FAST);
  const slow = framing(request, MTU_MIN);
  ctx.report({
    name: 'unlock_request.bytes',
    value: fast.bytes,
    unit: 'bytes',
    goal: atMost(364),
    note: `request ${request.length} B + ${fast.bytes - request.length} B framing (gatt.ts frameMessage) at MTU ${MTU_FAST}`,
  });
  ctx.report({
    name: 'unlock_request.att_writes_mtu185',
    value: fast.frames,
    unit: 'count',
    goal: atMost(2),
    note: `ATT payload ${MTU_FAST - 3} B per write`,
  });
  ctx.report({
    name: 'unlock_request.att_writes_mtu23',
    value: slow.frames,
    unit: 'count',
    goal: null,
    note: `ATT payload ${MTU_MIN - 3} B per write; ${slow.bytes} B with framing`,
  });

  // 3. Token verification as the lock does it, against the bare Ed25519 verification it cannot avoid.
  const verifyFull = () =>
    verifyGrant([token], { anchors: w.lookup, lockId: LOCK, time: BOUND, timeZone: TIME_ZONE });
  // The same claims without a schedule: what the schedule check adds.
  const { schedule: _schedule, ...unscheduledClaims } = c;
  const unscheduled = mintToken(unscheduledClaims, w.issuer, w.issuerKid);
  const verifyNoSchedule = () =>
    verifyGrant([unscheduled], { anchors: w.lookup, lockId: LOCK, time: BOUND, timeZone: TIME_ZONE });
  const sign1 = decodeSign1(token, TOKEN_LIMITS, [61, 18]);
  const toBeSigned = sigStructure(sign1.protectedBytes, sign1.payload);
  const issuerKey = w.issuer.publicKey.key; // the parsed key the lock caches
  const signature = sign1.signature;
  const bareToken = () => nodeVerify(null, toBeSigned, issuerKey, signature);
  if (!bareToken()) throw new Error('bench setup: bare Ed25519 verification of the token failed');
  verifyFull(); // throws if the typical token would be refused

  // Settle before the first timed row. The first comparison after the set-up above came out 0.05-0.2 higher
  // than the same comparison run right after it, whichever row went first: V8 was still optimising the
  // verification path (--trace-opt shows verifyChain, publicKeyFromRaw and the time-zone offset reaching
  // TurboFan during it, their compile jobs taking 20-60 ms each on the loaded machine), which compare's
  // 100 ms warm-up does not cover. Four seconds of both sides, untimed (a quarter second with --quick): two
  // were not always enough at load 11 (one run in three still came out 1.22).
  for (const end = performance.now() + (ctx.quick ? 250 : 4000); performance.now() < end;) {
    verifyFull();
    verifyNoSchedule();
    bareToken();
  }
  const full = compare(verifyFull, bareToken, opts);
  const noSchedule = compare(verifyNoSchedule, bareToken, opts);

  ctx.report({
    name: 'token.verify_ratio',
    value: full.ratio,
    unit: 'ratio',
    goal: atMost(1.1),
    note: comparisonNote(full, 'verifyGrant (chain, time, schedule)', 'bare Ed25519 verify'),
  });
  ctx.report({
    name: 'token.verify_ratio_no_schedule',
    value: noSchedule.ratio,
    unit: 'ratio',
    goal: null,
    note: comparisonNote(noSchedule, 'verifyGrant, same claims without a schedule', 'bare Ed25519 verify'),
  });

  // Where the time beyond the signature goes: each step of the verification on its own, as a fraction of
  // the bare verification, measured side by side like the ratios above (the steps sum to about the ratio).
  const grant = verifyFull();
  const steps: [string, string, () => unknown][] = [
    [
      'decode_token',
      'decodeToken: COSE_Sign1 + protected header + claims + cnf key',
      () => decodeToken(token),
    ],
    [
      'verify_sign1',
      'verifySign1: Sig_structure + Ed25519 verify',
      () => verifySign1(sign1, w.issuer.publicKey),
    ],
    ['chain_hash', 'chainHash: CBOR array + SHA-256', () => chainHash([token])],
    [
      'check_schedule',
      `checkSchedule: ${BOUND.latest - BOUND.earliest} s bound in ${TIME_ZONE}`,
      () => checkSchedule(grant.leaf.schedule, BOUND, TIME_ZONE),
    ],
  ];
  for (const [name, what, op] of steps) {
    const step = compare(op, bareToken, opts);
    ctx.report({
      name: `token.verify_step.${name}`,
      value: step.ratio,
      unit: 'ratio',
      goal: null,
      note: `${what}, per bare Ed25519 verify; ${comparisonNote(step, 'step', 'bare')}`,
    });
  }

  // 4. Proof of possession: request decoding and the ES256 check against the bare ES256 verification.
  const popBytes = popSignedBytes(LOCK, nonce, Command.UNLOCK, new Uint8Array(0), hash);
  const decoded = decodeRequest(request);
  const riderKey = { key: w.rider.publicKey.key, dsaEncoding: 'ieee-p1363' as const };
  const popSignature = decoded.signature;
  const barePop = () => nodeVerify('sha256', popBytes, riderKey, popSignature);
  if (!barePop()) throw new Error('bench setup: bare ES256 verification of the request failed');
  const popFull = () => {
    const req = decodeRequest(request);
    verifyPop(req, LOCK, w.rider.publicKey, hash);
    return req;
  };
  popFull();
  const pop = compare(popFull, barePop, opts);
  ctx.report({
    name: 'pop.verify_ratio',
    value: pop.ratio,
    unit: 'ratio',
    goal: null,
    note: comparisonNote(pop, 'decodeRequest+verifyPop', 'bare ES256 verify'),
  });

  // 5. A first-time rider is cold (issue 8): the lock has never seen the rider's key, so the proof of
  // possession is checked with a key parsed from the token's compressed COSE_Key on the spot. Every call takes
  // the next key of a pool larger than protocol/'s key cache (512), so no call finds its key parsed.
  const poolSize = ctx.quick ? 600 : 4096;
  const cold = Array.from({ length: poolSize }, () => {
    const k = generateKeyPair('ES256');
    const signature = signBytes(k, popBytes);
    return { coseKey: coseKeyOf(k.publicKey), request: { ...decoded, signature } };
  });
  let next = 0;
  const popCold = () => {
    const c = cold[next]!;
    next = next + 1 === poolSize ? 0 : next + 1;
    verifyPop(c.request, LOCK, publicKeyFromCoseKey(c.coseKey), hash);
  };
  const coldPop = compare(popCold, barePop, opts);
  ctx.report({
    name: 'pop.verify_cold_key_ratio',
    value: coldPop.ratio,
    unit: 'ratio',
    goal: atMost(1.2),
    note: `pop verify, never-seen key / bare ES256 verify with cached key; ${comparisonNote(coldPop, 'publicKeyFromCoseKey (compressed P-256, native) + verifyPop', 'bare ES256 verify, cached key')}`,
  });

  // 6. What the platform alone costs for a never-seen key, no Tandem code around it: Node's native raw import
  // (`p256FromSec1`: EC_POINT_oct2point, which for a compressed point takes a modular square root) and then
  // a bare `crypto.verify` with that fresh KeyObject (its first use, which OpenSSL 3 pays once per key). The
  // uncompressed variant leaves the square root out. They show how much of `pop.verify_cold_key_ratio` is
  // the platform's and so how far below it no lock code can go.
  const points = cold.map((c) => {
    const pub = publicKeyFromCoseKey(c.coseKey);
    const der = pub.key.export({ format: 'der', type: 'spki' });
    return {
      compressed: pub.raw,
      uncompressed: Uint8Array.from(der.subarray(der.length - 65)),
      signature: c.request.signature,
    };
  });
  let k = 0;
  const take = () => {
    const p = points[k]!;
    k = k + 1 === poolSize ? 0 : k + 1;
    return p;
  };
  /** Imports the next pool key from the encoding `form` picks, then verifies its signature: its first use. */
  const importVerify = (form: 'compressed' | 'uncompressed') => () => {
    const p = take();
    const key = { key: p256FromSec1(p[form]), dsaEncoding: 'ieee-p1363' as const };
    return nodeVerify('sha256', popBytes, key, p.signature);
  };
  const platformRows: readonly [string, string, () => unknown][] = [
    [
      'pop.cold_platform.import_verify_compressed',
      'native import of a never-seen compressed point + bare ES256 verify with it',
      importVerify('compressed'),
    ],
    [
      'pop.cold_platform.import_verify_uncompressed',
      'the same from the 65-byte uncompressed point (no square root)',
      importVerify('uncompressed'),
    ],
    [
      'pop.cold_platform.import_compressed',
      'native import of a never-seen compressed point alone',
      () => p256FromSec1(take().compressed),
    ],
  ];
  for (const [name, what, op] of platformRows) {
    const r = compare(op, barePop, opts);
    ctx.report({
      name,
      value: r.ratio,
      unit: 'ratio',
      goal: null,
      note: `${what} / bare ES256 verify with a cached key; ${comparisonNote(r, 'platform', 'bare ES256 verify, cached key')}`,
    });
  }
}

export const protocolGroup: BenchGroup = {
  name: 'protocol',
  description: 'token and unlock request size; token and PoP verification cost against bare signatures',
  run,
};
