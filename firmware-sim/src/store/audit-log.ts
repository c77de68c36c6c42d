import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { AppendLog } from './append-log.js';
import { ByteReader, ByteWriter, checkInt, putU64 } from './bytes.js';
import { StoreError, isStoreError } from './errors.js';
import { SerialQueue } from './serial-queue.js';
import type { StoreFs } from './store-fs.js';

/** Default bound on records kept on the lock. */
export const AUDIT_MAX_RECORDS = 10_000;
/** Default bound on one record (a signed audit record is at most 512 bytes, SPEC.md [TANDEM-MQTT-6]). */
export const AUDIT_MAX_PAYLOAD_BYTES = 4096;
/** The chain head before the first record ever written: 32 zero bytes ([TANDEM-MQTT-7]). */
export const AUDIT_GENESIS_HASH: Uint8Array = new Uint8Array(32);

// Format 2 ([TANDEM-AUDIT-2]): the log keeps the device-signed records themselves.
const REC_RECORD = 0x28; // seq u64 | record bytes (the rest of the frame)
const REC_HEAD = 0x29; // nextSeq u64 | chainHead 32  (first record after a compaction or a migration)
// Format 1 (before [TANDEM-AUDIT-2]): locally signed entries, migrated on open ([TANDEM-AUDIT-4]).
const V1_ENTRY = 0x20; // seq u64 | time u64 | prevHash 32 | payloadLen u32 | payload | sigLen u16 | sig
const V1_ACK = 0x21; // throughSeq u64
const V1_HEAD = 0x22; // nextSeq u64 | lastHash 32 | ackedThrough u64

/** One record of the log: its local sequence number and the record's bytes, exactly as signed. */
export interface AuditRecord {
  /** 1, 2, 3, ... in the order written; never reused (compaction and migration keep counting). */
  readonly seq: number;
  /** The record (on the lock: a device-signed audit record, SPEC.md [TANDEM-MQTT-6]). */
  readonly payload: Uint8Array;
}

/** SHA-256 of a record's bytes: what the next record names as its predecessor ([TANDEM-MQTT-7]). */
export function recordHash(payload: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(payload).digest());
}

/** Options of {@link AuditLog.open}. */
export interface AuditLogOptions {
  /** File name in the directory (default 'audit.log'). */
  name?: string;
  /** Most records kept (default {@link AUDIT_MAX_RECORDS}); the oldest go first. */
  maxRecords?: number;
  /** Largest record (default {@link AUDIT_MAX_PAYLOAD_BYTES}); larger is ERR_STORE_INVALID_ARGUMENT. */
  maxPayloadBytes?: number;
  /** Compact once the log passes this size (default 1 MiB). */
  compactAtBytes?: number;
  /**
   * Migration of a format-1 log ([TANDEM-AUDIT-4]): given the payload of one of its entries, newest first, the
   * chain head that entry noted, if any. Without it a format-1 log is migrated with no chain head.
   */
  legacyChainHead?: (payload: Uint8Array) => Uint8Array | undefined;
}

/**
 * The lock's local audit trail (ARCHITECTURE.md flow 4; SPEC.md [TANDEM-AUDIT-2]): the records it signed for
 * the cloud, kept in the order written, in an {@link AppendLog}. The log signs nothing and chains nothing
 * itself: each record carries its device signature and the hash of the one before ([TANDEM-MQTT-7]), so
 * the log only keeps them. {@link AuditLog.append} resolves once the record is durable.
 *
 * Bounded to `maxRecords`: when full, the oldest records are dropped, down to three quarters of the bound so
 * that the rewrite is amortised. Delivery is the outbox's job (a record waits there until the cloud holds
 * it), so nothing here waits for an acknowledgement and an append is never refused for lack of room.
 *
 * A log written in format 1 (each entry signed on its own) is migrated on open ([TANDEM-AUDIT-4]): kept as
 * `<name>.v1`, replaced by a format-2 log whose HEAD carries the chain head the old entries noted.
 */
export class AuditLog {
  private readonly queue = new SerialQueue();
  private head: Uint8Array | undefined;

  private constructor(
    private log: AppendLog,
    private readonly kept: AuditRecord[],
    private nextSeq: number,
    /** Chain head before the first kept record (from HEAD), or the genesis hash. */
    private baseHead: Uint8Array,
    private readonly opts: Required<Omit<AuditLogOptions, 'name' | 'legacyChainHead'>>,
    /** True when this open migrated a format-1 log. */
    readonly migrated: boolean,
  ) {}

