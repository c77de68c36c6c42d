/**
 * Bench group `ble` (issue 4 §3): what one tap costs over the air. The real noble (phone) and bleno (lock)
 * stacks run on the virtual radio with phone-like timing: 30 ms connection interval, ATT MTU 185 (iOS),
 * 27-byte link layer (Pi Zero W, no Data Length Extension), 100 ms advertising interval, on a VirtualClock,
 * so every time below is modelled radio time, not this machine's speed. The phone is gateway/'s LockClient;
 * the lock is the lock runtime (LockAuthority behind BlenoLockPeripheral, firmware-sim/src/runtime/radio-lock.ts) with a
 * simulated solenoid on the same clock. The lock's CPU time (token and PoP verification, signing the audit
 * record) takes no modelled time: on a Pi Zero W it adds a few milliseconds per unlock.
 *
 * Round trips and writes are counted by instrumenting the transport (RecordingTransport), not derived.
 */
import { once } from 'node:events';
import {
  VirtualClock,
  VirtualRadio,
  createNoble,
  installVirtualHci,
  loadBleno,
} from '../hardware/src/virtual-radio/index.js';
import type { VirtualHciInstallation } from '../hardware/src/virtual-radio/index.js';
import { Command } from '../protocol/src/pop.js';
import { Status } from '../protocol/src/status.js';
import { InMemoryChainRefs, LockClient } from '../gateway/src/lock-client.js';
import { NobleTransport } from '../gateway/src/noble-transport.js';
import type { NobleLike } from '../gateway/src/noble-transport.js';
import { startRadioLock } from '../firmware-sim/src/runtime/radio-lock.js';
import {
  NOW,
  RecordingTransport,
  clockTimers,
  issuerProvisioning,
  tokenWorld,
} from '../gateway/test/helpers.js';
import type { BenchContext, BenchGroup } from './lib.js';
import { atMost } from './lib.js';

const LOCK_ID = 'lock-7f3a';
const INTERVAL_MS = 30;
const MTU = 185;
const ADVERTISING_MS = 100;
/** Tesla's published figure for one BLE vehicle command (teslamotors/vehicle-command). */
const TESLA_MS = 309;

