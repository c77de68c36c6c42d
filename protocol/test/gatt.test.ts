// BLE GATT contract, SPEC.md §8 (TANDEM-GATT-1..10): UUIDs, advertising and lock tag, framing at ATT MTU
// 23/185/517, every refusal of the Reassembler, and the challenge, result and lock info bodies.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { CborValue } from '../src/cbor.js';
import { encode } from '../src/cbor.js';
import { ProtocolError } from '../src/errors.js';
import { Status } from '../src/status.js';
import { Command } from '../src/pop.js';
import {
  CHARACTERISTIC,
  GATT_SERVICE_UUID,
  MAX_MESSAGE_BYTES,
  MessageType,
  Reassembler,
  WRITABLE_TYPES,
  advertisingData,
  compactUuid,
  decodeChallenge,
  decodeLockInfo,
  decodeResult,
  encodeChallenge,
  encodeLockInfo,
  encodeResult,
  frameMessage,
  lockTag,
  GATT_DATABASE_VERSION,
  parseServiceData,
  scanResponseData,
} from '../src/gatt.js';
import type { Challenge, LockInfo, Result } from '../src/gatt.js';
import { outcome as codeOf } from './outcome.js';
import { fuzz, rng } from './fuzz.js';

const body = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('service, characteristics and advertising (TANDEM-GATT-1..3)', () => {
  it('uses one random 128-bit base, 0000 for the service and 0001..0006 for characteristics', () => {
    expect(GATT_SERVICE_UUID).toBe('7a3d0000-5c1e-4b8a-9f2e-1d6c0a7e4b10');
    expect(Object.values(CHARACTERISTIC)).toEqual(
      [1, 2, 3, 4, 5, 6].map((n) => `7a3d000${n}-5c1e-4b8a-9f2e-1d6c0a7e4b10`),
    );
    expect(compactUuid(CHARACTERISTIC.relay)).toBe('7a3d00065c1e4b8a9f2e1d6c0a7e4b10');
  });

  it('lock tag = first 4 bytes of SHA-256("tandem-lock:" + lock id)', () => {
    const expected = createHash('sha256').update('tandem-lock:lock-7').digest().subarray(0, 4);
    expect(hex(lockTag('lock-7'))).toBe(hex(expected));
    expect(hex(lockTag('lock-7'))).not.toBe(hex(lockTag('lock-8')));
  });

  it('lock tag refuses an invalid lock id', () => {
    expect(codeOf(() => lockTag('Lock 7'))).toMatch(/^ERR_MESSAGE_INVALID: lock tag: lock id must match/);
  });

  it('advertising data: flags and the service UUID little-endian, within 31 bytes', () => {
    const ad = advertisingData();
    expect(ad.length).toBe(21);
    expect(hex(ad.subarray(0, 5))).toBe('0201061107');
    expect(hex(ad.subarray(5))).toBe('104b7e0a6c1d2e9f8a4b1e5c00003d7a');
  });

  it('scan response: 128-bit service data with the lock tag and flags; parseServiceData reads it back', () => {
    const sr = scanResponseData('lock-7', { relayPending: true, alarm: false });
    expect(sr.length).toBe(23);
    expect(hex(sr.subarray(0, 2))).toBe('1621');
    const parsed = parseServiceData(sr.subarray(18));
    expect(hex(parsed.tag)).toBe(hex(lockTag('lock-7')));
    expect(parsed.flags).toEqual({ relayPending: true, alarm: false });
    expect(codeOf(() => parseServiceData(sr.subarray(17)))).toMatch(
      /^ERR_MESSAGE_INVALID: Tandem service data must be 5 bytes/,
    );
  });

  it('[TANDEM-GATT-16] scan response: the GATT database version in flag bits 2-7, read back; 0..63 only', () => {
    const sr = scanResponseData('lock-7', { relayPending: true, alarm: false });
    expect(hex(sr.subarray(22))).toBe('05'); // relay pending, version 1 (SPEC §8.2 example)
    expect(parseServiceData(sr.subarray(18)).databaseVersion).toBe(GATT_DATABASE_VERSION);
    const v63 = scanResponseData('lock-7', { relayPending: false, alarm: true }, 63);
    expect(parseServiceData(v63.subarray(18))).toMatchObject({
      databaseVersion: 63,
      flags: { relayPending: false, alarm: true },
    });
    expect(
      parseServiceData(scanResponseData('lock-7', { relayPending: false, alarm: false }, 0).subarray(18))
        .databaseVersion,
    ).toBe(0);
    expect(codeOf(() => scanResponseData('lock-7', { relayPending: false, alarm: false }, 64))).toBe(
      'ERR_MESSAGE_INVALID: GATT database version must be an integer in 0..63',
    );
  });

  it('message types are distinct single bytes, 0 reserved', () => {
    const values = Object.values(MessageType);
    expect(new Set(values).size).toBe(values.length);
    for (const v of values) expect(v).toBeGreaterThan(0);
    expect(WRITABLE_TYPES.delivery).toEqual([
      MessageType.timeBeacon,
      MessageType.revocationUpdate,
      MessageType.anchorUpdate,
    ]);
  });
});

