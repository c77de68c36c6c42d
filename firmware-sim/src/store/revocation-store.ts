import { AppendLog } from './append-log.js';
import { ByteReader, ByteWriter, checkInt } from './bytes.js';
import { StoreError } from './errors.js';
import { SerialQueue } from './serial-queue.js';
import type { StoreFs } from './store-fs.js';
import { MAX_TOKEN_ID_BYTES, checkExp, checkTokenId, keyBytes, tokenKey } from './token-id.js';

/** Default bound on revoked tokens held at once. */
export const REVOCATION_MAX_ENTRIES = 200_000;
/** Bytes on disk per revoked token inside a snapshot: idLen u8 + id + exp u32 (frame overhead amortised). */
export const REVOCATION_ENTRY_OVERHEAD_BYTES = 5;

const REC_SNAPSHOT = 0x10; // version u64 | count u32   (starts a full state; entries follow in ENTRIES records)
const REC_ENTRIES = 0x11; // n u16 | n × (idLen u8 | id | exp u32)
const REC_DELTA = 0x12; // base u64 | version u64 | nAdd u32 | adds | nRemove u32 | n × (idLen u8 | id)
const REC_PRUNE = 0x13; // now u32
const ENTRIES_PER_RECORD = 4096;

/** One revoked token: its id and its own expiry (Unix seconds), after which it needs no revocation entry. */
export interface RevokedToken {
  id: Uint8Array;
  exp: number;
}

/** A revocation update relative to `baseVersion`. */
export interface RevocationDelta {
  baseVersion: number;
  version: number;
  add: readonly RevokedToken[];
  remove?: readonly Uint8Array[];
}

/** Options of {@link RevocationStore.open}. */
export interface RevocationStoreOptions {
  /** File name in the directory (default 'revocations.log'). */
  name?: string;
  /** Most entries held (default {@link REVOCATION_MAX_ENTRIES}); an update that would exceed it is ERR_STORE_FULL. */
  maxEntries?: number;
  /** Compact once the log passes this size and twice its last snapshot (default 256 KiB). */
  compactAtBytes?: number;
}

/**
 * The set of revoked token ids (ARCHITECTURE.md flow 6), with a version that never goes backwards: an update
 * whose version is not newer than the stored one is refused with ERR_STORE_STALE_VERSION, a delta whose base
 * is not the stored version with ERR_STORE_BASE_MISMATCH. Signature checks of updates happen before this
 * store (protocol/); it stores what it is given.
 *
 * In memory: a Map keyed by the id's latin1 string, so {@link RevocationStore.has} is one hash lookup.
 * On disk: an {@link AppendLog}. A full replace atomically rewrites the log as SNAPSHOT + ENTRIES records
 * (5 + id length bytes per entry); a delta is one appended record, applied all or nothing; prune appends a
 * 5-byte record. A cut leaves either the state before or after the update, never a mix or an older version.
 */
export class RevocationStore {
  private readonly queue = new SerialQueue();
  private lastSnapshotBytes: number;

  private constructor(
    private readonly log: AppendLog,
    private readonly entries: Map<string, number>,
    private currentVersion: number,
    private readonly maxEntries: number,
    private readonly compactAtBytes: number,
  ) {
    this.lastSnapshotBytes = log.sizeBytes;
  }

