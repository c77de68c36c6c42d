/**
 * The lock's GATT service on `@abandonware/bleno` (SPEC §8; the flow of SPEC §8.7): advertising
 * with the lock tag, the six characteristics, one {@link GattSession} per connected central, and a supervisor
 * that contains bleno's own crashes.
 *
 * bleno is loaded inside {@link BlenoLockPeripheral.start}, never at import: requiring it opens an HCI socket
 * (on this kind of machine without Bluetooth that throws EAFNOSUPPORT; on the Pi it needs CAP_NET_RAW and
 * CAP_NET_ADMIN). Tests and the simulator inject a loader that installs the virtual radio first.
 *
 * What the supervisor can and cannot recover in-process:
 * - A synchronous exception anywhere in bleno's handling of incoming HCI data (its HCI event and ACL parsing,
 *   L2CAP, SMP, ATT, and our characteristic handlers, all run from the HCI socket's `data` listener) is
 *   caught by the crash guard, logged, reported as a `crash` event, and followed by {@link restart}: the
 *   central is disconnected (bleno discards its per-connection ACL, SMP and prepared-write state on
 *   disconnect), the services are set again and advertising restarts. The lock runtime is not touched: a
 *   crash can at most cost the rider on that connection a result.
 * - It cannot rebuild bleno itself: bleno is a process-wide singleton whose HCI socket is opened once, with
 *   no close. An adapter that turns unauthorized or unsupported, or more than `maxRestarts` restarts within
 *   `restartWindowMs`, end in the `fatal` event and state `failed` (central dropped, advertising stopped).
 *   The process owner then exits non-zero; on the Pi, systemd restarts the process and the lock comes back
 *   locked (the solenoid line is released low on exit, ARCHITECTURE.md "Hardware facts"). An adapter that
 *   goes down (poweredOff) is waited for: bleno polls it and the service is set again when it is back.
 * - A throw from bleno's own timers (outside the data path) is not caught here: it ends the process, with
 *   the same systemd outcome.
 */
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import createDebug from 'debug';
import type { Clock, TimerHandle } from '../../../hardware/src/clock.js';
import { SystemClock } from '../../../hardware/src/clock.js';
import type { AdvertisedFlags, CharacteristicName } from '../../../protocol/src/gatt.js';
import {
  CHARACTERISTIC,
  CHARACTERISTIC_PROPERTIES,
  GATT_SERVICE_UUID,
  advertisingData,
  compactUuid,
  scanResponseData,
} from '../../../protocol/src/gatt.js';
import type {
  BlenoApi,
  BlenoCharacteristicOptions,
  BlenoInternals,
  BlenoLoader,
  BlenoProperty,
} from './bleno-types.js';
import { BleError, FIX_BUSY, bleErrorForState, bleErrorFrom } from './errors.js';
import { ConnectionParameterRequester, DEFAULT_CONNECTION_PARAMETERS } from './connection-parameters.js';
import type {
  BlenoHci,
  ConnectionParameterRequest,
  ParameterOutcome,
  ParameterStats,
} from './connection-parameters.js';
import type {
  DropReason,
  GattSessionLimits,
  GattSessionStats,
  NotifyingCharacteristic,
  ReadableCharacteristic,
  WritableCharacteristic,
} from './gatt-session.js';
import { GattSession } from './gatt-session.js';
import type { LockGattBackend } from './lock-gatt-backend.js';

const debug = createDebug('tandem:lock:ble');

/** The default loader: the real bleno on the host's HCI device, with fix-it text when it cannot open it. */
export const loadSystemBleno: BlenoLoader = () => {
  try {
    // In the lock's bundle (scripts/bundle.mjs) `require` is the bundler's, which inlines bleno's JavaScript
    // (its native HCI socket stays a require from node_modules): one file to load at start instead of
    // bleno's 15 modules and a second copy of `debug`. Unbundled ES modules have no `require`.
    return (
      typeof require === 'function'
        ? // eslint-disable-next-line @typescript-eslint/no-require-imports -- see above: the bundler inlines it
          require('@abandonware/bleno')
        : createRequire(import.meta.url)('@abandonware/bleno')
    ) as BlenoApi;
  } catch (err) {
    throw bleErrorFrom(err, 'loading @abandonware/bleno');
  }
};

