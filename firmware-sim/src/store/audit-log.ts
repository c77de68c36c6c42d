import { createHash } from 'node:crypto';
import { AppendLog } from './append-log.js';
import { ByteReader, ByteWriter, bytesEqual, checkInt } from './bytes.js';
import { StoreError } from './errors.js';
import { SerialQueue } from './serial-queue.js';
import type { StoreFs } from './store-fs.js';

/** Default bound on records kept on the lock. */
export const AUDIT_MAX_RECORDS = 10_000;
/** Default bound on one record's payload. */
export const AUDIT_MAX_PAYLOAD_BYTES = 4096;
/** The `prevHash` of the first record ever written. */
export const AUDIT_GENESIS_HASH: Uint8Array = new Uint8Array(32);

const REC_ENTRY = 0x20; // seq u64 | time u64 | prevHash 32 | payloadLen u32 | payload | sigLen u16 | sig
const REC_ACK = 0x21; // throughSeq u64
const REC_HEAD = 0x22; // nextSeq u64 | lastHash 32 | ackedThrough u64  (first record after a compaction)

/** One audit record. `hash` is derived ({@link auditHash}); `signature` is the device key's over `hash`. */
export interface AuditRecord {
  seq: number;
  /** Milliseconds since the Unix epoch by the lock's clock when written (maybe untrusted after a power cut). */
  time: number;
  prevHash: Uint8Array;
  payload: Uint8Array;
  hash: Uint8Array;
  signature: Uint8Array;
}

/**
 * The hash that chains and is signed: SHA-256 over seq (u64 big-endian) | time (u64 big-endian, ms) |
 * prevHash (32 bytes) | payload length (u32 big-endian) | payload. The length prefix makes the encoding
 * unambiguous; every field has a fixed position, so the cloud can recompute it without our code.
 */
export function auditHash(seq: number, time: number, prevHash: Uint8Array, payload: Uint8Array): Uint8Array {
  const head = new ByteWriter(52).u64(seq).u64(time).bytes(prevHash).u32(payload.length).finish();
  return new Uint8Array(createHash('sha256').update(head).update(payload).digest());
}

/** Result of {@link verifyAuditLog}. */
export type AuditLogVerification =
  | { ok: true; lastSeq: number; lastHash: Uint8Array }
  | { ok: false; index: number; reason: 'seq-gap' | 'prev-hash' | 'signature' | 'bad-record' };

/**
 * Check a run of audit records: consecutive sequence numbers, each `prevHash` equal to the hash of the one
 * before, each signature valid over the recomputed hash. A gap (dropped record), a changed field (forgery or
 * corruption) or a bad signature is reported with the index of the first bad record. Without `prevHash` the
 * first record anchors the chain (the lock drops acknowledged records); pass the last hash the cloud already
 * holds to check the link to it too. `record.hash` is ignored: it is recomputed.
 */
export function verifyAuditLog(
  records: readonly AuditRecord[],
  verify: (hash: Uint8Array, signature: Uint8Array) => boolean,
  anchor: { prevHash?: Uint8Array; nextSeq?: number } = {},
): AuditLogVerification {
  let prev = anchor.prevHash;
  let expectSeq = anchor.nextSeq;
  let lastSeq = (anchor.nextSeq ?? 1) - 1;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (
      !Number.isSafeInteger(r.seq) ||
      !Number.isSafeInteger(r.time) ||
      r.time < 0 ||
      r.prevHash.length !== 32
    ) {
      return { ok: false, index: i, reason: 'bad-record' };
    }
    if (expectSeq !== undefined && r.seq !== expectSeq) return { ok: false, index: i, reason: 'seq-gap' };
    if (prev !== undefined && !bytesEqual(r.prevHash, prev))
      return { ok: false, index: i, reason: 'prev-hash' };
    const hash = auditHash(r.seq, r.time, r.prevHash, r.payload);
    if (!verify(hash, r.signature)) return { ok: false, index: i, reason: 'signature' };
    prev = hash;
    expectSeq = r.seq + 1;
    lastSeq = r.seq;
  }
  return { ok: true, lastSeq, lastHash: prev ?? AUDIT_GENESIS_HASH };
}

