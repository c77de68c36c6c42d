// The one-pass decoders ([TANDEM-CBOR-10]) against the general paths they shortcut, kept as oracles: the
// token's envelope and claims readers against decodeStrict + the field checks, and decodeStrict's one pass
// against SPEC.md §2's walk + cbor-x. On the vectors, on inputs built to sit on every edge the readers check,
// and on seeded random mutations (bounded counts), the public decoders must accept exactly what the general
// path accepts, with the same value, and refuse with the same code and message. Also the chain hash and the
// Sig_structure, now written byte by byte, against cbor-x.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, decodeStrict, decodeStrictGeneral, encode } from '../src/cbor.js';
import type { CborLimits, CborValue } from '../src/cbor.js';
import { chainHash } from '../src/chain.js';
import { HEADER, decodeSign1, decodeSign1General, readSign1, sigStructure, signSign1 } from '../src/cose.js';
import type { Sign1 } from '../src/cose.js';
import { ProtocolError } from '../src/errors.js';
import { generateKeyPair } from '../src/keys.js';
import type { PublicKey } from '../src/keys.js';
import {
  TOKEN_LIMITS,
  coseKeyOf,
  decodeToken,
  encodeClaims,
  mintToken,
  parseClaims,
  parseClaimsGeneral,
  readClaims,
} from '../src/token.js';
import type { DecodedToken, MintClaims, TokenClaims } from '../src/token.js';
import { claims as typicalClaims, world } from './fixtures.js';
import { mutate, rng } from './fuzz.js';

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** A comparable rendering of a decoded value: bytes as hex, maps as ordered entries, keys by alg and bytes. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return `h'${hex(v)}'`;
  if (v instanceof Map) return { map: [...v].map(([k, x]) => [k, plain(x)]) };
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') {
    if ('key' in v && 'raw' in v && 'alg' in v) {
      const k = v as PublicKey;
      return { alg: k.alg, raw: hex(k.raw), spki: hex(k.key.export({ format: 'der', type: 'spki' })) };
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

/** `accepted <value>` or `<code>: <message>`; anything but a ProtocolError fails the test. */
function run(f: () => unknown): { verdict: string; value?: unknown } {
  try {
    return { verdict: 'accepted', value: plain(f()) };
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    return { verdict: `${e.code}: ${e.message}` };
  }
}

// decodeToken as it was before the readers: the general envelope, the content-type rule, general claims.
function decodeTokenGeneral(bytes: Uint8Array): DecodedToken {
  const sign1 = decodeSign1General(bytes, TOKEN_LIMITS, [61, 18]);
  if (sign1.protectedHeader.has(HEADER.contentType) || sign1.unprotectedHeader.has(HEADER.contentType)) {
    throw new ProtocolError(
      'ERR_COSE_INVALID',
      'a token carries no COSE "content type" Header Parameter (TANDEM-TOK-1)',
    );
  }
  return { bytes, sign1, claims: parseClaimsGeneral(sign1.payload) };
}

/**
 * Every head of a well-formed item re-encoded in each longer form (RFC 8949 §3.1: 1, 2, 4 and 8 bytes of
 * argument): the non-shortest encodings [TANDEM-CBOR-2] refuses, at every position a reader reads a head.
 */
function widenings(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const item = (pos: number): number => {
    const ib = b[pos]!;
    const major = ib >> 5;
    const ai = ib & 31;
    if (major === 7) return pos + 1 + (ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : ai === 27 ? 8 : 0);
    const size = ai < 24 ? 0 : ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : 8;
    let arg = 0;
    for (let i = 0; i < size; i++) arg = arg * 256 + b[pos + 1 + i]!;
    if (ai < 24) arg = ai;
    const next = pos + 1 + size;
    for (const [wai, wsize] of [
      [24, 1],
      [25, 2],
      [26, 4],
      [27, 8],
    ] as const) {
      if (wsize <= size || arg >= 2 ** (8 * wsize)) continue;
      const head = [(major << 5) | wai];
      for (let i = wsize - 1; i >= 0; i--) head.push(Math.floor(arg / 2 ** (8 * i)) % 256);
      out.push(Uint8Array.from([...b.subarray(0, pos), ...head, ...b.subarray(next)]));
    }
    if (major === 2 || major === 3) return next + arg;
    if (major === 4 || major === 5) {
      let p = next;
      for (let i = 0; i < arg * (major === 5 ? 2 : 1); i++) p = item(p);
      return p;
    }
    if (major === 6) return item(next);
    return next;
  };
  item(0);
  return out;
}

interface Tally {
  fastAccepted: number;
  generalAccepted: number;
  refused: number;
}

function checkClaims(payload: Uint8Array, tally: Tally): void {
  const general = run(() => parseClaimsGeneral(payload));
  const fast = readClaims(payload);
  if (fast !== undefined) {
    tally.fastAccepted++;
    expect(general.verdict, `fast path accepted what the general path refuses: ${hex(payload)}`).toBe(
      'accepted',
    );
    expect(plain(fast), hex(payload)).toEqual(general.value);
  }
  if (general.verdict === 'accepted') tally.generalAccepted++;
  else tally.refused++;
  expect(
    run(() => parseClaims(payload)),
    hex(payload),
  ).toEqual(general);
}

const LIMIT_SETS: [CborLimits, readonly number[]][] = [
  [TOKEN_LIMITS, [61, 18]],
  [DEFAULT_LIMITS, [18]],
  [{ maxBytes: 200, maxDepth: 2, maxItems: 4 }, []],
  [{ maxBytes: 4096, maxDepth: 1, maxItems: 8 }, []],
  [{ maxBytes: 4096, maxDepth: 3, maxItems: 3 }, []],
];

function checkSign1(bytes: Uint8Array, tally: Tally): void {
  for (const [limits, tags] of LIMIT_SETS) {
    const general = run(() => decodeSign1General(bytes, limits, tags));
    if (limits.maxDepth >= 2 && limits.maxItems >= 4) {
      const fast: Sign1 | undefined = readSign1(bytes, limits.maxBytes);
      if (fast !== undefined) {
        tally.fastAccepted++;
        expect(general.verdict, `fast envelope accepted what the general path refuses: ${hex(bytes)}`).toBe(
          'accepted',
        );
        expect(plain(fast), hex(bytes)).toEqual(general.value);
      }
    }
    if (general.verdict === 'accepted') tally.generalAccepted++;
    else tally.refused++;
    expect(
      run(() => decodeSign1(bytes, limits, tags)),
      hex(bytes),
    ).toEqual(general);
  }
  expect(
    run(() => decodeToken(bytes)),
    hex(bytes),
  ).toEqual(run(() => decodeTokenGeneral(bytes)));
}

// Every hex string of every vector file: tokens, requests, signed payloads, CBOR cases.
function vectorBytes(): Uint8Array[] {
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'vectors');
  const out: Uint8Array[] = [];
  const visit = (v: unknown): void => {
    if (typeof v === 'string' && v.length >= 2 && v.length % 2 === 0 && /^[0-9a-f]+$/i.test(v)) {
      out.push(Uint8Array.from(Buffer.from(v, 'hex')));
    } else if (Array.isArray(v)) v.forEach(visit);
    else if (v !== null && typeof v === 'object') Object.values(v).forEach(visit);
  };
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
    visit(JSON.parse(readFileSync(join(dir, f), 'utf8')));
  }
  return out;
}

