/**
 * One emulated LE controller (Bluetooth Core spec v5.3, Vol 4 Part E for HCI, Vol 6 for the link layer):
 * parses the HCI commands and ACL packets its host writes, answers them, and hands air operations
 * (advertising, scanning, connections, ACL traffic) to the {@link VirtualRadio} it lives in.
 *
 * Events to the host are queued and delivered asynchronously and in order (never inside the host's
 * `write()`), as a UART/USB transport would.
 */
import createDebug from 'debug';
import type { Connection, VirtualRadio } from './radio.js';
import {
  ADV_REPORT_TYPE,
  EVT,
  HCI_ACLDATA_PKT,
  HCI_COMMAND_PKT,
  LE_SUBEVT,
  OP,
  STATUS,
  addressFromWire,
  addressToWire,
  commandComplete,
  commandStatus,
} from './hci-defs.js';

const debug = createDebug('tandem:radio:hci');

/** A receiver of controller-to-host packets (one per bound socket). */
export type HostSink = (packet: Buffer) => void;

/** Default Event_Mask after HCI_Reset (7.3.1): LE Meta (bit 61) is off until the host enables it. */
const DEFAULT_EVENT_MASK = 0x00001fffffffffffn;
/** Default LE_Event_Mask after HCI_Reset (7.8.1). */
const DEFAULT_LE_EVENT_MASK = 0x1fn;

/** Advertising state set through LE Set Advertising Parameters/Data/Enable (7.8.5–7.8.9). */
export interface AdvertisingState {
  intervalMs: number;
  /** Advertising_Type of 7.8.5 (0 ADV_IND, 1/4 ADV_DIRECT_IND, 2 ADV_SCAN_IND, 3 ADV_NONCONN_IND). */
  type: number;
  data: Buffer;
  scanResponse: Buffer;
  enabled: boolean;
}

/** Scanning state set through LE Set Scan Parameters/Enable (7.8.10, 7.8.11). */
export interface ScanState {
  active: boolean;
  enabled: boolean;
  filterDuplicates: boolean;
  /** Duplicate filter: reports already sent since scanning was enabled (address, type and data). */
  reported: Set<string>;
}

/** Pending LE Create Connection (7.8.12). */
export interface InitiatingState {
  peerAddressType: number;
  peerAddress: string;
  maxIntervalMs: number;
  latency: number;
  supervisionTimeoutMs: number;
}

/** Controller capabilities reported to the host. */
export interface ControllerCapabilities {
  /** LE ACL data packet length reported by LE Read Buffer Size (7.8.2). */
  aclBufferLength: number;
  /** Number of LE ACL data packets the controller buffers (7.8.2). */
  aclBufferCount: number;
}

/** One emulated LE controller (HCI device): see the module comment. Created by {@link VirtualRadio.open}. */
export class LeController {
  readonly devId: number;
  readonly address: string;
  /** 0x00 public device address (Vol 6 Part B 1.3). */
  readonly addressType = 0x00;
  randomAddress: string | null = null;
  removed = false;
  inRange = true;
  readonly adv: AdvertisingState = {
    intervalMs: 1280,
    type: ADV_REPORT_TYPE.ADV_IND,
    data: Buffer.alloc(0),
    scanResponse: Buffer.alloc(0),
    enabled: false,
  };
  readonly scan: ScanState = { active: false, enabled: false, filterDuplicates: false, reported: new Set() };
  initiating: InitiatingState | null = null;
  /** Connections by this controller's own handle. */
  readonly connections = new Map<number, Connection>();

  private readonly radio: VirtualRadio;
  private readonly caps: ControllerCapabilities;
  private readonly sinks = new Set<HostSink>();
  private readonly hostQueue: Buffer[] = [];
  private drainScheduled = false;
  private eventMask = DEFAULT_EVENT_MASK;
  private leEventMask = DEFAULT_LE_EVENT_MASK;
  private leHostSupported = Buffer.from([0x00, 0x00]);
  private nextHandle = 0x0040;

  constructor(radio: VirtualRadio, devId: number, address: string, caps: ControllerCapabilities) {
    this.radio = radio;
    this.devId = devId;
    this.address = address;
    this.caps = caps;
  }