/** Options of {@link AuditLog.open}. */
export interface AuditLogOptions {
  /** Device key signature over a 32-byte hash (Ed25519 on the lock). */
  sign: (hash: Uint8Array) => Uint8Array;
  /** Milliseconds since the Unix epoch; injected so that tests and the trusted-time module control it. */
  clock: () => number;
  /** File name in the directory (default 'audit.log'). */
  name?: string;
  /** Most records kept (default {@link AUDIT_MAX_RECORDS}). */
  maxRecords?: number;
  /** Largest payload (default {@link AUDIT_MAX_PAYLOAD_BYTES}); larger is ERR_STORE_INVALID_ARGUMENT. */
  maxPayloadBytes?: number;
  /** Compact once the log passes this size (default 1 MiB). */
  compactAtBytes?: number;
}

/**
 * The lock's audit trail (ARCHITECTURE.md flow 4: every attempt, good or bad): sequenced, hash-chained,
 * signed records in an {@link AppendLog}; {@link AuditLog.append} resolves once the record is durable.
 *
 * Bounded to `maxRecords`. When full, the oldest records the cloud has acknowledged
 * ({@link AuditLog.acknowledge}) are dropped, down to three quarters of the bound so that the rewrite is
 * amortised; records not yet acknowledged are never dropped: if none can go, append is refused with
 * ERR_STORE_FULL and the caller raises it (an alert that the lock cannot reach the cloud).
 */
export class AuditLog {
  private readonly queue = new SerialQueue();

  private constructor(
    private readonly log: AppendLog,
    private readonly kept: AuditRecord[],
    private nextSeq: number,
    private lastHash: Uint8Array,
    private acked: number,
    private readonly opts: Required<Omit<AuditLogOptions, 'name'>>,
  ) {}

  static async open(fs: StoreFs, dir: string, options: AuditLogOptions): Promise<AuditLog> {
    const opts = {
      sign: options.sign,
      clock: options.clock,
      maxRecords: options.maxRecords ?? AUDIT_MAX_RECORDS,
      maxPayloadBytes: options.maxPayloadBytes ?? AUDIT_MAX_PAYLOAD_BYTES,
      compactAtBytes: options.compactAtBytes ?? 1024 * 1024,
    };
    checkInt(opts.maxRecords, 1, 10_000_000, 'maxRecords');
    const { log, records } = await AppendLog.open(fs, dir, options.name ?? 'audit.log', {
      magic: 'TDAU',
      maxRecordBytes: opts.maxPayloadBytes + 1024,
    });
    const kept: AuditRecord[] = [];
    let nextSeq = 1;
    let lastHash = AUDIT_GENESIS_HASH;
    let acked = 0;
    for (const rec of records) {
      const r = new ByteReader(rec, 'audit record');
      const type = r.u8();
      if (type === REC_ENTRY) {
        const seq = r.u64();
        const time = r.u64();
        const prevHash = r.bytes(32);
        const payload = r.bytes(r.u32());
        const signature = r.bytes(r.u16());
        if (seq !== nextSeq || !bytesEqual(prevHash, lastHash)) {
          throw new StoreError(
            'ERR_STORE_CORRUPT',
            `audit log: record ${seq} does not follow ${nextSeq - 1}`,
          );
        }
        const hash = auditHash(seq, time, prevHash, payload);
        kept.push({ seq, time, prevHash, payload, hash, signature });
        nextSeq = seq + 1;
        lastHash = hash;
      } else if (type === REC_ACK) {
        acked = Math.max(acked, r.u64());
      } else if (type === REC_HEAD) {
        nextSeq = r.u64();
        lastHash = r.bytes(32);
        acked = r.u64();
        kept.length = 0;
      } else {
        throw new StoreError('ERR_STORE_CORRUPT', `audit record: unknown type ${type}`);
      }
      r.end();
    }
    return new AuditLog(log, kept, nextSeq, lastHash, acked, opts);
  }

  /** Records kept, oldest first (a copy). */
  records(): AuditRecord[] {
    return this.kept.slice();
  }

  /** Records with seq > `afterSeq`, oldest first (what to send to the cloud). */
  since(afterSeq: number): AuditRecord[] {
    return this.kept.filter((r) => r.seq > afterSeq);
  }

  /** Sequence number of the last record written (0 before the first). */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** Hash of the last record written (the genesis hash before the first). */
  get headHash(): Uint8Array {
    return this.lastHash;
  }

  /** Highest sequence number the cloud has acknowledged. */
  get ackedThrough(): number {
    return this.acked;
  }

