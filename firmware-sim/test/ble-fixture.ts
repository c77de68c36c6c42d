/**
 * Shared by the ble-*.test.ts files: a small in-test {@link LockGattBackend}, a tap on the virtual radio that
 * records (and can inject) the phone's raw ATT and SMP traffic, and a minimal phone on the real noble that
 * drives raw GATT operations (subscribe, framed writes, reads). The real phone client is gateway/'s; this one
 * only does what the tests need, step by step.
 */
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import type { AdvertisedFlags, Challenge, LockInfo, Result } from '../../protocol/src/gatt.js';
import {
  CHARACTERISTIC,
  GATT_SERVICE_UUID,
  MessageType,
  Reassembler,
  compactUuid,
  decodeChallenge,
  decodeResult,
  frameMessage,
} from '../../protocol/src/gatt.js';
import type { PrivateKey } from '../../protocol/src/keys.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { Command, createRequest, decodeRequest } from '../../protocol/src/pop.js';
import { Status } from '../../protocol/src/status.js';
import type { HciChannel, HciProvider } from '../../hardware/src/virtual-radio/radio.js';
import {
  VirtualClock,
  VirtualRadio,
  createNoble,
  installVirtualHci,
  loadBleno,
} from '../../hardware/src/virtual-radio/index.js';
import type { Noble, NobleCharacteristic, NoblePeripheral } from '../../hardware/src/virtual-radio/index.js';
import { BlenoLockPeripheral } from '../src/ble/bleno-lock-peripheral.js';
import type { BlenoLockPeripheralOptions } from '../src/ble/bleno-lock-peripheral.js';
import type { BlenoApi } from '../src/ble/bleno-types.js';
import type { LockGattBackend, RelayItem } from '../src/ble/lock-gatt-backend.js';

export const LOCK_ID = 'lock-7';
export const LOCK_TIME = 1_800_000_000;

/** Reject after `ms` of real time so that a stuck stack fails the test instead of hanging it. */
export function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Resolve once `predicate` holds, checking at every event-loop turn (bounded by real time). */
export async function until(what: string, predicate: () => boolean, ms = 15_000): Promise<void> {
  await within(
    what,
    ms,
    (async () => {
      while (!predicate()) await new Promise((resolve) => setImmediate(resolve));
    })(),
  );
}

/**
 * An in-test runtime: issues counter-based nonces, accepts a request when its nonce was issued to the same
 * connection and not used yet (the real decision is LockAuthority's), records every call.
 */
export class FakeBackend implements LockGattBackend {
  readonly lockId = LOCK_ID;
  readonly issued = new Map<string, string>(); // nonce hex -> peer
  readonly requests: { peer: string; body: Uint8Array }[] = [];
  readonly deliveries: { peer: string; type: MessageType; body: Uint8Array }[] = [];
  readonly gone: string[] = [];
  relay: RelayItem[] = [];
  flags: AdvertisedFlags = { relayPending: false, alarm: false };
  private counter = 0;

  lockInfo(): LockInfo {
    return {
      lockId: LOCK_ID,
      firmwareVersion: '0.1.0-test',
      revocationVersion: 12,
      timeFloor: LOCK_TIME - 100,
      uncertainty: null,
      state: 'locked',
    };
  }

  issueChallenge(peer: string): Challenge {
    this.counter += 1;
    const nonce = Uint8Array.from(
      createHash('sha256').update(`nonce-${this.counter}`).digest().subarray(0, 16),
    );
    this.issued.set(Buffer.from(nonce).toString('hex'), peer);
    return { lockId: LOCK_ID, nonce, lockTime: LOCK_TIME, uncertainty: 4, revocationVersion: 12 };
  }

