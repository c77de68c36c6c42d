/**
 * The lock's signed audit trail: every attempt and lock event is written twice, first as the signed audit
 * record for the cloud ([TANDEM-MQTT-6], chained by [TANDEM-MQTT-7], numbered in the outbox sequence
 * [TANDEM-MQTT-8]), then as the local audit log entry ({@link AuditEntry}, `audit.ts`), which notes that
 * record's sequence and hash so that the chain continues after a reboot. Records for the cloud are built one
 * at a time on a {@link SerialQueue}, so that each chains on the one before. Failures are reported as
 * `store-error` events and never change the answer to the request.
 */
import createDebug from 'debug';
import type { TimeBound } from '../../../protocol/src/chain.js';
import type { PrivateKey } from '../../../protocol/src/keys.js';
import type { DetailValue } from '../../../protocol/src/index.js';
import {
  AUDIT_GENESIS_HASH,
  auditRecordHash,
  encodeAuditRecord as encodeWireAuditRecord,
} from '../../../protocol/src/mqtt.js';
import { Command } from '../../../protocol/src/pop.js';
import { Status } from '../../../protocol/src/status.js';
import { SerialQueue } from '../store/serial-queue.js';
import type { AuditEntry } from './audit.js';
import { decodeAuditEntry, encodeAuditEntry } from './audit.js';
import type { Attempt, AuthorityStores, Emit } from './authority-types.js';

const debug = createDebug('tandem:lock:authority');

/** Peers whose rate-limited refusals are being counted, at most (oldest dropped). */
const MAX_SUPPRESSED_PEERS = 64;

/** Options of {@link AuditTrail}. */
export interface AuditTrailOptions {
  readonly lockId: string;
  readonly stores: Pick<AuthorityStores, 'audit' | 'outbox'>;
  /** Signs the records for the cloud. */
  readonly deviceKey: PrivateKey;
  /** Trusted time now (earliest bound, Unix seconds), for entries that carry none. */
  readonly now: () => number;
  /**
   * Most outbox messages before records of refused attempts stop being queued: the outbox also carries theft
   * alerts, which a flood of refusals must never crowd out. Accepted attempts and events are always queued.
   */
  readonly outboxBudget: number;
  readonly emit: Emit;
}

/** An entry to record; its time defaults to now. */
export type TrailEntry = Omit<AuditEntry, 'time'> & { time?: number };

/** The signed audit trail (module comment). */
export class AuditTrail {
  readonly #o: AuditTrailOptions;
  /** [TANDEM-MQTT-7]: SHA-256 of the last audit record queued for the cloud; recovered at start. */
  #wirePrev: Uint8Array = AUDIT_GENESIS_HASH;
  readonly #wireQueue = new SerialQueue();
  /** Refused attempts not queued for the cloud since the last queued record (outbox budget). */
  #notQueued = 0;
  readonly #suppressed = new Map<string, number>();

  constructor(options: AuditTrailOptions) {
    this.#o = options;
  }

  /** Records one attempt or event (module comment); `acted`: the action may have happened. Never rejects. */
  async record(entry: TrailEntry, acted = false): Promise<void> {
    const { stores } = this.#o;
    const suppressed = this.#suppressed.get(entry.peer);
    if (suppressed !== undefined) this.#suppressed.delete(entry.peer);
    let full: AuditEntry = {
      ...entry,
      time: entry.time ?? this.#o.now(),
      ...(suppressed === undefined ? {} : { suppressed }),
    };
    const queue =
      full.kind === 'event' || full.status === Status.OK || stores.outbox.size < this.#o.outboxBudget;
    if (queue) {
      try {
        const wire = await this.#queueWire(full, acted);
        full = { ...full, wireSequence: wire.sequence, wireHash: wire.hash };
      } catch (error) {
        debug('outbox enqueue failed: %O', error);
        this.#o.emit({ type: 'store-error', what: 'outbox', error });
      }
    } else {
      this.#notQueued++;
    }
    try {
      await stores.audit.append(encodeAuditEntry(full));
    } catch (error) {
      debug('audit append failed: %O', error);
      this.#o.emit({ type: 'store-error', what: 'audit', error });
    }
  }

  /** Records a lock event, with a small detail map carried into the signed record. Never rejects. */
  event(status: Status, event: string, peer = 'lock', detail?: ReadonlyMap<string, number>): Promise<void> {
    return this.record({ status, kind: 'event', peer, event, ...(detail === undefined ? {} : { detail }) });
  }