/** Options of a {@link BlenoLockPeripheral}. */
export interface BlenoLockPeripheralOptions {
  /** The lock runtime behind the service. */
  readonly backend: LockGattBackend;
  /** How to obtain bleno (default {@link loadSystemBleno}); the simulator installs the virtual radio first. */
  readonly loadBleno?: BlenoLoader;
  /** Time for session timers, start-up and supervisor windows (default: the process clock, unref'd). */
  readonly clock?: Clock;
  /** Per-connection limits (defaults: DEFAULT_GATT_SESSION_LIMITS). */
  readonly limits?: Partial<GattSessionLimits>;
  /** Longest wait for bleno to power on, set services or start advertising (default 10 s). */
  readonly startTimeoutMs?: number;
  /** Restarts tolerated within `restartWindowMs` before giving up (default 5 in 60 s). */
  readonly maxRestarts?: number;
  readonly restartWindowMs?: number;
  /**
   * GAP Device Name (0x2A00) bleno serves (default "Tandem"). bleno reads it from BLENO_DEVICE_NAME when the
   * services are set and otherwise serves the host name, which would tell every passer-by the Pi's name.
   */
  readonly deviceName?: string;
  /**
   * The connection parameters the lock asks every central for right after it connects ([TANDEM-GATT-18]:
   * an L2CAP Connection Parameter Update Request), default {@link DEFAULT_CONNECTION_PARAMETERS} (15-30 ms);
   * `false` asks for nothing. A request Apple's rules would reject is refused here with ERR_BLE_CONFIG.
   */
  readonly connectionParameters?: ConnectionParameterRequest | false;
}

/** Lifecycle of the peripheral. */
export type PeripheralState = 'stopped' | 'starting' | 'running' | 'restarting' | 'failed';

/** Events of a {@link BlenoLockPeripheral}. */
export interface BlenoLockPeripheralEvents {
  /** A central connected; `peer` names the connection for the backend. */
  connect: [peer: string];
  /** The connection ended: `reason` is `disconnect` (by the central or the link), a DropReason, or `restart`. */
  disconnect: [peer: string, reason: string];
  /** bleno (or a handler) threw while handling incoming data; a restart follows. */
  crash: [error: unknown];
  /** The supervisor restarts the service. */
  restart: [reason: string];
  /** The peripheral gave up; the process should exit so that systemd restarts it. */
  fatal: [error: BleError];
  /**
   * The central answered the connection parameter request, or the connection's interval changed
   * (`intervalMs`, from LE Connection Update Complete).
   */
  parameters: [peer: string, outcome: ParameterOutcome, intervalMs: number | undefined];
}

/** A snapshot of the current connection. */
export interface ConnectionSnapshot {
  readonly peer: string;
  readonly mtu: number;
  readonly stats: GattSessionStats;
}

/** Counters over the peripheral's life. */
export interface PeripheralStats {
  readonly connections: number;
  readonly drops: Readonly<Record<DropReason, number>>;
  readonly crashes: number;
  readonly restarts: number;
  /** The connection parameter requests ([TANDEM-GATT-18]) and what came of them. */
  readonly parameters: ParameterStats;
}

const GUARDED = Symbol.for('tandem.lock.ble.crashGuard');
const GUARD_SINK = Symbol.for('tandem.lock.ble.crashSink');

type Listener = (...args: unknown[]) => void;
type GuardedListener = Listener & { [GUARDED]?: true };
type GuardedSocket = EventEmitter & { [GUARD_SINK]?: (err: unknown) => void };

const WRITABLE: Partial<Record<CharacteristicName, WritableCharacteristic>> = {
  request: 'request',
  delivery: 'delivery',
  relay: 'relay',
};
const NOTIFYING: Partial<Record<CharacteristicName, NotifyingCharacteristic>> = {
  challenge: 'challenge',
  result: 'result',
  relay: 'relay',
};
const READABLE: Partial<Record<CharacteristicName, ReadableCharacteristic>> = {
  challenge: 'challenge',
  lockInfo: 'lockInfo',
  relay: 'relay',
};

/** How many finished connections' counters are kept for {@link BlenoLockPeripheral.connectionStats}. */
const KEPT_SESSIONS = 8;

/**
 * The lock's BLE peripheral: serves the Tandem GATT service through bleno, one central at a time (bleno's
 * limit), with all protocol state per connection and reset on every accept and disconnect.
 */
