// Strict CBOR profile, SPEC.md §2 (TANDEM-CBOR-1..8). Each leniency of cbor-x's defaults is shown refused.
import { describe, expect, it } from 'vitest';
import { Encoder, decode as cborxDecode } from 'cbor-x';
import { checkWellFormed, decodeStrict, encode } from '../src/cbor.js';
import { ProtocolError } from '../src/errors.js';
import { outcome as codeOf } from './outcome.js';
import { parseClaims } from '../src/token.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('strict CBOR decoding refuses what cbor-x accepts by default', () => {
  const cases: [string, string, RegExp][] = [
    [
      'duplicate map key (cbor-x keeps the last value)',
      'a2 01 02 01 03',
      /ERR_CBOR_INVALID: CBOR map has duplicate key 1/,
    ],
    ['duplicate negative key', 'a2 20 01 20 02', /duplicate key -1/],
    ['duplicate text key', 'a2 61 61 01 61 61 02', /duplicate key "a"/],
    ['duplicate large key', 'a2 3a00010000 01 3a00010000 02', /duplicate key -65537/],
    ['tag 27 (cbor-x builds a RegExp)', 'd8 1b 82 63 61 62 63 60', /CBOR tag 27 is not allowed/],
    ['tag 1 (date)', 'c1 1a 5612aeb0', /CBOR tag 1 is not allowed/],
    ['cbor-x record tag', 'd9 dfff 82 01 02', /CBOR tag 57343 is not allowed/],
    ['indefinite-length array', '9f 01 ff', /indefinite-length/],
    ['indefinite-length byte string', '5f 41 01 ff', /indefinite-length/],
    ['non-shortest integer', '18 05', /shortest form/],
    ['non-shortest length', '58 03 010203', /shortest form/],
    ['half float', 'f9 3c00', /floating-point/],
    ['double float', 'fb 3ff0000000000000', /floating-point/],
    ['undefined', 'f7', /undefined is not allowed/],
    ['simple value 16', 'f0', /simple value 16/],
    ['invalid UTF-8 text', '62 c3 28', /not valid UTF-8/],
    ['truncated head', '19 01', /truncated/],
    ['truncated byte string', '45 0102', /length 5 exceeds the input/],
    ['huge declared length', '5b 7fffffffffffffff', /exceeds 2\^53-1/],
    ['huge declared length within range', '5a ffffffff 00', /exceeds the input/],
    ['huge declared array', '9a ffffffff', /array of 4294967295 items exceeds 64/],
    ['trailing bytes', '01 02', /1 trailing byte/],
    ['empty input', '', /empty/],
    ['lone break', 'ff', /break/],
    ['map key of wrong type', 'a1 41 00 01', /map key is neither/],
    ['reserved additional information', '1c', /reserved/],
  ];
  for (const [name, bytes, expected] of cases) {
    it(name, () => {
      expect(codeOf(() => decodeStrict(hex(bytes)))).toMatch(expected);
    });
  }

  it('cbor-x itself accepts the duplicate key, keeping the last value (why the walk exists)', () => {
    expect(cborxDecode(hex('a2 01 02 01 03'))).toEqual({ 1: 3 });
  });

  it('deep nesting is refused in bounded time, never a stack overflow', () => {
    const deep = Buffer.alloc(100_000, 0x81);
    expect(codeOf(() => decodeStrict(deep, { maxBytes: 200_000, maxDepth: 8, maxItems: 64 }))).toMatch(
      /nesting deeper than 8/,
    );
  });

  it('oversized input is refused before it is read', () => {
    expect(codeOf(() => decodeStrict(Buffer.alloc(5000)))).toMatch(
      /ERR_TOO_LARGE: CBOR input of 5000 bytes exceeds 4096/,
    );
  });

  it('a tag is accepted only where the caller allows it, and only at the top', () => {
    expect(decodeStrict(hex('d2 80'), undefined, [18])).toMatchObject({ tag: 18 });
    expect(codeOf(() => decodeStrict(hex('81 d2 80'), undefined, [18]))).toMatch(
      /tag 18 is not allowed here/,
    );
    expect(codeOf(() => decodeStrict(hex('d2 d2 80'), undefined, [18]))).toMatch(/tag 18 is not allowed/);
    expect(decodeStrict(hex('d8 3d d2 80'), undefined, [61, 18])).toMatchObject({ tag: 61 });
  });

  it('accepts every kind of value the profile allows', () => {
    const v = decodeStrict(hex('a5 01 20 02 f5 03 f6 61 78 43 010203 3a00010000 82 f4 1a00010000'));
    expect(v).toEqual(
      new Map<unknown, unknown>([
        [1, -1],
        [2, true],
        [3, null],
        ['x', Buffer.from([1, 2, 3])],
        [-65537, [false, 65536]],
      ]),
    );
  });

  it('integers with an 8-byte head decode as numbers up to 2^53-1 [TANDEM-CBOR-2]', () => {
    expect(decodeStrict(hex('1b 0000000100000000'))).toBe(2 ** 32);
    expect(decodeStrict(hex('1b 001fffffffffffff'))).toBe(Number.MAX_SAFE_INTEGER);
    expect(decodeStrict(hex('3b 001ffffffffffffe'))).toBe(-Number.MAX_SAFE_INTEGER);
    expect(decodeStrict(hex('a1 1b 0000000100000000 01'))).toEqual(new Map([[2 ** 32, 1]]));
    // Such a key in a token's claims is refused by name, not with a TypeError from JSON.stringify(BigInt).
    expect(codeOf(() => parseClaims(hex('a1 3b 0000000100000000 01')))).toBe(
      'ERR_CLAIM_INVALID: CWT claims set has unknown claim -4294967297 (Tandem accepts 1-9 and -65537)',
    );
  });

  it('every byte string of length 0..3 gets a value or a coded error, never another exception', () => {
    const b = Buffer.alloc(3);
    for (let len = 0; len <= 3; len++) {
      const n = 1 << (8 * len);
      for (let i = 0; i < n; i += len === 3 ? 251 : 1) {
        b.writeUIntBE(i, 0, Math.max(len, 1));
        const input = b.subarray(0, len);
        try {
          decodeStrict(input);
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
        }
      }
    }
  });
});

describe('strict CBOR encoding', () => {
  it('emits what it accepts: maps, byte strings without tag 64, shortest integers', () => {
    const bytes = encode(
      new Map<number, unknown>([
        [1, new Uint8Array([9])],
        [-65537, 'x'],
      ]),
    );
    expect(Buffer.from(bytes).toString('hex')).toBe('a2014109' + '3a00010000' + '6178');
    expect(() => checkWellFormed(bytes)).not.toThrow();
    expect(() => checkWellFormed(new Uint8Array(bytes))).not.toThrow();
  });

  it('refuses to emit an integer cbor-x would turn into a float', () => {
    expect(codeOf(() => encode(2 ** 32))).toMatch(/floating-point/);
    expect(codeOf(() => encode(1.5))).toMatch(/floating-point/);
  });

  it('the default cbor-x encoder emits record tags that the strict decoder refuses', () => {
    const lenient = new Encoder();
    const bytes = lenient.encode({ a: 1, b: 2 });
    expect(codeOf(() => decodeStrict(bytes))).toMatch(/ERR_CBOR_INVALID: CBOR tag \d+ is not allowed/);
  });
});
