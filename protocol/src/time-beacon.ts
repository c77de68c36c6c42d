/**
 * Time beacons (SPEC.md §7): the issuer's signed statement of the time, the only way a lock without a
 * real-time clock learns it. COSE_Sign1 by the issuer, `kid` in the unprotected header, content format
 * 65102 ([TANDEM-REV-1]). Payload map ([TANDEM-TIME-1]):
 *
 * | key | field    | type       | rule                                                                    |
 * | --- | -------- | ---------- | ----------------------------------------------------------------------- |
 * | 1   | time     | uint       | Unix seconds when the issuer signed                                     |
 * | 2   | nonce    | bstr 16    | optional: the lock's challenge nonce; makes the beacon provably fresh   |
 * | 3   | lock id  | tstr       | optional: the audience                                                  |
 * | 4   | accuracy | uint       | seconds: the issuer's own bound on the error of `time`                  |
 */
import type { CborLimits, CborValue } from './cbor.js';
import { encode } from './cbor.js';
import type { Sign1 } from './cose.js';
import type { PrivateKey, PublicKey } from './keys.js';
import {
  CONTENT_FORMAT,
  PayloadReader,
  checkLockAudience,
  openSign1,
  signPayload,
  verifyIssuerSigned,
} from './lib/signed-payload.js';

/** Length of a challenge nonce carried in a beacon ([TANDEM-TIME-1], [TANDEM-GATT-8]). */
export const BEACON_NONCE_BYTES = 16;
/** Largest encoded time beacon ([TANDEM-TIME-2]). */
export const MAX_TIME_BEACON_BYTES = 256;
const LIMITS: CborLimits = { maxBytes: MAX_TIME_BEACON_BYTES, maxDepth: 1, maxItems: 8 };
const KEYS = { 1: 'time', 2: 'nonce', 3: 'lock id', 4: 'accuracy' } as const;
const WHAT = 'time beacon';

/** The typed body of a time beacon ([TANDEM-TIME-1]). */
export interface TimeBeacon {
  /** Unix seconds at signing. */
  readonly time: number;
  /** The lock's challenge nonce, when the beacon answers one. */
  readonly nonce?: Uint8Array;
  /** The lock the beacon is for; absent for broadcast beacons. */
  readonly lockId?: string;
  /** The issuer's bound on its own clock error, seconds. */
  readonly accuracy: number;
}

/** A structurally valid time beacon; its signature is not yet verified. */
export interface DecodedTimeBeacon {
  readonly sign1: Sign1;
  readonly beacon: TimeBeacon;
}

function parseBody(payload: Uint8Array): TimeBeacon {
  const r: PayloadReader = PayloadReader.parse(payload, LIMITS, WHAT, KEYS);
  const time = r.uint(1);
  const nonce = r.has(2) ? r.bstr(2, BEACON_NONCE_BYTES, BEACON_NONCE_BYTES) : undefined;
  const lockId = r.has(3) ? r.lockId(3) : undefined;
  const accuracy = r.uint(4);
  return {
    time,
    ...(nonce === undefined ? {} : { nonce }),
    ...(lockId === undefined ? {} : { lockId }),
    accuracy,
  };
}

/** Encodes and signs a time beacon with the issuer key; `kid` goes in the unprotected header. */
export function encodeTimeBeacon(beacon: TimeBeacon, issuerKey: PrivateKey, kid: Uint8Array): Uint8Array {
  const body = new Map<number, CborValue>([[1, beacon.time]]);
  if (beacon.nonce !== undefined) body.set(2, beacon.nonce);
  if (beacon.lockId !== undefined) body.set(3, beacon.lockId);
  body.set(4, beacon.accuracy);
  parseBody(encode(body));
  return signPayload(body, issuerKey, CONTENT_FORMAT.timeBeacon, kid);
}

