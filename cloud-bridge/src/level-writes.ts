/**
 * The broker's LevelDB (aedes-persistence-level 9 over classic-level) with its writes coalesced: every `put`,
 * `del` and `batch` made while one write is in flight joins the next one, written as one LevelDB batch, and
 * each caller's promise settles only once the batch holding its operations is written ([TANDEM-MQTT-30]).
 *
 * Why: aedes writes once per retained message (`storeRetained`) and per QoS 1 message queued for a persistent
 * session, and reads once per PUBACK (`outgoingClearMessageId`), each call a separate classic-level request
 * (JavaScript promise plumbing, a thread-pool job, a LevelDB snapshot and write taken under its mutex, on the
 * event loop that also runs the broker). A revocation fan-out to 10,000 locks made 10,000 writes and 10,000
 * reads that way, where the bare broker keeps everything in memory (issue 9 §4, bench/README.md `mqtt`).
 *
 * What stays the same:
 *
 * - durability: a caller learns that its write is done exactly when LevelDB has it, as before (classic-level's
 *   default `sync: false` both times), so aedes still PUBACKs, forwards and reports a will only after its
 *   write, and everything written survives a broker restart (test/e2e/mqtt-restart.test.ts,
 *   cloud-bridge/test/level-writes.test.ts);
 * - order: operations are applied in the order they were called (one batch in flight at a time, each batch in
 *   call order), which is stronger than before (separate requests on the thread pool could land in any
 *   order); a `clear` waits for the writes before it and the writes after it wait for the clear;
 * - reads: a `get` of a key with a write not yet applied waits for that write, then reads; `values` waits for
 *   every write called before it. A `get` under an indexed prefix (`outgoing-id:` by default: the message ids
 *   in flight to persistent sessions, a handful per session) whose key is not in the index answers
 *   `undefined` without asking LevelDB: the index is loaded when the database opens and kept with every
 *   write, so it holds exactly the keys LevelDB holds. Every PUBACK from a clean session (every lock) asked
 *   LevelDB for such a key and found nothing.
 *
 * What changes: one failing write (a disk error) fails every operation of its batch, not just its own; they
 * were all writing to the same failing disk. A batch holds at most `maxBatch` operations (default 1,024); more
 * waiting are written in further batches, one after the other.
 *
 * Only what aedes-persistence-level calls is implemented (get, put, del, batch in both forms, clear, values,
 * close); the value encoding is the one each call names (aedes: `buffer`), kept per operation.
 */

/** One write, as abstract-level's `batch` takes it. */
export type LevelWrite =
  | {
      readonly type: 'put';
      readonly key: string;
      readonly value: unknown;
      readonly valueEncoding?: string;
    }
  | { readonly type: 'del'; readonly key: string };

/** A key range, as abstract-level's `clear` and iterators take it. */
export interface LevelRange {
  readonly gt?: string;
  readonly gte?: string;
  readonly lt?: string;
  readonly lte?: string;
}

/** The part of abstract-level's API this wrapper uses (classic-level's `Level` has all of it). */
export interface LevelDatabase {
  get(key: string, options?: object): Promise<unknown>;
  batch(ops: LevelWrite[], options?: object): Promise<void>;
  clear(range: LevelRange & object): Promise<void>;
  keys(options: LevelRange & { readonly keyEncoding?: string }): AsyncIterable<string>;
  values(options: object): AsyncIterable<unknown>;
  close(): Promise<void>;
}

/** The chained form of `batch()`: operations collected, then written together by `write()`. */
export interface LevelChainedBatch {
  put(key: string, value: unknown, options?: { readonly valueEncoding?: string }): LevelChainedBatch;
  del(key: string): LevelChainedBatch;
  write(): Promise<void>;
}

/** Options of {@link CoalescedLevel}. */
export interface CoalescedLevelOptions {
  /** Most operations written in one LevelDB batch. Default 1,024. */
  readonly maxBatch?: number;
  /** Key prefixes whose keys are kept in memory, so that a read of an absent one costs nothing. */
  readonly indexedPrefixes?: readonly string[];
}

