import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqlStore } from '../src/store/sql-store.js';
import type { SqlCloudStore } from '../src/store/sql-store.js';
import { postgresMissing, startPostgres } from './servers.js';
import type { TestServer } from './servers.js';
import { storeContract } from './store-contract.js';

const missing = postgresMissing();
let server: (TestServer & { url: string }) | undefined;
let n = 0;

beforeAll(async () => {
  if (missing === undefined) server = await startPostgres();
}, 120_000);
afterAll(async () => {
  await server?.stop();
});

/** Each test gets a fresh database on the one server. */
async function freshStore(): Promise<SqlCloudStore> {
  const admin = await openSqlStore({ kind: 'postgres', url: server!.url });
  const name = `t${process.pid}_${++n}`;
  await (admin as unknown as { db: { run(s: string): Promise<number> } }).db.run(`CREATE DATABASE ${name}`);
  await admin.close();
  return openSqlStore({ kind: 'postgres', url: server!.url.replace(/\/postgres$/, `/${name}`) });
}

storeContract('PostgreSQL (pg)', freshStore, missing);

describe.skipIf(missing !== undefined)(
  `PostgreSQL store migrations${missing ? ` (skipped: ${missing})` : ''}`,
  () => {
    it('two stores opening one database at once migrate it exactly once', async () => {
      const a = await freshStore();
      const url = server!.url.replace(/\/postgres$/, `/t${process.pid}_${n}`);
      const [b, c] = await Promise.all([
        openSqlStore({ kind: 'postgres', url }),
        openSqlStore({ kind: 'postgres', url }),
      ]);
      expect(await b.schemaVersions()).toEqual([1, 2, 3, 4, 5]);
      await Promise.all([a.close(), b.close(), c.close()]);
    });
  },
);
