/**
 * HCI packet formats used by the virtual controller (Bluetooth Core spec v5.3, Vol 4 Part E).
 * Packet type octet as on the Linux HCI socket / UART transport (Vol 4 Part A, 2).
 */

export const HCI_COMMAND_PKT = 0x01;
export const HCI_ACLDATA_PKT = 0x02;
export const HCI_EVENT_PKT = 0x04;

/** Opcode = OGF << 10 | OCF (Vol 4 Part E, 5.4.1). */
export const op = (ogf: number, ocf: number): number => (ogf << 10) | ocf;

export const OP = {
  DISCONNECT: op(0x01, 0x0006), // 7.1.6
  SET_EVENT_MASK: op(0x03, 0x0001), // 7.3.1
  RESET: op(0x03, 0x0003), // 7.3.2
  READ_LE_HOST_SUPPORTED: op(0x03, 0x006c), // 7.3.78
  WRITE_LE_HOST_SUPPORTED: op(0x03, 0x006d), // 7.3.79
  READ_LOCAL_VERSION: op(0x04, 0x0001), // 7.4.1
  READ_BUFFER_SIZE: op(0x04, 0x0005), // 7.4.5
  READ_BD_ADDR: op(0x04, 0x0009), // 7.4.6
  READ_RSSI: op(0x05, 0x0005), // 7.5.4
  LE_SET_EVENT_MASK: op(0x08, 0x0001), // 7.8.1
  LE_READ_BUFFER_SIZE: op(0x08, 0x0002), // 7.8.2
  LE_READ_LOCAL_FEATURES: op(0x08, 0x0003), // 7.8.3
  LE_SET_RANDOM_ADDRESS: op(0x08, 0x0005), // 7.8.4
  LE_SET_ADV_PARAMS: op(0x08, 0x0006), // 7.8.5
  LE_SET_ADV_DATA: op(0x08, 0x0008), // 7.8.7
  LE_SET_SCAN_RSP_DATA: op(0x08, 0x0009), // 7.8.8
  LE_SET_ADV_ENABLE: op(0x08, 0x000a), // 7.8.9
  LE_SET_SCAN_PARAMS: op(0x08, 0x000b), // 7.8.10
  LE_SET_SCAN_ENABLE: op(0x08, 0x000c), // 7.8.11
  LE_CREATE_CONN: op(0x08, 0x000d), // 7.8.12
  LE_CREATE_CONN_CANCEL: op(0x08, 0x000e), // 7.8.13
  LE_CONN_UPDATE: op(0x08, 0x0013), // 7.8.18
  LE_LTK_NEG_REPLY: op(0x08, 0x001b), // 7.8.26
  LE_SET_DATA_LENGTH: op(0x08, 0x0022), // 7.8.33 (Core 4.2)
  LE_READ_SUGGESTED_DEFAULT_DATA_LENGTH: op(0x08, 0x0023), // 7.8.34 (Core 4.2)
  LE_WRITE_SUGGESTED_DEFAULT_DATA_LENGTH: op(0x08, 0x0024), // 7.8.35 (Core 4.2)
  LE_READ_MAX_DATA_LENGTH: op(0x08, 0x002f), // 7.8.46 (Core 4.2)
} as const;

export const EVT = {
  DISCONN_COMPLETE: 0x05, // 7.7.5
  CMD_COMPLETE: 0x0e, // 7.7.14
  CMD_STATUS: 0x0f, // 7.7.15
  NUM_COMPLETED_PACKETS: 0x13, // 7.7.19
  DATA_BUFFER_OVERFLOW: 0x1a, // 7.7.26
  LE_META: 0x3e, // 7.7.65
} as const;

export const LE_SUBEVT = {
  CONN_COMPLETE: 0x01, // 7.7.65.1
  ADV_REPORT: 0x02, // 7.7.65.2
  CONN_UPDATE_COMPLETE: 0x03, // 7.7.65.3
  DATA_LENGTH_CHANGE: 0x07, // 7.7.65.7 (Core 4.2)
} as const;

