/**
 * {@link LockTransport} on `@abandonware/noble`, the BLE central stack, over Linux HCI or the virtual radio
 * (hardware/src/virtual-radio). Noble is loaded on the first scan, never at import: its HCI binding opens a
 * Bluetooth socket when constructed, which fails on machines without Bluetooth (EAFNOSUPPORT) or without
 * the capabilities; those failures become ERR_GW_BLE_UNAVAILABLE with the command that fixes them.
 */
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import createDebug from 'debug';
import type { CharacteristicName } from '../../protocol/src/gatt.js';
import {
  CHARACTERISTIC,
  GATT_SERVICE_UUID,
  compactUuid,
  lockTag,
  parseServiceData,
} from '../../protocol/src/gatt.js';
import { createNoble } from '../../hardware/src/virtual-radio/stacks.js';
import { GatewayError } from './errors.js';
import type { Timers } from './lock-client.js';
import { SYSTEM_TIMERS } from './lock-client.js';
import type { ConnectOptions, FoundLock, LockLink, LockTransport, ScanOptions } from './transport.js';

const debug = createDebug('tandem:gw:noble');

// Minimal local types: only what this adapter uses of noble (CommonJS, no types of its own that we rely on).
interface NobleCharacteristicLike extends EventEmitter {
  readonly uuid: string;
  readAsync(): Promise<Buffer>;
  writeAsync(data: Buffer, withoutResponse: boolean): Promise<void>;
  subscribeAsync(): Promise<void>;
}

interface NoblePeripheralLike extends EventEmitter {
  readonly id: string;
  readonly address: string;
  readonly rssi: number;
  readonly state: string;
  readonly mtu: number | null;
  readonly advertisement: {
    readonly serviceUuids?: string[];
    readonly serviceData?: Array<{ readonly uuid: string; readonly data: Buffer }>;
  };
  connectAsync(): Promise<void>;
  readHandleAsync(handle: number): Promise<Buffer>;
  writeHandleAsync(handle: number, data: Buffer, withoutResponse: boolean): Promise<void>;
  cancelConnect(): void;
  disconnectAsync(): Promise<void>;
  discoverSomeServicesAndCharacteristicsAsync(
    serviceUuids: string[],
    characteristicUuids: string[],
  ): Promise<{ characteristics: NobleCharacteristicLike[] }>;
}

/** The parts of a noble instance this adapter uses. */
export interface NobleLike extends EventEmitter {
  readonly state: string;
  startScanningAsync(serviceUuids?: string[], allowDuplicates?: boolean): Promise<void>;
  stopScanningAsync(): Promise<void>;
}

/** One characteristic as noble's GATT client discovered it (lib/hci-socket/gatt.js `_characteristics`). */
interface NobleDiscoveredCharacteristic {
  readonly startHandle: number;
  readonly valueHandle: number;
  readonly endHandle?: number;
  /** Characteristic Properties (Core Vol 3 Part G 3.3.1.1): 0x10 notify, 0x20 indicate. */
  readonly rawProps?: number;
}

/** The internals of noble's HCI binding that {@link trackHciPoll} and GATT caching reach for. */
interface NobleHciInternals {
  _bindings?: {
    _hci?: { pollIsDevUp?: () => void; _socket?: { stop?: () => void } };
    _gatts?: Record<
      string,
      { _characteristics?: Record<string, Record<string, NobleDiscoveredCharacteristic>> } | undefined
    >;
  };
}

/** Handles of one characteristic of the Tandem service, kept for GATT caching ([TANDEM-GATT-16]). */
export interface CachedCharacteristic {
  readonly valueHandle: number;
  /** Its Client Characteristic Configuration descriptor, for characteristics that notify. */
  readonly cccdHandle?: number;
}

/** The Tandem service's handles on one lock, under the GATT database version it advertised. */
export type CachedGattDatabase = Readonly<Record<CharacteristicName, CachedCharacteristic>>;

/**
 * Where a phone keeps the handles of locks it has talked to ([TANDEM-GATT-16]), keyed by lock id, address
 * and GATT database version. A Map will do; an app would persist it.
 */