const w = world();
const ed = generateKeyPair('EdDSA');

// Claims payloads on and around every edge the reader checks, as Tandem encodes them and otherwise.
function claimSeeds(): Uint8Array[] {
  const base = typicalClaims(w);
  const variants: Partial<MintClaims>[] = [
    {},
    { rider: undefined, schedule: undefined },
    { schedule: undefined },
    { rider: 'Zoë 🚲' },
    { rider: 'r'.repeat(64) },
    { iss: 'i'.repeat(64), sub: 's'.repeat(33), aud: 'a'.repeat(24) },
    { maxUses: 1, minRevocation: 0 },
    { maxUses: 0xffffffff, minRevocation: 0xffffffff },
    { exp: 0xffffffff, nbf: 0, iat: 0 },
    { exp: 24, nbf: 23, iat: 24 },
    { cti: new Uint8Array(8) },
    { cti: new Uint8Array(16).fill(0xff) },
    { cnf: ed.publicKey },
    { scope: ['unlock'] },
    { scope: ['unlock', 'lock', 'status', 'manage', 'delegate', 'x!#[]~'] },
    {
      schedule: Array.from({ length: 14 }, (_, i) => ({ days: 1 + i, start: i * 60, end: 1440 })),
    },
    { schedule: [{ days: 127, start: 0, end: 1 }] },
  ];
  const out = variants.map((v) => encodeClaims({ ...base, ...v }));
  // Encodings the minting path would refuse or never emits, built as maps: each must get the general
  // path's verdict (most are refusals; keys out of order and a COSE_Key kid are valid and must decode).
  const good = new Map<number, CborValue>([
    [1, 'tandem'],
    [2, 'adam'],
    [3, 'lock-7f3a'],
    [4, base.exp],
    [5, base.nbf],
    [6, base.iat],
    [7, base.cti],
    [8, new Map([[1, coseKeyOf(w.rider.publicKey)]])],
    [9, 'unlock status'],
    [
      -65537,
      new Map<number, CborValue>([
        [1, 'bianca'],
        [2, [[31, 420, 1200]]],
      ]),
    ],
  ]);
  const edit = (key: number, value: CborValue | undefined): Map<number, CborValue> => {
    const m = new Map(good);
    if (value === undefined) m.delete(key);
    else m.set(key, value);
    return m;
  };
  const tandem = (entries: [number, CborValue][]) => edit(-65537, new Map(entries));
  const ecKey = coseKeyOf(w.rider.publicKey);
  const uncompressed = (() => {
    const jwk = w.rider.publicKey.key.export({ format: 'jwk' });
    return new Map<number, CborValue>([
      [1, 2],
      [-1, 1],
      [-2, Buffer.from(jwk.x!, 'base64url')],
      [-3, Buffer.from(jwk.y!, 'base64url')],
    ]);
  })();
  const cose = (entries: [number, CborValue][]) => edit(8, new Map([[1, new Map(entries)]]));
  const maps: Map<number | string, CborValue>[] = [
    good,
    new Map([...good].reverse()),
    new Map([...good].sort(([a], [b]) => String(a).localeCompare(String(b)))),
    edit(-65537, undefined),
    edit(9, 'unlock  status'),
    edit(9, ' unlock'),
    edit(9, 'unlock '),
    edit(9, 'unlock "status"'),
    edit(9, ''),
    edit(9, 'u'.repeat(128)),
    edit(9, 'u'.repeat(129)),
    edit(1, ''),
    edit(1, 'é'.repeat(64)),
    edit(1, 'é'.repeat(65)),
    edit(2, 7),
    edit(4, -1),
    edit(5, base.exp),
    edit(6, base.exp + 1),
    edit(7, new Uint8Array(7)),
    edit(7, new Uint8Array(17)),
    edit(8, new Map([[2, coseKeyOf(w.rider.publicKey)]])),
    edit(
      8,
      new Map<number, CborValue>([
        [1, ecKey],
        [2, 1],
      ]),
    ),
    cose([...ecKey]),
    cose([...ecKey].reverse()),
    cose([...ecKey, [3, -7]]),
    cose([...ecKey, [3, -8]]),
    cose([...ecKey, [2, Uint8Array.of(1)]]),
    cose([...ecKey, [4, 1]]),
    cose([...uncompressed]),
    cose([...uncompressed, [3, -7]]),
    cose([...ecKey].filter(([k]) => k !== -3)),
    cose([...ecKey].map(([k, v]) => [k, k === -2 ? new Uint8Array(32) : v])),
    cose([...coseKeyOf(ed.publicKey)]),
    cose([...coseKeyOf(ed.publicKey), [-3, 5]]),
    cose([...coseKeyOf(ed.publicKey)].map(([k, v]) => [k, k === -2 ? new Uint8Array(32) : v])),
    cose([
      [1, 1],
      [-1, 1],
      [-2, new Uint8Array(32)],
    ]),
    tandem([]),
    tandem([[1, 'bianca']]),
    tandem([
      [2, [[31, 420, 1200]]],
      [1, 'bianca'],
    ]),
    tandem([[3, 0]]),
    tandem([[5, 1]]),
    tandem([[2, []]]),
    tandem([[2, [[31, 420]]]]),
    tandem([[2, [[0, 420, 1200]]]]),
    tandem([[2, [[128, 420, 1200]]]]),
    tandem([[2, [[31, 1200, 1200]]]]),
    tandem([[2, [[31, 0, 1441]]]]),
    tandem([[2, [[31, -1, 1200]]]]),
    tandem([[2, Array.from({ length: 15 }, () => [1, 0, 1])]]),
    new Map<number | string, CborValue>([...good, ['x', 1]]),
    new Map<number | string, CborValue>([...good, [10, 1]]),
  ];
  for (const m of maps) out.push(encode(m));
  out.push(
    ...widenings(out[0]!),
    ...widenings(out[1]!),
    ...widenings(encode(cose([...uncompressed, [3, -7]]))),
  );
  // A duplicate key, a tag, a float and a 64-bit exp, which the encoder cannot emit: spliced in by hand.
  const typical = out[0]!;
  const expAt = typical.indexOf(0x1a, typical.indexOf(0x04)); // the head of exp (4)
  out.push(
    Uint8Array.from([
      ...typical.subarray(0, expAt),
      ...[0x1b, 0, 0, 0, 1, 0, 0, 0, 0],
      ...typical.subarray(expAt + 5),
    ]),
  );
  out.push(Uint8Array.from([typical[0]! + 1, ...typical.subarray(1), 0x01, 0x61, 0x78]));
  out.push(Uint8Array.from([0xd8, 0x3d, ...typical]));
  // Duplicate keys inside the Tandem claim and the COSE_Key, with the map's count raised to match.
  const oneRider = encode(tandem([[1, 'bianca']]));
  const at = oneRider.length - 9; // a1 01 66 "bianca"
  expect(oneRider[at]).toBe(0xa1);
  out.push(
    Uint8Array.from([
      ...oneRider.subarray(0, at),
      0xa2,
      ...oneRider.subarray(at + 1),
      0x01,
      0x63,
      0x65,
      0x76,
      0x65,
    ]),
  );
  const keyAt = typical.indexOf(0xa4, typical.indexOf(0x08)); // the COSE_Key: a4 01 02 20 01 ...
  expect([...typical.subarray(keyAt, keyAt + 3)]).toEqual([0xa4, 0x01, 0x02]);
  for (const dup of [
    [0x01, 0x02],
    [0x20, 0x01],
  ]) {
    out.push(Uint8Array.from([...typical.subarray(0, keyAt), 0xa5, ...dup, ...typical.subarray(keyAt + 1)]));
  }
  out.push(Uint8Array.from([...typical.subarray(0, typical.length - 1), 0xf9, 0x3c, 0x00]));
  return out;
}

