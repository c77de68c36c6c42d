/**
 * One emulated LE controller (Bluetooth Core spec v5.3, Vol 4 Part E for HCI): parses the HCI commands
 * and ACL packets its host writes, answers commands from the table of `hci-commands.ts`, and hands air
 * operations (advertising, scanning, connections, ACL traffic) to its {@link Air}.
 *
 * Events to the host are queued and delivered asynchronously and in order (never inside the host's
 * `write()`), as a UART/USB transport would.
 */
import createDebug from 'debug';
import type {
  AdvertisingState,
  Air,
  ControllerCapabilities,
  HostSink,
  InitiatingState,
  ScanState,
} from './air.js';
import type { CommandContext, ControllerState } from './hci-commands.js';
import { DEFAULT_EVENT_MASK, DEFAULT_LE_EVENT_MASK, HCI_COMMANDS } from './hci-commands.js';
import type { ControllerProfile } from './profiles.js';
import { EVT, HCI_ACLDATA_PKT, HCI_COMMAND_PKT, STATUS, commandComplete } from './hci-defs.js';

export type {
  AdvertisingState,
  ControllerCapabilities,
  HostSink,
  InitiatingState,
  ScanState,
} from './air.js';

const debug = createDebug('tandem:radio:hci');

/** One emulated LE controller (HCI device): see the module comment. Created by the radio's `open()`. */
export class LeController {
  readonly devId: number;
  readonly address: string;
  /** 0x00 public device address (Vol 6 Part B 1.3). */
  readonly addressType = 0x00;
  private currentProfile: ControllerProfile | undefined;
  /** In range of the other devices (the radio moves it). */
  inRange = true;

  private isRemoved = false;
  private readonly state: ControllerState = {
    eventMask: DEFAULT_EVENT_MASK,
    leEventMask: DEFAULT_LE_EVENT_MASK,
    leHostSupported: Buffer.from([0x00, 0x00]),
    randomAddress: null,
    adv: {
      intervalMs: 1280,
      type: 0x00, // ADV_IND
      data: Buffer.alloc(0),
      scanResponse: Buffer.alloc(0),
      enabled: false,
    },
    scan: { active: false, enabled: false, filterDuplicates: false, reported: new Set() },
    initiating: null,
    suggestedTxOctets: 27,
  };
  private readonly context: CommandContext;
  private readonly sinks = new Set<HostSink>();
  private readonly hostQueue: Buffer[] = [];
  private drainScheduled = false;

  constructor(
    devId: number,
    address: string,
    caps: ControllerCapabilities,
    air: Air,
    profile?: ControllerProfile,
  ) {
    this.devId = devId;
    this.address = address;
    this.currentProfile = profile;
    this.context = {
      address,
      caps,
      state: this.state,
      air,
      toHost: (packet) => this.toHost(packet),
    };
  }

  /** Advertising state, as set by the host. */
  get adv(): Readonly<AdvertisingState> {
    return this.state.adv;
  }

  /** Scanning state, as set by the host. */
  get scan(): Readonly<ScanState> {
    return this.state.scan;
  }

  /** The pending LE Create Connection, if any. */
  get initiating(): Readonly<InitiatingState> | null {
    return this.state.initiating;
  }

  /** True once the device left the air ({@link remove}). */
  get removed(): boolean {
    return this.isRemoved;
  }

  /** The device disappears: it stops answering its host and the air. */
  remove(): void {
    this.isRemoved = true;
  }

  /**
   * A connection was created with this controller as the Central: its LE Create Connection is done.
   * Returns what it asked for.
   */
  connectedAsCentral(): InitiatingState {
    const init = this.state.initiating!;
    this.state.initiating = null;
    return init;
  }

  /** A connection was created with this controller advertising: advertising stops (7.8.9). */
  connectedAsPeripheral(): void {
    this.state.adv.enabled = false;
  }

  /**
   * Duplicate filter of scanning (7.8.11): true if a report with this key is to go to the host, and
   * remembers it.
   */
  takeReport(key: string): boolean {
    const scan = this.state.scan;
    if (scan.filterDuplicates && scan.reported.has(key)) return false;
    scan.reported.add(key);
    return true;
  }

  /** The named profile this controller follows (board or phone), if the radio was given one. */
  get profile(): ControllerProfile | undefined {
    return this.currentProfile;
  }

  /** The radio swaps the board or phone this controller stands for (see `VirtualRadio.setProfile`). */
  useProfile(profile: ControllerProfile, caps: ControllerCapabilities): void {
    this.currentProfile = profile;
    Object.assign(this.context.caps, caps);
  }

  /** Capabilities reported to the host. */
  get caps(): Readonly<ControllerCapabilities> {
    return this.context.caps;
  }

  /** The host suggested longer PDUs for new connections (7.8.35): start the procedure on each one. */
  get suggestsDataLength(): boolean {
    return this.state.suggestedTxOctets > 27;
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

  /** Queue a controller-to-host packet, honouring the event masks (7.3.1, 7.8.1). */
  toHost(packet: Buffer): void {
    if (this.isRemoved) return;
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
    if (((this.state.eventMask >> BigInt(code - 1)) & 1n) === 0n) return false;
    if (code === EVT.LE_META) {
      const sub = packet[3]!;
      return ((this.state.leEventMask >> BigInt(sub - 1)) & 1n) === 1n;
    }
    return true;
  }

  /** A packet written by the host (HCI command or ACL data). */
  fromHost(packet: Buffer): void {
    if (this.isRemoved || packet.length === 0) return;
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
      this.context.air.sendAcl(hf & 0x0fff, (hf >> 12) & 0x3, packet.subarray(5, 5 + length));
    } else {
      debug('dev %d: ignoring malformed host packet %s', this.devId, packet.toString('hex'));
    }
  }

  private command(opcode: number, params: Buffer): void {
    const cmd = HCI_COMMANDS[opcode];
    if (cmd === undefined || (cmd.available !== undefined && !cmd.available(this.context.caps))) {
      // Not emulated: a 4.1 controller answers commands it does not know with Unknown HCI Command
      // (Vol 1 Part F 1.3, Vol 4 Part E 4.5).
      debug('dev %d: unknown command 0x%s', this.devId, opcode.toString(16));
      this.toHost(commandComplete(opcode, STATUS.UNKNOWN_COMMAND));
      return;
    }
    if (params.length < cmd.minParams) {
      this.toHost(commandComplete(opcode, STATUS.INVALID_PARAMETERS));
      return;
    }
    cmd.run(this.context, params, opcode);
  }
}
