/**
 * One contract suite for every {@link CloudStore} implementation (STYLE.md 6, after aedes' abstract
 * persistence tests): SQLite always, PostgreSQL where its server binaries are installed.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CloudStore, StoredRecord } from '../src/store/types.js';

const KEY = new Uint8Array(32).fill(7);

function rec(sequence: number, overrides: Partial<StoredRecord> = {}): StoredRecord {
  return {
    lockId: 'lock-7',
    epoch: 7,
    sequence,
    kind: 'alert',
    bytes: Uint8Array.of(1, 2, sequence & 0xff),
    time: 1_800_000_000 + sequence,
    receivedAt: 1_000 + sequence,
    via: 'mqtt',
    ...overrides,
  };
}

/** Runs the contract against stores made by `open` (each test gets a fresh, empty store). */
export function storeContract(name: string, open: () => Promise<CloudStore>, skip?: string): void {
  describe.skipIf(skip !== undefined)(
    `CloudStore contract: ${name}${skip === undefined ? '' : ` (skipped: ${skip})`}`,
    () => {
      let store: CloudStore;
      beforeEach(async () => {
        store = await open();
      });
      afterEach(async () => {
        await store.close();
      });

      it('registers a lock and reads it back, device key and password record intact', async () => {
        await store.registerLock({
          lockId: 'lock-7',
          deviceKey: KEY,
          passwordHash: '$7$101$a$b',
          registeredAt: 5,
        });
        const lock = await store.getLock('lock-7');
        expect(lock?.passwordHash).toBe('$7$101$a$b');
        expect(Buffer.from(lock!.deviceKey).equals(Buffer.from(KEY))).toBe(true);
        expect(await store.getLock('lock-8')).toBeUndefined();
        expect((await store.listLocks()).map((l) => l.lockId)).toEqual(['lock-7']);
      });

      it('keys records by (lock, epoch, sequence): same bytes are a duplicate, other bytes a conflict', async () => {
        expect(await store.insertRecord(rec(1))).toBe('inserted');
        expect(await store.insertRecord(rec(1))).toBe('duplicate');
        expect(await store.insertRecord(rec(1, { bytes: Uint8Array.of(9) }))).toBe('conflict');
        expect(await store.insertRecord(rec(1, { epoch: 8 }))).toBe('inserted');
        expect(await store.countRecords('lock-7')).toBe(2);
        const held = await store.getRecord('lock-7', 7, 1);
        expect(Buffer.from(held!.bytes).equals(Buffer.from(rec(1).bytes))).toBe(true);
      });

      it('lists records after a sequence in order, and alerts newest first', async () => {
        for (const s of [3, 1, 2]) await store.insertRecord(rec(s, { kind: s === 2 ? 'audit' : 'alert' }));
        expect((await store.recordsAfter('lock-7', 7, 1, 10)).map((r) => r.sequence)).toEqual([2, 3]);
        expect((await store.recordsAfter('lock-7', 7, 0, 1)).map((r) => r.sequence)).toEqual([1]);
        expect((await store.listAlerts({ limit: 10 })).map((r) => r.sequence)).toEqual([3, 1]);
        expect(await store.listAlerts({ lockId: 'lock-8', limit: 10 })).toEqual([]);
      });

      it('tracks epochs and advances progress only by compare-and-set', async () => {
        expect(await store.touchEpoch('lock-7', 7, 100)).toBe(true);
        expect(await store.touchEpoch('lock-7', 7, 200)).toBe(false);
        expect(await store.touchEpoch('lock-7', 9, 300)).toBe(true);
        expect((await store.listEpochs('lock-7')).map((e) => e.epoch)).toEqual([7, 9]);
        const hash = new Uint8Array(32).fill(1);
        expect(await store.advanceProgress('lock-7', 7, 0, 5, hash)).toBe(true);
        expect(await store.advanceProgress('lock-7', 7, 0, 6, null)).toBe(false);
        const p = await store.getProgress('lock-7', 7);
        expect(p?.ackedSequence).toBe(5);
        expect(Buffer.from(p!.lastAuditHash!).equals(Buffer.from(hash))).toBe(true);
      });

      it('appends events with increasing ids and lists them after an id', async () => {
        const a = await store.addEvent({ lockId: 'lock-7', kind: 'gap', detail: { from: 2, to: 3 }, at: 1 });
        const b = await store.addEvent({ lockId: 'lock-8', kind: 'fork', detail: { sequence: 4 }, at: 2 });
        expect(b).toBeGreaterThan(a);
        expect((await store.listEvents({ limit: 10 })).map((e) => e.kind)).toEqual(['gap', 'fork']);
        expect((await store.listEvents({ after: a, limit: 10 })).map((e) => e.id)).toEqual([b]);
        expect((await store.listEvents({ lockId: 'lock-7', limit: 10 }))[0]?.detail).toEqual({
          from: 2,
          to: 3,
        });
      });

      it('keeps the latest state report', async () => {
        await store.putState({
          lockId: 'lock-7',
          bytes: Uint8Array.of(1),
          state: 'locked',
          time: 1,
          receivedAt: 1,
        });
        await store.putState({
          lockId: 'lock-7',
          bytes: Uint8Array.of(2),
          state: 'alarm',
          time: 2,
          receivedAt: 2,
        });
        expect((await store.getState('lock-7'))?.state).toBe('alarm');
      });

      it('moves the revocation list only from the expected version', async () => {
        const v1 = { lockId: 'lock-7', version: 1, entries: new Map([['0a', 99]]), bytes: Uint8Array.of(1) };
        expect(await store.putRevocation(v1, 0)).toBe(true);
        expect(await store.putRevocation(v1, 0)).toBe(false);
        expect(await store.putRevocation({ ...v1, version: 2 }, 5)).toBe(false);
        expect(await store.putRevocation({ ...v1, version: 2, entries: new Map() }, 1)).toBe(true);
        const held = await store.getRevocation('lock-7');
        expect(held?.version).toBe(2);
        expect(held?.entries.size).toBe(0);
        expect((await store.listRevocations()).length).toBe(1);
      });

      it('dates each revocation entry with the version that added it, for deltas', async () => {
        const put = (version: number, entries: [string, number][]) =>
          store.putRevocation(
            { lockId: 'lock-7', version, entries: new Map(entries), bytes: Uint8Array.of(version) },
            version - 1,
          );
        expect(await put(1, [['0a', 99]])).toBe(true);
        expect(
          await put(2, [
            ['0a', 99],
            ['0b', 50],
          ]),
        ).toBe(true);
        // 0a's expiry changed: the lock must be told again, so version 3 added it.
        expect(
          await put(3, [
            ['0a', 120],
            ['0b', 50],
          ]),
        ).toBe(true);
        const held = await store.getRevocation('lock-7');
        expect([...(held?.addedIn ?? [])].sort()).toEqual([
          ['0a', 3],
          ['0b', 2],
        ]);
        expect([...(held?.entries ?? [])].sort()).toEqual([
          ['0a', 120],
          ['0b', 50],
        ]);
      });

      it('keeps the revocation acknowledgement with the highest version', async () => {
        await store.putRevocationAck({ lockId: 'lock-7', version: 3, lockTime: 30, receivedAt: 300 });
        await store.putRevocationAck({ lockId: 'lock-7', version: 2, lockTime: 20, receivedAt: 400 });
        expect(await store.getRevocationAck('lock-7')).toEqual({
          lockId: 'lock-7',
          version: 3,
          lockTime: 30,
          receivedAt: 300,
        });
      });
    },
  );
}