  async handleRequest(peer: string, body: Uint8Array): Promise<Result> {
    this.requests.push({ peer, body });
    let request;
    try {
      request = decodeRequest(body);
    } catch {
      return {
        status: Status.MALFORMED,
        answers: MessageType.unlockRequest,
        state: 'locked',
        lockTime: LOCK_TIME,
      };
    }
    const key = Buffer.from(request.nonce).toString('hex');
    const ok = this.issued.get(key) === peer;
    this.issued.delete(key);
    return {
      status: ok ? Status.OK : Status.CHALLENGE_UNKNOWN,
      answers: MessageType.unlockRequest,
      command: request.command,
      state: ok ? 'unlocked' : 'locked',
      lockTime: LOCK_TIME,
      nonce: request.nonce,
    };
  }

  async deliver(peer: string, type: MessageType, body: Uint8Array): Promise<Result> {
    this.deliveries.push({ peer, type, body });
    return { status: Status.OK, answers: type, state: 'locked', lockTime: LOCK_TIME };
  }

  async pendingRelay(max: number): Promise<readonly RelayItem[]> {
    return this.relay.slice(0, max);
  }

  lockTime(): number {
    return LOCK_TIME;
  }

  advertisedFlags(): AdvertisedFlags {
    return this.flags;
  }

  peerGone(peer: string): void {
    this.gone.push(peer);
  }
}

const holder: PrivateKey = generateKeyPair('ES256');

/** A first-time request (a chain whose token is `tokenBytes` long): 312 bytes with the default. */
export function firstRequest(nonce: Uint8Array, tokenBytes = 220): Uint8Array {
  const token = Uint8Array.from({ length: tokenBytes }, (_, i) => (i * 13 + 7) & 0xff);
  return createRequest({
    lockId: LOCK_ID,
    nonce,
    command: Command.UNLOCK,
    chain: [token],
    chainHash: new Uint8Array(32),
    holderKey: holder,
  });
}

/** A repeat request by chain reference: 106 bytes. */
export function repeatRequest(nonce: Uint8Array): Uint8Array {
  return createRequest({
    lockId: LOCK_ID,
    nonce,
    command: Command.UNLOCK,
    chainRef: new Uint8Array(16).fill(0x5a),
    chainHash: new Uint8Array(32),
    holderKey: holder,
  });
}

/** An ATT PDU seen on the air, from the phone or from the lock. */
export interface AttPdu {
  readonly from: 'phone' | 'lock';
  readonly cid: number;
  readonly pdu: Buffer;
}

const ATT_CID = 0x0004;

/**
 * Wraps a {@link VirtualRadio} as the HCI provider of both stacks and watches the phone's HCI channel:
 * every L2CAP PDU the phone's host sends or receives is recorded (ATT and SMP), and {@link AttTap.inject}
 * sends raw L2CAP PDUs as if the phone's host had (a malicious central). Only start fragments carry the
 * L2CAP header; with the controller's 251-byte ACL buffers every ATT PDU of these tests fits in one.
 */
export class AttTap implements HciProvider {
  readonly log: AttPdu[] = [];
  private phoneChannel: HciChannel | undefined;

  constructor(
    private readonly radio: VirtualRadio,
    private readonly phoneDevId: number,
  ) {}

  deviceIds(): number[] {
    return this.radio.deviceIds();
  }

  open(devId: number, sink: (packet: Buffer) => void): HciChannel {
    if (devId !== this.phoneDevId) return this.radio.open(devId, sink);
    const channel = this.radio.open(devId, (packet) => {
      this.record('lock', packet);
      sink(packet);
    });
    this.phoneChannel = channel;
    return {
      write: (packet) => {
        this.record('phone', packet);
        channel.write(packet);
      },
      isUp: () => channel.isUp(),
      close: () => channel.close(),
    };
  }

  private record(from: 'phone' | 'lock', packet: Buffer): void {
    if (packet[0] !== 0x02 || packet.length < 9) return;
    const pb = (packet.readUInt16LE(1) >> 12) & 0x3;
    if (pb === 0x1) return; // continuation fragment
    this.log.push({ from, cid: packet.readUInt16LE(7), pdu: Buffer.from(packet.subarray(9)) });
  }

