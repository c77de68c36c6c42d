// The dashboard's controls of a simulated lock (cli/sim-lock-control.ts) against the real thing: a lock process
// (LockRuntime on simulated hardware) on a virtual radio hosted here, with its MQTT link to a real cloud. Each
// control is checked by what the lock then does, not by what the adapter says: a power cut ends the process
// and a restart comes back locked with only the time floor ([TANDEM-TIME-6]); the MQTT switch takes the lock
// off the broker; the accelerometer's bump reaches the theft detector.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCloud } from '../../cloud-bridge/src/cloud.js';
import type { Cloud } from '../../cloud-bridge/src/cloud.js';
import { hashPassword } from '../../cloud-bridge/src/credentials.js';
import type { SimLockSnapshot, TheftMark } from '../../cloud-bridge/src/dashboard/sim-control.js';
import { RealClock, VirtualRadio, serveRadio } from '../../hardware/src/virtual-radio/index.js';
import type { RadioServer } from '../../hardware/src/virtual-radio/index.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { ProcessSimLockControl, provisionOverConsole } from '../../cli/sim-lock-control.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-simctl-'));
let cloud: Cloud;
let radio: VirtualRadio;
let server: RadioServer;
let lock: ProcessSimLockControl;
const owner = generateKeyPair('EdDSA');

async function until<T>(what: string, probe: () => T | undefined | false, tries = 400): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(lock?.snapshot())}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  cloud = await startCloud({
    dataDir: join(dir, 'cloud'),
    mqtt: { port: 0 },
    brokerPersistence: { kind: 'memory' },
    log: () => undefined,
  });
  radio = new VirtualRadio({ clock: new RealClock(), connectionIntervalMs: 30, linkLayerPayload: 27 });
  server = await serveRadio(radio, join(dir, 'radio.sock'));
  lock = await ProcessSimLockControl.start({
    dataDir: join(dir, 'lock'),
    deviceId: 0,
    radioPath: join(dir, 'radio.sock'),
    radio,
    mqttUrl: cloud.mqttUrl,
    console: 'none',
    acknowledged: async (id) => (await cloud.store.getRevocationAck(id))?.version ?? null,
  });
  const creds = await lock.credentials();
  await cloud.store.registerLock({
    lockId: 'sim-1',
    deviceKey: new Uint8Array(Buffer.from(creds.deviceKey, 'hex')),
    passwordHash: hashPassword(creds.password!),
    registeredAt: Date.now(),
  });
  await provisionOverConsole(
    lock,
    'sim-1',
    { kid: cloud.issuer.kid, alg: 'EdDSA', raw: cloud.issuer.key.publicKey.raw, name: 'tandem' },
    { kid: new TextEncoder().encode('adam-phone'), alg: 'EdDSA', raw: owner.publicKey.raw, name: 'adam' },
  );
}, 120_000);

