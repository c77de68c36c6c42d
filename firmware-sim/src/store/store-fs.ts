import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { StoreError } from './errors.js';
import type { StoreErrorCode } from './errors.js';

/**
 * An open file. Writes go to the end of the file in append mode ('a') or one after the other from offset 0
 * in create mode ('w'). Nothing written is durable until {@link StoreFileHandle.sync} resolves.
 */
export interface StoreFileHandle {
  /**
   * Write all of `data` (loops over short writes). Keeps no reference to `data` once the promise settles: the
   * caller may reuse the buffer (AppendLog frames every record into one).
   */
  write(data: Uint8Array): Promise<void>;
  /** fsync: data and size are durable when this resolves. */
  sync(): Promise<void>;
  /** Cut the file to `length` bytes; durable after the next sync(). */
  truncate(length: number): Promise<void>;
  /** Idempotent. */
  close(): Promise<void>;
}

/**
 * The few filesystem calls the stores make, so that a power cut can be simulated ({@link CrashingStoreFs})
 * and the same stores run on the Pi's SD card ({@link NodeStoreFs}). Paths are absolute POSIX paths.
 *
 * Error behaviour (all implementations): every failure is a `StoreError`; a missing file or directory is
 * ERR_STORE_NOT_FOUND, a full device ERR_STORE_FULL, anything else ERR_STORE_IO.
 */
export interface StoreFs {
  /** 'w' creates or truncates; 'a' creates if missing and appends. Creation is durable only after fsyncDir. */
  open(path: string, mode: 'w' | 'a'): Promise<StoreFileHandle>;
  readFile(path: string): Promise<Uint8Array>;
  /** Atomic replace of `to` (same directory); durable only after fsyncDir of that directory. */
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  readdir(dir: string): Promise<string[]>;
  /** Recursive; succeeds if the directory exists. */
  mkdir(dir: string): Promise<void>;
  /** fsync of a directory: creations, renames and unlinks in it are durable when this resolves. */
  fsyncDir(dir: string): Promise<void>;
}

function mapError(err: unknown, what: string): StoreError {
  const errno = (err as { code?: unknown }).code;
  let code: StoreErrorCode = 'ERR_STORE_IO';
  let hint = 'check that the SD card is mounted read-write and healthy (dmesg)';
  if (errno === 'ENOENT') {
    code = 'ERR_STORE_NOT_FOUND';
    hint = 'it does not exist';
  } else if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    code = 'ERR_STORE_FULL';
    hint = 'the SD card is full: free space or compact the stores';
  } else if (errno === 'EACCES' || errno === 'EPERM' || errno === 'EROFS') {
    hint =
      'no write permission: run the lock as the user that owns the store directory, or remount read-write';
  }
  return new StoreError(code, `${what} failed (${String(errno ?? 'unknown')}): ${hint}`, { cause: err });
}

async function guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw mapError(err, what);
  }
}

class NodeFileHandle implements StoreFileHandle {
  private position = 0;
  private closed = false;

  constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
    private readonly mode: 'w' | 'a',
  ) {}

  write(data: Uint8Array): Promise<void> {
    return guard(`write ${this.path}`, async () => {
      let off = 0;
      while (off < data.length) {
        // In append mode the kernel places every write at the end (O_APPEND), whatever the position.
        const pos = this.mode === 'a' ? null : this.position + off;
        const { bytesWritten } = await this.fh.write(data, off, data.length - off, pos);
        off += bytesWritten;
      }
      this.position += data.length;
    });
  }

  sync(): Promise<void> {
    return guard(`fsync ${this.path}`, () => this.fh.sync());
  }

  truncate(length: number): Promise<void> {
    return guard(`truncate ${this.path}`, async () => {
      await this.fh.truncate(length);
      this.position = Math.min(this.position, length);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await guard(`close ${this.path}`, () => this.fh.close());
  }
}

/** The real filesystem through `node:fs/promises` (the Pi's SD card, or a temp dir in tests). */
export class NodeStoreFs implements StoreFs {
  open(path: string, mode: 'w' | 'a'): Promise<StoreFileHandle> {
    return guard(`open ${path}`, async () => new NodeFileHandle(await open(path, mode), path, mode));
  }

  readFile(path: string): Promise<Uint8Array> {
    return guard(`read ${path}`, async () => {
      const b = await readFile(path);
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    });
  }

  rename(from: string, to: string): Promise<void> {
    return guard(`rename ${from} -> ${to}`, () => rename(from, to));
  }

  unlink(path: string): Promise<void> {
    return guard(`unlink ${path}`, () => unlink(path));
  }

  readdir(dir: string): Promise<string[]> {
    return guard(`readdir ${dir}`, () => readdir(dir));
  }

  mkdir(dir: string): Promise<void> {
    return guard(`mkdir ${dir}`, async () => {
      await mkdir(dir, { recursive: true });
    });
  }

  fsyncDir(dir: string): Promise<void> {
    return guard(`fsync directory ${dir}`, async () => {
      // Linux allows fsync on a directory opened read-only; that is how a rename is made durable.
      const fh = await open(dir, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    });
  }
}
