/**
 * Input generators for the fuzz targets, as fast-check arbitraries: random bytes, byte-level mutations of
 * valid seeds (bit flips, truncation, insertion, deletion, duplication, CBOR-significant bytes and length
 * heads), splices of two seeds, and CBOR-aware mutations that decode a seed, replace one node (also inside
 * byte strings that hold CBOR themselves, as COSE payloads and protected headers do) and encode it again.
 *
 * Every input is a pure function of the fast-check seed and the run index, so a failure is reproduced by
 * `npm run fuzz -- --target X --seed S` (the failing input's bytes are saved as well).
 */
import fc from 'fast-check';
import { Decoder, Encoder, Tag } from 'cbor-x';

/** Bytes that mean something to a CBOR parser: heads of every major type, long lengths, break, simple values. */
const INTERESTING_BYTES = [
  0x00, 0x01, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x20, 0x3b, 0x40, 0x58, 0x5b, 0x5f, 0x60, 0x7b, 0x7f, 0x80,
  0x9b, 0x9f, 0xa0, 0xbb, 0xbf, 0xc0, 0xd2, 0xd8, 0xdb, 0xf4, 0xf5, 0xf6, 0xf7, 0xf9, 0xfa, 0xfb, 0xff, 0x7e,
];
/** Multi-byte heads that declare huge lengths or numbers. */
const INTERESTING_RUNS = [
  [0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0x5b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00],
  [0x5a, 0xff, 0xff, 0xff, 0xff],
  [0x9a, 0x7f, 0xff, 0xff, 0xff],
  [0xba, 0x00, 0x01, 0x00, 0x00],
  [0xdb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0xf9, 0x7e, 0x00],
  [0xfb, 0x7f, 0xf8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
  [0xc2, 0x49, 0x01, 0, 0, 0, 0, 0, 0, 0, 0],
  [0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f],
  [0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81],
];

/** One byte-level mutation; positions are taken modulo the current length. */
interface ByteOp {
  readonly op: number;
  readonly at: number;
  readonly len: number;
  readonly value: number;
}

const byteOp: fc.Arbitrary<ByteOp> = fc.record({
  op: fc.nat(8),
  at: fc.nat(),
  len: fc.nat(16),
  value: fc.nat(255),
});

/** Applies byte-level mutations to a copy of `base`. */
export function applyByteOps(base: Uint8Array, ops: readonly ByteOp[]): Uint8Array {
  let b: Uint8Array = Uint8Array.from(base);
  for (const { op, at, len, value } of ops) {
    const pos = b.length === 0 ? 0 : at % b.length;
    switch (op) {
      case 0: // bit flip
        if (b.length > 0) b[pos]! ^= 1 << (value & 7);
        break;
      case 1: // truncate
        b = b.subarray(0, b.length === 0 ? 0 : at % (b.length + 1));
        break;
      case 2: // set a byte
        if (b.length > 0) b[pos] = value;
        break;
      case 3: {
        // insert bytes
        const ins = Uint8Array.from({ length: 1 + (len % 8) }, (_, i) => (value * (i + 7)) & 0xff);
        b = concat(b.subarray(0, pos), ins, b.subarray(pos));
        break;
      }
      case 4: // delete a range
        b = concat(b.subarray(0, pos), b.subarray(pos + 1 + len));
        break;
      case 5: // duplicate a range
        b = concat(b.subarray(0, pos + len), b.subarray(pos, pos + len), b.subarray(pos + len));
        break;
      case 6: // a CBOR-significant byte
        if (b.length > 0) b[pos] = INTERESTING_BYTES[value % INTERESTING_BYTES.length]!;
        break;
      case 7: {
        // a huge length or number head
        const run = Uint8Array.from(INTERESTING_RUNS[value % INTERESTING_RUNS.length]!);
        b = concat(b.subarray(0, pos), run, b.subarray(pos + (len % 3 === 0 ? run.length : 0)));
        break;
      }
      default: // off-by-one in a length head: +-1 on one byte
        if (b.length > 0) b[pos] = (b[pos]! + (value & 1 ? 1 : 255)) & 0xff;
    }
  }
  return b;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// Lenient codec for the CBOR-aware mutations: maps stay Maps, byte strings stay Uint8Array.
const decoder = new Decoder({ mapsAsObjects: false, useRecords: false } as never);
const encoder = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false } as never);

function lenientDecode(b: Uint8Array): unknown {
  try {
    return decoder.decode(b);
  } catch {
    return undefined;
  }
}

