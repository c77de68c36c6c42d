/**
 * The phone's sync service (issue 10 part 5; the sharing API's `POST /api/v1/sync` calls it): a phone that
 * talked to a lock over BLE uploads the records the lock's relay characteristic gave it ([TANDEM-GATT-11]) and
 * gets back what to carry to the lock:
 *
 * - `outboxAck`: the issuer-signed outbox acknowledgement for the lock's current epoch ([TANDEM-MQTT-8]), after
 *   the uploaded records are stored, so the lock drops exactly what the cloud holds;
 * - `revocation`: a delta from the revocation version the lock reported in its challenge ([TANDEM-GATT-8]) when
 *   one fits a BLE message, else the full update ([TANDEM-REV-4], revocation-history.ts);
 * - `beacon`: a time beacon bound to the challenge's nonce and the lock ([TANDEM-TIME-4]), which gives a lock
 *   without a clock its upper time bound ([TANDEM-GATT-17]).
 *
 * The phone is not trusted ([TANDEM-GEN-4]): each record goes through the ingestor exactly as over MQTT
 * (signature by the lock's device key, lock id, de-duplication, forks, gaps, chain), so a phone can delay
 * records but not forge, alter or replay them. Who may sync which lock is the API's decision (a live share).
 */
import { decodeSign1, HEADER } from '../../protocol/src/cose.js';
import { CONTENT_FORMAT, LOCK_ID_PATTERN, UINT32_MAX, isLockId } from '../../protocol/src/index.js';
import type { OutboxAck } from '../../protocol/src/mqtt.js';
import { encodeOutboxAck } from '../../protocol/src/mqtt.js';
import { BEACON_NONCE_BYTES, encodeTimeBeacon } from '../../protocol/src/time-beacon.js';
import { CloudError } from './errors.js';
import type { IngestKind, Ingestor } from './ingest.js';
import { MAX_BYTES } from './ingest.js';
import type { Issuer } from './issuer.js';
import { revocationFor } from './revocation-history.js';
import type { CloudStore } from './store/types.js';

/** Most records one sync call uploads (the lock notifies at most 16 per subscription, [TANDEM-GATT-14]). */
export const MAX_SYNC_RECORDS = 64;
/** Largest relayed record ([TANDEM-GATT-11]: records are at most 512 bytes). */
export const MAX_RELAYED_RECORD_BYTES = 512;

/** What a phone uploads after talking to lock `lockId`. */
export interface SyncRequest {
  readonly lockId: string;
  /** The exact signed bytes the lock's relay characteristic gave, in the order received. */
  readonly records: readonly Uint8Array[];
  /** The lock's latest challenge ([TANDEM-GATT-8]): its nonce and the revocation version it holds. */
  readonly challenge?: { readonly nonce: Uint8Array; readonly revocationVersion: number };
}

/** What became of one uploaded record. */
export interface SyncRecordResult {
  readonly index: number;
  /** `stored`, `duplicate` (already held: a replay or a second phone) or `refused`. */
  readonly outcome: 'stored' | 'duplicate' | 'refused';
  /** Why a record was refused (as the ingestor logs it). */
  readonly reason?: string;
}

/** What the phone carries back to the lock; each message is signed by the issuer. */
export interface SyncResponse {
  readonly results: SyncRecordResult[];
  readonly outboxAck: Uint8Array | null;
  readonly revocation: Uint8Array | null;
  readonly beacon: Uint8Array | null;
}

/** How the sync service is wired. */
export interface SyncServiceOptions {
  readonly store: CloudStore;
  readonly ingestor: Ingestor;
  readonly issuer: Issuer;
  /** Unix milliseconds. */
  readonly now?: () => number;
  /** The issuer's bound on its own clock error, seconds ([TANDEM-TIME-1]); default 2. */
  readonly beaconAccuracy?: number;
  /**
   * Called when an upload moved the lock's acknowledgement forward, so the bridge can publish it retained
   * ([TANDEM-MQTT-8]) for the lock's MQTT link too.
   */
  readonly onAck?: (ack: OutboxAck) => void;
}

const KIND_OF_CONTENT: ReadonlyMap<unknown, IngestKind> = new Map<unknown, IngestKind>([
  [CONTENT_FORMAT.alert, 'alert'],
  [CONTENT_FORMAT.auditRecord, 'audit'],
  [CONTENT_FORMAT.lockState, 'state'],
  [CONTENT_FORMAT.revocationAck, 'revocation-ack'],
]);

function invalid(message: string): never {
  throw new CloudError('ERR_CLOUD_SYNC_INVALID', message);
}