function tokenSeeds(): Uint8Array[] {
  const payload = encodeClaims(typicalClaims(w));
  const seeds = [
    mintToken(typicalClaims(w), w.issuer, w.issuerKid),
    mintToken(typicalClaims(w), w.owner, w.ownerKid),
    mintToken(typicalClaims(w, { cnf: ed.publicKey }), w.rider),
    signSign1(payload, w.issuer, { kid: new Uint8Array(32) }),
    signSign1(payload, w.issuer, { kid: new Uint8Array(33) }),
    signSign1(payload, w.issuer, { kid: new Uint8Array(0) }),
    signSign1(payload, w.issuer, { tags: [18] }),
    signSign1(payload, w.issuer, { tags: [61, 18] }),
    signSign1(payload, w.issuer, { kid: w.issuerKid, protectedHeader: new Map([[3, 41]]) }),
    signSign1(payload, w.issuer, { protectedHeader: new Map([[3, 65_536]]) }),
    signSign1(payload, w.issuer, { protectedHeader: new Map([[3, 'text/plain']]) }),
    signSign1(payload, w.issuer, { unprotectedHeader: new Map([[3, 41]]) }),
    signSign1(payload, w.issuer, { protectedHeader: new Map([[4, w.issuerKid]]) }),
    signSign1(payload, w.issuer, {
      protectedHeader: new Map<number, CborValue>([
        [2, [3]],
        [3, 1],
      ]),
    }),
    signSign1(new Uint8Array(0), w.issuer),
    signSign1(new Uint8Array(300), w.rider, { kid: w.issuerKid }),
  ];
  return [...seeds, ...seeds.slice(0, 9).flatMap(widenings)];
}

