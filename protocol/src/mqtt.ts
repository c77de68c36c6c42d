/**
 * MQTT topics and payloads (SPEC.md §9). One versioned tree, `tandem/v1/...`; lock ids never contain an MQTT
 * wildcard or separator ([TANDEM-GEN-3]), so a topic names exactly one lock and a filter built from a lock id
 * can never widen a subscription.
 *
 * Payloads are CBOR. Those the lock writes and that may travel through a phone (alert, audit record, state,
 * revocation ack) are COSE_Sign1 signed by the lock's device key (Ed25519), without `kid`: the cloud knows the
 * key by the lock id of the topic. Those the cloud writes (revocation update, outbox ack, time beacon) are
 * signed by the issuer, `kid` in the unprotected header. Each carries its content format ([TANDEM-REV-1]).
 */
import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import type { CborLimits, CborValue } from './cbor.js';
import { encode } from './cbor.js';
import type { Sign1 } from './cose.js';
import { verifySign1 } from './cose.js';
import { ProtocolError } from './errors.js';
import type { PrivateKey, PublicKey } from './keys.js';
import type { Status } from './status.js';
import { isStatus } from './status.js';
import type { LockState } from './gatt.js';
import { LOCK_STATES, isCommand } from './gatt.js';
import type { Command } from './pop.js';
import type { DetailValue } from './lib/signed-payload.js';
import {
  CONTENT_FORMAT,
  LOCK_ID_PATTERN,
  PayloadReader,
  checkLockAudience,
  isLockId,
  openSign1,
  signPayload,
  verifyIssuerSigned,
} from './lib/signed-payload.js';

// ---------------------------------------------------------------------------------------------------------
// Topics ([TANDEM-MQTT-1] to [TANDEM-MQTT-4]).
// ---------------------------------------------------------------------------------------------------------

/** The root of Tandem's topic tree; the version level changes with any incompatible payload change. */
export const TOPIC_ROOT = 'tandem/v1';

/** Kinds of per-lock topics ([TANDEM-MQTT-1]). */
export const LOCK_TOPIC_KINDS = [
  'state',
  'alert',
  'audit',
  'revocation',
  'revocation-ack',
  'outbox-ack',
  'time-request',
  'beacon',
  'anchor',
  'anchor-ack',
  'command',
] as const;
/** A per-lock topic kind. */
export type LockTopicKind = (typeof LOCK_TOPIC_KINDS)[number];
/** Any topic kind: the per-lock kinds and the fleet-wide `time`. */
export type TopicKind = LockTopicKind | 'time';

/** How each topic is used ([TANDEM-MQTT-3]). */
export interface TopicPolicy {
  /** Who publishes. */
  readonly from: 'lock' | 'cloud';
  /** Published with the MQTT retain flag (MQTT 5.0 §3.3.1.3): the latest value is what matters. */
  readonly retained: boolean;
  readonly qos: 0 | 1;
  /** Whose key signs the payload. */
  readonly signedBy: 'device' | 'issuer';
}

/** The policy of every topic kind ([TANDEM-MQTT-3]). */
export const TOPIC_POLICY: Readonly<Record<TopicKind, TopicPolicy>> = {
  state: { from: 'lock', retained: true, qos: 1, signedBy: 'device' },
  alert: { from: 'lock', retained: false, qos: 1, signedBy: 'device' },
  audit: { from: 'lock', retained: false, qos: 1, signedBy: 'device' },
  revocation: { from: 'cloud', retained: true, qos: 1, signedBy: 'issuer' },
  'revocation-ack': { from: 'lock', retained: true, qos: 1, signedBy: 'device' },
  'outbox-ack': { from: 'cloud', retained: true, qos: 1, signedBy: 'issuer' },
  'time-request': { from: 'lock', retained: false, qos: 1, signedBy: 'device' },
  beacon: { from: 'cloud', retained: false, qos: 1, signedBy: 'issuer' },
  anchor: { from: 'cloud', retained: true, qos: 1, signedBy: 'issuer' },
  'anchor-ack': { from: 'lock', retained: true, qos: 1, signedBy: 'device' },
  // [TANDEM-RCMD-6]: not retained, so a lock that comes back hours later is not relocked by an old press.
  command: { from: 'cloud', retained: false, qos: 1, signedBy: 'issuer' },
  time: { from: 'cloud', retained: true, qos: 1, signedBy: 'issuer' },
};