/** Values a CBOR node is replaced with. */
function interestingValue(k: number, original: unknown): unknown {
  switch (k % 24) {
    case 0:
      return new Uint8Array(0);
    case 1:
      return new Uint8Array(33).fill(0xaa);
    case 2:
      return -1;
    case 3:
      return 2 ** 32;
    case 4:
      return 2 ** 53 + 2;
    case 5:
      return -(2 ** 63);
    case 6:
      return 1.5;
    case 7:
      return Number.NaN;
    case 8:
      return '';
    case 9:
      return 'x'.repeat(300);
    case 10:
      return null;
    case 11:
      return undefined;
    case 12:
      return true;
    case 13:
      return [];
    case 14:
      return new Map();
    case 15:
      return new Map([[99, 1]]);
    case 16:
      return new Tag(original, 18);
    case 17:
      return new Tag(original, 61);
    case 18:
      return [original, original];
    case 19:
      return 0;
    case 20:
      return 0xffffffff;
    case 21:
      return '\u0000\u00ff\ud7ff';
    case 22:
      return 2n ** 64n + 1n;
    default:
      return original instanceof Uint8Array ? original.subarray(0, original.length >> 1) : original;
  }
}

interface Slot {
  get(): unknown;
  set(v: unknown): void;
}

/** Collects the nodes of a decoded value (and of CBOR held in its byte strings, two levels deep). */
function slots(root: { v: unknown }, out: Slot[], depth: number): void {
  const visit = (get: () => unknown, set: (v: unknown) => void, d: number): void => {
    if (out.length > 256) return;
    out.push({ get, set });
    const v = get();
    if (Array.isArray(v)) {
      v.forEach((_, i) =>
        visit(
          () => v[i],
          (x) => (v[i] = x),
          d,
        ),
      );
    } else if (v instanceof Map) {
      for (const key of [...v.keys()]) {
        visit(
          () => v.get(key),
          (x) => v.set(key, x),
          d,
        );
        // The key itself: replace it, keeping the value.
        out.push({
          get: () => key,
          set: (x) => {
            const val = v.get(key);
            v.delete(key);
            v.set(x, val);
          },
        });
      }
    } else if (v instanceof Tag) {
      visit(
        () => v.value,
        (x) => (v.value = x),
        d,
      );
    } else if (v instanceof Uint8Array && d < depth && v.length > 0) {
      const inner = lenientDecode(v);
      if (inner !== undefined && typeof inner === 'object' && inner !== null) {
        const box = { v: inner };
        const before = out.length;
        slots(box, out, depth - 1);
        // Re-encode the outer byte string whenever an inner node changes.
        for (let i = before; i < out.length; i++) {
          const s = out[i]!;
          out[i] = {
            get: s.get,
            set: (x) => {
              s.set(x);
              try {
                set(encoder.encode(box.v));
              } catch {
                // unencodable: leave the outer bytes as they were
              }
            },
          };
        }
      }
    }
  };
  visit(
    () => root.v,
    (x) => (root.v = x),
    0,
  );
}

/** Decodes `base`, replaces one node (picked by `pick`) by an interesting value, encodes it again. */
export function cborMutate(base: Uint8Array, pick: number, kind: number): Uint8Array {
  const decoded = lenientDecode(base);
  if (decoded === undefined) return base;
  const root = { v: decoded };
  const all: Slot[] = [];
  slots(root, all, 2);
  const slot = all[pick % all.length];
  if (slot === undefined) return base;
  slot.set(interestingValue(kind, slot.get()));
  try {
    return new Uint8Array(encoder.encode(root.v));
  } catch {
    return base;
  }
}

/** The fuzz input arbitrary for a target with these seeds. */
export function inputArbitrary(seeds: readonly Uint8Array[], maxRandomBytes = 300): fc.Arbitrary<Uint8Array> {
  const n = Math.max(1, seeds.length);
  const seed = (i: number): Uint8Array => seeds[i % n] ?? new Uint8Array(0);
  const random = fc.uint8Array({ maxLength: maxRandomBytes });
  const mutated = fc
    .tuple(fc.nat(), fc.array(byteOp, { minLength: 1, maxLength: 5 }))
    .map(([i, ops]) => applyByteOps(seed(i), ops));
  const spliced = fc.tuple(fc.nat(), fc.nat(), fc.nat(), fc.nat()).map(([i, j, a, b]) => {
    const x = seed(i);
    const y = seed(j);
    return concat(x.subarray(0, a % (x.length + 1)), y.subarray(b % (y.length + 1)));
  });
  const structured = fc
    .tuple(fc.nat(), fc.nat(), fc.nat(), fc.array(byteOp, { maxLength: 1 }))
    .map(([i, pick, kind, ops]) => applyByteOps(cborMutate(seed(i), pick, kind), ops));
  if (seeds.length === 0) return random;
  return fc.oneof(
    { arbitrary: random, weight: 1 },
    { arbitrary: mutated, weight: 4 },
    { arbitrary: spliced, weight: 1 },
    { arbitrary: structured, weight: 3 },
  );
}