describe('one-pass token decoding agrees with the general path [TANDEM-CBOR-10]', () => {
  it('the readers take the typical token, so the unlock path really is the one-pass one', () => {
    const token = mintToken(typicalClaims(w), w.issuer, w.issuerKid);
    const sign1 = readSign1(token, TOKEN_LIMITS.maxBytes);
    expect(sign1).toBeDefined();
    const claims: TokenClaims | undefined = readClaims(sign1!.payload);
    expect(claims).toBeDefined();
    expect(plain(claims)).toEqual(plain(parseClaimsGeneral(sign1!.payload)));
  });

  it('claims: every edge case and vector payload gets the same verdict and value', () => {
    const tally: Tally = { fastAccepted: 0, generalAccepted: 0, refused: 0 };
    const seeds = [...claimSeeds()];
    for (const b of vectorBytes()) {
      seeds.push(b);
      try {
        seeds.push(decodeSign1General(b, TOKEN_LIMITS, [61, 18]).payload);
      } catch {
        // not an envelope: the bytes themselves are the seed
      }
    }
    for (const s of seeds) checkClaims(s, tally);
    // The seeds reach both paths: the reader takes most accepted payloads, and refusals are many.
    expect(tally.fastAccepted).toBeGreaterThan(20);
    expect(tally.generalAccepted).toBeGreaterThan(tally.fastAccepted);
    expect(tally.refused).toBeGreaterThan(40);
  });

  it('claims: 4,000 seeded mutations get the same verdict and value', () => {
    const r = rng(0x5eed8);
    const seeds = claimSeeds();
    const tally: Tally = { fastAccepted: 0, generalAccepted: 0, refused: 0 };
    // Every other input starts from a payload as Tandem mints it (the first variants), so that mutations
    // the reader still takes (a changed character, a changed id byte) are common.
    const minted = seeds.slice(0, 17);
    for (let i = 0; i < 4000; i++) {
      const from = i % 2 === 0 ? minted[(i / 2) % minted.length]! : seeds[i % seeds.length]!;
      checkClaims(mutate(r, from), tally);
    }
    expect(tally.fastAccepted).toBeGreaterThan(50);
    expect(tally.refused).toBeGreaterThan(1000);
  });

  it('envelope and token: every vector and edge case gets the same verdict and value', () => {
    const tally: Tally = { fastAccepted: 0, generalAccepted: 0, refused: 0 };
    for (const b of [...tokenSeeds(), ...vectorBytes()]) checkSign1(b, tally);
    expect(tally.fastAccepted).toBeGreaterThan(30);
    expect(tally.refused).toBeGreaterThan(100);
  });

  it('envelope and token: 3,000 seeded mutations get the same verdict and value', () => {
    const r = rng(0xc05e);
    const seeds = [...tokenSeeds(), ...vectorBytes().filter((b) => b[0] === 0x84)];
    const tally: Tally = { fastAccepted: 0, generalAccepted: 0, refused: 0 };
    for (let i = 0; i < 3000; i++) checkSign1(mutate(r, seeds[i % seeds.length]!), tally);
    expect(tally.fastAccepted).toBeGreaterThan(100);
    expect(tally.refused).toBeGreaterThan(3000);
  });
});