export class BlenoLockPeripheral extends EventEmitter<BlenoLockPeripheralEvents> {
  private readonly backend: LockGattBackend;
  private readonly loader: BlenoLoader;
  private readonly clock: Clock;
  private readonly limits: Partial<GattSessionLimits> | undefined;
  private readonly startTimeoutMs: number;
  private readonly maxRestarts: number;
  private readonly restartWindowMs: number;
  private readonly deviceName: string;
  private bleno: BlenoApi | undefined;
  private stateValue: PeripheralState = 'stopped';
  private session: GattSession | undefined;
  private sessionReason: string | undefined;
  private connectionSeq = 0;
  private readonly finished = new Map<string, GattSessionStats>();
  private readonly restartTimes: number[] = [];
  private restarting: Promise<void> | undefined;
  private advertisingDirty = false;
  private readonly blenoListeners: [string, Listener][] = [];
  private readonly parameterRequester: ConnectionParameterRequester | undefined;
  private readonly counters = {
    connections: 0,
    drops: { flood: 0, refusals: 0, operations: 0, idle: 0, 'max-duration': 0 } as Record<DropReason, number>,
    crashes: 0,
    restarts: 0,
  };

  constructor(options: BlenoLockPeripheralOptions) {
    super();
    this.backend = options.backend;
    this.loader = options.loadBleno ?? loadSystemBleno;
    this.clock = options.clock ?? new SystemClock({ unref: true });
    this.limits = options.limits;
    this.startTimeoutMs = options.startTimeoutMs ?? 10_000;
    this.maxRestarts = options.maxRestarts ?? 5;
    this.restartWindowMs = options.restartWindowMs ?? 60_000;
    this.deviceName = options.deviceName ?? 'Tandem';
    const parameters = options.connectionParameters ?? DEFAULT_CONNECTION_PARAMETERS;
    this.parameterRequester =
      parameters === false
        ? undefined
        : new ConnectionParameterRequester(parameters, ({ outcome, intervalMs }) => {
            const peer = this.session?.peer;
            if (peer !== undefined) this.safeEmit('parameters', peer, outcome, intervalMs);
          });
  }

  /** Where the peripheral is in its life. */
  get state(): PeripheralState {
    return this.stateValue;
  }

  /** The connected central, if any. */
  connection(): ConnectionSnapshot | undefined {
    const s = this.session;
    return s === undefined ? undefined : { peer: s.peer, mtu: s.mtu, stats: s.stats() };
  }

  /** Counters of a current or recently finished connection (the last 8 are kept). */
  connectionStats(peer: string): GattSessionStats | undefined {
    if (this.session?.peer === peer) return this.session.stats();
    return this.finished.get(peer);
  }

  /** Counters over the peripheral's life. */
  stats(): PeripheralStats {
    return {
      ...this.counters,
      drops: { ...this.counters.drops },
      parameters: this.parameterRequester?.stats() ?? {
        requested: 0,
        accepted: 0,
        rejected: 0,
        unsupported: 0,
        updates: 0,
        lastIntervalMs: undefined,
      },
    };
  }

  /**
   * Loads bleno, waits for the adapter, sets the service and starts advertising. Rejects with a
   * {@link BleError} carrying fix-it text when the adapter cannot be used.
   */
  async start(): Promise<void> {
    if (this.stateValue !== 'stopped') {
      throw new BleError('ERR_BLE_START', `cannot start a peripheral that is ${this.stateValue}`);
    }
    this.stateValue = 'starting';
    try {
      const bleno = this.bleno ?? this.loader();
      this.bleno = bleno;
      this.attach(bleno);
      this.installCrashGuard(bleno);
      await this.poweredOn(bleno);
      await this.serve(bleno);
      this.stateValue = 'running';
      debug('serving lock %s', this.backend.lockId);
    } catch (err) {
      this.detach();
      this.stateValue = 'stopped';
      throw bleErrorFrom(err, 'starting the BLE peripheral');
    }
  }

  /** Disconnects the central, stops advertising and lets go of bleno's events. bleno stays loaded. */
  async stop(): Promise<void> {
    const bleno = this.bleno;
    if (this.stateValue === 'stopped' || bleno === undefined) return;
    this.stateValue = 'stopped';
    const connected = this.session !== undefined;
    this.endSession('stop');
    try {
      if (connected) bleno.disconnect();
      await this.waitFor(
        bleno,
        'advertisingStop',
        undefined,
        () => bleno.stopAdvertising(),
        'stopping advertising',
      );
    } catch (err) {
      debug('stop: %s', err instanceof Error ? err.message : err);
    } finally {
      this.detach();
    }
  }