  static async open(
    fs: StoreFs,
    dir: string,
    options: RevocationStoreOptions = {},
  ): Promise<RevocationStore> {
    const maxEntries = options.maxEntries ?? REVOCATION_MAX_ENTRIES;
    const { log, records } = await AppendLog.open(fs, dir, options.name ?? 'revocations.log', {
      magic: 'TDRV',
      maxRecordBytes: 64 + maxEntries * (MAX_TOKEN_ID_BYTES + REVOCATION_ENTRY_OVERHEAD_BYTES),
    });
    const entries = new Map<string, number>();
    let version = 0;
    for (const rec of records) {
      const r = new ByteReader(rec, 'revocation record');
      const type = r.u8();
      if (type === REC_SNAPSHOT) {
        version = r.u64();
        r.u32();
        entries.clear();
      } else if (type === REC_ENTRIES) {
        for (let n = r.u16(); n > 0; n--) {
          const { id, exp } = readEntry(r);
          entries.set(tokenKey(id), exp);
        }
      } else if (type === REC_DELTA) {
        const base = r.u64();
        const next = r.u64();
        // Only deltas on top of the stored version are ever appended; anything else is not our log.
        if (base !== version || next <= base) {
          throw new StoreError(
            'ERR_STORE_CORRUPT',
            `revocation log: delta ${base}->${next} on version ${version}`,
          );
        }
        for (let n = r.u32(); n > 0; n--) {
          const { id, exp } = readEntry(r);
          entries.set(tokenKey(id), exp);
        }
        for (let n = r.u32(); n > 0; n--) entries.delete(tokenKey(r.bytes(r.u8())));
        version = next;
      } else if (type === REC_PRUNE) {
        dropExpired(entries, r.u32());
      } else {
        throw new StoreError('ERR_STORE_CORRUPT', `revocation record: unknown type ${type}`);
      }
      r.end();
    }
    return new RevocationStore(log, entries, version, maxEntries, options.compactAtBytes ?? 256 * 1024);
  }

  /** The version of the stored set (0 before the first update): what the lock acknowledges to the cloud. */
  get version(): number {
    return this.currentVersion;
  }

  /** Revoked tokens held. */
  get size(): number {
    return this.entries.size;
  }

  /** True when `id` is revoked. One Map lookup; no I/O. */
  has(id: Uint8Array): boolean {
    return this.entries.has(tokenKey(id));
  }

  /** Every entry (for compaction, diagnostics and tests). */
  *list(): IterableIterator<RevokedToken> {
    for (const [key, exp] of this.entries) yield { id: keyBytes(key), exp };
  }

  /** Replace the whole set with `tokens` at `version` (> stored version); resolves once durable. */
  async replace(version: number, tokens: readonly RevokedToken[]): Promise<void> {
    checkInt(version, 1, Number.MAX_SAFE_INTEGER, 'revocation version');
    for (const t of tokens) {
      checkTokenId(t.id);
      checkExp(t.exp);
    }
    return this.queue.run(async () => {
      this.checkNewer(version);
      const next = new Map<string, number>();
      for (const t of tokens) next.set(tokenKey(t.id), t.exp);
      if (next.size > this.maxEntries) {
        throw new StoreError(
          'ERR_STORE_FULL',
          `revocations: ${next.size} entries exceed the ${this.maxEntries} limit`,
        );
      }
      await this.writeSnapshot(version, next);
      this.entries.clear();
      for (const [k, exp] of next) this.entries.set(k, exp);
      this.currentVersion = version;
    });
  }