  /** Attach a host (socket); returns the detach function. */
  attach(sink: HostSink): () => void {
    this.sinks.add(sink);
    return () => {
      this.sinks.delete(sink);
    };
  }

  /** True while events wait for delivery to the host. */
  busy(): boolean {
    return this.hostQueue.length > 0;
  }

  /** Allocate a connection handle (0x0000–0x0EFF, Vol 4 Part E 5.4.2). */
  allocateHandle(): number {
    for (;;) {
      const h = this.nextHandle;
      this.nextHandle = this.nextHandle >= 0x0eff ? 0x0040 : this.nextHandle + 1;
      if (!this.connections.has(h)) return h;
    }
  }

  /** Queue a controller-to-host packet, honouring the event masks (7.3.1, 7.8.1). */
  toHost(packet: Buffer): void {
    if (this.removed) return;
    if (!this.eventAllowed(packet)) {
      debug('dev %d: masked event %s', this.devId, packet.toString('hex'));
      return;
    }
    this.hostQueue.push(packet);
    if (!this.drainScheduled) {
      this.drainScheduled = true;
      setImmediate(() => this.drain());
    }
  }

  private drain(): void {
    this.drainScheduled = false;
    // Deliver what is queued now; packets queued by the host's reactions go in the next turn.
    const batch = this.hostQueue.splice(0, this.hostQueue.length);
    for (const packet of batch) {
      for (const sink of [...this.sinks]) sink(packet);
    }
  }

  private eventAllowed(packet: Buffer): boolean {
    if (packet[0] !== 0x04) return true;
    const code = packet[1]!;
    // Command Complete/Status and Number Of Completed Packets cannot be masked (7.3.1).
    if (code === EVT.CMD_COMPLETE || code === EVT.CMD_STATUS || code === EVT.NUM_COMPLETED_PACKETS)
      return true;
    if (((this.eventMask >> BigInt(code - 1)) & 1n) === 0n) return false;
    if (code === EVT.LE_META) {
      const sub = packet[3]!;
      return ((this.leEventMask >> BigInt(sub - 1)) & 1n) === 1n;
    }
    return true;
  }

  /** A packet written by the host (HCI command or ACL data). */
  fromHost(packet: Buffer): void {
    if (this.removed || packet.length === 0) return;
    if (packet[0] === HCI_COMMAND_PKT && packet.length >= 4) {
      const opcode = packet.readUInt16LE(1);
      const params = packet.subarray(4, 4 + packet[3]!);
      debug(
        'dev %d: command 0x%s %s',
        this.devId,
        opcode.toString(16).padStart(4, '0'),
        params.toString('hex'),
      );
      this.command(opcode, params);
    } else if (packet[0] === HCI_ACLDATA_PKT && packet.length >= 5) {
      const hf = packet.readUInt16LE(1);
      const length = packet.readUInt16LE(3);
      this.radio.aclFromHost(this, hf & 0x0fff, (hf >> 12) & 0x3, packet.subarray(5, 5 + length));
    } else {
      debug('dev %d: ignoring malformed host packet %s', this.devId, packet.toString('hex'));
    }
  }

  private complete(opcode: number, status: number, ret?: Buffer): void {
    this.toHost(commandComplete(opcode, status, ret));
  }

