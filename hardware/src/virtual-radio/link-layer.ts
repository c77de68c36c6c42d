/**
 * Connections and the link layer (Bluetooth Core spec v5.3, Vol 6 Part B 4.5 and 5.1): connection set-up
 * from CONNECT_IND, connection events with the More Data bit, fragmentation of HCI ACL packets into data
 * PDUs, acknowledgement and retransmission, connection update, termination and supervision timeout.
 *
 * Idle connections cost nothing: connection events are simulated only while data, a procedure or a dead
 * link needs them; their timing still follows the anchor, so event counts are exact.
 */
import createDebug from 'debug';
import type { ConnectionParameters } from './air.js';
import { Connection } from './connection.js';
import type { AttOnAir, ConnectionInfo, Direction, LlPdu } from './connection.js';
import type { LeController } from './controller.js';
import {
  PB,
  STATUS,
  aclPacket,
  dataBufferOverflow,
  disconnectionComplete,
  leConnectionComplete,
  leConnectionUpdateComplete,
  leDataLengthChange,
  numberOfCompletedPackets,
} from './hci-defs.js';
import type { Medium } from './medium.js';
import {
  SIGNALLING_CID,
  commandRejectFrame,
  judgeParameterRequest,
  parameterResponseFrame,
  parseParameterRequest,
} from './signalling.js';

const debug = createDebug('tandem:radio');
const debugAir = createDebug('tandem:radio:air');

/** What the link layer tells the radio. */
export interface LinkLayerEvents {
  connect(info: ConnectionInfo): void;
  disconnect(info: ConnectionInfo): void;
  /** Connections came or went: advertisers may have gained or lost an audience. */
  listenersChanged(): void;
  /** An ATT PDU crossed the air. */
  att(pdu: AttOnAir): void;
}

/** One controller's end of the link layer: its connections by handle. */
interface End {
  readonly connections: Map<number, Connection>;
  nextHandle: number;
  /** ACL packets of this host that hold a controller buffer (LE Read Buffer Size credits, 4.1.1). */
  inFlight: number;
}

/** connInitialMaxTxOctets: every connection starts at 27 octets (Vol 6 Part B 4.5.10). */
const INITIAL_DATA_OCTETS = 27;

export class LinkLayer {
  private readonly ends = new Map<LeController, End>();
  private readonly byId = new Map<number, Connection>();
  private nextConnectionId = 1;

  constructor(
    private readonly medium: Medium,
    private readonly events: LinkLayerEvents,
  ) {}

  /** All connections so far (open and closed), oldest first. */
  all(): ConnectionInfo[] {
    return [...this.byId.values()].map((c) => this.info(c));
  }

  private info(conn: Connection): ConnectionInfo {
    const o = this.medium.options;
    return conn.info({ dataOctets: o.linkLayerPayload, pdusPerEvent: o.pdusPerEvent });
  }

  /** The open connection of `ctrl` with this handle. */
  find(ctrl: LeController, handle: number): Connection | undefined {
    return this.ends.get(ctrl)?.connections.get(handle);
  }

  private end(ctrl: LeController): End {
    let e = this.ends.get(ctrl);
    if (e === undefined) {
      e = { connections: new Map(), nextHandle: 0x0040, inFlight: 0 };
      this.ends.set(ctrl, e);
    }
    return e;
  }

  /** Allocate a connection handle (0x0000–0x0EFF, Vol 4 Part E 5.4.2). */
  private allocateHandle(ctrl: LeController): number {
    const e = this.end(ctrl);
    for (;;) {
      const h = e.nextHandle;
      e.nextHandle = e.nextHandle >= 0x0eff ? 0x0040 : e.nextHandle + 1;
      if (!e.connections.has(h)) return h;
    }
  }

  /** True while `ctrl` holds an open connection. */
  hasOpenConnection(ctrl: LeController): boolean {
    return this.end(ctrl).connections.size > 0;
  }

  /** Something changed for `ctrl` (removed, out of range): its connections need events to notice. */
  wake(ctrl: LeController): void {
    for (const conn of this.end(ctrl).connections.values()) this.schedule(conn);
  }