/** Something the writer runs in call order: writes that may share a batch, or a range delete. */
type Job = (
  | { readonly kind: 'write'; readonly ops: readonly LevelWrite[] }
  | { readonly kind: 'clear'; readonly range: LevelRange; readonly ops: readonly [] }
) & { readonly settle: Settle; readonly done: Promise<void> };

interface Settle {
  resolve(): void;
  reject(e: unknown): void;
}

/** Keys sort by their UTF-8 bytes in LevelDB (aedes' keys are ASCII; this stays right if one is not). */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function inRange(key: string, r: LevelRange): boolean {
  if (r.gt !== undefined && compareKeys(key, r.gt) <= 0) return false;
  if (r.gte !== undefined && compareKeys(key, r.gte) < 0) return false;
  if (r.lt !== undefined && compareKeys(key, r.lt) >= 0) return false;
  if (r.lte !== undefined && compareKeys(key, r.lte) > 0) return false;
  return true;
}

/** The range of every key that starts with `prefix` (the next string after all of them: last char + 1). */
function prefixRange(prefix: string): LevelRange {
  return {
    gte: prefix,
    lt: prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1),
  };
}

/** A LevelDB whose writes are coalesced into batches; see the module comment. */
export class CoalescedLevel {
  readonly #db: LevelDatabase;
  readonly #maxBatch: number;
  readonly #prefixes: readonly string[];
  /** Keys under the indexed prefixes, as LevelDB will hold them once every queued job is applied. */
  readonly #index = new Set<string>();
  readonly #queue: Job[] = [];
  /** Per key, the last queued job that writes it, until that job is done. */
  readonly #pendingKeys = new Map<string, Job>();
  /** The last job queued: jobs settle in order, so once it has, every job queued so far has. */
  #last: Promise<void> = Promise.resolve();
  #running = false;
  #closed = false;

  private constructor(db: LevelDatabase, options: CoalescedLevelOptions) {
    this.#db = db;
    this.#maxBatch = Math.max(1, options.maxBatch ?? 1024);
    this.#prefixes = options.indexedPrefixes ?? [];
  }

  /** Wraps an open (or opening) database and loads the index of `indexedPrefixes`. */
  static async open(db: LevelDatabase, options: CoalescedLevelOptions = {}): Promise<CoalescedLevel> {
    const level = new CoalescedLevel(db, options);
    for (const prefix of level.#prefixes) {
      for await (const key of db.keys({ ...prefixRange(prefix), keyEncoding: 'utf8' })) level.#index.add(key);
    }
    return level;
  }

  async get(key: string, options?: object): Promise<unknown> {
    const waiting = this.#pendingKeys.get(key);
    if (waiting !== undefined) await waiting.done.catch(() => undefined);
    else if (this.#indexed(key) && !this.#index.has(key)) return undefined;
    return this.#db.get(key, options);
  }

  put(key: string, value: unknown, options?: { readonly valueEncoding?: string }): Promise<void> {
    return this.#write([putOp(key, value, options)]);
  }

  del(key: string): Promise<void> {
    return this.#write([{ type: 'del', key }]);
  }

  /** `batch(ops, options)` writes `ops` (with `options.valueEncoding` for puts naming none); `batch()` chains. */
  batch(): LevelChainedBatch;
  batch(ops: readonly LevelWrite[], options?: { readonly valueEncoding?: string }): Promise<void>;
  batch(
    ops?: readonly LevelWrite[],
    options?: { readonly valueEncoding?: string },
  ): LevelChainedBatch | Promise<void> {
    if (ops === undefined) {
      const collected: LevelWrite[] = [];
      const chained: LevelChainedBatch = {
        put: (key, value, o) => (collected.push(putOp(key, value, o)), chained),
        del: (key) => (collected.push({ type: 'del', key }), chained),
        write: () => this.#write(collected.splice(0)),
      };
      return chained;
    }
    return this.#write(
      ops.map((op) =>
        op.type === 'put' && op.valueEncoding === undefined && options?.valueEncoding !== undefined
          ? { ...op, valueEncoding: options.valueEncoding }
          : op,
      ),
    );
  }

