// Remote commands, SPEC.md §9.11 (TANDEM-RCMD-1..5): the encoding, each refusal's code and the field its
// message names, LOCK as the only command, the time window and the sequence rule, and a seeded fuzz loop.
import { describe, expect, it } from 'vitest';
import type { CborValue } from '../src/cbor.js';
import { encode } from '../src/cbor.js';
import { HEADER, signSign1 } from '../src/cose.js';
import { STATUS_OF_ERROR } from '../src/errors.js';
import { generateKeyPair } from '../src/keys.js';
import type { PublicKey } from '../src/keys.js';
import { CONTENT_FORMAT } from '../src/lib/signed-payload.js';
import { Command } from '../src/pop.js';
import {
  MAX_REMOTE_COMMAND_BYTES,
  checkRemoteCommandSequence,
  checkRemoteCommandTime,
  decodeRemoteCommand,
  encodeRemoteCommand,
  verifyRemoteCommand,
} from '../src/remote-command.js';
import type { RemoteCommand } from '../src/remote-command.js';
import { encodeTimeBeacon } from '../src/time-beacon.js';
import { Status } from '../src/status.js';
import { outcome as codeOf } from './outcome.js';
import { fuzz } from './fuzz.js';

const issuer = generateKeyPair('EdDSA');
const other = generateKeyPair('EdDSA');
const KID = Uint8Array.of(1);
const LOCK = 'lock-7';
const resolve = (kid: Uint8Array): PublicKey | undefined =>
  kid.length === 1 && kid[0] === 1 ? issuer.publicKey : undefined;

const base: RemoteCommand = {
  lockId: LOCK,
  command: Command.LOCK,
  sequence: 5,
  issuedAt: 1_800_000_000,
  expiry: 1_800_000_060,
};

/** Signs an arbitrary payload map as a remote command would be signed (for refused bodies). */
function signRaw(
  body: Map<number, CborValue>,
  key = issuer,
  contentType = CONTENT_FORMAT.remoteCommand,
): Uint8Array {
  return signSign1(encode(body), key, {
    protectedHeader: new Map<number, CborValue>([[HEADER.contentType, contentType]]),
    kid: KID,
  });
}

function body(over: Partial<Record<number, CborValue | undefined>> = {}): Map<number, CborValue> {
  const m = new Map<number, CborValue>([
    [1, LOCK],
    [2, Command.LOCK],
    [3, 5],
    [4, 1_800_000_000],
    [5, 1_800_000_060],
  ]);
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) m.delete(Number(k));
    else m.set(Number(k), v);
  }
  return m;
}

