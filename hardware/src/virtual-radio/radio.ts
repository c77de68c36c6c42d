/**
 * The shared air: LE controllers, advertising, scanning, connection set-up, connection events with
 * link-layer fragmentation, loss, latency and supervision timeout (Bluetooth Core spec v5.3, Vol 6 Part B).
 */
import { EventEmitter } from 'node:events';
import createDebug from 'debug';
import { RealClock } from './clock.js';
import type { RadioClock, RadioTimer } from './clock.js';
import { LeController } from './controller.js';
import type { HostSink } from './controller.js';
import { VirtualRadioError } from './errors.js';
import {
  ADV_REPORT_TYPE,
  PB,
  STATUS,
  aclPacket,
  disconnectionComplete,
  leAdvertisingReport,
  leConnectionComplete,
  leConnectionUpdateComplete,
  numberOfCompletedPackets,
} from './hci-defs.js';
import { SeededRandom } from './prng.js';

const debug = createDebug('tandem:radio');
const debugAir = createDebug('tandem:radio:air');

/** Options of {@link VirtualRadio}; all but `clock` and `seed` can be changed later with `configure()`. */
export interface VirtualRadioOptions {
  /** Time source (default {@link RealClock}). */
  clock?: RadioClock;
  /**
   * Link-layer data PDU payload in bytes, 27..251 (default 27: Core 4.1 without Data Length Extension,
   * as on the Pi Zero W; Vol 6 Part B 2.4). The controller splits each HCI ACL packet into PDUs of this size.
   */
  linkLayerPayload?: number;
  /** Connection interval in ms, 7.5..4000 (default: the Central host's maximum from LE Create Connection). */
  connectionIntervalMs?: number;
  /** Advertising interval in ms, 20..10240 (default: what the advertising host set, bleno: 100). */
  advertisingIntervalMs?: number;
  /**
   * Cap on the ATT MTU, 23..517 (default 517: no cap). The air rewrites the MTU field of every ATT Exchange
   * MTU Request and Response (Vol 3 Part F 3.4.2.1–2) to at most this value, like a phone whose stack never
   * offers more (iOS: 185); both sides then settle on min(client, server, cap).
   */
  attMtuCap?: number;
  /** One-way delay in ms between reception over the air and delivery to the receiving host (default 0). */
  latencyMs?: number;
  /**
   * Probability in [0, 1] that any one over-the-air packet is lost (default 0). A lost data PDU is not
   * acknowledged and is sent again at the next connection event, so loss shows as delay (Vol 6 Part B 4.5.9).
   */
  lossRate?: number;
  /** Seed of the loss and advertising-jitter generator (default 1). */
  seed?: number;
  /**
   * Supervision timeout in ms, 100..32000 (default: the Central host's value from LE Create Connection;
   * noble asks for 420). Without a good exchange for this long both sides get Disconnection Complete
   * with reason 0x08 Connection Timeout (Vol 6 Part B 4.5.2).
   */
  supervisionTimeoutMs?: number;
  /** Data PDUs per direction per connection event, 1..16 (default 1). */
  pdusPerEvent?: number;
  /** LE ACL buffer length reported by LE Read Buffer Size, 27..1021 (default 251). */
  aclBufferLength?: number;
  /** LE ACL buffer count reported by LE Read Buffer Size, 1..255 (default 8). */
  aclBufferCount?: number;
  /** RSSI in dBm reported for adverts and Read RSSI, -127..20 (default -60). */
  rssiDbm?: number;
  /** BD_ADDR per HCI device id (default "54:41:4e:00:HH:LL" from the id). */
  addresses?: Record<number, string>;
}

type Tunables = Required<
  Omit<VirtualRadioOptions, 'clock' | 'seed' | 'addresses' | 'connectionIntervalMs' | 'supervisionTimeoutMs'>
> &
  Pick<VirtualRadioOptions, 'connectionIntervalMs' | 'supervisionTimeoutMs'>;