/** Longest topic accepted by {@link parseTopic}. */
export const MAX_TOPIC_LENGTH = 128;

function topicError(message: string): never {
  throw new ProtocolError('ERR_TOPIC_INVALID', message);
}

function isLockTopicKind(s: string): s is LockTopicKind {
  return (LOCK_TOPIC_KINDS as readonly string[]).includes(s);
}

/** The fleet-wide time topic, `tandem/v1/time` ([TANDEM-MQTT-1]). */
export function topicFor(kind: 'time'): string;
/** The topic of `kind` for lock `lockId`, `tandem/v1/lock/{lockId}/{kind}`; ERR_TOPIC_INVALID for a bad id. */
export function topicFor(kind: LockTopicKind, lockId: string): string;
export function topicFor(kind: TopicKind, lockId?: string): string {
  if (kind === 'time') return `${TOPIC_ROOT}/time`;
  if (!isLockTopicKind(kind)) topicError(`unknown topic kind ${JSON.stringify(kind)}`);
  if (!isLockId(lockId)) topicError(`lock id ${JSON.stringify(lockId)} must match ${LOCK_ID_PATTERN.source}`);
  return `${TOPIC_ROOT}/lock/${lockId}/${kind}`;
}

/** The subscription filter for `kind` of every lock, `tandem/v1/lock/+/{kind}` (for the cloud bridge). */
export function lockTopicFilter(kind: LockTopicKind): string {
  if (!isLockTopicKind(kind)) topicError(`unknown topic kind ${JSON.stringify(kind)}`);
  return `${TOPIC_ROOT}/lock/+/${kind}`;
}

/** A topic of Tandem's tree. */
export type ParsedTopic =
  { readonly kind: 'time' } | { readonly kind: LockTopicKind; readonly lockId: string };

/**
 * Parses a topic name ([TANDEM-MQTT-2]). Refuses, with ERR_TOPIC_INVALID naming the level at fault, anything
 * outside the tree: wildcards, empty levels, other roots or versions, unknown kinds, invalid lock ids.
 */
export function parseTopic(topic: string): ParsedTopic {
  if (typeof topic !== 'string') topicError('MQTT topic must be a string');
  if (topic.length === 0 || topic.length > MAX_TOPIC_LENGTH) {
    topicError(`MQTT topic must be 1 to ${MAX_TOPIC_LENGTH} characters`);
  }
  const shown = JSON.stringify(topic);
  const levels = topic.split('/');
  if (levels[0] !== 'tandem' || levels[1] !== 'v1')
    topicError(`MQTT topic ${shown} is outside ${TOPIC_ROOT}/`);
  if (levels.length === 3 && levels[2] === 'time') return { kind: 'time' };
  if (levels.length !== 5 || levels[2] !== 'lock') {
    topicError(`MQTT topic ${shown} must be ${TOPIC_ROOT}/time or ${TOPIC_ROOT}/lock/{lock id}/{kind}`);
  }
  const lockId = levels[3]!;
  const kind = levels[4]!;
  if (!isLockId(lockId)) {
    topicError(
      `MQTT topic ${shown}: lock id level ${JSON.stringify(lockId)} must match ${LOCK_ID_PATTERN.source}`,
    );
  }
  if (!isLockTopicKind(kind)) topicError(`MQTT topic ${shown}: unknown kind ${JSON.stringify(kind)}`);
  return { kind, lockId };
}

