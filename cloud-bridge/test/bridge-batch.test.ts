/**
 * The bridge's group commit ([TANDEM-MQTT-15]) over real sockets (aedes on 127.0.0.1, SQLite store): messages
 * are written in batches, one transaction each, and neither the broker (PUBACK) nor the lock (outbox ack) is
 * told a record is held before the batch holding it is durable. Faults are injected by wrapping the store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { generateKeyPair } from '../../protocol/src/keys.js';
import type { BridgeActivity } from '../src/bridge.js';
import { Bridge } from '../src/bridge.js';
import type { Broker } from '../src/broker.js';
import { startBroker } from '../src/broker.js';
import { BRIDGE_USERNAME, generatePassword, hashPassword } from '../src/credentials.js';
import { issuerFromKey } from '../src/issuer.js';
import type { SqlCloudStore } from '../src/store/sql-store.js';
import { openSqlStore } from '../src/store/sql-store.js';
import type { CloudStore } from '../src/store/types.js';
import { FakeLock, until } from './fake-lock.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** Overrides some store methods; the rest reach the real store (inside a batch, its transaction). */
function wrapStore(real: SqlCloudStore, overrides: Partial<CloudStore>): CloudStore {
  return new Proxy(real, {
    get(target, key) {
      if (key in overrides) return overrides[key as keyof CloudStore];
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as unknown as CloudStore;
}

interface Rig {
  readonly broker: Broker;
  readonly store: SqlCloudStore;
  readonly lock: FakeLock;
  readonly issuer: ReturnType<typeof issuerFromKey>;
  readonly bridgePassword: string;
  readonly url: string;
  startBridge(store: CloudStore): Promise<{ bridge: Bridge; activity: BridgeActivity[] }>;
}

async function rig(): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-batch-'));
  cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
  const store = await openSqlStore({ kind: 'sqlite', engine: 'wasm', path: join(dir, 'cloud.db') });
  cleanups.push(() => store.close());
  const bridgePassword = generatePassword();
  const bridgeRecord = hashPassword(bridgePassword);
  const broker = await startBroker({
    passwordRecord: async (u) =>
      u === BRIDGE_USERNAME ? bridgeRecord : ((await store.getLock(u))?.passwordHash ?? undefined),
    persistence: { kind: 'memory' },
    tcp: { port: 0, host: '127.0.0.1' },
    lockRate: { perSecond: 1000, burst: 1000 },
    log: () => undefined,
  });
  cleanups.push(() => broker.close());
  const url = `mqtt://127.0.0.1:${broker.ports.tcp}`;
  const issuer = issuerFromKey(generateKeyPair('EdDSA'));
  const lock = new FakeLock('lock-batch', issuer.key.publicKey);
  await lock.register(store);
  await lock.connect(url);
  cleanups.push(() => lock.close());
  return {
    broker,
    store,
    lock,
    issuer,
    bridgePassword,
    url,
    startBridge: async (s) => {
      const bridge = await Bridge.start({
        url,
        password: bridgePassword,
        clientId: 'tandem-bridge-batch',
        store: s,
        issuer,
        beaconIntervalMs: 0,
        homeAssistant: false,
        log: () => undefined,
      });
      const activity: BridgeActivity[] = [];
      bridge.onActivity((a) => activity.push(a));
      return { bridge, activity };
    },
  };
}

const outcomes = (activity: readonly BridgeActivity[]): string[] =>
  activity.filter((a) => a.kind === 'alert').map((a) => a.result.outcome);

describe('bridge group commit ([TANDEM-MQTT-15])', () => {
  it('writes a burst in few transactions and acknowledges every record once it is stored', async () => {
    const r = await rig();
    let batches = 0;
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { bridge, activity } = await r.startBridge(
      wrapStore(r.store, {
        batch: async (fn) => {
          // The first batch waits until the whole burst is queued behind it, so the second takes the rest.
          if (++batches === 1) await gate;
          return r.store.batch(fn);
        },
      }),
    );
    cleanups.push(() => bridge.close());
    const alerts = Array.from({ length: 20 }, () => r.lock.alert());
    for (const a of alerts) await r.lock.publish('alert', a);
    // The broker delivers in order: once the last alert waits in the bridge's queue, every alert is either
    // in the held first batch or queued behind it.
    const queue = (bridge as unknown as { queue: { payload: Buffer }[] }).queue;
    const last = Buffer.from(alerts.at(-1)!);
    await until(() => queue.some((m) => m.payload.equals(last)), 'the whole burst queued');
    release();
    await until(() => outcomes(activity).length === 20, '20 alerts handled');
    expect(outcomes(activity)).toEqual(Array(20).fill('stored'));
    // 20 messages, 2 transactions: the first (held), then the rest together.
    expect(batches).toBe(2);
    await until(() => r.lock.outbox.size === 0, 'the outbox ack covering all 20');
    expect(r.lock.acks.at(-1)).toMatchObject({ epoch: r.lock.epoch, sequence: 20 });
    expect(await r.store.countRecords(r.lock.lockId)).toBe(20);
  });

  it('a crash between the commit and the PUBACK loses nothing: the broker redelivers, the record is a duplicate and its ack goes out', async () => {
    const r = await rig();
    let crashed = false;
    let committed = 0;
    const first = await r.startBridge(
      wrapStore(r.store, {
        batch: async <T>(fn: Parameters<CloudStore['batch']>[0]): Promise<T> => {
          await r.store.batch(fn);
          committed++;
          // The process "dies" here: durable, but neither PUBACK nor outbox ack has left.
          crashed = true;
          return new Promise<T>(() => undefined);
        },
      }),
    );
    const a1 = r.lock.alert();
    await r.lock.publish('alert', a1);
    await until(() => crashed, 'the first batch committed');
    // Kill the bridge's connection without DISCONNECT, as a crash does.
    (first.bridge as unknown as { client: MqttClient }).client.end(true);
    expect(await r.store.countRecords(r.lock.lockId)).toBe(1);
    expect(r.lock.acks).toEqual([]); // no ack left before the batch finished
    expect(committed).toBe(1);

    const second = await r.startBridge(r.store);
    cleanups.push(() => second.bridge.close());
    // The broker kept the unacknowledged alert in the bridge's persistent session and delivers it again.
    await until(() => outcomes(second.activity).length >= 1, 'the redelivered alert');
    expect(outcomes(second.activity)[0]).toBe('duplicate');
    await until(() => r.lock.outbox.size === 0, 'the ack after the redelivery');
    expect(r.lock.acks.at(-1)).toMatchObject({ sequence: 1 });
    expect(await r.store.countRecords(r.lock.lockId)).toBe(1);
  });

  it('the outbox ack never covers a record that is not stored: a failed commit acknowledges nothing, and the redelivery stores it', async () => {
    const r = await rig();
    let failCommits = 1;
    const { bridge, activity } = await r.startBridge(
      wrapStore(r.store, {
        batch: async (fn) => {
          if (failCommits > 0) {
            failCommits--;
            // Everything the batch did is rolled back, as when the commit's fsync fails.
            return r.store.batch(async (scope) => {
              await fn(scope);
              throw new Error('injected: commit failed');
            });
          }
          return r.store.batch(fn);
        },
      }),
    );
    cleanups.push(() => bridge.close());
    await r.lock.publish('alert', r.lock.alert());
    await r.lock.publish('alert', r.lock.alert());
    // After the failed commit the bridge reconnects; the broker delivers both again, and they are stored.
    const stored = (): number => outcomes(activity).filter((o) => o === 'stored').length;
    await until(() => stored() >= 2, 'two alerts stored after the redelivery');
    // Each alert stored once; anything else the bridge saw is the same alert delivered again, which QoS 1
    // allows (a redelivery after the reconnection crossing the broker's own resend): seen in a CI run as
    // ['stored', 'stored', 'duplicate']. Nothing may be refused or stored twice.
    expect(stored()).toBe(2);
    expect(outcomes(activity).filter((o) => o !== 'stored' && o !== 'duplicate')).toEqual([]);
    expect(failCommits).toBe(0);
    await until(() => r.lock.outbox.size === 0, 'the ack');
    // Every ack the lock ever received covered records the store held when it was sent: there was none
    // before the second commit, and each names both (a delivery seen twice, which QoS 1 allows, is answered
    // with the same ack again).
    expect(r.lock.acks.length).toBeGreaterThan(0);
    expect(new Set(r.lock.acks.map((a) => a.sequence))).toEqual(new Set([2]));
    expect(await r.store.countRecords(r.lock.lockId)).toBe(2);
  });

  it('a bad record in a batch is refused alone: a forgery is flagged, a record that fails to store is delivered again, the others are stored', async () => {
    const r = await rig();
    let failOnce = 3; // the third alert's insert throws once
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let batches = 0;
    const sizes: number[] = [];
    let inBatch = 0;
    const { bridge, activity } = await r.startBridge(
      wrapStore(r.store, {
        batch: async (fn) => {
          if (++batches === 1) await gate;
          inBatch = 0;
          const v = await r.store.batch(fn);
          sizes.push(inBatch);
          return v;
        },
        insertRecord: async (rec) => {
          inBatch++;
          if (rec.sequence === failOnce) {
            failOnce = -1;
            throw new Error('injected: disk I/O error');
          }
          return r.store.insertRecord(rec);
        },
      }),
    );
    cleanups.push(() => bridge.close());
    const good1 = r.lock.alert();
    const forged = r.lock.alert('moved', generateKeyPair('EdDSA')); // sequence 2, wrong key
    const failing = r.lock.alert(); // sequence 3
    const good4 = r.lock.alert();
    await r.lock.publish('state', r.lock.state()); // the first batch holds this one
    for (const a of [good1, forged, failing, good4]) await r.lock.publish('alert', a);
    const queue = (bridge as unknown as { queue: { payload: Buffer }[] }).queue;
    await until(() => queue.some((m) => m.payload.equals(Buffer.from(good4))), 'the four alerts queued');
    release();
    await until(
      () => outcomes(activity).filter((o) => o === 'stored').length === 3,
      'alerts 1, 3 (after redelivery) and 4 stored',
    );
    const alerts = activity.filter((a) => a.kind === 'alert');
    expect(alerts.find((a) => a.result.outcome === 'refused')?.result).toMatchObject({
      outcome: 'refused',
      flagged: 'forgery',
    });
    // Alerts 1, 3 and 4 reached the insert in one batch (the forgery is refused before it), and the failure
    // of 3 in the middle neither undid 1 nor held back 4.
    expect(sizes).toContain(3);
    const held = await r.store.recordsAfter(r.lock.lockId, r.lock.epoch, 0, 10);
    expect(held.map((h) => h.sequence)).toEqual([1, 3, 4]);
    const events = await r.store.listEvents({ lockId: r.lock.lockId, limit: 50 });
    expect(events.some((e) => e.kind === 'forgery')).toBe(true);
    // The forged sequence 2 is missing, so the ack stops at 1: never over the record the cloud lacks.
    await until(() => r.lock.acks.length > 0, 'an ack');
    expect(Math.max(...r.lock.acks.map((a) => a.sequence))).toBe(1);
  });
});

describe('revocations written together', () => {
  it('revokeOnLocks gives every lock its own next version, stored, and publishes each retained', async () => {
    const r = await rig();
    const others = Array.from(
      { length: 5 },
      (_, i) => new FakeLock(`lock-many-${i}`, r.issuer.key.publicKey),
    );
    for (const l of others) {
      await l.register(r.store);
      await l.connect(r.url);
      cleanups.push(() => l.close());
    }
    let batches = 0;
    const { bridge } = await r.startBridge(
      wrapStore(r.store, {
        batch: (fn) => {
          batches++;
          return r.store.batch(fn);
        },
      }),
    );
    cleanups.push(() => bridge.close());
    const locks = [r.lock, ...others];
    const tokenId = Uint8Array.of(1, 2, 3, 4);
    const exp = Math.floor(Date.now() / 1000) + 3600;
    await bridge.revoke(r.lock.lockId, Uint8Array.of(9), exp); // lock-batch is at version 1 already
    const before = batches;
    const stored = await bridge.revokeOnLocks(
      locks.map((l) => l.lockId),
      [{ id: tokenId, exp }],
    );
    expect(stored.map((s) => s.version)).toEqual([2, 1, 1, 1, 1, 1]);
    // Six locks, one transaction.
    expect(batches - before).toBe(1);
    for (const l of locks) {
      const held = await r.store.getRevocation(l.lockId);
      expect(held?.entries.has('01020304')).toBe(true);
      await until(
        () => l.received.some((m) => m.topic === `tandem/v1/lock/${l.lockId}/revocation`),
        `${l.lockId}'s update`,
      );
    }
    await expect(bridge.revokeOnLocks(['lock-unknown'], [{ id: tokenId, exp }])).rejects.toMatchObject({
      code: 'ERR_CLOUD_LOCK_UNKNOWN',
    });
  });

  it('a fleet is written in growing transactions (64, 128, then up to 512), the event loop turning between them', async () => {
    const r = await rig();
    const ids = Array.from({ length: 200 }, (_, i) => `lock-fleet-${i}`);
    for (const id of ids) await new FakeLock(id, r.issuer.key.publicKey).register(r.store);
    const sizes: number[] = [];
    let published = 0;
    // Set by a turn of the event loop after the previous transaction: the broker's I/O ran between the two.
    let turned = true;
    const { bridge } = await r.startBridge(
      wrapStore(r.store, {
        batch: async (fn) => {
          // Every update of the transactions before this one was handed to MQTT.js once they committed.
          expect(published).toBe(sizes.reduce((a, b) => a + b, 0));
          expect(turned).toBe(true);
          let n = 0;
          const out = await r.store.batch((scope) => fn({ step: (step) => scope.step(() => (n++, step())) }));
          sizes.push(n);
          turned = false;
          setImmediate(() => (turned = true));
          return out;
        },
      }),
    );
    cleanups.push(() => bridge.close());
    const publish = bridge['client'].publishAsync.bind(bridge['client']);
    bridge['client'].publishAsync = ((...a: Parameters<typeof publish>) => (
      published++,
      publish(...a)
    )) as typeof publish;
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const stored = await bridge.revokeOnLocks(ids, [{ id: Uint8Array.of(7), exp }]);
    expect(stored.every((s) => s.version === 1)).toBe(true);
    expect(sizes).toEqual([64, 128, 8]);
  });

  it('an update whose list another writer changed after it was read is signed again, at the next version', async () => {
    const r = await rig();
    const exp = Math.floor(Date.now() / 1000) + 3600;
    let stale = true;
    const { bridge } = await r.startBridge(
      wrapStore(r.store, {
        // The first read sees no list, as if another writer stored version 1 just after it.
        getRevocation: async (lockId) => {
          if (stale) {
            stale = false;
            await r.store.putRevocation(
              { lockId, version: 1, entries: new Map([['aa', exp]]), bytes: Uint8Array.of(0) },
              0,
            );
            return undefined;
          }
          return r.store.getRevocation(lockId);
        },
      }),
    );
    cleanups.push(() => bridge.close());
    const next = await bridge.revoke(r.lock.lockId, Uint8Array.of(0xbb), exp);
    expect(next.version).toBe(2);
    expect([...next.entries.keys()].sort()).toEqual(['aa', 'bb']);
    const held = await r.store.getRevocation(r.lock.lockId);
    expect(held?.version).toBe(2);
    expect(Buffer.from(held!.bytes).equals(Buffer.from(next.bytes))).toBe(true);
    await until(
      () =>
        r.lock.received.some(
          (m) => m.topic.endsWith('/revocation') && Buffer.from(m.payload).equals(Buffer.from(next.bytes)),
        ),
      'the version 2 update',
    );
  });
});
