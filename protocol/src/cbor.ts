/**
 * Strict CBOR for Tandem (SPEC.md §2). `cbor-x` does the encoding and decoding; this module decides what it
 * is allowed to see. cbor-x is lenient by default: duplicate map keys keep the last value, many tags are
 * interpreted (tag 27 even builds a RegExp), indefinite lengths and floats pass, and its encoder can emit
 * record tags. So every input is first walked by {@link checkWellFormed}, which enforces the profile of
 * SPEC.md §2 in one pass, in time linear in the input and with bounded depth, before cbor-x builds values:
 *
 * - [TANDEM-CBOR-1] definite lengths only; every declared length fits in what is left of the input;
 * - [TANDEM-CBOR-2] integers and lengths in their shortest form (RFC 8949 §4.2.1, preferred serialization),
 *   integers within ±(2^53-1);
 * - [TANDEM-CBOR-3] no floats, no simple values other than false, true and null, no `undefined`;
 * - [TANDEM-CBOR-4] text strings are valid UTF-8;
 * - [TANDEM-CBOR-5] map keys are integers or text strings, each at most once per map;
 * - [TANDEM-CBOR-6] tags only where the caller allows them, and only around the top-level item;
 * - [TANDEM-CBOR-7] nesting depth, items per container and total size within the caller's limits;
 * - [TANDEM-CBOR-8] exactly one item, no trailing bytes.
 *
 * [TANDEM-CBOR-10] {@link decodeStrict} makes the walk's checks, in its order and with its messages, while it
 * builds the value in one pass (tagged input, which cbor-x may interpret, still goes walk-then-cbor-x), and
 * {@link ProfileCursor} lets a hot message's reader (the token's) do the same for its one expected shape.
 */
import { Decoder, Encoder, Tag } from 'cbor-x';
import { ProtocolError } from './errors.js';

/** Bounds for one kind of message (SPEC.md §2, "Limits"). */
export interface CborLimits {
  /** Largest accepted input in bytes. */
  readonly maxBytes: number;
  /** Deepest accepted nesting of arrays and maps (the top-level item is depth 1). */
  readonly maxDepth: number;
  /** Most items in one array or pairs in one map. */
  readonly maxItems: number;
}

/** Default limits: a delegated token, a chain or a GATT message. */
export const DEFAULT_LIMITS: CborLimits = { maxBytes: 4096, maxDepth: 8, maxItems: 64 };

/** A CBOR value as Tandem's profile lets it be decoded. */
export type CborValue =
  number | string | boolean | null | Uint8Array | CborValue[] | Map<number | string, CborValue> | Tag;

// Decoder and encoder options are spelt out rather than relying on defaults: cbor-x's `decode()` and
// `new Decoder()` differ in defaults (records, maps as objects). An integer with an 8-byte head (2^32 up
// to the walk's bound of 2^53-1, [TANDEM-CBOR-2]) comes back as a number, as CborValue says: cbor-x 1.6
// reads `int64AsNumber` (the `int64AsType` spelt here before is not an option of this version, and such
// integers came back as BigInt, which callers' type checks refused and `JSON.stringify` in their
// messages threw on: a TypeError out of `parseClaims` for a claims key of 2^32).
const DECODER = new Decoder({
  mapsAsObjects: false,
  useRecords: false,
  structuredClone: false,
  bundleStrings: false,
  int64AsNumber: true,
} as ConstructorParameters<typeof Decoder>[0]);
const ENCODER = new Encoder({
  mapsAsObjects: false,
  useRecords: false,
  structuredClone: false,
  bundleStrings: false,
  tagUint8Array: false,
  variableMapSize: true,
  pack: false,
} as ConstructorParameters<typeof Encoder>[0]);

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function fail(message: string): never {
  throw new ProtocolError('ERR_CBOR_INVALID', message);
}

/**
 * Walks `bytes` and throws ERR_CBOR_INVALID (or ERR_TOO_LARGE) unless it is exactly one item of Tandem's
 * CBOR profile. `allowedTags` are the tag numbers accepted around the top-level item, outermost first in any
 * order (for example 61 and 18 for a tagged CWT).
 */