describe('framing round trips (TANDEM-GATT-5, TANDEM-GATT-6)', () => {
  for (const mtu of [23, 185, 517]) {
    it(`ATT MTU ${mtu}: every body length 0..600 round-trips, each frame at most MTU - 3 bytes`, () => {
      const r = new Reassembler();
      for (let n = 0; n <= 600; n++) {
        const b = body(n);
        const frames = frameMessage(MessageType.unlockRequest, b, mtu);
        const first = mtu - 7;
        const expectedFrames = n <= first ? 1 : 1 + Math.ceil((n - first) / (mtu - 4));
        expect(frames).toHaveLength(expectedFrames);
        let out: ReturnType<Reassembler['push']>;
        frames.forEach((f, i) => {
          expect(f.length).toBeLessThanOrEqual(mtu - 3);
          out = r.push(f);
          if (i < frames.length - 1) expect(out).toBeUndefined();
        });
        expect(out!.type).toBe(MessageType.unlockRequest);
        expect(hex(out!.body)).toBe(hex(b));
        expect(r.busy).toBe(false);
      }
    });
  }

  it('at MTU 185 a body of up to 178 bytes is one frame, 179 is two', () => {
    expect(frameMessage(1, body(178), 185)).toHaveLength(1);
    expect(frameMessage(1, body(179), 185)).toHaveLength(2);
  });

  it('at MTU 185 an unlock-size request (359 bytes: 178 + 181) is two frames; 360 needs three', () => {
    const frames = frameMessage(MessageType.unlockRequest, body(359), 185);
    expect(frames.map((f) => f.length)).toEqual([182, 182]);
    expect(hex(frames[0]!.subarray(0, 4))).toBe('80020167'); // first, seq 0; type 2; length 359
    expect(frames[1]![0]).toBe(0x41); // last, seq 1
    expect(frameMessage(MessageType.unlockRequest, body(360), 185)).toHaveLength(3);
  });

  it('an empty body is one 4-byte frame', () => {
    expect(frameMessage(3, new Uint8Array(0), 23).map(hex)).toEqual(['c0030000']);
  });

  it('the largest body (4096) round-trips at MTU 23, sequence numbers wrapping mod 64', () => {
    const b = body(MAX_MESSAGE_BYTES);
    const frames = frameMessage(MessageType.revocationUpdate, b, 23);
    expect(frames.length).toBeGreaterThan(64);
    expect(frames[64]![0]! & 0x3f).toBe(0);
    const r = new Reassembler();
    let out;
    for (const f of frames) out = r.push(f);
    expect(hex(out!.body)).toBe(hex(b));
  });

  it('frameMessage refuses MTU below 23 or above 517, type 0, and a body over 4096', () => {
    expect(codeOf(() => frameMessage(1, body(1), 22))).toMatch(
      /^ERR_FRAME_INVALID: ATT MTU 22 must be 23 to 517/,
    );
    expect(codeOf(() => frameMessage(1, body(1), 518))).toMatch(/^ERR_FRAME_INVALID: ATT MTU 518/);
    expect(codeOf(() => frameMessage(0, body(1), 23))).toMatch(
      /^ERR_FRAME_INVALID: message type 0 must be 1 to 255/,
    );
    expect(codeOf(() => frameMessage(1, body(4097), 185))).toMatch(
      /^ERR_TOO_LARGE: message body of 4097 bytes exceeds 4096/,
    );
  });
});