// ---------------------------------------------------------------------------------------------------------
// Shared payload plumbing.
// ---------------------------------------------------------------------------------------------------------

/**
 * Encodes `body` and parses the bytes back with the message's own reader, so that Tandem never signs what it
 * would refuse; returns those bytes, which are what gets signed (encoded once, on the unlock path for audit
 * records).
 */
function checked(body: Map<number, CborValue>, parse: (payload: Uint8Array) => unknown): Uint8Array {
  const bytes = encode(body);
  parse(bytes);
  return bytes;
}

function setDetail(
  m: Map<number, CborValue>,
  key: number,
  detail: ReadonlyMap<string, DetailValue> | undefined,
): void {
  if (detail !== undefined && detail.size > 0) m.set(key, new Map<string, CborValue>(detail));
}

function verifyDevice<T extends { readonly lockId: string }>(
  decoded: { readonly sign1: Sign1 },
  value: T,
  deviceKey: PublicKey,
  expectedLockId: string,
  what: string,
): T {
  verifySign1(decoded.sign1, deviceKey);
  checkLockAudience(value.lockId, expectedLockId, what);
  return value;
}

// ---------------------------------------------------------------------------------------------------------
// Alerts ([TANDEM-MQTT-5]).
// ---------------------------------------------------------------------------------------------------------

/** Alert kinds ([TANDEM-MQTT-5]). */
export const ALERT_KINDS = ['bump', 'tamper', 'moved', 'jammed', 'fault', 'power'] as const;
/** An alert kind. */
export type AlertKind = (typeof ALERT_KINDS)[number];

/** Largest encoded alert ([TANDEM-MQTT-5]). */
export const MAX_ALERT_BYTES = 512;
const ALERT_LIMITS: CborLimits = { maxBytes: MAX_ALERT_BYTES, maxDepth: 2, maxItems: 16 };
const ALERT_KEYS = { 1: 'lock id', 2: 'sequence', 3: 'time', 4: 'kind', 5: 'detail', 6: 'epoch' } as const;

/** An alert raised by a lock ([TANDEM-MQTT-5]). */
export interface Alert {
  readonly lockId: string;
  /** Outbox sequence number ([TANDEM-MQTT-8]). */
  readonly sequence: number;
  /** Outbox epoch the sequence belongs to ([TANDEM-MQTT-11]). */
  readonly epoch: number;
  /** Lock time, Unix seconds. */
  readonly time: number;
  readonly kind: AlertKind;
  /** Small facts (`{"g": 3, "axis": "z"}`); empty when absent. */
  readonly detail: ReadonlyMap<string, DetailValue>;
}

function parseAlert(payload: Uint8Array): Alert {
  const r: PayloadReader = PayloadReader.parse(payload, ALERT_LIMITS, 'alert', ALERT_KEYS);
  return {
    lockId: r.lockId(1),
    sequence: r.uint(2, 1),
    time: r.uint(3),
    kind: r.oneOf(4, ALERT_KINDS),
    detail: r.detail(5),
    epoch: r.uint(6, 1),
  };
}

/** Encodes and signs an alert with the lock's device key ([TANDEM-MQTT-5]). */
export function encodeAlert(alert: Alert, deviceKey: PrivateKey): Uint8Array {
  const m = new Map<number, CborValue>([
    [1, alert.lockId],
    [2, alert.sequence],
    [3, alert.time],
    [4, alert.kind],
  ]);
  setDetail(m, 5, alert.detail);
  m.set(6, alert.epoch);
  return signPayload(checked(m, parseAlert), deviceKey, CONTENT_FORMAT.alert);
}

/** Decodes an alert without checking its signature. Throws only {@link ProtocolError}. */
export function decodeAlert(bytes: Uint8Array): { readonly sign1: Sign1; readonly alert: Alert } {
  const sign1 = openSign1(bytes, MAX_ALERT_BYTES, CONTENT_FORMAT.alert, 'alert');
  return { sign1, alert: parseAlert(sign1.payload) };
}

