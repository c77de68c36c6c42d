/**
 * Claim receipts (SPEC.md §12): the lock's signed statement that whoever held its provisioning console
 * registered an owner key on it (ARCHITECTURE.md flow 1). The lock prints it after `provision claim`; the owner
 * hands it to the cloud, which verifies it with the device key it registered for the lock and only then
 * records who owns the lock. COSE_Sign1 by the lock's device key (Ed25519), no `kid`, content format 65110
 * ([TANDEM-REV-1]). Payload map ([TANDEM-CLAIM-1]):
 *
 * | key | field      | type       | rule                                                             |
 * | --- | ---------- | ---------- | ---------------------------------------------------------------- |
 * | 1   | lock id    | tstr       | [TANDEM-GEN-3]: the lock that was claimed                        |
 * | 2   | owner      | tstr       | the owner's account at the cloud, `^[A-Za-z0-9._@-]{1,64}$`       |
 * | 3   | owner key  | COSE_Key   | the owner key registered as a trust anchor ([TANDEM-KEY-2])      |
 * | 4   | owner kid  | bstr 1..16 | the anchor's key id                                              |
 * | 5   | claimed at | uint       | the lock's time floor when it was claimed, Unix seconds          |
 */
import type { CborLimits, CborValue } from './cbor.js';
import { encode } from './cbor.js';
import type { Sign1 } from './cose.js';
import { verifySign1 } from './cose.js';
import { ProtocolError } from './errors.js';
import type { PrivateKey, PublicKey } from './keys.js';
import {
  CONTENT_FORMAT,
  PayloadReader,
  checkLockAudience,
  openSign1,
  signPayload,
} from './lib/signed-payload.js';
import { coseKeyOf, publicKeyFromCoseKey } from './token.js';

/** Largest encoded claim receipt ([TANDEM-CLAIM-2]). */
export const MAX_CLAIM_RECEIPT_BYTES = 320;
/** Longest owner key id, as the lock's anchor store and console take it ([TANDEM-CLAIM-1]). */
export const MAX_OWNER_KID_BYTES = 16;
/** The owner's account name ([TANDEM-CLAIM-1]); the same characters the lock's console accepts. */
export const CLAIM_OWNER_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/;

const LIMITS: CborLimits = { maxBytes: MAX_CLAIM_RECEIPT_BYTES, maxDepth: 2, maxItems: 16 };
const KEYS = { 1: 'lock id', 2: 'owner', 3: 'owner key', 4: 'owner kid', 5: 'claimed at' } as const;
const WHAT = 'claim receipt';

/** The typed body of a claim receipt ([TANDEM-CLAIM-1]). */
export interface ClaimReceipt {
  readonly lockId: string;
  /** The owner's account at the cloud. */
  readonly owner: string;
  /** The owner key the lock now trusts (ES256 on a phone, or EdDSA). */
  readonly ownerKey: PublicKey;
  /** The key id the lock resolves the owner key by. */
  readonly ownerKid: Uint8Array;
  /** The lock's time floor at the claim, Unix seconds (0 for a lock that has never seen a beacon). */
  readonly claimedAt: number;
}

/** A structurally valid claim receipt; its signature is not yet verified. */
export interface DecodedClaimReceipt {
  readonly sign1: Sign1;
  readonly receipt: ClaimReceipt;
}

function parseBody(payload: Uint8Array): ClaimReceipt {
  const r = PayloadReader.parse(payload, LIMITS, WHAT, KEYS);
  const lockId = r.lockId(1);
  const owner = r.text(2, 64, CLAIM_OWNER_PATTERN);
  const keyValue = r.get(3);
  if (!(keyValue instanceof Map)) r.fail(3, 'must be a COSE_Key map');
  // ERR_KEY_INVALID for a key that is not on its curve or not canonical ([TANDEM-KEY-2], [TANDEM-KEY-5]).
  const ownerKey = publicKeyFromCoseKey(keyValue, `${WHAT} "owner key" (key 3) COSE_Key`);
  const ownerKid = r.bstr(4, 1, MAX_OWNER_KID_BYTES);
  const claimedAt = r.uint(5);
  return { lockId, owner, ownerKey, ownerKid, claimedAt };
}

function bodyOf(r: ClaimReceipt): Map<number, CborValue> {
  return new Map<number, CborValue>([
    [1, r.lockId],
    [2, r.owner],
    [3, coseKeyOf(r.ownerKey)],
    [4, r.ownerKid],
    [5, r.claimedAt],
  ]);
}

/**
 * Encodes and signs a claim receipt with the lock's device key ([TANDEM-CLAIM-1]). The body is checked by the
 * decoder's own rules first, so a lock never prints a receipt the cloud would refuse. Throws
 * ERR_MESSAGE_INVALID, ERR_KEY_INVALID or ERR_TOO_LARGE.
 */
export function encodeClaimReceipt(r: ClaimReceipt, deviceKey: PrivateKey): Uint8Array {
  const body = bodyOf(r);
  parseBody(encode(body));
  const bytes = signPayload(body, deviceKey, CONTENT_FORMAT.claimReceipt);
  if (bytes.length > MAX_CLAIM_RECEIPT_BYTES) {
    throw new ProtocolError(
      'ERR_TOO_LARGE',
      `${WHAT} of ${bytes.length} bytes exceeds ${MAX_CLAIM_RECEIPT_BYTES} (TANDEM-CLAIM-2)`,
    );
  }
  return bytes;
}

/**
 * Decodes a claim receipt without checking its signature ([TANDEM-CLAIM-1], [TANDEM-CLAIM-2]): the cloud reads
 * the lock id from it to look up that lock's device key. Throws only {@link ProtocolError}.
 */
export function decodeClaimReceipt(bytes: Uint8Array): DecodedClaimReceipt {
  const sign1 = openSign1(bytes, MAX_CLAIM_RECEIPT_BYTES, CONTENT_FORMAT.claimReceipt, WHAT);
  return { sign1, receipt: parseBody(sign1.payload) };
}

/**
 * Decodes and verifies a claim receipt with the device key the cloud registered for the lock
 * ([TANDEM-CLAIM-3]): structure, then the signature, then, when `expectedLockId` is given, that the receipt
 * names that lock (ERR_AUDIENCE_MISMATCH, after the signature so that a forger learns nothing).
 */
export function verifyClaimReceipt(
  bytes: Uint8Array,
  deviceKey: PublicKey,
  expectedLockId?: string,
): ClaimReceipt {
  const { sign1, receipt } = decodeClaimReceipt(bytes);
  verifySign1(sign1, deviceKey);
  if (expectedLockId !== undefined) checkLockAudience(receipt.lockId, expectedLockId, WHAT);
  return receipt;
}
