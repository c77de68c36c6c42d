import { AppendLog } from './append-log.js';
import { ByteReader, ByteWriter, checkInt } from './bytes.js';
import { StoreError } from './errors.js';
import { SerialQueue } from './serial-queue.js';
import type { StoreFs } from './store-fs.js';
import { checkExp, checkTokenId, keyBytes, tokenKey } from './token-id.js';

/** Default bound on counted tokens. */
export const USE_COUNTER_MAX_ENTRIES = 10_000;
/**
 * Default bound on counted tokens of one group (one root token and every link under it, SPEC.md
 * [TANDEM-USES-3]): 10,000 / 256 = 39 delegating roots at their bound before the store is full.
 */
export const USE_COUNTER_MAX_PER_GROUP = 256;

const REC_SET = 0x01; // idLen u8 | id | count u32 | exp u32
const REC_PRUNE = 0x02; // now u32: drop entries with exp <= now
const REC_SET_GROUP = 0x03; // idLen u8 | id | count u32 | exp u32 | groupLen u8 | group
const REC_DROP_GROUP = 0x04; // groupLen u8 | group: drop every entry of the group (its root was revoked)

/** Options of {@link UseCounterStore.open}. */
export interface UseCounterStoreOptions {
  /** File name in the directory (default 'use-counters.log'). */
  name?: string;
  /** Most tokens counted at once (default {@link USE_COUNTER_MAX_ENTRIES}); more is ERR_STORE_FULL. */
  maxEntries?: number;
  /** Compact the log once it is larger than this (default 64 KiB). */
  compactAtBytes?: number;
  /** Most tokens of one group (default {@link USE_COUNTER_MAX_PER_GROUP}); more is refused as `quota`. */
  maxPerGroup?: number;
}

/** Outcome of {@link UseCounterStore.consume}. */
export interface ConsumeResult {
  /** True when a use was counted (durably) and the caller may act. */
  allowed: boolean;
  /** The count after this call. */
  count: number;
  /**
   * Why a use was not counted: `exhausted` (the count is at `maxUses`) or `quota` (a new entry would take
   * its group past `maxPerGroup`, SPEC.md [TANDEM-USES-3]).
   */
  refused?: 'exhausted' | 'quota';
}

/** One token to count, for {@link UseCounterStore.consumeAll}. */
export interface ConsumeItem {
  readonly id: Uint8Array;
  /** The token's expiry, Unix seconds. */
  readonly exp: number;
  readonly maxUses: number;
  /** The quota group ([TANDEM-USES-3]): the id of the chain's root token. */
  readonly group?: Uint8Array;
}

/** Outcome of {@link UseCounterStore.consumeAll}. */
export type ConsumeAllResult =
  | { readonly allowed: true; /** Each token's count after this call. */ readonly counts: readonly number[] }
  | {
      readonly allowed: false;
      /** The first token refused; nothing was counted. */
      readonly index: number;
      readonly count: number;
      readonly refused: 'exhausted' | 'quota';
    };

interface Entry {
  count: number;
  exp: number;
  /** tokenKey of the group (the root token's id), when counted under one. */
  group?: string;
}

/**
 * Per-token use counts for tokens limited to a number of uses. A use is durable before the caller acts: the
 * lock counts a use, then opens, so a power cut between the two loses an opening, never a count.
 * Entries carry their token's expiry (Unix seconds) and are dropped by {@link UseCounterStore.prune} once the
 * token could not be used anyway; call it only with trusted time, since a clock set back after a power cut
 * would make an expired token look valid again while its count is gone.
 *
 * Entries may belong to a group (the lock uses the id of the chain's root token, SPEC.md [TANDEM-USES-3]): a
 * group holds at most `maxPerGroup` entries, so that the holders of one root cannot fill the store for
 * everyone, and {@link UseCounterStore.dropGroups} frees a group at once (its root was revoked).
 *
 * On disk: an {@link AppendLog} of SET records (absolute count, so a replay is idempotent; SET_GROUP adds the
 * group), PRUNE and DROP_GROUP records, compacted to one SET per live entry when it passes `compactAtBytes`.
 */
export class UseCounterStore {
  private readonly queue = new SerialQueue();