/** Verifies an alert with the device key of `expectedLockId`, then its lock id ([TANDEM-MQTT-5]). */
export function verifyAlert(bytes: Uint8Array, deviceKey: PublicKey, expectedLockId: string): Alert {
  const d = decodeAlert(bytes);
  return verifyDevice(d, d.alert, deviceKey, expectedLockId, 'alert');
}

// ---------------------------------------------------------------------------------------------------------
// Audit records ([TANDEM-MQTT-6]).
// ---------------------------------------------------------------------------------------------------------

/** Largest encoded audit record ([TANDEM-MQTT-6]); fits one ATT long read (512 bytes). */
export const MAX_AUDIT_RECORD_BYTES = 512;
const AUDIT_LIMITS: CborLimits = { maxBytes: MAX_AUDIT_RECORD_BYTES, maxDepth: 2, maxItems: 16 };
const AUDIT_KEYS = {
  1: 'lock id',
  2: 'sequence',
  3: 'time',
  4: 'previous hash',
  5: 'event',
  6: 'status',
  7: 'command',
  8: 'token id',
  9: 'rider',
  10: 'detail',
  11: 'epoch',
} as const;
const EVENT_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

/** The previous-record hash of a lock's first audit record: 32 zero bytes ([TANDEM-MQTT-7]). */
export const AUDIT_GENESIS_HASH: Uint8Array = new Uint8Array(32);

/** An audit record ([TANDEM-MQTT-6]). */
export interface AuditRecord {
  readonly lockId: string;
  /** Outbox sequence number ([TANDEM-MQTT-8]). */
  readonly sequence: number;
  /** Outbox epoch the sequence belongs to ([TANDEM-MQTT-11]). */
  readonly epoch: number;
  readonly time: number;
  /** SHA-256 of the previous audit record's bytes ([TANDEM-MQTT-7]). */
  readonly previousHash: Uint8Array;
  /** What happened: `unlock`, `refused`, `revocation-applied`, `boot`, ... */
  readonly event: string;
  readonly status: Status;
  /** The command concerned ([TANDEM-POP-5]), when the event answers a request. */
  readonly command?: Command;
  readonly tokenId?: Uint8Array;
  readonly rider?: string;
  readonly detail: ReadonlyMap<string, DetailValue>;
}

function parseAudit(payload: Uint8Array): AuditRecord {
  const r: PayloadReader = PayloadReader.parse(payload, AUDIT_LIMITS, 'audit record', AUDIT_KEYS);
  const lockId = r.lockId(1);
  const sequence = r.uint(2, 1);
  const time = r.uint(3);
  const previousHash = r.bstr(4, 32, 32);
  const event = r.text(5, 32, EVENT_PATTERN);
  const status = r.get(6);
  if (!isStatus(status)) r.fail(6, 'must be a known status byte (SPEC.md "Status codes")');
  const command = r.has(7) ? r.get(7) : undefined;
  if (command !== undefined && !isCommand(command)) r.fail(7, 'must be a command value of TANDEM-POP-5');
  const tokenId = r.has(8) ? r.bstr(8, 1, 32) : undefined;
  const rider = r.has(9) ? r.text(9, 64) : undefined;
  return {
    lockId,
    sequence,
    time,
    previousHash,
    event,
    status,
    ...(command === undefined ? {} : { command }),
    ...(tokenId === undefined ? {} : { tokenId }),
    ...(rider === undefined ? {} : { rider }),
    detail: r.detail(10),
    epoch: r.uint(11, 1),
  };
}

