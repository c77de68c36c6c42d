/**
 * The lock's one-pass audit record writer (`src/lock/audit-record.ts`) against the protocol's
 * `encodeAuditRecord`, its oracle: the same bytes for every record it writes (Ed25519 is deterministic), and
 * the same coded refusal for every record the protocol refuses.
 */
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../protocol/src/errors.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import type { AuditRecord } from '../../protocol/src/mqtt.js';
import { encodeAuditRecord, verifyAuditRecord } from '../../protocol/src/mqtt.js';
import { Command } from '../../protocol/src/pop.js';
import { Status } from '../../protocol/src/status.js';
import { AuditRecordWriter } from '../src/lock/audit-record.js';

const key = generateKeyPair('EdDSA');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const base: AuditRecord = {
  lockId: 'lock-7',
  sequence: 42,
  epoch: 7,
  time: 1_800_000_010,
  previousHash: new Uint8Array(32).fill(3),
  event: 'unlock',
  status: Status.OK,
  command: Command.UNLOCK,
  tokenId: new Uint8Array(16).fill(9),
  rider: 'bianca',
  detail: new Map<string, number | boolean | string>([
    ['peer', 'aa:bb:cc:dd:ee:ff'],
    ['signers', '0123456789abcdef.fedcba9876543210'],
    ['holder', '0011223344556677'],
  ]),
};

/** Both give the same bytes, or both throw the same coded error. */
function expectSame(writer: AuditRecordWriter, r: AuditRecord): 'written' | 'refused' {
  let want: Uint8Array | ProtocolError;
  try {
    want = encodeAuditRecord(r, key);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    want = e;
  }
  if (want instanceof ProtocolError) {
    let got: unknown;
    try {
      writer.encode(r);
    } catch (e) {
      got = e;
    }
    expect(got).toBeInstanceOf(ProtocolError);
    expect((got as ProtocolError).code).toBe(want.code);
    expect((got as ProtocolError).message).toBe(want.message);
    return 'refused';
  }
  expect(hex(writer.encode(r))).toBe(hex(want));
  return 'written';
}

describe('AuditRecordWriter', () => {
  it('writes exactly the bytes of encodeAuditRecord, across field sizes and optional fields', () => {
    const writer = new AuditRecordWriter(key);
    const ints = [1, 23, 24, 255, 256, 65_535, 65_536, 0xffff_fffe, 0xffff_ffff];
    let written = 0;
    for (const n of ints) {
      for (const r of [
        { ...base, sequence: n },
        { ...base, epoch: n, time: n - 1 },
        { ...base, detail: new Map([['count', n - 1]]) },
      ]) {
        if (expectSame(writer, r) === 'written') written++;
      }
    }
    const { command: _c, tokenId: _t, rider: _r, ...bare } = base;
    for (const r of [
      bare,
      { ...bare, event: 'boot', status: Status.SAFE_MODE, detail: new Map() },
      {
        ...base,
        detail: new Map<string, number | boolean | string>([
          ['ok', true],
          ['no', false],
        ]),
      },
      { ...base, rider: 'r'.repeat(64), tokenId: new Uint8Array(1) },
      { ...base, tokenId: new Uint8Array(32), command: Command.READ_AUDIT, status: Status.SCOPE_DENIED },
      {
        ...base,
        detail: new Map(Array.from({ length: 16 }, (_, i) => [`k${i}`, 'v'.repeat(8)] as [string, string])),
      },
    ]) {
      expect(expectSame(writer, r)).toBe('written');
      written++;
    }
    expect(written).toBeGreaterThan(30);
    // The cases above that the protocol accepts are all written in one pass, none handed over.
    expect(writer.fallbacks).toBe(0);
    expect(verifyAuditRecord(writer.encode(base), key.publicKey, 'lock-7')).toMatchObject({
      rider: 'bianca',
    });
  });

  it('hands what it does not write to encodeAuditRecord: the same bytes, or the same coded refusal', () => {
    const writer = new AuditRecordWriter(key);
    const cases: [string, AuditRecord, 'written' | 'refused'][] = [
      ['a non-ASCII rider', { ...base, rider: 'Zoë' }, 'written'],
      ['an empty detail text', { ...base, detail: new Map([['note', '']]) }, 'written'],
      ['a rider of 65 characters', { ...base, rider: 'r'.repeat(65) }, 'refused'],
      ['an event in capitals', { ...base, event: 'Unlock' }, 'refused'],
      ['a lock id in capitals', { ...base, lockId: 'Lock-7' }, 'refused'],
      ['sequence 0', { ...base, sequence: 0 }, 'refused'],
      ['sequence 2^32', { ...base, sequence: 2 ** 32 }, 'refused'],
      ['a 31-byte previous hash', { ...base, previousHash: new Uint8Array(31) }, 'refused'],
      ['an empty token id', { ...base, tokenId: new Uint8Array(0) }, 'refused'],
      ['a 33-byte token id', { ...base, tokenId: new Uint8Array(33) }, 'refused'],
      ['an unknown status', { ...base, status: 0xee as Status }, 'refused'],
      ['an unknown command', { ...base, command: 99 as Command }, 'refused'],
      ['a negative detail value', { ...base, detail: new Map([['n', -1]]) }, 'written'],
      ['a detail key with a capital', { ...base, detail: new Map([['Peer', 1]]) }, 'refused'],
      [
        '17 detail entries',
        { ...base, detail: new Map(Array.from({ length: 17 }, (_, i) => [`k${i}`, i] as [string, number])) },
        'refused',
      ],
    ];
    for (const [what, r, outcome] of cases) {
      expect([what, expectSame(writer, r)]).toEqual([what, outcome]);
    }
    // Every refused case reached the protocol's encoder (once by the oracle, once handed over by the writer).
    expect(writer.fallbacks).toBe(cases.length);
  });
});