/** Decodes a time beacon without checking its signature ([TANDEM-TIME-1], [TANDEM-TIME-2]). */
export function decodeTimeBeacon(bytes: Uint8Array): DecodedTimeBeacon {
  const sign1 = openSign1(bytes, MAX_TIME_BEACON_BYTES, CONTENT_FORMAT.timeBeacon, WHAT);
  return { sign1, beacon: parseBody(sign1.payload) };
}

/**
 * Decodes and verifies a time beacon ([TANDEM-TIME-3]): issuer key by `kid`, signature, then, when the beacon
 * names a lock, that it names `expectedLockId` (ERR_AUDIENCE_MISMATCH). A beacon without a lock id is a
 * broadcast and is accepted by every lock.
 */
export function verifyTimeBeacon(
  bytes: Uint8Array,
  resolveKey: (kid: Uint8Array) => PublicKey | undefined,
  expectedLockId: string,
): TimeBeacon {
  const { sign1, beacon } = decodeTimeBeacon(bytes);
  verifyIssuerSigned(sign1, resolveKey, WHAT);
  if (beacon.lockId !== undefined) checkLockAudience(beacon.lockId, expectedLockId, WHAT);
  return beacon;
}

/** What the lock knows about the time at `nowLocalMs` after a beacon ([TANDEM-TIME-4], [TANDEM-TIME-5]). */
export type BeaconBound =
  | {
      /** Nonce-bound and fresh: the true time at `nowLocalMs` lies in [earliest, latest]. */
      readonly kind: 'bound';
      readonly earliest: number;
      readonly latest: number;
      /** The time floor this beacon proves; the lock persists max(held floor, floor). */
      readonly floor: number;
    }
  | {
      /** Not provably fresh: the beacon only proves the time is at least `floor`. */
      readonly kind: 'floor';
      readonly floor: number;
      readonly reason: 'unbound' | 'nonce-mismatch' | 'relay-too-slow';
    };

/** Inputs of {@link boundFromBeacon}; all local times are the lock's monotonic clock in milliseconds. */
export interface BeaconContext {
  /** The nonce of the challenge the lock issued, if the beacon is meant to answer one. */
  readonly lockNonce?: Uint8Array;
  /** When the lock issued `lockNonce`. */
  readonly issuedAtLocalMs?: number;
  /** Now. */
  readonly nowLocalMs: number;
  /** Longest accepted time between issuing the nonce and receiving the beacon. */
  readonly maxRelayDelayMs: number;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/**
 * Derives the lock's clock bound from a verified beacon ([TANDEM-TIME-4], [TANDEM-TIME-5]). Pure.
 *
 * A beacon carrying the nonce the lock issued at `issuedAtLocalMs` was signed after that moment and received
 * before `nowLocalMs`; with `d = nowLocalMs - issuedAtLocalMs` (at most `maxRelayDelayMs`), the true time now
 * lies in [time - accuracy, time + accuracy + ceil(d / 1000)]. Any other beacon (no nonce, another nonce, or a
 * relay slower than `maxRelayDelayMs`) may be a replay of an old statement: it proves only that the time is
 * at least `time - accuracy`, so it can raise the lock's persisted floor and never move time backwards.
 */
export function boundFromBeacon(beacon: TimeBeacon, ctx: BeaconContext): BeaconBound {
  const floor = Math.max(0, beacon.time - beacon.accuracy);
  if (beacon.nonce === undefined || ctx.lockNonce === undefined || ctx.issuedAtLocalMs === undefined) {
    return { kind: 'floor', floor, reason: 'unbound' };
  }
  if (!equalBytes(beacon.nonce, ctx.lockNonce)) return { kind: 'floor', floor, reason: 'nonce-mismatch' };
  const delay = ctx.nowLocalMs - ctx.issuedAtLocalMs;
  // Written so that NaN anywhere falls to the safe side (floor only).
  if (!(delay >= 0 && delay <= ctx.maxRelayDelayMs)) {
    return { kind: 'floor', floor, reason: 'relay-too-slow' };
  }
  return {
    kind: 'bound',
    earliest: floor,
    latest: beacon.time + beacon.accuracy + Math.ceil(delay / 1000),
    floor,
  };
}
