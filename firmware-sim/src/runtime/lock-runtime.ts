/**
 * The lock runtime assembled: hardware (real or simulated), crash-safe stores, trusted time, the authority
 * that decides, theft detection and the provisioning console (ARCHITECTURE.md, flows 1, 4 and 7). This is what
 * `tandem lock --config <file> [--simulate]` runs, on the Pi and on a laptop alike.
 *
 * Start-up order is chosen so that the lock is locked before anything else can happen: the state machine
 * starts first (solenoid released, latch read), then stores and time; a corrupt store puts the authority in
 * safe mode; an unprovisioned lock (no lock id or no issuer anchor) runs with no authority at all and refuses
 * every request, with only the console open.
 */
import { randomBytes } from 'node:crypto';
import createDebug from 'debug';
import type { Clock } from '../../../hardware/src/clock.js';
import type { SerialConsole } from '../../../hardware/src/interfaces.js';
import { encodeAlert, encodeClaimReceipt } from '../../../protocol/src/index.js';
import type { AlertKind } from '../../../protocol/src/index.js';
import type { LockFileConfig } from '../config/lock-config.js';
import { ConsoleInterpreter } from '../console/console-interpreter.js';
import type { ConsoleCommand } from '../console/console-interpreter.js';
import { AnchorStore, LockAuthority, LockStateMachine, TrustedClock, openLockStores } from '../lock/index.js';
import type { LockStores } from '../lock/index.js';
import { NodeStoreFs } from '../store/index.js';
import type { StoreFs } from '../store/index.js';
import { TheftDetector } from '../theft/theft-detector.js';
import type { TheftEvent } from '../theft/theft-detector.js';
import { AuthorityBackend, BlenoLockPeripheral } from '../ble/index.js';
import type { BlenoLoader, BleError } from '../ble/index.js';
import { startLockMqtt } from '../mqtt/start-lock-mqtt.js';
import type { LockMqttClient, MqttConnect } from '../mqtt/lock-mqtt-client.js';
import { loadOrCreateMqttPassword, writeNewMqttPassword } from '../mqtt/credentials.js';
import { mqttPasswordPath } from '../mqtt/start-lock-mqtt.js';
import { diagnosticCommands } from './diagnostic-commands.js';
import type { LockHardware } from './hardware.js';
import { LockIdentity } from './identity.js';
import { claimReceiptLine, recordClaimReceipt } from './claim-receipt.js';
import { provisioningCommands } from './provisioning-commands.js';
import { simulationCommands } from './simulation-commands.js';
import { BatteryMonitor } from '../../../hardware/src/battery.js';

const debug = createDebug('tandem:lock:runtime');

/**
 * Runs two start steps side by side and returns both results once both have settled, so that no step of a
 * failed start still runs while the start cleans up; the first failure in argument order is thrown.
 */
async function both<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [ra, rb] = await Promise.allSettled([a, b]);
  if (ra.status === 'rejected') throw ra.reason;
  if (rb.status === 'rejected') throw rb.reason;
  return [ra.value, rb.value];
}

/** Options of {@link LockRuntime.open}. */
export interface LockRuntimeOptions {
  readonly config: LockFileConfig;
  readonly hardware: LockHardware;
  readonly clock: Clock;
  /** The provisioning console (default: the hardware's). */
  readonly console?: SerialConsole;
  /** Default: the real filesystem. */
  readonly fs?: StoreFs;
  readonly random?: (n: number) => Uint8Array;
  /** Simulated hardware: enables the `sim` console commands. */
  readonly simulated: boolean;
  /**
   * How to obtain bleno for the GATT service (SPEC §8): the system's HCI (`loadSystemBleno`) or bleno on a
   * virtual radio. Absent: no BLE (console and API only). The service starts once the lock is provisioned.
   */
  readonly ble?: BlenoLoader;
  /** Called when the BLE peripheral gives up (bleno wedged): the process should exit so systemd restarts it. */
  readonly onFatal?: (error: BleError) => void;
  /** Reported in lock info over BLE. */
  readonly firmwareVersion?: string;
  /** How the MQTT link connects (default MQTT.js); it runs when the config file has an `mqtt` section. */
  readonly mqttConnect?: MqttConnect;
}

