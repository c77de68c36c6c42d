/**
 * The broker's LevelDB with coalesced writes ([TANDEM-MQTT-30], cloud-bridge/src/level-writes.ts): writes made
 * together reach LevelDB as one batch, no caller hears "written" before its batch is, the order of calls is
 * kept, reads see the writes called before them, and what the broker stored (retained messages, a persistent
 * session's queue) survives a restart.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { startBroker } from '../src/broker.js';
import { BRIDGE_USERNAME, generatePassword, hashPassword } from '../src/credentials.js';
import { CoalescedLevel } from '../src/level-writes.js';
import type { LevelDatabase, LevelRange, LevelWrite } from '../src/level-writes.js';
import { until } from './fake-lock.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-level-writes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const freshPath = (): string => join(dir, `db-${n++}`);

/** An in-memory LevelDatabase whose batches complete only when the test releases them. */
class HeldLevel implements LevelDatabase {
  readonly data = new Map<string, unknown>();
  readonly batches: LevelWrite[][] = [];
  readonly gets: string[] = [];
  fail: Error | undefined;
  #release: (() => void)[] = [];

  async get(key: string): Promise<unknown> {
    this.gets.push(key);
    return this.data.get(key);
  }
  async batch(ops: LevelWrite[]): Promise<void> {
    this.batches.push(ops);
    await new Promise<void>((r) => this.#release.push(r));
    if (this.fail !== undefined) throw this.fail;
    for (const op of ops) {
      if (op.type === 'put') this.data.set(op.key, op.value);
      else this.data.delete(op.key);
    }
  }
  clearFails = false;
  async clear(): Promise<void> {
    if (this.clearFails) throw new Error('clear failed');
    this.data.clear();
  }
  async *keys(range: LevelRange): AsyncIterable<string> {
    for (const k of [...this.data.keys()].sort()) if (k >= range.gte! && k < range.lt!) yield k;
  }
  async *values(): AsyncIterable<unknown> {
    yield* [...this.data.values()];
  }
  async close(): Promise<void> {}
  /** Lets the oldest held batch complete. */
  release(): void {
    this.#release.shift()?.();
  }
  get held(): number {
    return this.#release.length;
  }
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('CoalescedLevel', () => {
  it('writes the puts, dels and batches called together as one LevelDB batch, in call order', async () => {
    const held = new HeldLevel();
    const db = await CoalescedLevel.open(held);
    const calls = [
      db.put('a', 1),
      db.del('a'),
      db.batch([
        { type: 'put', key: 'b', value: 2 },
        { type: 'put', key: 'c', value: 3 },
      ]),
      db.batch().del('c').put('a', 4).write(),
    ];
    await until(() => held.held === 1, 'the first batch');
    expect(held.batches).toEqual([
      [
        { type: 'put', key: 'a', value: 1 },
        { type: 'del', key: 'a' },
        { type: 'put', key: 'b', value: 2 },
        { type: 'put', key: 'c', value: 3 },
        { type: 'del', key: 'c' },
        { type: 'put', key: 'a', value: 4 },
      ],
    ]);
    held.release();
    await Promise.all(calls);
    expect([...held.data]).toEqual([
      ['b', 2],
      ['a', 4],
    ]);
  });

  it('settles no write before LevelDB has written its batch; later writes gather behind the one in flight', async () => {
    const held = new HeldLevel();
    const db = await CoalescedLevel.open(held);
    const settled: string[] = [];
    const first = db.put('k1', 1).then(() => settled.push('k1'));
    await until(() => held.held === 1, 'the first batch');
    const later = [db.put('k2', 2), db.put('k3', 3)].map((p, i) => p.then(() => settled.push(`k${i + 2}`)));
    for (let i = 0; i < 5; i++) await turn();
    // One batch in flight at a time: the later writes wait, and nothing is reported written yet.
    expect(held.batches).toHaveLength(1);
    expect(settled).toEqual([]);
    held.release();
    await first;
    expect(settled).toEqual(['k1']);
    await until(() => held.held === 1, 'the second batch');
    expect(held.batches[1]!.map((op) => op.key)).toEqual(['k2', 'k3']);
    expect(settled).toEqual(['k1']);
    held.release();
    await Promise.all(later);
    expect(settled).toEqual(['k1', 'k2', 'k3']);
  });

  it('splits what is waiting into batches of at most maxBatch operations', async () => {
    const held = new HeldLevel();
    const db = await CoalescedLevel.open(held, { maxBatch: 4 });
    const writes = Array.from({ length: 10 }, (_, i) => db.put(`k${i}`, i));
    for (let i = 0; i < 3; i++) {
      await until(() => held.held === 1, `batch ${i + 1}`);
      held.release();
    }
    await Promise.all(writes);
    expect(held.batches.map((b) => b.length)).toEqual([4, 4, 2]);
    expect(held.data.size).toBe(10);
  });

  it('fails every write of a failed batch, and none of the others', async () => {
    const held = new HeldLevel();
    const db = await CoalescedLevel.open(held);
    const a = db.put('a', 1);
    await until(() => held.held === 1, 'the first batch');
    const b = db.put('b', 2);
    const c = db.del('c');
    held.fail = new Error('disk full');
    held.release();
    await expect(a).rejects.toThrow('disk full');
    held.fail = undefined;
    await until(() => held.held === 1, 'the second batch');
    held.release();
    await expect(Promise.all([b, c])).resolves.toEqual([undefined, undefined]);
    expect([...held.data.keys()]).toEqual(['b']);
  });

  it('fails a failed clear alone: the writes queued after it are still written', async () => {
    const held = new HeldLevel();
    held.clearFails = true;
    const db = await CoalescedLevel.open(held);
    const cleared = db.clear({ gte: 'a', lt: 'b' });
    const after = db.put('k', 1);
    await expect(cleared).rejects.toThrow('clear failed');
    await until(() => held.held === 1, 'the write after the clear');
    held.release();
    await after;
    expect(held.data.get('k')).toBe(1);
  });

  it('answers a read of an absent indexed key without LevelDB, and reads a written one after its write', async () => {
    const held = new HeldLevel();
    held.data.set('outgoing-id:lock-1:0000000000000007', 'on disk');
    const db = await CoalescedLevel.open(held, { indexedPrefixes: ['outgoing-id:'] });
    // Loaded from the database at open: present, so LevelDB is asked.
    expect(await db.get('outgoing-id:lock-1:0000000000000007')).toBe('on disk');
    expect(held.gets).toEqual(['outgoing-id:lock-1:0000000000000007']);
    // Absent: answered at once.
    expect(await db.get('outgoing-id:lock-2:0000000000000001')).toBeUndefined();
    expect(held.gets).toHaveLength(1);
    // A put not yet written: the read waits for it, then reads what LevelDB has.
    void db.put('outgoing-id:lock-2:0000000000000001', 'new');
    const read = db.get('outgoing-id:lock-2:0000000000000001');
    await until(() => held.held === 1, 'the batch');
    expect(held.gets).toHaveLength(1);
    held.release();
    expect(await read).toBe('new');
    // Deleted: absent again without asking.
    const del = db.del('outgoing-id:lock-2:0000000000000001');
    await until(() => held.held === 1, 'the delete');
    held.release();
    await del;
    expect(await db.get('outgoing-id:lock-2:0000000000000001')).toBeUndefined();
    expect(held.gets).toHaveLength(2);
    // A key outside the indexed prefixes is always read from LevelDB.
    expect(await db.get('retained:x')).toBeUndefined();
    expect(held.gets).toHaveLength(3);
  });

  it('keeps order across a clear, and reads values only after the writes called before them', async () => {
    const db = await CoalescedLevel.open(new Level(freshPath()), { indexedPrefixes: ['incoming:'] });
    const enc = { valueEncoding: 'utf8' };
    void db.put('incoming:c:1', 'old', enc);
    void db.put('retained:t', 'kept', enc);
    const cleared = db.clear({ gte: 'incoming:', lt: 'incoming;' });
    void db.put('incoming:c:2', 'new', enc);
    const values: unknown[] = [];
    for await (const v of db.values({ gte: 'incoming:', lt: 'incoming;', valueEncoding: 'utf8' }))
      values.push(v);
    await cleared;
    expect(values).toEqual(['new']);
    expect(await db.get('incoming:c:1', enc)).toBeUndefined();
    expect(await db.get('retained:t', enc)).toBe('kept');
    await db.close();
  });

  it('writes what is queued before it closes, so a reopened database has it', async () => {
    const path = freshPath();
    const db = await CoalescedLevel.open(new Level(path), { indexedPrefixes: ['outgoing-id:'] });
    const buffer = { valueEncoding: 'buffer' };
    for (let i = 0; i < 100; i++) void db.put(`outgoing-id:c:${i}`, Buffer.from([i]), buffer);
    await db.close();
    await expect(db.put('late', Buffer.from([0]), buffer)).rejects.toThrow('write after close');
    const again = await CoalescedLevel.open(new Level(path), { indexedPrefixes: ['outgoing-id:'] });
    expect(await again.get('outgoing-id:c:99', buffer)).toEqual(Buffer.from([99]));
    await again.close();
  });
});

describe('the broker on coalesced LevelDB writes', () => {
  it('keeps 300 retained updates and a persistent session queue across a restart', async () => {
    const path = freshPath();
    const bridgePassword = generatePassword();
    const lockPassword = generatePassword();
    const records = new Map([
      [BRIDGE_USERNAME, hashPassword(bridgePassword)],
      ['lock-q', hashPassword(lockPassword)],
    ]);
    const start = () =>
      startBroker({
        passwordRecord: (u) => Promise.resolve(records.get(u)),
        persistence: { kind: 'level', path },
        tcp: { port: 0, host: '127.0.0.1' },
        log: () => undefined,
      });
    const options = (clientId: string, clean: boolean) =>
      clientId === 'lock-q'
        ? { username: 'lock-q', password: lockPassword, clientId, clean, reconnectPeriod: 0 }
        : { username: BRIDGE_USERNAME, password: bridgePassword, clientId, clean, reconnectPeriod: 0 };
    const locks = Array.from({ length: 300 }, (_, i) => `lock-${i}`);

    let broker = await start();
    let url = `mqtt://127.0.0.1:${broker.ports.tcp}`;
    // A lock's persistent session subscribed to its beacons, then offline: what it misses is queued.
    const session = await mqtt.connectAsync(url, options('lock-q', false));
    await session.subscribeAsync('tandem/v1/lock/lock-q/beacon', { qos: 1 });
    await session.endAsync();
    // aedes emits 'publish' once a message went through its persistence (retained stored, queues written).
    let through = 0;
    broker.aedes.on('publish', (packet) => {
      if (/^tandem\/v1\/lock\/lock-[q0-9]+\/(revocation|beacon)$/.test(packet.topic)) through++;
    });
    const publisher = await mqtt.connectAsync(url, options('tandem-bridge-restart', true));
    await Promise.all(
      locks.flatMap((l, i) => [
        publisher.publishAsync(`tandem/v1/lock/${l}/revocation`, Buffer.from(`v${i}`), {
          qos: 1,
          retain: true,
        }),
        publisher.publishAsync('tandem/v1/lock/lock-q/beacon', Buffer.from(`b${i}`), { qos: 1 }),
      ]),
    );
    await until(() => through === 2 * locks.length, 'every message through the persistence', 1_500);
    await publisher.endAsync();
    await broker.close();

    broker = await start();
    url = `mqtt://127.0.0.1:${broker.ports.tcp}`;
    try {
      // What LevelDB holds after the restart (read through aedes' persistence).
      const persistence = (broker.aedes as unknown as { persistence: RetainedReader }).persistence;
      const retained = new Map<string, string>();
      for await (const packet of persistence.createRetainedStream('tandem/v1/lock/+/revocation'))
        retained.set(packet.topic, String(packet.payload));
      expect(retained.size).toBe(locks.length);
      expect(retained.get('tandem/v1/lock/lock-299/revocation')).toBe('v299');

      const queued = new Set<string>();
      // The handler is in place before CONNACK: the queue follows it at once.
      const back = mqtt.connect(url, options('lock-q', false));
      back.on('message', (_t, payload) => queued.add(payload.toString()));
      await until(() => queued.size === locks.length, "the session's queue after the restart", 1_500);
      expect(queued.has('b0') && queued.has('b299')).toBe(true);
      await back.endAsync();
    } finally {
      await broker.close();
    }
  }, 60_000);
});

/** aedes' persistence, the one read this test makes of it. */
interface RetainedReader {
  createRetainedStream(pattern: string): AsyncIterable<{ topic: string; payload: Buffer }>;
}
