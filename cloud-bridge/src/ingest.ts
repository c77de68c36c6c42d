/**
 * The one ingestion path for what locks sign (issue 9, §3): records that arrive over MQTT and records a phone
 * collected over BLE and uploads go through {@link Ingestor.ingest}, so a relay can delay records but never
 * forge, drop silently or replay them:
 *
 * - forge: each record is verified with the device key of the lock named by the topic (or, for an upload, by
 *   the record itself) and must name that lock ([TANDEM-MQTT-5], [TANDEM-MQTT-6]); a failure is flagged to the
 *   owner as `forgery` and nothing is stored as genuine;
 * - replay: records are keyed by (lock id, epoch, sequence) ([TANDEM-MQTT-11]); the same bytes again are
 *   ignored, other bytes under a held key are a `fork`, flagged and not stored;
 * - drop: the outbox acknowledgement covers only a contiguous run 1..n of one epoch ([TANDEM-MQTT-8]) whose
 *   audit records chain ([TANDEM-MQTT-7]), so the lock keeps what the cloud lacks; a hole is flagged as `gap`,
 *   a broken chain as `chain-break`, a new epoch as `epoch-change`.
 */
import type { AuditRecord, Alert, LockStateReport, OutboxAck, TimeRequest } from '../../protocol/src/mqtt.js';
import {
  AUDIT_GENESIS_HASH,
  MAX_ALERT_BYTES,
  MAX_AUDIT_RECORD_BYTES,
  MAX_LOCK_STATE_BYTES,
  MAX_TIME_REQUEST_BYTES,
  auditRecordHash,
  decodeAlert,
  decodeAuditRecord,
  decodeLockState,
  verifyAlert,
  verifyAuditRecord,
  verifyLockState,
  verifyTimeRequest,
} from '../../protocol/src/mqtt.js';
import type { RevocationAck } from '../../protocol/src/revocation.js';
import {
  MAX_REVOCATION_ACK_BYTES,
  decodeRevocationAck,
  verifyRevocationAck,
} from '../../protocol/src/revocation.js';
import { isProtocolError } from '../../protocol/src/errors.js';
import type { PublicKey } from '../../protocol/src/keys.js';
import { publicKeyFromRaw } from '../../protocol/src/keys.js';
import type { LogSink } from './log.js';
import type { CloudEvent, CloudStore, StoredRecord } from './store/types.js';
import { countUse } from './uses.js';

/** What a lock signs and the cloud ingests. */
export type IngestKind = 'alert' | 'audit' | 'state' | 'revocation-ack';

/** Largest message of each kind, checked before decoding. */
export const MAX_BYTES: Readonly<Record<IngestKind | 'time-request', number>> = {
  alert: MAX_ALERT_BYTES,
  audit: MAX_AUDIT_RECORD_BYTES,
  state: MAX_LOCK_STATE_BYTES,
  'revocation-ack': MAX_REVOCATION_ACK_BYTES,
  'time-request': MAX_TIME_REQUEST_BYTES,
};

/** The outcome of one ingestion. */
export type IngestResult =
  | {
      readonly outcome: 'stored';
      /** The acknowledgement to publish when this moved the lock's current epoch forward. */
      readonly ack?: OutboxAck;
    }
  | { readonly outcome: 'duplicate' }
  | { readonly outcome: 'refused'; readonly reason: string; readonly flagged?: string };

/**
 * Owner-facing event kinds. `alert` is stored beside the alert record itself and `state` on each change of
 * state, so that the event feed (feed.ts) and its catch-up carry them; `offline` is the broker's empty last
 * will ([TANDEM-MQTT-WILL]).
 */
export type EventKind =
  | 'forgery'
  | 'malformed'
  | 'fork'
  | 'gap'
  | 'chain-break'
  | 'epoch-change'
  | 'revocation-applied'
  | 'alert'
  | 'state'
  | 'offline';

/** How the ingestor is wired: the store, a clock in Unix milliseconds, a log sink. */
export interface IngestorOptions {
  readonly store: CloudStore;
  readonly now?: () => number;
  readonly log?: LogSink;
  /** Most owner events of kind malformed/forgery per lock per minute, so a flood cannot fill the store. */
  readonly maxFlagsPerMinute?: number;
  /** Where each stored event is published (the {@link EventFeed} of feed.ts), after it is stored. */
  readonly feed?: { publish(e: CloudEvent): void };
}

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));
// Contiguous records walked per step when the acknowledgement moves forward.
const WALK_BATCH = 500;

