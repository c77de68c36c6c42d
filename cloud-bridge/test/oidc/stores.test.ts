/** The store contract against the in-memory store always, and SQLite when better-sqlite3's binary is built. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../../protocol/src/keys.js';
import { MemoryAccountStore, MemoryDelegationSource } from '../../src/oidc/memory-store.js';
import { SqliteOidcStore, loadBetterSqlite3 } from '../../src/oidc/sqlite-store.js';
import type { StoreUnderTest } from './store-contract.js';
import { storeContract } from './store-contract.js';

function memory(): Promise<StoreUnderTest> {
  const accounts = new MemoryAccountStore();
  const shares = new MemoryDelegationSource();
  return Promise.resolve({
    createAccount: (a) => accounts.createAccount(a),
    findAccount: (id) => accounts.findAccount(id),
    registerPhoneKey: (a, d, k) => accounts.registerPhoneKey(a, d, k),
    phoneKey: (a, d) => accounts.phoneKey(a, d),
    removePhoneKey: (a, d) => accounts.removePhoneKey(a, d),
    put: (s) => shares.put(s),
    revoke: (id) => shares.revoke(id),
    reportUses: (id, n) => shares.reportUses(id, n),
    sharesFor: (r) => shares.sharesFor(r),
  });
}

const sqliteMissing = await loadBetterSqlite3().then(
  () => undefined,
  () => 'better-sqlite3 binary not built (npm runs no install scripts); see cloud-bridge/src/oidc/README.md',
);

storeContract('MemoryAccountStore + MemoryDelegationSource', memory);
storeContract('SqliteOidcStore', () => SqliteOidcStore.open(':memory:'), sqliteMissing);

describe.skipIf(sqliteMissing !== undefined)('SqliteOidcStore on disk', () => {
  it('keeps accounts, phone keys and shares across a reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tandem-oidc-'));
    try {
      const path = join(dir, 'oidc.sqlite');
      const key = generateKeyPair('ES256').publicKey;
      const a = await SqliteOidcStore.open(path);
      await a.createAccount({
        id: 'bianca',
        name: 'Bianca',
        passwordHash: '$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA',
      });
      await a.registerPhoneKey('bianca', 'grant-1', key);
      a.put({
        id: 's1',
        owner: 'adam',
        lock: 'lock-1',
        rider: 'bianca',
        scope: ['unlock'],
        notBefore: 1,
        notAfter: 2,
      });
      a.revoke('s1');
      a.close();
      const b = await SqliteOidcStore.open(path);
      expect((await b.findAccount('bianca'))?.name).toBe('Bianca');
      expect(Buffer.from((await b.phoneKey('bianca', 'grant-1'))!.raw)).toEqual(Buffer.from(key.raw));
      expect(await b.sharesFor('bianca')).toEqual([expect.objectContaining({ id: 's1', revoked: true })]);
      b.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
