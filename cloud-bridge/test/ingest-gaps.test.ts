/**
 * Gaps in a lock's outbox sequence ([TANDEM-MQTT-16], ingest.ts): records that arrive out of order (aedes
 * reorders QoS 1 messages under load, and a lock sends again what no acknowledgement covers) are stored at
 * once, exactly once, and raise no `gap` event; a hole that stays open `gapGraceMs` is flagged once, and the
 * record that fills it later is still stored and acknowledged. The clock is the ingestor's injected `now`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Ingestor } from '../src/ingest.js';
import { openSqlStore } from '../src/store/sql-store.js';
import type { CloudStore } from '../src/store/types.js';
import { FakeLock } from './fake-lock.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-gaps-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GRACE = 120_000;
let n = 0;
const stores: CloudStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

async function setup(): Promise<{
  lock: FakeLock;
  ingestor: Ingestor;
  clock: { t: number };
  store: CloudStore;
}> {
  const store = await openSqlStore({ kind: 'sqlite', engine: 'wasm', path: join(dir, `g${++n}.db`) });
  stores.push(store);
  const lock = new FakeLock('lock-g');
  await lock.register(store);
  const clock = { t: 1_800_000_000_000 };
  const ingestor = new Ingestor({ store, now: () => clock.t, gapGraceMs: GRACE });
  return { lock, ingestor, clock, store };
}

async function gaps(store: CloudStore): Promise<unknown[]> {
  return (await store.listEvents({ lockId: 'lock-g', limit: 100 }))
    .filter((e) => e.kind === 'gap')
    .map((e) => e.detail);
}

describe('gaps in the outbox sequence ([TANDEM-MQTT-16])', () => {
  it('records delivered out of order are stored once each, acknowledged in full, and flag no gap', async () => {
    const { lock, ingestor, clock, store } = await setup();
    const records = Array.from({ length: 20 }, (_, i) => (i % 3 === 0 ? lock.audit() : lock.alert()));
    // A fixed shuffle with the first record last, and a duplicate of each of the first few.
    const order = [4, 2, 3, 7, 5, 6, 10, 8, 9, 13, 11, 12, 16, 14, 15, 19, 17, 18, 20, 1];
    const acks: number[] = [];
    for (const s of order) {
      const r = await ingestor.ingest(s % 3 === 1 ? 'audit' : 'alert', 'lock-g', records[s - 1]!, 'mqtt');
      expect(r.outcome).toBe('stored');
      if (r.outcome === 'stored' && r.ack !== undefined) acks.push(r.ack.sequence);
      clock.t += 1_000;
    }
    for (const s of [4, 2, 3]) {
      const again = await ingestor.ingest(s % 3 === 1 ? 'audit' : 'alert', 'lock-g', records[s - 1]!, 'mqtt');
      expect(again.outcome).toBe('duplicate');
    }
    expect(acks).toEqual([20]);
    expect(await store.countRecords('lock-g')).toBe(20);
    clock.t += 10 * GRACE;
    expect(await ingestor.checkGaps()).toBe(0);
    expect(await gaps(store)).toEqual([]);
    expect(
      (await store.listEvents({ lockId: 'lock-g', limit: 100 })).filter((e) => e.kind === 'chain-break'),
    ).toEqual([]);
  });

  it('a record that never arrives is flagged once, after the grace period; filling it later acks the rest', async () => {
    const { lock, ingestor, clock, store } = await setup();
    const records = Array.from({ length: 5 }, () => lock.alert());
    for (const s of [1, 2, 4, 5]) await ingestor.ingest('alert', 'lock-g', records[s - 1]!, 'mqtt');
    expect(await ingestor.checkGaps()).toBe(0);
    clock.t += GRACE - 1;
    expect(await ingestor.checkGaps()).toBe(0);
    expect(await gaps(store)).toEqual([]);
    clock.t += 1;
    expect(await ingestor.checkGaps()).toBe(1);
    expect(await gaps(store)).toEqual([{ epoch: 7, from: 3, to: 3 }]);
    // Flagged once, however often it is looked at or however many records come after it.
    clock.t += GRACE;
    expect(await ingestor.checkGaps()).toBe(0);
    await ingestor.ingest('alert', 'lock-g', lock.alert(), 'mqtt');
    expect(await gaps(store)).toHaveLength(1);
    // The missing record arrives at last: stored once, and the acknowledgement covers everything.
    const late = await ingestor.ingest('alert', 'lock-g', records[2]!, 'mqtt');
    expect(late).toEqual({ outcome: 'stored', ack: { lockId: 'lock-g', epoch: 7, sequence: 6 } });
    expect(await store.countRecords('lock-g')).toBe(6);
  });

  it('a hole filled within the grace period is never flagged; a later hole gets its own grace', async () => {
    const { lock, ingestor, clock, store } = await setup();
    const records = Array.from({ length: 6 }, () => lock.alert());
    await ingestor.ingest('alert', 'lock-g', records[1]!, 'mqtt');
    clock.t += GRACE - 1;
    await ingestor.ingest('alert', 'lock-g', records[0]!, 'mqtt');
    // 1..2 held; 3 missing, first seen now.
    await ingestor.ingest('alert', 'lock-g', records[3]!, 'mqtt');
    clock.t += GRACE - 1;
    expect(await ingestor.checkGaps()).toBe(0);
    expect(await gaps(store)).toEqual([]);
    clock.t += 1;
    expect(await ingestor.checkGaps()).toBe(1);
    expect(await gaps(store)).toEqual([{ epoch: 7, from: 3, to: 3 }]);
  });

  it('the next record of the lock after the grace period flags the hole without waiting for a check', async () => {
    const { lock, ingestor, clock, store } = await setup();
    const records = Array.from({ length: 4 }, () => lock.alert());
    await ingestor.ingest('alert', 'lock-g', records[0]!, 'mqtt');
    await ingestor.ingest('alert', 'lock-g', records[3]!, 'mqtt');
    clock.t += GRACE;
    expect(await gaps(store)).toEqual([]);
    await ingestor.ingest('alert', 'lock-g', lock.alert(), 'mqtt');
    expect(await gaps(store)).toEqual([{ epoch: 7, from: 2, to: 3 }]);
  });
});
