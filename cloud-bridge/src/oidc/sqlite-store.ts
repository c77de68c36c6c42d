/**
 * SQLite implementation of {@link AccountStore} and {@link DelegationSource} over better-sqlite3 (v12). The
 * binding is native and npm here runs no install scripts, so it is an optional dependency loaded lazily: when
 * its binary is absent, {@link SqliteOidcStore.open} fails with ERR_OIDC_STORE and says how to build it, and
 * the in-memory store stays usable. One file holds accounts, phone keys and shares; writes are synchronous
 * transactions in WAL mode with synchronous=FULL, so a revocation that returned has reached the disk.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';
import type { PublicKey } from '../../../protocol/src/keys.js';
import { publicKeyFromRaw } from '../../../protocol/src/keys.js';
import type { Schedule } from '../../../protocol/src/schedule.js';
import { OidcError } from './errors.js';
import { checkAccount, checkDeviceId, checkPhoneKey, checkShare } from './rules.js';
import type { Account, AccountStore, DelegationSource, Share } from './store.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS accounts (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  password_hash TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS phone_keys (
  account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  device_id TEXT NOT NULL,
  raw BLOB NOT NULL,
  PRIMARY KEY (account_id, device_id)
) STRICT;
CREATE TABLE IF NOT EXISTS shares (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  lock TEXT NOT NULL,
  rider TEXT NOT NULL,
  scope TEXT NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  schedule TEXT,
  max_uses INTEGER,
  uses_reported INTEGER NOT NULL DEFAULT 0,
  may_reshare INTEGER NOT NULL DEFAULT 0,
  min_revocation INTEGER,
  revoked INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX IF NOT EXISTS shares_by_rider ON shares (rider);
CREATE TABLE IF NOT EXISTS oidc_models (
  model TEXT NOT NULL,
  id TEXT NOT NULL,
  payload TEXT NOT NULL,
  grant_id TEXT,
  user_code TEXT,
  uid TEXT,
  expires_at INTEGER,
  PRIMARY KEY (model, id)
) STRICT;
CREATE INDEX IF NOT EXISTS oidc_models_by_grant ON oidc_models (grant_id);
CREATE INDEX IF NOT EXISTS oidc_models_by_user_code ON oidc_models (model, user_code);
CREATE INDEX IF NOT EXISTS oidc_models_by_uid ON oidc_models (model, uid);
`;

// oidc-provider checks expiry itself (with its clock tolerance); rows are kept this much longer than their
// lifetime so that the provider, not the store, decides, and are purged after.
const KEEP_AFTER_EXPIRY_MS = 60_000;

interface ShareRow {
  id: string;
  owner: string;
  lock: string;
  rider: string;
  scope: string;
  not_before: number;
  not_after: number;
  schedule: string | null;
  max_uses: number | null;
  uses_reported: number;
  may_reshare: number;
  min_revocation: number | null;
  revoked: number;
}

function rowToShare(r: ShareRow): Share {
  return {
    id: r.id,
    owner: r.owner,
    lock: r.lock,
    rider: r.rider,
    scope: r.scope.split(' '),
    notBefore: r.not_before,
    notAfter: r.not_after,
    ...(r.schedule !== null ? { schedule: JSON.parse(r.schedule) as Schedule } : {}),
    ...(r.max_uses !== null ? { maxUses: r.max_uses } : {}),
    usesReported: r.uses_reported,
    mayReshare: r.may_reshare === 1,
    ...(r.min_revocation !== null ? { minRevocation: r.min_revocation } : {}),
    revoked: r.revoked === 1,
  };
}

/** Loads better-sqlite3, or explains why it cannot be. */
export async function loadBetterSqlite3(): Promise<typeof BetterSqlite3> {
  try {
    const mod = (await import('better-sqlite3')) as unknown as { default: typeof BetterSqlite3 };
    const Database = mod.default;
    // The JavaScript loads without the native binary; opening a database is what needs it.
    new Database(':memory:').close();
    return Database;
  } catch (cause) {
    throw new OidcError(
      'ERR_OIDC_STORE',
      'better-sqlite3 is not usable: npm runs no install scripts here, so build its binary once with ' +
        '`cd node_modules/better-sqlite3 && npx node-gyp rebuild --release --nodedir=/usr` (see cloud-bridge/src/oidc/README.md)',
      { cause },
    );
  }
}

