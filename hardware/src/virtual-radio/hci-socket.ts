/**
 * A stand-in for the native `@abandonware/bluetooth-hci-socket` class with the same surface (`bindRaw`,
 * `bindUser`, `bindControl`, `start`, `stop`, `isDevUp`, `setFilter`, `write`, `getDeviceList`, the `data`
 * and `error` events), backed by an {@link HciProvider} instead of an AF_BLUETOOTH socket.
 */
import { EventEmitter } from 'node:events';
import createDebug from 'debug';
import type { HciChannel, HciProvider } from './radio.js';
import { VirtualRadioError } from './errors.js';
import { EVT, HCI_EVENT_PKT } from './hci-defs.js';

const debug = createDebug('tandem:radio:socket');

/** Device entry as returned by the native `getDeviceList()`. */
export interface HciDeviceInfo {
  devId: number;
  devUp: boolean;
  idVendor: null;
  idProduct: null;
  busNumber: null;
  deviceAddress: null;
}

/** The instance API of the stand-in (and of the native module). */
export interface VirtualHciSocketApi extends EventEmitter {
  bindRaw(devId?: number): number;
  bindUser(devId?: number): number;
  bindControl(): number;
  start(): void;
  stop(): void;
  reset(): void;
  isDevUp(): boolean;
  setFilter(filter: Buffer): void;
  write(data: Buffer): void;
  getDeviceList(): HciDeviceInfo[];
}

/** Constructor type of the stand-in, what `require('@abandonware/bluetooth-hci-socket')` returns. */
export type VirtualHciSocketClass = new () => VirtualHciSocketApi;

/** Linux `struct hci_filter` (include/net/bluetooth/hci_sock.h): type mask, event mask, opcode. */
interface HciFilter {
  typeMask: number;
  eventMask: [number, number];
  opcode: number;
}

/** Same rule as the kernel's `is_filtered_packet()` in net/bluetooth/hci_sock.c. */
function passes(filter: HciFilter | null, packet: Buffer): boolean {
  if (filter === null) return true;
  const type = packet[0]!;
  if (((filter.typeMask >>> (type & 31)) & 1) === 0) return false;
  if (type !== HCI_EVENT_PKT) return true;
  const code = packet[1]! & 63;
  if (((filter.eventMask[code >> 5]! >>> (code & 31)) & 1) === 0) return false;
  if (filter.opcode !== 0) {
    if (packet[1] === EVT.CMD_COMPLETE && packet.readUInt16LE(4) !== filter.opcode) return false;
    if (packet[1] === EVT.CMD_STATUS && packet.readUInt16LE(5) !== filter.opcode) return false;
  }
  return true;
}

/** Build a socket class bound to `provider`. */
export function createHciSocketClass(provider: HciProvider): VirtualHciSocketClass {
  return class VirtualBluetoothHciSocket extends EventEmitter implements VirtualHciSocketApi {
    private mode: 'raw' | 'user' | 'control' | null = null;
    private channel: HciChannel | null = null;
    private devId = 0;
    private filter: HciFilter | null = null;
    private started = false;
    private readonly pending: Buffer[] = [];

    bindRaw(devId?: number): number {
      return this.bind('raw', devId);
    }

    bindUser(devId?: number): number {
      return this.bind('user', devId);
    }

    /** Management channel (bleno's mgmt.js loads long-term keys through it): accepted and ignored. */
    bindControl(): number {
      this.mode = 'control';
      return 0;
    }

    private bind(mode: 'raw' | 'user', devId: number | undefined): number {
      if (this.channel !== null) this.channel.close();
      this.mode = mode;
      this.devId = devId ?? provider.deviceIds()[0] ?? 0;
      this.channel = provider.open(this.devId, (packet) => this.onPacket(packet));
      debug('bound %s to hci%d', mode, this.devId);
      return this.devId;
    }

    start(): void {
      this.started = true;
      for (const p of this.pending.splice(0)) this.emitPacket(p);
    }

    stop(): void {
      this.started = false;
    }

    /** USB transport only in the native module; nothing to do here. */
    reset(): void {}

    isDevUp(): boolean {
      if (this.mode === 'control') return true;
      return this.channel?.isUp() ?? false;
    }

    setFilter(filter: Buffer): void {
      if (filter.length < 14) {
        throw new VirtualRadioError(
          'ERR_RADIO_INVALID_OPTION',
          `HCI filter must be 14 or 16 octets, got ${filter.length}`,
        );
      }
      this.filter = {
        typeMask: filter.readUInt32LE(0),
        eventMask: [filter.readUInt32LE(4), filter.readUInt32LE(8)],
        opcode: filter.readUInt16LE(12),
      };
    }

    write(data: Buffer): void {
      if (this.mode === 'control') {
        debug('mgmt write ignored: %s', data.toString('hex'));
        return;
      }
      if (this.channel === null) {
        throw new VirtualRadioError('ERR_RADIO_CLOSED', 'HCI socket written before bindRaw()/bindUser()');
      }
      if (!this.channel.isUp()) {
        // The native socket fails with ENETDOWN; hosts treat "Network is down" as a no-op.
        const err = Object.assign(new Error('Network is down'), { code: 'ENETDOWN' });
        setImmediate(() => this.emit('error', err));
        return;
      }
      this.channel.write(Buffer.from(data));
    }

    getDeviceList(): HciDeviceInfo[] {
      return provider.deviceIds().map((devId) => ({
        devId,
        devUp: true,
        idVendor: null,
        idProduct: null,
        busNumber: null,
        deviceAddress: null,
      }));
    }

    private onPacket(packet: Buffer): void {
      if (this.mode === 'raw' && !passes(this.filter, packet)) return;
      if (!this.started) {
        this.pending.push(packet);
        return;
      }
      this.emitPacket(packet);
    }

    private emitPacket(packet: Buffer): void {
      this.emit('data', packet);
    }
  };
}
