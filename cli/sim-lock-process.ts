/**
 * One simulated lock as its own process, started by `tandem start` (issue 11 §1) through
 * {@link ProcessSimLockControl} in `sim-lock-control.ts`. Each lock is a process because bleno is a singleton
 * (one per process, hardware/README.md "Virtual radio"), and because a power cut is then what it is on the
 * bench: the process is killed, the coil de-energises, the files stay as the last fsync left them, and the
 * next power-up starts again from them.
 *
 * It runs the real {@link LockRuntime} on simulated hardware and the real system clock, its console on a
 * pseudo-terminal (socat) when asked, BLE on the parent's virtual radio (`connectRadio`) and the MQTT link
 * to the cloud's broker; it speaks to the parent over Node's IPC channel (messages in `SimLockMessage`).
 * The data directory is guarded by `lock.pid` (two locks never share one); the process ends, closing the
 * runtime (locked), when the parent says so or the IPC channel goes away.
 *
 * Run only by the parent: `fork('cli/sim-lock-process.ts', [JSON options])`.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';
import type { IClientOptions, MqttClient } from 'mqtt';
import { SystemClock } from '../hardware/src/clock.js';
import { PtyConsole } from '../hardware/src/serial/pty-console.js';
import { DEFAULT_CONFIG, DEFAULT_MQTT_CONFIG } from '../firmware-sim/src/config/lock-config.js';
import type { LockFileConfig } from '../firmware-sim/src/config/lock-config.js';
import { simulatedHardware } from '../firmware-sim/src/runtime/hardware.js';
import { LockRuntime } from '../firmware-sim/src/runtime/lock-runtime.js';
import { loadOrCreateMqttPassword } from '../firmware-sim/src/mqtt/credentials.js';
import { mqttPasswordPath } from '../firmware-sim/src/mqtt/start-lock-mqtt.js';
import type { MqttConnect } from '../firmware-sim/src/mqtt/lock-mqtt-client.js';
import type { BlenoLoader } from '../firmware-sim/src/ble/index.js';
import { parseTraceCsv } from '../firmware-sim/src/theft/traces.js';
import type { AccelSample as HwSample } from '../hardware/src/interfaces.js';
import type { SimLockSnapshot, TheftMark } from '../cloud-bridge/src/dashboard/sim-control.js';
import type { ChildMessage, ParentRequest, SimLockProcessOptions } from './sim-lock-control.js';
import { G, SHIPPED_TRACES, claimPidFile, tracePath } from './sim-lock-control.js';

const debug = createDebug('tandem:start:lock');

function send(m: ChildMessage): void {
  if (process.connected) process.send!(m);
}

/** The lock's configuration in the simulated system: the cloud's broker, quick reconnects for testers. */
function lockConfig(o: SimLockProcessOptions): LockFileConfig {
  return {
    ...DEFAULT_CONFIG,
    dataDir: o.dataDir,
    behaviour: { pulseMs: 300, autoRelockS: 10, timeZone: 'Europe/Berlin' },
    ...(o.mqttUrl === undefined
      ? {}
      : {
          mqtt: {
            ...DEFAULT_MQTT_CONFIG,
            url: o.mqttUrl,
            // A tester who restores the link wants to see it back within seconds, not five minutes.
            reconnectInitialMs: 250,
            reconnectMaxMs: 3000,
          },
        }),
  };
}

/**
 * MQTT.js's connect behind a switch: while the tester has the link down, the lock's socket is destroyed (as a
 * pulled network cable would leave it: no clean DISCONNECT, the broker's will fires) and reconnects are sent
 * to a port nobody listens on, so the lock's own backoff runs as it would offline.
 */
class MqttSwitch {
  real: MqttConnect | undefined;
  up = true;
  readonly #clients = new Set<MqttClient>();

