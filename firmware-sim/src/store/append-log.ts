import { posix } from 'node:path';
import { crc32 } from './crc32.js';
import { StoreError, isStoreError } from './errors.js';
import { SerialQueue } from './serial-queue.js';
import type { StoreFileHandle, StoreFs } from './store-fs.js';

/** Log file header: magic(4) | format version u16 | reserved u16. */
export const APPEND_LOG_HEADER_BYTES = 8;
/** Frame header: payload length u32 | CRC-32 of payload u32 | CRC-32 of the previous 8 bytes u32. */
export const APPEND_LOG_FRAME_BYTES = 12;
/** Format version written by this code. */
export const APPEND_LOG_FORMAT_VERSION = 1;

/** Options of {@link AppendLog.open}. */
export interface AppendLogOptions {
  /** Four ASCII characters naming the content (default 'TDAL'). */
  magic?: string;
  /** Largest record accepted (default 1 MiB); larger appends are ERR_STORE_INVALID_ARGUMENT. */
  maxRecordBytes?: number;
}

/** What {@link AppendLog.open} found. */
export interface AppendLogOpened {
  log: AppendLog;
  /** Every complete record, oldest first. */
  records: Uint8Array[];
  /**
   * Bytes of an incomplete last record that were cut away: the normal trace of a power cut during an append
   * that was therefore never acknowledged. 0 when the log ended cleanly.
   */
  tornTailBytes: number;
}

function magicBytes(magic: string): Uint8Array {
  const b = new TextEncoder().encode(magic);
  if (b.length !== 4)
    throw new StoreError('ERR_STORE_INVALID_ARGUMENT', `magic must be 4 ASCII bytes: ${magic}`);
  return b;
}

/** Payload length of a valid frame starting at `o`, or -1. */
function frameAt(buf: Uint8Array, view: DataView, o: number, maxRecordBytes: number): number {
  if (o + APPEND_LOG_FRAME_BYTES > buf.length) return -1;
  if (crc32(buf, o, o + 8) !== view.getUint32(o + 8)) return -1;
  const len = view.getUint32(o);
  const start = o + APPEND_LOG_FRAME_BYTES;
  if (len > maxRecordBytes || start + len > buf.length) return -1;
  return crc32(buf, start, start + len) === view.getUint32(o + 4) ? len : -1;
}

function encodeFrames(records: readonly Uint8Array[], header?: Uint8Array): Uint8Array {
  let total = header?.length ?? 0;
  for (const r of records) total += APPEND_LOG_FRAME_BYTES + r.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let o = 0;
  if (header) {
    out.set(header);
    o = header.length;
  }
  for (const r of records) {
    view.setUint32(o, r.length);
    view.setUint32(o + 4, crc32(r));
    view.setUint32(o + 8, crc32(out, o, o + 8));
    out.set(r, o + APPEND_LOG_FRAME_BYTES);
    o += APPEND_LOG_FRAME_BYTES + r.length;
  }
  return out;
}

/**
 * One frame whose record is `head` followed by `body`, written into `into` (from its start): the same bytes
 * as `encodeFrames([concat(head, body)])` without building the record first. The lock's outbox and audit
 * log frame a few header bytes and a signed record this way on every attempt, into a buffer each log reuses
 * (issue 8, decision cost: before, a record writer, its copy, the frame and the card's copy per append).
 */
function encodeFrameInto(into: Uint8Array, view: DataView, head: Uint8Array, body: Uint8Array): Uint8Array {
  const len = head.length + body.length;
  const out = into.subarray(0, APPEND_LOG_FRAME_BYTES + len);
  out.set(head, APPEND_LOG_FRAME_BYTES);
  out.set(body, APPEND_LOG_FRAME_BYTES + head.length);
  view.setUint32(0, len);
  view.setUint32(4, crc32(out, APPEND_LOG_FRAME_BYTES, out.length));
  view.setUint32(8, crc32(out, 0, 8));
  return out;
}