  /**
   * Restarts the service in-process (see the module comment for what this recovers): disconnects the
   * central, sets the services again and restarts advertising. Concurrent calls share one restart. More
   * than `maxRestarts` within `restartWindowMs` make the peripheral give up (`fatal`).
   */
  restart(reason: string): Promise<void> {
    if (this.restarting !== undefined) return this.restarting;
    const bleno = this.bleno;
    // While starting, start() itself reports failures; stopped and failed peripherals serve nobody.
    if (bleno === undefined || (this.stateValue !== 'running' && this.stateValue !== 'restarting')) {
      return Promise.resolve();
    }
    const now = this.clock.now();
    this.restartTimes.push(now);
    while (this.restartTimes.length > 0 && now - this.restartTimes[0]! > this.restartWindowMs) {
      this.restartTimes.shift();
    }
    if (this.restartTimes.length > this.maxRestarts) {
      this.fail(
        new BleError(
          'ERR_BLE_FATAL',
          `gave up after ${this.restartTimes.length} restarts within ${this.restartWindowMs} ms ` +
            `(last: ${reason}); restart the process`,
        ),
      );
      return Promise.resolve();
    }
    this.counters.restarts += 1;
    this.stateValue = 'restarting';
    debug('restarting: %s', reason);
    this.safeEmit('restart', reason);
    const run = async (): Promise<void> => {
      const connected = this.session !== undefined;
      this.endSession('restart');
      if (connected) {
        await this.waitFor(bleno, 'disconnect', undefined, () => bleno.disconnect(), 'disconnecting').catch(
          (err: unknown) => debug('restart: %s', err instanceof Error ? err.message : err),
        );
      }
      if (bleno.state !== 'poweredOn') return; // resumed by the next stateChange to poweredOn
      await this.serve(bleno);
      if (this.stateValue === 'restarting') this.stateValue = 'running';
    };
    const done = run()
      .catch((err: unknown) => this.fail(bleErrorFrom(err, `restarting (${reason})`)))
      .finally(() => {
        this.restarting = undefined;
      });
    this.restarting = done;
    return done;
  }

  /**
   * Advertises the backend's current flags ([TANDEM-GATT-3]: relay pending, alarm). While a central is
   * connected the lock does not advertise; the new flags go out when advertising resumes.
   */
  async refreshAdvertising(): Promise<void> {
    const bleno = this.bleno;
    if (bleno === undefined || this.stateValue !== 'running') return;
    if (this.session !== undefined) {
      this.advertisingDirty = true;
      return;
    }
    await this.advertise(bleno);
  }

  // -------------------------------------------------------------------------------------------------------
  // bleno events and the service.

  private listen(bleno: BlenoApi, event: string, listener: Listener): void {
    const guarded: Listener = (...args) => {
      try {
        listener(...args);
      } catch (err) {
        this.onStackCrash(err);
      }
    };
    this.blenoListeners.push([event, guarded]);
    bleno.on(event, guarded);
  }

  private attach(bleno: BlenoApi): void {
    this.listen(bleno, 'accept', (address) => this.onAccept(String(address)));
    this.listen(bleno, 'disconnect', (address) => this.onDisconnect(String(address)));
    this.listen(bleno, 'mtuChange', (mtu) => this.session?.setMtu(Number(mtu)));
    try {
      // The first stateChange listener makes bleno open and bind its HCI socket (bleno.js, `newListener`):
      // the OS-level failures (EPERM, ENODEV, EBUSY) are thrown from here.
      this.listen(bleno, 'stateChange', (state) => this.onStateChange(String(state)));
    } catch (err) {
      throw bleErrorFrom(err, 'opening the HCI device');
    }
  }

  private detach(): void {
    const bleno = this.bleno;
    if (bleno === undefined) return;
    for (const [event, listener] of this.blenoListeners.splice(0)) bleno.removeListener(event, listener);
    const socket = (bleno as BlenoInternals)._bindings?._hci?._socket as GuardedSocket | undefined;
    if (socket !== undefined) delete socket[GUARD_SINK];
  }