/** Public view of one connection. */
export interface ConnectionInfo {
  readonly id: number;
  readonly open: boolean;
  readonly centralDevId: number;
  readonly peripheralDevId: number;
  readonly centralAddress: string;
  readonly peripheralAddress: string;
  readonly centralHandle: number;
  readonly peripheralHandle: number;
  readonly intervalMs: number;
  readonly supervisionTimeoutMs: number;
  /** connEventCounter of the last connection event that ran (Vol 6 Part B 4.5.1). */
  readonly eventCounter: number;
  /** Connection events that actually carried traffic or retries (idle events are not simulated). */
  readonly busyEvents: number;
  /** Data PDUs delivered Central→Peripheral and Peripheral→Central. */
  readonly pdusToPeripheral: number;
  readonly pdusToCentral: number;
  /** Over-the-air packets lost (data or empty). */
  readonly lostPackets: number;
  /** ATT Exchange MTU PDUs whose MTU field the cap rewrote. */
  readonly mtuRewrites: number;
  /** HCI reason of the disconnection, once closed. */
  readonly disconnectReason: number | null;
}

/** Events of {@link VirtualRadio}. */
export interface VirtualRadioEvents {
  connect: [ConnectionInfo];
  disconnect: [ConnectionInfo];
}

interface LlPdu {
  /** LLID (Vol 6 Part B 2.4): 0b10 start of an L2CAP message, 0b01 continuation. */
  readonly llid: 0b01 | 0b10;
  readonly data: Buffer;
  /** Called once the PDU is acknowledged (the last PDU of an HCI packet frees its buffer). */
  readonly onAck?: () => void;
}

class Direction {
  readonly queue: LlPdu[] = [];
  /** The head was received by the peer (NESN advanced) but not yet acknowledged back (Vol 6 Part B 4.5.9). */
  headDelivered = false;
}

/** Internal connection state; see {@link ConnectionInfo} for the public view. */
export class Connection {
  readonly id: number;
  readonly central: LeController;
  readonly peripheral: LeController;
  readonly centralHandle: number;
  readonly peripheralHandle: number;
  intervalMs: number;
  latency: number;
  supervisionTimeoutMs: number;
  anchorMs: number;
  eventCounter = -1;
  lastEventMs: number;
  lastGoodMs: number;
  readonly c2p = new Direction();
  readonly p2c = new Direction();
  timer: RadioTimer | null = null;
  open = true;
  terminate: { by: LeController; reason: number } | null = null;
  pendingUpdate: {
    intervalMs: number;
    latency: number;
    supervisionTimeoutMs: number;
    instant: number;
  } | null = null;
  busyEvents = 0;
  pdusToPeripheral = 0;
  pdusToCentral = 0;
  lostPackets = 0;
  mtuRewrites = 0;
  disconnectReason: number | null = null;

  constructor(
    id: number,
    central: LeController,
    peripheral: LeController,
    params: { intervalMs: number; latency: number; supervisionTimeoutMs: number; anchorMs: number },
  ) {
    this.id = id;
    this.central = central;
    this.peripheral = peripheral;
    this.centralHandle = central.allocateHandle();
    this.peripheralHandle = peripheral.allocateHandle();
    this.intervalMs = params.intervalMs;
    this.latency = params.latency;
    this.supervisionTimeoutMs = params.supervisionTimeoutMs;
    this.anchorMs = params.anchorMs;
    this.lastEventMs = params.anchorMs - params.intervalMs;
    this.lastGoodMs = params.anchorMs;
  }

  handleOf(c: LeController): number {
    return c === this.central ? this.centralHandle : this.peripheralHandle;
  }

  peerOf(c: LeController): LeController {
    return c === this.central ? this.peripheral : this.central;
  }

  info(): ConnectionInfo {
    return {
      id: this.id,
      open: this.open,
      centralDevId: this.central.devId,
      peripheralDevId: this.peripheral.devId,
      centralAddress: this.central.address,
      peripheralAddress: this.peripheral.address,
      centralHandle: this.centralHandle,
      peripheralHandle: this.peripheralHandle,
      intervalMs: this.intervalMs,
      supervisionTimeoutMs: this.supervisionTimeoutMs,
      eventCounter: this.eventCounter,
      busyEvents: this.busyEvents,
      pdusToPeripheral: this.pdusToPeripheral,
      pdusToCentral: this.pdusToCentral,
      lostPackets: this.lostPackets,
      mtuRewrites: this.mtuRewrites,
      disconnectReason: this.disconnectReason,
    };
  }
}

/** A host's handle on one controller: what the HCI socket stand-in talks to. */
export interface HciChannel {
  write(packet: Buffer): void;
  isUp(): boolean;
  close(): void;
}

/** Something that can open HCI channels by device id: a {@link VirtualRadio} or a remote link to one. */
export interface HciProvider {
  open(devId: number, sink: HostSink): HciChannel;
  deviceIds(): number[];
}

