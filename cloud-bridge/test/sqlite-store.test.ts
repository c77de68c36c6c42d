import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqlStore } from '../src/store/sql-store.js';
import { betterSqliteMissing } from './sqlite-engine.js';
import { storeContract } from './store-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-sqlite-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

storeContract(
  'SQLite (better-sqlite3)',
  () => openSqlStore({ kind: 'sqlite', engine: 'better-sqlite3', path: join(dir, `s${++n}.db`) }),
  betterSqliteMissing(),
);
storeContract('SQLite (node-sqlite3-wasm)', () =>
  openSqlStore({ kind: 'sqlite', engine: 'wasm', path: join(dir, `w${++n}.db`) }),
);

describe('SQLite store migrations', () => {
  it('applies every migration once and reopens a file without re-applying them', async () => {
    const path = join(dir, 'migrate.db');
    const a = await openSqlStore({ kind: 'sqlite', path });
    await a.registerLock({
      lockId: 'lock-1',
      deviceKey: new Uint8Array(32),
      passwordHash: null,
      registeredAt: 1,
    });
    expect(await a.schemaVersions()).toEqual([1, 2, 3, 4, 5]);
    await a.close();
    const b = await openSqlStore({ kind: 'sqlite', path });
    expect(await b.schemaVersions()).toEqual([1, 2, 3, 4, 5]);
    expect((await b.getLock('lock-1'))?.registeredAt).toBe(1);
    await b.close();
  });
});