/** Error codes (Vol 1 Part F). */
export const STATUS = {
  SUCCESS: 0x00,
  UNKNOWN_COMMAND: 0x01,
  UNKNOWN_CONNECTION_ID: 0x02,
  COMMAND_DISALLOWED: 0x0c,
  INVALID_PARAMETERS: 0x12,
  REMOTE_USER_TERMINATED: 0x13,
  CONNECTION_TIMEOUT: 0x08,
  LOCAL_HOST_TERMINATED: 0x16,
} as const;

/** Advertising report event types (7.7.65.2). */
export const ADV_REPORT_TYPE = {
  ADV_IND: 0x00,
  ADV_DIRECT_IND: 0x01,
  ADV_SCAN_IND: 0x02,
  ADV_NONCONN_IND: 0x03,
  SCAN_RSP: 0x04,
} as const;

/** ACL Packet_Boundary_Flag values (5.4.2). */
export const PB = {
  START_NON_FLUSHABLE: 0b00,
  CONTINUATION: 0b01,
  START_FLUSHABLE: 0b10,
} as const;

/** HCI event packet: type, event code, parameter length, parameters (5.4.4). */
export function eventPacket(code: number, params: Buffer): Buffer {
  return Buffer.concat([Buffer.from([HCI_EVENT_PKT, code, params.length]), params]);
}

/** Command Complete (7.7.14) with Num_HCI_Command_Packets = 1. */
export function commandComplete(opcode: number, status: number, ret: Buffer = Buffer.alloc(0)): Buffer {
  const p = Buffer.alloc(4 + ret.length);
  p.writeUInt8(1, 0);
  p.writeUInt16LE(opcode, 1);
  p.writeUInt8(status, 3);
  ret.copy(p, 4);
  return eventPacket(EVT.CMD_COMPLETE, p);
}

/** Command Status (7.7.15) with Num_HCI_Command_Packets = 1. */
export function commandStatus(opcode: number, status: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt8(status, 0);
  p.writeUInt8(1, 1);
  p.writeUInt16LE(opcode, 2);
  return eventPacket(EVT.CMD_STATUS, p);
}

/** Disconnection Complete (7.7.5). */
export function disconnectionComplete(handle: number, reason: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt8(STATUS.SUCCESS, 0);
  p.writeUInt16LE(handle, 1);
  p.writeUInt8(reason, 3);
  return eventPacket(EVT.DISCONN_COMPLETE, p);
}

/** Number Of Completed Packets (7.7.19) for one handle. */
export function numberOfCompletedPackets(handle: number, count: number): Buffer {
  const p = Buffer.alloc(5);
  p.writeUInt8(1, 0);
  p.writeUInt16LE(handle, 1);
  p.writeUInt16LE(count, 3);
  return eventPacket(EVT.NUM_COMPLETED_PACKETS, p);
}

/** Six address octets, little-endian on the wire, from "aa:bb:cc:dd:ee:ff". */
export function addressToWire(address: string): Buffer {
  return Buffer.from(address.split(':').reverse().join(''), 'hex');
}

/** "aa:bb:cc:dd:ee:ff" from six little-endian octets. */
export function addressFromWire(b: Buffer): string {
  return Array.from(b.subarray(0, 6))
    .reverse()
    .map((x) => x.toString(16).padStart(2, '0'))
    .join(':');
}

