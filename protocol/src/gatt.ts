/**
 * The BLE GATT contract between a phone and a lock (SPEC.md §8): service and characteristic UUIDs,
 * advertising, one-byte message types, the framing of messages larger than one ATT payload, and the CBOR
 * bodies of the challenge, result and lock info messages. The unlock request body is in `pop.ts`.
 *
 * The BLE link is public (bleno pairs "Just Works" only): nothing here is secret, and every message that
 * matters is signed by someone the receiver knows. Framing only has to be unambiguous and bounded.
 */
import { createHash } from 'node:crypto';
import type { CborLimits, CborValue } from './cbor.js';
import { encode } from './cbor.js';
import { ProtocolError } from './errors.js';
import type { Status } from './status.js';
import { isStatus } from './status.js';
import type { Command } from './pop.js';
import { SCOPE_OF_COMMAND } from './pop.js';
import { LOCK_ID_PATTERN, PayloadReader, isLockId } from './lib/signed-payload.js';

// ---------------------------------------------------------------------------------------------------------
// Service, characteristics, advertising ([TANDEM-GATT-1] to [TANDEM-GATT-3]).
// ---------------------------------------------------------------------------------------------------------

/** The Tandem primary service ([TANDEM-GATT-1]); characteristics replace `0000` with 0001..0006. */
export const GATT_SERVICE_UUID = '7a3d0000-5c1e-4b8a-9f2e-1d6c0a7e4b10';

const characteristic = (n: number): string =>
  `7a3d${n.toString(16).padStart(4, '0')}-5c1e-4b8a-9f2e-1d6c0a7e4b10`;

/** Characteristic UUIDs ([TANDEM-GATT-1]). */
export const CHARACTERISTIC = {
  /** read, notify: a fresh challenge. */
  challenge: characteristic(1),
  /** write: an unlock (or other command) request. */
  request: characteristic(2),
  /** notify: the result of a request or delivery. */
  result: characteristic(3),
  /** read: lock info. */
  lockInfo: characteristic(4),
  /** write: time beacons and revocation updates carried by the phone. */
  delivery: characteristic(5),
  /** read, notify: queued alerts, audit records, revocation acks and state; write: outbox acks ([TANDEM-GATT-11]). */
  relay: characteristic(6),
} as const;

/** Name of a characteristic of the Tandem service. */
export type CharacteristicName = keyof typeof CHARACTERISTIC;

/**
 * GATT properties of each characteristic ([TANDEM-GATT-1]), in bleno's spelling. Reads return a body unframed
 * (ATT long reads, at most 512 bytes); writes and notifications carry frames ([TANDEM-GATT-12]).
 */
export const CHARACTERISTIC_PROPERTIES: Readonly<Record<CharacteristicName, readonly string[]>> = {
  challenge: ['read', 'notify'],
  request: ['write', 'writeWithoutResponse'],
  result: ['notify'],
  lockInfo: ['read'],
  delivery: ['write', 'writeWithoutResponse'],
  relay: ['read', 'notify', 'write', 'writeWithoutResponse'],
};

/** A UUID without dashes, lower case: the form bleno and noble use. */
export function compactUuid(uuid: string): string {
  return uuid.replace(/-/g, '').toLowerCase();
}

// A 128-bit UUID in an advertising structure is little-endian (Core Specification Supplement Part A §1.1).
function uuidLittleEndian(uuid: string): Uint8Array {
  return Uint8Array.from(Buffer.from(compactUuid(uuid), 'hex')).reverse();
}

/** Length of the lock tag in the scan response ([TANDEM-GATT-3]). */
export const LOCK_TAG_BYTES = 4;

function requireLockId(lockId: unknown, what: string): string {
  if (!isLockId(lockId)) {
    throw new ProtocolError('ERR_MESSAGE_INVALID', `${what}: lock id must match ${LOCK_ID_PATTERN.source}`);
  }
  return lockId;
}

/**
 * The 4-byte lock tag ([TANDEM-GATT-3]): the first 4 bytes of SHA-256("tandem-lock:" + lock id). A phone
 * looking for one lock filters scan responses on it instead of connecting to every Tandem lock in range. It
 * identifies, it does not authenticate: anyone can compute and advertise it.
 */
