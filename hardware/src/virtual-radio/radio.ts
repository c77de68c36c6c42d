/**
 * The shared air: LE controllers on one medium, with advertising and scanning (`advertising.ts`) and
 * connections with link-layer fragmentation, loss, latency and supervision timeout (`link-layer.ts`)
 * (Bluetooth Core spec v5.3, Vol 6 Part B). Each controller reaches the air only through the {@link Air}
 * the radio binds to it; nothing here is public for the controllers' sake.
 */
import { EventEmitter } from 'node:events';
import createDebug from 'debug';
import { Advertising } from './advertising.js';
import type { Air, ControllerCapabilities, HostSink } from './air.js';
import { RealClock } from './clock.js';
import type { RadioClock } from './clock.js';
import type { AttOnAir, ConnectionInfo } from './connection.js';
import { LeController } from './controller.js';
import { VirtualRadioError } from './errors.js';
import { LinkLayer } from './link-layer.js';
import { Medium } from './medium.js';
import type { ControllerProfile } from './profiles.js';
import { validate, validateProfiles } from './options.js';
import type { Tunables, VirtualRadioOptions } from './options.js';

export type { AttOnAir, ConnectionInfo } from './connection.js';
export type { VirtualRadioOptions } from './options.js';

const debug = createDebug('tandem:radio');

/** Events of {@link VirtualRadio}. */
export interface VirtualRadioEvents {
  connect: [ConnectionInfo];
  disconnect: [ConnectionInfo];
  /** Every ATT PDU as it crosses the air, for counting round trips where they happen. */
  att: [AttOnAir];
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

/**
 * The shared air between emulated LE controllers, one per HCI device id. Hosts reach a controller through
 * the `bluetooth-hci-socket` stand-in ({@link installVirtualHci}) or a multi-process link ({@link serveRadio}).
 */
export class VirtualRadio extends EventEmitter<VirtualRadioEvents> implements HciProvider {
  readonly clock: RadioClock;
  private readonly addresses: Record<number, string>;
  private profiles: Readonly<Record<number, ControllerProfile>>;
  private opts: Tunables;
  private readonly controllers = new Map<number, LeController>();
  private readonly medium: Medium;
  private readonly advertising: Advertising;
  private readonly linkLayer: LinkLayer;
  private closed = false;

  constructor(options: VirtualRadioOptions = {}) {
    super();
    validate(options);
    validateProfiles(options.profiles);
    this.clock = options.clock ?? new RealClock();
    this.addresses = { ...(options.addresses ?? {}) };
    this.profiles = { ...(options.profiles ?? {}) };
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
    this.medium = new Medium(
      this.clock,
      options.seed ?? 1,
      () => this.opts,
      () => this.closed,
    );
    this.linkLayer = new LinkLayer(this.medium, {
      connect: (info) => this.emit('connect', info),
      disconnect: (info) => this.emit('disconnect', info),
      listenersChanged: () => this.advertising.refreshAll(),
      att: (pdu) => this.emit('att', pdu),
    });
    this.advertising = new Advertising(
      this.medium,
      () => this.controllers.values(),
      (central, peripheral) => this.linkLayer.establish(central, peripheral),
    );
    this.clock.addBusySource(() => [...this.controllers.values()].some((c) => c.busy()));
  }

