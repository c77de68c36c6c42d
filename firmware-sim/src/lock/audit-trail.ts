/**
 * The lock's signed audit trail ([TANDEM-AUDIT-2]): every attempt and lock event becomes one audit record
 * ([TANDEM-MQTT-6]), signed once with the device key, chained on the one before by its hash ([TANDEM-MQTT-7]),
 * numbered in the outbox sequence ([TANDEM-MQTT-8]). The same bytes are queued in the outbox for the cloud
 * and then kept in the local audit log (`AuditLog`, READ_AUDIT), in that order, so that the log never holds a
 * record the cloud's chain does not. Records are built one at a time on a {@link SerialQueue}, so that each
 * chains on the last. Failures are reported as `store-error` events and never change the answer to the
 * request.
 */
import createDebug from 'debug';
import type { TimeBound } from '../../../protocol/src/chain.js';
import type { PrivateKey } from '../../../protocol/src/keys.js';
import type { DetailValue } from '../../../protocol/src/index.js';
import { auditRecordHash, decodeAuditRecord } from '../../../protocol/src/mqtt.js';
import { Command } from '../../../protocol/src/pop.js';
import { Status } from '../../../protocol/src/status.js';
import { SerialQueue } from '../store/serial-queue.js';
import type { AuditEntry } from './audit.js';
import { AUDIT_PEER_MAX } from './audit.js';
import { AuditRecordWriter } from './audit-record.js';
import type { Attempt, AuthorityStores, Emit } from './authority-types.js';

const debug = createDebug('tandem:lock:authority');

/** Peers whose rate-limited refusals are being counted, at most (oldest dropped). */
const MAX_SUPPRESSED_PEERS = 64;

/** Options of {@link AuditTrail}. */
export interface AuditTrailOptions {
  readonly lockId: string;
  readonly stores: Pick<AuthorityStores, 'audit' | 'outbox'>;
  /** Signs the records. */
  readonly deviceKey: PrivateKey;
  /** Trusted time now (earliest bound, Unix seconds), for entries that carry none. */
  readonly now: () => number;
  /**
   * Most outbox messages before records of refused attempts stop being written: the outbox also carries
   * theft alerts, which a flood of refusals must never crowd out. Accepted attempts and events are always
   * recorded; a refusal over the budget is counted in the next record's `not_queued` ([TANDEM-AUDIT-2]).
   */
  readonly outboxBudget: number;
  readonly emit: Emit;
}

/** An entry to record; its time defaults to now. */
export type TrailEntry = Omit<AuditEntry, 'time'> & { time?: number };

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && Buffer.compare(a, b) === 0;

/** The signed audit trail (module comment). */
export class AuditTrail {
  readonly #o: AuditTrailOptions;
  /** [TANDEM-MQTT-7]: SHA-256 of the last audit record written; recovered at start. */
  #prev: Uint8Array;
  readonly #queue = new SerialQueue();
  /** Attempts not recorded since the last record (outbox budget, or the outbox refused the record). */
  #notQueued = 0;
  readonly #suppressed = new Map<string, number>();
  readonly #writer: AuditRecordWriter;

  constructor(options: AuditTrailOptions) {
    this.#o = options;
    this.#prev = options.stores.audit.chainHead;
    this.#writer = new AuditRecordWriter(options.deviceKey);
  }

  /** Records one attempt or event (module comment); `acted`: the action may have happened. Never rejects. */
  async record(entry: TrailEntry, acted = false): Promise<void> {
    const { stores } = this.#o;
    const suppressed = this.#suppressed.get(entry.peer);
    if (suppressed !== undefined) this.#suppressed.delete(entry.peer);
    if (entry.kind !== 'event' && entry.status !== Status.OK && stores.outbox.size >= this.#o.outboxBudget) {
      this.#notQueued += 1 + (suppressed ?? 0);
      return;
    }
    const full: AuditEntry = {
      ...entry,
      time: entry.time ?? this.#o.now(),
      ...(suppressed === undefined ? {} : { suppressed }),
    };
    await this.#queue.run(() => this.#write(full, acted));
  }

  /** Records a lock event, with a small detail map carried into the signed record. Never rejects. */
  event(status: Status, event: string, peer = 'lock', detail?: ReadonlyMap<string, number>): Promise<void> {
    return this.record({ status, kind: 'event', peer, event, ...(detail === undefined ? {} : { detail }) });
  }