  /** ATT PDUs the phone sent since `mark` with `opcode`. */
  phoneAtt(opcode: number, mark = 0): AttPdu[] {
    return this.log.slice(mark).filter((p) => p.from === 'phone' && p.cid === ATT_CID && p.pdu[0] === opcode);
  }

  /** Sends an L2CAP PDU on the phone's current connection, bypassing noble (as a malicious central would). */
  inject(cid: number, payload: Buffer): void {
    const conn = this.radio
      .connections()
      .filter((c) => c.open && c.centralDevId === this.phoneDevId)
      .pop();
    if (conn === undefined || this.phoneChannel === undefined) throw new Error('no open phone connection');
    const packet = Buffer.alloc(9 + payload.length);
    packet[0] = 0x02;
    packet.writeUInt16LE(conn.centralHandle | (0x2 << 12), 1);
    packet.writeUInt16LE(4 + payload.length, 3);
    packet.writeUInt16LE(payload.length, 5);
    packet.writeUInt16LE(cid, 7);
    payload.copy(packet, 9);
    this.record('phone', packet);
    this.phoneChannel.write(packet);
  }
}

/** ATT opcodes counted by the tests (Core Vol 3 Part F §3.4.8). */
export const ATT = {
  errorResponse: 0x01,
  readRequest: 0x0a,
  readBlobRequest: 0x0c,
  readBlobResponse: 0x0d,
  writeRequest: 0x12,
  writeCommand: 0x52,
  notification: 0x1b,
  prepareWriteRequest: 0x16,
} as const;

/** ATT requests that wait for a response, i.e. one round trip each. */
export const ATT_REQUEST_OPCODES = [0x02, 0x04, 0x06, 0x08, 0x0a, 0x0c, 0x0e, 0x10, 0x12, 0x16, 0x18];

type Name = keyof typeof CHARACTERISTIC;

interface Inbox {
  readonly reassembler: Reassembler;
  readonly messages: { type: number; body: Uint8Array }[];
}

/** A phone on the real noble: connects, subscribes, writes framed messages, reassembles notifications. */
export class TestPhone {
  peripheral: NoblePeripheral | undefined;
  readonly chars = new Map<Name, NobleCharacteristic>();
  private readonly inboxes = new Map<Name, Inbox>();

  constructor(private readonly noble: Noble) {}

  get mtu(): number {
    return this.peripheral?.mtu ?? 23;
  }

  /** Scans for the Tandem service, connects and discovers the six characteristics. */
  async connect(): Promise<NoblePeripheral> {
    if (this.noble.state !== 'poweredOn') {
      for (;;) {
        const [state] = (await once(this.noble, 'stateChange')) as [string];
        if (state === 'poweredOn') break;
      }
    }
    const found = once(this.noble, 'discover') as Promise<[NoblePeripheral]>;
    await this.noble.startScanningAsync([compactUuid(GATT_SERVICE_UUID)], false);
    const [peripheral] = await found;
    await this.noble.stopScanningAsync();
    await peripheral.connectAsync();
    const names = Object.keys(CHARACTERISTIC) as Name[];
    const { characteristics } = await peripheral.discoverSomeServicesAndCharacteristicsAsync(
      [compactUuid(GATT_SERVICE_UUID)],
      names.map((n) => compactUuid(CHARACTERISTIC[n])),
    );
    this.chars.clear();
    this.inboxes.clear();
    for (const name of names) {
      const c = characteristics.find((x) => x.uuid === compactUuid(CHARACTERISTIC[name]));
      if (c === undefined) throw new Error(`characteristic ${name} not found`);
      this.chars.set(name, c);
    }
    this.peripheral = peripheral;
    return peripheral;
  }

  char(name: Name): NobleCharacteristic {
    const c = this.chars.get(name);
    if (c === undefined) throw new Error(`not connected (${name})`);
    return c;
  }

