/**
 * The whole sync on Mosquitto (Debian's package, started by the test) instead of aedes (issue 9, §1): the
 * repository's config (cloud-bridge/mosquitto/mosquitto.conf), the password file of `$7$` records and the ACL
 * written by the cloud. Two bridge instances share the work through an MQTT 5 shared subscription.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bridge } from '../../cloud-bridge/src/bridge.js';
import { mosquittoAcl, mosquittoPasswordFile } from '../../cloud-bridge/src/acl.js';
import { BRIDGE_USERNAME, generatePassword, hashPassword } from '../../cloud-bridge/src/credentials.js';
import { issuerFromKey } from '../../cloud-bridge/src/issuer.js';
import type { SqlCloudStore } from '../../cloud-bridge/src/store/sql-store.js';
import { openSqlStore } from '../../cloud-bridge/src/store/sql-store.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { topicFor } from '../../protocol/src/mqtt.js';
import { verifyRevocationUpdate } from '../../protocol/src/revocation.js';
import { verifyTimeBeacon } from '../../protocol/src/time-beacon.js';
import { FakeLock, until } from '../../cloud-bridge/test/fake-lock.js';
import type { TestServer } from '../../cloud-bridge/test/servers.js';
import { mosquittoMissing, startMosquitto } from '../../cloud-bridge/test/servers.js';

const missing = mosquittoMissing();
const dir = mkdtempSync(join(tmpdir(), 'tandem-mosq-'));
const issuer = issuerFromKey(generateKeyPair('EdDSA'));
const bridgePassword = generatePassword();
let server: TestServer;
let store: SqlCloudStore;
let bridges: Bridge[] = [];
const locks = ['lock-m1', 'lock-m2'].map((id) => new FakeLock(id, issuer.key.publicKey));

beforeAll(async () => {
  if (missing !== undefined) return;
  store = await openSqlStore({ kind: 'sqlite', path: join(dir, 'cloud.db') });
  for (const l of locks) await l.register(store);
  const registered = await store.listLocks();
  server = await startMosquitto(readFileSync('cloud-bridge/mosquitto/mosquitto.conf', 'utf8'), {
    passwd: mosquittoPasswordFile([
      [BRIDGE_USERNAME, hashPassword(bridgePassword)],
      ...registered.map((l) => [l.lockId, l.passwordHash!] as const),
    ]),
    acl: mosquittoAcl(),
  });
  const url = `mqtt://127.0.0.1:${server.port}`;
  bridges = await Promise.all(
    [0, 1].map((i) =>
      Bridge.start({
        url,
        password: bridgePassword,
        clientId: `tandem-bridge-${i}`,
        protocolVersion: 5,
        sharedGroup: 'tandem',
        store,
        issuer,
        beaconIntervalMs: 0,
        log: () => undefined,
      }),
    ),
  );
  for (const l of locks) await l.connect(url);
}, 60_000);
afterAll(async () => {
  for (const l of locks) await l.close();
  for (const b of bridges) await b.close();
  await store?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(missing !== undefined)(
  `Mosquitto in aedes' place${missing ? ` (skipped: ${missing})` : ''}`,
  () => {
    it('refuses a wrong password and anonymous clients', async () => {
      const url = `mqtt://127.0.0.1:${server.port}`;
      await expect(
        mqtt.connectAsync(url, { username: 'lock-m1', password: locks[1]!.password, reconnectPeriod: 0 }),
      ).rejects.toThrow();
      await expect(mqtt.connectAsync(url, { reconnectPeriod: 0 })).rejects.toThrow();
    });

    it("drops a lock's publish on another lock's topic (Mosquitto's ACL), storing nothing", async () => {
      const [a, b] = locks as [FakeLock, FakeLock];
      await a.publish('alert', a.alert(), 'lock-m2');
      a.sequence = 0;
      a.outbox.clear();
      // A genuine alert of lock-m2 afterwards arrives; lock-m1's never does.
      await b.publish('alert', b.alert());
      await until(async () => (await store.countRecords('lock-m2')) === 1, 'lock-m2 alert');
      expect(await store.countRecords('lock-m1')).toBe(0);
      expect(
        (await store.listEvents({ lockId: 'lock-m2', limit: 10 })).filter((e) => e.kind === 'forgery'),
      ).toEqual([]);
    });

    it('stores alerts once across two bridges sharing one subscription, and acknowledges them all', async () => {
      const a = locks[0]!;
      for (let i = 0; i < 20; i++) await a.publish(i % 2 ? 'audit' : 'alert', i % 2 ? a.audit() : a.alert());
      await until(() => a.acks.at(-1)?.sequence === 20, 'ack of sequence 20');
      expect(await store.countRecords('lock-m1')).toBe(20);
      expect(a.outbox.size).toBe(0);
      expect(
        (await store.listEvents({ lockId: 'lock-m1', limit: 100 })).filter((e) => e.kind === 'chain-break'),
      ).toEqual([]);
    });

    it('answers a time request and delivers a revocation update, whose acknowledgement is recorded', async () => {
      const b = locks[1]!;
      const { bytes, nonce } = b.timeRequest();
      const n = b.received.length;
      await b.publish('time-request', bytes);
      await until(() => b.received.slice(n).some((m) => m.topic === topicFor('beacon', 'lock-m2')), 'beacon');
      const beacon = verifyTimeBeacon(
        b.received.slice(n).find((m) => m.topic === topicFor('beacon', 'lock-m2'))!.payload,
        () => issuer.key.publicKey,
        'lock-m2',
      );
      expect(Buffer.from(beacon.nonce!).equals(Buffer.from(nonce))).toBe(true);
      const r = await bridges[0]!.revoke('lock-m2', Buffer.from('aabb', 'hex'), 4_000_000_000);
      await until(() => b.received.some((m) => m.topic === topicFor('revocation', 'lock-m2')), 'revocation');
      const update = verifyRevocationUpdate(
        b.received.find((m) => m.topic === topicFor('revocation', 'lock-m2'))!.payload,
        () => issuer.key.publicKey,
        'lock-m2',
      );
      expect(update.version).toBe(r.version);
      await b.publish('revocation-ack', b.revocationAck(r.version));
      await until(
        async () => (await store.getRevocationAck('lock-m2'))?.version === r.version,
        'revocation ack',
      );
    });
  },
);