export function checkWellFormed(
  bytes: Uint8Array,
  limits: CborLimits = DEFAULT_LIMITS,
  allowedTags: readonly number[] = [],
): void {
  if (!(bytes instanceof Uint8Array)) fail('input is not a byte string');
  if (bytes.length > limits.maxBytes) {
    throw new ProtocolError(
      'ERR_TOO_LARGE',
      `CBOR input of ${bytes.length} bytes exceeds ${limits.maxBytes}`,
    );
  }
  if (bytes.length === 0) fail('CBOR input is empty');
  const end = walk(bytes, 0, 1, limits, allowedTags, true);
  if (end !== bytes.length) fail(`${bytes.length - end} trailing byte(s) after the CBOR item`);
}

// Reads an item head at `pos`; returns [major type, argument, position after the head].
function head(b: Uint8Array, pos: number): [number, number, number] {
  if (pos >= b.length) fail('CBOR input is truncated');
  const ib = b[pos]!;
  const major = ib >> 5;
  const ai = ib & 31;
  if (ai < 24) return [major, ai, pos + 1];
  if (major === 7) return [major, ai, pos + 1];
  switch (ai) {
    case 24: {
      if (pos + 2 > b.length) fail('CBOR input is truncated');
      const v = b[pos + 1]!;
      if (v < 24) fail('CBOR integer or length is not in its shortest form (RFC 8949 §4.2.1)');
      return [major, v, pos + 2];
    }
    case 25: {
      if (pos + 3 > b.length) fail('CBOR input is truncated');
      const v = (b[pos + 1]! << 8) | b[pos + 2]!;
      if (v < 0x100) fail('CBOR integer or length is not in its shortest form (RFC 8949 §4.2.1)');
      return [major, v, pos + 3];
    }
    case 26: {
      if (pos + 5 > b.length) fail('CBOR input is truncated');
      const v = b[pos + 1]! * 0x1000000 + ((b[pos + 2]! << 16) | (b[pos + 3]! << 8) | b[pos + 4]!);
      if (v < 0x10000) fail('CBOR integer or length is not in its shortest form (RFC 8949 §4.2.1)');
      return [major, v, pos + 5];
    }
    case 27: {
      if (pos + 9 > b.length) fail('CBOR input is truncated');
      const hi = b[pos + 1]! * 0x1000000 + ((b[pos + 2]! << 16) | (b[pos + 3]! << 8) | b[pos + 4]!);
      const lo = b[pos + 5]! * 0x1000000 + ((b[pos + 6]! << 16) | (b[pos + 7]! << 8) | b[pos + 8]!);
      if (hi === 0) fail('CBOR integer or length is not in its shortest form (RFC 8949 §4.2.1)');
      if (hi > 0x1fffff) fail('CBOR integer or length exceeds 2^53-1');
      return [major, hi * 0x100000000 + lo, pos + 9];
    }
    case 31:
      fail('CBOR indefinite-length items are not allowed (SPEC.md TANDEM-CBOR-1)');
    // falls through (fail never returns)
    default:
      fail(`CBOR reserved additional information value ${ai}`);
  }
}