  /** Apply `delta` on top of the stored version; resolves once durable. Removals apply after additions. */
  async applyDelta(delta: RevocationDelta): Promise<void> {
    checkInt(delta.baseVersion, 0, Number.MAX_SAFE_INTEGER, 'delta base version');
    checkInt(delta.version, 1, Number.MAX_SAFE_INTEGER, 'delta version');
    const remove = delta.remove ?? [];
    for (const t of delta.add) {
      checkTokenId(t.id);
      checkExp(t.exp);
    }
    for (const id of remove) checkTokenId(id);
    return this.queue.run(async () => {
      this.checkNewer(delta.version);
      if (delta.baseVersion !== this.currentVersion) {
        throw new StoreError(
          'ERR_STORE_BASE_MISMATCH',
          `revocation delta applies to version ${delta.baseVersion}, stored version is ${this.currentVersion}: fetch a full update`,
        );
      }
      const removeKeys = new Set(remove.map(tokenKey));
      let size = this.entries.size;
      for (const t of delta.add) {
        const k = tokenKey(t.id);
        if (!this.entries.has(k) && !removeKeys.has(k)) size++;
      }
      for (const k of removeKeys) if (this.entries.has(k)) size--;
      if (size > this.maxEntries) {
        throw new StoreError(
          'ERR_STORE_FULL',
          `revocations: ${size} entries would exceed the ${this.maxEntries} limit`,
        );
      }
      const w = new ByteWriter(32 + delta.add.length * 24)
        .u8(REC_DELTA)
        .u64(delta.baseVersion)
        .u64(delta.version);
      w.u32(delta.add.length);
      for (const t of delta.add) writeEntry(w, t.id, t.exp);
      w.u32(remove.length);
      for (const id of remove) w.u8(id.length).bytes(id);
      await this.log.append(w.finish());
      for (const t of delta.add) this.entries.set(tokenKey(t.id), t.exp);
      for (const k of removeKeys) this.entries.delete(k);
      this.currentVersion = delta.version;
      await this.maybeCompact();
    });
  }

  /** Drop entries whose token expired at or before `now` (Unix seconds, trusted time); resolves with how many. */
  async prune(now: number): Promise<number> {
    checkExp(now);
    return this.queue.run(async () => {
      let expired = 0;
      for (const exp of this.entries.values()) if (exp <= now) expired++;
      if (expired === 0) return 0;
      await this.log.append(new ByteWriter(5).u8(REC_PRUNE).u32(now).finish());
      dropExpired(this.entries, now);
      await this.maybeCompact();
      return expired;
    });
  }

  /** Bytes the log occupies on disk now. */
  get diskBytes(): number {
    return this.log.sizeBytes;
  }

  close(): Promise<void> {
    return this.queue.run(() => this.log.close());
  }

  private checkNewer(version: number): void {
    if (version <= this.currentVersion) {
      throw new StoreError(
        'ERR_STORE_STALE_VERSION',
        `revocation version ${version} is not newer than the stored version ${this.currentVersion}`,
      );
    }
  }

  private async maybeCompact(): Promise<void> {
    const size = this.log.sizeBytes;
    if (size <= this.compactAtBytes || size <= 2 * this.lastSnapshotBytes) return;
    await this.writeSnapshot(this.currentVersion, this.entries);
  }

  private async writeSnapshot(version: number, entries: Map<string, number>): Promise<void> {
    const records = [new ByteWriter(13).u8(REC_SNAPSHOT).u64(version).u32(entries.size).finish()];
    let w: ByteWriter | undefined;
    let n = 0;
    const flush = (): void => {
      if (!w) return;
      const rec = w.finish();
      new DataView(rec.buffer).setUint16(1, n);
      records.push(rec);
      w = undefined;
      n = 0;
    };
    for (const [key, exp] of entries) {
      w ??= new ByteWriter(ENTRIES_PER_RECORD * 24).u8(REC_ENTRIES).u16(0);
      writeEntry(w, keyBytes(key), exp);
      if (++n === ENTRIES_PER_RECORD) flush();
    }
    flush();
    await this.log.rewrite(records);
    this.lastSnapshotBytes = this.log.sizeBytes;
  }
}

function writeEntry(w: ByteWriter, id: Uint8Array, exp: number): void {
  w.u8(id.length).bytes(id).u32(exp);
}

function readEntry(r: ByteReader): RevokedToken {
  const len = r.u8();
  if (len < 1 || len > MAX_TOKEN_ID_BYTES)
    throw new StoreError('ERR_STORE_CORRUPT', `revocation entry: id of ${len} bytes`);
  const id = r.bytes(len);
  return { id, exp: r.u32() };
}

function dropExpired(entries: Map<string, number>, now: number): void {
  for (const [k, exp] of entries) if (exp <= now) entries.delete(k);
}