/** Verifies, de-duplicates, chain-checks and stores what locks sign. One instance per process. */
export class Ingestor {
  private readonly store: CloudStore;
  private readonly now: () => number;
  private readonly log: LogSink;
  private readonly maxFlags: number;
  private readonly feed: IngestorOptions['feed'];
  private readonly flagWindows = new Map<string, { start: number; n: number }>();

  constructor(options: IngestorOptions) {
    this.store = options.store;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? (() => undefined);
    this.maxFlags = options.maxFlagsPerMinute ?? 20;
    this.feed = options.feed;
  }

  /**
   * Ingests one signed message of `kind` from lock `lockId` (the topic's lock id over MQTT). Never throws for
   * bad input: a refusal is an outcome with its reason, logged, and flagged to the owner where it matters.
   */
  async ingest(
    kind: IngestKind,
    lockId: string,
    bytes: Uint8Array,
    via: 'mqtt' | 'relay',
  ): Promise<IngestResult> {
    if (kind === 'state' && bytes.length === 0 && via === 'mqtt') {
      // The broker's last will, or a clean stop: the connection ended; not a state report ([TANDEM-MQTT-WILL]).
      if ((await this.store.getLock(lockId)) === undefined) return this.refuse(lockId, kind, 'unknown lock');
      await this.flag(lockId, 'offline', {});
      return { outcome: 'stored' };
    }
    if (bytes.length > MAX_BYTES[kind]) {
      return this.refuse(
        lockId,
        kind,
        `${kind} of ${bytes.length} bytes exceeds ${MAX_BYTES[kind]}`,
        'malformed',
      );
    }
    const key = await this.deviceKey(lockId);
    if (key === undefined) return this.refuse(lockId, kind, `lock ${lockId} is not registered`);
    try {
      switch (kind) {
        case 'alert':
          return await this.ingestRecord(lockId, 'alert', verifyAlert(bytes, key, lockId), bytes, via);
        case 'audit':
          return await this.ingestRecord(lockId, 'audit', verifyAuditRecord(bytes, key, lockId), bytes, via);
        case 'state':
          return await this.ingestState(verifyLockState(bytes, key, lockId), bytes, via);
        case 'revocation-ack':
          return await this.ingestRevocationAck(verifyRevocationAck(bytes, key, lockId));
      }
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      const forged = e.code === 'ERR_SIGNATURE_INVALID' || e.code === 'ERR_AUDIENCE_MISMATCH';
      return this.refuse(lockId, kind, `${e.code}: ${e.message}`, forged ? 'forgery' : 'malformed');
    }
  }

  /**
   * Ingests a record a phone uploads (the sync service, sync.ts, calls this): the lock is the one the record
   * names, and its signature is checked with that lock's key, exactly as over MQTT. With `expectedLockId` (the
   * lock the phone says it synced with), a record naming another lock is refused without being ingested.
   */
  async ingestRelayed(bytes: Uint8Array, expectedLockId?: string): Promise<IngestResult> {
    for (const [kind, decode] of [
      ['alert', (b: Uint8Array) => decodeAlert(b).alert.lockId],
      ['audit', (b: Uint8Array) => decodeAuditRecord(b).record.lockId],
      ['revocation-ack', (b: Uint8Array) => decodeRevocationAck(b).ack.lockId],
      ['state', (b: Uint8Array) => decodeLockState(b).report.lockId],
    ] as const) {
      let lockId: string;
      try {
        lockId = decode(bytes);
      } catch {
        continue;
      }
      if (expectedLockId !== undefined && lockId !== expectedLockId) {
        // A phone syncs one lock at a time; another lock's record waits for a sync of that lock.
        return this.refuse(expectedLockId, 'upload', `${kind} names lock ${lockId}, not ${expectedLockId}`);
      }
      return this.ingest(kind, lockId, bytes, 'relay');
    }
    return this.refuse(
      expectedLockId ?? '-',
      'upload',
      'not an alert, audit record, revocation acknowledgement or lock state',
    );
  }

  /** Verifies a time request ([TANDEM-MQTT-12]); the nonce to answer, or a refusal. */
  async checkTimeRequest(lockId: string, bytes: Uint8Array): Promise<TimeRequest | { refused: string }> {
    if (bytes.length > MAX_BYTES['time-request']) {
      return { refused: (await this.refuse(lockId, 'time-request', 'time request too large')).reason };
    }
    const key = await this.deviceKey(lockId);
    if (key === undefined) return { refused: `lock ${lockId} is not registered` };
    try {
      return verifyTimeRequest(bytes, key, lockId);
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      return { refused: (await this.refuse(lockId, 'time-request', `${e.code}: ${e.message}`)).reason };
    }
  }