  private command(opcode: number, p: Buffer): void {
    const need = (n: number): boolean => {
      if (p.length >= n) return true;
      this.complete(opcode, STATUS.INVALID_PARAMETERS);
      return false;
    };
    switch (opcode) {
      case OP.RESET: // 7.3.2: back to the default state, connections are dropped silently
        this.radio.resetController(this);
        this.eventMask = DEFAULT_EVENT_MASK;
        this.leEventMask = DEFAULT_LE_EVENT_MASK;
        this.complete(opcode, STATUS.SUCCESS);
        return;
      case OP.SET_EVENT_MASK:
        if (!need(8)) return;
        this.eventMask = p.readBigUInt64LE(0);
        this.complete(opcode, STATUS.SUCCESS);
        return;
      case OP.LE_SET_EVENT_MASK:
        if (!need(8)) return;
        this.leEventMask = p.readBigUInt64LE(0);
        this.complete(opcode, STATUS.SUCCESS);
        return;
      case OP.READ_LOCAL_VERSION: {
        // 7.4.1: HCI/LMP version 0x07 = Core 4.1 (the Pi Zero W's BCM43430), manufacturer 0x000F Broadcom.
        const r = Buffer.alloc(8);
        r.writeUInt8(0x07, 0);
        r.writeUInt16LE(0x0001, 1);
        r.writeUInt8(0x07, 3);
        r.writeUInt16LE(0x000f, 4);
        r.writeUInt16LE(0x0001, 6);
        this.complete(opcode, STATUS.SUCCESS, r);
        return;
      }
      case OP.WRITE_LE_HOST_SUPPORTED:
        if (!need(2)) return;
        this.leHostSupported = Buffer.from(p.subarray(0, 2));
        this.complete(opcode, STATUS.SUCCESS);
        return;
      case OP.READ_LE_HOST_SUPPORTED:
        this.complete(opcode, STATUS.SUCCESS, this.leHostSupported);
        return;
      case OP.READ_BD_ADDR:
        this.complete(opcode, STATUS.SUCCESS, addressToWire(this.address));
        return;
      case OP.LE_READ_BUFFER_SIZE: {
        const r = Buffer.alloc(3);
        r.writeUInt16LE(this.caps.aclBufferLength, 0);
        r.writeUInt8(this.caps.aclBufferCount, 2);
        this.complete(opcode, STATUS.SUCCESS, r);
        return;
      }
      case OP.READ_BUFFER_SIZE: {
        // 7.4.5: shared with BR/EDR when a host asks; same buffers, no SCO.
        const r = Buffer.alloc(7);
        r.writeUInt16LE(this.caps.aclBufferLength, 0);
        r.writeUInt8(0, 2);
        r.writeUInt16LE(this.caps.aclBufferCount, 3);
        r.writeUInt16LE(0, 5);
        this.complete(opcode, STATUS.SUCCESS, r);
        return;
      }
      case OP.LE_SET_RANDOM_ADDRESS:
        if (!need(6)) return;
        this.randomAddress = addressFromWire(p);
        this.complete(opcode, STATUS.SUCCESS);
        return;
      case OP.LE_SET_ADV_PARAMS: {
        if (!need(15)) return;
        // 7.8.5: not allowed while advertising is enabled.
        if (this.adv.enabled) return this.complete(opcode, STATUS.COMMAND_DISALLOWED);
        const type = p.readUInt8(4);
        if (type > 0x04) return this.complete(opcode, STATUS.INVALID_PARAMETERS);
        this.adv.intervalMs = p.readUInt16LE(0) * 0.625; // units of 0.625 ms
        this.adv.type = type === 0x04 ? ADV_REPORT_TYPE.ADV_DIRECT_IND : type;
        this.complete(opcode, STATUS.SUCCESS);
        return;
      }
      case OP.LE_SET_ADV_DATA:
      case OP.LE_SET_SCAN_RSP_DATA: {
        if (!need(1)) return;
        const len = p.readUInt8(0);
        if (len > 31 || p.length < 1 + len) return this.complete(opcode, STATUS.INVALID_PARAMETERS);
        const data = Buffer.from(p.subarray(1, 1 + len));
        if (opcode === OP.LE_SET_ADV_DATA) this.adv.data = data;
        else this.adv.scanResponse = data;
        this.complete(opcode, STATUS.SUCCESS);
        this.radio.refreshAdvertiser(this);
        return;
      }
      case OP.LE_SET_ADV_ENABLE:
        if (!need(1)) return;
        this.adv.enabled = p.readUInt8(0) === 0x01;
        this.complete(opcode, STATUS.SUCCESS);
        this.radio.refreshAdvertiser(this);
        return;
      case OP.LE_SET_SCAN_PARAMS:
        if (!need(7)) return;
        // 7.8.10: not allowed while scanning is enabled.
        if (this.scan.enabled) return this.complete(opcode, STATUS.COMMAND_DISALLOWED);
        this.scan.active = p.readUInt8(0) === 0x01;
        this.complete(opcode, STATUS.SUCCESS);
        return;
      case OP.LE_SET_SCAN_ENABLE: {
        if (!need(2)) return;
        const enable = p.readUInt8(0) === 0x01;
        // 7.8.11: enabling starts a fresh duplicate filter.
        if (enable && !this.scan.enabled) this.scan.reported.clear();
        this.scan.enabled = enable;
        this.scan.filterDuplicates = p.readUInt8(1) === 0x01;
        this.complete(opcode, STATUS.SUCCESS);
        this.radio.refreshAllAdvertisers();
        return;
      }
      case OP.LE_CREATE_CONN: {
        if (!need(25)) return;
        if (this.initiating !== null) return this.toHost(commandStatus(opcode, STATUS.COMMAND_DISALLOWED));
        this.initiating = {
          peerAddressType: p.readUInt8(5),
          peerAddress: addressFromWire(p.subarray(6, 12)),
          maxIntervalMs: p.readUInt16LE(15) * 1.25,
          latency: p.readUInt16LE(17),
          supervisionTimeoutMs: p.readUInt16LE(19) * 10,
        };
        this.toHost(commandStatus(opcode, STATUS.SUCCESS));
        this.radio.refreshAllAdvertisers();
        return;
      }
      case OP.LE_CREATE_CONN_CANCEL:
        if (this.initiating === null) return this.complete(opcode, STATUS.COMMAND_DISALLOWED);
        this.initiating = null;
        this.complete(opcode, STATUS.SUCCESS);
        // 7.8.13: the pending creation ends with LE Connection Complete, Unknown Connection Identifier.
        this.toHost(this.failedConnectionComplete(STATUS.UNKNOWN_CONNECTION_ID));
        this.radio.refreshAllAdvertisers();
        return;
      case OP.DISCONNECT: {
        if (!need(3)) return;
        const conn = this.connections.get(p.readUInt16LE(0) & 0x0fff);
        if (conn === undefined) return this.toHost(commandStatus(opcode, STATUS.UNKNOWN_CONNECTION_ID));
        this.toHost(commandStatus(opcode, STATUS.SUCCESS));
        this.radio.terminate(conn, this, p.readUInt8(2));
        return;
      }
      case OP.READ_RSSI: {
        if (!need(2)) return;
        const handle = p.readUInt16LE(0) & 0x0fff;
        const r = Buffer.alloc(3);
        r.writeUInt16LE(handle, 0);
        const known = this.connections.has(handle);
        r.writeInt8(known ? this.radio.rssiDbm() : 0, 2);
        this.complete(opcode, known ? STATUS.SUCCESS : STATUS.UNKNOWN_CONNECTION_ID, r);
        return;
      }
      case OP.LE_CONN_UPDATE: {
        if (!need(14)) return;
        const conn = this.connections.get(p.readUInt16LE(0) & 0x0fff);
        if (conn === undefined) return this.toHost(commandStatus(opcode, STATUS.UNKNOWN_CONNECTION_ID));
        // Core 4.1: only the Central may start the connection update procedure (Vol 6 Part B 5.1.1).
        if (conn.central !== this) return this.toHost(commandStatus(opcode, STATUS.COMMAND_DISALLOWED));
        this.toHost(commandStatus(opcode, STATUS.SUCCESS));
        this.radio.updateConnection(
          conn,
          p.readUInt16LE(4) * 1.25,
          p.readUInt16LE(6),
          p.readUInt16LE(8) * 10,
        );
        return;
      }
      case OP.LE_LTK_NEG_REPLY: {
        if (!need(2)) return;
        const r = Buffer.alloc(2);
        r.writeUInt16LE(p.readUInt16LE(0), 0);
        this.complete(opcode, STATUS.SUCCESS, r);
        return;
      }
      default:
        // Anything else (encryption, extended advertising, PHY, ...) is not emulated: a 4.1 controller
        // answers commands it does not know with Unknown HCI Command (Vol 1 Part F 1.3, Vol 4 Part E 4.5).
        debug('dev %d: unknown command 0x%s', this.devId, opcode.toString(16));
        this.complete(opcode, STATUS.UNKNOWN_COMMAND);
    }
  }

  /** LE Connection Complete with an error status (7.7.65.1). */
  private failedConnectionComplete(status: number): Buffer {
    const p = Buffer.alloc(19);
    p.writeUInt8(LE_SUBEVT.CONN_COMPLETE, 0);
    p.writeUInt8(status, 1);
    return Buffer.concat([Buffer.from([0x04, EVT.LE_META, p.length]), p]);
  }
}