/**
 * Append-only log of records, each framed with its length and CRC-32 (ARCHITECTURE.md, "Hardware facts").
 * An append resolves only after fsync: a resolved append is what "acknowledged" means, and it survives a
 * power cut. On open, an incomplete last record (a torn tail, the normal result of a cut mid-append) is cut
 * away and reported; a bad record with a valid record after it cannot come from a cut (appends are ordered
 * and each one is fsynced before the next starts), so it is ERR_STORE_CORRUPT. {@link AppendLog.rewrite}
 * replaces the whole log atomically (new file, fsync, rename, fsync directory): compaction and full replace.
 */
export class AppendLog {
  private readonly queue = new SerialQueue();
  // appendRecord's frame buffer, reused: appends run one at a time on the queue, and a StoreFileHandle keeps
  // no reference to what it wrote once write() has resolved.
  private scratch = new Uint8Array(0);
  private scratchView = new DataView(this.scratch.buffer);
  private size: number;
  private handle: StoreFileHandle | undefined;
  private broken: StoreError | undefined;

  private constructor(
    private readonly fs: StoreFs,
    private readonly dir: string,
    readonly path: string,
    private readonly header: Uint8Array,
    private readonly maxRecordBytes: number,
    handle: StoreFileHandle,
    size: number,
  ) {
    this.handle = handle;
    this.size = size;
  }

  /** Open (creating the directory and an empty log if needed), recovering from a torn tail. */
  static async open(
    fs: StoreFs,
    dir: string,
    name: string,
    options: AppendLogOptions = {},
  ): Promise<AppendLogOpened> {
    const path = posix.join(dir, name);
    const maxRecordBytes = options.maxRecordBytes ?? 1024 * 1024;
    const header = new Uint8Array(APPEND_LOG_HEADER_BYTES);
    header.set(magicBytes(options.magic ?? 'TDAL'));
    new DataView(header.buffer).setUint16(4, APPEND_LOG_FORMAT_VERSION);
    await fs.mkdir(dir);
    try {
      // A leftover from a rewrite cut short: the rename never happened, so the log itself is intact.
      await fs.unlink(`${path}.tmp`);
    } catch (err) {
      if (!isStoreError(err, 'ERR_STORE_NOT_FOUND')) throw err;
    }
    let buf: Uint8Array | undefined;
    try {
      buf = await fs.readFile(path);
    } catch (err) {
      if (!isStoreError(err, 'ERR_STORE_NOT_FOUND')) throw err;
    }
    if (!buf) {
      await writeWhole(fs, dir, path, encodeFrames([], header));
      const handle = await fs.open(path, 'a');
      return {
        log: new AppendLog(fs, dir, path, header, maxRecordBytes, handle, header.length),
        records: [],
        tornTailBytes: 0,
      };
    }
    // The log only ever appears by rename of a fsynced file, so its header is always complete.
    if (buf.length < header.length || header.some((b, i) => buf[i] !== b)) {
      throw new StoreError('ERR_STORE_CORRUPT', `${path}: bad log header (wrong magic or format version)`);
    }
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const records: Uint8Array[] = [];
    let o = header.length;
    while (o < buf.length) {
      const len = frameAt(buf, view, o, maxRecordBytes);
      if (len < 0) break;
      records.push(buf.slice(o + APPEND_LOG_FRAME_BYTES, o + APPEND_LOG_FRAME_BYTES + len));
      o += APPEND_LOG_FRAME_BYTES + len;
    }
    const tornTailBytes = buf.length - o;
    if (tornTailBytes > 0) {
      for (let s = o + 1; s + APPEND_LOG_FRAME_BYTES <= buf.length; s++) {
        if (frameAt(buf, view, s, maxRecordBytes) >= 0) {
          throw new StoreError(
            'ERR_STORE_CORRUPT',
            `${path}: bad record at byte ${o} followed by a valid record at byte ${s}; the SD card returned wrong data`,
          );
        }
      }
    }
    const handle = await fs.open(path, 'a');
    if (tornTailBytes > 0) {
      // Cut the tail durably before anything new is appended after it, or the next append would sit behind garbage.
      await handle.truncate(o);
      await handle.sync();
    }
    return { log: new AppendLog(fs, dir, path, header, maxRecordBytes, handle, o), records, tornTailBytes };
  }