  /**
   * A rate-limited refusal not written on its own: counted, and noted in the peer's next record
   * (`suppressed`).
   */
  suppress(peer: string): void {
    if (!this.#suppressed.has(peer) && this.#suppressed.size >= MAX_SUPPRESSED_PEERS) {
      this.#suppressed.delete(this.#suppressed.keys().next().value as string);
    }
    this.#suppressed.set(peer, (this.#suppressed.get(peer) ?? 0) + 1);
  }

  /**
   * [TANDEM-MQTT-7] across reboots: the chain continues from the newest record this lock wrote. A record is
   * queued in the outbox before the local log keeps it, so the outbox's newest audit record is the newest,
   * when the outbox still holds one; records it holds after the local log's last one (a power cut between the
   * two writes) are copied into the local log first, so that its chain has no hole ([TANDEM-AUDIT-2]).
   * Otherwise the local log's chain head. Never rejects.
   */
  async recover(): Promise<void> {
    const { audit, outbox } = this.#o.stores;
    const wire = outbox.peek(outbox.size).filter((m) => m.kind === 'audit');
    const local = audit.chainHead;
    this.#prev = local;
    if (wire.length === 0) return;
    const hashes = wire.map((m) => auditRecordHash(m.payload));
    this.#prev = hashes.at(-1)!;
    let from = -1;
    for (let i = hashes.length - 1; i >= 0 && from < 0; i--) if (sameBytes(hashes[i]!, local)) from = i + 1;
    if (from < 0) {
      try {
        // None of them is the local log's last: they all follow it if the oldest chains on it.
        if (sameBytes(decodeAuditRecord(wire[0]!.payload).record.previousHash, local)) from = 0;
      } catch (error) {
        debug('an audit record in the outbox does not decode: %O', error);
      }
    }
    if (from < 0) return;
    for (const m of wire.slice(from)) {
      try {
        await audit.append(m.payload);
      } catch (error) {
        debug('audit append failed: %O', error);
        this.#o.emit({ type: 'store-error', what: 'audit', error });
        return;
      }
    }
  }

  /** Signs one record, queues it in the outbox, then keeps it in the local log (module comment). */
  async #write(e: AuditEntry, acted: boolean): Promise<void> {
    const detail = new Map<string, DetailValue>([['peer', e.peer.slice(0, AUDIT_PEER_MAX)]]);
    if (e.suppressed !== undefined && e.suppressed > 0) detail.set('suppressed', e.suppressed);
    if (e.version !== undefined) detail.set('version', e.version);
    // [TANDEM-AUDIT-1]: who signed each link and who holds the leaf (the rider name is only a label).
    if (e.signers !== undefined)
      detail.set(
        'signers',
        hexOnce(e.signers, () => e.signers!.map(hexOf).join('.')),
      );
    if (e.holder !== undefined)
      detail.set(
        'holder',
        hexOnce(e.holder, () => hexOf(e.holder!)),
      );
    const notQueued = this.#notQueued;
    if (notQueued > 0) detail.set('not_queued', notQueued);
    for (const [k, v] of e.detail ?? []) detail.set(k, v);
    let bytes: Uint8Array | undefined;
    const previousHash = this.#prev;
    const { stores, lockId } = this.#o;
    try {
      await stores.outbox.enqueueWith('audit', (sequence, epoch) => {
        bytes = this.#writer.encode({
          lockId,
          sequence,
          epoch,
          time: e.time,
          previousHash,
          event: wireEvent(e, acted),
          status: e.status,
          ...(e.command === undefined ? {} : { command: e.command }),
          ...(e.cti === undefined ? {} : { tokenId: e.cti }),
          ...(e.rider === undefined ? {} : { rider: e.rider }),
          detail,
        });
        return bytes;
      });
    } catch (error) {
      debug('outbox enqueue failed: %O', error);
      this.#notQueued += 1 + (e.suppressed ?? 0);
      this.#o.emit({ type: 'store-error', what: 'outbox', error });
      return;
    }
    // Only a record that is durable in the outbox moves the chain on.
    this.#prev = auditRecordHash(bytes!);
    this.#notQueued -= notQueued;
    try {
      await stores.audit.append(bytes!);
    } catch (error) {
      debug('audit append failed: %O', error);
      this.#o.emit({ type: 'store-error', what: 'audit', error });
    }
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

/** Hex of thumbprints, once per array: a repeat request's chain brings the same ones (`decision.ts` derive). */
const hexCache = new WeakMap<object, string>();
function hexOnce(of: object, make: () => string): string {
  let h = hexCache.get(of);
  if (h === undefined) hexCache.set(of, (h = make()));
  return h;
}

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
