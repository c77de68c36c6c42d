/**
 * {@link CloudStore} over SQL, one implementation for SQLite and PostgreSQL ({@link SqlDriver}). Migrations
 * are numbered and recorded in `schema_migrations`; a store opens by applying the missing ones in order.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import type { PublicKey } from '../../../protocol/src/keys.js';
import { exportJwk, publicKeyFromRaw } from '../../../protocol/src/keys.js';
import type { Alg } from '../../../protocol/src/keys.js';
import type { Schedule } from '../../../protocol/src/schedule.js';
import { deriveAddedIn } from '../revocation-history.js';
import { CloudError } from '../errors.js';
import { OidcError } from '../oidc/errors.js';
import { checkAccount, checkDeviceId, checkPhoneKey, checkShare } from '../oidc/rules.js';
import type { AdapterFactory } from 'oidc-provider';
import { sqlOidcAdapter } from './oidc-adapter.js';
import type { Row, SqlDriver, SqliteEngine } from './sql-driver.js';
import type {
  Account,
  BatchScope,
  ClaimOutcome,
  CloudEvent,
  CloudStore,
  DeviceRecord,
  LockClaim,
  Share,
  InsertOutcome,
  LockRecord,
  OutboxProgress,
  StoredRecord,
  StoredRevocation,
  StoredAnchorAck,
  LockSettings,
  StoredRevocationAck,
  StoredState,
  StepOutcome,
} from './types.js';

type Dialect = SqlDriver['dialect'];

/** One schema change; `sql` gives each dialect its statements. */
interface Migration {
  readonly version: number;
  readonly sql: (d: Dialect) => readonly string[];
}

const blob = (d: Dialect): string => (d === 'sqlite' ? 'BLOB' : 'BYTEA');
const int = (d: Dialect): string => (d === 'sqlite' ? 'INTEGER' : 'BIGINT');