  /**
   * Wraps the listeners of bleno's HCI socket so that an exception thrown while bleno parses what a peer sent
   * (bleno 0.6.2 crashes, for instance, on an SMP Pairing Random before any Pairing Confirm, and on ATT
   * requests shorter than their fixed fields) is caught instead of unwinding into the socket and killing the
   * process. Idempotent; returns false when bleno's internals are not where 0.6.2 keeps them.
   */
  private installCrashGuard(bleno: BlenoApi): boolean {
    const socket = (bleno as BlenoInternals)._bindings?._hci?._socket as GuardedSocket | undefined;
    if (socket === undefined || typeof socket.rawListeners !== 'function') {
      debug('crash guard not installed: bleno internals not found (bleno version?)');
      return false;
    }
    socket[GUARD_SINK] = (err) => this.onStackCrash(err);
    for (const raw of socket.rawListeners('data') as GuardedListener[]) {
      if (raw[GUARDED] === true) continue;
      const guarded: GuardedListener = function (this: unknown, ...args: unknown[]) {
        try {
          raw.apply(socket, args);
        } catch (err) {
          const sink = socket[GUARD_SINK];
          if (sink !== undefined) sink(err);
          else debug('bleno threw with no peripheral attached: %s', err instanceof Error ? err.stack : err);
        }
      };
      guarded[GUARDED] = true;
      socket.removeListener('data', raw);
      socket.on('data', guarded);
    }
    return true;
  }

  private onStackCrash(err: unknown): void {
    this.counters.crashes += 1;
    debug('caught a crash in the BLE stack: %s', err instanceof Error ? err.stack : err);
    this.safeEmit('crash', err);
    void this.restart(`BLE stack crash: ${err instanceof Error ? err.message : String(err)}`);
  }