/** Encodes and signs an audit record with the lock's device key ([TANDEM-MQTT-6]). */
export function encodeAuditRecord(record: AuditRecord, deviceKey: PrivateKey): Uint8Array {
  const m = new Map<number, CborValue>([
    [1, record.lockId],
    [2, record.sequence],
    [3, record.time],
    [4, record.previousHash],
    [5, record.event],
    [6, record.status],
  ]);
  if (record.command !== undefined) m.set(7, record.command);
  if (record.tokenId !== undefined) m.set(8, record.tokenId);
  if (record.rider !== undefined) m.set(9, record.rider);
  setDetail(m, 10, record.detail);
  m.set(11, record.epoch);
  return signPayload(checked(m, parseAudit), deviceKey, CONTENT_FORMAT.auditRecord);
}

/** Decodes an audit record without checking its signature. Throws only {@link ProtocolError}. */
export function decodeAuditRecord(bytes: Uint8Array): {
  readonly sign1: Sign1;
  readonly record: AuditRecord;
} {
  const sign1 = openSign1(bytes, MAX_AUDIT_RECORD_BYTES, CONTENT_FORMAT.auditRecord, 'audit record');
  return { sign1, record: parseAudit(sign1.payload) };
}

/** Verifies an audit record with the device key of `expectedLockId`, then its lock id ([TANDEM-MQTT-6]). */
export function verifyAuditRecord(
  bytes: Uint8Array,
  deviceKey: PublicKey,
  expectedLockId: string,
): AuditRecord {
  const d = decodeAuditRecord(bytes);
  return verifyDevice(d, d.record, deviceKey, expectedLockId, 'audit record');
}

/**
 * The hash that the next audit record carries as "previous hash" ([TANDEM-MQTT-7]): SHA-256 of this record's
 * complete COSE_Sign1 bytes, so that the chain covers the signatures too and a dropped record shows.
 */
export function auditRecordHash(recordBytes: Uint8Array): Uint8Array {
  return Uint8Array.from(sha256(recordBytes));
}

// Node's one-shot hash (20.12 and later) where it has it, as chain.ts: no Hash object per record, and the
// lock hashes every record it writes (issue 8, decision cost).
const sha256: (data: Uint8Array) => Buffer =
  typeof crypto.hash === 'function'
    ? (data) => crypto.hash('sha256', data, 'buffer')
    : (data) => createHash('sha256').update(data).digest();

// ---------------------------------------------------------------------------------------------------------
// Lock state ([TANDEM-MQTT-10]).
// ---------------------------------------------------------------------------------------------------------

/** Largest encoded lock state ([TANDEM-MQTT-10]). */
export const MAX_LOCK_STATE_BYTES = 256;
const STATE_LIMITS: CborLimits = { maxBytes: MAX_LOCK_STATE_BYTES, maxDepth: 1, maxItems: 8 };
const STATE_KEYS = {
  1: 'lock id',
  2: 'state',
  3: 'time',
  4: 'uncertainty',
  5: 'revocation version',
  6: 'outbox epoch',
  7: 'outbox sequence',
  8: 'battery',
} as const;

/** Largest battery level: a percentage ([TANDEM-MQTT-14]). */
export const MAX_BATTERY_PERCENT = 100;

/** A lock's state report ([TANDEM-MQTT-10]), retained on `.../state`. */
export interface LockStateReport {
  readonly lockId: string;
  readonly state: LockState;
  readonly time: number;
  /** Seconds the lock's clock may be off; null when unbounded. */
  readonly uncertainty: number | null;
  readonly revocationVersion: number;
  /** The lock's current outbox epoch ([TANDEM-MQTT-11]). */
  readonly outboxEpoch: number;
  /** The last outbox sequence queued in that epoch; 0 when none yet. */
  readonly outboxSequence: number;
  /**
   * The battery's charge in percent (0..100) as the board's fuel gauge last read it ([TANDEM-MQTT-14]);
   * absent when the board has no gauge or it could not be read: never guessed.
   */
  readonly battery?: number;
}

