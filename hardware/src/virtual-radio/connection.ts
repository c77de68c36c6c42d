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