describe('remote command (TANDEM-RCMD-1, TANDEM-RCMD-2)', () => {
  it('round-trips a LOCK command with content type 65111 and the issuer kid', () => {
    const bytes = encodeRemoteCommand(base, issuer, KID);
    expect(bytes.length).toBeLessThanOrEqual(MAX_REMOTE_COMMAND_BYTES);
    const { sign1, command } = decodeRemoteCommand(bytes);
    expect(sign1.protectedHeader.get(HEADER.contentType)).toBe(65111);
    expect(sign1.kid).toEqual(KID);
    expect(command).toEqual(base);
    expect(verifyRemoteCommand(bytes, resolve, LOCK)).toEqual(base);
  });

  it('refuses UNLOCK and every other command number with ERR_SCOPE_DENIED, even correctly signed', () => {
    for (const c of [Command.UNLOCK, Command.STATUS, Command.CLEAR_LOCKOUT, 0, 99]) {
      const out = codeOf(() => verifyRemoteCommand(signRaw(body({ 2: c })), resolve, LOCK));
      expect(out).toBe(
        `ERR_SCOPE_DENIED: remote command "command" (key 2) ${c} is not allowed: only 2 (LOCK) may be sent remotely`,
      );
    }
    expect(STATUS_OF_ERROR.ERR_SCOPE_DENIED).toBe(Status.SCOPE_DENIED);
    // The encoder cannot make one either: it runs the decoder's rules.
    expect(
      codeOf(() => encodeRemoteCommand({ ...base, command: Command.UNLOCK as never }, issuer, KID)),
    ).toMatch(/^ERR_SCOPE_DENIED/);
  });

  it('refuses a command field that is not an unsigned integer as MALFORMED', () => {
    expect(codeOf(() => decodeRemoteCommand(signRaw(body({ 2: 'LOCK' }))))).toBe(
      'ERR_MESSAGE_INVALID: remote command "command" (key 2) must be an unsigned integer below 2^32',
    );
  });

  const refused: [string, Partial<Record<number, CborValue | undefined>>, string][] = [
    ['missing lock id', { 1: undefined }, 'ERR_MESSAGE_INVALID: remote command "lock id" (key 1) is missing'],
    [
      'bad lock id',
      { 1: 'Lock/7' },
      'ERR_MESSAGE_INVALID: remote command "lock id" (key 1) must be a lock id',
    ],
    [
      'sequence 0',
      { 3: 0 },
      'ERR_MESSAGE_INVALID: remote command "sequence" (key 3) must be an unsigned integer from 1',
    ],
    [
      'sequence -1',
      { 3: -1 },
      'ERR_MESSAGE_INVALID: remote command "sequence" (key 3) must be an unsigned integer from 1',
    ],
    ['issued at text', { 4: 'now' }, 'ERR_MESSAGE_INVALID: remote command "issued at" (key 4)'],
    [
      'expiry = issued at',
      { 5: 1_800_000_000 },
      'ERR_MESSAGE_INVALID: remote command "expiry" (key 5) must be after',
    ],
    [
      'lifetime 61 s',
      { 5: 1_800_000_061 },
      'ERR_MESSAGE_INVALID: remote command "expiry" (key 5) must be at most 60 s',
    ],
    ['unknown key', { 6: 1 }, 'ERR_MESSAGE_INVALID: remote command has unknown key 6'],
  ];
  for (const [title, over, expected] of refused) {
    it(`refuses ${title}`, () => {
      expect(codeOf(() => decodeRemoteCommand(signRaw(body(over))))).toMatch(
        new RegExp(`^${escape(expected)}`),
      );
    });
  }

  it('refuses another content type, a forged signature, an unknown kid and another lock', () => {
    const beacon = encodeTimeBeacon({ time: 1, accuracy: 0 }, issuer, KID);
    expect(codeOf(() => verifyRemoteCommand(beacon, resolve, LOCK))).toMatch(
      /^ERR_COSE_INVALID: remote command COSE "content type" \(3\) Header Parameter must be 65111/,
    );
    const forged = encodeRemoteCommand(base, other, KID);
    expect(codeOf(() => verifyRemoteCommand(forged, resolve, LOCK))).toMatch(/^ERR_SIGNATURE_INVALID/);
    const unknown = encodeRemoteCommand(base, issuer, Uint8Array.of(2));
    expect(codeOf(() => verifyRemoteCommand(unknown, resolve, LOCK))).toMatch(/^ERR_KEY_UNKNOWN/);
    const elsewhere = encodeRemoteCommand({ ...base, lockId: 'lock-8' }, issuer, KID);
    expect(codeOf(() => verifyRemoteCommand(elsewhere, resolve, LOCK))).toBe(
      'ERR_AUDIENCE_MISMATCH: remote command "lock id" is "lock-8", not "lock-7"',
    );
  });

  it('refuses more than 256 bytes with ERR_TOO_LARGE before decoding', () => {
    const big = new Uint8Array(MAX_REMOTE_COMMAND_BYTES + 1);
    expect(codeOf(() => decodeRemoteCommand(big))).toMatch(/^ERR_TOO_LARGE/);
  });
});

describe('time and sequence (TANDEM-RCMD-3, TANDEM-RCMD-4)', () => {
  const T = base.issuedAt;
  it('accepts an interval inside [issued at, expiry)', () => {
    expect(codeOf(() => checkRemoteCommandTime(base, { earliest: T + 10, latest: T + 14 }))).toBe('accepted');
  });
  it('EXPIRED, NOT_YET_VALID, TIME_UNCERTAIN (straddling, or unbounded after a reboot)', () => {
    expect(codeOf(() => checkRemoteCommandTime(base, { earliest: T + 60, latest: T + 62 }))).toMatch(
      /^ERR_TOKEN_EXPIRED: remote command expired/,
    );
    expect(codeOf(() => checkRemoteCommandTime(base, { earliest: T - 9, latest: T - 1 }))).toMatch(
      /^ERR_TOKEN_NOT_YET_VALID: remote command is not valid yet/,
    );
    expect(codeOf(() => checkRemoteCommandTime(base, { earliest: T + 50, latest: T + 70 }))).toMatch(
      /^ERR_TIME_UNCERTAIN/,
    );
    expect(codeOf(() => checkRemoteCommandTime(base, { earliest: T - 1, latest: 0xffff_ffff }))).toMatch(
      /^ERR_TIME_UNCERTAIN/,
    );
  });
  it('a sequence not above the last accepted is ERR_COMMAND_REPLAYED (status COMMAND_REPLAYED 0x27)', () => {
    expect(codeOf(() => checkRemoteCommandSequence(base, 4))).toBe('accepted');
    expect(codeOf(() => checkRemoteCommandSequence(base, 5))).toBe(
      'ERR_COMMAND_REPLAYED: remote command "sequence" (key 3) 5 is not above the last accepted 5',
    );
    expect(codeOf(() => checkRemoteCommandSequence(base, 9))).toMatch(/^ERR_COMMAND_REPLAYED/);
    expect(STATUS_OF_ERROR.ERR_COMMAND_REPLAYED).toBe(0x27);
  });

  fuzz(
    'verifyRemoteCommand',
    (b) => verifyRemoteCommand(b, resolve, LOCK),
    [encodeRemoteCommand(base, issuer, KID)],
    0x6511,
  );
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