export interface GattCache {
  get(key: string): CachedGattDatabase | undefined;
  set(key: string, value: CachedGattDatabase): unknown;
  delete(key: string): unknown;
}

/**
 * The handles noble found for the Tandem service, if every characteristic is there and each notifying one
 * has its CCCD as the only attribute after its value (then it must be the CCCD: a notifying characteristic
 * has exactly one, Core Vol 3 Part G 3.3.3.3). Undefined when that cannot be told: no caching then.
 */
function handlesOf(noble: NobleLike, peripheralId: string): CachedGattDatabase | undefined {
  const gatt = (noble as unknown as NobleHciInternals)._bindings?._gatts?.[peripheralId];
  const discovered = gatt?._characteristics?.[SERVICE];
  if (discovered === undefined) return undefined;
  const out: Partial<Record<CharacteristicName, CachedCharacteristic>> = {};
  for (const [name, uuid] of Object.entries(UUID_OF) as [CharacteristicName, string][]) {
    const c = discovered[uuid];
    if (c === undefined) return undefined;
    const notifies = ((c.rawProps ?? 0) & 0x30) !== 0;
    if (!notifies) {
      out[name] = { valueHandle: c.valueHandle };
    } else if (c.endHandle === c.valueHandle + 1) {
      out[name] = { valueHandle: c.valueHandle, cccdHandle: c.valueHandle + 1 };
    } else {
      return undefined;
    }
  }
  return out as CachedGattDatabase;
}

/**
 * Resolves once noble has the ATT MTU of the new connection to `peripheralId` (its binding's `onMtu`).
 * Without discovery nothing else waits for the exchange, and `peripheral.mtu` still holds the last
 * connection's value. Resolves at once where the binding has no such event (a test double).
 */
function mtuExchanged(noble: NobleLike, peripheralId: string): Promise<void> {
  const bindings = (noble as unknown as { _bindings?: EventEmitter })._bindings;
  if (bindings === undefined || typeof bindings.on !== 'function') return Promise.resolve();
  return new Promise((resolve) => {
    const onMtu = (uuid: string): void => {
      if (uuid !== peripheralId) return;
      bindings.off('onMtu', onMtu);
      resolve();
    };
    bindings.on('onMtu', onMtu);
  });
}

/** How long a write to a cached handle may go unanswered before the cache is deemed stale. */
const CACHED_ANSWER_MS = 2_000;

/**
 * Makes noble's HCI adapter poll stoppable, and returns the stop. noble has no stop: once started, its HCI layer
 * re-arms a 1 s adapter poll for ever (lib/hci-socket/hci.js `pollIsDevUp`: `setTimeout(this.pollIsDevUp.bind(
 * this), 1000)`, handle not kept), which kept every CLI process alive for up to 1.8 s after its result was
 * printed (issue 11 §4). Installed before noble starts, the wrapper is what each re-arm binds, so it sees every
 * poll: it keeps the handle of the timer each poll arms (the poll's last `setTimeout`) so that the stop can
 * clear it, and once stopped it polls no more. The socket then stops delivering.
 */
function trackHciPoll(noble: NobleLike): () => void {
  const hci = (noble as unknown as NobleHciInternals)._bindings?._hci;
  const original = hci?.pollIsDevUp;
  if (hci === undefined || original === undefined) return () => undefined;
  let handle: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  hci.pollIsDevUp = function pollIsDevUp(this: unknown) {
    if (stopped) return;
    const realSetTimeout = globalThis.setTimeout;
    globalThis.setTimeout = ((fn: () => void, ms?: number) =>
      (handle = realSetTimeout(fn, ms))) as unknown as typeof setTimeout;
    try {
      original.call(hci);
    } finally {
      globalThis.setTimeout = realSetTimeout;
    }
  };
  return () => {
    stopped = true;
    if (handle !== undefined) clearTimeout(handle);
    hci._socket?.stop?.();
  };
}