function checkRange(name: string, v: number | undefined, min: number, max: number): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw new VirtualRadioError(
      'ERR_RADIO_INVALID_OPTION',
      `VirtualRadio option "${name}" must be a number in [${min}, ${max}], got ${String(v)}`,
    );
  }
}

function validate(o: Partial<VirtualRadioOptions>): void {
  checkRange('linkLayerPayload', o.linkLayerPayload, 27, 251);
  checkRange('connectionIntervalMs', o.connectionIntervalMs, 7.5, 4000);
  checkRange('advertisingIntervalMs', o.advertisingIntervalMs, 20, 10240);
  checkRange('attMtuCap', o.attMtuCap, 23, 517);
  checkRange('latencyMs', o.latencyMs, 0, 60_000);
  checkRange('lossRate', o.lossRate, 0, 1);
  checkRange('supervisionTimeoutMs', o.supervisionTimeoutMs, 100, 32_000);
  checkRange('pdusPerEvent', o.pdusPerEvent, 1, 16);
  checkRange('aclBufferLength', o.aclBufferLength, 27, 1021);
  checkRange('aclBufferCount', o.aclBufferCount, 1, 255);
  checkRange('rssiDbm', o.rssiDbm, -127, 20);
}

/**
 * The shared air between emulated LE controllers, one per HCI device id. Hosts reach a controller through
 * the `bluetooth-hci-socket` stand-in ({@link installVirtualHci}) or a multi-process link ({@link serveRadio}).
 *
 * Idle connections cost nothing: connection events are simulated only while data, a procedure or a dead
 * link needs them; their timing still follows the anchor, so event counts are exact.
 */
export class VirtualRadio extends EventEmitter<VirtualRadioEvents> implements HciProvider {
  readonly clock: RadioClock;
  private readonly rng: SeededRandom;
  private readonly addresses: Record<number, string>;
  private opts: Tunables;
  private readonly controllers = new Map<number, LeController>();
  private readonly advTimers = new Map<LeController, RadioTimer>();
  private readonly connectionsById = new Map<number, Connection>();
  private readonly lastDelivery = new Map<LeController, number>();
  private nextConnectionId = 1;
  private closed = false;

  constructor(options: VirtualRadioOptions = {}) {
    super();
    validate(options);
    this.clock = options.clock ?? new RealClock();
    this.rng = new SeededRandom(options.seed ?? 1);
    this.addresses = { ...(options.addresses ?? {}) };
    this.opts = {
      linkLayerPayload: options.linkLayerPayload ?? 27,
      connectionIntervalMs: options.connectionIntervalMs,
      advertisingIntervalMs: options.advertisingIntervalMs ?? 0,
      attMtuCap: options.attMtuCap ?? 517,
      latencyMs: options.latencyMs ?? 0,
      lossRate: options.lossRate ?? 0,
      supervisionTimeoutMs: options.supervisionTimeoutMs,
      pdusPerEvent: options.pdusPerEvent ?? 1,
      aclBufferLength: options.aclBufferLength ?? 251,
      aclBufferCount: options.aclBufferCount ?? 8,
      rssiDbm: options.rssiDbm ?? -60,
    };
    this.clock.addBusySource(() => [...this.controllers.values()].some((c) => c.busy()));
  }

  /**
   * Change radio conditions at run time. Loss, latency, `pdusPerEvent`, link-layer size and MTU cap apply
   * from the next packet or ATT MTU exchange; interval and supervision timeout apply to connections created
   * (or updated) afterwards.
   */
  configure(options: Omit<VirtualRadioOptions, 'clock' | 'seed' | 'addresses'>): void {
    validate(options);
    const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    this.opts = { ...this.opts, ...defined };
    for (const c of this.connectionsById.values()) this.schedule(c);
    this.refreshAllAdvertisers();
  }

  /** Current settings. */
  get options(): Readonly<Tunables> {
    return this.opts;
  }

  /** BD_ADDR of a device id. */
  addressOf(devId: number): string {
    const given = this.addresses[devId];
    if (given !== undefined) return given.toLowerCase();
    const h = (n: number): string => n.toString(16).padStart(2, '0');
    return `54:41:4e:00:${h((devId >> 8) & 0xff)}:${h(devId & 0xff)}`;
  }

  /** RSSI (dBm) reported in advertising reports and by Read RSSI. */
  rssiDbm(): number {
    return this.opts.rssiDbm;
  }