  readonly connect: MqttConnect = (url: string, options: IClientOptions) => {
    if (this.real === undefined) throw new Error('MQTT.js is not loaded');
    const c = this.real(this.up ? url : 'mqtt://127.0.0.1:1', options);
    this.#clients.add(c);
    c.on('close', () => this.#clients.delete(c));
    return c;
  };

  setUp(up: boolean): void {
    this.up = up;
    if (!up) for (const c of this.#clients) c.stream?.destroy();
  }
}

async function start(o: SimLockProcessOptions): Promise<void> {
  const release = await claimPidFile(o.dataDir, 'lock.pid', 'lock');
  const clock = new SystemClock();
  const config = lockConfig(o);
  const hardware = simulatedHardware(clock, config.hardware, o.deviceId + 1);
  const sim = hardware.sim!;
  // The simulated gauge's level survives a power cut as a real gauge's charge would ([TANDEM-MQTT-14]).
  const batteryFile = join(o.dataDir, 'sim-battery');
  const savedBattery = await readFile(batteryFile, 'utf8').then(
    (t) => Number(t.trim()),
    () => NaN,
  );
  if (Number.isInteger(savedBattery) && savedBattery >= 0 && savedBattery <= 100)
    sim.battery.set(savedBattery);
  const mqttSwitch = new MqttSwitch();
  if (o.mqttUrl !== undefined) mqttSwitch.real = (await import('mqtt')).connect as MqttConnect;
  if (o.mqttDown === true) mqttSwitch.setUp(false);

  let ble: BlenoLoader | undefined;
  if (o.radioPath !== undefined) {
    const vr = await import('../hardware/src/virtual-radio/index.js');
    vr.installVirtualHci(await vr.connectRadio(o.radioPath));
    ble = () => vr.loadBleno({ deviceId: o.deviceId });
  }
  let console: PtyConsole | undefined;
  if (o.console === 'pty') {
    const dir = join(o.dataDir, 'pty');
    // Links left by a lock that lost power would make socat refuse to create them again.
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    console = new PtyConsole({ dir, linkName: 'lock', peerLinkName: 'console' });
  }
  const runtime = await LockRuntime.open({
    config,
    hardware,
    clock,
    ...(console ? { console } : {}),
    simulated: true,
    ...(ble ? { ble } : {}),
    ...(o.mqttUrl === undefined ? {} : { mqttConnect: mqttSwitch.connect }),
    onFatal: (e) => {
      debug('BLE fatal: %s', e.message);
      // As under systemd: the process ends and its parent (the power supply, here) restarts it.
      void stop(70);
    },
  });

  runtime.battery?.onChange((level) => {
    if (level !== undefined) void writeFile(batteryFile, `${level}\n`).catch(() => undefined);
  });

  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const cutShort = setTimeout(() => process.exit(code === 0 ? 70 : code), 5000);
    cutShort.unref();
    await runtime.close().catch(() => undefined);
    await release();
    process.exit(code);
  };
  process.on('disconnect', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  process.on('SIGINT', () => void stop(0));

  // Feeds: state as it changes, accelerometer samples in batches, theft decisions.
  let last = '';
  const snapshot = (): Omit<SimLockSnapshot, 'powered' | 'radio'> & { revocationAckLocal?: never } => {
    const bound = runtime.time.bound();
    const unknown = runtime.time.uncertainty() === null;
    const link = runtime.mqtt?.status().link;
    const state = runtime.stateMachine.state;
    return {
      lockId: runtime.lockId ?? '(unprovisioned)',
      state: state === 'relocked' ? 'locked' : state,
      solenoid: sim.mechanism.solenoid.hasCurrent(),
      latched: sim.mechanism.shackle === 'closed',
      time: {
        earliest: bound.earliest,
        latest: unknown ? null : bound.latest,
        source: runtime.time.source(),
      },
      revocation: { held: runtime.stores.revocations.version, acknowledged: null },
      outboxDepth: runtime.stores.outbox.size,
      lockouts: runtime.authority?.lockedOutSubjects.length ?? 0,
      battery: runtime.battery?.level ?? null,
      mqtt:
        o.mqttUrl === undefined
          ? 'disabled'
          : !mqttSwitch.up
            ? 'offline'
            : link === 'up'
              ? 'connected'
              : link === 'connecting'
                ? 'connecting'
                : 'offline',
    };
  };
  const push = (): void => {
    const s = snapshot();
    const text = JSON.stringify(s);
    if (text === last) return;
    last = text;
    send({ type: 'snapshot', snapshot: s });
  };
  runtime.stateMachine.onTransition(() => push());
  sim.mechanism.solenoid.onCurrentChange(() => push());
  // Time, outbox and link change without an event of their own: looked at a few times a second.
  setInterval(push, 250).unref();

  // Sample times are the lock's monotonic clock; the dashboard plots Unix milliseconds.
  const toUnixMs = (t: number): number => Math.round(Date.now() - (clock.now() - t));
  let batch: HwSample[] = [];
  sim.accelerometer.onSample((s) => {
    batch.push(s);
  });
  setInterval(() => {
    if (batch.length === 0) return;
    send({
      type: 'accel',
      samples: batch.map((s) => ({ t: toUnixMs(s.t), x: s.x / G, y: s.y / G, z: s.z / G })),
    });
    batch = [];
  }, 100).unref();
  let alarm = runtime.theft.alarm;
  const mark = (m: TheftMark): void => send({ type: 'theft', mark: m });
  runtime.theft.onEvent((e) => mark({ t: toUnixMs(e.t), kind: e.kind }));
  runtime.stateMachine.onTransition((t) => {
    // The runtime's own listener (registered first) has armed or disarmed the detector by now.
    const now = runtime.theft.alarm;
    if (t.reason === 'alarm-cleared') mark({ t: Date.now(), kind: 'alarm-cleared' });
    if (alarm === 'disarmed' && now !== 'disarmed') mark({ t: Date.now(), kind: 'armed' });
    if (alarm !== 'disarmed' && now === 'disarmed') mark({ t: Date.now(), kind: 'disarmed' });
    alarm = now;
  });

  const handlers: Record<ParentRequest['op'], (r: ParentRequest) => Promise<unknown>> = {
    credentials: async () => ({
      lockId: runtime.lockId ?? null,
      claimed: runtime.claimed,
      deviceKey: Buffer.from(runtime.devicePublicKey).toString('hex'),
      password: o.mqttUrl === undefined ? null : await loadOrCreateMqttPassword(mqttPasswordPath(config)),
    }),
    // Provisioning goes through the console's own commands (flow 1), as a bench operator would type them.
    console: async (r) => {
      const reply = await runtime.console.execute((r as { line: string }).line);
      if (!reply.ok) throw new Error(`${reply.code ?? 'ERR_CONSOLE'}: ${reply.text}`);
      return reply.text;
    },
    bump: async () => sim.accelerometer.bump(),
    shake: async (r) => sim.accelerometer.shake((r as { ms: number }).ms),
    playTrace: async (r) => {
      const t = (
        r as { trace: { name: string } | { samples: { t: number; x: number; y: number; z: number }[] } }
      ).trace;
      if ('name' in t) {
        if (!SHIPPED_TRACES.includes(t.name))
          throw new Error(`no shipped trace named ${JSON.stringify(t.name)}`);
        const samples = parseTraceCsv(await readFile(tracePath(t.name), 'utf8'));
        sim.accelerometer.setTrace(resample(samples, 100, sim.accelerometer.sampleRateHz));
      } else {
        const t0 = t.samples[0]!.t;
        const rel = t.samples.map((s) => ({ t: s.t - t0, x: s.x * G, y: s.y * G, z: s.z * G }));
        sim.accelerometer.setTrace(resampleTimed(rel, sim.accelerometer.sampleRateHz));
      }
    },
    jamLatch: async (r) => {
      if ((r as { jammed: boolean }).jammed) sim.mechanism.injectFault('jammed');
      else sim.mechanism.clearFault();
      push();
    },
    pushShackle: async () => {
      const closed = sim.mechanism.push();
      if (!closed) throw new Error('the shackle cannot be pushed shut while the solenoid holds the bolt');
    },
    setMqtt: async (r) => {
      mqttSwitch.setUp((r as { up: boolean }).up);
      if ((r as { up: boolean }).up) runtime.mqtt?.kick();
      push();
    },
    close: async () => {
      setImmediate(() => void stop(0));
    },
  };
  process.on('message', (raw: unknown) => {
    const r = raw as ParentRequest;
    const h = handlers[r.op];
    if (h === undefined) {
      send({ type: 'reply', id: r.id, ok: false, error: `ERR_SIM_USAGE: unknown operation ${String(r.op)}` });
      return;
    }
    h(r).then(
      (value) => {
        push();
        send({ type: 'reply', id: r.id, ok: true, value: value ?? null });
      },
      (e: unknown) =>
        send({
          type: 'reply',
          id: r.id,
          ok: false,
          error: e instanceof Error ? e.message : String(e),
        }),
    );
  });
  push();
  send({
    type: 'ready',
    pid: process.pid,
    consolePath: console?.peerPath ?? null,
    snapshot: snapshot(),
  });
}

/** A trace sampled at `fromHz` as the accelerometer's `toHz` samples (nearest sample). */
function resample(samples: readonly HwSample[], fromHz: number, toHz: number): HwSample[] {
  if (fromHz === toHz) return [...samples];
  const n = Math.floor((samples.length * toHz) / fromHz);
  return Array.from(
    { length: n },
    (_, i) => samples[Math.min(samples.length - 1, Math.round((i * fromHz) / toHz))]!,
  );
}

/** Samples with their own times (ms from the first) as one per accelerometer period (the latest not after). */
function resampleTimed(samples: readonly HwSample[], hz: number): HwSample[] {
  const end = samples[samples.length - 1]!.t;
  const out: HwSample[] = [];
  let j = 0;
  for (let t = 0; t <= end; t += 1000 / hz) {
    while (j + 1 < samples.length && samples[j + 1]!.t <= t) j++;
    out.push(samples[j]!);
  }
  return out;
}

const options = JSON.parse(process.argv[2] ?? '{}') as SimLockProcessOptions;
start(options).catch((e: unknown) => {
  const code = (e as { code?: unknown }).code;
  send({
    type: 'failed',
    error: `${typeof code === 'string' ? code : 'ERR_SIM_START'}: ${e instanceof Error ? e.message : String(e)}`,
  });
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
});