/** Which noble binding to use. */
export type NobleBinding =
  /** Linux HCI (`/dev` hci device `deviceId`, default 0) through the native bluetooth-hci-socket. */
  | { readonly kind: 'hci'; readonly deviceId?: number }
  /**
   * The virtual radio: `installVirtualHci(radio)` must have run in this process (a VirtualRadio here, or
   * `connectRadio(path)` to a radio served by another process).
   */
  | { readonly kind: 'virtual'; readonly deviceId: number }
  /** An already created noble instance (tests). */
  | { readonly kind: 'instance'; readonly noble: NobleLike };

/** Options of {@link NobleTransport}. */
export interface NobleTransportOptions {
  readonly binding: NobleBinding;
  readonly timers?: Timers;
  /** How long the adapter may take to report `poweredOn` (default 5 s). */
  readonly powerOnTimeoutMs?: number;
  /**
   * GATT caching ([TANDEM-GATT-16]): handles of locks this phone discovered before, reused while the lock
   * advertises the same GATT database version (default: an in-memory Map for this transport's lifetime;
   * null: always discover).
   */
  readonly gattCache?: GattCache | null;
}

const SERVICE = compactUuid(GATT_SERVICE_UUID);
const UUID_OF: Readonly<Record<CharacteristicName, string>> = Object.fromEntries(
  Object.entries(CHARACTERISTIC).map(([name, uuid]) => [name, compactUuid(uuid)]),
) as Record<CharacteristicName, string>;

/** Longest wait for Disconnection Complete after asking to disconnect. */
const DISCONNECT_WAIT_MS = 2_000;

const FIX_CAPS =
  'noble needs CAP_NET_RAW/CAP_NET_ADMIN: `sudo setcap cap_net_raw,cap_net_admin+eip $(readlink -f $(which node))`';
const FIX_ADAPTER = 'is the adapter up? `bluetoothctl power on` / `sudo hciconfig hci0 up`';

/** Turns what noble throws or reports when the adapter is unusable into ERR_GW_BLE_UNAVAILABLE with fix-it text. */
export function bleUnavailable(cause: unknown, state?: string): GatewayError {
  const code = (cause as { code?: unknown } | undefined)?.code;
  let message: string;
  if (code === 'EAFNOSUPPORT') {
    message =
      'this machine has no Bluetooth HCI support (socket: EAFNOSUPPORT); use a Linux machine with a BLE adapter, ' +
      'or drive a simulated lock over the virtual radio with --radio <socket>';
  } else if (code === 'EPERM' || code === 'EACCES' || state === 'unauthorized') {
    message = `no permission to use the Bluetooth adapter: ${FIX_CAPS}`;
  } else if (code === 'ENODEV' || state === 'poweredOff') {
    message = `the Bluetooth adapter is missing or powered off: ${FIX_ADAPTER}`;
  } else if (state === 'unsupported') {
    message = 'the Bluetooth adapter does not support Bluetooth Low Energy (needs Bluetooth 4.0 or later)';
  } else {
    message = `Bluetooth is not usable (${state ?? (cause instanceof Error ? cause.message : String(cause))}); ${FIX_ADAPTER}; ${FIX_CAPS}`;
  }
  return new GatewayError('ERR_GW_BLE_UNAVAILABLE', message, { cause });
}

function loadNoble(binding: NobleBinding): NobleLike {
  if (binding.kind === 'instance') return binding.noble;
  if (binding.kind === 'virtual') return createNoble({ deviceId: binding.deviceId }) as unknown as NobleLike;
  const require = createRequire(import.meta.url);
  try {
    const withCustomBinding = require('@abandonware/noble/with-custom-binding') as (o: {
      deviceId: number;
    }) => NobleLike;
    return withCustomBinding({ deviceId: binding.deviceId ?? 0 });
  } catch (cause) {
    throw bleUnavailable(cause);
  }
}

/** A {@link LockTransport} on noble. One scan or connection attempt at a time. */
export class NobleTransport implements LockTransport {
  private readonly binding: NobleBinding;
  private readonly timers: Timers;
  private readonly powerOnTimeoutMs: number;
  private noble: NobleLike | undefined;
  private stopPoll: (() => void) | undefined;
  private cancelPowerOn: (() => void) | undefined;
  private readonly links = new Set<NobleLink>();
  /** Peripherals seen by {@link scan}, by id, for {@link connect}. */
  private readonly seen = new Map<string, NoblePeripheralLike>();
  /** GATT database version each seen peripheral advertised ([TANDEM-GATT-16]). */
  private readonly databaseVersions = new Map<string, number>();
  private readonly gattCache: GattCache | null;
  private closed = false;