  /** Open (creating if needed) the controller of `devId` and attach a host to it. */
  open(devId: number, sink: HostSink): HciChannel {
    if (this.closed)
      throw new VirtualRadioError('ERR_RADIO_CLOSED', 'VirtualRadio is closed; create a new one');
    if (!Number.isInteger(devId) || devId < 0 || devId > 0xffff) {
      throw new VirtualRadioError('ERR_RADIO_INVALID_OPTION', `HCI device id must be 0..65535, got ${devId}`);
    }
    let ctrl = this.controllers.get(devId);
    if (ctrl === undefined) {
      ctrl = new LeController(this, devId, this.addressOf(devId), {
        aclBufferLength: this.opts.aclBufferLength,
        aclBufferCount: this.opts.aclBufferCount,
      });
      this.controllers.set(devId, ctrl);
      debug('controller hci%d up, address %s', devId, ctrl.address);
    }
    const c = ctrl;
    const detach = c.attach(sink);
    return {
      write: (packet) => c.fromHost(packet),
      isUp: () => !c.removed && !this.closed,
      close: detach,
    };
  }

  /** HCI device ids with a controller on this radio (present, not removed). */
  deviceIds(): number[] {
    return [...this.controllers.keys()];
  }

  /**
   * The device disappears (power cut, process died): it stops advertising and answering, and each of its
   * peers gets Disconnection Complete 0x08 once the supervision timeout runs out.
   */
  removeDevice(devId: number): void {
    const ctrl = this.controllers.get(devId);
    if (ctrl === undefined) return;
    debug('controller hci%d removed', devId);
    ctrl.removed = true;
    this.controllers.delete(devId);
    this.refreshAdvertiser(ctrl);
    for (const conn of ctrl.connections.values()) this.schedule(conn);
    this.refreshAllAdvertisers();
  }

  /** Move a device out of (false) or back into (true) range of everyone else. */
  setInRange(devId: number, inRange: boolean): void {
    const ctrl = this.controllers.get(devId);
    if (ctrl === undefined) return;
    ctrl.inRange = inRange;
    for (const conn of ctrl.connections.values()) this.schedule(conn);
    this.refreshAllAdvertisers();
  }

  /** All connections so far (open and closed since creation), oldest first. */
  connections(): ConnectionInfo[] {
    return [...this.connectionsById.values()].map((c) => c.info());
  }

  /** Stop every timer; sockets report the device down. */
  close(): void {
    this.closed = true;
    for (const t of this.advTimers.values()) this.clock.clearTimeout(t);
    this.advTimers.clear();
    for (const c of this.connectionsById.values()) {
      if (c.timer) this.clock.clearTimeout(c.timer);
      c.timer = null;
    }
  }

  // ---- controller hooks -------------------------------------------------------------------------------

  /** HCI_Reset (Vol 4 Part E 7.3.2): drop connections without telling the local host; peers time out. */
  resetController(ctrl: LeController): void {
    ctrl.adv.enabled = false;
    ctrl.scan.enabled = false;
    ctrl.initiating = null;
    for (const conn of [...ctrl.connections.values()]) {
      this.closeSide(conn, ctrl, null);
      this.schedule(conn);
    }
    this.refreshAdvertiser(ctrl);
  }

  /** Deliver to a host after the configured latency, keeping each host's packets in order. */
  private deliver(ctrl: LeController, packet: Buffer): void {
    const now = this.clock.now();
    const at = Math.max(now + this.opts.latencyMs, this.lastDelivery.get(ctrl) ?? 0);
    this.lastDelivery.set(ctrl, at);
    if (at <= now) ctrl.toHost(packet);
    else this.clock.setTimeout(() => ctrl.toHost(packet), at - now);
  }

  private reachable(a: LeController, b: LeController): boolean {
    return !a.removed && !b.removed && a.inRange && b.inRange && !this.closed;
  }

  /** One over-the-air packet between a and b: true if received. */
  private airOk(a: LeController, b: LeController): boolean {
    if (!this.reachable(a, b)) return false;
    if (this.opts.lossRate <= 0) return true;
    return this.rng.next() >= this.opts.lossRate;
  }

  // ---- advertising and scanning (Vol 6 Part B 4.4) ----------------------------------------------------

  private advKey(adv: LeController, type: number, data: Buffer): string {
    return `${adv.address}/${type}/${data.toString('hex')}`;
  }

  private scannable(adv: LeController): boolean {
    return adv.adv.type === ADV_REPORT_TYPE.ADV_IND || adv.adv.type === ADV_REPORT_TYPE.ADV_SCAN_IND;
  }