interface Tap {
  /** Tap (start of scan) to the lock's tag seen. */
  readonly scanMs: number;
  /** Tap to connected (MTU exchanged, service discovered). */
  readonly connectedMs: number;
  /** Tap to the solenoid: the lock's act. */
  readonly solenoidMs: number;
  /** Tap to the last frame of the result notification. */
  readonly resultMs: number;
  readonly roundTrips: number;
  readonly writes: number;
  /** Connection events from connected to result. */
  readonly events: number;
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const range = (values: readonly number[]): string =>
  `${Math.min(...values).toFixed(0)}-${Math.max(...values).toFixed(0)} ms`;

async function run(ctx: BenchContext): Promise<void> {
  const runs = ctx.quick ? 3 : 15;
  const clock = new VirtualClock({ autoAdvance: true });
  const radio = new VirtualRadio({
    clock,
    linkLayerPayload: 27,
    connectionIntervalMs: INTERVAL_MS,
    attMtuCap: MTU,
    advertisingIntervalMs: ADVERTISING_MS,
    seed: 2026,
  });
  const installation: VirtualHciInstallation = installVirtualHci(radio);
  const bleno = loadBleno({ deviceId: 0, advertisingIntervalMs: ADVERTISING_MS });
  const world = tokenWorld();
  const rider = world.rider(LOCK_ID);
  const lock = await startRadioLock({
    loadBleno: () => bleno,
    clock,
    lockId: LOCK_ID,
    ...issuerProvisioning(world, LOCK_ID, NOW),
  });
  // A bystander phone scanning all the time (device 3). The virtual radio simulates advertising events only
  // while someone listens, and starts them within 0-10 ms when a scanner appears; with a listener the lock
  // advertises on its own 100 ms schedule, and a tap lands at some phase of it, as on air.
  const bystanderNoble = createNoble({ deviceId: 3 }) as unknown as NobleLike;
  const bystander = new NobleTransport({ binding: { kind: 'instance', noble: bystanderNoble } });
  if (bystanderNoble.state !== 'poweredOn') await once(bystanderNoble, 'stateChange');
  await bystanderNoble.startScanningAsync([], true);
  const timers = clockTimers(clock);
  const phone = new RecordingTransport(
    new NobleTransport({ binding: { kind: 'virtual', deviceId: 1 }, timers }),
  );
  let foundAt = 0;
  let connectedAt = 0;
  let resultAt = 0;
  let eventsAtConnect = 0;
  phone.onFound = () => (foundAt = clock.now());
  phone.onConnected = () => {
    connectedAt = clock.now();
    eventsAtConnect = radio.connections().at(-1)!.eventCounter;
  };
  phone.onNotify = (name) => {
    if (name === 'result') resultAt = clock.now();
  };
  const refs = new InMemoryChainRefs();
  const newClient = (chainRefs: InMemoryChainRefs): LockClient =>
    new LockClient({ transport: phone, timers, chainRefs, responseTimeoutMs: 5_000, scanTimeoutMs: 10_000 });

  let taps = 0;
  async function tap(client: LockClient): Promise<Tap> {
    // The rider pushed the shackle back in after the last ride.
    if (lock.authority.snapshot().state !== 'locked') await lock.relock();
    // A rider taps at any moment of the lock's advertising cycle, not just after it restarted advertising:
    // wait a second plus a phase that walks through the 100 ms interval (37 is prime to 100).
    const phase = 1_000 + ((taps++ * 37) % ADVERTISING_MS);
    await new Promise<void>((resolve) => clock.setTimeout(resolve, phase));
    phone.reset();
    const pulses = lock.pulses.length;
    const t0 = clock.now();
    const outcome = await client.unlock(LOCK_ID, { chain: rider.chain, holderKey: rider.key });
    if (outcome.status !== Status.OK || lock.pulses.length !== pulses + 1) {
      throw new Error(`bench unlock failed: ${outcome.statusName}`);
    }
    const info = radio.connections().at(-1)!;
    return {
      scanMs: foundAt - t0,
      connectedMs: connectedAt - t0,
      solenoidMs: lock.pulses.at(-1)! - t0,
      resultMs: resultAt - t0,
      // From connected to result: the subscription and the request/result exchange.
      roundTrips: phone.record.roundTrips,
      writes: phone.record.writes.filter((w) => w.name === 'request').length,
      events: info.eventCounter - eventsAtConnect,
    };
  }

  try {
    // noble powers on at the first scan; a phone's Bluetooth is on before the rider taps.
    await newClient(new InMemoryChainRefs()).unlock(LOCK_ID, {
      chain: rider.chain,
      holderKey: rider.key,
      command: Command.STATUS,
    });
    const first: Tap[] = [];
    const repeat: Tap[] = [];
    for (let i = 0; i < runs; i++) first.push(await tap(newClient(new InMemoryChainRefs())));
    const warm = newClient(refs);
    await tap(warm);
    for (let i = 0; i < runs; i++) repeat.push(await tap(warm));

    const report = (what: 'first' | 'repeat', taps: Tap[]): void => {
      const label = what === 'first' ? 'a first unlock (full token chain)' : 'a repeat unlock (chainRef)';
      ctx.report({
        name: `ble.gatt_round_trips_${what}`,
        value: Math.max(...taps.map((t) => t.roundTrips)),
        unit: 'count',
        goal: atMost(2),
        note:
          `most over ${taps.length} taps, ${label}, connected to result: subscribe to result (CCCD write; noble ` +
          'sends it as Read By Type + Write Request) and request/result; service discovery at connect not counted',
      });
      ctx.report({
        name: `ble.att_writes_${what}`,
        value: Math.max(...taps.map((t) => t.writes)),
        unit: 'count',
        goal: atMost(what === 'first' ? 2 : 1),
        note: `ATT Write Commands (without response) of the request at MTU ${MTU}`,
      });
      const solenoid = taps.map((t) => t.solenoidMs);
      const result = taps.map((t) => t.resultMs);
      ctx.report({
        name: `ble.tap_to_solenoid_ms_${what}`,
        value: median(solenoid),
        unit: 'ms',
        goal: null,
        note:
          `median of ${taps.length} (${range(solenoid)}), modelled time from start of scan to the solenoid energised; ` +
          `Tesla publishes ${TESLA_MS} ms per BLE command, Nuki users report 2-10 s per unlock`,
      });
      ctx.report({
        name: `ble.tap_to_result_ms_${what}`,
        value: median(result),
        unit: 'ms',
        goal: null,
        note:
          `median (${range(result)}): scan ${median(taps.map((t) => t.scanMs)).toFixed(0)} ms, connected at ` +
          `${median(taps.map((t) => t.connectedMs)).toFixed(0)} ms (MTU exchange, discovery), then ` +
          `${median(taps.map((t) => t.events))} connection events of ${INTERVAL_MS} ms to the result`,
      });
      const connected = taps.map((t) => t.solenoidMs - t.connectedMs);
      ctx.report({
        name: `ble.connected_to_solenoid_ms_${what}`,
        value: median(connected),
        unit: 'ms',
        goal: null,
        note:
          `median (${range(connected)}): the part comparable with Tesla's ${TESLA_MS} ms per command on an ` +
          'established connection: subscription, challenge, request, decision',
      });
    };
    report('first', first);
    report('repeat', repeat);
  } finally {
    await phone.close();
    await bystander.close();
    await lock.stop();
    // The lock's periodic timers (time floor persistence) would keep an auto-advancing clock turning forever.
    clock.setAutoAdvance(false);
    stopBlenoPoll(bleno);
    radio.close();
    installation.uninstall();
  }
}

/**
 * bleno, like noble, re-arms a 1 s adapter poll forever once started (lib/hci-socket/hci.js `pollIsDevUp`)
 * and has no stop; without this the bench process would never exit.
 */
function stopBlenoPoll(bleno: object): void {
  const hci = (bleno as { _bindings?: { _hci?: { pollIsDevUp?: () => void } } })._bindings?._hci;
  if (hci !== undefined) hci.pollIsDevUp = () => undefined;
}

/** The `ble` bench group. */
export const bleGroup: BenchGroup = {
  name: 'ble',
  description:
    'one tap over the virtual radio (noble and bleno, 30 ms interval, MTU 185, 27-byte link layer): round trips, writes, modelled time',
  run,
};