function parseState(payload: Uint8Array): LockStateReport {
  const r: PayloadReader = PayloadReader.parse(payload, STATE_LIMITS, 'lock state', STATE_KEYS);
  return {
    lockId: r.lockId(1),
    state: r.oneOf(2, LOCK_STATES),
    time: r.uint(3),
    uncertainty: r.uintOrNull(4),
    revocationVersion: r.uint(5),
    outboxEpoch: r.uint(6, 1),
    outboxSequence: r.uint(7),
    ...(r.has(8) ? { battery: batteryField(r) } : {}),
  };
}

/** Key 8 when present: an unsigned integer 0..100 ([TANDEM-MQTT-14]). */
function batteryField(r: PayloadReader): number {
  const v = r.get(8);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_BATTERY_PERCENT) {
    r.fail(8, `must be an unsigned integer from 0 to ${MAX_BATTERY_PERCENT} (percent)`);
  }
  return v;
}

/** Encodes and signs a lock state report with the lock's device key ([TANDEM-MQTT-10]). */
export function encodeLockState(report: LockStateReport, deviceKey: PrivateKey): Uint8Array {
  const m = new Map<number, CborValue>([
    [1, report.lockId],
    [2, report.state],
    [3, report.time],
    [4, report.uncertainty],
    [5, report.revocationVersion],
    [6, report.outboxEpoch],
    [7, report.outboxSequence],
  ]);
  if (report.battery !== undefined) m.set(8, report.battery);
  return signPayload(checked(m, parseState), deviceKey, CONTENT_FORMAT.lockState);
}

/** Decodes a lock state report without checking its signature. Throws only {@link ProtocolError}. */
export function decodeLockState(bytes: Uint8Array): {
  readonly sign1: Sign1;
  readonly report: LockStateReport;
} {
  const sign1 = openSign1(bytes, MAX_LOCK_STATE_BYTES, CONTENT_FORMAT.lockState, 'lock state');
  return { sign1, report: parseState(sign1.payload) };
}

/** Verifies a lock state report with the device key of `expectedLockId`, then its lock id. */
export function verifyLockState(
  bytes: Uint8Array,
  deviceKey: PublicKey,
  expectedLockId: string,
): LockStateReport {
  const d = decodeLockState(bytes);
  return verifyDevice(d, d.report, deviceKey, expectedLockId, 'lock state');
}

// ---------------------------------------------------------------------------------------------------------
// Outbox acknowledgements ([TANDEM-MQTT-8]).
// ---------------------------------------------------------------------------------------------------------

/** Largest encoded outbox acknowledgement ([TANDEM-MQTT-8]). */
export const MAX_OUTBOX_ACK_BYTES = 256;
const OUTBOX_LIMITS: CborLimits = { maxBytes: MAX_OUTBOX_ACK_BYTES, maxDepth: 1, maxItems: 8 };
const OUTBOX_KEYS = { 1: 'lock id', 2: 'sequence', 3: 'epoch' } as const;

/** The cloud's statement that it holds every outbox record of a lock up to `sequence` ([TANDEM-MQTT-8]). */
export interface OutboxAck {
  readonly lockId: string;
  /** Highest sequence such that the cloud holds all of 1..sequence of `epoch`. */
  readonly sequence: number;
  /** The outbox epoch acknowledged ([TANDEM-MQTT-11]); an ack for another epoch changes nothing. */
  readonly epoch: number;
}

function parseOutboxAck(payload: Uint8Array): OutboxAck {
  const r: PayloadReader = PayloadReader.parse(payload, OUTBOX_LIMITS, 'outbox ack', OUTBOX_KEYS);
  return { lockId: r.lockId(1), sequence: r.uint(2, 1), epoch: r.uint(3, 1) };
}

/** Encodes and signs an outbox acknowledgement with the issuer key; `kid` in the unprotected header. */
export function encodeOutboxAck(ack: OutboxAck, issuerKey: PrivateKey, kid: Uint8Array): Uint8Array {
  const m = new Map<number, CborValue>([
    [1, ack.lockId],
    [2, ack.sequence],
    [3, ack.epoch],
  ]);
  return signPayload(checked(m, parseOutboxAck), issuerKey, CONTENT_FORMAT.outboxAck, kid);
}