  /** Bytes in the log file, header included. */
  get sizeBytes(): number {
    return this.size;
  }

  /** Append one record or a batch (one write, one fsync); resolves once durable. */
  async append(records: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const list = records instanceof Uint8Array ? [records] : records;
    for (const r of list) {
      if (r.length > this.maxRecordBytes) {
        return Promise.reject(
          new StoreError(
            'ERR_STORE_INVALID_ARGUMENT',
            `${this.path}: record of ${r.length} bytes exceeds ${this.maxRecordBytes}`,
          ),
        );
      }
    }
    return this.queue.run(() => this.writeFrames(encodeFrames(list)));
  }

  /**
   * Append one record made of `head` followed by `body` (a record type, sequence number and length, then a
   * payload): the same record as `append(concat(head, body))`, one write, one fsync; resolves once durable.
   */
  appendRecord(head: Uint8Array, body: Uint8Array): Promise<void> {
    const length = head.length + body.length;
    if (length > this.maxRecordBytes) {
      return Promise.reject(
        new StoreError(
          'ERR_STORE_INVALID_ARGUMENT',
          `${this.path}: record of ${length} bytes exceeds ${this.maxRecordBytes}`,
        ),
      );
    }
    return this.queue.run(() => {
      const frameBytes = APPEND_LOG_FRAME_BYTES + length;
      if (this.scratch.length < frameBytes) {
        this.scratch = new Uint8Array(Math.max(frameBytes, 2 * this.scratch.length, 1024));
        this.scratchView = new DataView(this.scratch.buffer);
      }
      return this.writeFrames(encodeFrameInto(this.scratch, this.scratchView, head, body));
    });
  }

  private async writeFrames(bytes: Uint8Array): Promise<void> {
    const handle = this.usable();
    try {
      await handle.write(bytes);
      await handle.sync();
      this.size += bytes.length;
    } catch (err) {
      await this.rollBack(handle, err);
      throw err;
    }
  }

  /** Atomically replace the whole log with `records` (compaction, full replace); resolves once durable. */
  rewrite(records: readonly Uint8Array[]): Promise<void> {
    return this.queue.run(async () => {
      this.usable();
      const bytes = encodeFrames(records, this.header);
      await this.handle?.close();
      this.handle = undefined;
      try {
        await writeWhole(this.fs, this.dir, this.path, bytes);
        this.handle = await this.fs.open(this.path, 'a');
        this.size = bytes.length;
      } catch (err) {
        // Old or new log is on disk, we cannot tell which from here: reopen to find out.
        this.broken = new StoreError('ERR_STORE_CLOSED', `${this.path}: rewrite failed; reopen the log`, {
          cause: err,
        });
        throw err;
      }
    });
  }

  /** Idempotent. */
  close(): Promise<void> {
    return this.queue.run(async () => {
      const h = this.handle;
      this.handle = undefined;
      this.broken ??= new StoreError('ERR_STORE_CLOSED', `${this.path}: log used after close()`);
      await h?.close();
    });
  }

  private usable(): StoreFileHandle {
    if (this.broken) throw this.broken;
    if (!this.handle) throw new StoreError('ERR_STORE_CLOSED', `${this.path}: log used after close()`);
    return this.handle;
  }

  /**
   * A failed append may have left part of a frame at the end; remove it so that later appends do not land
   * behind garbage. If even that fails, refuse further use until the log is reopened (open() recovers).
   */
  private async rollBack(handle: StoreFileHandle, cause: unknown): Promise<void> {
    try {
      await handle.truncate(this.size);
      await handle.sync();
    } catch {
      this.broken = new StoreError(
        'ERR_STORE_CLOSED',
        `${this.path}: append failed and could not be undone; reopen the log`,
        {
          cause,
        },
      );
    }
  }
}

/** The AtomicFile sequence for a whole log: write tmp, fsync, rename, fsync the directory. */
async function writeWhole(fs: StoreFs, dir: string, path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await fs.open(tmp, 'w');
  try {
    await fh.write(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, path);
  await fs.fsyncDir(dir);
}