  private safeEmit<K extends keyof BlenoLockPeripheralEvents>(
    event: K,
    ...args: BlenoLockPeripheralEvents[K]
  ): void {
    try {
      (this.emit as (e: K, ...a: BlenoLockPeripheralEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      debug('a %s listener threw: %s', event, err instanceof Error ? err.stack : err);
    }
  }

  private fail(err: BleError): void {
    if (this.stateValue === 'failed') return;
    debug('giving up: %s', err.message);
    this.stateValue = 'failed';
    const connected = this.session !== undefined;
    this.endSession('failed');
    // Nobody is served by a peripheral that gave up: drop the link and go quiet until the process restarts.
    try {
      if (connected) this.bleno?.disconnect();
      this.bleno?.stopAdvertising();
    } catch (cause) {
      debug('quieting bleno: %s', cause instanceof Error ? cause.message : cause);
    }
    if (this.listenerCount('fatal') === 0) debug('no fatal listener: the process owner will not hear of it');
    this.safeEmit('fatal', err);
  }

  private onStateChange(state: string): void {
    debug('adapter %s', state);
    if (this.stateValue !== 'running' && this.stateValue !== 'restarting') return;
    if (state === 'poweredOn') {
      void this.restart('adapter powered on again');
    } else if (state === 'unauthorized' || state === 'unsupported') {
      this.fail(bleErrorForState(state));
    } else {
      // poweredOff / resetting: bleno polls the device and reports poweredOn when it is back.
      this.endSession('adapter down');
    }
  }

  private onAccept(address: string): void {
    if (this.stateValue !== 'running') {
      // Accepted during a restart or after stop: nothing is served until the service is set again.
      this.bleno?.disconnect();
      return;
    }
    this.endSession('replaced');
    this.connectionSeq += 1;
    this.counters.connections += 1;
    const peer = `${address}#${this.connectionSeq}`;
    const session = new GattSession({
      peer,
      backend: this.backend,
      clock: this.clock,
      ...(this.limits === undefined ? {} : { limits: this.limits }),
      onDrop: (reason) => {
        this.counters.drops[reason] += 1;
        this.sessionReason = reason;
        // The link goes; the session is already closed, so nothing more reaches the runtime.
        this.bleno?.disconnect();
      },
    });
    this.session = session;
    this.sessionReason = undefined;
    debug('%s connected', peer);
    this.safeEmit('connect', peer);
    this.requestConnectionParameters();
  }

  /**
   * [TANDEM-GATT-18]: ask the new central for the lock's connection parameters, at once, so that the
   * shorter interval is in force for as much of the tap as it can be (an update takes effect at an instant
   * at least 6 connection events ahead, Vol 6 Part B 5.1.1: ~8 events at the phone's first interval with the
   * request and its answer; asked after discovery, it would come after a repeat unlock's result). The
   * answer is never waited for; bleno internals that are not where 0.6.2 keeps them skip the request.
   */
  private requestConnectionParameters(): void {
    const requester = this.parameterRequester;
    const bindings = (this.bleno as BlenoInternals | undefined)?._bindings;
    const hci = bindings?._hci as Partial<BlenoHci> | undefined;
    const handle = bindings?._handle;
    if (requester === undefined || typeof handle !== 'number') return;
    if (typeof hci?.queueAclDataPkt !== 'function' || typeof hci.on !== 'function') {
      debug('connection parameters not requested: bleno internals not found (bleno version?)');
      return;
    }
    requester.attach(hci as BlenoHci);
    requester.request(handle);
  }

  private onDisconnect(address: string): void {
    const session = this.session;
    if (session === undefined || !session.peer.startsWith(`${address}#`)) return;
    this.endSession(this.sessionReason ?? 'disconnect');
    const bleno = this.bleno;
    if (this.advertisingDirty && bleno !== undefined && this.stateValue === 'running') {
      // bleno re-enables advertising with the old data right after this event; replace it after that.
      setImmediate(() => {
        if (this.session === undefined && this.stateValue === 'running') {
          this.advertise(bleno).catch((err: unknown) =>
            debug('re-advertising: %s', err instanceof Error ? err.message : err),
          );
        }
      });
    }
  }

  private endSession(reason: string): void {
    const session = this.session;
    if (session === undefined) return;
    this.session = undefined;
    this.parameterRequester?.forget();
    session.close();
    this.finished.set(session.peer, session.stats());
    if (this.finished.size > KEPT_SESSIONS) this.finished.delete(this.finished.keys().next().value!);
    debug('%s gone (%s)', session.peer, reason);
    this.safeEmit('disconnect', session.peer, reason);
  }

  private async poweredOn(bleno: BlenoApi): Promise<void> {
    if (bleno.state === 'poweredOn') return;
    if (bleno.state === 'unauthorized' || bleno.state === 'unsupported') throw bleErrorForState(bleno.state);
    await new Promise<void>((resolve, reject) => {
      let timer: TimerHandle | undefined = undefined;
      const onState = (state: string): void => {
        if (state === 'poweredOn') finish();
        else if (state === 'unauthorized' || state === 'unsupported') finish(bleErrorForState(state));
      };
      const finish = (err?: Error): void => {
        bleno.removeListener('stateChange', onState);
        if (timer !== undefined) this.clock.clearTimeout(timer);
        if (err === undefined) resolve();
        else reject(err);
      };
      timer = this.clock.setTimeout(
        () => finish(bleErrorForState(bleno.state === 'unknown' ? 'not powered on in time' : bleno.state)),
        this.startTimeoutMs,
      );
      try {
        // Adding the first stateChange listener opens bleno's HCI socket: OS errors are thrown here.
        bleno.on('stateChange', onState);
      } catch (err) {
        finish(bleErrorFrom(err, 'opening the HCI device'));
      }
    });
  }

  /** Sets the service and (re)starts advertising. */
  private async serve(bleno: BlenoApi): Promise<void> {
    process.env.BLENO_DEVICE_NAME = this.deviceName;
    const service = new bleno.PrimaryService({
      uuid: compactUuid(GATT_SERVICE_UUID),
      characteristics: (Object.keys(CHARACTERISTIC) as CharacteristicName[]).map((name) =>
        this.characteristic(bleno, name),
      ),
    });
    await this.waitFor(
      bleno,
      'servicesSet',
      'servicesSetError',
      () => bleno.setServices([service]),
      'setting services',
    );
    await this.advertise(bleno);
  }

  private async advertise(bleno: BlenoApi): Promise<void> {
    let flags: AdvertisedFlags = { relayPending: false, alarm: false };
    try {
      flags = this.backend.advertisedFlags();
    } catch (err) {
      debug('advertisedFlags threw: %s', err instanceof Error ? err.message : err);
    }
    this.advertisingDirty = false;
    const adv = Buffer.from(advertisingData());
    const scan = Buffer.from(scanResponseData(this.backend.lockId, flags));
    // Stop first so that the controller takes the new data in a clean enable (Core Vol 4 Part E §7.8.9).
    await this.waitFor(
      bleno,
      'advertisingStop',
      undefined,
      () => bleno.stopAdvertising(),
      'stopping advertising',
    );
    try {
      await this.waitFor(
        bleno,
        'advertisingStart',
        'advertisingStartError',
        () => bleno.startAdvertisingWithEIRData(adv, scan),
        'starting advertising',
      );
    } catch (err) {
      // bleno reports the HCI status text; Command Disallowed is what a controller held by BlueZ answers.
      if (err instanceof Error && /disallowed/i.test(err.message)) {
        throw new BleError('ERR_BLE_ADAPTER_BUSY', `starting advertising: ${err.message}; ${FIX_BUSY}`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  /** Runs `act` and waits for bleno's `ok` event (or `failure`), bounded by `startTimeoutMs`. */
  private waitFor(
    bleno: BlenoApi,
    ok: string,
    failure: string | undefined,
    act: () => void,
    what: string,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const onOk = (err?: unknown): void => finish(err instanceof Error ? err : undefined);
      const onFail = (err?: unknown): void =>
        finish(err instanceof Error ? err : new BleError('ERR_BLE_START', `${what}: ${String(err)}`));
      const finish = (err?: Error): void => {
        if (done) return;
        done = true;
        bleno.removeListener(ok, onOk);
        if (failure !== undefined) bleno.removeListener(failure, onFail);
        this.clock.clearTimeout(timer);
        if (err === undefined) resolve();
        else reject(err);
      };
      const timer = this.clock.setTimeout(
        () =>
          finish(new BleError('ERR_BLE_START', `${what}: no answer from bleno in ${this.startTimeoutMs} ms`)),
        this.startTimeoutMs,
      );
      bleno.on(ok, onOk);
      if (failure !== undefined) bleno.on(failure, onFail);
      try {
        act();
      } catch (err) {
        finish(bleErrorFrom(err, what));
      }
    });
  }

  /** One characteristic of the service; its handlers reach the current session, if any. */
  private characteristic(bleno: BlenoApi, name: CharacteristicName): object {
    const codes = bleno.Characteristic;
    const writable = WRITABLE[name];
    const notifying = NOTIFYING[name];
    const readable = READABLE[name];
    const options: BlenoCharacteristicOptions = {
      uuid: compactUuid(CHARACTERISTIC[name]),
      properties: [...CHARACTERISTIC_PROPERTIES[name]] as BlenoProperty[],
    };
    if (writable !== undefined) {
      options.onWriteRequest = (data, offset, _withoutResponse, callback) => {
        const session = this.session;
        // A prepared (long) write arrives with the offset of its first part; frames start at 0.
        if (session === undefined || offset !== 0) {
          callback(session === undefined ? codes.RESULT_UNLIKELY_ERROR : codes.RESULT_INVALID_OFFSET);
          return;
        }
        // The frame is taken (the Write Response says only that); its outcome comes as a result notification.
        callback(codes.RESULT_SUCCESS);
        session.write(writable, Uint8Array.from(data));
      };
    }
    if (readable !== undefined) {
      options.onReadRequest = (offset, callback) => {
        const session = this.session;
        if (session === undefined) {
          callback(codes.RESULT_UNLIKELY_ERROR);
          return;
        }
        session.read(readable, offset).then(
          (outcome) => {
            // A reply for a connection that has ended would go to the next central's handle: drop it.
            if (session.closed || this.session !== session) return;
            if (outcome.ok) callback(codes.RESULT_SUCCESS, Buffer.from(outcome.data));
            else
              callback(
                outcome.error === 'invalid-offset'
                  ? codes.RESULT_INVALID_OFFSET
                  : codes.RESULT_UNLIKELY_ERROR,
              );
          },
          (err: unknown) => debug('read of %s failed: %s', name, err instanceof Error ? err.message : err),
        );
      };
    }
    if (notifying !== undefined) {
      options.onSubscribe = (_maxValueSize, update) => {
        const session = this.session;
        if (session === undefined) return;
        session.subscribe(notifying, (frame) => {
          // Frames are cut for the session's MTU, which follows bleno's mtuChange: bleno sends MTU - 3 bytes.
          if (this.session === session) update(Buffer.from(frame));
        });
      };
      options.onUnsubscribe = () => this.session?.unsubscribe(notifying);
    }
    return new bleno.Characteristic(options);
  }
}