describe('one-pass decodeStrict agrees with the walk and cbor-x [TANDEM-CBOR-10]', () => {
  const LIMITS: [CborLimits, readonly number[]][] = [
    [DEFAULT_LIMITS, []],
    [TOKEN_LIMITS, [61, 18]],
    [{ maxBytes: 64, maxDepth: 2, maxItems: 3 }, [18]],
    [{ maxBytes: 4096, maxDepth: 1, maxItems: 64 }, []],
  ];
  // Where each byte string of a value lies: cbor-x returns views of the input, and so must the one pass.
  const views = (v: unknown, input: Uint8Array): unknown[] =>
    v instanceof Uint8Array
      ? [v.buffer === input.buffer ? v.byteOffset - input.byteOffset : 'copy']
      : v instanceof Map
        ? [...v.values()].flatMap((x) => views(x, input))
        : Array.isArray(v)
          ? v.flatMap((x) => views(x, input))
          : [];
  const check = (b: Uint8Array) => {
    for (const [limits, tags] of LIMITS) {
      const general = run(() => decodeStrictGeneral(b, limits, tags));
      expect(
        run(() => decodeStrict(b, limits, tags)),
        hex(b),
      ).toEqual(general);
      if (general.verdict === 'accepted') {
        expect(views(decodeStrict(b, limits, tags), b)).toEqual(
          views(decodeStrictGeneral(b, limits, tags), b),
        );
      }
    }
  };
  const seeds = () => [
    ...vectorBytes(),
    ...claimSeeds(),
    ...tokenSeeds(),
    encode(['\ufeffbom', 'x'.repeat(40), 'é'.repeat(40), '', new Uint8Array(0), [], new Map(), null, true]),
    // {-1: 1, 2^40: 2, -2^40: 3, "k": 4, 23: [[[[1]]]]}: 8-byte heads, which cbor-x's encoder cannot emit.
    Uint8Array.from(Buffer.from('a520011b0000010000000000023b000000ffffffffff03616b04178181818101', 'hex')),
  ];

  it('every vector, claims set, token and edge case: same verdict, message and value', () => {
    for (const b of seeds()) check(b);
  });

  it('4,000 seeded mutations and random inputs: same verdict, message and value', () => {
    const r = rng(0xdec0);
    const all = seeds();
    for (let i = 0; i < 4000; i++) {
      check(
        i % 4 === 0
          ? Uint8Array.from({ length: Math.floor(r() * 80) }, () => Math.floor(r() * 256))
          : mutate(r, all[i % all.length]!),
      );
    }
  });
});