function walk(
  b: Uint8Array,
  pos: number,
  depth: number,
  limits: CborLimits,
  allowedTags: readonly number[],
  top: boolean,
): number {
  const [major, arg, next] = head(b, pos);
  switch (major) {
    case 0:
    case 1:
      return next;
    case 2:
      if (arg > b.length - next) fail(`CBOR byte string length ${arg} exceeds the input`);
      return next + arg;
    case 3:
      if (arg > b.length - next) fail(`CBOR text string length ${arg} exceeds the input`);
      // Most Tandem text is ASCII; only strings with a high byte pay for the full UTF-8 check.
      for (let i = next; i < next + arg; i++) {
        if (b[i]! >= 0x80) {
          try {
            UTF8.decode(b.subarray(next, next + arg));
          } catch {
            fail('CBOR text string is not valid UTF-8');
          }
          break;
        }
      }
      return next + arg;
    case 4: {
      if (depth > limits.maxDepth) fail(`CBOR nesting deeper than ${limits.maxDepth}`);
      if (arg > limits.maxItems) fail(`CBOR array of ${arg} items exceeds ${limits.maxItems}`);
      let p = next;
      for (let i = 0; i < arg; i++) p = walk(b, p, depth + 1, limits, allowedTags, false);
      return p;
    }
    case 5: {
      if (depth > limits.maxDepth) fail(`CBOR nesting deeper than ${limits.maxDepth}`);
      if (arg > limits.maxItems) fail(`CBOR map of ${arg} pairs exceeds ${limits.maxItems}`);
      let p = next;
      // Small integer keys (0..23 and -1..-24, one byte each) are tracked in a bit set; other keys by
      // their encoded bytes. Preferred serialization makes equal keys byte-equal.
      let small = 0;
      let seen: Set<string> | undefined;
      for (let i = 0; i < arg; i++) {
        if (p >= b.length) fail('CBOR input is truncated');
        const kb = b[p]!;
        const km = kb >> 5;
        if (km !== 0 && km !== 1 && km !== 3) fail('CBOR map key is neither an integer nor a text string');
        const keyEnd = walk(b, p, depth + 1, limits, allowedTags, false);
        if (keyEnd - p === 1) {
          const key = km === 0 ? kb & 31 : -1 - (kb & 31);
          const slot = key >= 0 ? key : 24 + (-1 - key);
          if (slot < 31) {
            if (small & (1 << slot)) fail(`CBOR map has duplicate key ${key}`);
            small |= 1 << slot;
          } else {
            seen ??= new Set();
            const s = String(key);
            if (seen.has(s)) fail(`CBOR map has duplicate key ${key}`);
            seen.add(s);
          }
        } else {
          seen ??= new Set();
          const s = Buffer.from(b.buffer, b.byteOffset + p, keyEnd - p).toString('latin1');
          if (seen.has(s)) fail(`CBOR map has duplicate key ${describeKey(b, p, keyEnd)}`);
          seen.add(s);
        }
        p = walk(b, keyEnd, depth + 1, limits, allowedTags, false);
      }
      return p;
    }
    case 6: {
      if (!top) fail(`CBOR tag ${arg} is not allowed here`);
      if (!allowedTags.includes(arg)) fail(`CBOR tag ${arg} is not allowed`);
      // A tag may wrap another allowed tag (61 around 18: RFC 8392 §6), never the same one twice.
      return walk(
        b,
        next,
        depth,
        limits,
        allowedTags.filter((t) => t !== arg),
        true,
      );
    }
    default: {
      // major 7: simple values and floats
      const ai = b[pos]! & 31;
      if (ai === 20 || ai === 21 || ai === 22) return next;
      if (ai >= 25 && ai <= 27) fail('CBOR floating-point numbers are not allowed (SPEC.md TANDEM-CBOR-3)');
      if (ai === 23) fail('CBOR undefined is not allowed (SPEC.md TANDEM-CBOR-3)');
      if (ai === 31) fail('CBOR break outside an indefinite-length item');
      fail(`CBOR simple value ${ai === 24 ? b[pos + 1] : ai} is not allowed`);
    }
  }
}

function describeKey(b: Uint8Array, start: number, end: number): string {
  if (b[start]! >> 5 === 3) {
    try {
      const [, len, p] = head(b, start);
      return JSON.stringify(UTF8.decode(b.subarray(p, p + len)));
    } catch {
      return 'text';
    }
  }
  try {
    return String(DECODER.decode(b.subarray(start, end)));
  } catch {
    return 'integer';
  }
}