  /** Deletes a key range after every write queued before it, and before every write queued after it. */
  clear(range: LevelRange): Promise<void> {
    try {
      this.#ensureOpen();
    } catch (e) {
      return Promise.reject(e);
    }
    const removed = [...this.#index].filter((key) => inRange(key, range));
    for (const key of removed) this.#index.delete(key);
    const done = this.#enqueue({ kind: 'clear', range, ops: [] });
    // A failed clear may have left any of them: back into the index (see #run).
    done.catch(() => removed.forEach((key) => this.#index.add(key)));
    return done;
  }

  /** The values of a range, read once every write queued before the call is applied. */
  values(options: object): AsyncIterable<unknown> {
    const db = this.#db;
    const after = this.#last;
    return (async function* () {
      await after.catch(() => undefined);
      yield* db.values(options);
    })();
  }

  /** Writes what is queued, then closes the database. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#last.catch(() => undefined);
    await this.#db.close();
  }

  #indexed(key: string): boolean {
    return this.#prefixes.some((p) => key.startsWith(p));
  }

  #ensureOpen(): void {
    // aedes closes its persistence only after its last call settled (broker.ts closeAll): a write after that
    // would be lost, so it fails loudly instead.
    if (this.#closed) throw new Error('LevelDB write after close: the broker persistence is closed');
  }

  #write(ops: readonly LevelWrite[]): Promise<void> {
    try {
      this.#ensureOpen();
    } catch (e) {
      return Promise.reject(e);
    }
    if (ops.length === 0) return Promise.resolve();
    for (const op of ops) {
      if (!this.#indexed(op.key)) continue;
      if (op.type === 'put') this.#index.add(op.key);
      else this.#index.delete(op.key);
    }
    return this.#enqueue({ kind: 'write', ops });
  }

  /** Queues a job; its promise settles once the job is applied. One promise per call, nothing more per key. */
  #enqueue(
    what: { kind: 'write'; ops: readonly LevelWrite[] } | { kind: 'clear'; range: LevelRange; ops: [] },
  ): Promise<void> {
    let settle!: Settle;
    const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    const job = { ...what, settle, done } as Job;
    this.#queue.push(job);
    for (const op of job.ops) this.#pendingKeys.set(op.key, job);
    this.#last = done;
    if (!this.#running) {
      this.#running = true;
      // One turn of the event loop first, so that the writes of one burst (a fan-out's publishes, read from
      // the socket together) share the first batch as well as the later ones.
      setImmediate(() => void this.#run());
    }
    return done;
  }

  /** Applies queued jobs in order: consecutive writes together (up to maxBatch operations), a clear alone. */
  async #run(): Promise<void> {
    while (this.#queue.length > 0) {
      const first = this.#queue[0]!;
      if (first.kind === 'clear') {
        this.#queue.shift();
        try {
          await this.#db.clear({ ...first.range });
          first.settle.resolve();
        } catch (e) {
          first.settle.reject(e);
        }
        continue;
      }
      const jobs: (Job & { kind: 'write' })[] = [];
      let count = 0;
      while (this.#queue.length > 0) {
        const next = this.#queue[0]!;
        if (next.kind !== 'write') break;
        if (jobs.length > 0 && count + next.ops.length > this.#maxBatch) break;
        this.#queue.shift();
        jobs.push(next);
        count += next.ops.length;
      }
      const ops = jobs.flatMap((j) => j.ops);
      let failed: unknown;
      try {
        await this.#db.batch(ops);
      } catch (e) {
        failed = e;
        // LevelDB may hold any of these keys now: the index goes back to a superset (a key in it only means
        // "ask LevelDB"), never missing a key LevelDB has.
        for (const op of ops) if (this.#indexed(op.key)) this.#index.add(op.key);
      }
      for (const j of jobs) {
        for (const op of j.ops) if (this.#pendingKeys.get(op.key) === j) this.#pendingKeys.delete(op.key);
        if (failed === undefined) j.settle.resolve();
        else j.settle.reject(failed);
      }
    }
    this.#running = false;
  }
}

function putOp(key: string, value: unknown, options?: { readonly valueEncoding?: string }): LevelWrite {
  return options?.valueEncoding === undefined
    ? { type: 'put', key, value }
    : { type: 'put', key, value, valueEncoding: options.valueEncoding };
}