  /** Stop every connection timer (the radio is closing). */
  stop(): void {
    for (const c of this.byId.values()) {
      if (c.timer) this.medium.clock.clearTimeout(c.timer);
      c.timer = null;
    }
  }

  /** After any change of settings: connections may need events. */
  rescheduleAll(): void {
    for (const c of this.byId.values()) this.schedule(c);
  }

  /** HCI_Reset (Vol 4 Part E 7.3.2): drop connections without telling the local host; peers time out. */
  reset(ctrl: LeController): void {
    for (const conn of [...this.end(ctrl).connections.values()]) {
      this.closeSide(conn, ctrl, null);
      this.schedule(conn);
    }
  }

  /** CONNECT_IND from `central` reached `peripheral` (Vol 6 Part B 2.3.3.1): both enter the Connection State. */
  establish(central: LeController, peripheral: LeController): void {
    const init = central.connectedAsCentral();
    peripheral.connectedAsPeripheral();
    const opts = this.medium.options;
    // A phone's stack picks the interval itself (its profile); a radio-wide setting pins it for tests.
    const intervalMs =
      opts.connectionIntervalMs ?? central.profile?.connectionIntervalMs ?? Math.max(7.5, init.maxIntervalMs);
    let supervisionTimeoutMs = opts.supervisionTimeoutMs ?? init.supervisionTimeoutMs;
    // connSupervisionTimeout must exceed (1 + latency) * interval * 2 (Vol 6 Part B 4.5.2).
    const min = (1 + init.latency) * intervalMs * 2;
    if (supervisionTimeoutMs <= min) supervisionTimeoutMs = Math.ceil((min + 10) / 10) * 10;
    const now = this.medium.clock.now();
    // First anchor: transmitWindowDelay 1.25 ms after CONNECT_IND, window offset 0 (Vol 6 Part B 4.5.3).
    const conn = new Connection(
      this.nextConnectionId++,
      { ctrl: central, handle: this.allocateHandle(central) },
      { ctrl: peripheral, handle: this.allocateHandle(peripheral) },
      { intervalMs, latency: init.latency, supervisionTimeoutMs, anchorMs: now + 1.25 },
    );
    if (central.profile !== undefined || peripheral.profile !== undefined) {
      conn.dataOctets = INITIAL_DATA_OCTETS;
      const perEvent = [central.profile?.pdusPerEvent, peripheral.profile?.pdusPerEvent].filter(
        (n): n is number => n !== undefined,
      );
      if (perEvent.length > 0) conn.pdusPerEvent = Math.min(...perEvent);
      // Phones' controllers raise the data length on their own once connected (Vol 6 Part B 5.1.9), as
      // does a controller whose host wrote a suggested default above 27 (Vol 4 Part E 7.8.35).
      conn.lengthUpdatePending = [central, peripheral].some(
        (c) =>
          c.caps.maxDataOctets > INITIAL_DATA_OCTETS &&
          (c.profile?.initiatesDataLength || c.suggestsDataLength),
      );
    }
    this.byId.set(conn.id, conn);
    this.end(central).connections.set(conn.centralHandle, conn);
    this.end(peripheral).connections.set(conn.peripheralHandle, conn);
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
    this.medium.deliver(
      central,
      leConnectionComplete({
        ...common,
        handle: conn.centralHandle,
        role: 0,
        peerAddressType: peripheral.addressType,
        peerAddress: peripheral.address,
      }),
    );
    this.medium.deliver(
      peripheral,
      leConnectionComplete({
        ...common,
        handle: conn.peripheralHandle,
        role: 1,
        peerAddressType: central.addressType,
        peerAddress: central.address,
      }),
    );
    this.events.connect(this.info(conn));
    this.schedule(conn);
    this.events.listenersChanged();
  }

