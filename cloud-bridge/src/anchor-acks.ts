/**
 * Anchor acknowledgements ([TANDEM-ANCHOR-5]) on both ways in: a lock online publishes its ack on
 * `tandem/v1/lock/{id}/anchor-ack` (the bridge), a lock offline from MQTT relays it to the next phone (GATT
 * type 0x0d), which uploads it in its sync ([TANDEM-SYNC-5], sync.ts). Both go through {@link ingestAnchorAck}:
 * the ack is verified with the device key of the lock it must name, then its lock id, exactly as over MQTT,
 * and kept in the store with the highest version, so the owner's lock view shows which issuer anchor the lock
 * holds and when the cloud learnt it, and the sync stops handing the phone an update the lock has applied.
 */
import type { AnchorAck } from '../../protocol/src/anchor-update.js';
import { MAX_ANCHOR_ACK_BYTES, verifyAnchorAck } from '../../protocol/src/anchor-update.js';
import { isProtocolError } from '../../protocol/src/errors.js';
import { publicKeyFromRaw } from '../../protocol/src/keys.js';
import type { CloudStore } from './store/types.js';

/** What became of one anchor acknowledgement. */
export type AnchorAckResult =
  | { readonly outcome: 'stored'; readonly ack: AnchorAck }
  /** Verified, but the cloud already holds this version or a higher one (a re-delivery, a late phone). */
  | { readonly outcome: 'duplicate'; readonly ack: AnchorAck }
  | { readonly outcome: 'refused'; readonly reason: string };

/**
 * Verifies and stores an anchor ack that claims to come from lock `lockId` (the topic's lock over MQTT, the
 * synced lock for an upload). Never throws for bad input: a refusal is an outcome with its reason.
 */
export async function ingestAnchorAck(
  store: CloudStore,
  lockId: string,
  bytes: Uint8Array,
  via: 'mqtt' | 'relay',
  receivedAt: number,
): Promise<AnchorAckResult> {
  if (bytes.length > MAX_ANCHOR_ACK_BYTES) {
    return {
      outcome: 'refused',
      reason: `anchor ack of ${bytes.length} bytes exceeds ${MAX_ANCHOR_ACK_BYTES}`,
    };
  }
  const lock = await store.getLock(lockId);
  if (lock === undefined) return { outcome: 'refused', reason: `lock ${lockId} is not registered` };
  let ack: AnchorAck;
  try {
    ack = verifyAnchorAck(bytes, publicKeyFromRaw('EdDSA', lock.deviceKey), lockId);
  } catch (e) {
    if (!isProtocolError(e)) throw e;
    return { outcome: 'refused', reason: `${e.code}: ${e.message}` };
  }
  const stored = await store.putAnchorAck({ ...ack, receivedAt, via });
  return { outcome: stored ? 'stored' : 'duplicate', ack };
}