/** Decodes an outbox acknowledgement without checking its signature. Throws only {@link ProtocolError}. */
export function decodeOutboxAck(bytes: Uint8Array): { readonly sign1: Sign1; readonly ack: OutboxAck } {
  const sign1 = openSign1(bytes, MAX_OUTBOX_ACK_BYTES, CONTENT_FORMAT.outboxAck, 'outbox ack');
  return { sign1, ack: parseOutboxAck(sign1.payload) };
}

/**
 * Verifies an outbox acknowledgement ([TANDEM-MQTT-8]): issuer key by `kid`, signature, then that it names
 * `expectedLockId`. A phone relays it untrusted; only the issuer's signature lets a lock drop records.
 */
export function verifyOutboxAck(
  bytes: Uint8Array,
  resolveKey: (kid: Uint8Array) => PublicKey | undefined,
  expectedLockId: string,
): OutboxAck {
  const { sign1, ack } = decodeOutboxAck(bytes);
  verifyIssuerSigned(sign1, resolveKey, 'outbox ack');
  checkLockAudience(ack.lockId, expectedLockId, 'outbox ack');
  return ack;
}

// ---------------------------------------------------------------------------------------------------------
// Time requests ([TANDEM-MQTT-12]).
// ---------------------------------------------------------------------------------------------------------

/** Largest encoded time request ([TANDEM-MQTT-12]). */
export const MAX_TIME_REQUEST_BYTES = 128;
const TIME_REQUEST_LIMITS: CborLimits = { maxBytes: MAX_TIME_REQUEST_BYTES, maxDepth: 1, maxItems: 4 };
const TIME_REQUEST_KEYS = { 1: 'lock id', 2: 'nonce' } as const;

/**
 * An online lock's request for a beacon bound to a nonce of its own ([TANDEM-MQTT-12]): a broadcast beacon only
 * raises the floor ([TANDEM-TIME-5]), so a lock that wants an upper bound asks for a nonce-bound one.
 */
export interface TimeRequest {
  readonly lockId: string;
  /** A challenge nonce the lock issued to itself ([TANDEM-TIME-4]), 16 bytes. */
  readonly nonce: Uint8Array;
}

function parseTimeRequest(payload: Uint8Array): TimeRequest {
  const r: PayloadReader = PayloadReader.parse(
    payload,
    TIME_REQUEST_LIMITS,
    'time request',
    TIME_REQUEST_KEYS,
  );
  return { lockId: r.lockId(1), nonce: r.bstr(2, 16, 16) };
}

/** Encodes and signs a time request with the lock's device key ([TANDEM-MQTT-12]). */
export function encodeTimeRequest(request: TimeRequest, deviceKey: PrivateKey): Uint8Array {
  const m = new Map<number, CborValue>([
    [1, request.lockId],
    [2, request.nonce],
  ]);
  return signPayload(checked(m, parseTimeRequest), deviceKey, CONTENT_FORMAT.timeRequest);
}

/** Decodes a time request without checking its signature. Throws only {@link ProtocolError}. */
export function decodeTimeRequest(bytes: Uint8Array): {
  readonly sign1: Sign1;
  readonly request: TimeRequest;
} {
  const sign1 = openSign1(bytes, MAX_TIME_REQUEST_BYTES, CONTENT_FORMAT.timeRequest, 'time request');
  return { sign1, request: parseTimeRequest(sign1.payload) };
}

/** Verifies a time request with the device key of `expectedLockId`, then its lock id ([TANDEM-MQTT-12]). */
export function verifyTimeRequest(
  bytes: Uint8Array,
  deviceKey: PublicKey,
  expectedLockId: string,
): TimeRequest {
  const d = decodeTimeRequest(bytes);
  return verifyDevice(d, d.request, deviceKey, expectedLockId, 'time request');
}
