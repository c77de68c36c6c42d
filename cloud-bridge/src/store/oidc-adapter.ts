/**
 * oidc-provider's storage `Adapter` over the cloud's SQL store (`oidc_models`, migration 2): sessions,
 * interactions, grants, codes and tokens live in the same SQLite file or PostgreSQL database as accounts and
 * shares, so that logins survive a restart and several cloud processes share them. One row per artefact;
 * revoking a grant deletes every artefact of it; expired rows are purged lazily, a few per write.
 */
import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';
import type { Row, SqlDriver } from './sql-driver.js';

// oidc-provider checks expiry itself (with its clock tolerance): rows are kept this much longer than their
// lifetime so that the provider, not the store, decides; they are purged after.
const KEEP_AFTER_EXPIRY_MS = 60_000;

/** The factory to pass as oidc-provider's `adapter` option. */
export function sqlOidcAdapter(db: SqlDriver, now: () => number = () => Date.now()): AdapterFactory {
  return (model: string) => new SqlModelAdapter(db, model, now);
}

class SqlModelAdapter implements Adapter {
  constructor(
    private readonly db: SqlDriver,
    private readonly model: string,
    private readonly now: () => number,
  ) {}

  private live(row: Row | undefined): AdapterPayload | undefined {
    if (row === undefined) return undefined;
    if (row.expires_at !== null && Number(row.expires_at) <= this.now()) return undefined;
    return JSON.parse(String(row.payload)) as AdapterPayload;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    const expiresAt = expiresIn === undefined ? null : this.now() + expiresIn * 1000 + KEEP_AFTER_EXPIRY_MS;
    await this.db.run(
      `INSERT INTO oidc_models (model, id, payload, grant_id, user_code, uid, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id,
         user_code = excluded.user_code, uid = excluded.uid, expires_at = excluded.expires_at`,
      [
        this.model,
        id,
        JSON.stringify(payload),
        payload.grantId ?? null,
        payload.userCode ?? null,
        payload.uid ?? null,
        expiresAt,
      ],
    );
    // A little at a time, so the table does not grow with every token ever issued.
    await this.db.run(
      `DELETE FROM oidc_models WHERE (model, id) IN
         (SELECT model, id FROM oidc_models WHERE expires_at <= ? LIMIT 16)`,
      [this.now()],
    );
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const rows = await this.db.query(
      'SELECT payload, expires_at FROM oidc_models WHERE model = ? AND id = ?',
      [this.model, id],
    );
    return this.live(rows[0]);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const rows = await this.db.query(
      'SELECT payload, expires_at FROM oidc_models WHERE model = ? AND user_code = ?',
      [this.model, userCode],
    );
    return this.live(rows[0]);
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const rows = await this.db.query(
      'SELECT payload, expires_at FROM oidc_models WHERE model = ? AND uid = ?',
      [this.model, uid],
    );
    return this.live(rows[0]);
  }

  async consume(id: string): Promise<void> {
    const rows = await this.db.query('SELECT payload FROM oidc_models WHERE model = ? AND id = ?', [
      this.model,
      id,
    ]);
    const row = rows[0];
    if (row === undefined) return;
    const payload = JSON.parse(String(row.payload)) as AdapterPayload;
    payload.consumed = Math.floor(this.now() / 1000);
    await this.db.run('UPDATE oidc_models SET payload = ? WHERE model = ? AND id = ?', [
      JSON.stringify(payload),
      this.model,
      id,
    ]);
  }

  async destroy(id: string): Promise<void> {
    await this.db.run('DELETE FROM oidc_models WHERE model = ? AND id = ?', [this.model, id]);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    // Every artefact of the grant, whatever its model: a revoked login leaves no token behind.
    await this.db.run('DELETE FROM oidc_models WHERE grant_id = ?', [grantId]);
  }
}
