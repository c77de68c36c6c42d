// MQTT topics and payloads, SPEC.md §9 (TANDEM-MQTT-1..10): the topic tree, malformed topics, and the signed
// alert, audit record, lock state and outbox acknowledgement payloads.
import { describe, expect, it } from 'vitest';
import type { CborValue } from '../src/cbor.js';
import { encode } from '../src/cbor.js';
import { HEADER, signSign1 } from '../src/cose.js';
import { ProtocolError } from '../src/errors.js';
import { generateKeyPair } from '../src/keys.js';
import type { PublicKey } from '../src/keys.js';
import { Status } from '../src/status.js';
import { Command } from '../src/pop.js';
import {
  AUDIT_GENESIS_HASH,
  LOCK_TOPIC_KINDS,
  TOPIC_POLICY,
  auditRecordHash,
  decodeAlert,
  decodeAuditRecord,
  decodeLockState,
  decodeOutboxAck,
  encodeAlert,
  encodeAuditRecord,
  encodeLockState,
  encodeOutboxAck,
  lockTopicFilter,
  parseTopic,
  topicFor,
  verifyAlert,
  verifyAuditRecord,
  verifyLockState,
  verifyOutboxAck,
  decodeTimeRequest,
  encodeTimeRequest,
  verifyTimeRequest,
} from '../src/mqtt.js';
import type { Alert, AuditRecord, LockStateReport } from '../src/mqtt.js';
import { encodeRevocationAck } from '../src/revocation.js';
import { CONTENT_FORMAT } from '../src/lib/signed-payload.js';
import { outcome as codeOf } from './outcome.js';
import { fuzz, rng } from './fuzz.js';

const device = generateKeyPair('EdDSA');
const issuer = generateKeyPair('EdDSA');
const other = generateKeyPair('EdDSA');
const KID = Uint8Array.of(9);
const resolve = (kid: Uint8Array): PublicKey | undefined =>
  kid.length === 1 && kid[0] === 9 ? issuer.publicKey : undefined;