/**
 * Decodes `bytes` under Tandem's profile. Maps come back as `Map`, byte strings as `Uint8Array` views of the
 * input, allowed tags as cbor-x `Tag` objects. Throws only {@link ProtocolError}.
 *
 * Untagged input is decoded in one pass ({@link build}, [TANDEM-CBOR-10]) that makes the checks of
 * {@link checkWellFormed}'s walk in the walk's order, with its messages, while it builds the value; tagged
 * input, which cbor-x may interpret, takes {@link decodeStrictGeneral}. Both give the same verdict, message
 * and value (`protocol/test/fast-decode.test.ts`).
 */
export function decodeStrict(
  bytes: Uint8Array,
  limits: CborLimits = DEFAULT_LIMITS,
  allowedTags: readonly number[] = [],
): CborValue {
  if (
    !(bytes instanceof Uint8Array) ||
    bytes.length === 0 ||
    bytes.length > limits.maxBytes ||
    bytes[0]! >> 5 === 6
  ) {
    return decodeStrictGeneral(bytes, limits, allowedTags);
  }
  at = 0;
  const value = build(bytes, 1, limits);
  if (at !== bytes.length) fail(`${bytes.length - at} trailing byte(s) after the CBOR item`);
  return value;
}

/**
 * Decodes `bytes` the general way: {@link checkWellFormed}'s walk, then cbor-x. For tagged input, and the
 * oracle the one-pass {@link decodeStrict} is tested against.
 */
export function decodeStrictGeneral(
  bytes: Uint8Array,
  limits: CborLimits = DEFAULT_LIMITS,
  allowedTags: readonly number[] = [],
): CborValue {
  checkWellFormed(bytes, limits, allowedTags);
  try {
    return DECODER.decode(bytes) as CborValue;
  } catch (cause) {
    // Unreachable for input that passed the walk; kept so that a cbor-x surprise stays a coded error.
    throw new ProtocolError('ERR_CBOR_INVALID', 'CBOR input could not be decoded', { cause });
  }
}

// The one-pass decoder's position, and the major type and end of the head {@link headArg} last read. Module
// state rather than a tuple per item: decoding is synchronous and calls out to nothing that decodes.
let at = 0;
let headMajor = 0;
let headEnd = 0;

// {@link head} without the tuple: returns the argument, sets headMajor and headEnd. Same checks, same order,
// same messages.
function headArg(b: Uint8Array, pos: number): number {
  if (pos >= b.length) fail('CBOR input is truncated');
  const ib = b[pos]!;
  const major = ib >> 5;
  const ai = ib & 31;
  headMajor = major;
  if (ai < 24 || major === 7) {
    headEnd = pos + 1;
    return ai;
  }
  const [, arg, next] = head(b, pos);
  headEnd = next;
  return arg;
}

