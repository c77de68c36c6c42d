/**
 * One LE connection's state (Bluetooth Core spec v5.3, Vol 6 Part B 4.5): timing, the link-layer queue of
 * each direction, counters, and the public {@link ConnectionInfo} view of it.
 */
import type { RadioTimer } from './clock.js';
import type { LeController } from './controller.js';

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
  /** Data PDU payload in octets now: 27 until the Data Length Update procedure raised it (Vol 6 Part B 4.5.10). */
  readonly dataOctets: number;
  /** Data PDUs per direction per connection event (More Data, Vol 6 Part B 4.5.6). */
  readonly pdusPerEvent: number;
  /**
   * ACL packets a host sent beyond its controller's LE ACL buffers (count or length of LE Read Buffer
   * Size): dropped, and reported to that host with Data Buffer Overflow (Vol 4 Part E 7.7.26).
   */
  readonly aclOverruns: number;
  /**
   * L2CAP Connection Parameter Update Requests from the Peripheral that the Central's stack judged (Vol 3
   * Part A 4.20; profiles with a `parameterUpdates` policy), and how many of them it accepted.
   */
  readonly parameterRequests: number;
  readonly parameterRequestsAccepted: number;
}

/** One ATT PDU as it crossed the air (L2CAP CID 0x0004, Vol 3 Part A 2.1; opcodes Vol 3 Part F 3.4.8). */
export interface AttOnAir {
  readonly connectionId: number;
  /** Radio time at which the receiving controller handed it to its host. */
  readonly t: number;
  /** Who sent it: the Central (phone, ATT client here) or the Peripheral (lock, ATT server). */
  readonly from: 'central' | 'peripheral';
  readonly opcode: number;
  /** ATT PDU length in octets (the L2CAP payload). */
  readonly length: number;
}

/** One link-layer data PDU waiting in a direction's queue. */
export interface LlPdu {
  /** LLID (Vol 6 Part B 2.4): 0b10 start of an L2CAP message, 0b01 continuation. */
  readonly llid: 0b01 | 0b10;
  readonly data: Buffer;
  /** Called once the PDU is acknowledged (the last PDU of an HCI packet frees its buffer). */
  readonly onAck?: () => void;
}

/** One direction of a connection: its PDU queue and acknowledgement state. */
export class Direction {
  readonly queue: LlPdu[] = [];
  /** The head was received by the peer (NESN advanced) but not yet acknowledged back (Vol 6 Part B 4.5.9). */
  headDelivered = false;

  /** PDUs not yet sent (the head once delivered no longer counts): the More Data bit (4.5.6). */
  unsent(): number {
    return this.queue.length - (this.headDelivered ? 1 : 0);
  }
}

/** Timing of a new connection, from CONNECT_IND. */
export interface ConnectionTiming {
  intervalMs: number;
  latency: number;
  supervisionTimeoutMs: number;
  anchorMs: number;
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
  /** Data PDU payload in octets; null follows the radio-wide `linkLayerPayload` (no profile at either end). */
  dataOctets: number | null = null;
  /** The Data Length Update procedure waits for the next connection event (Vol 6 Part B 5.1.9). */
  lengthUpdatePending = false;
  /** Data PDUs per direction per event; null follows the radio-wide `pdusPerEvent`. */
  pdusPerEvent: number | null = null;
  aclOverruns = 0;
  parameterRequests = 0;
  parameterRequestsAccepted = 0;
  /** ACL packets of each side's host not yet completed (their buffers are still taken). */
  readonly inFlight = new Map<LeController, number>();

  constructor(
    id: number,
    central: { ctrl: LeController; handle: number },
    peripheral: { ctrl: LeController; handle: number },
    timing: ConnectionTiming,
  ) {
    this.id = id;
    this.central = central.ctrl;
    this.peripheral = peripheral.ctrl;
    this.centralHandle = central.handle;
    this.peripheralHandle = peripheral.handle;
    this.intervalMs = timing.intervalMs;
    this.latency = timing.latency;
    this.supervisionTimeoutMs = timing.supervisionTimeoutMs;
    this.anchorMs = timing.anchorMs;
    this.lastEventMs = timing.anchorMs - timing.intervalMs;
    this.lastGoodMs = timing.anchorMs;
  }

  handleOf(c: LeController): number {
    return c === this.central ? this.centralHandle : this.peripheralHandle;
  }

  /** The queue of what `c` sends. */
  outbound(c: LeController): Direction {
    return c === this.central ? this.c2p : this.p2c;
  }

  info(defaults: { dataOctets: number; pdusPerEvent: number }): ConnectionInfo {
    return {
      dataOctets: this.dataOctets ?? defaults.dataOctets,
      pdusPerEvent: this.pdusPerEvent ?? defaults.pdusPerEvent,
      aclOverruns: this.aclOverruns,
      parameterRequests: this.parameterRequests,
      parameterRequestsAccepted: this.parameterRequestsAccepted,
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