  /** The acknowledgement for the lock's current epoch, if it has records the cloud holds. */
  async currentAck(lockId: string): Promise<OutboxAck | undefined> {
    const epochs = await this.store.listEpochs(lockId);
    const current = epochs[epochs.length - 1];
    if (current === undefined || current.ackedSequence < 1) return undefined;
    return { lockId, epoch: current.epoch, sequence: current.ackedSequence };
  }

  private async deviceKey(lockId: string): Promise<PublicKey | undefined> {
    const lock = await this.store.getLock(lockId);
    return lock === undefined ? undefined : publicKeyFromRaw('EdDSA', lock.deviceKey);
  }

  private async ingestRecord(
    lockId: string,
    kind: 'alert' | 'audit',
    value: Alert | AuditRecord,
    bytes: Uint8Array,
    via: 'mqtt' | 'relay',
  ): Promise<IngestResult> {
    const at = this.now();
    await this.noteEpoch(lockId, value.epoch, at);
    const record: StoredRecord = {
      lockId,
      epoch: value.epoch,
      sequence: value.sequence,
      kind,
      bytes,
      time: value.time,
      receivedAt: at,
      via,
    };
    const outcome = await this.store.insertRecord(record);
    if (outcome === 'duplicate') return { outcome: 'duplicate' };
    // Stored for the first time: a use the lock counted is mirrored on its share once ([TANDEM-SYNC-4]).
    if (outcome === 'inserted' && kind === 'audit') await countUse(this.store, value as AuditRecord);
    if (outcome === 'inserted' && kind === 'alert') {
      const a = value as Alert;
      await this.flag(lockId, 'alert', {
        alert: a.kind,
        epoch: a.epoch,
        sequence: a.sequence,
        time: a.time,
        via,
      });
    }
    if (outcome === 'conflict') {
      return this.refuse(
        lockId,
        kind,
        `another record is held for epoch ${value.epoch} sequence ${value.sequence}`,
        'fork',
        { epoch: value.epoch, sequence: value.sequence },
      );
    }
    const progress = await this.store.getProgress(lockId, value.epoch);
    const acked = progress?.ackedSequence ?? 0;
    if (
      value.sequence > acked + 1 &&
      (await this.store.getRecord(lockId, value.epoch, value.sequence - 1)) === undefined
    ) {
      await this.flag(lockId, 'gap', { epoch: value.epoch, from: acked + 1, to: value.sequence - 1 });
    }
    const ack = await this.advance(lockId, value.epoch);
    return ack === undefined ? { outcome: 'stored' } : { outcome: 'stored', ack };
  }

  /** Records a new epoch; flags `epoch-change` when the lock already had another ([TANDEM-MQTT-11]). */
  private async noteEpoch(lockId: string, epoch: number, at: number): Promise<void> {
    if (!(await this.store.touchEpoch(lockId, epoch, at))) return;
    const epochs = await this.store.listEpochs(lockId);
    const previous = epochs.filter((e) => e.epoch !== epoch).pop();
    if (previous !== undefined) {
      await this.flag(lockId, 'epoch-change', {
        from: previous.epoch,
        to: epoch,
        acknowledged: previous.ackedSequence,
      });
    }
  }

