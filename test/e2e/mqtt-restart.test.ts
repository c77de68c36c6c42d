/**
 * The broker is killed and restarted while alerts flow (issue 9, §4): with aedes' LevelDB persistence and the
 * lock's outbox ([TANDEM-MQTT-8]), every alert reaches the store exactly once and the final acknowledgement
 * covers them all.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import type { Broker } from '../../cloud-bridge/src/broker.js';
import { startBroker } from '../../cloud-bridge/src/broker.js';
import { Bridge } from '../../cloud-bridge/src/bridge.js';
import { BRIDGE_USERNAME, generatePassword, hashPassword } from '../../cloud-bridge/src/credentials.js';
import { issuerFromKey } from '../../cloud-bridge/src/issuer.js';
import { openSqlStore } from '../../cloud-bridge/src/store/sql-store.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { FakeLock, until } from '../../cloud-bridge/test/fake-lock.js';
import { freePort } from '../../cloud-bridge/test/servers.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-restart-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ALERTS = 60;

// The default 30 s is a safety net only: every wait below is a bounded loop on an event.
it('every alert is stored exactly once across a broker kill and restart', { timeout: 120_000 }, async () => {
  const store = await openSqlStore({ kind: 'sqlite', path: join(dir, 'cloud.db') });
  const issuer = issuerFromKey(generateKeyPair('EdDSA'));
  const bridgePassword = generatePassword();
  const bridgeRecord = hashPassword(bridgePassword);
  const lock = new FakeLock('lock-r', issuer.key.publicKey);
  await lock.register(store);
  const port = await freePort();
  const start = (): Promise<Broker> =>
    startBroker({
      passwordRecord: async (u) =>
        u === BRIDGE_USERNAME ? bridgeRecord : ((await store.getLock(u))?.passwordHash ?? undefined),
      persistence: { kind: 'level', path: join(dir, 'broker') },
      tcp: { port },
      log: () => undefined,
    });
  let broker = await start();
  const url = `mqtt://127.0.0.1:${port}`;
  const bridge = await Bridge.start({
    url,
    password: bridgePassword,
    store,
    issuer,
    beaconIntervalMs: 0,
    log: () => undefined,
  });
  await lock.connect(url);
  try {
    for (let i = 1; i <= ALERTS; i++) {
      const bytes = lock.alert();
      // Fire and forget, as a lock publishing from its outbox does; MQTT.js resends unacknowledged QoS 1.
      lock.client!.publish(`tandem/v1/lock/lock-r/alert`, Buffer.from(bytes), { qos: 1 }, () => undefined);
      if (i === ALERTS / 2) {
        await broker.close(); // killed mid-stream: clients are cut off, the persistence closed
        broker = await start(); // restarted on the same port and data
      }
    }
    // MQTT.js sends again what it had in flight, and the bridge's session queue holds what came while it
    // was away. Whenever the ack stops moving, the lock publishes again what no ack covers, as the real lock
    // does after its resend period ([TANDEM-MQTT-LINK]); the bridge answers records it holds with the ack
    // again. Bounded: at most 20 rounds, each ending after 50 polls without the outbox shrinking.
    for (let round = 0; round < 20 && lock.outbox.size > 0; round++) {
      let size = lock.outbox.size;
      for (let still = 0; still < 50 && lock.outbox.size > 0; still++) {
        await new Promise((r) => setTimeout(r, 20));
        if (lock.outbox.size < size) [size, still] = [lock.outbox.size, 0];
      }
      if (lock.outbox.size === 0) break;
      await until(() => lock.client!.connected, 'lock reconnected');
      await lock.flushOutbox();
    }
    expect(lock.outbox.size).toBe(0);
    // Acks are cumulative ([TANDEM-MQTT-8]): one resent by MQTT.js after the broker restart may arrive after a
    // newer one, and the lock keeps the highest; the highest must cover every alert.
    const highest = Math.max(...lock.acks.filter((a) => a.epoch === 7).map((a) => a.sequence));
    expect(highest).toBe(ALERTS);
    expect(await store.countRecords('lock-r')).toBe(ALERTS);
    const seqs = (await store.recordsAfter('lock-r', 7, 0, 1000)).map((r) => r.sequence);
    expect(seqs).toEqual(Array.from({ length: ALERTS }, (_, i) => i + 1));
    expect(
      (await store.listEvents({ lockId: 'lock-r', limit: 100 })).filter((e) => e.kind === 'fork'),
    ).toEqual([]);
  } finally {
    await lock.close();
    await bridge.close();
    await broker.close();
    await store.close();
  }
});
