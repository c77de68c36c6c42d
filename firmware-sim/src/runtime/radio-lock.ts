/**
 * A simulated lock on a virtual radio, for end-to-end tests, the BLE benchmark and demos: the real
 * LockAuthority (SPEC §5.7) behind the real BlenoLockPeripheral (SPEC §8) through the real AuthorityBackend,
 * on a simulated solenoid and latch and in-memory crash-safe stores, all on one clock (pass the radio's
 * VirtualClock so that pulses, challenge lifetimes and radio timing share modelled time).
 *
 * Unlike {@link LockRuntime} it runs no accelerometer: a sampling timer would keep an auto-advancing virtual
 * clock running for ever. Provisioning is done directly (lock id and anchors), not over a console.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../../hardware/src/clock.js';
import { SimLockMechanism } from '../../../hardware/src/gpio/sim-lock-mechanism.js';
import { Status, generateKeyPair, signBytes } from '../../../protocol/src/index.js';
import type { PrivateKey } from '../../../protocol/src/index.js';
import { AuthorityBackend } from '../ble/authority-backend.js';
import { BlenoLockPeripheral } from '../ble/bleno-lock-peripheral.js';
import type { BlenoLoader } from '../ble/bleno-types.js';
import { AnchorStore, LockAuthority, LockStateMachine, TrustedClock, openLockStores } from '../lock/index.js';
import type { AnchorRecord, LockStores } from '../lock/index.js';
import { CrashingStoreFs } from '../store/index.js';

const DIR = '/var/lib/tandem';

/** Options of {@link startRadioLock}. */
export interface RadioLockOptions {
  /** bleno on the virtual radio (`() => loadBleno({ deviceId })` after `installVirtualHci`). */
  readonly loadBleno: BlenoLoader;
  readonly clock: Clock;
  readonly lockId: string;
  /** Trust anchors to provision: at least one issuer. */
  readonly anchors: readonly AnchorRecord[];
  /**
   * A time beacon for the lock's first challenge nonce, as a phone would relay it (SPEC §7): without one a
   * fresh lock knows no time and refuses every token as TIME_UNCERTAIN.
   */
  readonly timeBeacon?: (nonce: Uint8Array) => Uint8Array;
  /** Solenoid pulse, ms (default 200). */
  readonly pulseMs?: number;
}

/** A running simulated lock and what a test sees of it. */
export interface RadioLock {
  readonly authority: LockAuthority;
  readonly peripheral: BlenoLockPeripheral;
  readonly stores: LockStores;
  readonly mechanism: SimLockMechanism;
  /** The lock's device key: signs its audit records and alerts. */
  readonly deviceKey: PrivateKey;
  /** Clock times at which the solenoid was energised. */
  readonly pulses: number[];
  /** Called when the solenoid is energised (after it is recorded). */
  onPulse: (() => void) | undefined;
  /** The rider pushes the shackle back in; resolves once the lock reports `locked`. */
  relock(): Promise<void>;
  stop(): Promise<void>;
}

/** Builds, provisions, time-syncs and starts a simulated lock serving BLE. */
export async function startRadioLock(options: RadioLockOptions): Promise<RadioLock> {
  const { clock, lockId } = options;
  const fs = new CrashingStoreFs({ tornWrites: 'lose' });
  const device = generateKeyPair('EdDSA');
  const trusted = await TrustedClock.open({ clock, fs, dir: DIR });
  const { stores, corrupt } = await openLockStores(fs, DIR, {
    auditSign: (hash) => signBytes(device, hash),
    auditClock: () => trusted.auditTimeMs(),
  });
  const anchors = AnchorStore.load(stores.config);
  for (const a of options.anchors) await anchors.add(a);
  const mechanism = SimLockMechanism.create({ clock, maxPulseMs: 500 });
  const stateMachine = new LockStateMachine({
    clock,
    solenoid: mechanism.solenoid,
    latch: mechanism.latch,
    pulseMs: options.pulseMs ?? 200,
    autoRelockMs: 10_000,
  });
  const authority = new LockAuthority({
    lockId,
    anchors,
    stores,
    clock,
    random: (n) => new Uint8Array(randomBytes(n)),
    stateMachine,
    trustedClock: trusted,
    deviceKey: device,
    safeModeReasons: corrupt,
  });
  await authority.start();
  if (options.timeBeacon) {
    const c = authority.issueChallenge({ peer: 'provisioning' });
    const synced = await authority.applyTimeBeacon(options.timeBeacon(c.nonce), { peer: 'provisioning' });
    if (synced.status !== Status.OK)
      throw new Error(`the lock refused its time beacon: ${Status[synced.status]}`);
  }
  const peripheral = new BlenoLockPeripheral({
    backend: new AuthorityBackend({
      authority,
      outbox: stores.outbox,
      issuerKey: anchors.issuerKey,
      firmwareVersion: 'tandem-sim',
    }),
    loadBleno: options.loadBleno,
    clock,
  });
  await peripheral.start();
  const lock: RadioLock = {
    authority,
    peripheral,
    stores,
    mechanism,
    deviceKey: device,
    pulses: [],
    onPulse: undefined,
    async relock() {
      mechanism.push();
      // Event-loop turns, not wall-clock sleeps: on an auto-advancing virtual clock a real sleep lets modelled
      // time run on through the lock's periodic timers (hours, with tokens expiring); a turn lets the latch
      // debounce fire and no more.
      for (let turns = 0; authority.snapshot().state !== 'locked'; turns++) {
        if (turns > 1_000_000)
          throw new Error('the lock did not report locked after the shackle was pushed in');
        await new Promise((r) => setImmediate(r));
      }
    },
    async stop() {
      await peripheral.stop();
      authority.close();
    },
  };
  mechanism.solenoid.onCurrentChange((current) => {
    if (!current) return;
    lock.pulses.push(clock.now());
    lock.onPulse?.();
  });
  return lock;
}