/** The schema, as migrations in order. A later change is one more entry, never an edit of an old one. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: (d) => [
      `CREATE TABLE locks (lock_id TEXT PRIMARY KEY, device_key ${blob(d)} NOT NULL, password_hash TEXT,
         registered_at ${int(d)} NOT NULL)`,
      `CREATE TABLE records (lock_id TEXT NOT NULL, epoch ${int(d)} NOT NULL, sequence ${int(d)} NOT NULL,
         kind TEXT NOT NULL, bytes ${blob(d)} NOT NULL, time ${int(d)} NOT NULL, received_at ${int(d)} NOT NULL,
         via TEXT NOT NULL, PRIMARY KEY (lock_id, epoch, sequence))`,
      `CREATE INDEX records_alerts ON records (kind, received_at)`,
      `CREATE TABLE outbox_progress (lock_id TEXT NOT NULL, epoch ${int(d)} NOT NULL,
         acked_sequence ${int(d)} NOT NULL, last_audit_hash ${blob(d)}, first_seen_at ${int(d)} NOT NULL,
         PRIMARY KEY (lock_id, epoch))`,
      d === 'sqlite'
        ? `CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, lock_id TEXT NOT NULL, kind TEXT NOT NULL,
             detail TEXT NOT NULL, at INTEGER NOT NULL)`
        : `CREATE TABLE events (id BIGSERIAL PRIMARY KEY, lock_id TEXT NOT NULL, kind TEXT NOT NULL,
             detail TEXT NOT NULL, at BIGINT NOT NULL)`,
      `CREATE INDEX events_lock ON events (lock_id, id)`,
      `CREATE TABLE lock_state (lock_id TEXT PRIMARY KEY, bytes ${blob(d)} NOT NULL, state TEXT NOT NULL,
         time ${int(d)} NOT NULL, received_at ${int(d)} NOT NULL)`,
      `CREATE TABLE revocations (lock_id TEXT PRIMARY KEY, version ${int(d)} NOT NULL, entries TEXT NOT NULL,
         bytes ${blob(d)} NOT NULL)`,
      `CREATE TABLE revocation_acks (lock_id TEXT PRIMARY KEY, version ${int(d)} NOT NULL,
         lock_time ${int(d)} NOT NULL, received_at ${int(d)} NOT NULL)`,
    ],
  },
  {
    // Issue 10, part 7: the OpenID Provider's accounts, phone keys and shares, and lock ownership, folded into
    // the cloud's store so that one database (SQLite or PostgreSQL) holds everything the sharing API touches.
    version: 2,
    sql: (d) => [
      `CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT NOT NULL, password_hash TEXT NOT NULL,
         created_at ${int(d)} NOT NULL)`,
      `CREATE TABLE devices (account_id TEXT NOT NULL REFERENCES accounts (id), device_id TEXT NOT NULL,
         alg TEXT NOT NULL, raw ${blob(d)} NOT NULL, name TEXT, thumbprint TEXT NOT NULL,
         registered_at ${int(d)} NOT NULL, PRIMARY KEY (account_id, device_id))`,
      `CREATE TABLE lock_claims (lock_id TEXT PRIMARY KEY, owner TEXT NOT NULL REFERENCES accounts (id),
         owner_alg TEXT NOT NULL, owner_key ${blob(d)} NOT NULL, owner_kid ${blob(d)} NOT NULL,
         claimed_at ${int(d)} NOT NULL)`,
      `CREATE INDEX lock_claims_owner ON lock_claims (owner, lock_id)`,
      `CREATE TABLE shares (id TEXT PRIMARY KEY, owner TEXT NOT NULL, lock_id TEXT NOT NULL, rider TEXT NOT NULL,
         scope TEXT NOT NULL, not_before ${int(d)} NOT NULL, not_after ${int(d)} NOT NULL, schedule TEXT,
         max_uses ${int(d)}, uses_reported ${int(d)} NOT NULL, may_reshare INTEGER NOT NULL,
         min_revocation ${int(d)}, revoked INTEGER NOT NULL, revoked_at ${int(d)}, created_at ${int(d)} NOT NULL)`,
      `CREATE INDEX shares_rider ON shares (rider, id)`,
      `CREATE INDEX shares_lock ON shares (lock_id, created_at)`,
      // oidc-provider's own artefacts (sessions, grants, codes, tokens): its `Adapter` over this store.
      `CREATE TABLE oidc_models (model TEXT NOT NULL, id TEXT NOT NULL, payload TEXT NOT NULL, grant_id TEXT,
         user_code TEXT, uid TEXT, expires_at ${int(d)}, PRIMARY KEY (model, id))`,
      `CREATE INDEX oidc_models_grant ON oidc_models (grant_id)`,
      `CREATE INDEX oidc_models_user_code ON oidc_models (model, user_code)`,
      `CREATE INDEX oidc_models_uid ON oidc_models (model, uid)`,
      `CREATE INDEX oidc_models_expiry ON oidc_models (expires_at)`,
    ],
  },
  {
    // Issue 10: anchor acknowledgements ([TANDEM-ANCHOR-5]) were held in the bridge's memory only, so the
    // owner's lock view could not show which issuer anchor a lock holds, and a phone's relayed ack was lost.
    version: 3,
    sql: (d) => [
      `CREATE TABLE anchor_acks (lock_id TEXT PRIMARY KEY, version ${int(d)} NOT NULL,
         lock_time ${int(d)} NOT NULL, received_at ${int(d)} NOT NULL, via TEXT NOT NULL)`,
    ],
  },
  {
    // Issue 11: the owner's settings of a lock, first remote locking for Home Assistant ([TANDEM-HA-2]);
    // a table of its own so that later settings are columns here, not on the lock's identity row.
    version: 4,
    sql: (d) => [
      `CREATE TABLE lock_settings (lock_id TEXT PRIMARY KEY, remote_locking ${int(d)} NOT NULL DEFAULT 0,
         updated_at ${int(d)} NOT NULL)`,
    ],
  },
  {
    // Issue 11: remote commands ([TANDEM-RCMD-4]) are numbered per lock, and the lock refuses a number it has
    // seen; the last number used is stored before a command is published, so a restarted cloud never reuses one.
    version: 5,
    sql: (d) => [
      `CREATE TABLE remote_commands (lock_id TEXT PRIMARY KEY, last_sequence ${int(d)} NOT NULL,
         issued_at ${int(d)} NOT NULL)`,
    ],
  },
];

/** RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key: the required members in lexicographic order. */
export function jwkThumbprint(key: PublicKey): string {
  const jwk = exportJwk(key);
  const members =
    jwk.kty === 'EC'
      ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
      : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

const alg = (v: unknown): Alg => (v === 'EdDSA' ? 'EdDSA' : 'ES256');

function deviceOf(r: Row): DeviceRecord {
  return {
    accountId: String(r.account_id),
    deviceId: String(r.device_id),
    key: publicKeyFromRaw(alg(r.alg), bytes(r.raw)),
    name: r.name === null ? null : String(r.name),
    thumbprint: String(r.thumbprint),
    registeredAt: num(r.registered_at),
  };
}
function claimOf(r: Row): LockClaim {
  return {
    lockId: String(r.lock_id),
    owner: String(r.owner),
    ownerKey: publicKeyFromRaw(alg(r.owner_alg), bytes(r.owner_key)),
    ownerKid: bytes(r.owner_kid),
    claimedAt: num(r.claimed_at),
  };
}
function shareOf(r: Row): Share {
  return {
    id: String(r.id),
    owner: String(r.owner),
    lock: String(r.lock_id),
    rider: String(r.rider),
    scope: String(r.scope).split(' '),
    notBefore: num(r.not_before),
    notAfter: num(r.not_after),
    ...(r.schedule !== null ? { schedule: JSON.parse(String(r.schedule)) as Schedule } : {}),
    ...(r.max_uses !== null ? { maxUses: num(r.max_uses) } : {}),
    usesReported: num(r.uses_reported),
    mayReshare: num(r.may_reshare) === 1,
    ...(r.min_revocation !== null ? { minRevocation: num(r.min_revocation) } : {}),
    revoked: num(r.revoked) === 1,
    ...(r.revoked_at !== null ? { revokedAt: num(r.revoked_at) } : {}),
    createdAt: num(r.created_at),
  };
}

const num = (v: unknown): number => Number(v);
const bytes = (v: unknown): Uint8Array => {
  const b = v as Buffer;
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
};
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

function lockOf(r: Row): LockRecord {
  return {
    lockId: String(r.lock_id),
    deviceKey: bytes(r.device_key),
    passwordHash: r.password_hash === null ? null : String(r.password_hash),
    registeredAt: num(r.registered_at),
  };
}
function recordOf(r: Row): StoredRecord {
  return {
    lockId: String(r.lock_id),
    epoch: num(r.epoch),
    sequence: num(r.sequence),
    kind: r.kind === 'alert' ? 'alert' : 'audit',
    bytes: bytes(r.bytes),
    time: num(r.time),
    receivedAt: num(r.received_at),
    via: String(r.via),
  };
}
function progressOf(r: Row): OutboxProgress {
  return {
    lockId: String(r.lock_id),
    epoch: num(r.epoch),
    ackedSequence: num(r.acked_sequence),
    lastAuditHash: r.last_audit_hash === null ? null : bytes(r.last_audit_hash),
    firstSeenAt: num(r.first_seen_at),
  };
}
function revocationOf(r: Row): StoredRevocation {
  // `[hex, exp, addedIn]`; rows written before deltas were built hold `[hex, exp]` (dated as the row's version).
  const rows = JSON.parse(String(r.entries)) as [string, number, number?][];
  const version = num(r.version);
  return {
    lockId: String(r.lock_id),
    version,
    entries: new Map(rows.map(([hex, exp]) => [hex, exp])),
    addedIn: new Map(rows.map(([hex, , added]) => [hex, added ?? version])),
    bytes: bytes(r.bytes),
  };
}

const RECORD_COLUMNS = 'lock_id, epoch, sequence, kind, bytes, time, received_at, via';

/** The SQL implementation of {@link CloudStore}. Open it with {@link openSqlStore}. */
export class SqlCloudStore implements CloudStore {
  readonly #base: SqlDriver;
  /** The driver statements go to outside a batch (SQLite: gated while a batch holds the connection). */
  readonly #outside: SqlDriver;
  /**
   * The transaction of the batch whose async context a call runs in. `open` turns false at its end: work the
   * batch started that outlives it (a timer) then goes to the shared connection, not to a finished one.
   */
  readonly #scope = new AsyncLocalStorage<{ readonly tx: SqlDriver; open: boolean }>();
  /** SQLite: settles when the running batch ends; until then statements from outside it wait. */
  #held: Promise<void> | undefined;

  constructor(db: SqlDriver) {
    this.#base = db;
    this.#outside = db.dialect === 'sqlite' ? this.#gated(db) : db;
  }

  /** The connection for this call: the batch's transaction inside {@link batch}, else the shared one. */
  private get db(): SqlDriver {
    const s = this.#scope.getStore();
    return s?.open === true ? s.tx : this.#outside;
  }

  /**
   * SQLite has one connection: a statement from outside a batch, run while the batch's transaction is open,
   * would silently join it (and be undone with it). Such statements wait for the batch to end instead.
   */
  #gated(db: SqlDriver): SqlDriver {
    const free = async (): Promise<void> => {
      while (this.#held !== undefined) await this.#held;
    };
    return {
      ...db,
      query: (sql, params) =>
        this.#held === undefined ? db.query(sql, params) : free().then(() => db.query(sql, params)),
      run: (sql, params) =>
        this.#held === undefined ? db.run(sql, params) : free().then(() => db.run(sql, params)),
    };
  }

  async batch<T>(fn: (scope: BatchScope) => Promise<T>): Promise<T> {
    if (this.#scope.getStore()?.open === true) {
      throw new CloudError('ERR_CLOUD_STORE', 'store batches do not nest');
    }
    const inTransaction = (tx: SqlDriver): Promise<T> => {
      let n = 0;
      const scope: BatchScope = {
        step: async <S>(step: () => Promise<S>): Promise<StepOutcome<S>> => {
          const name = `step_${++n}`;
          await tx.run(`SAVEPOINT ${name}`);
          try {
            const value = await step();
            await tx.run(`RELEASE SAVEPOINT ${name}`);
            return { ok: true, value };
          } catch (error) {
            // Undo this step's writes only; a failure here (the connection is gone) fails the whole batch.
            await tx.run(`ROLLBACK TO SAVEPOINT ${name}`);
            await tx.run(`RELEASE SAVEPOINT ${name}`);
            return { ok: false, error };
          }
        },
      };
      const held = { tx, open: true };
      return this.#scope
        .run(held, () => fn(scope))
        .finally(() => {
          held.open = false;
        });
    };
    if (this.#base.dialect !== 'sqlite') return this.#base.transaction(inTransaction);
    while (this.#held !== undefined) await this.#held;
    let release = (): void => undefined;
    this.#held = new Promise<void>((resolve) => (release = resolve));
    try {
      return await this.#base.transaction(inTransaction);
    } finally {
      this.#held = undefined;
      release();
    }
  }

  /** oidc-provider's `adapter` over this store's `oidc_models` table. */
  oidcAdapter(now?: () => number): AdapterFactory {
    return sqlOidcAdapter(this.db, now);
  }

  /** Applies the missing migrations in order. */
  async migrate(): Promise<void> {
    await this.db.withMigrationLock(async () => {
      await this.db.run(
        `CREATE TABLE IF NOT EXISTS schema_migrations (version ${int(this.db.dialect)} PRIMARY KEY,
           applied_at ${int(this.db.dialect)} NOT NULL)`,
      );
      const done = new Set(
        (await this.db.query('SELECT version FROM schema_migrations')).map((r) => num(r.version)),
      );
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        for (const stmt of m.sql(this.db.dialect)) await this.db.run(stmt);
        await this.db.run('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)', [
          m.version,
          Date.now(),
        ]);
      }
    });
  }

  /** The schema versions applied, in order. */
  async schemaVersions(): Promise<number[]> {
    const rows = await this.db.query('SELECT version FROM schema_migrations ORDER BY version');
    return rows.map((r) => num(r.version));
  }

  async registerLock(lock: LockRecord): Promise<void> {
    await this.db.run(
      `INSERT INTO locks (lock_id, device_key, password_hash, registered_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (lock_id) DO UPDATE SET device_key = excluded.device_key,
         password_hash = excluded.password_hash, registered_at = excluded.registered_at`,
      [lock.lockId, lock.deviceKey, lock.passwordHash, lock.registeredAt],
    );
  }
  async getLock(lockId: string): Promise<LockRecord | undefined> {
    const rows = await this.db.query('SELECT * FROM locks WHERE lock_id = ?', [lockId]);
    return rows[0] === undefined ? undefined : lockOf(rows[0]);
  }
  async listLocks(): Promise<LockRecord[]> {
    return (await this.db.query('SELECT * FROM locks ORDER BY lock_id')).map(lockOf);
  }

  async insertRecord(r: StoredRecord): Promise<InsertOutcome> {
    const changed = await this.db.run(
      `INSERT INTO records (${RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      [r.lockId, r.epoch, r.sequence, r.kind, r.bytes, r.time, r.receivedAt, r.via],
    );
    if (changed === 1) return 'inserted';
    const held = await this.getRecord(r.lockId, r.epoch, r.sequence);
    return held !== undefined && sameBytes(held.bytes, r.bytes) ? 'duplicate' : 'conflict';
  }
  async getRecord(lockId: string, epoch: number, sequence: number): Promise<StoredRecord | undefined> {
    const rows = await this.db.query(
      `SELECT ${RECORD_COLUMNS} FROM records WHERE lock_id = ? AND epoch = ? AND sequence = ?`,
      [lockId, epoch, sequence],
    );
    return rows[0] === undefined ? undefined : recordOf(rows[0]);
  }
  async recordsAfter(lockId: string, epoch: number, after: number, limit: number): Promise<StoredRecord[]> {
    const rows = await this.db.query(
      `SELECT ${RECORD_COLUMNS} FROM records WHERE lock_id = ? AND epoch = ? AND sequence > ?
       ORDER BY sequence LIMIT ?`,
      [lockId, epoch, after, limit],
    );
    return rows.map(recordOf);
  }
  async listAlerts(options: { lockId?: string; limit: number }): Promise<StoredRecord[]> {
    const rows =
      options.lockId === undefined
        ? await this.db.query(
            `SELECT ${RECORD_COLUMNS} FROM records WHERE kind = 'alert' ORDER BY received_at DESC, sequence DESC
             LIMIT ?`,
            [options.limit],
          )
        : await this.db.query(
            `SELECT ${RECORD_COLUMNS} FROM records WHERE kind = 'alert' AND lock_id = ?
             ORDER BY received_at DESC, sequence DESC LIMIT ?`,
            [options.lockId, options.limit],
          );
    return rows.map(recordOf);
  }
  async recordsByArrival(
    lockId: string,
    kind: StoredRecord['kind'],
    after: { readonly receivedAt: number; readonly epoch: number; readonly sequence: number } | undefined,
    limit: number,
  ): Promise<StoredRecord[]> {
    const a = after ?? { receivedAt: -1, epoch: -1, sequence: -1 };
    const rows = await this.db.query(
      `SELECT ${RECORD_COLUMNS} FROM records WHERE lock_id = ? AND kind = ?
         AND (received_at > ? OR (received_at = ? AND (epoch > ? OR (epoch = ? AND sequence > ?))))
       ORDER BY received_at, epoch, sequence LIMIT ?`,
      [lockId, kind, a.receivedAt, a.receivedAt, a.epoch, a.epoch, a.sequence, limit],
    );
    return rows.map(recordOf);
  }
  async countRecords(lockId: string): Promise<number> {
    const rows = await this.db.query('SELECT COUNT(*) AS n FROM records WHERE lock_id = ?', [lockId]);
    return num(rows[0]?.n ?? 0);
  }

  async touchEpoch(lockId: string, epoch: number, at: number): Promise<boolean> {
    const changed = await this.db.run(
      `INSERT INTO outbox_progress (lock_id, epoch, acked_sequence, last_audit_hash, first_seen_at)
       VALUES (?, ?, 0, NULL, ?) ON CONFLICT DO NOTHING`,
      [lockId, epoch, at],
    );
    return changed === 1;
  }
  async getProgress(lockId: string, epoch: number): Promise<OutboxProgress | undefined> {
    const rows = await this.db.query('SELECT * FROM outbox_progress WHERE lock_id = ? AND epoch = ?', [
      lockId,
      epoch,
    ]);
    return rows[0] === undefined ? undefined : progressOf(rows[0]);
  }
  async listEpochs(lockId: string): Promise<OutboxProgress[]> {
    const rows = await this.db.query(
      'SELECT * FROM outbox_progress WHERE lock_id = ? ORDER BY first_seen_at, epoch',
      [lockId],
    );
    return rows.map(progressOf);
  }
  async advanceProgress(
    lockId: string,
    epoch: number,
    fromSequence: number,
    toSequence: number,
    lastAuditHash: Uint8Array | null,
  ): Promise<boolean> {
    const changed = await this.db.run(
      `UPDATE outbox_progress SET acked_sequence = ?, last_audit_hash = ?
       WHERE lock_id = ? AND epoch = ? AND acked_sequence = ?`,
      [toSequence, lastAuditHash, lockId, epoch, fromSequence],
    );
    return changed === 1;
  }

  async addEvent(e: Omit<CloudEvent, 'id'>): Promise<number> {
    const rows = await this.db.query(
      'INSERT INTO events (lock_id, kind, detail, at) VALUES (?, ?, ?, ?) RETURNING id',
      [e.lockId, e.kind, JSON.stringify(e.detail), e.at],
    );
    return num(rows[0]?.id);
  }
  async listEvents(options: {
    lockId?: string;
    after?: number;
    limit: number;
    newestFirst?: boolean;
  }): Promise<CloudEvent[]> {
    const after = options.after ?? 0;
    const order = options.newestFirst === true ? 'DESC' : 'ASC';
    const rows =
      options.lockId === undefined
        ? await this.db.query(`SELECT * FROM events WHERE id > ? ORDER BY id ${order} LIMIT ?`, [
            after,
            options.limit,
          ])
        : await this.db.query(
            `SELECT * FROM events WHERE lock_id = ? AND id > ? ORDER BY id ${order} LIMIT ?`,
            [options.lockId, after, options.limit],
          );
    return rows.map((r) => ({
      id: num(r.id),
      lockId: String(r.lock_id),
      kind: String(r.kind),
      detail: JSON.parse(String(r.detail)) as CloudEvent['detail'],
      at: num(r.at),
    }));
  }

  async putState(s: StoredState): Promise<void> {
    await this.db.run(
      `INSERT INTO lock_state (lock_id, bytes, state, time, received_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (lock_id) DO UPDATE SET bytes = excluded.bytes, state = excluded.state,
         time = excluded.time, received_at = excluded.received_at`,
      [s.lockId, s.bytes, s.state, s.time, s.receivedAt],
    );
  }
  async getState(lockId: string): Promise<StoredState | undefined> {
    const rows = await this.db.query('SELECT * FROM lock_state WHERE lock_id = ?', [lockId]);
    const r = rows[0];
    if (r === undefined) return undefined;
    return {
      lockId: String(r.lock_id),
      bytes: bytes(r.bytes),
      state: String(r.state),
      time: num(r.time),
      receivedAt: num(r.received_at),
    };
  }

  async getRevocation(lockId: string): Promise<StoredRevocation | undefined> {
    const rows = await this.db.query('SELECT * FROM revocations WHERE lock_id = ?', [lockId]);
    return rows[0] === undefined ? undefined : revocationOf(rows[0]);
  }
  async putRevocation(next: StoredRevocation, expectedVersion: number): Promise<boolean> {
    // Dated against the list held now; if another writer replaces it first, the version check below fails.
    const held = expectedVersion === 0 ? undefined : await this.getRevocation(next.lockId);
    const addedIn = deriveAddedIn(held?.version === expectedVersion ? held : undefined, next);
    const entries = JSON.stringify([...next.entries].map(([hex, exp]) => [hex, exp, addedIn.get(hex)]));
    const changed =
      expectedVersion === 0
        ? await this.db.run(
            'INSERT INTO revocations (lock_id, version, entries, bytes) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
            [next.lockId, next.version, entries, next.bytes],
          )
        : await this.db.run(
            'UPDATE revocations SET version = ?, entries = ?, bytes = ? WHERE lock_id = ? AND version = ?',
            [next.version, entries, next.bytes, next.lockId, expectedVersion],
          );
    return changed === 1;
  }
  async listRevocations(): Promise<StoredRevocation[]> {
    return (await this.db.query('SELECT * FROM revocations ORDER BY lock_id')).map(revocationOf);
  }
  async putRevocationAck(a: StoredRevocationAck): Promise<void> {
    await this.db.run(
      `INSERT INTO revocation_acks (lock_id, version, lock_time, received_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (lock_id) DO UPDATE SET version = excluded.version, lock_time = excluded.lock_time,
         received_at = excluded.received_at WHERE revocation_acks.version < excluded.version`,
      [a.lockId, a.version, a.lockTime, a.receivedAt],
    );
  }
  async getRevocationAck(lockId: string): Promise<StoredRevocationAck | undefined> {
    const rows = await this.db.query('SELECT * FROM revocation_acks WHERE lock_id = ?', [lockId]);
    const r = rows[0];
    if (r === undefined) return undefined;
    return {
      lockId: String(r.lock_id),
      version: num(r.version),
      lockTime: num(r.lock_time),
      receivedAt: num(r.received_at),
    };
  }

  async putAnchorAck(a: StoredAnchorAck): Promise<boolean> {
    // The highest version wins; an equal one (a re-delivery the lock acknowledged again) changes nothing.
    const changed = await this.db.run(
      `INSERT INTO anchor_acks (lock_id, version, lock_time, received_at, via) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (lock_id) DO UPDATE SET version = excluded.version, lock_time = excluded.lock_time,
         received_at = excluded.received_at, via = excluded.via WHERE anchor_acks.version < excluded.version`,
      [a.lockId, a.version, a.lockTime, a.receivedAt, a.via],
    );
    return changed === 1;
  }
  async getLockSettings(lockId: string): Promise<LockSettings> {
    const rows = await this.db.query('SELECT remote_locking FROM lock_settings WHERE lock_id = ?', [lockId]);
    return { remoteLocking: rows[0] !== undefined && num(rows[0].remote_locking) === 1 };
  }

  async setLockSettings(lockId: string, settings: LockSettings, at: number = Date.now()): Promise<void> {
    await this.db.run(
      `INSERT INTO lock_settings (lock_id, remote_locking, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (lock_id) DO UPDATE SET remote_locking = excluded.remote_locking, updated_at = excluded.updated_at`,
      [lockId, settings.remoteLocking ? 1 : 0, at],
    );
  }

  async nextRemoteCommandSequence(lockId: string, at: number = Date.now()): Promise<number> {
    // One statement: two bridges sharing a PostgreSQL store never draw the same number.
    const rows = await this.db.query(
      `INSERT INTO remote_commands (lock_id, last_sequence, issued_at) VALUES (?, 1, ?)
       ON CONFLICT (lock_id) DO UPDATE SET last_sequence = remote_commands.last_sequence + 1,
         issued_at = excluded.issued_at
       RETURNING last_sequence`,
      [lockId, at],
    );
    const n = num(rows[0]?.last_sequence);
    if (!Number.isSafeInteger(n) || n < 1 || n > 0xffff_ffff) {
      throw new Error(
        `remote command sequence of ${lockId} is out of range: ${String(rows[0]?.last_sequence)}`,
      );
    }
    return n;
  }

  async getAnchorAck(lockId: string): Promise<StoredAnchorAck | undefined> {
    const rows = await this.db.query('SELECT * FROM anchor_acks WHERE lock_id = ?', [lockId]);
    const r = rows[0];
    if (r === undefined) return undefined;
    return {
      lockId: String(r.lock_id),
      version: num(r.version),
      lockTime: num(r.lock_time),
      receivedAt: num(r.received_at),
      via: String(r.via),
    };
  }

  async lastContact(lockId: string): Promise<number | undefined> {
    const rows = await this.db.query(
      `SELECT MAX(t) AS t FROM (
         SELECT MAX(received_at) AS t FROM records WHERE lock_id = ?
         UNION ALL SELECT MAX(received_at) AS t FROM lock_state WHERE lock_id = ?
         UNION ALL SELECT MAX(received_at) AS t FROM revocation_acks WHERE lock_id = ?
         UNION ALL SELECT MAX(received_at) AS t FROM anchor_acks WHERE lock_id = ?) AS contacts`,
      [lockId, lockId, lockId, lockId],
    );
    const t = rows[0]?.t;
    return t === null || t === undefined ? undefined : num(t);
  }

  // -- accounts and phones ([TANDEM-DLG-5]) -------------------------------------------------------------

  async createAccount(account: Account): Promise<void> {
    checkAccount(account);
    const changed = await this.db.run(
      `INSERT INTO accounts (id, name, password_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      [account.id, account.name, account.passwordHash, Date.now()],
    );
    if (changed !== 1)
      throw new OidcError('ERR_OIDC_ACCOUNT_EXISTS', `account "${account.id}" already exists`);
  }
  async findAccount(id: string): Promise<Account | undefined> {
    const rows = await this.db.query('SELECT id, name, password_hash FROM accounts WHERE id = ?', [id]);
    const r = rows[0];
    return r === undefined
      ? undefined
      : { id: String(r.id), name: String(r.name), passwordHash: String(r.password_hash) };
  }
  async registerPhoneKey(
    accountId: string,
    deviceId: string,
    key: PublicKey,
    options: { readonly name?: string | null; readonly at?: number } = {},
  ): Promise<void> {
    checkDeviceId(deviceId);
    checkPhoneKey(key);
    if ((await this.findAccount(accountId)) === undefined) {
      throw new OidcError('ERR_OIDC_ACCOUNT_UNKNOWN', `no account "${accountId}"`);
    }
    await this.db.run(
      `INSERT INTO devices (account_id, device_id, alg, raw, name, thumbprint, registered_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (account_id, device_id) DO UPDATE SET alg = excluded.alg, raw = excluded.raw,
         name = excluded.name, thumbprint = excluded.thumbprint, registered_at = excluded.registered_at`,
      [
        accountId,
        deviceId,
        key.alg,
        key.raw,
        options.name ?? null,
        jwkThumbprint(key),
        options.at ?? Date.now(),
      ],
    );
  }
  async phoneKey(accountId: string, deviceId: string): Promise<PublicKey | undefined> {
    return (await this.getDevice(accountId, deviceId))?.key;
  }
  async removePhoneKey(accountId: string, deviceId: string): Promise<boolean> {
    return (
      (await this.db.run('DELETE FROM devices WHERE account_id = ? AND device_id = ?', [
        accountId,
        deviceId,
      ])) > 0
    );
  }
  async getDevice(accountId: string, deviceId: string): Promise<DeviceRecord | undefined> {
    const rows = await this.db.query('SELECT * FROM devices WHERE account_id = ? AND device_id = ?', [
      accountId,
      deviceId,
    ]);
    return rows[0] === undefined ? undefined : deviceOf(rows[0]);
  }
  async listDevices(accountId: string): Promise<DeviceRecord[]> {
    const rows = await this.db.query(
      'SELECT * FROM devices WHERE account_id = ? ORDER BY registered_at, device_id',
      [accountId],
    );
    return rows.map(deviceOf);
  }

  // -- ownership ----------------------------------------------------------------------------------------

  async claimLock(c: LockClaim): Promise<ClaimOutcome> {
    const changed = await this.db.run(
      `INSERT INTO lock_claims (lock_id, owner, owner_alg, owner_key, owner_kid, claimed_at)
       VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      [c.lockId, c.owner, c.ownerKey.alg, c.ownerKey.raw, c.ownerKid, c.claimedAt],
    );
    if (changed === 1) return 'claimed';
    const held = await this.getClaim(c.lockId);
    return held !== undefined && held.owner === c.owner && sameBytes(held.ownerKey.raw, c.ownerKey.raw)
      ? 'already'
      : 'conflict';
  }
  async getClaim(lockId: string): Promise<LockClaim | undefined> {
    const rows = await this.db.query('SELECT * FROM lock_claims WHERE lock_id = ?', [lockId]);
    return rows[0] === undefined ? undefined : claimOf(rows[0]);
  }
  async claimsOf(owner: string): Promise<LockClaim[]> {
    const rows = await this.db.query('SELECT * FROM lock_claims WHERE owner = ? ORDER BY lock_id', [owner]);
    return rows.map(claimOf);
  }

  // -- shares ([TANDEM-DLG-3]) --------------------------------------------------------------------------

  async putShare(share: Share): Promise<void> {
    checkShare(share);
    const changed = await this.db.run(
      `INSERT INTO shares (id, owner, lock_id, rider, scope, not_before, not_after, schedule, max_uses,
         uses_reported, may_reshare, min_revocation, revoked, revoked_at, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      [
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
        share.revoked === true ? (share.revokedAt ?? Math.floor(Date.now() / 1000)) : null,
        share.createdAt ?? Math.floor(Date.now() / 1000),
      ],
    );
    if (changed !== 1) throw new CloudError('ERR_CLOUD_STORE', `share "${share.id}" already exists`);
  }
  async getShare(id: string): Promise<Share | undefined> {
    const rows = await this.db.query('SELECT * FROM shares WHERE id = ?', [id]);
    return rows[0] === undefined ? undefined : shareOf(rows[0]);
  }
  async sharesFor(rider: string): Promise<readonly Share[]> {
    return (await this.db.query('SELECT * FROM shares WHERE rider = ? ORDER BY id', [rider])).map(shareOf);
  }
  async sharesOfLock(lockId: string): Promise<Share[]> {
    const rows = await this.db.query('SELECT * FROM shares WHERE lock_id = ? ORDER BY created_at, id', [
      lockId,
    ]);
    return rows.map(shareOf);
  }
  async revokeShare(id: string, at: number): Promise<boolean> {
    const changed = await this.db.run(
      'UPDATE shares SET revoked = 1, revoked_at = ? WHERE id = ? AND revoked = 0',
      [at, id],
    );
    return changed === 1;
  }
  async reportUses(id: string, uses: number): Promise<void> {
    await this.db.run('UPDATE shares SET uses_reported = uses_reported + ? WHERE id = ?', [uses, id]);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

/** Where the store lives: an SQLite file (embedded default) or a PostgreSQL URL (a fleet). */
export type StoreConfig =
  | { readonly kind: 'sqlite'; readonly path: string; readonly engine?: SqliteEngine }
  | { readonly kind: 'postgres'; readonly url: string };

/** Opens and migrates a store. Throws ERR_CLOUD_STORE naming what failed. */
export async function openSqlStore(config: StoreConfig): Promise<SqlCloudStore> {
  const { openPostgresDriver, openSqliteDriver } = await import('./sql-driver.js');
  const driver =
    config.kind === 'sqlite'
      ? openSqliteDriver(config.path, config.engine)
      : await openPostgresDriver(config.url);
  const store = new SqlCloudStore(driver);
  try {
    await store.migrate();
  } catch (e) {
    await driver.close().catch(() => undefined);
    throw new CloudError(
      'ERR_CLOUD_STORE',
      `migrating the ${config.kind} store failed: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  return store;
}
