import { randomInt } from 'node:crypto';
import { AppendLog } from './append-log.js';
import { ByteReader, ByteWriter, checkInt, putU32, putU64 } from './bytes.js';
import { StoreError } from './errors.js';
import { SerialQueue } from './serial-queue.js';
import type { StoreFs } from './store-fs.js';

/** Default bound on unacknowledged messages. */
export const OUTBOX_MAX_ENTRIES = 1000;
/** Default bound on the payload bytes of unacknowledged messages. */
export const OUTBOX_MAX_BYTES = 1024 * 1024;
/** Default bound on one payload. */
export const OUTBOX_MAX_PAYLOAD_BYTES = 16 * 1024;

const REC_ENQ = 0x30; // seq u64 | kind u8 | payloadLen u32 | payload
const REC_ACK = 0x31; // throughSeq u64
const REC_HEAD = 0x32; // nextSeq u64 | ackedThrough u64  (first record after a compaction)
// epoch u32: the outbox epoch ([TANDEM-MQTT-11]); first record of a new log and of every compaction. A log
// that has none (written before epochs existed) gets one appended when it is opened.
const REC_EPOCH = 0x33;

/** What an outbox message carries: a theft alert or an audit record. */
export type OutboxKind = 'alert' | 'audit';
const KIND_CODE: Record<OutboxKind, number> = { alert: 1, audit: 2 };
const CODE_KIND = new Map<number, OutboxKind>([
  [1, 'alert'],
  [2, 'audit'],
]);

/** One queued message. `seq` increases by one per enqueue and is never reused. */
export interface OutboxEntry {
  seq: number;
  kind: OutboxKind;
  payload: Uint8Array;
}

/** Options of {@link Outbox.open}. */
export interface OutboxOptions {
  /** File name in the directory (default 'outbox.log'). */
  name?: string;
  /** Default {@link OUTBOX_MAX_ENTRIES}. */
  maxEntries?: number;
  /** Default {@link OUTBOX_MAX_BYTES}. */
  maxBytes?: number;
  /** Default {@link OUTBOX_MAX_PAYLOAD_BYTES}. */
  maxPayloadBytes?: number;
  /** Compact once the log passes this size (default 256 KiB). */
  compactAtBytes?: number;
  /** Draws a new epoch, 1 to 2^32-1 (default node:crypto randomInt); injectable for tests. */
  newEpoch?: () => number;
}

const drawEpoch = (): number => randomInt(1, 0x1_0000_0000);

/**
 * Alerts and audit records waiting for the cloud's acknowledgement (ARCHITECTURE.md flow 7: never lost).
 * {@link Outbox.enqueue} resolves once the message is durable; {@link Outbox.ack} durably removes everything
 * through a sequence number. Nothing that was enqueued and resolved is lost across power cuts; a message may
 * be delivered twice (sent, acknowledged by the cloud, cut before the ack was stored), so the cloud
 * de-duplicates by `seq`. Full (`maxEntries` or `maxBytes`) is ERR_STORE_FULL: nothing is dropped to make room.
 */
export class Outbox {
  private readonly queue = new SerialQueue();

  private constructor(
    private readonly log: AppendLog,
    private readonly pending: OutboxEntry[],
    private nextSeq: number,
    private acked: number,
    private bytes: number,
    private readonly opts: Required<Omit<OutboxOptions, 'name' | 'newEpoch'>>,
    /** [TANDEM-MQTT-11]: names this sequence; a storage reset starts a new epoch. */
    readonly epoch: number,
  ) {}

  static async open(fs: StoreFs, dir: string, options: OutboxOptions = {}): Promise<Outbox> {
    const opts = {
      maxEntries: options.maxEntries ?? OUTBOX_MAX_ENTRIES,
      maxBytes: options.maxBytes ?? OUTBOX_MAX_BYTES,
      maxPayloadBytes: options.maxPayloadBytes ?? OUTBOX_MAX_PAYLOAD_BYTES,
      compactAtBytes: options.compactAtBytes ?? 256 * 1024,
    };
    const { log, records } = await AppendLog.open(fs, dir, options.name ?? 'outbox.log', {
      magic: 'TDOB',
      maxRecordBytes: opts.maxPayloadBytes + 64,
    });
    let pending: OutboxEntry[] = [];
    let nextSeq = 1;
    let acked = 0;
    let epoch = 0;
    for (const rec of records) {
      const r = new ByteReader(rec, 'outbox record');
      const type = r.u8();
      if (type === REC_ENQ) {
        const seq = r.u64();
        const code = r.u8();
        const kind = CODE_KIND.get(code);
        if (!kind || seq !== nextSeq) {
          throw new StoreError(
            'ERR_STORE_CORRUPT',
            `outbox record ${seq} (kind ${code}) does not follow ${nextSeq - 1}`,
          );
        }
        pending.push({ seq, kind, payload: r.bytes(r.u32()) });
        nextSeq = seq + 1;
      } else if (type === REC_ACK) {
        acked = Math.max(acked, r.u64());
        pending = pending.filter((e) => e.seq > acked);
      } else if (type === REC_HEAD) {
        nextSeq = r.u64();
        acked = r.u64();
        pending = [];
      } else if (type === REC_EPOCH) {
        epoch = r.u32();
        if (epoch === 0) throw new StoreError('ERR_STORE_CORRUPT', 'outbox epoch 0');
      } else {
        throw new StoreError('ERR_STORE_CORRUPT', `outbox record: unknown type ${type}`);
      }
      r.end();
    }
    if (epoch === 0) {
      // A new outbox (or one from before epochs): a fresh epoch, durable before any record uses it.
      epoch = (options.newEpoch ?? drawEpoch)();
      checkInt(epoch, 1, 0xffff_ffff, 'outbox epoch');
      await log.append(new ByteWriter(5).u8(REC_EPOCH).u32(epoch).finish());
    }
    const bytes = pending.reduce((n, e) => n + e.payload.length, 0);
    return new Outbox(log, pending, nextSeq, acked, bytes, opts, epoch);
  }