describe('topic tree (TANDEM-MQTT-1..3)', () => {
  it('builds every per-lock topic and the time topic', () => {
    expect(LOCK_TOPIC_KINDS.map((k) => topicFor(k, 'lock-7'))).toEqual([
      'tandem/v1/lock/lock-7/state',
      'tandem/v1/lock/lock-7/alert',
      'tandem/v1/lock/lock-7/audit',
      'tandem/v1/lock/lock-7/revocation',
      'tandem/v1/lock/lock-7/revocation-ack',
      'tandem/v1/lock/lock-7/outbox-ack',
      'tandem/v1/lock/lock-7/time-request',
      'tandem/v1/lock/lock-7/beacon',
      'tandem/v1/lock/lock-7/anchor',
      'tandem/v1/lock/lock-7/anchor-ack',
      'tandem/v1/lock/lock-7/command',
    ]);
    expect(topicFor('time')).toBe('tandem/v1/time');
    expect(lockTopicFilter('alert')).toBe('tandem/v1/lock/+/alert');
  });

  it('parseTopic inverts topicFor', () => {
    for (const k of LOCK_TOPIC_KINDS)
      expect(parseTopic(topicFor(k, 'a-1'))).toEqual({ kind: k, lockId: 'a-1' });
    expect(parseTopic('tandem/v1/time')).toEqual({ kind: 'time' });
  });

  it('retained topics are the latest-value ones; the retained revocation is what a reconnecting lock gets', () => {
    expect(
      Object.entries(TOPIC_POLICY)
        .filter(([, p]) => p.retained)
        .map(([k]) => k),
    ).toEqual(['state', 'revocation', 'revocation-ack', 'outbox-ack', 'anchor', 'anchor-ack', 'time']);
  });

  it('topicFor refuses a lock id that is a wildcard or contains a separator', () => {
    expect(codeOf(() => topicFor('alert', '+'))).toMatch(/^ERR_TOPIC_INVALID: lock id "\+" must match/);
    expect(codeOf(() => topicFor('alert', '#'))).toMatch(/^ERR_TOPIC_INVALID/);
    expect(codeOf(() => topicFor('alert', 'a/b'))).toMatch(/^ERR_TOPIC_INVALID/);
    expect(codeOf(() => topicFor('nope' as 'alert', 'a'))).toMatch(
      /^ERR_TOPIC_INVALID: unknown topic kind "nope"/,
    );
  });

  const malformed: [string, RegExp][] = [
    ['tandem/v1/lock/+/alert', /lock id level "\+" must match/],
    ['tandem/v1/lock/#', /must be tandem\/v1\/time or tandem\/v1\/lock\/\{lock id\}\/\{kind\}/],
    ['tandem/v1/lock/lock-7/#', /unknown kind "#"/],
    ['tandem/v1/lock/lock-7/+', /unknown kind "\+"/],
    ['tandem/v1/lock//alert', /lock id level "" must match/],
    ['tandem/v1/lock/lock-7/alert/', /must be tandem\/v1\/time or/],
    ['/tandem/v1/lock/lock-7/alert', /is outside tandem\/v1\//],
    ['tandem/v2/lock/lock-7/alert', /is outside tandem\/v1\//],
    ['$SYS/broker/uptime', /is outside tandem\/v1\//],
    ['tandem/v1/lock/Lock-7/alert', /lock id level "Lock-7"/],
    ['tandem/v1/lock/-lock/alert', /lock id level "-lock"/],
    ['tandem/v1/lock/lock-7/alerts', /unknown kind "alerts"/],
    ['tandem/v1/lock/lock-7', /must be tandem\/v1\/time or/],
    ['tandem/v1/time/extra', /must be tandem\/v1\/time or/],
    ['tandem/v1/lock/' + 'a'.repeat(33) + '/alert', /lock id level/],
    ['tandem/v1/lock/lock\u00007/alert', /lock id level/],
    ['', /must be 1 to 128 characters/],
    ['tandem/v1/' + 'x'.repeat(200), /must be 1 to 128 characters/],
  ];
  for (const [topic, expected] of malformed) {
    it(`parseTopic refuses ${JSON.stringify(topic.length > 40 ? topic.slice(0, 40) + '…' : topic)}`, () => {
      const message = codeOf(() => parseTopic(topic));
      expect(message).toMatch(/^ERR_TOPIC_INVALID: /);
      expect(message).toMatch(expected);
    });
  }
});

const ALERT: Alert = {
  lockId: 'lock-7',
  sequence: 41,
  epoch: 7,
  time: 1_800_000_000,
  kind: 'moved',
  detail: new Map<string, string | number | boolean>([
    ['g', 3],
    ['axis', 'z'],
    ['sustained', true],
  ]),
};
const RECORD: AuditRecord = {
  lockId: 'lock-7',
  sequence: 42,
  epoch: 7,
  time: 1_800_000_010,
  previousHash: AUDIT_GENESIS_HASH,
  event: 'unlock',
  status: Status.OK,
  command: Command.UNLOCK,
  tokenId: Uint8Array.from({ length: 16 }, (_, i) => 0xf0 + (i & 15)),
  rider: 'bianca',
  detail: new Map(),
};
const STATE: LockStateReport = {
  lockId: 'lock-7',
  state: 'locked',
  time: 1_800_000_020,
  uncertainty: 3,
  revocationVersion: 12,
  outboxEpoch: 7,
  outboxSequence: 42,
};

function flipAll(bytes: Uint8Array, verify: (b: Uint8Array) => unknown, from: number, to: number): string[] {
  const out: string[] = [];
  for (let i = from; i < to; i++) {
    const b = Uint8Array.from(bytes);
    b[i]! ^= 1;
    out.push(codeOf(() => verify(b)).split(':')[0]!);
  }
  return [...new Set(out)];
}

describe('lock-signed payloads (TANDEM-MQTT-5..7, TANDEM-MQTT-10)', () => {
  const cases = [
    {
      name: 'alert',
      bytes: encodeAlert(ALERT, device),
      decode: (b: Uint8Array) => decodeAlert(b).alert,
      verify: (b: Uint8Array, lock = 'lock-7', key = device.publicKey) => verifyAlert(b, key, lock),
      value: ALERT,
    },
    {
      name: 'audit record',
      bytes: encodeAuditRecord(RECORD, device),
      decode: (b: Uint8Array) => decodeAuditRecord(b).record,
      verify: (b: Uint8Array, lock = 'lock-7', key = device.publicKey) => verifyAuditRecord(b, key, lock),
      value: RECORD,
    },
    {
      name: 'lock state',
      bytes: encodeLockState(STATE, device),
      decode: (b: Uint8Array) => decodeLockState(b).report,
      verify: (b: Uint8Array, lock = 'lock-7', key = device.publicKey) => verifyLockState(b, key, lock),
      value: STATE,
    },
  ];
  for (const c of cases) {
    it(`${c.name}: round trips and verifies with the device key`, () => {
      expect(c.decode(c.bytes)).toEqual(c.value);
      expect(c.verify(c.bytes)).toEqual(c.value);
    });
    it(`${c.name}: a bit flip in the signature fails with ERR_SIGNATURE_INVALID`, () => {
      expect(flipAll(c.bytes, (b) => c.verify(b), c.bytes.length - 64, c.bytes.length)).toEqual([
        'ERR_SIGNATURE_INVALID',
      ]);
    });
    it(`${c.name}: a bit flip anywhere is refused`, () => {
      expect(flipAll(c.bytes, (b) => c.verify(b), 0, c.bytes.length)).not.toContain('accepted');
    });
    it(`${c.name}: another lock's topic fails with ERR_AUDIENCE_MISMATCH, another key with ERR_SIGNATURE_INVALID`, () => {
      expect(codeOf(() => c.verify(c.bytes, 'lock-8'))).toMatch(
        new RegExp(`^ERR_AUDIENCE_MISMATCH: ${c.name} "lock id"`),
      );
      expect(codeOf(() => c.verify(c.bytes, 'lock-7', other.publicKey))).toMatch(/^ERR_SIGNATURE_INVALID/);
    });
  }

  it('a bit flip in the signed time of an alert fails with ERR_SIGNATURE_INVALID', () => {
    const bytes = encodeAlert(ALERT, device);
    const at = Buffer.from(bytes).indexOf(Buffer.from([0x03, 0x1a])) + 5; // key 3, uint32 head, last byte
    expect(flipAll(bytes, (b) => verifyAlert(b, device.publicKey, 'lock-7'), at, at + 1)).toEqual([
      'ERR_SIGNATURE_INVALID',
    ]);
  });

  it('payload kinds cannot be swapped: an alert is not an audit record, a revocation ack not a state (TANDEM-REV-1)', () => {
    expect(codeOf(() => decodeAuditRecord(encodeAlert(ALERT, device)))).toMatch(
      /^ERR_COSE_INVALID: audit record .*65104/,
    );
    const ack = encodeRevocationAck({ lockId: 'lock-7', version: 1, lockTime: 1 }, device);
    expect(codeOf(() => decodeLockState(ack))).toMatch(/^ERR_COSE_INVALID: lock state .*65105/);
  });

  it('audit records chain by SHA-256 of the previous record bytes (TANDEM-MQTT-7)', () => {
    const first = encodeAuditRecord(RECORD, device);
    const second = encodeAuditRecord(
      { ...RECORD, sequence: 43, previousHash: auditRecordHash(first) },
      device,
    );
    const decoded = verifyAuditRecord(second, device.publicKey, 'lock-7');
    expect(Buffer.from(decoded.previousHash).equals(Buffer.from(auditRecordHash(first)))).toBe(true);
    expect(auditRecordHash(first)).toHaveLength(32);
  });

  it('an audit record with only the required fields round trips', () => {
    const minimal: AuditRecord = { ...RECORD, event: 'boot', detail: new Map() };
    delete (minimal as { command?: string }).command;
    delete (minimal as { tokenId?: Uint8Array }).tokenId;
    delete (minimal as { rider?: string }).rider;
    expect(verifyAuditRecord(encodeAuditRecord(minimal, device), device.publicKey, 'lock-7')).toEqual(
      minimal,
    );
  });

  it('lock state with unbounded uncertainty (null) round trips', () => {
    expect(
      decodeLockState(encodeLockState({ ...STATE, uncertainty: null }, device)).report.uncertainty,
    ).toBeNull();
  });

  const sign = (m: Map<number, CborValue>, ct: number) =>
    signSign1(encode(m), device, { protectedHeader: new Map<number, CborValue>([[HEADER.contentType, ct]]) });
  const alertMap = (over: [number, CborValue][]) =>
    new Map<number, CborValue>([[1, 'lock-7'], [2, 1], [3, 1], [4, 'bump'], ...over]);
  const refusals: [string, () => unknown, RegExp][] = [
    [
      'alert kind "stolen"',
      () => decodeAlert(sign(alertMap([[4, 'stolen']]), CONTENT_FORMAT.alert)),
      /alert "kind" \(key 4\) must be one of "bump", "tamper"/,
    ],
    [
      'alert sequence 0',
      () => decodeAlert(sign(alertMap([[2, 0]]), CONTENT_FORMAT.alert)),
      /alert "sequence" \(key 2\) must be an unsigned integer from 1/,
    ],
    [
      'alert empty detail map',
      () => decodeAlert(sign(alertMap([[5, new Map()]]), CONTENT_FORMAT.alert)),
      /alert "detail" \(key 5\) must be omitted when empty/,
    ],
    [
      'alert detail with an integer key',
      () =>
        decodeAlert(
          sign(alertMap([[5, new Map<number | string, CborValue>([[1, 1]])]]), CONTENT_FORMAT.alert),
        ),
      /alert "detail" \(key 5\) keys must match/,
    ],
    [
      'alert detail value that is a map',
      () =>
        decodeAlert(
          sign(
            alertMap([[5, new Map<number | string, CborValue>([['a', new Map()]])]]),
            CONTENT_FORMAT.alert,
          ),
        ),
      /(nesting deeper|entry "a" must be an integer, a boolean or a text string)/,
    ],
    [
      'alert detail text of 65 characters',
      () =>
        decodeAlert(
          sign(
            alertMap([[5, new Map<number | string, CborValue>([['a', 'x'.repeat(65)]])]]),
            CONTENT_FORMAT.alert,
          ),
        ),
      /entry "a" text must be at most 64 characters/,
    ],
    [
      'alert detail with 17 entries',
      () =>
        decodeAlert(
          sign(
            alertMap([
              [5, new Map<number | string, CborValue>(Array.from({ length: 17 }, (_, i) => [`k${i}`, i]))],
            ]),
            CONTENT_FORMAT.alert,
          ),
        ),
      /(17 pairs exceeds 16|at most 16 entries)/,
    ],
    [
      'audit previous hash of 31 bytes',
      () => encodeAuditRecord({ ...RECORD, previousHash: new Uint8Array(31) }, device),
      /audit record "previous hash" \(key 4\) must be a byte string of 32 bytes/,
    ],
    [
      'audit unknown status',
      () => encodeAuditRecord({ ...RECORD, status: 0x77 as Status }, device),
      /audit record "status" \(key 6\) must be a known status byte/,
    ],
    [
      'audit event with upper case',
      () => encodeAuditRecord({ ...RECORD, event: 'Unlock' }, device),
      /audit record "event" \(key 5\) must match/,
    ],
    [
      'audit token id of 33 bytes',
      () => encodeAuditRecord({ ...RECORD, tokenId: new Uint8Array(33) }, device),
      /audit record "token id" \(key 8\) must be a byte string of 1 to 32 bytes/,
    ],
    [
      'state unknown lock state',
      () => encodeLockState({ ...STATE, state: 'open' as 'locked' }, device),
      /lock state "state" \(key 2\) must be one of/,
    ],
  ];
  for (const [name, f, expected] of refusals) {
    it(`refuses ${name}`, () => {
      const message = codeOf(f);
      expect(message).toMatch(/^ERR_(MESSAGE|CBOR)_INVALID: /);
      expect(message).toMatch(expected);
    });
  }

  it('refuses an alert over 512 bytes with ERR_TOO_LARGE', () => {
    const big = new Uint8Array(600);
    expect(codeOf(() => decodeAlert(big))).toBe('ERR_TOO_LARGE: CBOR input of 600 bytes exceeds 512');
  });
});

describe('outbox acknowledgement (TANDEM-MQTT-8)', () => {
  const bytes = encodeOutboxAck({ lockId: 'lock-7', sequence: 42, epoch: 7 }, issuer, KID);

  it('round trips and verifies with the issuer key named by kid', () => {
    expect(decodeOutboxAck(bytes).ack).toEqual({ lockId: 'lock-7', sequence: 42, epoch: 7 });
    expect(verifyOutboxAck(bytes, resolve, 'lock-7')).toEqual({ lockId: 'lock-7', sequence: 42, epoch: 7 });
  });

  it('a bit flip in the signature or the signed sequence fails with ERR_SIGNATURE_INVALID', () => {
    expect(
      flipAll(bytes, (b) => verifyOutboxAck(b, resolve, 'lock-7'), bytes.length - 64, bytes.length),
    ).toEqual(['ERR_SIGNATURE_INVALID']);
    const at = Buffer.from(bytes).indexOf(Buffer.from([0x02, 0x18, 42]));
    expect(flipAll(bytes, (b) => verifyOutboxAck(b, resolve, 'lock-7'), at + 2, at + 3)).toEqual([
      'ERR_SIGNATURE_INVALID',
    ]);
  });

  it('a phone cannot forge one: signed by the device key, it fails', () => {
    const forged = encodeOutboxAck({ lockId: 'lock-7', sequence: 1000, epoch: 7 }, device, KID);
    expect(codeOf(() => verifyOutboxAck(forged, resolve, 'lock-7'))).toMatch(/^ERR_SIGNATURE_INVALID/);
  });

  it('another lock, an unknown kid', () => {
    expect(codeOf(() => verifyOutboxAck(bytes, resolve, 'lock-8'))).toMatch(
      /^ERR_AUDIENCE_MISMATCH: outbox ack/,
    );
    expect(codeOf(() => verifyOutboxAck(bytes, () => undefined, 'lock-7'))).toMatch(
      /^ERR_KEY_UNKNOWN: outbox ack/,
    );
  });
});

describe('time request (TANDEM-MQTT-12)', () => {
  const nonce = new Uint8Array(16).fill(0xab);
  const bytes = encodeTimeRequest({ lockId: 'lock-7', nonce }, device);

  it('has the payload of SPEC §9.7 and verifies with the device key of the lock named', () => {
    expect(Buffer.from(decodeTimeRequest(bytes).sign1.payload).toString('hex')).toBe(
      'a201666c6f636b2d370250' + 'ab'.repeat(16),
    );
    expect(verifyTimeRequest(bytes, device.publicKey, 'lock-7')).toEqual({ lockId: 'lock-7', nonce });
  });

  it('another lock, another key, a short nonce, another content type are refused', () => {
    expect(codeOf(() => verifyTimeRequest(bytes, device.publicKey, 'lock-8'))).toMatch(
      /^ERR_AUDIENCE_MISMATCH: time request/,
    );
    expect(codeOf(() => verifyTimeRequest(bytes, other.publicKey, 'lock-7'))).toMatch(
      /^ERR_SIGNATURE_INVALID/,
    );
    expect(codeOf(() => encodeTimeRequest({ lockId: 'lock-7', nonce: nonce.subarray(1) }, device))).toMatch(
      /^ERR_MESSAGE_INVALID: time request "nonce" \(key 2\)/,
    );
    expect(codeOf(() => decodeTimeRequest(encodeAlert(ALERT, device)))).toMatch(/^ERR_COSE_INVALID/);
  });

  it('travels on the lock’s time-request topic; the answer on its beacon topic, neither retained', () => {
    expect(topicFor('time-request', 'lock-7')).toBe('tandem/v1/lock/lock-7/time-request');
    expect(TOPIC_POLICY['time-request']).toEqual({
      from: 'lock',
      retained: false,
      qos: 1,
      signedBy: 'device',
    });
    expect(TOPIC_POLICY.beacon).toEqual({ from: 'cloud', retained: false, qos: 1, signedBy: 'issuer' });
  });
});

describe('fuzz (only ProtocolError escapes)', () => {
  const decoders: [string, (b: Uint8Array) => unknown, Uint8Array][] = [
    ['decodeAlert', decodeAlert, encodeAlert(ALERT, device)],
    ['decodeAuditRecord', decodeAuditRecord, encodeAuditRecord(RECORD, device)],
    ['decodeLockState', decodeLockState, encodeLockState(STATE, device)],
    [
      'decodeOutboxAck',
      decodeOutboxAck,
      encodeOutboxAck({ lockId: 'lock-7', sequence: 42, epoch: 7 }, issuer, KID),
    ],
    ['verifyAlert', (b) => verifyAlert(b, device.publicKey, 'lock-7'), encodeAlert(ALERT, device)],
    [
      'decodeTimeRequest',
      decodeTimeRequest,
      encodeTimeRequest({ lockId: 'lock-7', nonce: new Uint8Array(16) }, device),
    ],
  ];
  for (const [name, decode, seed] of decoders) fuzz(name, decode, [seed], name.length * 13);

  it('fuzz parseTopic: 2,000 random and mutated topics throw only ProtocolError', () => {
    const r = rng(9);
    const alphabet = 'tandem/v1lock-+#$/\u0000aZ9 ';
    for (let i = 0; i < 2000; i++) {
      let t = topicFor(LOCK_TOPIC_KINDS[i % LOCK_TOPIC_KINDS.length]!, 'lock-7');
      const n = 1 + Math.floor(r() * 3);
      for (let k = 0; k < n; k++) {
        const at = Math.floor(r() * (t.length + 1));
        t = t.slice(0, at) + alphabet[Math.floor(r() * alphabet.length)]! + t.slice(at + (r() < 0.5 ? 1 : 0));
      }
      try {
        const p = parseTopic(t);
        if (p.kind !== 'time') expect(p.lockId).toMatch(/^[a-z0-9][a-z0-9-]{0,31}$/);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
      }
    }
  });
});