  constructor(options: NobleTransportOptions) {
    this.binding = options.binding;
    this.timers = options.timers ?? SYSTEM_TIMERS;
    this.powerOnTimeoutMs = options.powerOnTimeoutMs ?? 5_000;
    this.gattCache = options.gattCache === undefined ? new Map() : options.gattCache;
    // An instance given by the caller is already loaded; close() must release it even if never scanned with.
    if (options.binding.kind === 'instance') {
      this.noble = options.binding.noble;
      this.stopPoll = trackHciPoll(this.noble);
    }
  }

  private async poweredOn(): Promise<NobleLike> {
    if (this.closed) throw new GatewayError('ERR_GW_BLE_UNAVAILABLE', 'the transport is closed');
    if (this.noble === undefined) {
      this.noble = loadNoble(this.binding);
      this.stopPoll = trackHciPoll(this.noble);
    }
    const noble = this.noble;
    if (noble.state === 'poweredOn') return noble;
    // Real time: powering on is the adapter's business, not the modelled radio's (a simulated clock may
    // jump ahead while the HCI start-up commands are still being answered).
    const timers = SYSTEM_TIMERS;
    return new Promise<NobleLike>((resolve, reject) => {
      const timer = timers.setTimeout(() => {
        noble.off('stateChange', onState);
        reject(bleUnavailable(undefined, noble.state));
      }, this.powerOnTimeoutMs);
      // close() ends the wait at once: a command that failed otherwise must not linger for the timeout.
      this.cancelPowerOn = () => {
        timers.clearTimeout(timer);
        noble.off('stateChange', onState);
        reject(new GatewayError('ERR_GW_BLE_UNAVAILABLE', 'the transport is closed'));
      };
      const onState = (state: string): void => {
        if (state === 'poweredOn') {
          timers.clearTimeout(timer);
          noble.off('stateChange', onState);
          resolve(noble);
        } else if (state === 'unauthorized' || state === 'unsupported') {
          timers.clearTimeout(timer);
          noble.off('stateChange', onState);
          reject(bleUnavailable(undefined, state));
        }
      };
      try {
        // The first stateChange listener makes noble open the HCI socket (bindRaw), which throws EPERM or
        // ENODEV synchronously on a machine that cannot use it.
        noble.on('stateChange', onState);
      } catch (cause) {
        timers.clearTimeout(timer);
        reject(bleUnavailable(cause));
      }
    });
  }

