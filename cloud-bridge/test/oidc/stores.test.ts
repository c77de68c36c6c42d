/** The store contract against the in-memory store always, and SQLite when better-sqlite3's binary is built. */
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
