/**
 * The HCI commands the virtual controller understands (Bluetooth Core spec v5.3, Vol 4 Part E, section
 * numbers below), as a table: each entry names the fewest parameter octets it needs and what it does. A
 * command shorter than that is answered with Invalid HCI Command Parameters (Vol 1 Part F 1.3) before its
 * handler runs; an opcode not in the table with Unknown HCI Command (Vol 4 Part E 4.5), as a 4.1
 * controller answers commands it does not implement (encryption, extended advertising, PHY, ...).
 */
import type { AdvertisingState, Air, ControllerCapabilities, InitiatingState, ScanState } from './air.js';
import {
  ADV_REPORT_TYPE,
  EVT,
  LE_SUBEVT,
  OP,
  STATUS,
  addressFromWire,
  addressToWire,
  commandComplete,
  commandStatus,
  pduTimeUs,
} from './hci-defs.js';

/** Default Event_Mask after HCI_Reset (7.3.1): LE Meta (bit 61) is off until the host enables it. */
export const DEFAULT_EVENT_MASK = 0x00001fffffffffffn;
/** Default LE_Event_Mask after HCI_Reset (7.8.1). */
export const DEFAULT_LE_EVENT_MASK = 0x1fn;

/** The controller state HCI commands read and set. */
export interface ControllerState {
  eventMask: bigint;
  leEventMask: bigint;
  leHostSupported: Buffer;
  randomAddress: string | null;
  readonly adv: AdvertisingState;
  readonly scan: ScanState;
  initiating: InitiatingState | null;
  /** connInitialMaxTxOctets the host suggests for new connections (7.8.35); 27 until it writes one. */
  suggestedTxOctets: number;
}

/** What a command handler may use: the controller's state, its air, and its way to the host. */
export interface CommandContext {
  readonly address: string;
  readonly caps: ControllerCapabilities;
  readonly state: ControllerState;
  readonly air: Air;
  /** Queue an event to the host. */
  toHost(packet: Buffer): void;
}

/** One HCI command: the fewest parameter octets it needs, and what it does with them. */
export interface HciCommand {
  readonly minParams: number;
  /** False for a controller that lacks the feature: the command is then unknown to it (Vol 4 Part E 4.5). */
  available?(caps: ControllerCapabilities): boolean;
  run(c: CommandContext, params: Buffer, opcode: number): void;
}

const complete = (c: CommandContext, opcode: number, status: number, ret?: Buffer): void =>
  c.toHost(commandComplete(opcode, status, ret));
const status = (c: CommandContext, opcode: number, s: number): void => c.toHost(commandStatus(opcode, s));
const ok = (c: CommandContext, opcode: number): void => complete(c, opcode, STATUS.SUCCESS);
const handleOf = (p: Buffer): number => p.readUInt16LE(0) & 0x0fff;
/** Data Length Extension is a Core 4.2 feature: a controller limited to 27 octets has none of it. */
const supportsDle = (caps: ControllerCapabilities): boolean => caps.maxDataOctets > 27;

/** LE Connection Complete with an error status (7.7.65.1). */
function failedConnectionComplete(s: number): Buffer {
  const p = Buffer.alloc(19);
  p.writeUInt8(LE_SUBEVT.CONN_COMPLETE, 0);
  p.writeUInt8(s, 1);
  return Buffer.concat([Buffer.from([0x04, EVT.LE_META, p.length]), p]);
}

/** LE Set Advertising Data (7.8.7) and LE Set Scan Response Data (7.8.8): length octet, then up to 31. */
function setAdvertisingData(which: 'data' | 'scanResponse'): HciCommand {
  return {
    minParams: 1,
    run(c, p, opcode) {
      const len = p.readUInt8(0);
      if (len > 31 || p.length < 1 + len) return complete(c, opcode, STATUS.INVALID_PARAMETERS);
      c.state.adv[which] = Buffer.from(p.subarray(1, 1 + len));
      ok(c, opcode);
      c.air.advertisingChanged();
    },
  };
}

