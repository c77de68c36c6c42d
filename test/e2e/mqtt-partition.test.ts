/**
 * Bridge partitions on aedes (cloud-bridge/README.md, "Fleet"; issue 9 §3: "partitioning by lock id where it
 * has not [shared subscriptions]"): two instances whose brokers share one Redis, each bridge handling the
 * locks of its partition. One instance is `startCloud` as `tandem cloud --redis ... --partition 0/2` starts
 * it; the other a broker and a bridge with partition 1/2. Every alert is stored once, by the bridge owning its
 * lock, and acknowledged back to the lock wherever it is connected. `--partition` is refused without
 * `--redis` or when malformed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as cloudCommand } from '../../cli/cloud.js';
import type { Broker } from '../../cloud-bridge/src/broker.js';
import { startBroker } from '../../cloud-bridge/src/broker.js';
import type { BridgeActivity } from '../../cloud-bridge/src/bridge.js';
import { Bridge, partitionOf } from '../../cloud-bridge/src/bridge.js';
import type { Cloud } from '../../cloud-bridge/src/cloud.js';
import { startCloud } from '../../cloud-bridge/src/cloud.js';
import { BRIDGE_USERNAME, generatePassword, hashPassword } from '../../cloud-bridge/src/credentials.js';
import { FakeLock, until } from '../../cloud-bridge/test/fake-lock.js';
import type { TestServer } from '../../cloud-bridge/test/servers.js';
import { redisMissing, startRedis } from '../../cloud-bridge/test/servers.js';

const missing = redisMissing();
const dir = mkdtempSync(join(tmpdir(), 'tandem-partition-'));
const bridgePassword = generatePassword();
const bridgeRecord = hashPassword(bridgePassword);
let redis: TestServer;
let cloud: Cloud;
let broker: Broker;
let bridge: Bridge;
const seen: { instance: number; activity: BridgeActivity }[] = [];

/** The first lock id of the form `lock-p<n>` in partition `p` of 2. */
function lockIn(p: number): string {
  for (let n = 0; n < 100; n++) if (partitionOf(`lock-p${n}`, 2) === p) return `lock-p${n}`;
  throw new Error(`no lock id in partition ${p}`);
}
const locks: FakeLock[] = [];

beforeAll(async () => {
  if (missing !== undefined) return;
  redis = await startRedis();
  const url = `redis://127.0.0.1:${redis.port}`;
  cloud = await startCloud({
    dataDir: dir,
    mqtt: { port: 0 },
    redisUrl: url,
    partition: { index: 0, count: 2 },
    beaconIntervalMs: 0,
    log: () => undefined,
  });
  const store = cloud.store;
  for (const p of [0, 1]) {
    const lock = new FakeLock(lockIn(p), cloud.issuer.key.publicKey);
    await lock.register(store);
    locks.push(lock);
  }
  broker = await startBroker({
    id: 'aedes-2',
    passwordRecord: async (u) =>
      u === BRIDGE_USERNAME ? bridgeRecord : ((await store.getLock(u))?.passwordHash ?? undefined),
    persistence: { kind: 'redis', url },
    redisEmitterUrl: url,
    tcp: { port: 0 },
    log: () => undefined,
  });
  bridge = await Bridge.start({
    url: `mqtt://127.0.0.1:${broker.ports.tcp}`,
    password: bridgePassword,
    partition: { index: 1, count: 2 },
    store,
    issuer: cloud.issuer,
    beaconIntervalMs: 0,
    log: () => undefined,
  });
  cloud.bridge.onActivity((activity) => seen.push({ instance: 0, activity }));
  bridge.onActivity((activity) => seen.push({ instance: 1, activity }));
}, 60_000);

afterAll(async () => {
  for (const l of locks) await l.close();
  await bridge?.close();
  await broker?.close();
  await cloud?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('tandem cloud --partition', () => {
  const streams = (): { stdin: PassThrough; stdout: PassThrough; stderr: PassThrough } => ({
    stdin: new PassThrough(),
    stdout: new PassThrough(),
    stderr: new PassThrough(),
  });

  it.each([
    ['2/2', /--partition must be i\/n/],
    ['1', /--partition must be i\/n/],
    ['0/0', /--partition must be i\/n/],
    ['a/2', /--partition must be i\/n/],
  ])('refuses --partition %s with ERR_USAGE naming the form', async (value, message) => {
    await expect(
      cloudCommand(['--data-dir', dir, '--partition', value, '--redis', 'redis://127.0.0.1:1'], streams()),
    ).rejects.toMatchObject({ code: 'ERR_USAGE', message: expect.stringMatching(message) as unknown });
  });

  it('refuses --partition without --redis', async () => {
    await expect(cloudCommand(['--data-dir', dir, '--partition', '0/2'], streams())).rejects.toMatchObject({
      code: 'ERR_USAGE',
      message: expect.stringMatching(/--partition needs --redis/) as unknown,
    });
  });
});

describe.skipIf(missing !== undefined)(
  `two instances over one Redis, one bridge partition each${missing ? ` (skipped: ${missing})` : ''}`,
  () => {
    it("stores each lock's alert once, by the bridge of its partition, and acks it to the lock", async () => {
      // Each lock on the instance whose bridge does NOT own it: the alert must cross Redis both ways.
      const [l0, l1] = locks as [FakeLock, FakeLock];
      await l0.connect(`mqtt://127.0.0.1:${broker.ports.tcp}`);
      await l1.connect(cloud.mqttUrl);
      await l0.publish('alert', l0.alert());
      await l1.publish('alert', l1.alert());
      for (const l of [l0, l1]) {
        await until(async () => (await cloud.store.countRecords(l.lockId)) === 1, `${l.lockId} stored`);
        await until(() => l.acks.at(-1)?.sequence === 1, `${l.lockId} acked`);
      }
      const stored = seen.filter((s) => s.activity.kind === 'alert');
      expect(stored.map((s) => [s.instance, s.activity.lockId, s.activity.result.outcome])).toEqual(
        expect.arrayContaining([
          [0, l0.lockId, 'stored'],
          [1, l1.lockId, 'stored'],
        ]),
      );
      // A bridge hands no other partition's message to the ingestor (it reports no activity for it).
      expect(stored).toHaveLength(2);
    });
  },
);
