/**
 * Home Assistant's Lock button end to end ([TANDEM-HA-5], SPEC.md §9.11) over 127.0.0.1: the real cloud (aedes
 * with its credentials and ACL, the bridge, the SQLite store), the lock's real MQTT client, and Home Assistant
 * played by an MQTT.js client logged in as its own broker user. Remote locking off, `UNLOCK`, and a direct
 * publish to the lock's command topic reach nothing; `LOCK` with remote locking on makes the lock lock (no
 * pulse) and Home Assistant sees the signed state say so.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { connect } from 'mqtt';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topicFor } from '../../protocol/src/mqtt.js';
import { Status } from '../../protocol/src/status.js';
import { HOME_ASSISTANT_USERNAME } from '../../cloud-bridge/src/acl.js';
import type { Cloud } from '../../cloud-bridge/src/cloud.js';
import { startCloud } from '../../cloud-bridge/src/cloud.js';
import type { LogEntry } from '../../cloud-bridge/src/log.js';
import type { RemoteCommandOutcome } from '../../cloud-bridge/src/remote-command.js';
import type { LockMqttClient } from '../../firmware-sim/src/mqtt/lock-mqtt-client.js';
import { LOCK } from '../../firmware-sim/test/lock-harness.js';
import { lockMqttClient, makeCloudLock, registerLock } from './fixtures/cloud-lock.js';
import type { Lock } from '../../firmware-sim/test/lock-harness.js';
import { waitFor } from '../../firmware-sim/test/mqtt-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-ha-lock-'));
const PASSWORD = randomBytes(32).toString('hex');
const logs: LogEntry[] = [];
const outcomes: RemoteCommandOutcome[] = [];
/** What the lock's link did with each command it received. */
const applied: Status[] = [];
const haStates: { lock: string; state: string }[] = [];
let cloud: Cloud;
let lock: Lock;
let client: LockMqttClient;
let ha: MqttClient;

const now = (): number => Math.floor(Date.now() / 1000);

function homeAssistant(): MqttClient {
  return connect(cloud.mqttUrl, {
    clientId: `home-assistant-${randomBytes(3).toString('hex')}`,
    username: HOME_ASSISTANT_USERNAME,
    password: readFileSync(join(dir, 'homeassistant.password'), 'utf8').trim(),
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
}

beforeAll(async () => {
  cloud = await startCloud({
    dataDir: dir,
    mqtt: { port: 0 },
    brokerPersistence: { kind: 'memory' },
    beaconIntervalMs: 0,
    log: (e) => logs.push(e),
  });
  lock = await makeCloudLock(cloud.issuer);
  await registerLock(cloud.store, lock, PASSWORD);
  cloud.bridge.remoteCommands!.onCommand((o) => outcomes.push(o));
  client = lockMqttClient(lock, cloud.mqttUrl, PASSWORD);
  client.on('applied', (e) => e.kind === 'command' && applied.push(e.status));
  await client.start();
  await waitFor(() => lock.authority.snapshot().uncertainty !== null, 'the lock to learn the time');
  ha = homeAssistant();
  await new Promise<void>((resolve, reject) => {
    ha.once('connect', () => resolve());
    ha.once('error', reject);
  });
  ha.on('message', (topic, payload) => {
    if (topic === `tandem/ha/${LOCK}/state`) haStates.push(JSON.parse(payload.toString()) as never);
  });
  const [granted] = await ha.subscribeAsync(`tandem/ha/${LOCK}/state`, { qos: 1 });
  expect(granted?.qos).toBe(1);
  // A lock left jammed by an unlock whose shackle did not move: LOCK has something to do.
  lock.mech.injectFault('jammed');
  const token = lock.token({ nbf: now() - 60, iat: now() - 60, exp: now() + 3600, schedule: undefined });
  expect(Status[(await lock.send(lock.request({ chain: [token] }))).status]).toBe('JAMMED');
  lock.mech.clearFault();
});

afterAll(async () => {
  await ha?.endAsync(true);
  await client?.stop(200);
  await cloud?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("Home Assistant's Lock button ([TANDEM-HA-5], [TANDEM-RCMD-7], [TANDEM-RCMD-8])", () => {
  it('with remote locking off, LOCK is refused by the bridge and nothing is sent', async () => {
    await ha.publishAsync(`tandem/ha/${LOCK}/set`, 'LOCK', { qos: 1 });
    await waitFor(() => outcomes.length === 1, "the bridge's answer");
    expect(outcomes[0]).toMatchObject({ outcome: 'refused', lockId: LOCK });
    expect((outcomes[0] as { reason: string }).reason).toMatch(/remote locking is off/);
    expect(lock.sm.state).toBe('jammed');
  });

  it('with remote locking on, UNLOCK is refused by the bridge and nothing is sent', async () => {
    await cloud.store.setLockSettings(LOCK, { remoteLocking: true });
    await ha.publishAsync(`tandem/ha/${LOCK}/set`, 'UNLOCK', { qos: 1 });
    await waitFor(() => outcomes.length === 2, "the bridge's answer");
    expect(outcomes[1]).toMatchObject({ outcome: 'refused', lockId: LOCK });
    expect((outcomes[1] as { reason: string }).reason).toMatch(/UNLOCK is never sent/);
  });

  it("Home Assistant's user cannot publish to the lock's command topic: the broker refuses it", async () => {
    const rogue = homeAssistant();
    rogue.on('error', () => undefined);
    await new Promise<void>((resolve) => rogue.once('connect', () => resolve()));
    rogue.publish(topicFor('command', LOCK), Buffer.from('not a command'), { qos: 0 });
    await waitFor(
      () =>
        logs.some(
          (e) =>
            e.event === 'refused publish' &&
            e.who === 'home-assistant' &&
            (e.reason ?? '').startsWith(topicFor('command', LOCK)),
        ),
      'the broker to refuse the publish',
    );
    await rogue.endAsync(true);
  });

  it('with remote locking on, LOCK reaches the lock, which locks without a pulse, and Home Assistant sees it', async () => {
    const pulses = lock.pulses.length;
    await ha.publishAsync(`tandem/ha/${LOCK}/set`, 'LOCK', { qos: 1 });
    await waitFor(() => outcomes.length === 3, "the bridge's answer");
    expect(outcomes[2]).toMatchObject({ outcome: 'sent', lockId: LOCK, sequence: 1 });
    await waitFor(() => applied.length > 0, 'the lock to run the command');
    // Only this command ever reached the lock: the refused presses and the rogue publish sent nothing.
    expect(applied).toEqual([Status.OK]);
    expect(lock.sm.state).toBe('locked');
    expect(lock.pulses).toHaveLength(pulses);
    await waitFor(
      () => haStates.some((s) => s.lock === 'LOCKED' && s.state === 'locked'),
      'the signed state',
    );
    expect(await cloud.store.nextRemoteCommandSequence(LOCK)).toBe(2);
  });
});