afterAll(async () => {
  await lock?.close();
  await server?.close();
  radio?.close();
  await cloud?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('SimLockControl over a lock process', { timeout: 120_000 }, () => {
  it('is provisioned over its console, connects to the cloud and learns the time from it', async () => {
    expect(await lock.console('provision show')).toMatch(/lock-id=sim-1 claimed=true/);
    await until('MQTT up', () => lock.snapshot().mqtt === 'connected');
    const s = await until('a beacon', () =>
      lock.snapshot().time.latest !== null ? lock.snapshot() : undefined,
    );
    expect(s).toMatchObject({
      lockId: 'sim-1',
      state: 'locked',
      powered: true,
      latched: true,
      solenoid: false,
    });
    expect(s.time.earliest).toBeLessThanOrEqual(Date.now() / 1000 + 1);
    expect(s.time.latest!).toBeGreaterThanOrEqual(Date.now() / 1000 - 1);
  });

  it('streams the accelerometer in g and marks a bump the detector saw', async () => {
    const samples: number[] = [];
    const marks: TheftMark[] = [];
    const offA = lock.onAccel((a) => samples.push(a.z));
    const offT = lock.onTheft((m) => marks.push(m));
    await until('samples', () => samples.length >= 20);
    // A lock lying level feels 1 g on z.
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    expect(mean).toBeGreaterThan(0.9);
    expect(mean).toBeLessThan(1.1);
    // The detector takes its reference orientation armSettleMs (1 s) after the lock armed it; a bump during
    // that settling is not evidence of anything, so bump again (bounded) until the armed detector marks one.
    for (let i = 0; i < 10 && !marks.some((m) => m.kind === 'bump'); i++) {
      await lock.bump();
      await new Promise((r) => setTimeout(r, 1500));
    }
    await until('a bump mark', () => marks.some((m) => m.kind === 'bump'));
    offA();
    offT();
    // A bump is logged, not an alarm; nothing moved the solenoid.
    expect(lock.snapshot().state).toBe('locked');
    expect(lock.snapshot().solenoid).toBe(false);
  });

  it('a shipped tamper trace raises the alarm; an unknown trace is refused by name', async () => {
    await expect(lock.playTrace({ name: 'earthquake' })).rejects.toMatchObject({ code: 'ERR_SIM_TRACE' });
    const states: SimLockSnapshot['state'][] = [];
    const off = lock.onChange((s) => states.push(s.state));
    await lock.playTrace({ name: 'tamper' });
    await until('the alarm', () => lock.snapshot().state === 'alarm');
    off();
    expect(states).toContain('alarm');
    expect(lock.snapshot().solenoid).toBe(false);
    // The alarm's signed alert left through the outbox and reached the cloud.
    for (
      let i = 0;
      i < 200 && (await cloud.store.listAlerts({ lockId: 'sim-1', limit: 5 })).length === 0;
      i++
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await cloud.store.listAlerts({ lockId: 'sim-1', limit: 5 })).length).toBeGreaterThan(0);
  });

  it('the MQTT switch takes the lock off the broker and back', async () => {
    await lock.setMqtt(false);
    expect(lock.snapshot().mqtt).toBe('offline');
    await until(
      'the broker to lose the lock',
      () => !(cloud.broker.aedes as unknown as { clients: Record<string, unknown> }).clients['sim-1'],
    );
    await lock.setMqtt(true);
    await until('MQTT up again', () => lock.snapshot().mqtt === 'connected');
  });

  it('a power cut kills the process; power comes back locked, with only the time floor', async () => {
    const pid = lock.pid!;
    expect(alive(pid)).toBe(true);
    // The link stays down across the cut, so that nothing brings a beacon before we look.
    await lock.setMqtt(false);
    await lock.cutPower();
    expect(lock.snapshot().powered).toBe(false);
    expect(alive(pid)).toBe(false);
    await expect(lock.bump()).rejects.toMatchObject({ code: 'ERR_SIM_POWER' });
    // The pid file of the dead process is a leftover, and does not stop the next power-up.
    expect(readFileSync(join(dir, 'lock', 'lock.pid'), 'utf8').trim()).toBe(String(pid));
    await lock.restorePower();
    const s = lock.snapshot();
    expect(s.powered).toBe(true);
    expect(lock.pid).not.toBe(pid);
    expect(s.state).toBe('locked');
    expect(s.time.latest).toBeNull();
    expect(s.time.earliest).toBeGreaterThan(0);
    await lock.setMqtt(true);
    await until('a beacon after the restart', () => lock.snapshot().time.latest !== null);
  });

  it('radio: out of range and back; an unknown profile is refused', async () => {
    await lock.setRadio({ up: false, latencyMs: 20, loss: 0.05, mtu: 185 });
    expect(lock.snapshot().radio).toMatchObject({ up: false, latencyMs: 20, loss: 0.05, mtu: 185 });
    await lock.setRadio({ up: true, latencyMs: 0, loss: 0, mtu: 517 });
    expect(lock.snapshot().radio.up).toBe(true);
    await expect(lock.setRadio({ profile: 'walkie-talkie' })).rejects.toMatchObject({
      code: 'ERR_SIM_USAGE',
    });
  });

  it('a second lock on the same data directory is refused while the first runs', async () => {
    await expect(
      ProcessSimLockControl.start({ dataDir: join(dir, 'lock'), deviceId: 5, console: 'none' }),
    ).rejects.toMatchObject({ code: 'ERR_SIM_START', message: expect.stringMatching(/in use by the lock/) });
    expect(lock.snapshot().powered).toBe(true);
  });

  it('close stops the lock in order and removes its pid file', async () => {
    const pid = lock.pid!;
    await lock.close();
    expect(alive(pid)).toBe(false);
    expect(existsSync(join(dir, 'lock', 'lock.pid'))).toBe(false);
  });
});