  private connectable(adv: LeController): boolean {
    return adv.adv.type === ADV_REPORT_TYPE.ADV_IND || adv.adv.type === ADV_REPORT_TYPE.ADV_DIRECT_IND;
  }

  /** Is anyone listening for this advertiser, so that its advertising events matter? */
  private hasAudience(adv: LeController): boolean {
    for (const other of this.controllers.values()) {
      if (other === adv || !this.reachable(adv, other)) continue;
      if (other.initiating?.peerAddress === adv.address && this.connectable(adv)) return true;
      if (!other.scan.enabled) continue;
      if (!other.scan.filterDuplicates) return true;
      if (!other.scan.reported.has(this.advKey(adv, adv.adv.type, adv.adv.data))) return true;
      if (
        other.scan.active &&
        this.scannable(adv) &&
        !other.scan.reported.has(this.advKey(adv, ADV_REPORT_TYPE.SCAN_RSP, adv.adv.scanResponse))
      ) {
        return true;
      }
    }
    return false;
  }

  /** advDelay: 0..10 ms pseudo-random added to each advertising interval (Vol 6 Part B 4.4.2.2.1). */
  private advDelay(): number {
    return Math.floor(this.rng.next() * 10_000) / 1000;
  }

  /** Start or stop the advertising-event timer of `adv` according to whether anyone listens. */
  refreshAdvertiser(adv: LeController, firstDelayMs?: number): void {
    const want = adv.adv.enabled && !adv.removed && !this.closed && this.hasAudience(adv);
    const timer = this.advTimers.get(adv);
    if (want && timer === undefined) {
      const delay = firstDelayMs ?? this.advDelay();
      this.advTimers.set(
        adv,
        this.clock.setTimeout(() => this.advertisingEvent(adv), delay),
      );
    } else if (!want && timer !== undefined) {
      this.clock.clearTimeout(timer);
      this.advTimers.delete(adv);
    }
  }

  refreshAllAdvertisers(): void {
    for (const c of this.controllers.values()) this.refreshAdvertiser(c);
  }

  private advertisingEvent(adv: LeController): void {
    this.advTimers.delete(adv);
    if (!adv.adv.enabled || adv.removed) return;
    const rssi = this.opts.rssiDbm;
    for (const scanner of [...this.controllers.values()]) {
      if (scanner === adv || !scanner.scan.enabled) continue;
      if (!this.airOk(adv, scanner)) continue;
      const key = this.advKey(adv, adv.adv.type, adv.adv.data);
      if (!scanner.scan.filterDuplicates || !scanner.scan.reported.has(key)) {
        scanner.scan.reported.add(key);
        this.deliver(
          scanner,
          leAdvertisingReport(adv.adv.type, adv.addressType, adv.address, adv.adv.data, rssi),
        );
      }
      // Active scanning: SCAN_REQ then SCAN_RSP in the same event (Vol 6 Part B 4.4.3.2).
      if (
        scanner.scan.active &&
        this.scannable(adv) &&
        this.airOk(scanner, adv) &&
        this.airOk(adv, scanner)
      ) {
        const rspKey = this.advKey(adv, ADV_REPORT_TYPE.SCAN_RSP, adv.adv.scanResponse);
        if (!scanner.scan.filterDuplicates || !scanner.scan.reported.has(rspKey)) {
          scanner.scan.reported.add(rspKey);
          this.deliver(
            scanner,
            leAdvertisingReport(
              ADV_REPORT_TYPE.SCAN_RSP,
              adv.addressType,
              adv.address,
              adv.adv.scanResponse,
              rssi,
            ),
          );
        }
      }
    }
    if (this.connectable(adv)) {
      for (const initiator of [...this.controllers.values()]) {
        if (initiator === adv || initiator.initiating?.peerAddress !== adv.address) continue;
        // CONNECT_IND (Vol 6 Part B 2.3.3.1) must get through, else the initiator waits for the next event.
        if (!this.airOk(initiator, adv)) continue;
        this.establish(initiator, adv);
        break;
      }
    }
    if (adv.adv.enabled) this.refreshAdvertiser(adv, this.advertisingIntervalOf(adv) + this.advDelay());
  }

  private advertisingIntervalOf(adv: LeController): number {
    return this.opts.advertisingIntervalMs > 0 ? this.opts.advertisingIntervalMs : adv.adv.intervalMs;
  }

  // ---- connections (Vol 6 Part B 4.5) -----------------------------------------------------------------