  /**
   * Change radio conditions at run time. Loss, latency, `pdusPerEvent`, link-layer size and MTU cap apply
   * from the next packet or ATT MTU exchange; interval and supervision timeout apply to connections created
   * (or updated) afterwards.
   */
  configure(options: Omit<VirtualRadioOptions, 'clock' | 'seed' | 'addresses' | 'profiles'>): void {
    validate(options);
    const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    this.opts = { ...this.opts, ...defined };
    this.linkLayer.rescheduleAll();
    this.advertising.refreshAll();
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
      ctrl = this.createController(devId);
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

  /** A controller with the air bound to it: everything it may ask of the radio. */
  private createController(devId: number): LeController {
    const profile = this.profiles[devId];
    const caps = this.capsOf(profile);
    const air: Air = {
      advertisingChanged: () => this.advertising.refresh(ctrl),
      listenersChanged: () => this.advertising.refreshAll(),
      reset: () => {
        this.linkLayer.reset(ctrl);
        this.advertising.refresh(ctrl);
      },
      sendAcl: (handle, pb, data) => this.linkLayer.sendAcl(ctrl, handle, pb, data),
      hasConnection: (handle) => this.linkLayer.find(ctrl, handle) !== undefined,
      disconnect: (handle, reason) => this.linkLayer.disconnect(ctrl, handle, reason),
      updateConnection: (handle, params) => this.linkLayer.updateConnection(ctrl, handle, params),
      setDataLength: (handle) => this.linkLayer.setDataLength(ctrl, handle),
      rssiDbm: () => this.opts.rssiDbm,
    };
    const ctrl: LeController = new LeController(devId, this.addressOf(devId), caps, air, profile);
    return ctrl;
  }

  /**
   * Make device `devId` stand for another board or phone between runs, as if the hardware were swapped
   * under a running host: new connections follow `profile`. Its host keeps the LE ACL buffers it read at
   * start-up, so the new profile must report the same ones (the two Pi boards do); refused with
   * ERR_RADIO_INVALID_OPTION otherwise, or while the device has an open connection.
   */
  setProfile(devId: number, profile: ControllerProfile): void {
    validateProfiles({ [devId]: profile });
    const ctrl = this.controllers.get(devId);
    if (ctrl === undefined) {
      this.profiles = { ...this.profiles, [devId]: profile };
      return;
    }
    if (this.linkLayer.hasOpenConnection(ctrl)) {
      throw new VirtualRadioError(
        'ERR_RADIO_INVALID_OPTION',
        `hci${devId} has an open connection; change its profile between connections`,
      );
    }
    const caps = this.capsOf(profile);
    if (
      caps.aclBufferLength !== ctrl.caps.aclBufferLength ||
      caps.aclBufferCount !== ctrl.caps.aclBufferCount
    ) {
      throw new VirtualRadioError(
        'ERR_RADIO_INVALID_OPTION',
        `profile "${profile.name}" reports LE ACL buffers ${caps.aclBufferLength} x ${caps.aclBufferCount}, but ` +
          `the host of hci${devId} read ${ctrl.caps.aclBufferLength} x ${ctrl.caps.aclBufferCount}; use a new radio`,
      );
    }
    this.profiles = { ...this.profiles, [devId]: profile };
    ctrl.useProfile(profile, caps);
  }

  private capsOf(profile: ControllerProfile | undefined): ControllerCapabilities {
    return {
      coreVersion: profile?.coreVersion ?? 0x07,
      maxDataOctets: profile?.maxDataOctets ?? this.opts.linkLayerPayload,
      aclBufferLength: profile?.aclBufferLength ?? this.opts.aclBufferLength,
      aclBufferCount: profile?.aclBufferCount ?? this.opts.aclBufferCount,
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
    ctrl.remove();
    this.controllers.delete(devId);
    this.advertising.refresh(ctrl);
    this.linkLayer.wake(ctrl);
    this.advertising.refreshAll();
  }

  /** Move a device out of (false) or back into (true) range of everyone else. */
  setInRange(devId: number, inRange: boolean): void {
    const ctrl = this.controllers.get(devId);
    if (ctrl === undefined) return;
    ctrl.inRange = inRange;
    this.linkLayer.wake(ctrl);
    this.advertising.refreshAll();
  }

  /** All connections so far (open and closed since creation), oldest first. */
  connections(): ConnectionInfo[] {
    return this.linkLayer.all();
  }

  /** Stop every timer; sockets report the device down. */
  close(): void {
    this.closed = true;
    this.advertising.stop();
    this.linkLayer.stop();
  }
}