describe('Reassembler refusals (TANDEM-GATT-7)', () => {
  const three = frameMessage(MessageType.unlockRequest, body(400), 185); // 178 + 181 + 41
  const refuse = (frames: Uint8Array[], options = {}): string => {
    const r = new Reassembler(options);
    return codeOf(() => {
      for (const f of frames) r.push(f);
    });
  };
  const withHeader = (f: Uint8Array, h: number): Uint8Array => Uint8Array.from([h, ...f.subarray(1)]);

  it('an empty frame', () => {
    expect(refuse([new Uint8Array(0)])).toBe('ERR_FRAME_INVALID: empty frame');
  });

  it('a continuation without a first frame', () => {
    expect(refuse([three[1]!])).toBe(
      'ERR_FRAME_INVALID: continuation frame (sequence 1) without a first frame',
    );
  });

  it('an out-of-order sequence number (a frame skipped)', () => {
    expect(refuse([three[0]!, three[2]!])).toBe(
      'ERR_FRAME_INVALID: frame sequence number 2 out of order, expected 1',
    );
  });

  it('a repeated frame', () => {
    expect(refuse([three[0]!, three[1]!, three[1]!])).toBe(
      'ERR_FRAME_INVALID: frame sequence number 1 out of order, expected 2',
    );
  });

  it('a new first frame while a message is incomplete: the old one is discarded and reported', () => {
    const r = new Reassembler();
    r.push(three[0]!);
    expect(codeOf(() => r.push(three[0]!))).toBe(
      'ERR_FRAME_INVALID: first frame of a new message while message type 0x02 was incomplete (178 of 400 bytes); both discarded, resend',
    );
    expect(r.busy).toBe(false);
  });

  it('a declared length over 4096 is refused at the first frame, before buffering', () => {
    const f = Uint8Array.from([0x80, 0x02, 0x10, 0x01, 0xaa]); // length 4097
    const r = new Reassembler();
    expect(codeOf(() => r.push(f))).toBe('ERR_TOO_LARGE: declared message length 4097 exceeds 4096');
    expect(r.busy).toBe(false);
  });

  it('a declared length over a smaller configured maximum', () => {
    expect(refuse([three[0]!], { maxLength: 256 })).toBe(
      'ERR_TOO_LARGE: declared message length 400 exceeds 256',
    );
  });

  it('a type not accepted on this characteristic', () => {
    expect(refuse([three[0]!], { allowedTypes: WRITABLE_TYPES.delivery })).toBe(
      'ERR_FRAME_INVALID: message type 0x02 is not accepted here',
    );
  });

  it('frames overrunning the declared length', () => {
    const long = Uint8Array.from([...three[2]!, 1, 2, 3]);
    expect(refuse([three[0]!, three[1]!, long])).toBe(
      'ERR_FRAME_INVALID: frame 2 carries 44 bytes, overrunning the declared length by 3',
    );
  });

  it('a first frame carrying more than the declared length', () => {
    expect(refuse([Uint8Array.from([0xc0, 0x02, 0x00, 0x01, 0xaa, 0xbb])])).toBe(
      'ERR_FRAME_INVALID: first frame carries 2 bytes, more than the declared length 1',
    );
  });

  it('a last flag before the declared length is reached', () => {
    expect(refuse([three[0]!, withHeader(three[1]!, 0x41)])).toBe(
      'ERR_FRAME_INVALID: last flag after 359 of 400 declared bytes',
    );
    expect(refuse([withHeader(three[0]!, 0xc0)])).toBe(
      'ERR_FRAME_INVALID: last flag after 178 of 400 declared bytes',
    );
  });

  it('a frame that fills the declared length without the last flag', () => {
    expect(refuse([three[0]!, three[1]!, withHeader(three[2]!, 0x02)])).toBe(
      'ERR_FRAME_INVALID: frame 2 fills the declared length 400 but lacks the last flag',
    );
    expect(refuse([Uint8Array.from([0x80, 0x02, 0x00, 0x00])])).toBe(
      'ERR_FRAME_INVALID: first frame fills the declared length 0 but lacks the last flag',
    );
  });

  it('empty frames: a first frame with no body byte, a continuation with no body byte', () => {
    expect(refuse([Uint8Array.from([0x80, 0x02, 0x00, 0x05])])).toBe(
      'ERR_FRAME_INVALID: empty first frame: it carries no body byte',
    );
    expect(refuse([three[0]!, Uint8Array.of(0x01)])).toBe(
      'ERR_FRAME_INVALID: empty continuation frame (sequence 1)',
    );
  });

  it('a first frame shorter than its header, with a non-zero sequence, or of reserved type 0', () => {
    expect(refuse([Uint8Array.of(0xc0, 0x02, 0x00)])).toBe(
      'ERR_FRAME_INVALID: first frame of 3 bytes is shorter than its 4-byte header',
    );
    expect(refuse([withHeader(three[0]!, 0x85)])).toBe(
      'ERR_FRAME_INVALID: first frame has sequence number 5, expected 0',
    );
    expect(refuse([Uint8Array.of(0xc0, 0x00, 0x00, 0x00)])).toBe(
      'ERR_FRAME_INVALID: message type 0x00 is reserved',
    );
  });

  it('after any refusal the reassembler is idle and the next message is accepted whole', () => {
    const r = new Reassembler();
    r.push(three[0]!);
    expect(codeOf(() => r.push(three[2]!))).toMatch(/out of order/);
    expect(r.busy).toBe(false);
    let out;
    for (const f of three) out = r.push(f);
    expect(out!.body.length).toBe(400);
  });

  it('reset() discards a partial message (disconnect or timeout)', () => {
    const r = new Reassembler();
    r.push(three[0]!);
    expect(r.busy).toBe(true);
    r.reset();
    expect(r.busy).toBe(false);
    expect(codeOf(() => r.push(three[1]!))).toMatch(/without a first frame/);
  });

  it('refuses an invalid maxLength option', () => {
    expect(codeOf(() => new Reassembler({ maxLength: 5000 }))).toMatch(
      /^ERR_FRAME_INVALID: reassembler maxLength 5000/,
    );
  });
});

