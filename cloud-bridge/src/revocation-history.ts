/**
 * Revocation deltas ([TANDEM-REV-3], [TANDEM-REV-4], [TANDEM-REV-7]): what the cloud hands a phone to carry
 * to a lock over BLE. A full update of a long list does not fit a BLE message (4,096 bytes,
 * [TANDEM-GATT-6]); a delta from the version the lock reports in its challenge ([TANDEM-GATT-8]) usually
 * does. To build one the cloud remembers, for each entry it holds, the version that added it (`addedIn` of
 * {@link StoredRevocation}): a delta from version v to the held version V adds every entry added after v.
 *
 * Entries leave the list only when they expire (the sharing API revokes, it never un-revokes): a delta does
 * not list them in `removed`, because the lock drops an expired entry by itself ([TANDEM-REV-8]), and an
 * entry it still holds names a token that has expired anyway. An entry whose version is unknown (a row
 * written before versions were kept) counts as added in the held version, so that every delta carries it:
 * carrying an entry the lock already holds is harmless ([TANDEM-REV-7]: the added id takes the new expiry,
 * which is the same).
 */
import { encodeRevocationUpdate } from '../../protocol/src/revocation.js';
import type { Issuer } from './issuer.js';
import type { StoredRevocation } from './store/types.js';

/** Largest message a phone can deliver to a lock over BLE ([TANDEM-GATT-6], [TANDEM-REV-4]). */
export const MAX_BLE_REVOCATION_BYTES = 4096;

/** The version that added entry `hex` of `r` (the held version when unknown). */
export function addedInOf(r: StoredRevocation, hex: string): number {
  return r.addedIn?.get(hex) ?? r.version;
}

/**
 * The `addedIn` map of the list `next` that replaces `held`: an entry held before with the same expiry keeps
 * the version that added it; a new entry, or one whose expiry changed, was added by `next.version`. Entries
 * `next` already dates (its own `addedIn`) keep that date.
 */
export function deriveAddedIn(
  held: StoredRevocation | undefined,
  next: StoredRevocation,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const [hex, exp] of next.entries) {
    const own = next.addedIn?.get(hex);
    if (own !== undefined) out.set(hex, own);
    else if (held !== undefined && held.entries.get(hex) === exp) out.set(hex, addedInOf(held, hex));
    else out.set(hex, next.version);
  }
  return out;
}

/** What {@link revocationFor} chose to carry. */
export type RevocationDelivery =
  | { readonly kind: 'none' }
  | { readonly kind: 'full'; readonly bytes: Uint8Array }
  | { readonly kind: 'delta'; readonly bytes: Uint8Array; readonly baseVersion: number };

/**
 * The revocation update to carry to a lock that reports holding version `lockVersion` (undefined: not
 * reported):
 *
 * - nothing when the lock holds the cloud's version already, or the cloud has none;
 * - a delta from `lockVersion` ([TANDEM-REV-7]) when the lock is behind, and the delta, freshly signed, fits
 *   `maxBytes` (a BLE message, [TANDEM-REV-4]);
 * - the held full update otherwise: the lock reports no version, version 0, a version the cloud never issued
 *   (ahead of it), or the delta would not fit. A full update too large for BLE still goes: the caller decides
 *   whether it can deliver it; over MQTT it always can ([TANDEM-MQTT-3]).
 *
 * Entries that have expired by `nowSec` are left out of a delta: the lock drops them anyway.
 */
export function revocationFor(
  held: StoredRevocation | undefined,
  lockVersion: number | undefined,
  issuer: Issuer,
  nowSec: number,
  maxBytes = MAX_BLE_REVOCATION_BYTES,
): RevocationDelivery {
  if (held === undefined || lockVersion === held.version) return { kind: 'none' };
  const full: RevocationDelivery = { kind: 'full', bytes: held.bytes };
  if (lockVersion === undefined || lockVersion === 0 || lockVersion > held.version) return full;
  const added = [...held.entries]
    .filter(([hex, exp]) => addedInOf(held, hex) > lockVersion && exp > nowSec)
    .map(([hex, exp]) => ({ id: Uint8Array.from(Buffer.from(hex, 'hex')), exp }));
  // Bounded before signing: each entry is at least 4 bytes, so more than maxBytes / 4 cannot fit.
  if (added.length > maxBytes / 4) return full;
  const bytes = encodeRevocationUpdate(
    {
      kind: 'delta',
      version: held.version,
      baseVersion: lockVersion,
      issuedAt: nowSec,
      lockId: held.lockId,
      added,
      removed: [],
    },
    issuer.key,
    issuer.kid,
  );
  return bytes.length <= maxBytes ? { kind: 'delta', bytes, baseVersion: lockVersion } : full;
}