/** Accounts, phone keys and shares in one SQLite file. */
export class SqliteOidcStore implements AccountStore, DelegationSource {
  private constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly now: () => number,
  ) {}

  /**
   * oidc-provider's storage (sessions, interactions, grants, codes, tokens) in the same file: pass it as the
   * provider's `adapter` so that logins survive a restart and several bridge processes can share them.
   */
  adapter(): AdapterFactory {
    return (model: string) => new SqliteModelAdapter(this.db, model, this.now);
  }

  /** Opens (creating if needed) the database at `path` (`:memory:` for a private in-memory one). */
  static async open(path: string, now: () => number = () => Date.now()): Promise<SqliteOidcStore> {
    const Database = await loadBetterSqlite3();
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.exec(SCHEMA);
    return new SqliteOidcStore(db, now);
  }

  close(): void {
    this.db.close();
  }

  async createAccount(account: Account): Promise<void> {
    checkAccount(account);
    const r = this.db
      .prepare('INSERT INTO accounts (id, name, password_hash) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING')
      .run(account.id, account.name, account.passwordHash);
    if (r.changes === 0)
      throw new OidcError('ERR_OIDC_ACCOUNT_EXISTS', `account "${account.id}" already exists`);
  }

  async findAccount(id: string): Promise<Account | undefined> {
    const r = this.db.prepare('SELECT id, name, password_hash FROM accounts WHERE id = ?').get(id) as
      { id: string; name: string; password_hash: string } | undefined;
    return r ? { id: r.id, name: r.name, passwordHash: r.password_hash } : undefined;
  }

  async registerPhoneKey(accountId: string, deviceId: string, key: PublicKey): Promise<void> {
    checkDeviceId(deviceId);
    checkPhoneKey(key);
    if (!(await this.findAccount(accountId))) {
      throw new OidcError('ERR_OIDC_ACCOUNT_UNKNOWN', `no account "${accountId}"`);
    }
    this.db
      .prepare(
        'INSERT INTO phone_keys (account_id, device_id, raw) VALUES (?, ?, ?) ' +
          'ON CONFLICT (account_id, device_id) DO UPDATE SET raw = excluded.raw',
      )
      .run(accountId, deviceId, Buffer.from(key.raw));
  }

  async phoneKey(accountId: string, deviceId: string): Promise<PublicKey | undefined> {
    const r = this.db
      .prepare('SELECT raw FROM phone_keys WHERE account_id = ? AND device_id = ?')
      .get(accountId, deviceId) as { raw: Buffer } | undefined;
    return r ? publicKeyFromRaw('ES256', new Uint8Array(r.raw)) : undefined;
  }

  async removePhoneKey(accountId: string, deviceId: string): Promise<boolean> {
    return (
      this.db
        .prepare('DELETE FROM phone_keys WHERE account_id = ? AND device_id = ?')
        .run(accountId, deviceId).changes > 0
    );
  }

  /** Adds or replaces a share (checked against [TANDEM-DLG-3]). */
  put(share: Share): void {
    checkShare(share);
    this.db
      .prepare(
        `INSERT OR REPLACE INTO shares (id, owner, lock, rider, scope, not_before, not_after, schedule, max_uses,
           uses_reported, may_reshare, min_revocation, revoked)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        share.id,
        share.owner,
        share.lock,
        share.rider,
        share.scope.join(' '),
        share.notBefore,
        share.notAfter,
        share.schedule !== undefined ? JSON.stringify(share.schedule) : null,
        share.maxUses ?? null,
        share.usesReported ?? 0,
        share.mayReshare === true ? 1 : 0,
        share.minRevocation ?? null,
        share.revoked === true ? 1 : 0,
      );
  }

  /** Marks a share revoked; true when it existed. */
  revoke(id: string): boolean {
    return this.db.prepare('UPDATE shares SET revoked = 1 WHERE id = ?').run(id).changes > 0;
  }

  /** Records uses seen in audit records. */
  reportUses(id: string, uses: number): void {
    this.db.prepare('UPDATE shares SET uses_reported = uses_reported + ? WHERE id = ?').run(uses, id);
  }

  async sharesFor(rider: string): Promise<readonly Share[]> {
    const rows = this.db.prepare('SELECT * FROM shares WHERE rider = ? ORDER BY id').all(rider) as ShareRow[];
    return rows.map(rowToShare);
  }
}

interface ModelRow {
  payload: string;
  expires_at: number | null;
}

/** One oidc-provider model ("AccessToken", "Session", ...) in the `oidc_models` table. */
class SqliteModelAdapter implements Adapter {
  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly model: string,
    private readonly now: () => number,
  ) {}

  private live(row: ModelRow | undefined): AdapterPayload | undefined {
    if (!row || (row.expires_at !== null && row.expires_at <= this.now())) return undefined;
    return JSON.parse(row.payload) as AdapterPayload;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    const expiresAt = expiresIn === undefined ? null : this.now() + expiresIn * 1000 + KEEP_AFTER_EXPIRY_MS;
    this.db
      .prepare(
        'INSERT OR REPLACE INTO oidc_models (model, id, payload, grant_id, user_code, uid, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        this.model,
        id,
        JSON.stringify(payload),
        payload.grantId ?? null,
        payload.userCode ?? null,
        payload.uid ?? null,
        expiresAt,
      );
    // Purge lazily, a little at a time, so the table does not grow with every token ever issued.
    this.db
      .prepare(
        'DELETE FROM oidc_models WHERE rowid IN (SELECT rowid FROM oidc_models WHERE expires_at <= ? LIMIT 16)',
      )
      .run(this.now());
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.live(
      this.db
        .prepare('SELECT payload, expires_at FROM oidc_models WHERE model = ? AND id = ?')
        .get(this.model, id) as ModelRow | undefined,
    );
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return this.live(
      this.db
        .prepare('SELECT payload, expires_at FROM oidc_models WHERE model = ? AND user_code = ?')
        .get(this.model, userCode) as ModelRow | undefined,
    );
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.live(
      this.db
        .prepare('SELECT payload, expires_at FROM oidc_models WHERE model = ? AND uid = ?')
        .get(this.model, uid) as ModelRow | undefined,
    );
  }

  async consume(id: string): Promise<void> {
    const consume = this.db.transaction(() => {
      const row = this.db
        .prepare('SELECT payload FROM oidc_models WHERE model = ? AND id = ?')
        .get(this.model, id) as { payload: string } | undefined;
      if (!row) return;
      const payload = JSON.parse(row.payload) as AdapterPayload;
      payload.consumed = Math.floor(this.now() / 1000);
      this.db
        .prepare('UPDATE oidc_models SET payload = ? WHERE model = ? AND id = ?')
        .run(JSON.stringify(payload), this.model, id);
    });
    consume();
  }

  async destroy(id: string): Promise<void> {
    this.db.prepare('DELETE FROM oidc_models WHERE model = ? AND id = ?').run(this.model, id);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    // Every artefact of the grant, whatever its model: a revoked login leaves no token behind.
    this.db.prepare('DELETE FROM oidc_models WHERE grant_id = ?').run(grantId);
  }
}
