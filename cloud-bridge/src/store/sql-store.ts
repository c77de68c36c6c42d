/**
 * {@link CloudStore} over SQL, one implementation for SQLite and PostgreSQL ({@link SqlDriver}). Migrations
 * are numbered and recorded in `schema_migrations`; a store opens by applying the missing ones in order.
 */
import { deriveAddedIn } from '../revocation-history.js';
import { CloudError } from '../errors.js';
import type { Row, SqlDriver, SqliteEngine } from './sql-driver.js';
import type {
  CloudEvent,
  CloudStore,
  InsertOutcome,
  LockRecord,
  OutboxProgress,
  StoredRecord,
  StoredRevocation,
  StoredRevocationAck,
  StoredState,
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
];

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
  constructor(private readonly db: SqlDriver) {}

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
  async listEvents(options: { lockId?: string; after?: number; limit: number }): Promise<CloudEvent[]> {
    const after = options.after ?? 0;
    const rows =
      options.lockId === undefined
        ? await this.db.query('SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?', [after, options.limit])
        : await this.db.query('SELECT * FROM events WHERE lock_id = ? AND id > ? ORDER BY id LIMIT ?', [
            options.lockId,
            after,
            options.limit,
          ]);
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
