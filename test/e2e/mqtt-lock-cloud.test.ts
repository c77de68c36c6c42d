/**
 * The lock's real MQTT client (firmware-sim/src/mqtt) against the real cloud (cloud-bridge: embedded aedes with
 * [TANDEM-MQTT-13] credentials and the [TANDEM-MQTT-4] ACL, the bridge, the SQLite store) over 127.0.0.1: the two
 * halves of issue 9 tested together, not each against a stand-in of the other. The lock trusts the cloud's issuer
 * key; it learns the time by a time request ([TANDEM-MQTT-12]), its records reach the store and leave its outbox
 * only by the cloud's epoch-bound acknowledgement ([TANDEM-MQTT-11]), and a revocation made in the cloud reaches it
 * and is acknowledged back ([TANDEM-REV-9]).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Status } from '../../protocol/src/status.js';
import type { Cloud } from '../../cloud-bridge/src/cloud.js';
import { startCloud } from '../../cloud-bridge/src/cloud.js';
import type { LockMqttClient } from '../../firmware-sim/src/mqtt/lock-mqtt-client.js';
import { LOCK } from '../../firmware-sim/test/lock-harness.js';
import { lockMqttClient, makeCloudLock, registerLock } from './fixtures/cloud-lock.js';
import type { Lock } from '../../firmware-sim/test/lock-harness.js';
import { waitFor } from '../../firmware-sim/test/mqtt-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-lock-cloud-'));
const PASSWORD = randomBytes(32).toString('hex');
let cloud: Cloud;
let lock: Lock;
let client: LockMqttClient;

/** Real time, Unix seconds: the cloud's beacons carry it, so tokens must be valid at it. */
const now = (): number => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  cloud = await startCloud({
    dataDir: dir,
    mqtt: { port: 0 },
    brokerPersistence: { kind: 'memory' },
    beaconIntervalMs: 0,
    log: () => undefined,
  });
  // The lock is provisioned with the cloud's issuer key as its issuer anchor (kid as the cloud names it).
  lock = await makeCloudLock(cloud.issuer);
  await registerLock(cloud.store, lock, PASSWORD);
  client = lockMqttClient(lock, cloud.mqttUrl, PASSWORD, { resendAfterMs: 300 });
  await client.start();
});

afterAll(async () => {
  await client?.stop(200);
  await cloud?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a lock and the cloud over MQTT (issue 9)', () => {
  it('the lock logs in with its credential and learns the time from a nonce-bound beacon it asked for', async () => {
    expect(lock.authority.snapshot().uncertainty).toBeNull();
    await waitFor(() => client.status().link === 'up', 'the lock to connect');
    await waitFor(() => lock.authority.snapshot().uncertainty !== null, 'a beacon bound to the lock’s nonce');
    const t = lock.authority.snapshot().time;
    expect(t.earliest).toBeLessThanOrEqual(now() + 1);
    expect(t.latest).toBeGreaterThanOrEqual(now() - 1);
  });

  it('every record the lock queued reaches the store and leaves the outbox only by the cloud’s ack', async () => {
    const r = await lock.send(
      lock.request({
        chain: [lock.token({ nbf: now() - 60, iat: now() - 60, exp: now() + 3600, schedule: undefined })],
      }),
    );
    expect(Status[r.status]).toBe('OK');
    const outbox = lock.stores.outbox;
    const last = outbox.lastSeq;
    expect(last).toBeGreaterThan(0);
    await waitFor(() => outbox.ackedThrough >= last, 'the cloud to acknowledge every record');
    const progress = await cloud.store.getProgress(LOCK, outbox.epoch);
    expect(progress?.ackedSequence).toBeGreaterThanOrEqual(last);
    for (let seq = 1; seq <= last; seq++) {
      expect(await cloud.store.getRecord(LOCK, outbox.epoch, seq)).toBeDefined();
    }
  });

  it('a revocation made in the cloud reaches the lock, which refuses the token and acknowledges the version', async () => {
    const cti = randomBytes(12);
    const exp = now() + 3600;
    const token = lock.token({ cti, nbf: now() - 60, iat: now() - 60, exp, schedule: undefined });
    await lock.relock();
    const pulses = lock.pulses.length;
    const stored = await cloud.bridge.revoke(LOCK, cti, exp);
    await waitFor(() => lock.stores.revocations.version >= stored.version, 'the revocation update');
    const r = await lock.send(lock.request({ chain: [token] }));
    expect(Status[r.status]).toBe('REVOKED');
    expect(r.mayHaveActed).toBe(false);
    expect(lock.pulses).toHaveLength(pulses);
    let acked: number | undefined;
    for (let i = 0; i < 600 && acked !== stored.version; i++) {
      acked = (await cloud.store.getRevocationAck(LOCK))?.version;
      if (acked !== stored.version) await new Promise((res) => setTimeout(res, 10));
    }
    expect(acked).toBe(stored.version);
  });
});