// One item at `at` and everything in it, checked as {@link walk} checks it (an untagged top-level item: any
// tag met here is nested, and refused as the walk refuses it).
function build(b: Uint8Array, depth: number, limits: CborLimits): CborValue {
  const start = at;
  const arg = headArg(b, start);
  const next = headEnd;
  switch (headMajor) {
    case 0:
      at = next;
      return arg;
    case 1:
      at = next;
      return -1 - arg;
    case 2:
      if (arg > b.length - next) fail(`CBOR byte string length ${arg} exceeds the input`);
      at = next + arg;
      return b.subarray(next, next + arg);
    case 3: {
      if (arg > b.length - next) fail(`CBOR text string length ${arg} exceeds the input`);
      const end = next + arg;
      at = end;
      let ascii = true;
      for (let i = next; i < end; i++) {
        if (b[i]! >= 0x80) {
          ascii = false;
          break;
        }
      }
      if (ascii && arg <= 32) {
        let s = '';
        for (let i = next; i < end; i++) s += String.fromCharCode(b[i]!);
        return s;
      }
      try {
        return UTF8.decode(b.subarray(next, end));
      } catch {
        return fail('CBOR text string is not valid UTF-8');
      }
    }
    case 4: {
      if (depth > limits.maxDepth) fail(`CBOR nesting deeper than ${limits.maxDepth}`);
      if (arg > limits.maxItems) fail(`CBOR array of ${arg} items exceeds ${limits.maxItems}`);
      at = next;
      const array: CborValue[] = [];
      for (let i = 0; i < arg; i++) array.push(build(b, depth + 1, limits));
      return array;
    }
    case 5: {
      if (depth > limits.maxDepth) fail(`CBOR nesting deeper than ${limits.maxDepth}`);
      if (arg > limits.maxItems) fail(`CBOR map of ${arg} pairs exceeds ${limits.maxItems}`);
      at = next;
      const map = new Map<number | string, CborValue>();
      for (let i = 0; i < arg; i++) {
        if (at >= b.length) fail('CBOR input is truncated');
        const km = b[at]! >> 5;
        if (km !== 0 && km !== 1 && km !== 3) fail('CBOR map key is neither an integer nor a text string');
        const key = build(b, depth + 1, limits) as number | string;
        // Preferred serialization gives one encoding per key, so equal decoded keys are the walk's equal bytes.
        if (map.has(key)) {
          fail(`CBOR map has duplicate key ${typeof key === 'string' ? JSON.stringify(key) : String(key)}`);
        }
        map.set(key, build(b, depth + 1, limits));
      }
      return map;
    }
    case 6:
      return fail(`CBOR tag ${arg} is not allowed here`);
    default: {
      const ai = b[start]! & 31;
      at = next;
      if (ai === 20) return false;
      if (ai === 21) return true;
      if (ai === 22) return null;
      if (ai >= 25 && ai <= 27) fail('CBOR floating-point numbers are not allowed (SPEC.md TANDEM-CBOR-3)');
      if (ai === 23) fail('CBOR undefined is not allowed (SPEC.md TANDEM-CBOR-3)');
      if (ai === 31) fail('CBOR break outside an indefinite-length item');
      return fail(`CBOR simple value ${ai === 24 ? b[start + 1] : ai} is not allowed`);
    }
  }
}

/**
 * Encodes `value` with cbor-x and checks that the output is itself within the profile, so that Tandem never
 * emits what it would refuse (no float for an integer above 2^32-1, no record tag).
 */
export function encode(
  value: unknown,
  limits: CborLimits = ENCODE_LIMITS,
  allowedTags: readonly number[] = [],
): Uint8Array {
  let out: Uint8Array;
  try {
    out = ENCODER.encode(value);
  } catch (cause) {
    throw new ProtocolError('ERR_CBOR_INVALID', 'value cannot be encoded as CBOR', { cause });
  }
  checkWellFormed(out, limits, allowedTags);
  // Return a plain view, not a Buffer that cbor-x may reuse for the next encode.
  return new Uint8Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength));
}

const ENCODE_LIMITS: CborLimits = { maxBytes: 16 * 1024 * 1024, maxDepth: 16, maxItems: 1_000_000 };

export { Tag };

/**
 * Raised by {@link ProfileCursor} when the input leaves the shape its caller expects; never escapes
 * {@link readFast}. Not an error of the input: the general path ({@link decodeStrict}) then decides.
 */
const DECLINE: unique symbol = Symbol('decline');

/**
 * A single-pass reader for the one encoding Tandem itself emits of a hot message (a token's envelope and
 * claims, SPEC.md §5): it checks the profile of §2 on the bytes it reads, as it reads them (shortest-form
 * heads [TANDEM-CBOR-2], definite lengths that fit [TANDEM-CBOR-1], UTF-8 [TANDEM-CBOR-4], no floats, tags or
 * simple values but the ones asked for [TANDEM-CBOR-3], [TANDEM-CBOR-6]), and gives up on anything else:
 * every method either returns what the caller asked for or declines. A caller reads exactly the keys of a
 * map in the order it expects (so keys are unique, [TANDEM-CBOR-5]) and checks `atEnd` ([TANDEM-CBOR-8]).
 * Declining is not refusing: {@link readFast} returns undefined and the caller runs the general path
 * (`checkWellFormed`, cbor-x, the field checks), which accepts other valid encodings and words every
 * refusal. So the fast path only ever has to agree with the general one on what it accepts
 * (`protocol/test/fast-decode.test.ts` checks that on the vectors and on mutations).
 */