  /** HCI ACL data from a host: split into link-layer PDUs and queue them on the connection. */
  sendAcl(ctrl: LeController, handle: number, pb: number, data: Buffer): void {
    const conn = this.find(ctrl, handle);
    if (conn === undefined || !conn.open) {
      debug('hci%d: ACL for unknown handle %d dropped', ctrl.devId, handle);
      return;
    }
    const end = this.end(ctrl);
    if (data.length > ctrl.caps.aclBufferLength || end.inFlight >= ctrl.caps.aclBufferCount) {
      // The host ignored LE Read Buffer Size (Vol 4 Part E 4.1.1): a real controller has nowhere to put the
      // packet; it is dropped and the host told with Data Buffer Overflow (7.7.26).
      conn.aclOverruns++;
      debug(
        'hci%d: ACL overrun on handle %d (%d octets, %d of %d buffers taken), dropped',
        ctrl.devId,
        handle,
        data.length,
        end.inFlight,
        ctrl.caps.aclBufferCount,
      );
      ctrl.toHost(dataBufferOverflow());
      return;
    }
    const start = pb !== PB.CONTINUATION;
    const payload = start ? this.capAttMtu(conn, data) : data;
    const dir = conn.outbound(ctrl);
    const size = conn.dataOctets ?? this.medium.options.linkLayerPayload;
    const ack = (): void => ctrl.toHost(numberOfCompletedPackets(handle, 1));
    if (payload.length === 0) {
      ack();
      return;
    }
    end.inFlight++;
    conn.inFlight.set(ctrl, (conn.inFlight.get(ctrl) ?? 0) + 1);
    const complete = (): void => {
      const held = conn.inFlight.get(ctrl) ?? 0;
      // After the connection closed on this side, its host already took the buffers back (4.3).
      if (held === 0) return;
      conn.inFlight.set(ctrl, held - 1);
      end.inFlight--;
      ack();
    };
    for (let off = 0; off < payload.length; off += size) {
      const last = off + size >= payload.length;
      dir.queue.push({
        llid: off === 0 && start ? 0b10 : 0b01,
        data: Buffer.from(payload.subarray(off, off + size)),
        ...(last ? { onAck: complete } : {}),
      });
    }
    this.schedule(conn);
  }