  private establish(central: LeController, peripheral: LeController): void {
    const init = central.initiating!;
    central.initiating = null;
    // Advertising stops once a connection is created (Vol 4 Part E 7.8.9).
    peripheral.adv.enabled = false;
    this.refreshAdvertiser(peripheral);
    const intervalMs = this.opts.connectionIntervalMs ?? Math.max(7.5, init.maxIntervalMs);
    let supervisionTimeoutMs = this.opts.supervisionTimeoutMs ?? init.supervisionTimeoutMs;
    // connSupervisionTimeout must exceed (1 + latency) * interval * 2 (Vol 6 Part B 4.5.2).
    const min = (1 + init.latency) * intervalMs * 2;
    if (supervisionTimeoutMs <= min) supervisionTimeoutMs = Math.ceil((min + 10) / 10) * 10;
    const now = this.clock.now();
    // First anchor: transmitWindowDelay 1.25 ms after CONNECT_IND, window offset 0 (Vol 6 Part B 4.5.3).
    const conn = new Connection(this.nextConnectionId++, central, peripheral, {
      intervalMs,
      latency: init.latency,
      supervisionTimeoutMs,
      anchorMs: now + 1.25,
    });
    this.connectionsById.set(conn.id, conn);
    central.connections.set(conn.centralHandle, conn);
    peripheral.connections.set(conn.peripheralHandle, conn);
    debug(
      'connection %d: %s (central, handle %d) -> %s (peripheral, handle %d), interval %d ms, timeout %d ms',
      conn.id,
      central.address,
      conn.centralHandle,
      peripheral.address,
      conn.peripheralHandle,
      intervalMs,
      supervisionTimeoutMs,
    );
    const common = { status: STATUS.SUCCESS, intervalMs, latency: init.latency, supervisionTimeoutMs };
    this.deliver(
      central,
      leConnectionComplete({
        ...common,
        handle: conn.centralHandle,
        role: 0,
        peerAddressType: peripheral.addressType,
        peerAddress: peripheral.address,
      }),
    );
    this.deliver(
      peripheral,
      leConnectionComplete({
        ...common,
        handle: conn.peripheralHandle,
        role: 1,
        peerAddressType: central.addressType,
        peerAddress: central.address,
      }),
    );
    this.emit('connect', conn.info());
    this.refreshAllAdvertisers();
  }

  /** HCI ACL data from a host: split into link-layer PDUs and queue them on the connection. */
  aclFromHost(ctrl: LeController, handle: number, pb: number, data: Buffer): void {
    const conn = ctrl.connections.get(handle);
    if (conn === undefined || !conn.open) {
      debug('hci%d: ACL for unknown handle %d dropped', ctrl.devId, handle);
      return;
    }
    const start = pb !== PB.CONTINUATION;
    const payload = start ? this.capAttMtu(conn, data) : data;
    const dir = ctrl === conn.central ? conn.c2p : conn.p2c;
    const size = this.opts.linkLayerPayload;
    const ack = (): void => ctrl.toHost(numberOfCompletedPackets(handle, 1));
    if (payload.length === 0) {
      ack();
      return;
    }
    for (let off = 0; off < payload.length; off += size) {
      const last = off + size >= payload.length;
      dir.queue.push({
        llid: off === 0 && start ? 0b10 : 0b01,
        data: Buffer.from(payload.subarray(off, off + size)),
        ...(last ? { onAck: ack } : {}),
      });
    }
    this.schedule(conn);
  }

  /**
   * Enforce `attMtuCap` on an L2CAP start fragment: ATT (CID 0x0004, Vol 3 Part A 2.1) Exchange MTU
   * Request 0x02 / Response 0x03 carry the sender's Rx MTU in octets 1–2 (Vol 3 Part F 3.4.2).
   */
  private capAttMtu(conn: Connection, data: Buffer): Buffer {
    const cap = this.opts.attMtuCap;
    if (data.length < 7 || data.readUInt16LE(0) !== 3 || data.readUInt16LE(2) !== 0x0004) return data;
    const opcode = data[4];
    if (opcode !== 0x02 && opcode !== 0x03) return data;
    const mtu = data.readUInt16LE(5);
    if (mtu <= cap) return data;
    const out = Buffer.from(data);
    out.writeUInt16LE(cap, 5);
    conn.mtuRewrites++;
    debug(
      'connection %d: ATT Exchange MTU %s %d rewritten to %d',
      conn.id,
      opcode === 2 ? 'Req' : 'Rsp',
      mtu,
      cap,
    );
    return out;
  }