  /** Write, chain and sign one record; resolves with it once durable. */
  async append(payload: Uint8Array): Promise<AuditRecord> {
    if (payload.length > this.opts.maxPayloadBytes) {
      return Promise.reject(
        new StoreError(
          'ERR_STORE_INVALID_ARGUMENT',
          `audit payload of ${payload.length} bytes exceeds ${this.opts.maxPayloadBytes}`,
        ),
      );
    }
    return this.queue.run(async () => {
      if (this.kept.length >= this.opts.maxRecords) await this.rollOver();
      // A broken clock must not stop the audit trail: record 0 (the epoch) rather than refuse.
      const now = this.opts.clock();
      const time = Number.isFinite(now) && now > 0 ? Math.min(Math.floor(now), Number.MAX_SAFE_INTEGER) : 0;
      const seq = this.nextSeq;
      const prevHash = this.lastHash;
      const hash = auditHash(seq, time, prevHash, payload);
      const signature = this.opts.sign(hash);
      if (signature.length > 0xffff)
        throw new StoreError('ERR_STORE_INVALID_ARGUMENT', 'audit signature too long');
      const rec = new ByteWriter(64 + payload.length + signature.length)
        .u8(REC_ENTRY)
        .u64(seq)
        .u64(time)
        .bytes(prevHash)
        .u32(payload.length)
        .bytes(payload)
        .u16(signature.length)
        .bytes(signature)
        .finish();
      await this.log.append(rec);
      const record: AuditRecord = { seq, time, prevHash, payload: payload.slice(), hash, signature };
      this.kept.push(record);
      this.nextSeq = seq + 1;
      this.lastHash = hash;
      if (this.needsCompaction()) await this.compact();
      return record;
    });
  }

  /** Record that the cloud holds every record through `throughSeq`; resolves once durable. */
  async acknowledge(throughSeq: number): Promise<void> {
    checkInt(throughSeq, 0, Number.MAX_SAFE_INTEGER, 'throughSeq');
    return this.queue.run(async () => {
      if (throughSeq > this.lastSeq) {
        throw new StoreError(
          'ERR_STORE_INVALID_ARGUMENT',
          `ack of audit record ${throughSeq}, last written is ${this.lastSeq}`,
        );
      }
      if (throughSeq <= this.acked) return;
      await this.log.append(new ByteWriter(9).u8(REC_ACK).u64(throughSeq).finish());
      this.acked = throughSeq;
      if (this.needsCompaction()) await this.compact();
    });
  }

  close(): Promise<void> {
    return this.queue.run(() => this.log.close());
  }

  // Compact once the log has passed the bound and doubled since the last compaction. Kept records (up to
  // maxRecords, for READ_AUDIT) can alone exceed the bound; without the doubling rule every append would then
  // rewrite the whole file (measured: ~12 ms and over 1 MB written per request at 5,000 records).
  private lastCompactedBytes = 0;

  private needsCompaction(): boolean {
    const size = this.log.sizeBytes;
    return size > this.opts.compactAtBytes && size > 2 * this.lastCompactedBytes;
  }

  private async rollOver(): Promise<void> {
    let droppable = 0;
    while (droppable < this.kept.length && this.kept[droppable]!.seq <= this.acked) droppable++;
    if (droppable === 0) {
      throw new StoreError(
        'ERR_STORE_FULL',
        `audit log holds ${this.kept.length} records, none acknowledged by the cloud; raise it and deliver them`,
      );
    }
    const target = this.kept.length - Math.floor((this.opts.maxRecords * 3) / 4);
    await this.compact(Math.min(droppable, Math.max(1, target)));
  }

  /** Rewrite the log as HEAD + kept records, dropping the `drop` oldest (already acknowledged) ones. */
  private async compact(drop = 0): Promise<void> {
    const keep = this.kept.slice(drop);
    const first = keep[0];
    // HEAD restores the chain state as it was before the first kept record, so replay re-checks every link.
    const headSeq = first ? first.seq : this.nextSeq;
    const headHash = first ? first.prevHash : this.lastHash;
    const records = [new ByteWriter(49).u8(REC_HEAD).u64(headSeq).bytes(headHash).u64(this.acked).finish()];
    for (const r of keep) {
      records.push(
        new ByteWriter(64 + r.payload.length + r.signature.length)
          .u8(REC_ENTRY)
          .u64(r.seq)
          .u64(r.time)
          .bytes(r.prevHash)
          .u32(r.payload.length)
          .bytes(r.payload)
          .u16(r.signature.length)
          .bytes(r.signature)
          .finish(),
      );
    }
    await this.log.rewrite(records);
    this.kept.splice(0, drop);
    this.lastCompactedBytes = this.log.sizeBytes;
  }
}