  async scan(lockId: string, options: ScanOptions): Promise<FoundLock> {
    const noble = await this.poweredOn();
    const tag = Buffer.from(lockTag(lockId));
    return new Promise<FoundLock>((resolve, reject) => {
      let settled = false;
      const finish = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        this.timers.clearTimeout(timer);
        noble.off('discover', onDiscover);
        noble.stopScanningAsync().then(fn, fn);
      };
      const onDiscover = (p: NoblePeripheralLike): void => {
        // [TANDEM-GATT-3]: the tag in the scan response's service data names the lock without connecting.
        const entry = p.advertisement.serviceData?.find((s) => s.uuid === SERVICE);
        if (entry === undefined) return;
        let parsed: ReturnType<typeof parseServiceData>;
        try {
          parsed = parseServiceData(new Uint8Array(entry.data));
        } catch {
          return;
        }
        if (!tag.equals(Buffer.from(parsed.tag))) return;
        debug('%s: tag seen from %s', lockId, p.address);
        this.seen.set(p.id, p);
        this.databaseVersions.set(p.id, parsed.databaseVersion);
        finish(() => resolve({ lockId, id: p.id, address: p.address, rssi: p.rssi, flags: parsed.flags }));
      };
      const timer = this.timers.setTimeout(
        () =>
          finish(() =>
            reject(
              new GatewayError(
                'ERR_GW_LOCK_NOT_FOUND',
                `no lock advertising the tag of ${lockId} within ${options.timeoutMs} ms; is it in range and powered?`,
                { temporary: true },
              ),
            ),
          ),
        options.timeoutMs,
      );
      noble.on('discover', onDiscover);
      noble
        .startScanningAsync([SERVICE], false)
        .catch((cause: unknown) => finish(() => reject(bleUnavailable(cause))));
    });
  }

  async connect(lock: FoundLock, options: ConnectOptions): Promise<LockLink> {
    const noble = await this.poweredOn();
    const peripheral = this.seen.get(lock.id);
    if (peripheral === undefined) {
      throw new GatewayError(
        'ERR_GW_DISCONNECTED',
        `${lock.lockId} is no longer known to the adapter; scan again`,
        {
          temporary: true,
        },
      );
    }
    return new Promise<LockLink>((resolve, reject) => {
      let settled = false;
      const fail = (error: GatewayError): void => {
        if (settled) return;
        settled = true;
        this.timers.clearTimeout(timer);
        peripheral.off('disconnect', onDrop);
        if (peripheral.state === 'connecting') peripheral.cancelConnect();
        else if (peripheral.state === 'connected') void peripheral.disconnectAsync().catch(() => undefined);
        reject(error);
      };
      const onDrop = (): void =>
        fail(
          new GatewayError('ERR_GW_DISCONNECTED', `${lock.lockId} dropped the link while connecting`, {
            temporary: true,
          }),
        );
      const timer = this.timers.setTimeout(
        () =>
          fail(
            new GatewayError(
              'ERR_GW_TIMEOUT',
              `connecting to ${lock.lockId} took longer than ${options.timeoutMs} ms`,
              {
                temporary: true,
              },
            ),
          ),
        options.timeoutMs,
      );
      peripheral.once('disconnect', onDrop);
      // [TANDEM-GATT-16]: a lock seen before under the same GATT database version needs no discovery.
      const version = this.databaseVersions.get(lock.id) ?? 0;
      const cacheKey = `${lock.lockId}/${peripheral.address}/v${version}`;
      const cached = version > 0 ? this.gattCache?.get(cacheKey) : undefined;
      const mtuKnown = cached !== undefined ? mtuExchanged(noble, peripheral.id) : undefined;
      (async () => {
        await peripheral.connectAsync();
        if (cached !== undefined) {
          await mtuKnown;
          debug('%s: GATT database v%d cached, no discovery', lock.lockId, version);
          return null;
        }
        const { characteristics } = await peripheral.discoverSomeServicesAndCharacteristicsAsync(
          [SERVICE],
          Object.values(UUID_OF),
        );
        return characteristics;
      })().then(
        (characteristics) => {
          if (settled) return;
          if (characteristics === null) {
            settled = true;
            this.timers.clearTimeout(timer);
            peripheral.off('disconnect', onDrop);
            const gatt = new HandleGatt(peripheral, cached!, this.timers, () =>
              this.gattCache?.delete(cacheKey),
            );
            const link = new NobleLink(peripheral, gatt, () => this.links.delete(link), this.timers);
            this.links.add(link);
            resolve(link);
            return;
          }
          const byUuid = new Map(characteristics.map((c) => [c.uuid, c]));
          const missing = Object.entries(UUID_OF).filter(([, u]) => !byUuid.has(u));
          if (missing.length > 0) {
            fail(
              new GatewayError(
                'ERR_GW_PROTOCOL',
                `${lock.lockId} lacks the characteristics ${missing.map(([n]) => n).join(', ')} of the Tandem service (SPEC §8.1)`,
              ),
            );
            return;
          }
          settled = true;
          this.timers.clearTimeout(timer);
          peripheral.off('disconnect', onDrop);
          // With every handle known (each CCCD right after its value), subscribing is one Write Request
          // now too; noble's own subscribe would first look the CCCD up with Read By Type.
          const handles = handlesOf(noble, peripheral.id);
          if (handles !== undefined && version > 0) this.gattCache?.set(cacheKey, handles);
          const gatt =
            handles !== undefined
              ? new HandleGatt(peripheral, handles, this.timers, () => this.gattCache?.delete(cacheKey))
              : new DiscoveredGatt(byUuid);
          const link = new NobleLink(peripheral, gatt, () => this.links.delete(link), this.timers);
          this.links.add(link);
          resolve(link);
        },
        (cause: unknown) =>
          fail(
            new GatewayError(
              'ERR_GW_DISCONNECTED',
              `connecting to ${lock.lockId} failed: ${(cause as Error).message}`,
              {
                cause,
                temporary: true,
              },
            ),
          ),
      );
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cancelPowerOn?.();
    await Promise.all([...this.links].map((l) => l.disconnect()));
    const noble = this.noble;
    if (noble !== undefined) {
      // Only a powered-on adapter answers: asking one that never came up (a radio device id another process
      // drives, an adapter that is off) waited for ever, so the command ignored its timeout (issue 11 §4).
      if (noble.state === 'poweredOn') {
        await new Promise<void>((resolve) => {
          const timer = SYSTEM_TIMERS.setTimeout(resolve, DISCONNECT_WAIT_MS);
          noble
            .stopScanningAsync()
            .catch(() => undefined)
            .finally(() => {
              SYSTEM_TIMERS.clearTimeout(timer);
              resolve();
            });
        });
      }
      noble.removeAllListeners('discover');
      this.stopPoll?.();
    }
  }
}

/** How a link reaches the Tandem characteristics: through noble's discovered objects, or cached handles. */
interface GattAccess {
  subscribe(name: CharacteristicName, onValue: (value: Uint8Array) => void): Promise<void>;
  write(name: CharacteristicName, value: Buffer, withoutResponse: boolean): Promise<void>;
  read(name: CharacteristicName): Promise<Buffer>;
  /** The link is gone: stop listening. */
  release(): void;
}

const asBytes = (data: Buffer): Uint8Array => new Uint8Array(data.buffer, data.byteOffset, data.byteLength);

/** Characteristics noble discovered on this connection. */
class DiscoveredGatt implements GattAccess {
  private readonly subscribed = new Map<string, (data: Buffer, isNotification: boolean) => void>();

  constructor(private readonly characteristics: ReadonlyMap<string, NobleCharacteristicLike>) {}

  private characteristic(name: CharacteristicName): NobleCharacteristicLike {
    return this.characteristics.get(UUID_OF[name])!;
  }

  async subscribe(name: CharacteristicName, onValue: (value: Uint8Array) => void): Promise<void> {
    const c = this.characteristic(name);
    const listener = (data: Buffer, isNotification: boolean): void => {
      if (isNotification) onValue(asBytes(data));
    };
    c.on('data', listener);
    this.subscribed.set(c.uuid, listener);
    await c.subscribeAsync();
  }

  write(name: CharacteristicName, value: Buffer, withoutResponse: boolean): Promise<void> {
    return this.characteristic(name).writeAsync(value, withoutResponse);
  }

  read(name: CharacteristicName): Promise<Buffer> {
    return this.characteristic(name).readAsync();
  }

  release(): void {
    for (const [uuid, listener] of this.subscribed) this.characteristics.get(uuid)?.off('data', listener);
    this.subscribed.clear();
  }
}

/**
 * The characteristics by handle, known from this connection's discovery or cached from an earlier one
 * ([TANDEM-GATT-16]): a subscription is one Write Request to the CCCD (no Read By Type to find it),
 * notifications arrive by value handle. A handle that gets no answer makes the cache stale: it is dropped,
 * and the next connection discovers again.
 */
class HandleGatt implements GattAccess {
  private readonly listeners = new Map<number, (value: Uint8Array) => void>();
  private readonly onNotify = (handle: number, data: Buffer): void =>
    this.listeners.get(handle)?.(asBytes(data));

  constructor(
    private readonly peripheral: NoblePeripheralLike,
    private readonly handles: CachedGattDatabase,
    private readonly timers: Timers,
    private readonly dropCache: () => void,
  ) {
    peripheral.on('handleNotify', this.onNotify);
  }

  /** noble never settles a handle write or read that got an ATT Error Response: bound the wait. */
  private answered<T>(what: string, op: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        this.dropCache();
        reject(
          new GatewayError(
            'ERR_GW_PROTOCOL',
            `the lock did not answer ${what} by cached handle within ${CACHED_ANSWER_MS} ms; its GATT database changed without a new version, discovering at the next connection`,
            { temporary: true },
          ),
        );
      }, CACHED_ANSWER_MS);
      op.then(
        (v) => {
          this.timers.clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          this.timers.clearTimeout(timer);
          this.dropCache();
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  }

  async subscribe(name: CharacteristicName, onValue: (value: Uint8Array) => void): Promise<void> {
    const h = this.handles[name];
    if (h.cccdHandle === undefined) {
      throw new GatewayError('ERR_GW_PROTOCOL', `${name} does not notify (SPEC §8.1)`);
    }
    this.listeners.set(h.valueHandle, onValue);
    // Notifications on (Core Vol 3 Part G 3.3.3.3): 0x0001, little-endian.
    await this.answered(
      `the ${name} CCCD write`,
      this.peripheral.writeHandleAsync(h.cccdHandle, Buffer.from([0x01, 0x00]), false),
    );
  }

  write(name: CharacteristicName, value: Buffer, withoutResponse: boolean): Promise<void> {
    const op = this.peripheral.writeHandleAsync(this.handles[name].valueHandle, value, withoutResponse);
    return withoutResponse ? op : this.answered(`a write of ${name}`, op);
  }

  read(name: CharacteristicName): Promise<Buffer> {
    return this.answered(
      `a read of ${name}`,
      this.peripheral.readHandleAsync(this.handles[name].valueHandle),
    );
  }

  release(): void {
    this.peripheral.off('handleNotify', this.onNotify);
    this.listeners.clear();
  }
}

class NobleLink implements LockLink {
  private dropped: string | undefined;
  private readonly listeners: Array<(reason: string) => void> = [];

  constructor(
    private readonly peripheral: NoblePeripheralLike,
    private readonly gatt: GattAccess,
    private readonly onClosed: () => void,
    private readonly timers: Timers,
  ) {
    peripheral.once('disconnect', (reason?: number) => {
      // HCI reasons (Core Vol 1 Part F): 0x08 supervision timeout, 0x13 remote user, 0x16 local host.
      this.dropped =
        reason === undefined ? 'disconnected' : `HCI reason 0x${reason.toString(16).padStart(2, '0')}`;
      debug('%s: disconnected (%s)', peripheral.address, this.dropped);
      this.gatt.release();
      this.onClosed();
      for (const l of this.listeners.splice(0)) l(this.dropped);
    });
  }

  get mtu(): number {
    return this.peripheral.mtu ?? 23;
  }

  get connected(): boolean {
    return this.dropped === undefined;
  }

  subscribe(name: CharacteristicName, onValue: (value: Uint8Array) => void): Promise<void> {
    return this.gatt.subscribe(name, onValue);
  }

  write(name: CharacteristicName, value: Uint8Array, withoutResponse: boolean): Promise<void> {
    return this.gatt.write(
      name,
      Buffer.from(value.buffer, value.byteOffset, value.byteLength),
      withoutResponse,
    );
  }

  async read(name: CharacteristicName): Promise<Uint8Array> {
    return asBytes(await this.gatt.read(name));
  }

  onDisconnect(listener: (reason: string) => void): void {
    if (this.dropped !== undefined) listener(this.dropped);
    else this.listeners.push(listener);
  }

  async disconnect(): Promise<void> {
    if (this.dropped !== undefined) return;
    // Bounded: a controller that lost the peer reports Disconnection Complete only after the supervision
    // timeout; the caller need not wait for it.
    await new Promise<void>((resolve) => {
      const timer = this.timers.setTimeout(resolve, DISCONNECT_WAIT_MS);
      this.onDisconnect(() => {
        this.timers.clearTimeout(timer);
        resolve();
      });
      this.peripheral.disconnectAsync().catch(() => undefined);
    });
  }
}
