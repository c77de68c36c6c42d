/**
 * `CloudStore.batch` ([TANDEM-MQTT-15]) on SQLite (node-sqlite3-wasm) and PostgreSQL: one transaction for a
 * burst, a savepoint per step, and nothing from outside a batch joining it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqlStore } from '../src/store/sql-store.js';
import type { SqlCloudStore } from '../src/store/sql-store.js';
import type { StoredRecord } from '../src/store/types.js';
import { postgresMissing, startPostgres } from './servers.js';
import type { TestServer } from './servers.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-store-batch-'));
const pgMissing = postgresMissing();
let pg: (TestServer & { url: string }) | undefined;
let n = 0;

beforeAll(async () => {
  if (pgMissing === undefined) pg = await startPostgres();
}, 120_000);
afterAll(async () => {
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function freshPostgres(): Promise<SqlCloudStore> {
  const admin = await openSqlStore({ kind: 'postgres', url: pg!.url });
  const name = `b${process.pid}_${++n}`;
  await (admin as unknown as { db: { run(s: string): Promise<number> } }).db.run(`CREATE DATABASE ${name}`);
  await admin.close();
  return openSqlStore({ kind: 'postgres', url: pg!.url.replace(/\/postgres$/, `/${name}`) });
}

const record = (sequence: number): StoredRecord => ({
  lockId: 'lock-1',
  epoch: 1,
  sequence,
  kind: 'alert',
  bytes: Uint8Array.of(sequence),
  time: 1_800_000_000,
  receivedAt: 1,
  via: 'mqtt',
});

for (const [name, open, skip] of [
  [
    'SQLite (node-sqlite3-wasm)',
    () => openSqlStore({ kind: 'sqlite', engine: 'wasm', path: join(dir, `s${++n}.db`) }),
    undefined,
  ],
  ['PostgreSQL (pg)', freshPostgres, pgMissing],
] as const) {
  describe.skipIf(skip !== undefined)(`store batch: ${name}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    it('commits every write of the batch together; a throw rolls all of them back', async () => {
      const store = await open();
      try {
        await store.batch(async () => {
          expect(await store.insertRecord(record(1))).toBe('inserted');
          expect(await store.insertRecord(record(2))).toBe('inserted');
          // Inside the batch its own writes are seen (the ingestor's checks rely on it).
          expect(await store.countRecords('lock-1')).toBe(2);
        });
        expect(await store.countRecords('lock-1')).toBe(2);
        await expect(
          store.batch(async () => {
            await store.insertRecord(record(3));
            throw new Error('boom');
          }),
        ).rejects.toThrow('boom');
        expect(await store.getRecord('lock-1', 1, 3)).toBeUndefined();
      } finally {
        await store.close();
      }
    });

    it('a step that throws is undone alone; the steps before and after it are committed', async () => {
      const store = await open();
      try {
        const results = await store.batch(async (scope) => {
          const a = await scope.step(() => store.insertRecord(record(1)));
          const b = await scope.step(async () => {
            await store.insertRecord(record(2));
            throw new Error('bad message');
          });
          const c = await scope.step(() => store.insertRecord(record(3)));
          return [a, b, c];
        });
        expect(results.map((r) => r.ok)).toEqual([true, false, true]);
        expect(results[1]).toMatchObject({ ok: false, error: new Error('bad message') });
        const held = await store.recordsAfter('lock-1', 1, 0, 10);
        expect(held.map((r) => r.sequence)).toEqual([1, 3]);
      } finally {
        await store.close();
      }
    });

    it('a call from outside a batch never joins it: a rolled-back batch leaves it stored', async () => {
      const store = await open();
      try {
        // Another request of the process, started outside the batch (its async context), writes meanwhile.
        let go = (): void => undefined;
        const outside = new Promise<void>((r) => (go = r)).then(() => store.insertRecord(record(2)));
        await expect(
          store.batch(async () => {
            await store.insertRecord(record(1));
            go();
            await new Promise((r) => setTimeout(r, 50));
            throw new Error('rolled back');
          }),
        ).rejects.toThrow('rolled back');
        expect(await outside).toBe('inserted');
        expect((await store.recordsAfter('lock-1', 1, 0, 10)).map((r) => r.sequence)).toEqual([2]);
        await expect(store.batch(() => store.batch(() => Promise.resolve(1)))).rejects.toThrow(/do not nest/);
      } finally {
        await store.close();
      }
    });
  });
}
