/**
 * A real simulated lock (firmware-sim's LockRuntime on simulated hardware, provisioned over its console) seen
 * through the dashboard's {@link SimLockControl}, for the browser test until `npm start`'s own adapter
 * (cli/sim-lock-control.ts, helper h-start) is merged. It adapts what this test drives: the state, the
 * accelerometer and the theft detector, shipped traces, bump, shake and the shackle; the radio, power and
 * MQTT controls are not modelled here and refuse with an error the dashboard reports as ERR_DASH_CONTROL.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SystemClock } from '../../hardware/src/clock.js';
import type { Vec3 } from '../../hardware/src/accel/sim-accelerometer.js';
import { DEFAULT_CONFIG, DEFAULT_MQTT_CONFIG } from '../../firmware-sim/src/config/lock-config.js';
import { simulatedHardware } from '../../firmware-sim/src/runtime/hardware.js';
import { LockRuntime } from '../../firmware-sim/src/runtime/lock-runtime.js';
import { TRACE_KINDS, generateTrace } from '../../firmware-sim/src/theft/traces.js';
import type { TraceKind } from '../../firmware-sim/src/theft/traces.js';
import type {
  AccelSample,
  SimLockControl,
  SimLockSnapshot,
  SimLockState,
  TheftMark,
  TraceInput,
} from '../../cloud-bridge/src/dashboard/sim-control.js';

const G = 9.80665;

function mqttState(link: string | undefined): SimLockSnapshot['mqtt'] {
  if (link === undefined) return 'disabled';
  return link === 'up' ? 'connected' : link === 'stopped' ? 'offline' : 'connecting';
}

/** Opens a simulated lock `lockId` trusting `issuerRawHex` (Ed25519) as its issuer anchor. */
export async function openRuntimeControl(
  lockId: string,
  issuerRawHex: string,
  seed: number,
  /** The cloud's broker and the lock's MQTT password (64 hex digits); the cloud must register the lock. */
  mqtt?: { url: string; password: string },
): Promise<SimLockControl & { runtime: LockRuntime; close(): Promise<void> }> {
  const clock = new SystemClock({ unref: true });
  const dataDir = mkdtempSync(join(tmpdir(), `tandem-dash-${lockId}-`));
  if (mqtt) writeFileSync(join(dataDir, 'mqtt-password'), `${mqtt.password}\n`, { mode: 0o600 });
  const config = {
    ...DEFAULT_CONFIG,
    dataDir,
    ...(mqtt
      ? {
          // Quick reconnects: the lock is registered with the cloud only after it made its device key.
          mqtt: { ...DEFAULT_MQTT_CONFIG, url: mqtt.url, reconnectInitialMs: 100, reconnectMaxMs: 300 },
        }
      : {}),
  };
  const hardware = simulatedHardware(clock, config.hardware, seed);
  const runtime = await LockRuntime.open({ config, hardware, clock, simulated: true });
  for (const line of [
    `provision lock-id ${lockId}`,
    `provision anchor add 01 EdDSA ${issuerRawHex} issuer tandem`,
  ]) {
    const r = await runtime.console.execute(line);
    if (!r.ok) throw new Error(`console: ${line}: ${r.text}`);
  }
  await runtime.reload();
  const sim = hardware.sim!;
  const changes = new Set<(s: SimLockSnapshot) => void>();
  const started = Date.now();

  const snapshot = (): SimLockSnapshot => {
    const st = runtime.status();
    const bound = runtime.trustedClock.bound();
    const state = String(st.state);
    const mapped: SimLockState =
      state === 'unlocked'
        ? 'open'
        : ((['locked', 'unlocking', 'alarm', 'jammed', 'fault'] as const).find((s) => s === state) ??
          'fault');
    return {
      lockId,
      state: runtime.corrupt.length > 0 ? 'safe-mode' : mapped,
      solenoid: sim.mechanism.solenoid.isEnergised(),
      latched: sim.mechanism.shackle === 'closed',
      powered: true,
      time: {
        earliest: bound.earliest,
        latest: runtime.trustedClock.uncertainty() === null ? null : (bound.latest ?? null),
        source: runtime.trustedClock.uncertainty() === null ? 'floor' : 'beacon',
      },
      revocation: { held: runtime.stores.revocations.version, acknowledged: null },
      outboxDepth: runtime.stores.outbox.size,
      lockouts: runtime.authority?.lockedOut ? 1 : 0,
      radio: { up: false, profile: 'none', latencyMs: 0, loss: 0, mtu: 23, connected: false },
      mqtt: mqttState(runtime.mqtt?.status().link),
    };
  };
  let last = JSON.stringify(snapshot());
  const emit = () => {
    const s = snapshot();
    const text = JSON.stringify(s);
    if (text === last) return;
    last = text;
    for (const l of changes) l(s);
  };
  const stops = [runtime.stateMachine.onTransition(() => emit())];
  // The outbox and the clock change without a transition: look at them a few times a second.
  const poll = setInterval(emit, 200);
  poll.unref();

  const notModelled = async (): Promise<void> => {
    throw new Error('not modelled by the test adapter of the browser test');
  };
  return {
    lockId,
    runtime,
    snapshot,
    onChange(l) {
      changes.add(l);
      return () => changes.delete(l);
    },
    onAccel(l: (s: AccelSample) => void) {
      // Hardware samples are m/s² at milliseconds since open; the dashboard wants g at Unix milliseconds.
      return hardware.accelerometer.onSample((s) =>
        l({ t: started + s.t, x: s.x / G, y: s.y / G, z: s.z / G }),
      );
    },
    onTheft(l: (m: TheftMark) => void) {
      return runtime.theft.onEvent((e) => l({ t: started + e.t, kind: e.kind }));
    },
    traces: () => TRACE_KINDS,
    async playTrace(trace: TraceInput) {
      const samples =
        'name' in trace
          ? generateTrace(trace.name as TraceKind)
          : trace.samples.map((s) => ({ ...s, x: s.x * G, y: s.y * G, z: s.z * G }));
      sim.accelerometer.setTrace(samples.map((s): Vec3 => ({ x: s.x, y: s.y, z: s.z })));
    },
    async bump() {
      sim.accelerometer.bump();
    },
    async shake(ms: number) {
      sim.accelerometer.shake(ms);
    },
    cutPower: notModelled,
    restorePower: notModelled,
    resetClock: notModelled,
    setRadio: notModelled,
    setMqtt: notModelled,
    async jamLatch(jammed: boolean) {
      if (jammed) sim.mechanism.injectFault('jammed');
      else sim.mechanism.clearFault();
      emit();
    },
    async pushShackle() {
      sim.mechanism.push();
      emit();
    },
    async close() {
      clearInterval(poll);
      for (const s of stops) s();
      await runtime.close();
    },
  };
}