export function lockTag(lockId: string): Uint8Array {
  requireLockId(lockId, 'lock tag');
  const digest = createHash('sha256').update(`tandem-lock:${lockId}`, 'utf8').digest();
  return Uint8Array.from(digest.subarray(0, LOCK_TAG_BYTES));
}

/** Flags byte after the lock tag in the scan response ([TANDEM-GATT-3]). */
export interface AdvertisedFlags {
  /** Records wait in the lock's outbox: any Tandem phone in range should connect and relay them. */
  readonly relayPending: boolean;
  /** The lock is in alarm. */
  readonly alarm: boolean;
}

/**
 * Version of the lock's GATT database (the attribute table of SPEC §8.1: services, characteristics,
 * descriptors and their order), published in bits 2-7 of the scan response's flags byte
 * ([TANDEM-GATT-16]). Bump it whenever that table changes, so that phones that cached this lock's handles
 * discover again. 1..63; 0 means "not published, discover".
 */
export const GATT_DATABASE_VERSION = 1;

const AD_FLAGS = 0x01;
const AD_COMPLETE_128 = 0x07;
const AD_SERVICE_DATA_128 = 0x21;

/**
 * The advertising data ([TANDEM-GATT-2]): Flags (LE General Discoverable, BR/EDR not supported) and the
 * complete list of 128-bit service UUIDs holding the Tandem service. 21 of the 31 bytes.
 */
export function advertisingData(): Uint8Array {
  return Uint8Array.from([
    0x02,
    AD_FLAGS,
    0x06,
    0x11,
    AD_COMPLETE_128,
    ...uuidLittleEndian(GATT_SERVICE_UUID),
  ]);
}

/**
 * The scan response ([TANDEM-GATT-3]): Service Data - 128-bit UUID (AD type 0x21) with the Tandem service
 * UUID, the 4-byte lock tag and one flags byte (bit 0 relay pending, bit 1 alarm, bits 2-7 the GATT
 * database version of [TANDEM-GATT-16]). 23 of the 31 bytes.
 */
export function scanResponseData(
  lockId: string,
  flags: AdvertisedFlags,
  databaseVersion: number = GATT_DATABASE_VERSION,
): Uint8Array {
  if (!Number.isInteger(databaseVersion) || databaseVersion < 0 || databaseVersion > 63) {
    throw new ProtocolError('ERR_MESSAGE_INVALID', 'GATT database version must be an integer in 0..63');
  }
  const flagsByte = (flags.relayPending ? 1 : 0) | (flags.alarm ? 2 : 0) | (databaseVersion << 2);
  return Uint8Array.from([
    0x16,
    AD_SERVICE_DATA_128,
    ...uuidLittleEndian(GATT_SERVICE_UUID),
    ...lockTag(lockId),
    flagsByte,
  ]);
}

/**
 * Parses the service data that follows the UUID in the scan response (what noble reports as
 * `serviceData[].data` for the Tandem service). Throws ERR_MESSAGE_INVALID for any other length.
 */