  /** HCI Disconnect from `by` (Vol 4 Part E 7.1.6): LL_TERMINATE_IND at the next event (Vol 6 Part B 5.1.3). */
  terminate(conn: Connection, by: LeController, reason: number): void {
    if (conn.terminate === null) conn.terminate = { by, reason };
    this.schedule(conn);
  }

  /** LE Connection Update (Vol 4 Part E 7.8.18): applied at the instant, 6 events ahead (Vol 6 Part B 5.1.1). */
  updateConnection(
    conn: Connection,
    intervalMs: number,
    latency: number,
    supervisionTimeoutMs: number,
  ): void {
    conn.pendingUpdate = {
      intervalMs: this.opts.connectionIntervalMs ?? Math.max(7.5, intervalMs),
      latency,
      supervisionTimeoutMs: this.opts.supervisionTimeoutMs ?? supervisionTimeoutMs,
      // Idle events are not simulated but happen on air: count from the event in progress now.
      instant:
        Math.max(conn.eventCounter, Math.floor((this.clock.now() - conn.anchorMs) / conn.intervalMs + 1e-9)) +
        6,
    };
    this.schedule(conn);
  }

  /** Both ends present, in range, and still holding the connection (one may have been reset). */
  private linkUp(conn: Connection): boolean {
    return (
      this.reachable(conn.central, conn.peripheral) &&
      conn.central.connections.get(conn.centralHandle) === conn &&
      conn.peripheral.connections.get(conn.peripheralHandle) === conn
    );
  }

  private linkDead(conn: Connection): boolean {
    return !this.linkUp(conn) || this.opts.lossRate >= 1;
  }

  /** One packet of connection `conn` over the air: true if received. */
  private connAirOk(conn: Connection): boolean {
    if (!this.linkUp(conn)) return false;
    if (this.opts.lossRate <= 0) return true;
    return this.rng.next() >= this.opts.lossRate;
  }

  private needsEvents(conn: Connection): boolean {
    return (
      conn.c2p.queue.length > 0 ||
      conn.p2c.queue.length > 0 ||
      conn.terminate !== null ||
      conn.pendingUpdate !== null ||
      this.linkDead(conn)
    );
  }

  /** Arm the next connection event if anything needs one. */
  private schedule(conn: Connection): void {
    if (!conn.open || conn.timer !== null || this.closed || !this.needsEvents(conn)) return;
    const now = this.clock.now();
    let k = conn.eventCounter + 1;
    if (conn.anchorMs + k * conn.intervalMs < now - 1e-9) {
      // Next anchor not in the past. The idle events skipped meanwhile exchanged empty PDUs successfully
      // (a dead link always has events scheduled), so the link was alive until the last of them.
      k = Math.ceil((now - conn.anchorMs) / conn.intervalMs - 1e-9);
      conn.lastGoodMs = Math.max(conn.lastGoodMs, conn.anchorMs + (k - 1) * conn.intervalMs);
    }
    const due = conn.anchorMs + k * conn.intervalMs;
    conn.timer = this.clock.setTimeout(() => this.connectionEvent(conn, k), Math.max(0, due - now));
  }

  private ackHead(dir: Direction): void {
    const pdu = dir.queue.shift()!;
    dir.headDelivered = false;
    pdu.onAck?.();
  }

  private sendPdu(conn: Connection, to: LeController, pdu: LlPdu): void {
    if (to === conn.peripheral) conn.pdusToPeripheral++;
    else conn.pdusToCentral++;
    debugAir(
      'connection %d event %d: LLID %d %d octets -> %s',
      conn.id,
      conn.eventCounter,
      pdu.llid,
      pdu.data.length,
      to.address,
    );
    // The receiving controller hands each PDU up as one HCI ACL packet with its own handle; a start PDU
    // becomes Packet_Boundary_Flag 0b10 (Vol 4 Part E 5.4.2), which is what both stacks look for.
    this.deliver(
      to,
      aclPacket(conn.handleOf(to), pdu.llid === 0b10 ? PB.START_FLUSHABLE : PB.CONTINUATION, pdu.data),
    );
  }

