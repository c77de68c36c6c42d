/**
 * The lock's side of the claim receipt (SPEC.md §12, ARCHITECTURE.md flow 1): when the owner claims the lock
 * at its console, the lock signs a receipt with its device key, keeps it with its configuration and prints it
 * as base64url, for the owner to hand to the cloud. `provision show` prints the same bytes again.
 */
import type { ClaimReceipt } from '../../../protocol/src/index.js';
import { publicKeyFromRaw } from '../../../protocol/src/index.js';
import type { Alg } from '../../../protocol/src/index.js';
import type { ConfigStore } from '../store/config-store.js';

/** ConfigStore key of the signed claim receipt ([TANDEM-CLAIM-1]). */
export const CLAIM_RECEIPT = 'identity.claimReceipt';

/** What the claim registered, as the console took it. */
export interface ClaimInput {
  readonly lockId: string;
  readonly owner: string;
  readonly alg: Alg;
  /** The owner key's raw bytes ([TANDEM-KEY-2]). */
  readonly key: Uint8Array;
  readonly kid: Uint8Array;
  /** The lock's time floor, Unix seconds ([TANDEM-CLAIM-1]: 0 before any beacon). */
  readonly claimedAt: number;
}

/**
 * Signs the claim receipt with `sign` (the runtime's device key) and stores it before the caller closes
 * provisioning, so a claimed lock can always show its receipt again. Returns it as base64url.
 */
export async function recordClaimReceipt(
  config: ConfigStore,
  sign: (receipt: ClaimReceipt) => Uint8Array,
  input: ClaimInput,
): Promise<string> {
  const bytes = sign({
    lockId: input.lockId,
    owner: input.owner,
    ownerKey: publicKeyFromRaw(input.alg, input.key),
    ownerKid: input.kid,
    claimedAt: Math.max(0, Math.floor(input.claimedAt)),
  });
  await config.set(CLAIM_RECEIPT, bytes);
  return Buffer.from(bytes).toString('base64url');
}

/** The console lines showing the stored receipt: none when the lock was claimed without one. */
export function claimReceiptLine(config: ConfigStore): string[] {
  const bytes = config.getBytes(CLAIM_RECEIPT);
  return bytes === undefined ? [] : [`claim-receipt=${Buffer.from(bytes).toString('base64url')}`];
}