  /** Messages waiting. */
  get size(): number {
    return this.pending.length;
  }

  /** Highest sequence number acknowledged. */
  get ackedThrough(): number {
    return this.acked;
  }

  /** The last sequence number queued in this epoch; 0 when none yet. */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** Queue a message; resolves with its sequence number once durable. */
  enqueue(kind: OutboxKind, payload: Uint8Array): Promise<number> {
    return this.enqueueWith(kind, () => payload.slice());
  }

  /**
   * Queue a message built from its own sequence number and the outbox epoch (alerts and audit records carry
   * both, signed, [TANDEM-MQTT-8], [TANDEM-MQTT-11]); `build` runs inside the store's queue, so the number it
   * sees is the one it gets. The outbox keeps the bytes `build` returns (no copy): they must be fresh and
   * not modified afterwards (the audit trail keeps the same bytes in the audit log, [TANDEM-AUDIT-2]).
   */
  enqueueWith(kind: OutboxKind, build: (seq: number, epoch: number) => Uint8Array): Promise<number> {
    if (!Object.hasOwn(KIND_CODE, kind)) {
      return Promise.reject(
        new StoreError('ERR_STORE_INVALID_ARGUMENT', `outbox kind must be alert or audit`),
      );
    }
    return this.queue.run(async () => {
      const seq = this.nextSeq;
      const payload = build(seq, this.epoch);
      if (payload.length > this.opts.maxPayloadBytes) {
        throw new StoreError(
          'ERR_STORE_INVALID_ARGUMENT',
          `outbox payload of ${payload.length} bytes exceeds ${this.opts.maxPayloadBytes}`,
        );
      }
      if (this.pending.length >= this.opts.maxEntries || this.bytes + payload.length > this.opts.maxBytes) {
        throw new StoreError(
          'ERR_STORE_FULL',
          `outbox full (${this.pending.length} messages, ${this.bytes} bytes): the cloud has not acknowledged them`,
        );
      }
      // The record's 14 header bytes and the payload, framed in one buffer (no record built first).
      const head = new Uint8Array(14);
      head[0] = REC_ENQ;
      putU64(head, 1, seq);
      head[9] = KIND_CODE[kind];
      putU32(head, 10, payload.length);
      await this.log.appendRecord(head, payload);
      this.pending.push({ seq, kind, payload });
      this.bytes += payload.length;
      this.nextSeq = seq + 1;
      await this.maybeCompact();
      return seq;
    });
  }

  /** Up to `max` oldest waiting messages, without removing them. */
  peek(max = 16): OutboxEntry[] {
    return this.pending.slice(0, max);
  }

  /** Durably remove every message with seq <= `throughSeq`. */
  async ack(throughSeq: number): Promise<void> {
    checkInt(throughSeq, 0, Number.MAX_SAFE_INTEGER, 'throughSeq');
    return this.queue.run(async () => {
      if (throughSeq >= this.nextSeq) {
        throw new StoreError(
          'ERR_STORE_INVALID_ARGUMENT',
          `ack of outbox message ${throughSeq}, last queued is ${this.nextSeq - 1}`,
        );
      }
      if (throughSeq <= this.acked) return;
      await this.log.append(new ByteWriter(9).u8(REC_ACK).u64(throughSeq).finish());
      this.acked = throughSeq;
      while (this.pending.length > 0 && this.pending[0]!.seq <= throughSeq)
        this.bytes -= this.pending.shift()!.payload.length;
      await this.maybeCompact();
    });
  }

  close(): Promise<void> {
    return this.queue.run(() => this.log.close());
  }

  // Compact only once the log has doubled since the last compaction as well as passed the bound: with many
  // messages waiting, a rewrite on every enqueue would wear the SD card out (amortised O(1) instead).
  private lastCompactedBytes = 0;

  private async maybeCompact(): Promise<void> {
    const size = this.log.sizeBytes;
    if (size <= this.opts.compactAtBytes || size <= 2 * this.lastCompactedBytes) return;
    // HEAD sets nextSeq to where replay of the kept entries must start, so sequence numbers are never reused.
    const headSeq = this.pending[0]?.seq ?? this.nextSeq;
    const records = [
      new ByteWriter(17).u8(REC_HEAD).u64(headSeq).u64(this.acked).finish(),
      new ByteWriter(5).u8(REC_EPOCH).u32(this.epoch).finish(),
    ];
    for (const e of this.pending) {
      records.push(
        new ByteWriter(14 + e.payload.length)
          .u8(REC_ENQ)
          .u64(e.seq)
          .u8(KIND_CODE[e.kind])
          .u32(e.payload.length)
          .bytes(e.payload)
          .finish(),
      );
    }
    await this.log.rewrite(records);
    this.lastCompactedBytes = this.log.sizeBytes;
  }
}