  /** Subscribes to `name` and reassembles its notifications into messages. */
  async subscribe(name: Name): Promise<void> {
    const c = this.char(name);
    const inbox: Inbox = { reassembler: new Reassembler(), messages: [] };
    this.inboxes.set(name, inbox);
    c.on('data', (data: Buffer, isNotification: boolean) => {
      if (!isNotification) return;
      const message = inbox.reassembler.push(Uint8Array.from(data));
      if (message !== undefined) inbox.messages.push(message);
    });
    await c.subscribeAsync();
  }

  /** Messages received on `name` so far. */
  messages(name: Name): { type: number; body: Uint8Array }[] {
    return this.inboxes.get(name)?.messages ?? [];
  }

  /** Waits for the `index`-th message of `type` on `name` (0-based, counting from the subscription). */
  async message(name: Name, type: number, index: number): Promise<Uint8Array> {
    await until(
      `message type ${type} #${index} on ${name}`,
      () => this.messages(name).filter((m) => m.type === type).length > index,
    );
    return this.messages(name).filter((m) => m.type === type)[index]!.body;
  }

  async challenge(name: Name, index: number): Promise<Challenge> {
    return decodeChallenge(await this.message(name, MessageType.challenge, index));
  }

  async result(index: number): Promise<Result> {
    return decodeResult(await this.message('result', MessageType.result, index));
  }

  /** Writes each frame with Write Without Response, as the flow says (flow step 3). */
  async writeFrames(name: Name, frames: readonly Uint8Array[]): Promise<void> {
    const c = this.char(name);
    for (const frame of frames) await c.writeAsync(Buffer.from(frame), true);
  }

  /** Frames `body` for the connection's MTU and writes it. */
  async send(name: Name, type: number, body: Uint8Array): Promise<number> {
    const frames = frameMessage(type, body, this.mtu);
    await this.writeFrames(name, frames);
    return frames.length;
  }

  async disconnect(): Promise<void> {
    const p = this.peripheral;
    if (p === undefined || p.state !== 'connected') return;
    const gone = once(p, 'disconnect');
    await p.disconnectAsync();
    await gone;
  }

  /** Resolves when the lock (or the link) ends the connection. */
  async disconnected(): Promise<void> {
    const p = this.peripheral;
    if (p === undefined || p.state !== 'connected') return;
    await once(p, 'disconnect');
  }
}

/**
 * One test file's world (bleno is a process-wide singleton: one lock per file): a virtual radio on an
 * auto-advancing clock with phone-like timing (27-byte link layer, 30 ms), the ATT tap on the phone (device
 * 1), the lock's peripheral on device 0 over a {@link FakeBackend}, and a {@link TestPhone}.
 */
export function bleRig(options: {
  readonly attMtuCap: number;
  readonly seed: number;
  readonly peripheral?: Partial<Omit<BlenoLockPeripheralOptions, 'backend' | 'clock' | 'loadBleno'>>;
}) {
  const clock = new VirtualClock({ autoAdvance: true });
  const radio = new VirtualRadio({
    clock,
    linkLayerPayload: 27,
    connectionIntervalMs: 30,
    attMtuCap: options.attMtuCap,
    seed: options.seed,
  });
  const tap = new AttTap(radio, 1);
  // Before bleno or noble is first required: both construct their HCI socket then.
  installVirtualHci(tap);
  const backend = new FakeBackend();
  const rig: { bleno: BlenoApi | undefined } = { bleno: undefined };
  const lock = new BlenoLockPeripheral({
    backend,
    clock,
    loadBleno: () => (rig.bleno = loadBleno({ deviceId: 0 })),
    ...options.peripheral,
  });
  const phone = new TestPhone(createNoble({ deviceId: 1 }));
  return { clock, radio, tap, backend, lock, phone, bleno: () => rig.bleno };
}