describe('byte-built chain hash and Sig_structure equal their cbor-x encodings', () => {
  const r = rng(0xc4a1);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
  // Lengths around every head size boundary (RFC 8949 §3.1), and random ones.
  const EDGES = [0, 1, 23, 24, 25, 255, 256, 257, 1023, 1024, 65_535, 65_536];
  const length = (i: number) => (i % 3 === 0 ? EDGES[i % EDGES.length]! : Math.floor(r() * 400));

  it('chainHash([TANDEM-POP-3]) is SHA-256 of cbor-x encode(chain) for 400 chains of 0 to 23 tokens', () => {
    for (let i = 0; i < 400; i++) {
      const chain = Array.from({ length: i % 24 }, (_, j) => bytes(length(i + j)));
      const old = createHash('sha256').update(encode(chain)).digest();
      expect(hex(chainHash(chain))).toBe(hex(old));
    }
  });

  it('sigStructure (RFC 9052 §4.4) is cbor-x encode(["Signature1", protected, aad, payload])', () => {
    for (let i = 0; i < 300; i++) {
      const [p, aad, payload] = [bytes(length(i)), bytes(length(i + 1) % 40), bytes(length(i + 2))];
      expect(hex(sigStructure(p, payload, aad))).toBe(hex(encode(['Signature1', p, aad, payload])));
    }
    expect(hex(sigStructure(Uint8Array.of(0xa1, 1, 0x27), new Uint8Array(0)))).toBe(
      hex(encode(['Signature1', Uint8Array.of(0xa1, 1, 0x27), new Uint8Array(0), new Uint8Array(0)])),
    );
  });
});
