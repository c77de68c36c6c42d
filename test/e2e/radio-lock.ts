/**
 * The real lock on the virtual radio, for the end-to-end suites: firmware-sim's
 * LockAuthority (SPEC §5.7 decision, stores, trusted time, state machine) behind its BlenoLockPeripheral
 * (SPEC §8 GATT service), on a simulated solenoid and latch, all on one clock (the radio's VirtualClock, so
 * pulses, challenge lifetimes and radio timing share modelled time).
 *
 * The adapter from LockAuthority to the peripheral's LockGattBackend port lives here because the lock runtime
 * does not wire BLE yet; it only translates shapes (results, deliveries, the outbox), deciding nothing.
 * bench/radio-lock.ts is the same harness for the ble bench (bench/ and test/ may not import each other,
 * scripts/check-imports.mjs); keep them in step.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../hardware/src/clock.js';
import { SimLockMechanism } from '../../hardware/src/gpio/sim-lock-mechanism.js';
import type { Bleno } from '../../hardware/src/virtual-radio/index.js';
import { BlenoLockPeripheral } from '../../firmware-sim/src/ble/bleno-lock-peripheral.js';
import type { BlenoApi } from '../../firmware-sim/src/ble/bleno-types.js';
import type { LockGattBackend, RelayItem } from '../../firmware-sim/src/ble/lock-gatt-backend.js';
import { LockAuthority } from '../../firmware-sim/src/lock/lock-authority.js';
import { LockStateMachine } from '../../firmware-sim/src/lock/lock-state-machine.js';
import { AnchorStore } from '../../firmware-sim/src/lock/management.js';
import { openLockStores } from '../../firmware-sim/src/lock/stores.js';
import type { LockStores } from '../../firmware-sim/src/lock/stores.js';
import { TrustedClock } from '../../firmware-sim/src/lock/trusted-clock.js';
import { CrashingStoreFs } from '../../firmware-sim/src/store/crashing-store-fs.js';
import type { AdvertisedFlags, Challenge, LockInfo, Result } from '../../protocol/src/gatt.js';
import { MessageType } from '../../protocol/src/gatt.js';
import type { PrivateKey } from '../../protocol/src/keys.js';
import { generateKeyPair, signBytes } from '../../protocol/src/keys.js';
import { verifyOutboxAck } from '../../protocol/src/mqtt.js';
import { Status } from '../../protocol/src/status.js';
import { encodeTimeBeacon } from '../../protocol/src/time-beacon.js';

const DIR = '/var/lib/tandem';

/** Options of {@link startRadioLock}. */
export interface RadioLockOptions {
  readonly bleno: Bleno;
  readonly clock: Clock;
  readonly lockId: string;
  /** The cloud issuer: its key becomes the lock's trust anchor (role issuer, name "tandem"). */
  readonly issuer: PrivateKey;
  readonly issuerKid: Uint8Array;
  /** Unix seconds the lock is told by a nonce-bound time beacon at start. */
  readonly now: number;
}

/** A running lock and what a test sees of it. */
export interface RadioLock {
  readonly authority: LockAuthority;
  readonly peripheral: BlenoLockPeripheral;
  readonly stores: LockStores;
  readonly mechanism: SimLockMechanism;
  /** The lock's device key: signs its audit records and alerts. */
  readonly deviceKey: PrivateKey;
  /** Modelled times at which the solenoid was energised. */
  readonly pulses: number[];
  /** Called when the solenoid is energised (after it is recorded). */
  onPulse: (() => void) | undefined;
  /** The rider pushes the shackle back in; resolves once the lock reports `locked`. */
  relock(): Promise<void>;
  stop(): Promise<void>;
}

class AuthorityBackend implements LockGattBackend {
  constructor(
    private readonly authority: LockAuthority,
    private readonly stores: LockStores,
    private readonly issuer: { kid: Uint8Array; key: PrivateKey },
    readonly lockId: string,
  ) {}

  lockInfo(): LockInfo {
    const s = this.authority.snapshot();
    return {
      lockId: this.lockId,
      firmwareVersion: '0.1.0-e2e',
      revocationVersion: s.revocationVersion,
      timeFloor: s.timeFloor,
      uncertainty: s.uncertainty,
      state: s.state,
    };
  }

  issueChallenge(peer: string): Challenge {
    return this.authority.issueChallenge({ peer });
  }

  async handleRequest(peer: string, body: Uint8Array): Promise<Result> {
    const r = await this.authority.handleRequest(body, { peer });
    return {
      status: r.status,
      answers: MessageType.unlockRequest,
      ...(r.command === undefined ? {} : { command: r.command }),
      state: r.state,
      lockTime: r.lockTime,
      ...(r.nonce === undefined ? {} : { nonce: r.nonce }),
    };
  }

  async deliver(peer: string, type: MessageType, body: Uint8Array): Promise<Result> {
    let status: Status;
    if (type === MessageType.revocationUpdate) {
      status = (await this.authority.applyRevocationUpdate(body, { peer })).status;
    } else if (type === MessageType.timeBeacon) {
      status = (await this.authority.applyTimeBeacon(body, { peer })).status;
    } else {
      // [TANDEM-GATT-11]: only the issuer's signed ack clears the outbox.
      try {
        const ack = verifyOutboxAck(
          body,
          (kid) =>
            Buffer.compare(Buffer.from(kid), Buffer.from(this.issuer.kid)) === 0
              ? this.issuer.key.publicKey
              : undefined,
          this.lockId,
        );
        await this.stores.outbox.ack(ack.sequence);
        status = Status.OK;
      } catch {
        status = Status.BAD_SIGNATURE;
      }
    }
    return { status, answers: type, state: this.authority.snapshot().state, lockTime: this.lockTime() };
  }

  async pendingRelay(max: number): Promise<readonly RelayItem[]> {
    return this.stores.outbox.peek(max).map((e) => ({
      type: e.kind === 'alert' ? MessageType.alert : MessageType.auditRecord,
      body: e.payload,
    }));
  }

  lockTime(): number {
    return this.authority.snapshot().time.earliest;
  }

  advertisedFlags(): AdvertisedFlags {
    return { relayPending: this.stores.outbox.size > 0, alarm: this.authority.snapshot().state === 'alarm' };
  }
}

/** Builds, provisions, time-syncs and starts a lock on `bleno` (device 0 of the radio). */
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
  await anchors.add({
    kid: options.issuerKid,
    alg: options.issuer.alg,
    key: options.issuer.publicKey.raw,
    role: 'issuer',
    name: 'tandem',
  });
  const mechanism = SimLockMechanism.create({ clock, maxPulseMs: 500 });
  const stateMachine = new LockStateMachine({
    clock,
    solenoid: mechanism.solenoid,
    latch: mechanism.latch,
    pulseMs: 200,
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
  const c = authority.issueChallenge({ peer: 'provisioning' });
  const beacon = encodeTimeBeacon(
    { time: options.now, nonce: c.nonce, lockId, accuracy: 2 },
    options.issuer,
    options.issuerKid,
  );
  const synced = await authority.applyTimeBeacon(beacon, { peer: 'provisioning' });
  if (synced.status !== Status.OK)
    throw new Error(`the lock refused its time beacon: ${Status[synced.status]}`);

  const peripheral = new BlenoLockPeripheral({
    backend: new AuthorityBackend(authority, stores, { kid: options.issuerKid, key: options.issuer }, lockId),
    loadBleno: () => options.bleno as unknown as BlenoApi,
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
      // Event-loop turns, not wall-clock sleeps: on an auto-advancing VirtualClock a real sleep lets modelled
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