/** A running lock. */
export class LockRuntime {
  #authority: LockAuthority | undefined;
  #peripheral: BlenoLockPeripheral | undefined;
  #mqtt: LockMqttClient | undefined;
  #mqttError: string | undefined;
  #detachConsole: (() => void) | undefined;
  #unsubscribe: (() => void)[] = [];
  #closed = false;
  /** The fuel gauge's readings ([TANDEM-MQTT-14]); absent when the hardware has no gauge port. */
  readonly battery: BatteryMonitor | undefined;
  readonly #options: LockRuntimeOptions;
  readonly #trustedClock: TrustedClock;
  readonly #identity: LockIdentity;
  readonly stateMachine: LockStateMachine;
  readonly stores: LockStores;
  readonly anchors: AnchorStore;
  /** The stores found corrupt at start: non-empty runs the lock in safe mode. */
  readonly corrupt: readonly string[];
  readonly theft: TheftDetector;
  readonly console: ConsoleInterpreter;

  private constructor(parts: {
    options: LockRuntimeOptions;
    stateMachine: LockStateMachine;
    trustedClock: TrustedClock;
    stores: LockStores;
    anchors: AnchorStore;
    corrupt: readonly string[];
    identity: LockIdentity;
  }) {
    const { options } = parts;
    this.#options = options;
    this.#trustedClock = parts.trustedClock;
    this.#identity = parts.identity;
    this.stateMachine = parts.stateMachine;
    this.stores = parts.stores;
    this.anchors = parts.anchors;
    this.corrupt = parts.corrupt;
    const b = options.config.behaviour;
    this.theft = new TheftDetector({
      ...options.config.theft,
      ...(b.theftBumpThreshold === undefined ? {} : { bumpThreshold: b.theftBumpThreshold }),
      ...(b.theftTamperRms === undefined ? {} : { tamperRms: b.theftTamperRms }),
      ...(b.theftTiltDeg === undefined ? {} : { tiltDeg: b.theftTiltDeg }),
      ...(b.theftMotionRms === undefined ? {} : { motionRms: b.theftMotionRms }),
    });
    this.battery =
      options.hardware.battery === undefined
        ? undefined
        : new BatteryMonitor(options.hardware.battery, options.clock);
    this.console = new ConsoleInterpreter(this.#consoleCommands(), {
      isClaimed: () => this.claimed,
      simulated: options.simulated,
    });
  }

  // Each table gets only what it needs of the runtime (issue 12): provisioning the identity and anchors,
  // diagnostics read-only views, simulation the simulated parts.
  #consoleCommands(): ConsoleCommand[] {
    const options = this.#options;
    const mqttUrl = options.config.mqtt?.url;
    const passwordPath = mqttPasswordPath(options.config);
    return [
      ...provisioningCommands({
        identity: this.#identity,
        anchors: this.anchors,
        mqttUrl,
        mqttPassword: {
          current: () => loadOrCreateMqttPassword(passwordPath, options.random),
          renew: () => writeNewMqttPassword(passwordPath, options.random),
        },
        claimReceipt: {
          record: (input) =>
            recordClaimReceipt(this.stores.config, (r) => encodeClaimReceipt(r, this.#identity.deviceKey), {
              ...input,
              claimedAt: this.#trustedClock.bound().earliest,
            }),
          lines: () => claimReceiptLine(this.stores.config),
        },
        serving: () => this.#authority !== undefined,
        reload: () => this.reload(),
      }),
      ...diagnosticCommands({
        status: () => this.status(),
        time: this.#trustedClock,
        audit: this.stores.audit,
        lockId: () => this.lockId,
        mqttStatus: () => this.#mqtt?.status(),
        mqttUrl,
      }),
      ...simulationCommands({
        sim: options.hardware.sim,
        theft: this.theft,
        stateMachine: this.stateMachine,
        batteryRefresh: async () => this.battery?.refresh(),
      }),
    ];
  }

  /** Opens the hardware, stores and time, and starts the lock locked. */
  static async open(options: LockRuntimeOptions): Promise<LockRuntime> {
    try {
      return await LockRuntime.#open(options);
    } catch (error) {
      // A lock that cannot start must still end locked and let its process exit (systemd then restarts
      // it): release the coil and close what was opened, whatever failed.
      const { hardware } = options;
      await hardware.solenoid.release().catch(() => undefined);
      for (const part of [hardware.accelerometer, hardware.latch, hardware.solenoid]) {
        await part.close().catch(() => undefined);
      }
      await (options.console ?? hardware.console)?.close().catch(() => undefined);
      throw error;
    }
  }

  static async #open(options: LockRuntimeOptions): Promise<LockRuntime> {
    const { config, hardware, clock } = options;
    const fs = options.fs ?? new NodeStoreFs();
    // The coil is driven low and the latch is read side by side (issue 8 §2, start time): on a Pi each is a
    // libgpiod tool run to its exit (`gpioset`, `gpioget`, each after a `--version`), tens of ms apiece on a
    // Pi Zero, and reading a sensor line energises nothing. The state machine still starts only once both
    // are done, so the lock is locked before anything else can happen; either failure fails the start.
    await both(
      hardware.solenoid.open().then(() => hardware.solenoid.release()),
      hardware.latch.open(),
    );
    const stateMachine = new LockStateMachine({
      clock,
      solenoid: hardware.solenoid,
      latch: hardware.latch,
      pulseMs: Math.min(config.behaviour.pulseMs ?? 300, config.hardware.maxPulseMs),
      autoRelockMs: (config.behaviour.autoRelockS ?? 10) * 1000,
      jamTimeoutMs: config.hardware.jamTimeoutMs,
      latchSpringsOpen: config.hardware.latchSpringsOpen,
    });
    await stateMachine.start();
    // The time floor and the stores are separate files that nothing links at open: read together, the lock
    // waits for the slowest read instead of the sum of them (issue 8 §2, start time). A store found corrupt is
    // still moved aside by openLockStores before anything is served, and either failure stops the start.
    const [trustedClock, { stores, corrupt }] = await both(
      TrustedClock.open({
        clock,
        fs,
        dir: config.dataDir,
        // [TANDEM-TIME-6]: no operating-system clock here; the lock's time comes from signed beacons only.
        driftPpm: config.time.driftPpm,
      }),
      openLockStores(fs, config.dataDir),
    );
    const identity = await LockIdentity.load(stores.config);
    const runtime = new LockRuntime({
      options,
      stateMachine,
      trustedClock,
      stores,
      anchors: AnchorStore.load(stores.config),
      corrupt,
      identity,
    });
    await runtime.reload();
    runtime.#startTheftDetection();
    const console = options.console ?? hardware.console;
    if (console) {
      await console.open();
      runtime.#detachConsole = runtime.console.attach(console);
    }
    debug(
      'lock %s started (%s)',
      runtime.lockId ?? '(unprovisioned)',
      runtime.#authority ? 'serving' : 'provisioning only',
    );
    return runtime;
  }

  /** The provisioned lock id, or undefined. */
  get lockId(): string | undefined {
    return this.#identity.lockId;
  }

  /** True once the owner has claimed the lock: provisioning is then closed for good. */
  get claimed(): boolean {
    return this.#identity.claimed;
  }

  /** The authority, once the lock is provisioned (lock id and an issuer anchor). */
  get authority(): LockAuthority | undefined {
    return this.#authority;
  }

  /** The device public key (raw Ed25519), for registering the lock with the cloud. */
  /** The trusted clock, read-only ([TANDEM-TIME-6]): what a dashboard or status line shows. */
  get time(): Pick<TrustedClock, 'bound' | 'uncertainty' | 'source'> {
    return this.#trustedClock;
  }

  get devicePublicKey(): Uint8Array {
    return this.#identity.devicePublicKey;
  }

  /** The BLE peripheral, once the lock is provisioned and BLE is enabled. */
  get peripheral(): BlenoLockPeripheral | undefined {
    return this.#peripheral;
  }

  /** The MQTT link, once the lock is provisioned and the config file has an `mqtt` section. */
  get mqtt(): LockMqttClient | undefined {
    return this.#mqtt;
  }

  /** Starts the authority, BLE and MQTT if the lock is provisioned and they are not running yet. */
  async reload(): Promise<void> {
    await this.#startAuthority();
    await this.#startBle();
    await this.#startMqtt();
  }

  // The link never holds the lock up: an unusable password or TLS file is reported (status, console) and
  // the lock serves BLE without it.
  async #startMqtt(): Promise<void> {
    const authority = this.#authority;
    const lockId = this.lockId;
    if (!authority || lockId === undefined || this.#mqtt || this.#closed) return;
    try {
      this.#mqtt = await startLockMqtt({
        config: this.#options.config,
        lockId,
        authority,
        outbox: this.stores.outbox,
        issuerKey: this.anchors.issuerKey,
        deviceKey: this.#identity.deviceKey,
        clock: this.#options.clock,
        ...(this.#options.mqttConnect ? { connect: this.#options.mqttConnect } : {}),
        ...(this.#options.random ? { random: this.#options.random } : {}),
        ...(this.battery ? { battery: () => this.battery?.level } : {}),
      });
      this.#mqttError = undefined;
    } catch (e) {
      this.#mqttError = e instanceof Error ? e.message : String(e);
      debug('MQTT link not started: %s', this.#mqttError);
    }
  }

  async #startBle(): Promise<void> {
    const authority = this.#authority;
    if (!authority || !this.#options.ble || this.#peripheral) return;
    const peripheral = new BlenoLockPeripheral({
      backend: new AuthorityBackend({
        authority,
        outbox: this.stores.outbox,
        issuerKey: this.anchors.issuerKey,
        firmwareVersion: this.#options.firmwareVersion ?? 'tandem-0.1.0',
      }),
      loadBleno: this.#options.ble,
      clock: this.#options.clock,
    });
    peripheral.on('fatal', (e) => {
      debug('BLE gave up: %O', e);
      this.#options.onFatal?.(e);
    });
    this.#peripheral = peripheral;
    await peripheral.start();
  }

  async #startAuthority(): Promise<void> {
    const lockId = this.lockId;
    if (this.#authority || lockId === undefined || this.anchors.count('issuer') === 0) return;
    const authority = new LockAuthority({
      lockId,
      anchors: this.anchors,
      stores: this.stores,
      clock: this.#options.clock,
      random: this.#options.random ?? ((n: number) => new Uint8Array(randomBytes(n))),
      stateMachine: this.stateMachine,
      trustedClock: this.#trustedClock,
      deviceKey: this.#identity.deviceKey,
      config: this.#options.config.behaviour,
      safeModeReasons: this.corrupt,
    });
    await authority.start();
    this.#authority = authority;
  }

  #startTheftDetection(): void {
    // Armed while locked; disarmed while the rider has it open. An alarm keeps it armed (the detector's own
    // alarm escalates), and re-arming only happens from disarmed so the reference orientation is kept.
    const follow = () => {
      const state = this.stateMachine.reportedState;
      if (state === 'unlocked') this.theft.disarm();
      else if (state === 'locked' && this.theft.alarm === 'disarmed') this.theft.arm();
    };
    follow();
    this.#unsubscribe.push(this.stateMachine.onTransition(() => follow()));
    this.#unsubscribe.push(this.#options.hardware.accelerometer.onSample((s) => this.theft.push(s)));
    this.#unsubscribe.push(this.theft.onEvent((e) => void this.#alert(e)));
    void this.#options.hardware.accelerometer
      .open()
      .catch((e: unknown) => debug('accelerometer failed: %O', e));
    // [TANDEM-MQTT-14]: a new level goes out in the signed state now, not at the next poll.
    if (this.battery) {
      this.#unsubscribe.push(this.battery.onChange(() => this.#mqtt?.kick()));
      this.battery.start();
    }
  }

  // A bump is only logged; tampering and the bike moving raise the alarm and a signed alert that waits in
  // the outbox until the cloud acknowledges it (flow 7).
  async #alert(event: TheftEvent): Promise<void> {
    debug('theft event %s at %d ms (peak %d)', event.kind, event.t, event.peak);
    if (event.kind !== 'bump') this.stateMachine.raiseAlarm();
    const lockId = this.lockId;
    if (lockId === undefined) return;
    const kind: AlertKind = event.kind;
    try {
      await this.stores.outbox.enqueueWith('alert', (sequence, epoch) =>
        encodeAlert(
          {
            lockId,
            sequence,
            epoch,
            time: this.#trustedClock.bound().earliest,
            kind,
            // CBOR carries no floats ([TANDEM-CBOR-3]): the peak in cm/s².
            detail: new Map([
              ['peak_cm_s2', Math.round(event.peak * 100)],
              ['duration_ms', Math.round(event.durationMs)],
            ]),
          },
          this.#identity.deviceKey,
        ),
      );
      // An alert goes out now rather than at the link's next poll.
      this.#mqtt?.kick();
    } catch (e) {
      debug('alert could not be queued: %O', e);
    }
  }

  /** A one-line summary for the console and the CLI. */
  status(): Record<string, string | number | boolean> {
    const bound = this.#trustedClock.bound();
    return {
      lockId: this.lockId ?? '(unprovisioned)',
      state: this.stateMachine.reportedState,
      claimed: this.claimed,
      serving: this.#authority !== undefined,
      ble: this.#peripheral?.state ?? 'off',
      safeMode: this.corrupt.length > 0,
      timeEarliest: new Date(bound.earliest * 1000).toISOString(),
      // "unknown" until a nonce-bound beacon after boot ([TANDEM-TIME-6]): relay one with `tandem unlock`.
      uncertaintyS: this.#trustedClock.uncertainty() ?? 'unknown',
      lockout: this.#authority?.lockedOut ?? false,
      revocationVersion: this.stores.revocations.version,
      outbox: this.stores.outbox.size,
      alarm: this.theft.alarm,
      battery: this.battery?.level ?? 'none',
      mqtt: this.#mqtt?.status().link ?? (this.#mqttError === undefined ? 'off' : 'failed'),
      ...((this.#mqtt?.status().lastError ?? this.#mqttError) === undefined
        ? {}
        : { mqttError: JSON.stringify(this.#mqtt?.status().lastError ?? this.#mqttError) }),
    };
  }

  /** Stops everything; the lock stays locked (the solenoid is released). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#detachConsole?.();
    this.battery?.stop();
    for (const u of this.#unsubscribe.splice(0)) u();
    await this.#mqtt?.stop().catch((e: unknown) => debug('MQTT stop failed: %O', e));
    await this.#peripheral?.stop().catch((e: unknown) => debug('BLE stop failed: %O', e));
    this.#authority?.close();
    await this.stateMachine.close();
    await this.#trustedClock.close();
    const { hardware } = this.#options;
    await hardware.accelerometer.close().catch(() => undefined);
    await (this.#options.console ?? hardware.console)?.close().catch(() => undefined);
    await hardware.latch.close().catch(() => undefined);
    await hardware.solenoid.release().catch(() => undefined);
    await hardware.solenoid.close().catch(() => undefined);
  }
}