const CHALLENGE: Challenge = {
  lockId: 'lock-7',
  nonce: Uint8Array.from({ length: 16 }, (_, i) => i),
  lockTime: 1_800_000_000,
  uncertainty: 4,
  revocationVersion: 12,
};
const RESULT: Result = {
  status: Status.OK,
  answers: MessageType.unlockRequest,
  command: Command.UNLOCK,
  state: 'unlocked',
  lockTime: 1_800_000_001,
  nonce: CHALLENGE.nonce,
};
const INFO: LockInfo = {
  lockId: 'lock-7',
  firmwareVersion: '0.1.0+sim',
  revocationVersion: 12,
  timeFloor: 1_799_999_000,
  uncertainty: null,
  state: 'locked',
};

describe('message bodies (TANDEM-GATT-8..10)', () => {
  it('challenge round trips and fits one frame at MTU 185', () => {
    const b = encodeChallenge(CHALLENGE);
    expect(decodeChallenge(b)).toEqual(CHALLENGE);
    expect(frameMessage(MessageType.challenge, b, 185)).toHaveLength(1);
  });

  it('challenge with unbounded uncertainty (null) round trips', () => {
    expect(decodeChallenge(encodeChallenge({ ...CHALLENGE, uncertainty: null })).uncertainty).toBeNull();
  });

  it('result round trips, for a request and for a delivery (no command, no nonce)', () => {
    expect(decodeResult(encodeResult(RESULT))).toEqual(RESULT);
    const delivery: Result = {
      status: Status.REVOCATION_ROLLBACK,
      answers: MessageType.revocationUpdate,
      state: 'locked',
      lockTime: 5,
    };
    expect(decodeResult(encodeResult(delivery))).toEqual(delivery);
  });

  it('lock info round trips', () => {
    expect(decodeLockInfo(encodeLockInfo(INFO))).toEqual(INFO);
  });

  const m = (entries: [number, CborValue][]): Uint8Array => encode(new Map<number, CborValue>(entries));
  const base: [number, CborValue][] = [
    [1, 'lock-7'],
    [2, CHALLENGE.nonce],
    [3, 1],
    [4, 2],
    [5, 3],
  ];
  const cases: [string, () => unknown, RegExp][] = [
    [
      'challenge nonce of 8 bytes',
      () => decodeChallenge(m([...base.slice(0, 1), [2, new Uint8Array(8)], ...base.slice(2)])),
      /challenge "nonce" \(key 2\) must be a byte string of 16 bytes/,
    ],
    [
      'challenge lock id missing',
      () => decodeChallenge(m(base.slice(1))),
      /challenge "lock id" \(key 1\) is missing/,
    ],
    [
      'challenge uncertainty as text',
      () => decodeChallenge(m([...base.slice(0, 3), [4, 'x'], base[4]!])),
      /challenge "uncertainty" \(key 4\) must be an unsigned integer below 2\^32 or null/,
    ],
    ['challenge unknown key', () => decodeChallenge(m([...base, [6, 0]])), /challenge has unknown key 6/],
    ['challenge as an array', () => decodeChallenge(encode([1, 2])), /challenge must be a CBOR map/],
    [
      'result unknown status 0x99',
      () =>
        decodeResult(
          m([
            [1, 0x99],
            [2, 1],
            [3, 'locked'],
            [4, 1],
          ]),
        ),
      /result "status" \(key 1\) must be a known status byte/,
    ],
    [
      'result command 99',
      () =>
        decodeResult(
          m([
            [1, 0],
            [2, 99],
            [3, 'locked'],
            [4, 1],
          ]),
        ),
      /result "command" \(key 2\) must be a command value of TANDEM-POP-5/,
    ],
    [
      'result unknown lock state',
      () =>
        decodeResult(
          m([
            [1, 0],
            [2, 1],
            [3, 'open'],
            [4, 1],
          ]),
        ),
      /result "lock state" \(key 3\) must be one of "locked"/,
    ],
    [
      'result without the message type it answers',
      () =>
        decodeResult(
          m([
            [1, 0],
            [3, 'locked'],
            [4, 1],
          ]),
        ),
      /result "answers" \(key 6\) is missing/,
    ],
    [
      'result answering message type 0x00',
      () =>
        decodeResult(
          m([
            [1, 0],
            [3, 'locked'],
            [4, 1],
            [6, 0],
          ]),
        ),
      /result "answers" \(key 6\) must be a message type/,
    ],
    [
      'lock info firmware version with a space',
      () => decodeLockInfo(encodeLockInfoRaw({ 2: '1.0 beta' })),
      /lock info "firmware version" \(key 2\) must match/,
    ],
    [
      'lock info time floor negative',
      () => decodeLockInfo(encodeLockInfoRaw({ 4: -1 })),
      /lock info "time floor" \(key 4\)/,
    ],
  ];
  for (const [name, f, expected] of cases) {
    it(`refuses ${name}`, () => {
      const message = codeOf(f);
      expect(message).toMatch(/^ERR_MESSAGE_INVALID: /);
      expect(message).toMatch(expected);
    });
  }
});

