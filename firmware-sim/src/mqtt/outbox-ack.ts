/**
 * Applying the cloud's outbox acknowledgement ([TANDEM-MQTT-8], [TANDEM-MQTT-11]), whichever way it came: over
 * MQTT (retained on `.../outbox-ack`) or carried by a phone to the relay characteristic (SPEC §8.6). One
 * function, so that the two transports can never disagree on what lets the outbox drop a record.
 */
import createDebug from 'debug';
import { ProtocolError } from '../../../protocol/src/errors.js';
import type { PublicKey } from '../../../protocol/src/keys.js';
import { verifyOutboxAck } from '../../../protocol/src/mqtt.js';
import { Status } from '../../../protocol/src/status.js';
import type { Outbox } from '../store/outbox.js';

const debug = createDebug('tandem:lock:outbox');

/** What {@link applyOutboxAck} needs: the outbox, the issuer anchors and the lock's own id. */
export interface OutboxAckContext {
  readonly outbox: Pick<Outbox, 'ack' | 'ackedThrough' | 'epoch' | 'lastSeq'>;
  /** Issuer keys by kid (AnchorStore.issuerKey): only the issuer's signed ack clears the outbox. */
  readonly issuerKey: (kid: Uint8Array) => PublicKey | undefined;
  readonly lockId: string;
  /**
   * Audits an issuer-signed ack that is refused (LockAuthority.auditEvent): the owner sees that the cloud and the
   * lock disagree. An ack whose signature fails is not audited: anyone can send those.
   */
  readonly audit?: (
    event: string,
    status: Status,
    peer: string,
    detail: ReadonlyMap<string, number>,
  ) => Promise<void>;
  /** Who delivered the ack (BLE address, "mqtt"), for the audit record. */
  readonly peer?: string;
}

/**
 * Verifies the issuer's signature and the lock id, then drops the outbox through the acked sequence. An ack
 * for another epoch (an old retained ack after a storage reset) or for a sequence this lock never queued is
 * ACK_MISMATCH and drops nothing ([TANDEM-MQTT-11]): the cloud cannot hold what was never sent, so such an
 * ack is stale or confused, never a reason to lose a record. An ack at or below what is already acknowledged
 * is OK and changes nothing. Never rejects: a store failure is FAULT (nothing was dropped that is not durable).
 */
export async function applyOutboxAck(body: Uint8Array, ctx: OutboxAckContext): Promise<Status> {
  let sequence: number;
  let epoch: number;
  try {
    ({ sequence, epoch } = verifyOutboxAck(body, ctx.issuerKey, ctx.lockId));
  } catch (err) {
    debug('outbox ack refused: %s', err instanceof Error ? err.message : err);
    return err instanceof ProtocolError ? err.status : Status.MALFORMED;
  }
  const { outbox } = ctx;
  if (epoch !== outbox.epoch || sequence > outbox.lastSeq) {
    debug(
      'outbox ack refused: epoch %d sequence %d, the lock is at epoch %d sequence %d',
      epoch,
      sequence,
      outbox.epoch,
      outbox.lastSeq,
    );
    // [TANDEM-MQTT-11]: the refusal of an issuer-signed ack is audited, with the ack's epoch and sequence.
    await ctx.audit?.(
      'outbox-ack-refused',
      Status.ACK_MISMATCH,
      ctx.peer ?? 'unknown',
      new Map([
        ['epoch', epoch],
        ['sequence', sequence],
      ]),
    );
    return Status.ACK_MISMATCH;
  }
  if (sequence <= outbox.ackedThrough) return Status.OK;
  try {
    await outbox.ack(sequence);
    return Status.OK;
  } catch (err) {
    debug('outbox ack not stored: %s', err instanceof Error ? err.message : err);
    return Status.FAULT;
  }
}
