/**
 * A fleet on two aedes instances sharing one Redis (mqemitter-redis for messages, aedes-persistence-redis for
 * retained messages and sessions), Redis from Debian started by the test (issue 9, §1): a revocation
 * published through one instance reaches a lock connected to the other; a lock's QoS 1 alert published
 * through one instance reaches the bridge's persistent session (clean: false) on the other, is stored once
 * and acknowledged back; an alert published while the bridge is away waits in its Redis session and is
 * delivered when the bridge comes back on the OTHER instance.
 *
 * The alert rows failed before cloud-bridge/src/broker.ts stored one SUBSCRIBE packet's subscriptions once
 * (aedes calls `addSubscriptions` per filter with the whole packet, and aedes-persistence-redis resolves only
 * one of those calls: the bridge's SUBACK never came; see `trackPersistence` there).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../cloud-bridge/src/broker.js';
import { startBroker } from '../../cloud-bridge/src/broker.js';
import { Bridge } from '../../cloud-bridge/src/bridge.js';
import { BRIDGE_USERNAME, generatePassword, hashPassword } from '../../cloud-bridge/src/credentials.js';
import { issuerFromKey } from '../../cloud-bridge/src/issuer.js';
import type { SqlCloudStore } from '../../cloud-bridge/src/store/sql-store.js';
import { openSqlStore } from '../../cloud-bridge/src/store/sql-store.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { topicFor } from '../../protocol/src/mqtt.js';
import { verifyRevocationUpdate } from '../../protocol/src/revocation.js';
import { FakeLock, until } from '../../cloud-bridge/test/fake-lock.js';
import type { TestServer } from '../../cloud-bridge/test/servers.js';
import { redisMissing, startRedis } from '../../cloud-bridge/test/servers.js';

const missing = redisMissing();
const dir = mkdtempSync(join(tmpdir(), 'tandem-redis-'));
const issuer = issuerFromKey(generateKeyPair('EdDSA'));
const bridgePassword = generatePassword();
const bridgeRecord = hashPassword(bridgePassword);
let redis: TestServer;
let store: SqlCloudStore;
const brokers: Broker[] = [];
let bridge: Bridge | undefined;
const lock = new FakeLock('lock-r2', issuer.key.publicKey);

beforeAll(async () => {
  if (missing !== undefined) return;
  redis = await startRedis();
  store = await openSqlStore({ kind: 'sqlite', path: join(dir, 'cloud.db') });
  await lock.register(store);
  const url = `redis://127.0.0.1:${redis.port}`;
  for (const id of ['aedes-1', 'aedes-2']) {
    brokers.push(
      await startBroker({
        id,
        passwordRecord: async (u) =>
          u === BRIDGE_USERNAME ? bridgeRecord : ((await store.getLock(u))?.passwordHash ?? undefined),
        persistence: { kind: 'redis', url },
        redisEmitterUrl: url,
        tcp: { port: 0 },
        log: () => undefined,
      }),
    );
  }
}, 60_000);
afterAll(async () => {
  await lock.close();
  await bridge?.close();
  for (const b of brokers) await b.close();
  await store?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(missing !== undefined)(
  `two aedes instances over one Redis${missing ? ` (skipped: ${missing})` : ''}`,
  () => {
    it('a revocation published through one instance reaches a lock connected to the other', async () => {
      await lock.connect(`mqtt://127.0.0.1:${brokers[1]!.ports.tcp}`);
      bridge = await Bridge.start({
        url: `mqtt://127.0.0.1:${brokers[0]!.ports.tcp}`,
        password: bridgePassword,
        store,
        issuer,
        beaconIntervalMs: 0,
        log: () => undefined,
      });
      const r = await bridge.revoke('lock-r2', Buffer.from('0102', 'hex'), 4_000_000_000);
      await until(
        () => lock.received.some((m) => m.topic === topicFor('revocation', 'lock-r2')),
        'revocation via the other instance',
      );
      const msg = lock.received.find((m) => m.topic === topicFor('revocation', 'lock-r2'))!;
      expect(verifyRevocationUpdate(msg.payload, () => issuer.key.publicKey, 'lock-r2').version).toBe(
        r.version,
      );
    });

    it("a lock's QoS 1 alert through one instance reaches the bridge's persistent session on the other, once", async () => {
      // The bridge (clean: false, five filters in one SUBSCRIBE) is on instance 1, the lock on instance 2.
      await lock.publish('alert', lock.alert());
      await until(async () => (await store.countRecords('lock-r2')) === 1, 'the alert in the store');
      // The bridge's acknowledgement travels back through Redis to the lock on instance 2.
      await until(() => lock.acks.at(-1)?.sequence === 1, 'the outbox ack on the lock');
      expect(lock.outbox.size).toBe(0);
    });

    it('an alert published while the bridge is away waits in its Redis session for it on the other instance', async () => {
      await bridge!.close();
      bridge = undefined;
      await lock.publish('alert', lock.alert());
      // The bridge's session lives in Redis: it comes back with the same client id on instance 2.
      bridge = await Bridge.start({
        url: `mqtt://127.0.0.1:${brokers[1]!.ports.tcp}`,
        password: bridgePassword,
        store,
        issuer,
        beaconIntervalMs: 0,
        log: () => undefined,
      });
      await until(async () => (await store.countRecords('lock-r2')) === 2, 'the queued alert in the store');
      await until(() => lock.acks.at(-1)?.sequence === 2, 'the outbox ack of the queued alert');
      const seqs = (await store.recordsAfter('lock-r2', 7, 0, 10)).map((r) => r.sequence);
      expect(seqs).toEqual([1, 2]);
    });
  },
);