  /**
   * A rate-limited refusal not written on its own: counted, and noted in the peer's next entry
   * (`suppressed`).
   */
  suppress(peer: string): void {
    if (!this.#suppressed.has(peer) && this.#suppressed.size >= MAX_SUPPRESSED_PEERS) {
      this.#suppressed.delete(this.#suppressed.keys().next().value as string);
    }
    this.#suppressed.set(peer, (this.#suppressed.get(peer) ?? 0) + 1);
  }

  /**
   * [TANDEM-MQTT-7] across reboots: the chain continues from the newest audit record this lock queued, found
   * in the outbox (not yet acknowledged) or noted in the local audit log, whichever has the higher sequence.
   */
  recover(): void {
    const { stores } = this.#o;
    let best = 0;
    for (const m of stores.outbox.peek(stores.outbox.size)) {
      if (m.kind !== 'audit' || m.seq <= best) continue;
      best = m.seq;
      this.#wirePrev = auditRecordHash(m.payload);
    }
    const local = stores.audit.records();
    for (let i = local.length - 1; i >= 0; i--) {
      let e: AuditEntry;
      try {
        e = decodeAuditEntry(local[i]!.payload);
      } catch {
        continue;
      }
      if (e.wireSequence === undefined || e.wireHash === undefined) continue;
      if (e.wireSequence > best) this.#wirePrev = e.wireHash;
      break;
    }
  }

  /** Queues one signed audit record; records are built one after the other so that each chains on the last. */
  #queueWire(e: AuditEntry, acted: boolean): Promise<{ sequence: number; hash: Uint8Array }> {
    const run = async (): Promise<{ sequence: number; hash: Uint8Array }> => {
      const detail = new Map<string, DetailValue>([['peer', e.peer.slice(0, 64)]]);
      if (e.suppressed !== undefined) detail.set('suppressed', e.suppressed);
      if (e.version !== undefined) detail.set('version', e.version);
      // [TANDEM-AUDIT-1]: who signed each link and who holds the leaf (the rider name is only a label).
      if (e.signers !== undefined) detail.set('signers', e.signers.map(hexOf).join('.'));
      if (e.holder !== undefined) detail.set('holder', hexOf(e.holder));
      const notQueued = this.#notQueued;
      if (notQueued > 0) detail.set('not_queued', notQueued);
      for (const [k, v] of e.detail ?? []) detail.set(k, v);
      let bytes: Uint8Array | undefined;
      const previousHash = this.#wirePrev;
      const sequence = await this.#o.stores.outbox.enqueueWith('audit', (seq, epoch) => {
        bytes = encodeWireAuditRecord(
          {
            lockId: this.#o.lockId,
            sequence: seq,
            epoch,
            time: e.time,
            previousHash,
            event: wireEvent(e, acted),
            status: e.status,
            ...(e.command === undefined ? {} : { command: e.command }),
            ...(e.cti === undefined ? {} : { tokenId: e.cti }),
            ...(e.rider === undefined ? {} : { rider: e.rider }),
            detail,
          },
          this.#o.deviceKey,
        );
        return bytes;
      });
      // Only a record that is durable in the outbox moves the chain on.
      const hash = auditRecordHash(bytes!);
      this.#wirePrev = hash;
      this.#notQueued -= notQueued;
      return { sequence, hash };
    };
    return this.#wireQueue.run(run);
  }
}

/** The audit entry of a request: what was decided, about which token, signed by whom ([TANDEM-AUDIT-1]). */
export function requestEntry(status: Status, peer: string, attempt: Attempt, bound: TimeBound): AuditEntry {
  const leaf = attempt.grant?.leaf;
  return {
    status,
    kind: 'request',
    peer,
    time: bound.earliest,
    ...(attempt.request === undefined ? {} : { command: attempt.request.command }),
    ...(leaf === undefined ? {} : { cti: leaf.cti }),
    ...(leaf?.rider === undefined ? {} : { rider: leaf.rider }),
    ...(attempt.signers === undefined
      ? {}
      : { signers: attempt.signers.signers, holder: attempt.signers.holder }),
  };
}

const hexOf = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** The `event` of an audit record ([TANDEM-MQTT-6]): what happened, in the record's own words. */
function wireEvent(e: AuditEntry, acted: boolean): string {
  switch (e.kind) {
    case 'event':
      return e.event ?? 'event';
    case 'revocation':
      return e.status === Status.OK ? 'revocation-applied' : 'revocation-refused';
    case 'time':
      return e.status === Status.OK ? 'time-beacon' : 'time-refused';
    case 'request':
      if ((e.status === Status.OK || acted) && e.command !== undefined) {
        return Command[e.command].toLowerCase().replace(/_/g, '-');
      }
      if (e.status === Status.BUSY) return 'busy';
      if (e.status === Status.RATE_LIMITED) return 'rate-limited';
      if (e.status === Status.FAULT) return 'fault';
      return 'refused';
  }
}