  static async open(fs: StoreFs, dir: string, options: AuditLogOptions = {}): Promise<AuditLog> {
    const opts = {
      maxRecords: options.maxRecords ?? AUDIT_MAX_RECORDS,
      maxPayloadBytes: options.maxPayloadBytes ?? AUDIT_MAX_PAYLOAD_BYTES,
      compactAtBytes: options.compactAtBytes ?? 1024 * 1024,
    };
    checkInt(opts.maxRecords, 1, 10_000_000, 'maxRecords');
    const name = options.name ?? 'audit.log';
    const logOptions = { magic: 'TDAU', maxRecordBytes: opts.maxPayloadBytes + 1024 };
    await fs.mkdir(dir);
    await finishMigration(fs, dir, name);
    let { log, records } = await AppendLog.open(fs, dir, name, logOptions);
    let migrated = false;
    if (records.length > 0 && isV1(records[0]!)) {
      await log.close();
      await migrate(fs, dir, name, records, options.legacyChainHead, logOptions);
      ({ log, records } = await AppendLog.open(fs, dir, name, logOptions));
      migrated = true;
    }
    const kept: AuditRecord[] = [];
    let nextSeq = 1;
    let baseHead = AUDIT_GENESIS_HASH;
    for (const rec of records) {
      const r = new ByteReader(rec, 'audit record');
      const type = r.u8();
      if (type === REC_RECORD) {
        const seq = r.u64();
        if (seq !== nextSeq) {
          throw new StoreError(
            'ERR_STORE_CORRUPT',
            `audit log: record ${seq} does not follow ${nextSeq - 1}`,
          );
        }
        kept.push({ seq, payload: rec.subarray(9) });
        nextSeq = seq + 1;
        continue;
      }
      if (type !== REC_HEAD) {
        throw new StoreError(
          'ERR_STORE_CORRUPT',
          `audit log: unknown record type ${type} (a format-1 entry after format-2 records?)`,
        );
      }
      nextSeq = r.u64();
      baseHead = r.bytes(32);
      kept.length = 0;
      r.end();
    }
    return new AuditLog(log, kept, nextSeq, baseHead, opts, migrated);
  }

  /** Records kept, oldest first (a copy of the list; the records themselves are shared, do not modify). */
  records(): AuditRecord[] {
    return this.kept.slice();
  }

  /** Records with seq > `afterSeq`, oldest first (READ_AUDIT). */
  since(afterSeq: number): AuditRecord[] {
    const first = this.kept[0]?.seq ?? this.nextSeq;
    return this.kept.slice(Math.max(0, afterSeq + 1 - first));
  }

  /** Sequence number of the last record written (0 before the first). */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /**
   * SHA-256 of the last record written ([TANDEM-MQTT-7]): the previous hash of the next one. After a
   * compaction that dropped every record, or a migration, the head the HEAD record carries; the genesis hash
   * for a new log.
   */
  get chainHead(): Uint8Array {
    const last = this.kept.at(-1);
    if (last === undefined) return this.baseHead;
    this.head ??= recordHash(last.payload);
    return this.head;
  }