export class ProfileCursor {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    start = 0,
  ) {
    this.pos = start;
  }

  /** Gives up: the general path decides. */
  decline(): never {
    throw DECLINE;
  }

  /** The argument of a head of major type `major` in shortest form, below 2^32. */
  head(major: number): number {
    const b = this.bytes;
    const p = this.pos;
    if (p >= b.length) this.decline();
    const ib = b[p]!;
    if (ib >> 5 !== major) this.decline();
    const ai = ib & 31;
    if (ai < 24) {
      this.pos = p + 1;
      return ai;
    }
    let v: number;
    if (ai === 24) {
      if (p + 2 > b.length) this.decline();
      v = b[p + 1]!;
      if (v < 24) this.decline();
      this.pos = p + 2;
    } else if (ai === 25) {
      if (p + 3 > b.length) this.decline();
      v = (b[p + 1]! << 8) | b[p + 2]!;
      if (v < 0x100) this.decline();
      this.pos = p + 3;
    } else if (ai === 26) {
      if (p + 5 > b.length) this.decline();
      v = b[p + 1]! * 0x1000000 + ((b[p + 2]! << 16) | (b[p + 3]! << 8) | b[p + 4]!);
      if (v < 0x10000) this.decline();
      this.pos = p + 5;
    } else {
      return this.decline();
    }
    return v;
  }

  /** Whether the next byte is `byte` (consumed when it is). */
  take(byte: number): boolean {
    if (this.pos < this.bytes.length && this.bytes[this.pos] === byte) {
      this.pos++;
      return true;
    }
    return false;
  }

  /** Consumes exactly `byte` or declines. */
  expect(byte: number): void {
    if (!this.take(byte)) this.decline();
  }

  /** An unsigned integer below 2^32. */
  uint(): number {
    return this.head(0);
  }

  /** An integer between -2^32 and 2^32-1. */
  int(): number {
    if (this.pos < this.bytes.length && this.bytes[this.pos]! >> 5 === 1) return -1 - this.head(1);
    return this.head(0);
  }

  /** A byte string, as a view of the input (as cbor-x returns it). */
  byteString(): Uint8Array {
    const n = this.head(2);
    const start = this.pos;
    if (n > this.bytes.length - start) this.decline();
    this.pos = start + n;
    return this.bytes.subarray(start, start + n);
  }

  /** A text string of valid UTF-8. */
  textString(): string {
    const n = this.head(3);
    const b = this.bytes;
    const start = this.pos;
    if (n > b.length - start) this.decline();
    const end = start + n;
    this.pos = end;
    let ascii = true;
    for (let i = start; i < end; i++) {
      if (b[i]! >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (!ascii) {
      try {
        return UTF8.decode(b.subarray(start, end));
      } catch {
        return this.decline();
      }
    }
    // Short ASCII strings (Tandem's ids, scopes, names): one char code per byte, without a view object.
    if (n > 32) return String.fromCharCode.apply(null, b.subarray(start, end) as unknown as number[]);
    let s = '';
    for (let i = start; i < end; i++) s += String.fromCharCode(b[i]!);
    return s;
  }

  /** `true` or `false` (0xf5, 0xf4). */
  boolean(): boolean {
    if (this.take(0xf5)) return true;
    if (this.take(0xf4)) return false;
    return this.decline();
  }

  /** The major type of the next item, without consuming it; -1 at the end. */
  peekMajor(): number {
    return this.pos < this.bytes.length ? this.bytes[this.pos]! >> 5 : -1;
  }

  /** True when every byte was read ([TANDEM-CBOR-8]). */
  get atEnd(): boolean {
    return this.pos === this.bytes.length;
  }
}

/**
 * Runs a fast reader; returns its result, or undefined when it declined (or failed in any other way: a
 * fast path that throws never decides a refusal, the general path does).
 */
export function readFast<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}
