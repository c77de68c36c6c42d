import { StoreError } from './errors.js';

/** Growable big-endian byte writer for the stores' record encodings. */
export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;

  constructor(initialCapacity = 64) {
    this.buf = new Uint8Array(initialCapacity);
    this.view = new DataView(this.buf.buffer);
  }

  get length(): number {
    return this.len;
  }

  private reserve(n: number): number {
    const at = this.len;
    if (at + n > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < at + n) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.buf.subarray(0, at));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    this.len += n;
    return at;
  }

  u8(v: number): this {
    this.view.setUint8(this.reserve(1), v);
    return this;
  }

  u16(v: number): this {
    this.view.setUint16(this.reserve(2), v);
    return this;
  }

  u32(v: number): this {
    this.view.setUint32(this.reserve(4), v);
    return this;
  }

  /** Unsigned 64-bit from a safe integer (sequence numbers, versions, millisecond times). */
  u64(v: number): this {
    this.view.setBigUint64(this.reserve(8), BigInt(v));
    return this;
  }

  bytes(b: Uint8Array): this {
    const at = this.reserve(b.length); // may replace this.buf
    this.buf.set(b, at);
    return this;
  }

  /** A copy of what was written. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Big-endian reader; any overrun or out-of-range value is ERR_STORE_CORRUPT (the bytes passed their CRC). */
/**
 * Writes `v` big-endian in 4 bytes at `at`, as {@link ByteWriter.u32}: for record headers written straight
 * into a small array (no DataView, whose `.buffer` would move a small array's bytes off the heap).
 */
export function putU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

/** Writes the safe integer `v` big-endian in 8 bytes at `at`, as {@link ByteWriter.u64} (no BigInt). */
export function putU64(b: Uint8Array, at: number, v: number): void {
  putU32(b, at, Math.floor(v / 0x1_0000_0000));
  putU32(b, at + 4, v >>> 0);
}

export class ByteReader {
  private readonly view: DataView;
  private pos = 0;

  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private take(n: number): number {
    if (this.pos + n > this.buf.length) {
      throw new StoreError('ERR_STORE_CORRUPT', `${this.what}: record ends early (needs ${n} more bytes)`);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(): number {
    return this.view.getUint8(this.take(1));
  }

  u16(): number {
    return this.view.getUint16(this.take(2));
  }

  u32(): number {
    return this.view.getUint32(this.take(4));
  }

  u64(): number {
    const v = this.view.getBigUint64(this.take(8));
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new StoreError('ERR_STORE_CORRUPT', `${this.what}: 64-bit value out of range`);
    }
    return Number(v);
  }

  /** A copy, so that callers may keep it after the file buffer is dropped. */
  bytes(n: number): Uint8Array {
    const at = this.take(n);
    return this.buf.slice(at, at + n);
  }

  /** Fails unless every byte was consumed: trailing bytes mean the record is not what we think it is. */
  end(): void {
    if (this.pos !== this.buf.length) {
      throw new StoreError('ERR_STORE_CORRUPT', `${this.what}: ${this.remaining} unexpected trailing bytes`);
    }
  }
}

/** Byte-wise equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Lower-case hex, for messages and test output. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Throws ERR_STORE_INVALID_ARGUMENT unless `v` is an integer in [min, max]. */
export function checkInt(v: number, min: number, max: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new StoreError(
      'ERR_STORE_INVALID_ARGUMENT',
      `${what} must be an integer in [${min}, ${max}], got ${v}`,
    );
  }
}
