import { posix } from 'node:path';
import { ByteWriter } from './bytes.js';
import { crc32 } from './crc32.js';
import { StoreError, isStoreError } from './errors.js';
import type { StoreFs } from './store-fs.js';

/** Envelope format version written by this code. */
export const ATOMIC_FILE_FORMAT_VERSION = 1;
/** Envelope header: magic(4) | format version u16 | reserved u16 | payload length u32 | CRC-32 u32. */
export const ATOMIC_FILE_HEADER_BYTES = 16;

/** Options of {@link AtomicFile}. */
export interface AtomicFileOptions {
  /** Four ASCII characters naming the content, so that a file of one store is never read as another's. */
  magic?: string;
  /** Largest payload accepted (default 16 MiB); larger writes are ERR_STORE_FULL. */
  maxBytes?: number;
}

function magicBytes(magic: string): Uint8Array {
  const b = new TextEncoder().encode(magic);
  if (b.length !== 4)
    throw new StoreError('ERR_STORE_INVALID_ARGUMENT', `magic must be 4 ASCII bytes: ${magic}`);
  return b;
}

/**
 * Crash-safe whole-file replace of one small file (ARCHITECTURE.md, "Hardware facts"): write `name.tmp`,
 * fsync it, rename it over `name`, fsync the directory. At every instant the durable `name` is either the old
 * complete file or the new complete file: the rename is atomic and the new content was durable before it.
 * The envelope's length and CRC-32 cover what the rename argument cannot: an SD card that returns wrong
 * bytes. A file that fails them is ERR_STORE_CORRUPT, never trusted.
 */
export class AtomicFile {
  readonly path: string;
  private readonly tmpPath: string;
  private readonly magic: Uint8Array;
  private readonly maxBytes: number;

  constructor(
    private readonly fs: StoreFs,
    private readonly dir: string,
    name: string,
    options: AtomicFileOptions = {},
  ) {
    this.path = posix.join(dir, name);
    this.tmpPath = `${this.path}.tmp`;
    this.magic = magicBytes(options.magic ?? 'TDAF');
    this.maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
  }

  /** The stored payload, or undefined if none was ever durably written. Throws ERR_STORE_CORRUPT. */
  async read(): Promise<Uint8Array | undefined> {
    let file: Uint8Array;
    try {
      file = await this.fs.readFile(this.path);
    } catch (err) {
      // A leftover name.tmp alone is an interrupted first write: nothing was ever acknowledged.
      if (isStoreError(err, 'ERR_STORE_NOT_FOUND')) return undefined;
      throw err;
    }
    return decodeEnvelope(file, this.magic, this.path);
  }

  /** Durably replace the payload; resolves only once the new content survives a power cut. */
  async write(payload: Uint8Array): Promise<void> {
    if (payload.length > this.maxBytes) {
      throw new StoreError(
        'ERR_STORE_FULL',
        `${this.path}: ${payload.length} bytes exceed the ${this.maxBytes} limit`,
      );
    }
    const file = encodeEnvelope(payload, this.magic);
    const fh = await this.fs.open(this.tmpPath, 'w');
    try {
      await fh.write(file);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.fs.rename(this.tmpPath, this.path);
    await this.fs.fsyncDir(this.dir);
  }
}

/** Envelope bytes for `payload` (exported for stores that write envelopes through their own path). */
export function encodeEnvelope(payload: Uint8Array, magic: Uint8Array): Uint8Array {
  const w = new ByteWriter(ATOMIC_FILE_HEADER_BYTES + payload.length);
  w.bytes(magic).u16(ATOMIC_FILE_FORMAT_VERSION).u16(0).u32(payload.length).u32(0).bytes(payload);
  const out = w.finish();
  const crc = crc32(out, ATOMIC_FILE_HEADER_BYTES, out.length, crc32(out, 0, 12));
  new DataView(out.buffer).setUint32(12, crc);
  return out;
}

function decodeEnvelope(file: Uint8Array, magic: Uint8Array, path: string): Uint8Array {
  const corrupt = (why: string): StoreError => new StoreError('ERR_STORE_CORRUPT', `${path}: ${why}`);
  if (file.length < ATOMIC_FILE_HEADER_BYTES) throw corrupt(`${file.length} bytes, shorter than the header`);
  for (let i = 0; i < 4; i++) if (file[i] !== magic[i]) throw corrupt('wrong magic');
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const version = view.getUint16(4);
  if (version !== ATOMIC_FILE_FORMAT_VERSION) throw corrupt(`unknown format version ${version}`);
  const length = view.getUint32(8);
  if (length !== file.length - ATOMIC_FILE_HEADER_BYTES) {
    throw corrupt(`header says ${length} payload bytes, file has ${file.length - ATOMIC_FILE_HEADER_BYTES}`);
  }
  const crc = crc32(file, ATOMIC_FILE_HEADER_BYTES, file.length, crc32(file, 0, 12));
  if (crc !== view.getUint32(12)) throw corrupt('CRC-32 mismatch');
  return file.slice(ATOMIC_FILE_HEADER_BYTES);
}
