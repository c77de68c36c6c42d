/**
 * Home Assistant's Lock button on Mosquitto ([TANDEM-RCMD-8], [TANDEM-HA-5]): Debian's mosquitto with the
 * repository's mosquitto.conf and the password file and ACL that `tandem cloud mosquitto` writes, the real
 * bridge (MQTT 5, shared subscription), the lock's real MQTT client, and Home Assistant as an MQTT.js client
 * logged in as `tandem.homeassistant`. The ACL alone stops Home Assistant's user from publishing even a
 * genuine issuer-signed command to the lock's command topic (PUBACK 0x87, nothing applied); its `LOCK` on
 * `tandem/ha/L/set` makes the lock lock, without a pulse, only while remote locking is on.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { topicFor } from '../../protocol/src/mqtt.js';
import { Command } from '../../protocol/src/pop.js';
import { encodeRemoteCommand } from '../../protocol/src/remote-command.js';
import { Status } from '../../protocol/src/status.js';
import { HOME_ASSISTANT_USERNAME } from '../../cloud-bridge/src/acl.js';
import { Bridge } from '../../cloud-bridge/src/bridge.js';
import { generatePassword } from '../../cloud-bridge/src/credentials.js';
import type { Issuer } from '../../cloud-bridge/src/issuer.js';
import { issuerFromKey } from '../../cloud-bridge/src/issuer.js';
import type { RemoteCommandOutcome } from '../../cloud-bridge/src/remote-command.js';
import type { SqlCloudStore } from '../../cloud-bridge/src/store/sql-store.js';
import { openSqlStore } from '../../cloud-bridge/src/store/sql-store.js';
import type { TestServer } from '../../cloud-bridge/test/servers.js';
import { mosquittoMissing } from '../../cloud-bridge/test/servers.js';
import type { LockMqttClient } from '../../firmware-sim/src/mqtt/lock-mqtt-client.js';
import { LOCK } from '../../firmware-sim/test/lock-harness.js';
import { lockMqttClient, makeCloudLock, registerLock, startCloudMosquitto } from './fixtures/cloud-lock.js';
import type { Lock } from '../../firmware-sim/test/lock-harness.js';
import { waitFor } from '../../firmware-sim/test/mqtt-fixture.js';

const missing = mosquittoMissing();
const dir = mkdtempSync(join(tmpdir(), 'tandem-mosq-ha-'));
const PASSWORD = randomBytes(32).toString('hex');
const HA_PASSWORD = generatePassword();
const bridgePassword = generatePassword();
let issuer: Issuer;
let server: TestServer;
let store: SqlCloudStore;
let bridge: Bridge;
let lock: Lock;
let client: LockMqttClient;
let ha: MqttClient;
const outcomes: RemoteCommandOutcome[] = [];
const applied: Status[] = [];

const now = (): number => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  if (missing !== undefined) return;
  issuer = issuerFromKey(generateKeyPair('EdDSA'));
  lock = await makeCloudLock(issuer);
  store = await openSqlStore({ kind: 'sqlite', path: join(dir, 'cloud.db') });
  await registerLock(store, lock, PASSWORD);
  let url: string;
  ({ server, url } = await startCloudMosquitto(store, bridgePassword, join(dir, 'mosquitto'), HA_PASSWORD));
  bridge = await Bridge.start({
    url,
    password: bridgePassword,
    protocolVersion: 5,
    sharedGroup: 'tandem',
    store,
    issuer,
    beaconIntervalMs: 0,
    log: () => undefined,
    homeAssistant: { settings: (id) => store.getLockSettings(id) },
  });
  bridge.remoteCommands!.onCommand((o) => outcomes.push(o));
  client = lockMqttClient(lock, url, PASSWORD);
  client.on('applied', (e) => e.kind === 'command' && applied.push(e.status));
  await client.start();
  await waitFor(() => lock.authority.snapshot().uncertainty !== null, 'the lock to learn the time');
  ha = await mqtt.connectAsync(url, {
    username: HOME_ASSISTANT_USERNAME,
    password: HA_PASSWORD,
    clientId: 'home-assistant',
    protocolVersion: 5,
    reconnectPeriod: 0,
  });
  lock.mech.injectFault('jammed');
  const token = lock.token({ nbf: now() - 60, iat: now() - 60, exp: now() + 3600, schedule: undefined });
  expect(Status[(await lock.send(lock.request({ chain: [token] }))).status]).toBe('JAMMED');
  lock.mech.clearFault();
}, 60_000);

afterAll(async () => {
  await ha?.endAsync(true);
  await client?.stop(200);
  await bridge?.close();
  await store?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(missing !== undefined)(
  `Home Assistant's Lock button on Mosquitto${missing ? ` (skipped: ${missing})` : ''}`,
  () => {
    it("the ACL refuses Home Assistant's user on the lock's command topic, even a genuine signed command", async () => {
      const genuine = encodeRemoteCommand(
        { lockId: LOCK, command: Command.LOCK, sequence: 99, issuedAt: now() - 30, expiry: now() + 30 },
        issuer.key,
        issuer.kid,
      );
      const code = await new Promise<number | undefined>((resolve, reject) => {
        ha.publish(topicFor('command', LOCK), Buffer.from(genuine), { qos: 1 }, (err, packet) => {
          if (err !== undefined && err !== null && !('code' in err)) return reject(err);
          resolve(
            (err as { code?: number } | undefined)?.code ??
              (packet as { reasonCode?: number } | undefined)?.reasonCode,
          );
        });
      });
      // 0x87 Not authorized: MQTT 5 PUBACK reason code ([MQTT-3.4.2.1]).
      expect(code).toBe(0x87);
    });

    it('LOCK with remote locking off sends nothing; with it on, the lock locks without a pulse', async () => {
      await ha.publishAsync(`tandem/ha/${LOCK}/set`, 'LOCK', { qos: 1 });
      await waitFor(() => outcomes.length === 1, "the bridge's first answer");
      expect(outcomes[0]).toMatchObject({ outcome: 'refused', lockId: LOCK });
      await store.setLockSettings(LOCK, { remoteLocking: true });
      const pulses = lock.pulses.length;
      await ha.publishAsync(`tandem/ha/${LOCK}/set`, 'LOCK', { qos: 1 });
      await waitFor(() => outcomes.length === 2, "the bridge's second answer");
      expect(outcomes[1]).toMatchObject({ outcome: 'sent', lockId: LOCK, sequence: 1 });
      await waitFor(() => applied.length > 0, 'the lock to run the command');
      // The genuine command Home Assistant's user published (sequence 99) never arrived: only this one did.
      expect(applied).toEqual([Status.OK]);
      expect(lock.sm.state).toBe('locked');
      expect(lock.pulses).toHaveLength(pulses);
    });
  },
);
