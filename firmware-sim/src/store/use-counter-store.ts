import { AppendLog } from './append-log.js';
import { ByteReader, ByteWriter, checkInt } from './bytes.js';
import { StoreError } from './errors.js';
import { SerialQueue } from './serial-queue.js';
import type { StoreFs } from './store-fs.js';
import { checkExp, checkTokenId, keyBytes, tokenKey } from './token-id.js';

/** Default bound on counted tokens. */
export const USE_COUNTER_MAX_ENTRIES = 10_000;

const REC_SET = 0x01; // idLen u8 | id | count u32 | exp u32
const REC_PRUNE = 0x02; // now u32: drop entries with exp <= now

/** Options of {@link UseCounterStore.open}. */
export interface UseCounterStoreOptions {
  /** File name in the directory (default 'use-counters.log'). */
  name?: string;
  /** Most tokens counted at once (default {@link USE_COUNTER_MAX_ENTRIES}); more is ERR_STORE_FULL. */
  maxEntries?: number;
  /** Compact the log once it is larger than this (default 64 KiB). */
  compactAtBytes?: number;
}

/** Outcome of {@link UseCounterStore.consume}. */
export interface ConsumeResult {
  /** True when a use was counted (durably) and the caller may act. */
  allowed: boolean;
  /** The count after this call. */
  count: number;
}

interface Entry {
  count: number;
  exp: number;
}

/**
 * Per-token use counts for tokens limited to a number of uses. A use is durable before the caller acts: the
 * lock counts a use, then opens, so a power cut between the two loses an opening, never a count.
 * Entries carry their token's expiry (Unix seconds) and are dropped by {@link UseCounterStore.prune} once the
 * token could not be used anyway; call it only with trusted time, since a clock set back after a power cut
 * would make an expired token look valid again while its count is gone.
 *
 * On disk: an {@link AppendLog} of SET records (absolute count, so a replay is idempotent) and PRUNE records,
 * compacted to one SET per live entry when it passes `compactAtBytes`.
 */
export class UseCounterStore {
  private readonly queue = new SerialQueue();

  private constructor(
    private readonly log: AppendLog,
    private readonly entries: Map<string, Entry>,
    private readonly maxEntries: number,
    private readonly compactAtBytes: number,
  ) {}

  static async open(
    fs: StoreFs,
    dir: string,
    options: UseCounterStoreOptions = {},
  ): Promise<UseCounterStore> {
    const { log, records } = await AppendLog.open(fs, dir, options.name ?? 'use-counters.log', {
      magic: 'TDUC',
    });
    const entries = new Map<string, Entry>();
    for (const rec of records) {
      const r = new ByteReader(rec, 'use counter record');
      const type = r.u8();
      if (type === REC_SET) {
        const id = r.bytes(r.u8());
        const count = r.u32();
        const exp = r.u32();
        entries.set(tokenKey(id), { count, exp });
      } else if (type === REC_PRUNE) {
        dropExpired(entries, r.u32());
      } else {
        throw new StoreError('ERR_STORE_CORRUPT', `use counter record: unknown type ${type}`);
      }
      r.end();
    }
    return new UseCounterStore(
      log,
      entries,
      options.maxEntries ?? USE_COUNTER_MAX_ENTRIES,
      options.compactAtBytes ?? 64 * 1024,
    );
  }

  /** Uses counted for `id` (0 if none). */
  get(id: Uint8Array): number {
    return this.entries.get(tokenKey(id))?.count ?? 0;
  }

  /** Tokens counted. */
  get size(): number {
    return this.entries.size;
  }

  /** Count one use of `id` (token expiry `exp`, Unix seconds); resolves with the new count once durable. */
  async increment(id: Uint8Array, exp: number): Promise<number> {
    return (await this.consume(id, exp, Number.MAX_SAFE_INTEGER)).count;
  }

  /**
   * Count a use unless `maxUses` are already counted: check and increment in one step, so that two riders
   * racing on one token cannot both get the last use. Resolves once the count is durable.
   */
  async consume(id: Uint8Array, exp: number, maxUses: number): Promise<ConsumeResult> {
    checkTokenId(id);
    checkExp(exp);
    checkInt(maxUses, 0, Number.MAX_SAFE_INTEGER, 'maxUses');
    return this.queue.run(async () => {
      const key = tokenKey(id);
      const cur = this.entries.get(key);
      const count = cur?.count ?? 0;
      if (count >= maxUses) return { allowed: false, count };
      if (!cur && this.entries.size >= this.maxEntries) {
        throw new StoreError(
          'ERR_STORE_FULL',
          `use counters: ${this.maxEntries} tokens counted; prune expired ones`,
        );
      }
      if (count >= 0xffffffff)
        throw new StoreError('ERR_STORE_FULL', 'use counter: count at its 2^32-1 maximum');
      const next = { count: count + 1, exp: Math.max(exp, cur?.exp ?? 0) };
      await this.log.append(encodeSet(id, next));
      this.entries.set(key, next);
      await this.maybeCompact();
      return { allowed: true, count: next.count };
    });
  }

  /** Drop entries whose token expired at or before `now` (Unix seconds, trusted time); resolves with how many. */
  async prune(now: number): Promise<number> {
    checkExp(now);
    return this.queue.run(async () => {
      let expired = 0;
      for (const e of this.entries.values()) if (e.exp <= now) expired++;
      if (expired === 0) return 0;
      await this.log.append(new ByteWriter(5).u8(REC_PRUNE).u32(now).finish());
      dropExpired(this.entries, now);
      await this.maybeCompact();
      return expired;
    });
  }

  close(): Promise<void> {
    return this.queue.run(() => this.log.close());
  }

  // Compact only once the log has doubled since the last compaction as well as passed the bound: when the
  // live entries alone fill the bound, a rewrite on every write would wear the SD card out (amortised O(1)).
  private lastCompactedBytes = 0;

  private async maybeCompact(): Promise<void> {
    const size = this.log.sizeBytes;
    if (size <= this.compactAtBytes || size <= 2 * this.lastCompactedBytes) return;
    const records: Uint8Array[] = [];
    for (const [key, e] of this.entries) records.push(encodeSet(keyBytes(key), e));
    await this.log.rewrite(records);
    this.lastCompactedBytes = this.log.sizeBytes;
  }
}

function encodeSet(id: Uint8Array, e: Entry): Uint8Array {
  return new ByteWriter(10 + id.length).u8(REC_SET).u8(id.length).bytes(id).u32(e.count).u32(e.exp).finish();
}

function dropExpired(entries: Map<string, Entry>, now: number): void {
  for (const [k, e] of entries) if (e.exp <= now) entries.delete(k);
}
