/**
 * A fleet on two aedes instances sharing one Redis (mqemitter-redis for messages, aedes-persistence-redis for
 * retained messages and sessions), Redis from Debian started by the test (issue 9, §1): a revocation
 * published through one instance reaches a lock connected to the other.
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
      // Not asserted: the other way (a lock's alert through instance 2 to the bridge) did not arrive with
      // aedes-persistence-redis in this set-up; see cloud-bridge/README.md, "Fleet".
    });
  },
);