export function parseServiceData(data: Uint8Array): {
  readonly tag: Uint8Array;
  readonly flags: AdvertisedFlags;
  /** GATT database version ([TANDEM-GATT-16]); 0: not published, a phone must discover. */
  readonly databaseVersion: number;
} {
  if (!(data instanceof Uint8Array) || data.length !== LOCK_TAG_BYTES + 1) {
    throw new ProtocolError('ERR_MESSAGE_INVALID', `Tandem service data must be ${LOCK_TAG_BYTES + 1} bytes`);
  }
  const f = data[LOCK_TAG_BYTES]!;
  return {
    tag: Uint8Array.from(data.subarray(0, LOCK_TAG_BYTES)),
    flags: { relayPending: (f & 1) !== 0, alarm: (f & 2) !== 0 },
    databaseVersion: f >> 2,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Message types ([TANDEM-GATT-4]).
// ---------------------------------------------------------------------------------------------------------

/** One-byte message types carried in the first frame ([TANDEM-GATT-4]). 0x00 is reserved. */
export const MessageType = {
  challenge: 0x01,
  unlockRequest: 0x02,
  result: 0x03,
  lockInfo: 0x04,
  timeBeacon: 0x05,
  revocationUpdate: 0x06,
  alert: 0x07,
  auditRecord: 0x08,
  revocationAck: 0x09,
  lockState: 0x0a,
  outboxAck: 0x0b,
  anchorUpdate: 0x0c,
  anchorAck: 0x0d,
} as const;

/** A message type value. */
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** The message types a phone may write to each writable characteristic ([TANDEM-GATT-4]). */
export const WRITABLE_TYPES: Readonly<Partial<Record<CharacteristicName, readonly MessageType[]>>> = {
  request: [MessageType.unlockRequest],
  delivery: [MessageType.timeBeacon, MessageType.revocationUpdate, MessageType.anchorUpdate],
  relay: [MessageType.outboxAck],
};

// ---------------------------------------------------------------------------------------------------------
// Framing ([TANDEM-GATT-5] to [TANDEM-GATT-7]).
// ---------------------------------------------------------------------------------------------------------

/** Smallest ATT MTU (Core Specification Vol 3 Part F §3.2.8, LE default); framing must work at it. */
export const MIN_ATT_MTU = 23;
/** Largest ATT MTU a phone negotiates (Android 14 requests 517). */
export const MAX_ATT_MTU = 517;
/** Largest message body, in bytes ([TANDEM-GATT-6]). */
export const MAX_MESSAGE_BYTES = 4096;
/** Header of a first frame: flags/sequence, type, 2-byte length ([TANDEM-GATT-5]). */
export const FIRST_HEADER_BYTES = 4;
/** Header of a continuation frame: flags/sequence ([TANDEM-GATT-5]). */
export const CONTINUATION_HEADER_BYTES = 1;

const FLAG_FIRST = 0x80;
const FLAG_LAST = 0x40;
const SEQ_MASK = 0x3f;

/** A reassembled message. */
export interface Message {
  readonly type: number;
  readonly body: Uint8Array;
}

function frameError(message: string): never {
  throw new ProtocolError('ERR_FRAME_INVALID', message);
}

/**
 * Splits a message into frames for an ATT MTU ([TANDEM-GATT-5]): each frame is at most `attMtu - 3` bytes (the
 * ATT write or notification payload, Core Specification Vol 3 Part F §3.4.5.3, §3.4.7.1). The first frame
 * carries flags/sequence, type and the body length; continuation frames carry one header byte. A body of at
 * most `attMtu - 7` bytes is a single frame (178 bytes at MTU 185).
 */
export function frameMessage(type: number, body: Uint8Array, attMtu: number): Uint8Array[] {
  if (!Number.isInteger(type) || type < 1 || type > 0xff) frameError(`message type ${type} must be 1 to 255`);
  if (!Number.isInteger(attMtu) || attMtu < MIN_ATT_MTU || attMtu > MAX_ATT_MTU) {
    frameError(`ATT MTU ${attMtu} must be ${MIN_ATT_MTU} to ${MAX_ATT_MTU}`);
  }
  if (body.length > MAX_MESSAGE_BYTES) {
    throw new ProtocolError(
      'ERR_TOO_LARGE',
      `message body of ${body.length} bytes exceeds ${MAX_MESSAGE_BYTES}`,
    );
  }
  const payload = attMtu - 3;
  const frames: Uint8Array[] = [];
  let offset = Math.min(body.length, payload - FIRST_HEADER_BYTES);
  const first = new Uint8Array(FIRST_HEADER_BYTES + offset);
  first[0] = FLAG_FIRST | (offset === body.length ? FLAG_LAST : 0);
  first[1] = type;
  first[2] = body.length >> 8;
  first[3] = body.length & 0xff;
  first.set(body.subarray(0, offset), FIRST_HEADER_BYTES);
  frames.push(first);
  let seq = 0;
  while (offset < body.length) {
    seq = (seq + 1) & SEQ_MASK;
    const n = Math.min(body.length - offset, payload - CONTINUATION_HEADER_BYTES);
    const frame = new Uint8Array(CONTINUATION_HEADER_BYTES + n);
    frame[0] = seq | (offset + n === body.length ? FLAG_LAST : 0);
    frame.set(body.subarray(offset, offset + n), CONTINUATION_HEADER_BYTES);
    frames.push(frame);
    offset += n;
  }
  return frames;
}

/** Options of a {@link Reassembler}. */
export interface ReassemblerOptions {
  /** Largest accepted body; default and ceiling {@link MAX_MESSAGE_BYTES}. */
  readonly maxLength?: number;
  /** Message types accepted on this characteristic ({@link WRITABLE_TYPES}); default any. */
  readonly allowedTypes?: readonly number[];
}

const hex2 = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`;

/**
 * Reassembles frames written to one characteristic by one peer ([TANDEM-GATT-6], [TANDEM-GATT-7]). Pure and
 * without timers: the caller calls {@link Reassembler.reset} on disconnect and when a message stays incomplete
 * too long. Memory is bounded by `maxLength`: the declared length is checked at the first frame, before any
 * byte is buffered.
 *
 * Every refusal throws ERR_FRAME_INVALID (ERR_TOO_LARGE for a declared length over the maximum), discards
 * whatever was buffered and drops the offending frame: the reassembler is idle afterwards, and the sender
 * resends the whole message.
 */
export class Reassembler {
  private readonly maxLength: number;
  private readonly allowedTypes: readonly number[] | undefined;
  private type = 0;
  private buffer: Uint8Array | undefined;
  private filled = 0;
  private seq = 0;

  constructor(options: ReassemblerOptions = {}) {
    const max = options.maxLength ?? MAX_MESSAGE_BYTES;
    if (!Number.isInteger(max) || max < 0 || max > MAX_MESSAGE_BYTES) {
      frameError(`reassembler maxLength ${max} must be 0 to ${MAX_MESSAGE_BYTES}`);
    }
    this.maxLength = max;
    this.allowedTypes = options.allowedTypes;
  }

  /** True while a message is partly received. */
  get busy(): boolean {
    return this.buffer !== undefined;
  }

  /** Discards any partly received message (disconnect, timeout). */
  reset(): void {
    this.buffer = undefined;
    this.filled = 0;
    this.seq = 0;
    this.type = 0;
  }

  private refuse(message: string, code: 'ERR_FRAME_INVALID' | 'ERR_TOO_LARGE' = 'ERR_FRAME_INVALID'): never {
    this.reset();
    throw new ProtocolError(code, message);
  }

  /**
   * Takes one frame; returns the message when `frame` completes it, otherwise undefined. Throws
   * {@link ProtocolError} (see the class comment) for an empty frame, a continuation without a first frame, a
   * sequence number out of order, a first frame while a message is incomplete, a declared length over the
   * maximum, a frame overrunning the declared length, a last flag before the declared length, or a frame
   * that fills the declared length without the last flag.
   */
  push(frame: Uint8Array): Message | undefined {
    if (!(frame instanceof Uint8Array) || frame.length === 0) this.refuse('empty frame');
    const header = frame[0]!;
    const first = (header & FLAG_FIRST) !== 0;
    const last = (header & FLAG_LAST) !== 0;
    const seq = header & SEQ_MASK;
    if (first) {
      if (this.buffer !== undefined) {
        this.refuse(
          `first frame of a new message while message type ${hex2(this.type)} was incomplete ` +
            `(${this.filled} of ${this.buffer.length} bytes); both discarded, resend`,
        );
      }
      if (frame.length < FIRST_HEADER_BYTES) {
        this.refuse(
          `first frame of ${frame.length} bytes is shorter than its ${FIRST_HEADER_BYTES}-byte header`,
        );
      }
      if (seq !== 0) this.refuse(`first frame has sequence number ${seq}, expected 0`);
      const type = frame[1]!;
      if (type === 0) this.refuse('message type 0x00 is reserved');
      if (this.allowedTypes !== undefined && !this.allowedTypes.includes(type)) {
        this.refuse(`message type ${hex2(type)} is not accepted here`);
      }
      const length = (frame[2]! << 8) | frame[3]!;
      if (length > this.maxLength) {
        this.refuse(`declared message length ${length} exceeds ${this.maxLength}`, 'ERR_TOO_LARGE');
      }
      const carried = frame.length - FIRST_HEADER_BYTES;
      if (carried > length)
        this.refuse(`first frame carries ${carried} bytes, more than the declared length ${length}`);
      if (carried === 0 && length > 0) this.refuse('empty first frame: it carries no body byte');
      if (carried === length) {
        if (!last) this.refuse(`first frame fills the declared length ${length} but lacks the last flag`);
        return { type, body: Uint8Array.from(frame.subarray(FIRST_HEADER_BYTES)) };
      }
      if (last) this.refuse(`last flag after ${carried} of ${length} declared bytes`);
      this.type = type;
      this.buffer = new Uint8Array(length);
      this.buffer.set(frame.subarray(FIRST_HEADER_BYTES));
      this.filled = carried;
      this.seq = 0;
      return undefined;
    }
    const buffer = this.buffer;
    if (buffer === undefined) this.refuse(`continuation frame (sequence ${seq}) without a first frame`);
    const expected = (this.seq + 1) & SEQ_MASK;
    if (seq !== expected) this.refuse(`frame sequence number ${seq} out of order, expected ${expected}`);
    const carried = frame.length - CONTINUATION_HEADER_BYTES;
    if (carried === 0) this.refuse(`empty continuation frame (sequence ${seq})`);
    const remaining = buffer.length - this.filled;
    if (carried > remaining) {
      this.refuse(
        `frame ${seq} carries ${carried} bytes, overrunning the declared length by ${carried - remaining}`,
      );
    }
    buffer.set(frame.subarray(CONTINUATION_HEADER_BYTES), this.filled);
    this.filled += carried;
    this.seq = seq;
    if (this.filled === buffer.length) {
      if (!last)
        this.refuse(`frame ${seq} fills the declared length ${buffer.length} but lacks the last flag`);
      const message = { type: this.type, body: buffer };
      this.reset();
      return message;
    }
    if (last) this.refuse(`last flag after ${this.filled} of ${buffer.length} declared bytes`);
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Message bodies ([TANDEM-GATT-8] to [TANDEM-GATT-10]).
// ---------------------------------------------------------------------------------------------------------

/** Lock states as reported on BLE and MQTT ([TANDEM-GATT-9]). */
export const LOCK_STATES = ['locked', 'unlocked', 'alarm', 'jammed', 'fault', 'safe-mode'] as const;
/** A lock state. */
export type LockState = (typeof LOCK_STATES)[number];

/** True for a command value of [TANDEM-POP-5] (results and audit records carry it as a uint). */
export function isCommand(value: unknown): value is Command {
  return typeof value === 'number' && Object.prototype.hasOwnProperty.call(SCOPE_OF_COMMAND, value);
}
/** Length of a challenge nonce ([TANDEM-GATT-8]). */
export const CHALLENGE_NONCE_BYTES = 16;
/** Largest encoded challenge, result or lock info body ([TANDEM-GATT-10]). */
export const MAX_GATT_BODY_BYTES = 256;
const BODY_LIMITS: CborLimits = { maxBytes: MAX_GATT_BODY_BYTES, maxDepth: 1, maxItems: 8 };

/** A challenge ([TANDEM-GATT-8]): read from, or notified on, the challenge characteristic. */
export interface Challenge {
  readonly lockId: string;
  /** 16 random bytes, single use. */
  readonly nonce: Uint8Array;
  /** The lock's clock, Unix seconds. */
  readonly lockTime: number;
  /** Seconds the lock's clock may be off; null when unbounded (no fresh time since a power cut). */
  readonly uncertainty: number | null;
  /** The revocation version the lock holds: the phone relays a newer update or a delta from it. */
  readonly revocationVersion: number;
}

/** The result of a request or delivery ([TANDEM-GATT-9]), notified on the result characteristic. */
export interface Result {
  readonly status: Status;
  /** The message type answered: a request, or a delivery (time beacon, revocation update, outbox ack). */
  readonly answers: MessageType;
  /** The command of the request answered ([TANDEM-POP-5]); absent for deliveries. */
  readonly command?: Command;
  readonly state: LockState;
  readonly lockTime: number;
  /** The nonce of the challenge the request answered, when it answered one. */
  readonly nonce?: Uint8Array;
}

/** Lock info ([TANDEM-GATT-10]), read from the lock info characteristic. */
export interface LockInfo {
  readonly lockId: string;
  readonly firmwareVersion: string;
  readonly revocationVersion: number;
  /** The persisted lower bound of the lock's clock, Unix seconds. */
  readonly timeFloor: number;
  readonly uncertainty: number | null;
  readonly state: LockState;
}

function encodeChecked<T>(body: Map<number, CborValue>, parse: (bytes: Uint8Array) => T): Uint8Array {
  const bytes = encode(body);
  parse(bytes);
  return bytes;
}

const CHALLENGE_KEYS = {
  1: 'lock id',
  2: 'nonce',
  3: 'lock time',
  4: 'uncertainty',
  5: 'revocation version',
} as const;

/** Decodes a challenge body ([TANDEM-GATT-8]). Throws only {@link ProtocolError}. */
export function decodeChallenge(bytes: Uint8Array): Challenge {
  const r: PayloadReader = PayloadReader.parse(bytes, BODY_LIMITS, 'challenge', CHALLENGE_KEYS);
  return {
    lockId: r.lockId(1),
    nonce: r.bstr(2, CHALLENGE_NONCE_BYTES, CHALLENGE_NONCE_BYTES),
    lockTime: r.uint(3),
    uncertainty: r.uintOrNull(4),
    revocationVersion: r.uint(5),
  };
}

/** Encodes a challenge body ([TANDEM-GATT-8]). */
export function encodeChallenge(c: Challenge): Uint8Array {
  return encodeChecked(
    new Map<number, CborValue>([
      [1, c.lockId],
      [2, c.nonce],
      [3, c.lockTime],
      [4, c.uncertainty],
      [5, c.revocationVersion],
    ]),
    decodeChallenge,
  );
}

const RESULT_KEYS = {
  1: 'status',
  2: 'command',
  3: 'lock state',
  4: 'lock time',
  5: 'nonce',
  6: 'answers',
} as const;
const MESSAGE_TYPES: readonly number[] = Object.values(MessageType);

/** Decodes a result body ([TANDEM-GATT-9]). Throws only {@link ProtocolError}. */
export function decodeResult(bytes: Uint8Array): Result {
  const r: PayloadReader = PayloadReader.parse(bytes, BODY_LIMITS, 'result', RESULT_KEYS);
  const status = r.get(1);
  if (!isStatus(status)) r.fail(1, 'must be a known status byte (SPEC.md "Status codes")');
  const command = r.has(2) ? r.get(2) : undefined;
  if (command !== undefined && !isCommand(command)) r.fail(2, 'must be a command value of TANDEM-POP-5');
  const state = r.oneOf(3, LOCK_STATES);
  const lockTime = r.uint(4);
  const nonce = r.has(5) ? r.bstr(5, CHALLENGE_NONCE_BYTES, CHALLENGE_NONCE_BYTES) : undefined;
  const answers = r.get(6);
  if (typeof answers !== 'number' || !MESSAGE_TYPES.includes(answers)) r.fail(6, 'must be a message type');
  return {
    status,
    answers: answers as MessageType,
    ...(command === undefined ? {} : { command }),
    state,
    lockTime,
    ...(nonce === undefined ? {} : { nonce }),
  };
}

/** Encodes a result body ([TANDEM-GATT-9]). */
export function encodeResult(res: Result): Uint8Array {
  const m = new Map<number, CborValue>([[1, res.status]]);
  if (res.command !== undefined) m.set(2, res.command);
  m.set(3, res.state);
  m.set(4, res.lockTime);
  if (res.nonce !== undefined) m.set(5, res.nonce);
  m.set(6, res.answers);
  return encodeChecked(m, decodeResult);
}

const INFO_KEYS = {
  1: 'lock id',
  2: 'firmware version',
  3: 'revocation version',
  4: 'time floor',
  5: 'uncertainty',
  6: 'lock state',
} as const;
const FIRMWARE_VERSION = /^[\x21-\x7e]{1,32}$/;

/** Decodes a lock info body ([TANDEM-GATT-10]). Throws only {@link ProtocolError}. */
export function decodeLockInfo(bytes: Uint8Array): LockInfo {
  const r: PayloadReader = PayloadReader.parse(bytes, BODY_LIMITS, 'lock info', INFO_KEYS);
  return {
    lockId: r.lockId(1),
    firmwareVersion: r.text(2, 32, FIRMWARE_VERSION),
    revocationVersion: r.uint(3),
    timeFloor: r.uint(4),
    uncertainty: r.uintOrNull(5),
    state: r.oneOf(6, LOCK_STATES),
  };
}

/** Encodes a lock info body ([TANDEM-GATT-10]). */
export function encodeLockInfo(info: LockInfo): Uint8Array {
  return encodeChecked(
    new Map<number, CborValue>([
      [1, info.lockId],
      [2, info.firmwareVersion],
      [3, info.revocationVersion],
      [4, info.timeFloor],
      [5, info.uncertainty],
      [6, info.state],
    ]),
    decodeLockInfo,
  );
}