  /**
   * Moves the epoch's acknowledged run forward over the contiguous records now held, checking the audit chain
   * on the way ([TANDEM-MQTT-7]); returns the acknowledgement to publish if the epoch is the lock's current.
   */
  private async advance(lockId: string, epoch: number): Promise<OutboxAck | undefined> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const p = await this.store.getProgress(lockId, epoch);
      if (p === undefined) return undefined;
      let seq = p.ackedSequence;
      let lastHash = p.lastAuditHash;
      for (;;) {
        const batch = await this.store.recordsAfter(lockId, epoch, seq, WALK_BATCH);
        let moved = 0;
        for (const r of batch) {
          if (r.sequence !== seq + 1) break;
          if (r.kind === 'audit') {
            const prev = decodeAuditRecord(r.bytes).record.previousHash;
            if (!(await this.chainOk(lockId, epoch, lastHash, prev))) {
              await this.flag(lockId, 'chain-break', { epoch, sequence: r.sequence });
            }
            lastHash = auditRecordHash(r.bytes);
          }
          seq = r.sequence;
          moved++;
        }
        if (moved < WALK_BATCH || batch.length < WALK_BATCH) break;
      }
      if (seq === p.ackedSequence) return this.ackIfCurrent(lockId, epoch, seq);
      if (await this.store.advanceProgress(lockId, epoch, p.ackedSequence, seq, lastHash)) {
        return this.ackIfCurrent(lockId, epoch, seq);
      }
      // Another bridge instance moved it first: read its progress and go on from there.
    }
    return this.ackIfCurrent(
      lockId,
      epoch,
      (await this.store.getProgress(lockId, epoch))?.ackedSequence ?? 0,
    );
  }

  private async chainOk(
    lockId: string,
    epoch: number,
    lastHash: Uint8Array | null,
    previousHash: Uint8Array,
  ): Promise<boolean> {
    if (lastHash !== null) return same(lastHash, previousHash);
    // The first audit record of an epoch: zeros, or the last audit record of an earlier epoch ([TANDEM-MQTT-7]).
    if (same(previousHash, AUDIT_GENESIS_HASH)) return true;
    const epochs = await this.store.listEpochs(lockId);
    return epochs.some(
      (e) => e.epoch !== epoch && e.lastAuditHash !== null && same(e.lastAuditHash, previousHash),
    );
  }

  private async ackIfCurrent(
    lockId: string,
    epoch: number,
    sequence: number,
  ): Promise<OutboxAck | undefined> {
    if (sequence < 1) return undefined;
    const epochs = await this.store.listEpochs(lockId);
    if (epochs[epochs.length - 1]?.epoch !== epoch) return undefined;
    return { lockId, epoch, sequence };
  }

  private async ingestState(
    report: LockStateReport,
    bytes: Uint8Array,
    via: 'mqtt' | 'relay',
  ): Promise<IngestResult> {
    const at = this.now();
    await this.noteEpoch(report.lockId, report.outboxEpoch, at);
    const previous = await this.store.getState(report.lockId);
    if (via === 'relay' && previous !== undefined && previous.time > report.time) {
      // A phone may carry a report for hours, or replay an old one: it never overrides a newer one. Over
      // MQTT the lock itself is talking, and after a reboot its time may start below its last report's.
      return { outcome: 'duplicate' };
    }
    if (previous?.state !== report.state) {
      await this.flag(report.lockId, 'state', {
        state: report.state,
        previous: previous?.state ?? null,
        time: report.time,
      });
    }
    await this.store.putState({
      lockId: report.lockId,
      bytes,
      state: report.state,
      time: report.time,
      receivedAt: at,
    });
    const ack = await this.currentAck(report.lockId);
    return ack === undefined ? { outcome: 'stored' } : { outcome: 'stored', ack };
  }

  private async ingestRevocationAck(ack: RevocationAck): Promise<IngestResult> {
    const held = await this.store.getRevocationAck(ack.lockId);
    if (held !== undefined && held.version >= ack.version) return { outcome: 'duplicate' };
    await this.store.putRevocationAck({ ...ack, receivedAt: this.now() });
    await this.flag(ack.lockId, 'revocation-applied', { version: ack.version, lockTime: ack.lockTime });
    return { outcome: 'stored' };
  }

  private async refuse(
    lockId: string,
    what: string,
    reason: string,
    flag?: EventKind,
    detail: CloudEvent['detail'] = {},
  ): Promise<{ outcome: 'refused'; reason: string; flagged?: string }> {
    this.log({ level: 'warn', source: 'ingest', event: `refused ${what}`, who: lockId, reason });
    if (flag === undefined || !(await this.store.getLock(lockId))) return { outcome: 'refused', reason };
    if (flag === 'forgery' || flag === 'malformed') {
      // Bounded: a flood of bad messages from one lock must not fill the store with events.
      const at = this.now();
      const w = this.flagWindows.get(lockId);
      if (w === undefined || at - w.start >= 60_000) this.flagWindows.set(lockId, { start: at, n: 1 });
      else if (++w.n > this.maxFlags) return { outcome: 'refused', reason };
    }
    await this.flag(lockId, flag, { what, reason: reason.slice(0, 200), ...detail });
    return { outcome: 'refused', reason, flagged: flag };
  }

  private async flag(lockId: string, kind: EventKind, detail: CloudEvent['detail']): Promise<void> {
    const event = { lockId, kind, detail, at: this.now() };
    const id = await this.store.addEvent(event);
    this.feed?.publish({ id, ...event });
    this.log({ level: 'info', source: 'ingest', event: kind, who: lockId, reason: JSON.stringify(detail) });
  }
}