  private constructor(
    private readonly log: AppendLog,
    private readonly entries: Map<string, Entry>,
    /** Entries per group (tokenKey of the group), kept in step with `entries`. */
    private readonly groups: Map<string, number>,
    private readonly maxEntries: number,
    private readonly maxGroup: number,
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
      if (type === REC_SET || type === REC_SET_GROUP) {
        const id = r.bytes(r.u8());
        const count = r.u32();
        const exp = r.u32();
        const group = type === REC_SET_GROUP ? tokenKey(r.bytes(r.u8())) : undefined;
        entries.set(tokenKey(id), group === undefined ? { count, exp } : { count, exp, group });
      } else if (type === REC_PRUNE) {
        dropExpired(entries, r.u32());
      } else if (type === REC_DROP_GROUP) {
        dropGroup(entries, tokenKey(r.bytes(r.u8())));
      } else {
        throw new StoreError('ERR_STORE_CORRUPT', `use counter record: unknown type ${type}`);
      }
      r.end();
    }
    const groups = new Map<string, number>();
    for (const e of entries.values()) if (e.group !== undefined) addTo(groups, e.group, 1);
    return new UseCounterStore(
      log,
      entries,
      groups,
      options.maxEntries ?? USE_COUNTER_MAX_ENTRIES,
      options.maxPerGroup ?? USE_COUNTER_MAX_PER_GROUP,
      options.compactAtBytes ?? 64 * 1024,
    );
  }

  /** Tokens counted under `group` (0 if none). */
  groupSize(group: Uint8Array): number {
    return this.groups.get(tokenKey(group)) ?? 0;
  }

  /** Most tokens counted under one group. */
  get maxPerGroup(): number {
    return this.maxGroup;
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
   *
   * `group` (1..32 bytes: the id of the chain's root token) bounds what one root's holders can make the lock
   * store ([TANDEM-USES-3]): a token new to the store is refused (`refused: 'quota'`) once its group holds
   * `maxPerGroup` entries. An entry keeps the group it was first counted under.
   */
  async consume(id: Uint8Array, exp: number, maxUses: number, group?: Uint8Array): Promise<ConsumeResult> {
    checkTokenId(id);
    checkExp(exp);
    checkInt(maxUses, 0, Number.MAX_SAFE_INTEGER, 'maxUses');
    if (group !== undefined) checkTokenId(group);
    return this.queue.run(async () => {
      const key = tokenKey(id);
      const cur = this.entries.get(key);
      const count = cur?.count ?? 0;
      if (count >= maxUses) return { allowed: false, count, refused: 'exhausted' };
      const groupKey = cur === undefined ? (group === undefined ? undefined : tokenKey(group)) : cur.group;
      if (cur === undefined && groupKey !== undefined && (this.groups.get(groupKey) ?? 0) >= this.maxGroup) {
        return { allowed: false, count, refused: 'quota' };
      }
      if (!cur && this.entries.size >= this.maxEntries) {
        throw new StoreError(
          'ERR_STORE_FULL',
          `use counters: ${this.maxEntries} tokens counted; prune expired ones`,
        );
      }
      if (count >= 0xffffffff)
        throw new StoreError('ERR_STORE_FULL', 'use counter: count at its 2^32-1 maximum');
      const next: Entry = {
        count: count + 1,
        exp: Math.max(exp, cur?.exp ?? 0),
        ...(groupKey === undefined ? {} : { group: groupKey }),
      };
      await this.log.append(encodeSet(id, next));
      this.entries.set(key, next);
      if (cur === undefined && groupKey !== undefined) addTo(this.groups, groupKey, 1);
      await this.maybeCompact();
      return { allowed: true, count: next.count };
    });
  }

  /**
   * Count one use of each token of `tokens` (a chain's counted links, root first) in ONE durable append: one
   * write, one fsync, however many links count ([TANDEM-USES-6]: the lock moves its solenoid after at most
   * one durable append). Every token is checked before anything is written, so a refusal (the first token,
   * by index, that is exhausted or over its group's quota, as {@link UseCounterStore.consume} decides it)
   * counts none of them. A power cut during the append may keep some of the records and lose the others
   * (each frame has its own CRC); the append had not resolved, so the caller had not acted: a lost count is a
   * lost opening, never an uncounted one. Compaction, when due, runs after the append has resolved (queued
   * behind it, before the next store operation), so that it never delays the caller's action.
   */
  async consumeAll(tokens: readonly ConsumeItem[]): Promise<ConsumeAllResult> {
    for (const t of tokens) {
      checkTokenId(t.id);
      checkExp(t.exp);
      checkInt(t.maxUses, 0, Number.MAX_SAFE_INTEGER, 'maxUses');
      if (t.group !== undefined) checkTokenId(t.group);
    }
    if (tokens.length === 0) return { allowed: true, counts: [] };
    const result = await this.queue.run(async (): Promise<ConsumeAllResult> => {
      const staged = new Map<string, Entry>();
      const stagedGroups = new Map<string, number>();
      const records: Uint8Array[] = [];
      const counts: number[] = [];
      let added = 0;
      for (let i = 0; i < tokens.length; i++) {
        const t = tokens[i]!;
        const key = tokenKey(t.id);
        const cur = staged.get(key) ?? this.entries.get(key);
        const count = cur?.count ?? 0;
        if (count >= t.maxUses) return { allowed: false, index: i, count, refused: 'exhausted' };
        const groupKey =
          cur === undefined ? (t.group === undefined ? undefined : tokenKey(t.group)) : cur.group;
        if (
          cur === undefined &&
          groupKey !== undefined &&
          (this.groups.get(groupKey) ?? 0) + (stagedGroups.get(groupKey) ?? 0) >= this.maxGroup
        ) {
          return { allowed: false, index: i, count, refused: 'quota' };
        }
        if (cur === undefined && this.entries.size + added >= this.maxEntries) {
          throw new StoreError(
            'ERR_STORE_FULL',
            `use counters: ${this.maxEntries} tokens counted; prune expired ones`,
          );
        }
        if (count >= 0xffffffff)
          throw new StoreError('ERR_STORE_FULL', 'use counter: count at its 2^32-1 maximum');
        const next: Entry = {
          count: count + 1,
          exp: Math.max(t.exp, cur?.exp ?? 0),
          ...(groupKey === undefined ? {} : { group: groupKey }),
        };
        if (cur === undefined) {
          added++;
          if (groupKey !== undefined) addTo(stagedGroups, groupKey, 1);
        }
        staged.set(key, next);
        records.push(encodeSet(t.id, next));
        counts.push(next.count);
      }
      await this.log.append(records);
      for (const [key, e] of staged) {
        if (!this.entries.has(key) && e.group !== undefined) addTo(this.groups, e.group, 1);
        this.entries.set(key, e);
      }
      return { allowed: true, counts };
    });
    if (result.allowed) {
      // After the caller's count is durable: a failed compaction leaves the log closed, and the next store
      // operation reports it (ERR_STORE_CLOSED), so nothing is lost by not awaiting it here.
      this.queue.run(() => this.maybeCompact()).catch(() => undefined);
    }
    return result;
  }

  /**
   * Drop every entry counted under one of `groups` (their root was revoked, [TANDEM-USES-3]); resolves with
   * how many entries went. Groups holding nothing cost nothing (no write).
   */
  async dropGroups(groups: readonly Uint8Array[]): Promise<number> {
    for (const g of groups) checkTokenId(g);
    return this.queue.run(async () => {
      let dropped = 0;
      for (const g of groups) {
        const key = tokenKey(g);
        const n = this.groups.get(key) ?? 0;
        if (n === 0) continue;
        await this.log.append(new ByteWriter(2 + g.length).u8(REC_DROP_GROUP).u8(g.length).bytes(g).finish());
        dropGroup(this.entries, key);
        this.groups.delete(key);
        dropped += n;
      }
      if (dropped > 0) await this.maybeCompact();
      return dropped;
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
      this.groups.clear();
      for (const e of this.entries.values()) if (e.group !== undefined) addTo(this.groups, e.group, 1);
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
  if (e.group === undefined) {
    return new ByteWriter(10 + id.length)
      .u8(REC_SET)
      .u8(id.length)
      .bytes(id)
      .u32(e.count)
      .u32(e.exp)
      .finish();
  }
  const g = keyBytes(e.group);
  return new ByteWriter(11 + id.length + g.length)
    .u8(REC_SET_GROUP)
    .u8(id.length)
    .bytes(id)
    .u32(e.count)
    .u32(e.exp)
    .u8(g.length)
    .bytes(g)
    .finish();
}

function dropExpired(entries: Map<string, Entry>, now: number): void {
  for (const [k, e] of entries) if (e.exp <= now) entries.delete(k);
}

function dropGroup(entries: Map<string, Entry>, group: string): void {
  for (const [k, e] of entries) if (e.group === group) entries.delete(k);
}

function addTo(m: Map<string, number>, key: string, n: number): void {
  m.set(key, (m.get(key) ?? 0) + n);
}