/** The kind a record says it is (its protected content type), or undefined when it cannot be read. */
function kindOf(bytes: Uint8Array): IngestKind | undefined {
  try {
    const sign1 = decodeSign1(bytes, { maxBytes: MAX_RELAYED_RECORD_BYTES, maxDepth: 3, maxItems: 8 });
    return KIND_OF_CONTENT.get(sign1.protectedHeader.get(HEADER.contentType));
  } catch {
    return undefined;
  }
}

/**
 * Refuses a malformed request as a whole, before anything is stored: lock id ([TANDEM-GEN-3]), at most
 * {@link MAX_SYNC_RECORDS} records, each a byte string of at most its kind's size (§9, [TANDEM-GATT-11]), and a
 * challenge with a 16-byte nonce and a version below 2^32. A record that is well sized but not a lock's
 * signed record is not a request error: it is refused on its own, as over MQTT.
 */
function checkRequest(req: SyncRequest): void {
  if (typeof req !== 'object' || req === null) invalid('sync request must be an object');
  if (!isLockId(req.lockId)) invalid(`sync "lock" must be a lock id matching ${LOCK_ID_PATTERN.source}`);
  if (!Array.isArray(req.records)) invalid('sync "records" must be an array');
  if (req.records.length > MAX_SYNC_RECORDS) {
    invalid(`sync "records" has ${req.records.length} items, more than ${MAX_SYNC_RECORDS}`);
  }
  req.records.forEach((r, i) => {
    if (!(r instanceof Uint8Array) || r.length === 0)
      invalid(`sync "records"[${i}] must be a non-empty byte string`);
    if (r.length > MAX_RELAYED_RECORD_BYTES) {
      invalid(`sync "records"[${i}] is ${r.length} bytes, more than ${MAX_RELAYED_RECORD_BYTES}`);
    }
    const kind = kindOf(r);
    if (kind !== undefined && r.length > MAX_BYTES[kind]) {
      invalid(`sync "records"[${i}] is a ${kind} of ${r.length} bytes, more than ${MAX_BYTES[kind]}`);
    }
  });
  const c = req.challenge;
  if (c === undefined) return;
  if (typeof c !== 'object' || c === null) invalid('sync "challenge" must be an object');
  if (!(c.nonce instanceof Uint8Array) || c.nonce.length !== BEACON_NONCE_BYTES) {
    invalid(`sync "challenge.nonce" must be ${BEACON_NONCE_BYTES} bytes`);
  }
  const v = c.revocationVersion;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > UINT32_MAX) {
    invalid('sync "challenge.revocationVersion" must be an unsigned integer below 2^32');
  }
}

/** Ingests a phone's uploads and answers with what it should carry to the lock. */
export class SyncService {
  readonly #o: SyncServiceOptions;
  readonly #now: () => number;

  constructor(o: SyncServiceOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  /**
   * One sync. Throws ERR_CLOUD_SYNC_INVALID for a malformed request and ERR_CLOUD_LOCK_UNKNOWN for a lock the
   * cloud does not know, in both cases before anything is stored; otherwise each record has its outcome.
   */
  async sync(req: SyncRequest): Promise<SyncResponse> {
    checkRequest(req);
    const { lockId } = req;
    if ((await this.#o.store.getLock(lockId)) === undefined) {
      throw new CloudError('ERR_CLOUD_LOCK_UNKNOWN', `lock ${lockId} is not registered`);
    }
    const results: SyncRecordResult[] = [];
    // In order: an alert and the audit record after it advance the acknowledgement together.
    for (const [index, bytes] of req.records.entries()) {
      const r = await this.#o.ingestor.ingestRelayed(bytes, lockId);
      if (r.outcome === 'refused') results.push({ index, outcome: 'refused', reason: r.reason });
      else results.push({ index, outcome: r.outcome });
      if (r.outcome === 'stored' && r.ack !== undefined) this.#o.onAck?.(r.ack);
    }
    const { issuer } = this.#o;
    const ack = await this.#o.ingestor.currentAck(lockId);
    const nowSec = Math.floor(this.#now() / 1000);
    const delivery = revocationFor(
      await this.#o.store.getRevocation(lockId),
      req.challenge?.revocationVersion,
      issuer,
      nowSec,
    );
    return {
      results,
      outboxAck: ack === undefined ? null : encodeOutboxAck(ack, issuer.key, issuer.kid),
      revocation: delivery.kind === 'none' ? null : delivery.bytes,
      beacon:
        req.challenge === undefined
          ? null
          : encodeTimeBeacon(
              { time: nowSec, nonce: req.challenge.nonce, lockId, accuracy: this.#o.beaconAccuracy ?? 2 },
              issuer.key,
              issuer.kid,
            ),
    };
  }
}
