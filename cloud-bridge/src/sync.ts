/**
 * The phone's sync service (SPEC §8.8, [TANDEM-SYNC-1] to [TANDEM-SYNC-5]; issue 10 part 5; the sharing API's
 * `POST /api/v1/sync` calls it): a phone that
 * talked to a lock over BLE uploads the records the lock's relay characteristic gave it ([TANDEM-GATT-11]) and
 * gets back what to carry to the lock:
 *
 * - `outboxAck`: the issuer-signed outbox acknowledgement for the lock's current epoch ([TANDEM-MQTT-8]), after
 *   the uploaded records are stored, so the lock drops exactly what the cloud holds;
 * - `revocation`: a delta from the revocation version the lock reported in its challenge ([TANDEM-GATT-8]) when
 *   one fits a BLE message, else the full update ([TANDEM-REV-4], revocation-history.ts);
 * - `beacon`: a time beacon bound to the challenge's nonce and the lock ([TANDEM-TIME-4]), which gives a lock
 *   without a clock its upper time bound ([TANDEM-GATT-17]);
 * - `anchor`: the issuer's anchor update for the lock ([TANDEM-SYNC-5], §6.6), signed by the old key, while the
 *   lock has not acknowledged its version, so a lock offline from MQTT learns a rotated key through a phone.
 *
 * Uploads may include the lock's anchor acknowledgement (GATT type 0x0d, [TANDEM-ANCHOR-5]): it is verified
 * and stored as over MQTT (anchor-acks.ts), and stops the update being handed out again.
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
import { MAX_ANCHOR_ACK_BYTES } from '../../protocol/src/anchor-update.js';
import { ingestAnchorAck } from './anchor-acks.js';
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
  /** The issuer's anchor update for the lock, while the lock has not acknowledged it ([TANDEM-SYNC-5]). */
  readonly anchor: Uint8Array | null;
}

/**
 * Where the sync finds the issuer's anchor update ([TANDEM-ANCHOR-7]): the keyring (keyring.ts). Read at each
 * sync, so that a rotation is handed out at once.
 */
export interface AnchorSource {
  /** The version of the anchor set the issuer publishes; 0 before any rotation. */
  readonly anchorVersion: number;
  /** The signed anchor update for the lock at that version, or undefined when there is none. */
  anchorUpdateFor(lockId: string): Uint8Array | undefined;
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
  /** The issuer keyring, for anchor updates ([TANDEM-SYNC-5]); without it the answer's `anchor` is null. */
  readonly anchors?: AnchorSource;
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
function kindOf(bytes: Uint8Array): IngestKind | 'anchor-ack' | undefined {
  try {
    const sign1 = decodeSign1(bytes, { maxBytes: MAX_RELAYED_RECORD_BYTES, maxDepth: 3, maxItems: 8 });
    const type = sign1.protectedHeader.get(HEADER.contentType);
    return type === CONTENT_FORMAT.anchorAck ? 'anchor-ack' : KIND_OF_CONTENT.get(type);
  } catch {
    return undefined;
  }
}

const MAX_RELAYED: Readonly<Record<IngestKind | 'anchor-ack', number>> = {
  ...MAX_BYTES,
  'anchor-ack': MAX_ANCHOR_ACK_BYTES,
};

/**
 * Refuses a malformed request as a whole, before anything is stored ([TANDEM-SYNC-1]): lock id ([TANDEM-GEN-3]), at most
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
    if (kind !== undefined && r.length > MAX_RELAYED[kind]) {
      invalid(`sync "records"[${i}] is a ${kind} of ${r.length} bytes, more than ${MAX_RELAYED[kind]}`);
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

  #anchorFor(lockId: string): Promise<Uint8Array | null> {
    return anchorUpdateToCarry(this.#o.store, this.#o.anchors, lockId);
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
      if (kindOf(bytes) === 'anchor-ack') {
        // [TANDEM-SYNC-5]: checked and kept as over MQTT; it names the synced lock or is refused.
        const a = await ingestAnchorAck(this.#o.store, lockId, bytes, 'relay', this.#now());
        results.push(a.outcome === 'refused' ? { index, ...a } : { index, outcome: a.outcome });
        continue;
      }
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
      anchor: await this.#anchorFor(lockId),
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

/** [TANDEM-SYNC-5]: the anchor update while the lock's acknowledged anchor version is below the issuer's. */
export async function anchorUpdateToCarry(
  store: CloudStore,
  anchors: AnchorSource | undefined,
  lockId: string,
): Promise<Uint8Array | null> {
  const version = anchors?.anchorVersion ?? 0;
  if (anchors === undefined || version === 0) return null;
  const held = await store.getAnchorAck(lockId);
  if (held !== undefined && held.version >= version) return null;
  return anchors.anchorUpdateFor(lockId) ?? null;
}

/** The JSON body of the sharing API's `POST /api/v1/sync` (binary values base64url without padding). */
export interface SyncJsonBody {
  readonly lock: string;
  readonly records: readonly string[];
  readonly challenge?: { readonly nonce: string; readonly revocationVersion: number };
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

function fromBase64url(value: unknown, field: string): Uint8Array {
  // Strict: Node's decoder skips characters outside the alphabet, which would let two texts name one value.
  if (typeof value !== 'string' || !BASE64URL.test(value) || value.length % 4 === 1) {
    invalid(`sync "${field}" must be base64url without padding`);
  }
  return new Uint8Array(Buffer.from(value, 'base64url'));
}

const b64 = (b: Uint8Array | null): string | null =>
  b === null ? null : Buffer.from(b).toString('base64url');

/**
 * The API's `sync` extension: decodes the JSON body, runs {@link SyncService.sync}, and answers the
 * contract's JSON (`results` of `{index, outcome}`; `outboxAck`, `revocation`, `beacon`, `anchor` as base64url
 * or null).
 * Throws ERR_CLOUD_SYNC_INVALID (a 400 for the API) and ERR_CLOUD_LOCK_UNKNOWN as {@link SyncService.sync}.
 */
export function syncJsonHandler(
  service: SyncService,
): (body: SyncJsonBody, caller: string) => Promise<object> {
  return async (body) => {
    if (!Array.isArray(body.records)) invalid('sync "records" must be an array');
    if (body.records.length > MAX_SYNC_RECORDS) {
      invalid(`sync "records" has ${body.records.length} items, more than ${MAX_SYNC_RECORDS}`);
    }
    const records = body.records.map((r, i) => fromBase64url(r, `records[${i}]`));
    const c = body.challenge;
    const res = await service.sync({
      lockId: body.lock,
      records,
      ...(c === undefined
        ? {}
        : {
            challenge: {
              nonce: fromBase64url(c.nonce, 'challenge.nonce'),
              revocationVersion: c.revocationVersion,
            },
          }),
    });
    return {
      results: res.results.map((r) => ({ index: r.index, outcome: r.outcome })),
      outboxAck: b64(res.outboxAck),
      revocation: b64(res.revocation),
      beacon: b64(res.beacon),
      anchor: b64(res.anchor),
    };
  };
}