  /**
   * Keep one record; resolves with it once durable. The log keeps `record` itself (no copy): the caller
   * must not modify it.
   */
  append(record: Uint8Array): Promise<AuditRecord> {
    if (record.length > this.opts.maxPayloadBytes) {
      return Promise.reject(
        new StoreError(
          'ERR_STORE_INVALID_ARGUMENT',
          `audit record of ${record.length} bytes exceeds ${this.opts.maxPayloadBytes}`,
        ),
      );
    }
    return this.queue.run(async () => {
      if (this.kept.length >= this.opts.maxRecords) await this.roll();
      const seq = this.nextSeq;
      // encodeRecord's bytes, framed in one buffer: the 9 header bytes, then the record.
      const head = new Uint8Array(9);
      head[0] = REC_RECORD;
      putU64(head, 1, seq);
      await this.log.appendRecord(head, record);
      const kept: AuditRecord = { seq, payload: record };
      this.kept.push(kept);
      this.nextSeq = seq + 1;
      this.head = undefined;
      if (this.needsCompaction()) await this.compact(0);
      return kept;
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

  /** Full: drop the oldest records down to three quarters of the bound (amortised). */
  private roll(): Promise<void> {
    return this.compact(this.kept.length - Math.floor((this.opts.maxRecords * 3) / 4));
  }

  /** Rewrite the log as HEAD + kept records, dropping the `drop` oldest. */
  private async compact(drop: number): Promise<void> {
    const keep = this.kept.slice(drop);
    // HEAD carries the chain head before the first kept record, so that the chain continues after a reboot
    // even when no record is left.
    const dropped = this.kept[drop - 1];
    const base = dropped === undefined ? this.baseHead : recordHash(dropped.payload);
    const headSeq = keep[0]?.seq ?? this.nextSeq;
    const records = [encodeHead(headSeq, base)];
    for (const r of keep) records.push(encodeRecord(r.seq, r.payload));
    await this.log.rewrite(records);
    this.kept.splice(0, drop);
    this.baseHead = base;
    this.lastCompactedBytes = this.log.sizeBytes;
  }
}

function encodeRecord(seq: number, record: Uint8Array): Uint8Array {
  return new ByteWriter(9 + record.length).u8(REC_RECORD).u64(seq).bytes(record).finish();
}

function encodeHead(nextSeq: number, chainHead: Uint8Array): Uint8Array {
  return new ByteWriter(41).u8(REC_HEAD).u64(nextSeq).bytes(chainHead).finish();
}

const isV1 = (rec: Uint8Array): boolean => rec[0] === V1_ENTRY || rec[0] === V1_ACK || rec[0] === V1_HEAD;

/**
 * [TANDEM-AUDIT-4] A format-1 log becomes a format-2 log: the new log (HEAD with the chain head the newest
 * old entry noted, numbering on after the old entries) is written complete as `<name>.new`, then the old log
 * is renamed `<name>.v1` (kept for the owner) and the new one takes its name. A power cut at any point
 * leaves the old log in place (migrated again at the next open) or a complete `<name>.new` whose rename
 * {@link finishMigration} completes.
 */
async function migrate(
  fs: StoreFs,
  dir: string,
  name: string,
  records: readonly Uint8Array[],
  legacyChainHead: ((payload: Uint8Array) => Uint8Array | undefined) | undefined,
  logOptions: { magic: string; maxRecordBytes: number },
): Promise<void> {
  const payloads: Uint8Array[] = [];
  let nextSeq = 1;
  for (const rec of records) {
    const r = new ByteReader(rec, 'format-1 audit record');
    const type = r.u8();
    if (type === V1_ENTRY) {
      nextSeq = r.u64() + 1;
      r.u64();
      r.bytes(32);
      payloads.push(r.bytes(r.u32()));
      r.bytes(r.u16());
      r.end();
    } else if (type === V1_HEAD) {
      nextSeq = r.u64();
    } else if (type !== V1_ACK) {
      throw new StoreError('ERR_STORE_CORRUPT', `format-1 audit log: unknown record type ${type}`);
    }
  }
  let head: Uint8Array | undefined;
  for (let i = payloads.length - 1; i >= 0 && head === undefined; i--) {
    head = legacyChainHead?.(payloads[i]!);
    if (head !== undefined && head.length !== 32) head = undefined;
  }
  const path = posix.join(dir, name);
  await removeIfPresent(fs, `${path}.new`);
  const fresh = await AppendLog.open(fs, dir, `${name}.new`, logOptions);
  await fresh.log.append(encodeHead(nextSeq, head ?? AUDIT_GENESIS_HASH));
  await fresh.log.close();
  await fs.rename(path, `${path}.v1`);
  await fs.rename(`${path}.new`, path);
  await fs.fsyncDir(dir);
}

/** Completes a migration cut between its two renames; removes a `<name>.new` left before them. */
async function finishMigration(fs: StoreFs, dir: string, name: string): Promise<void> {
  const names = await fs.readdir(dir);
  if (!names.includes(`${name}.new`)) return;
  const path = posix.join(dir, name);
  if (names.includes(name)) {
    // The old log is still in place: the migration starts again from it.
    await fs.unlink(`${path}.new`);
  } else {
    await fs.rename(`${path}.new`, path);
  }
  await fs.fsyncDir(dir);
}

async function removeIfPresent(fs: StoreFs, path: string): Promise<void> {
  try {
    await fs.unlink(path);
  } catch (err) {
    if (!isStoreError(err, 'ERR_STORE_NOT_FOUND')) throw err;
  }
}