/** LE Connection Complete (7.7.65.1). Role 0x00 = Central, 0x01 = Peripheral. */
export function leConnectionComplete(args: {
  status: number;
  handle: number;
  role: 0 | 1;
  peerAddressType: number;
  peerAddress: string;
  intervalMs: number;
  latency: number;
  supervisionTimeoutMs: number;
}): Buffer {
  const p = Buffer.alloc(19);
  p.writeUInt8(LE_SUBEVT.CONN_COMPLETE, 0);
  p.writeUInt8(args.status, 1);
  p.writeUInt16LE(args.handle, 2);
  p.writeUInt8(args.role, 4);
  p.writeUInt8(args.peerAddressType, 5);
  addressToWire(args.peerAddress).copy(p, 6);
  p.writeUInt16LE(Math.round(args.intervalMs / 1.25), 12); // units of 1.25 ms
  p.writeUInt16LE(args.latency, 14);
  p.writeUInt16LE(Math.round(args.supervisionTimeoutMs / 10), 16); // units of 10 ms
  p.writeUInt8(0x00, 18); // Central_Clock_Accuracy: 500 ppm
  return eventPacket(EVT.LE_META, p);
}

/** LE Connection Update Complete (7.7.65.3). */
export function leConnectionUpdateComplete(
  handle: number,
  intervalMs: number,
  latency: number,
  supervisionTimeoutMs: number,
): Buffer {
  const p = Buffer.alloc(10);
  p.writeUInt8(LE_SUBEVT.CONN_UPDATE_COMPLETE, 0);
  p.writeUInt8(STATUS.SUCCESS, 1);
  p.writeUInt16LE(handle, 2);
  p.writeUInt16LE(Math.round(intervalMs / 1.25), 4);
  p.writeUInt16LE(latency, 6);
  p.writeUInt16LE(Math.round(supervisionTimeoutMs / 10), 8);
  return eventPacket(EVT.LE_META, p);
}

/** LE Advertising Report (7.7.65.2) carrying one report. */
export function leAdvertisingReport(
  eventType: number,
  addressType: number,
  address: string,
  data: Buffer,
  rssi: number,
): Buffer {
  const p = Buffer.alloc(3 + 6 + 1 + data.length + 1 + 1);
  let o = 0;
  p.writeUInt8(LE_SUBEVT.ADV_REPORT, o++);
  p.writeUInt8(1, o++); // Num_Reports
  p.writeUInt8(eventType, o++);
  p.writeUInt8(addressType, o++);
  addressToWire(address).copy(p, o);
  o += 6;
  p.writeUInt8(data.length, o++);
  data.copy(p, o);
  o += data.length;
  p.writeInt8(rssi, o);
  return eventPacket(EVT.LE_META, p);
}

/** HCI ACL data packet (5.4.2). */
export function aclPacket(handle: number, pb: number, data: Buffer): Buffer {
  const p = Buffer.alloc(5 + data.length);
  p.writeUInt8(HCI_ACLDATA_PKT, 0);
  p.writeUInt16LE((handle & 0x0fff) | (pb << 12), 1);
  p.writeUInt16LE(data.length, 3);
  data.copy(p, 5);
  return p;
}

/** Data Buffer Overflow (7.7.26): the host sent more ACL data than the controller's buffers (Link_Type 0x01). */
export function dataBufferOverflow(): Buffer {
  return eventPacket(EVT.DATA_BUFFER_OVERFLOW, Buffer.from([0x01]));
}

/** Time in µs to send a data PDU of `octets` payload on the LE 1M PHY (Vol 6 Part B 4.5.10: (octets + 14) × 8). */
export const pduTimeUs = (octets: number): number => (octets + 14) * 8;

/** LE Data Length Change (7.7.65.7): the same maximum both ways, as the model keeps it. */
export function leDataLengthChange(handle: number, octets: number): Buffer {
  const p = Buffer.alloc(11);
  p.writeUInt8(LE_SUBEVT.DATA_LENGTH_CHANGE, 0);
  p.writeUInt16LE(handle, 1);
  p.writeUInt16LE(octets, 3); // MaxTxOctets
  p.writeUInt16LE(pduTimeUs(octets), 5); // MaxTxTime
  p.writeUInt16LE(octets, 7); // MaxRxOctets
  p.writeUInt16LE(pduTimeUs(octets), 9); // MaxRxTime
  return eventPacket(EVT.LE_META, p);
}