  private connectionEvent(conn: Connection, k: number): void {
    conn.timer = null;
    if (!conn.open) return;
    const now = this.clock.now();
    conn.eventCounter = k;
    conn.lastEventMs = now;
    conn.busyEvents++;

    if (conn.pendingUpdate !== null && k >= conn.pendingUpdate.instant) {
      const u = conn.pendingUpdate;
      conn.pendingUpdate = null;
      // The new timing starts at the instant (simplified: transmitWindowOffset 0).
      // connEventCounter keeps counting through the update.
      conn.anchorMs = now - k * u.intervalMs;
      conn.intervalMs = u.intervalMs;
      conn.latency = u.latency;
      conn.supervisionTimeoutMs = u.supervisionTimeoutMs;
      for (const side of [conn.central, conn.peripheral]) {
        this.deliver(
          side,
          leConnectionUpdateComplete(conn.handleOf(side), u.intervalMs, u.latency, u.supervisionTimeoutMs),
        );
      }
    }

    if (now - conn.lastGoodMs >= conn.supervisionTimeoutMs) {
      debug('connection %d: supervision timeout after %d ms', conn.id, now - conn.lastGoodMs);
      const t = conn.terminate;
      this.closeConnection(conn, (side) =>
        t !== null && t.by === side ? STATUS.LOCAL_HOST_TERMINATED : STATUS.CONNECTION_TIMEOUT,
      );
      return;
    }

    for (let i = 0; i < this.opts.pdusPerEvent; i++) {
      // Central transmits first in every event (Vol 6 Part B 4.5.1); its packet also acknowledges the
      // Peripheral's last one through NESN.
      if (!this.connAirOk(conn)) {
        conn.lostPackets++;
        break;
      }
      if (conn.p2c.headDelivered) this.ackHead(conn.p2c);
      if (conn.terminate?.by === conn.central) {
        const reason = conn.terminate.reason;
        this.closeConnection(conn, (side) => (side === conn.central ? STATUS.LOCAL_HOST_TERMINATED : reason));
        return;
      }
      const c2pHead = conn.c2p.queue[0];
      if (c2pHead !== undefined && !conn.c2p.headDelivered) {
        this.sendPdu(conn, conn.peripheral, c2pHead);
        conn.c2p.headDelivered = true;
      }
      // The Peripheral answers only what it received (Vol 6 Part B 4.5.1).
      if (!this.connAirOk(conn)) {
        conn.lostPackets++;
        break;
      }
      conn.lastGoodMs = now;
      if (conn.c2p.headDelivered) this.ackHead(conn.c2p);
      if (conn.terminate?.by === conn.peripheral) {
        const reason = conn.terminate.reason;
        this.closeConnection(conn, (side) =>
          side === conn.peripheral ? STATUS.LOCAL_HOST_TERMINATED : reason,
        );
        return;
      }
      const p2cHead = conn.p2c.queue[0];
      if (p2cHead !== undefined && !conn.p2c.headDelivered) {
        this.sendPdu(conn, conn.central, p2cHead);
        conn.p2c.headDelivered = true;
      }
      // MD (More Data) bit: keep going in this event only while either side has unsent data.
      const more =
        conn.c2p.queue.length > (conn.c2p.headDelivered ? 1 : 0) ||
        conn.p2c.queue.length > (conn.p2c.headDelivered ? 1 : 0);
      if (!more) break;
    }
    this.schedule(conn);
  }

  /** Close one side (Disconnection Complete to its host unless `reason` is null). */
  private closeSide(conn: Connection, side: LeController, reason: number | null): void {
    const handle = conn.handleOf(side);
    if (side.connections.get(handle) !== conn) return;
    side.connections.delete(handle);
    if (reason !== null) this.deliver(side, disconnectionComplete(handle, reason));
    if (
      !conn.central.connections.has(conn.centralHandle) &&
      !conn.peripheral.connections.has(conn.peripheralHandle)
    ) {
      this.finish(conn, reason ?? STATUS.LOCAL_HOST_TERMINATED);
    }
  }

  private closeConnection(conn: Connection, reasonFor: (side: LeController) => number): void {
    const reason = reasonFor(conn.peripheral);
    for (const side of [conn.central, conn.peripheral]) this.closeSide(conn, side, reasonFor(side));
    this.finish(conn, reason);
  }

  private finish(conn: Connection, reason: number): void {
    if (!conn.open) return;
    conn.open = false;
    conn.disconnectReason = reason;
    conn.c2p.queue.length = 0;
    conn.p2c.queue.length = 0;
    if (conn.timer !== null) this.clock.clearTimeout(conn.timer);
    conn.timer = null;
    debug('connection %d closed, reason 0x%s', conn.id, reason.toString(16));
    this.emit('disconnect', conn.info());
    this.refreshAllAdvertisers();
  }
}