/** Reset of the controller's own state (7.3.2); the caller drops its connections through the air. */
export function resetState(s: ControllerState): void {
  s.suggestedTxOctets = 27;
  s.adv.enabled = false;
  s.scan.enabled = false;
  s.initiating = null;
  s.eventMask = DEFAULT_EVENT_MASK;
  s.leEventMask = DEFAULT_LE_EVENT_MASK;
}

/** The command table, by opcode (OGF << 10 | OCF, 5.4.1). */
export const HCI_COMMANDS: Readonly<Record<number, HciCommand>> = {
  // 7.3.2: back to the default state, connections are dropped silently.
  [OP.RESET]: {
    minParams: 0,
    run(c, _p, opcode) {
      resetState(c.state);
      c.air.reset();
      ok(c, opcode);
    },
  },
  [OP.SET_EVENT_MASK]: {
    minParams: 8,
    run(c, p, opcode) {
      c.state.eventMask = p.readBigUInt64LE(0);
      ok(c, opcode);
    },
  },
  [OP.LE_SET_EVENT_MASK]: {
    minParams: 8,
    run(c, p, opcode) {
      c.state.leEventMask = p.readBigUInt64LE(0);
      ok(c, opcode);
    },
  },
  // 7.4.1: HCI/LMP version of the profile (default 0x07 = Core 4.1, the Pi Zero W's BCM43438),
  // manufacturer 0x000F Broadcom.
  [OP.READ_LOCAL_VERSION]: {
    minParams: 0,
    run(c, _p, opcode) {
      const r = Buffer.alloc(8);
      r.writeUInt8(c.caps.coreVersion, 0);
      r.writeUInt16LE(0x0001, 1);
      r.writeUInt8(c.caps.coreVersion, 3);
      r.writeUInt16LE(0x000f, 4);
      r.writeUInt16LE(0x0001, 6);
      complete(c, opcode, STATUS.SUCCESS, r);
    },
  },
  [OP.WRITE_LE_HOST_SUPPORTED]: {
    minParams: 2,
    run(c, p, opcode) {
      c.state.leHostSupported = Buffer.from(p.subarray(0, 2));
      ok(c, opcode);
    },
  },
  [OP.READ_LE_HOST_SUPPORTED]: {
    minParams: 0,
    run: (c, _p, opcode) => complete(c, opcode, STATUS.SUCCESS, c.state.leHostSupported),
  },
  [OP.READ_BD_ADDR]: {
    minParams: 0,
    run: (c, _p, opcode) => complete(c, opcode, STATUS.SUCCESS, addressToWire(c.address)),
  },
  // 7.8.2: the LE ACL buffers the host may fill before Number Of Completed Packets gives credits back.
  [OP.LE_READ_BUFFER_SIZE]: {
    minParams: 0,
    run(c, _p, opcode) {
      const r = Buffer.alloc(3);
      r.writeUInt16LE(c.caps.aclBufferLength, 0);
      r.writeUInt8(c.caps.aclBufferCount, 2);
      complete(c, opcode, STATUS.SUCCESS, r);
    },
  },
  // 7.4.5: shared with BR/EDR when a host asks; same buffers, no SCO.
  [OP.READ_BUFFER_SIZE]: {
    minParams: 0,
    run(c, _p, opcode) {
      const r = Buffer.alloc(7);
      r.writeUInt16LE(c.caps.aclBufferLength, 0);
      r.writeUInt8(0, 2);
      r.writeUInt16LE(c.caps.aclBufferCount, 3);
      r.writeUInt16LE(0, 5);
      complete(c, opcode, STATUS.SUCCESS, r);
    },
  },
  [OP.LE_SET_RANDOM_ADDRESS]: {
    minParams: 6,
    run(c, p, opcode) {
      c.state.randomAddress = addressFromWire(p);
      ok(c, opcode);
    },
  },
  [OP.LE_SET_ADV_PARAMS]: {
    minParams: 15,
    run(c, p, opcode) {
      // 7.8.5: not allowed while advertising is enabled.
      if (c.state.adv.enabled) return complete(c, opcode, STATUS.COMMAND_DISALLOWED);
      const type = p.readUInt8(4);
      if (type > 0x04) return complete(c, opcode, STATUS.INVALID_PARAMETERS);
      c.state.adv.intervalMs = p.readUInt16LE(0) * 0.625; // units of 0.625 ms
      c.state.adv.type = type === 0x04 ? ADV_REPORT_TYPE.ADV_DIRECT_IND : type;
      ok(c, opcode);
    },
  },
  [OP.LE_SET_ADV_DATA]: setAdvertisingData('data'),
  [OP.LE_SET_SCAN_RSP_DATA]: setAdvertisingData('scanResponse'),
  [OP.LE_SET_ADV_ENABLE]: {
    minParams: 1,
    run(c, p, opcode) {
      c.state.adv.enabled = p.readUInt8(0) === 0x01;
      ok(c, opcode);
      c.air.advertisingChanged();
    },
  },
  [OP.LE_SET_SCAN_PARAMS]: {
    minParams: 7,
    run(c, p, opcode) {
      // 7.8.10: not allowed while scanning is enabled.
      if (c.state.scan.enabled) return complete(c, opcode, STATUS.COMMAND_DISALLOWED);
      c.state.scan.active = p.readUInt8(0) === 0x01;
      ok(c, opcode);
    },
  },
  [OP.LE_SET_SCAN_ENABLE]: {
    minParams: 2,
    run(c, p, opcode) {
      const scan = c.state.scan;
      const enable = p.readUInt8(0) === 0x01;
      // 7.8.11: enabling starts a fresh duplicate filter.
      if (enable && !scan.enabled) scan.reported.clear();
      scan.enabled = enable;
      scan.filterDuplicates = p.readUInt8(1) === 0x01;
      ok(c, opcode);
      c.air.listenersChanged();
    },
  },
  [OP.LE_CREATE_CONN]: {
    minParams: 25,
    run(c, p, opcode) {
      if (c.state.initiating !== null) return status(c, opcode, STATUS.COMMAND_DISALLOWED);
      c.state.initiating = {
        peerAddressType: p.readUInt8(5),
        peerAddress: addressFromWire(p.subarray(6, 12)),
        maxIntervalMs: p.readUInt16LE(15) * 1.25,
        latency: p.readUInt16LE(17),
        supervisionTimeoutMs: p.readUInt16LE(19) * 10,
      };
      status(c, opcode, STATUS.SUCCESS);
      c.air.listenersChanged();
    },
  },
  [OP.LE_CREATE_CONN_CANCEL]: {
    minParams: 0,
    run(c, _p, opcode) {
      if (c.state.initiating === null) return complete(c, opcode, STATUS.COMMAND_DISALLOWED);
      c.state.initiating = null;
      ok(c, opcode);
      // 7.8.13: the pending creation ends with LE Connection Complete, Unknown Connection Identifier.
      c.toHost(failedConnectionComplete(STATUS.UNKNOWN_CONNECTION_ID));
      c.air.listenersChanged();
    },
  },
  [OP.DISCONNECT]: {
    minParams: 3,
    run(c, p, opcode) {
      // LL_TERMINATE_IND goes out at a later connection event, so the Command Status still comes first.
      status(c, opcode, c.air.disconnect(handleOf(p), p.readUInt8(2)));
    },
  },
  [OP.READ_RSSI]: {
    minParams: 2,
    run(c, p, opcode) {
      const handle = handleOf(p);
      const r = Buffer.alloc(3);
      r.writeUInt16LE(handle, 0);
      const known = c.air.hasConnection(handle);
      r.writeInt8(known ? c.air.rssiDbm() : 0, 2);
      complete(c, opcode, known ? STATUS.SUCCESS : STATUS.UNKNOWN_CONNECTION_ID, r);
    },
  },
  [OP.LE_CONN_UPDATE]: {
    minParams: 14,
    run(c, p, opcode) {
      // Core 4.1: only the Central may start the connection update procedure (Vol 6 Part B 5.1.1).
      const params = {
        intervalMs: p.readUInt16LE(4) * 1.25,
        latency: p.readUInt16LE(6),
        supervisionTimeoutMs: p.readUInt16LE(8) * 10,
      };
      // The procedure runs at later connection events, so the Command Status still comes first.
      status(c, opcode, c.air.updateConnection(handleOf(p), params));
    },
  },
  // 7.8.3: LE_Features; bit 5 is LE Data Packet Length Extension (Vol 6 Part B 4.6). Encryption and
  // the Connection Parameters Request procedure are not emulated, so their bits stay 0.
  [OP.LE_READ_LOCAL_FEATURES]: {
    minParams: 0,
    run(c, _p, opcode) {
      const r = Buffer.alloc(8);
      if (supportsDle(c.caps)) r.writeUInt8(1 << 5, 0);
      complete(c, opcode, STATUS.SUCCESS, r);
    },
  },
  // 7.8.33: the host asks for longer PDUs on one connection; the controller runs the Data Length Update
  // procedure and reports the outcome with LE Data Length Change (7.7.65.7) if the length changed.
  [OP.LE_SET_DATA_LENGTH]: {
    minParams: 6,
    available: supportsDle,
    run(c, p, opcode) {
      const handle = handleOf(p);
      const r = Buffer.alloc(2);
      r.writeUInt16LE(handle, 0);
      const txOctets = p.readUInt16LE(2);
      const txTime = p.readUInt16LE(4);
      if (txOctets < 27 || txOctets > 251 || txTime < 328 || txTime > 17040) {
        return complete(c, opcode, STATUS.INVALID_PARAMETERS, r);
      }
      complete(c, opcode, c.air.setDataLength(handle), r);
    },
  },
  [OP.LE_READ_SUGGESTED_DEFAULT_DATA_LENGTH]: {
    minParams: 0,
    available: supportsDle,
    run(c, _p, opcode) {
      const r = Buffer.alloc(4);
      r.writeUInt16LE(c.state.suggestedTxOctets, 0);
      r.writeUInt16LE(pduTimeUs(c.state.suggestedTxOctets), 2);
      complete(c, opcode, STATUS.SUCCESS, r);
    },
  },
  // 7.8.35: a suggestion above 27 makes the controller start the procedure on each new connection.
  [OP.LE_WRITE_SUGGESTED_DEFAULT_DATA_LENGTH]: {
    minParams: 4,
    available: supportsDle,
    run(c, p, opcode) {
      const octets = p.readUInt16LE(0);
      if (octets < 27 || octets > 251) return complete(c, opcode, STATUS.INVALID_PARAMETERS);
      c.state.suggestedTxOctets = octets;
      ok(c, opcode);
    },
  },
  [OP.LE_READ_MAX_DATA_LENGTH]: {
    minParams: 0,
    available: supportsDle,
    run(c, _p, opcode) {
      const max = c.caps.maxDataOctets;
      const r = Buffer.alloc(8);
      r.writeUInt16LE(max, 0);
      r.writeUInt16LE(pduTimeUs(max), 2);
      r.writeUInt16LE(max, 4);
      r.writeUInt16LE(pduTimeUs(max), 6);
      complete(c, opcode, STATUS.SUCCESS, r);
    },
  },
  [OP.LE_LTK_NEG_REPLY]: {
    minParams: 2,
    run(c, p, opcode) {
      const r = Buffer.alloc(2);
      r.writeUInt16LE(p.readUInt16LE(0), 0);
      complete(c, opcode, STATUS.SUCCESS, r);
    },
  },
};