  /**
   * Enforce `attMtuCap` on an L2CAP start fragment: ATT (CID 0x0004, Vol 3 Part A 2.1) Exchange MTU
   * Request 0x02 / Response 0x03 carry the sender's Rx MTU in octets 1–2 (Vol 3 Part F 3.4.2).
   */
  private capAttMtu(conn: Connection, data: Buffer): Buffer {
    // The phone's stack never offers more than its profile's MTU (iOS: 185).
    const cap = Math.min(this.medium.options.attMtuCap, conn.central.profile?.attMtu ?? 517);
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
  disconnect(by: LeController, handle: number, reason: number): number {
    const conn = this.find(by, handle);
    if (conn === undefined) return STATUS.UNKNOWN_CONNECTION_ID;
    if (conn.terminate === null) conn.terminate = { by, reason };
    this.schedule(conn);
    return STATUS.SUCCESS;
  }

  /** LE Connection Update (Vol 4 Part E 7.8.18): applied at the instant, 6 events ahead (Vol 6 Part B 5.1.1). */
  updateConnection(by: LeController, handle: number, params: ConnectionParameters): number {
    const conn = this.find(by, handle);
    if (conn === undefined) return STATUS.UNKNOWN_CONNECTION_ID;
    // Core 4.1: only the Central may start the connection update procedure (Vol 6 Part B 5.1.1).
    if (conn.central !== by) return STATUS.COMMAND_DISALLOWED;
    this.scheduleUpdate(conn, params);
    return STATUS.SUCCESS;
  }

  /** The Central's link layer starts the connection update procedure (Vol 6 Part B 5.1.1). */
  private scheduleUpdate(conn: Connection, params: ConnectionParameters): void {
    const opts = this.medium.options;
    conn.pendingUpdate = {
      intervalMs: opts.connectionIntervalMs ?? Math.max(7.5, params.intervalMs),
      latency: params.latency,
      supervisionTimeoutMs: opts.supervisionTimeoutMs ?? params.supervisionTimeoutMs,
      // Idle events are not simulated but happen on air: count from the event in progress now.
      instant:
        Math.max(
          conn.eventCounter,
          Math.floor((this.medium.clock.now() - conn.anchorMs) / conn.intervalMs + 1e-9),
        ) + 6,
    };
    this.schedule(conn);
  }

  /**
   * An L2CAP signalling PDU from the Peripheral reached a Central whose stack answers it itself (its
   * profile's `parameterUpdates`, see signalling.ts): judge a Connection Parameter Update Request, answer it
   * on CID 0x0005 from the Central's own stack (no host buffer is taken), and start the connection update
   * if accepted. Anything else on the channel is answered with Command Reject. Nothing reaches the host.
   */
  private centralSignal(conn: Connection, l2cap: Buffer): void {
    const policy = conn.central.profile!.parameterUpdates!;
    const payload = l2cap.subarray(4);
    const request = parseParameterRequest(payload);
    let answer: Buffer;
    if (request === null) {
      debug('connection %d: signalling command 0x%s rejected', conn.id, (payload[0] ?? 0).toString(16));
      answer = commandRejectFrame(payload[1] ?? 0);
    } else {
      conn.parameterRequests++;
      const verdict = judgeParameterRequest(policy, request);
      debug(
        'connection %d: parameter request %d-%d ms, latency %d, timeout %d ms: %s',
        conn.id,
        request.minIntervalMs,
        request.maxIntervalMs,
        request.latency,
        request.supervisionTimeoutMs,
        verdict.accepted ? `accepted, ${verdict.intervalMs} ms` : `rejected (${verdict.reason})`,
      );
      answer = parameterResponseFrame(request.identifier, verdict.accepted);
      if (verdict.accepted) {
        conn.parameterRequestsAccepted++;
        this.scheduleUpdate(conn, {
          intervalMs: verdict.intervalMs,
          latency: request.latency,
          supervisionTimeoutMs: request.supervisionTimeoutMs,
        });
      }
    }
    // 10 octets: one data PDU at any data length.
    conn.c2p.queue.push({ llid: 0b10, data: answer });
    this.schedule(conn);
  }

  /** LE Set Data Length (Vol 4 Part E 7.8.33): run the Data Length Update procedure at the next event. */
  setDataLength(by: LeController, handle: number): number {
    const conn = this.find(by, handle);
    if (conn === undefined) return STATUS.UNKNOWN_CONNECTION_ID;
    conn.dataOctets ??= INITIAL_DATA_OCTETS;
    conn.lengthUpdatePending = true;
    this.schedule(conn);
    return STATUS.SUCCESS;
  }

  /**
   * LL_LENGTH_REQ and LL_LENGTH_RSP (Vol 6 Part B 5.1.9), taking the first exchange of this event: the new
   * length is what both ends support (a 4.1 end answers LL_UNKNOWN_RSP and it stays 27), and both hosts
   * get LE Data Length Change (Vol 4 Part E 7.7.65.7) if it changed. False if a packet was lost.
   */
  private lengthExchange(conn: Connection): boolean {
    if (!this.received(conn)) {
      conn.lostPackets++;
      return false;
    }
    if (conn.p2c.headDelivered) this.ackHead(conn.p2c);
    if (!this.received(conn)) {
      conn.lostPackets++;
      return false;
    }
    conn.lastGoodMs = conn.lastEventMs;
    if (conn.c2p.headDelivered) this.ackHead(conn.c2p);
    conn.lengthUpdatePending = false;
    const octets = Math.min(conn.central.caps.maxDataOctets, conn.peripheral.caps.maxDataOctets);
    const before = conn.dataOctets ?? INITIAL_DATA_OCTETS;
    if (octets <= INITIAL_DATA_OCTETS || octets === before) return true;
    conn.dataOctets = octets;
    debug('connection %d: data length %d -> %d octets', conn.id, before, octets);
    for (const side of [conn.central, conn.peripheral]) {
      this.medium.deliver(side, leDataLengthChange(conn.handleOf(side), octets));
    }
    return true;
  }

  /** Both ends present, in range, and still holding the connection (one may have been reset). */
  private linkUp(conn: Connection): boolean {
    return (
      this.medium.reachable(conn.central, conn.peripheral) &&
      this.find(conn.central, conn.centralHandle) === conn &&
      this.find(conn.peripheral, conn.peripheralHandle) === conn
    );
  }

  private linkDead(conn: Connection): boolean {
    return !this.linkUp(conn) || this.medium.options.lossRate >= 1;
  }

  /** One packet of connection `conn` over the air: true if received. */
  private received(conn: Connection): boolean {
    return this.linkUp(conn) && this.medium.survives();
  }

  private needsEvents(conn: Connection): boolean {
    return (
      conn.c2p.queue.length > 0 ||
      conn.p2c.queue.length > 0 ||
      conn.terminate !== null ||
      conn.pendingUpdate !== null ||
      conn.lengthUpdatePending ||
      this.linkDead(conn)
    );
  }

  /** Arm the next connection event if anything needs one. */
  private schedule(conn: Connection): void {
    if (!conn.open || conn.timer !== null || this.medium.closed || !this.needsEvents(conn)) return;
    const now = this.medium.clock.now();
    let k = conn.eventCounter + 1;
    if (conn.anchorMs + k * conn.intervalMs < now - 1e-9) {
      // Next anchor not in the past. The idle events skipped meanwhile exchanged empty PDUs successfully
      // (a dead link always has events scheduled), so the link was alive until the last of them.
      k = Math.ceil((now - conn.anchorMs) / conn.intervalMs - 1e-9);
      conn.lastGoodMs = Math.max(conn.lastGoodMs, conn.anchorMs + (k - 1) * conn.intervalMs);
    }
    const due = conn.anchorMs + k * conn.intervalMs;
    conn.timer = this.medium.clock.setTimeout(() => this.connectionEvent(conn, k), Math.max(0, due - now));
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
    // A phone's stack takes the LE signalling channel itself (a request fits one 27-octet PDU: 16 octets).
    if (
      to === conn.central &&
      pdu.llid === 0b10 &&
      conn.central.profile?.parameterUpdates !== undefined &&
      pdu.data.length >= 4 &&
      pdu.data.readUInt16LE(2) === SIGNALLING_CID &&
      pdu.data.readUInt16LE(0) === pdu.data.length - 4
    ) {
      this.centralSignal(conn, pdu.data);
      return;
    }
    // The receiving controller hands each PDU up as one HCI ACL packet with its own handle; a start PDU
    // becomes Packet_Boundary_Flag 0b10 (Vol 4 Part E 5.4.2), which is what both stacks look for.
    this.medium.deliver(
      to,
      aclPacket(conn.handleOf(to), pdu.llid === 0b10 ? PB.START_FLUSHABLE : PB.CONTINUATION, pdu.data),
    );
    // An ATT PDU starts in a start PDU: L2CAP length, CID 0x0004, then the ATT opcode (Vol 3 Part A 3.1).
    if (pdu.llid === 0b10 && pdu.data.length >= 5 && pdu.data.readUInt16LE(2) === 0x0004) {
      this.events.att({
        connectionId: conn.id,
        t: this.medium.clock.now(),
        from: to === conn.peripheral ? 'central' : 'peripheral',
        opcode: pdu.data[4]!,
        length: pdu.data.readUInt16LE(0),
      });
    }
  }

  /** At the instant the new timing starts (simplified: transmitWindowOffset 0); the counter keeps counting. */
  private applyUpdate(conn: Connection, now: number, k: number): void {
    const u = conn.pendingUpdate!;
    conn.pendingUpdate = null;
    conn.anchorMs = now - k * u.intervalMs;
    conn.intervalMs = u.intervalMs;
    conn.latency = u.latency;
    conn.supervisionTimeoutMs = u.supervisionTimeoutMs;
    for (const side of [conn.central, conn.peripheral]) {
      this.medium.deliver(
        side,
        leConnectionUpdateComplete(conn.handleOf(side), u.intervalMs, u.latency, u.supervisionTimeoutMs),
      );
    }
  }

  /**
   * One side's turn within a connection event: its packet gets through (or the event ends), acknowledges
   * the peer's last PDU, carries LL_TERMINATE_IND if its host asked, else its next data PDU. Returns false
   * when the event ends here (lost packet or connection closed).
   */
  private turn(conn: Connection, sender: LeController): boolean {
    const receiver = sender === conn.central ? conn.peripheral : conn.central;
    if (!this.received(conn)) {
      conn.lostPackets++;
      return false;
    }
    // A received packet from the Peripheral closes a good exchange (Vol 6 Part B 4.5.2).
    if (sender === conn.peripheral) conn.lastGoodMs = conn.lastEventMs;
    const peerOut = conn.outbound(receiver);
    if (peerOut.headDelivered) this.ackHead(peerOut);
    if (conn.terminate?.by === sender) {
      const reason = conn.terminate.reason;
      this.closeConnection(conn, (side) => (side === sender ? STATUS.LOCAL_HOST_TERMINATED : reason));
      return false;
    }
    const out = conn.outbound(sender);
    const head = out.queue[0];
    if (head !== undefined && !out.headDelivered) {
      this.sendPdu(conn, receiver, head);
      out.headDelivered = true;
    }
    return true;
  }

  private connectionEvent(conn: Connection, k: number): void {
    conn.timer = null;
    if (!conn.open) return;
    const now = this.medium.clock.now();
    conn.eventCounter = k;
    conn.lastEventMs = now;
    conn.busyEvents++;

    if (conn.pendingUpdate !== null && k >= conn.pendingUpdate.instant) this.applyUpdate(conn, now, k);

    if (now - conn.lastGoodMs >= conn.supervisionTimeoutMs) {
      debug('connection %d: supervision timeout after %d ms', conn.id, now - conn.lastGoodMs);
      const t = conn.terminate;
      this.closeConnection(conn, (side) =>
        t !== null && t.by === side ? STATUS.LOCAL_HOST_TERMINATED : STATUS.CONNECTION_TIMEOUT,
      );
      return;
    }

    let slots = conn.pdusPerEvent ?? this.medium.options.pdusPerEvent;
    if (conn.lengthUpdatePending) {
      if (!this.lengthExchange(conn)) {
        this.schedule(conn);
        return;
      }
      slots--;
    }
    for (let i = 0; i < slots; i++) {
      // Central transmits first in every event (Vol 6 Part B 4.5.1); its packet also acknowledges the
      // Peripheral's last one through NESN. The Peripheral answers only what it received.
      if (!this.turn(conn, conn.central)) break;
      if (!this.turn(conn, conn.peripheral)) break;
      // MD (More Data) bit: keep going in this event only while either side has unsent data (4.5.6).
      if (conn.c2p.unsent() <= 0 && conn.p2c.unsent() <= 0) break;
    }
    if (conn.open) this.schedule(conn);
  }

  /** Close one side (Disconnection Complete to its host unless `reason` is null). */
  private closeSide(conn: Connection, side: LeController, reason: number | null): void {
    const handle = conn.handleOf(side);
    const end = this.end(side);
    if (end.connections.get(handle) !== conn) return;
    end.connections.delete(handle);
    // The host takes back the buffers of a closed connection without Number Of Completed Packets (4.3).
    end.inFlight -= conn.inFlight.get(side) ?? 0;
    conn.inFlight.set(side, 0);
    if (reason !== null) this.medium.deliver(side, disconnectionComplete(handle, reason));
    if (
      this.find(conn.central, conn.centralHandle) === undefined &&
      this.find(conn.peripheral, conn.peripheralHandle) === undefined
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
    if (conn.timer !== null) this.medium.clock.clearTimeout(conn.timer);
    conn.timer = null;
    debug('connection %d closed, reason 0x%s', conn.id, reason.toString(16));
    this.events.disconnect(this.info(conn));
    this.events.listenersChanged();
  }
}