function encodeLockInfoRaw(over: Record<number, CborValue>): Uint8Array {
  const mm = new Map<number, CborValue>([
    [1, 'lock-7'],
    [2, '1.0'],
    [3, 0],
    [4, 0],
    [5, null],
    [6, 'locked'],
  ]);
  for (const [k, v] of Object.entries(over)) mm.set(Number(k), v);
  return encode(mm);
}

describe('fuzz (only ProtocolError escapes)', () => {
  const decoders: [string, (b: Uint8Array) => unknown, Uint8Array][] = [
    ['decodeChallenge', decodeChallenge, encodeChallenge(CHALLENGE)],
    ['decodeResult', decodeResult, encodeResult(RESULT)],
    ['decodeLockInfo', decodeLockInfo, encodeLockInfo(INFO)],
  ];
  for (const [name, decode, seed] of decoders) fuzz(name, decode, [seed], name.length);

  it('fuzz Reassembler: 2,000 random and mutated frame sequences throw only ProtocolError, memory bounded', () => {
    const r = rng(185);
    const asm = new Reassembler();
    for (let i = 0; i < 2000; i++) {
      const frames = frameMessage(
        1 + Math.floor(r() * 255),
        body(Math.floor(r() * 700)),
        [23, 185, 517][i % 3]!,
      );
      for (const f of frames) {
        const g = Uint8Array.from(f);
        if (r() < 0.1) g[Math.floor(r() * g.length)]! ^= 1 << Math.floor(r() * 8);
        const input =
          r() < 0.05 ? Uint8Array.from({ length: Math.floor(r() * 30) }, () => Math.floor(r() * 256)) : g;
        try {
          const out = asm.push(input);
          if (out) expect(out.body.length).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
        } catch (e) {
          if (!(e instanceof ProtocolError)) throw e;
        }
      }
    }
  });
});
