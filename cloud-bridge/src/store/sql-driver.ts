/**
 * The two SQL engines behind {@link SqlCloudStore}: SQLite through `better-sqlite3` 12 (embedded default) and
 * PostgreSQL through `pg`. Both are loaded lazily, inside their adapter (STYLE.md, "Ports and adapters"):
 * `better-sqlite3` is a native module, and a process that uses PostgreSQL never loads it.
 *
 * Statements are written once with `?` placeholders; the PostgreSQL adapter numbers them (`$1`, `$2`, ...).
 */
import { existsSync, mkdirSync, readdirSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { CloudError } from '../errors.js';

/** A row as the engine returns it. */
export type Row = Record<string, unknown>;

/** What the store needs of an SQL engine. */
export interface SqlDriver {
  readonly dialect: 'sqlite' | 'postgres';
  /** Runs a statement that returns rows (SELECT, or INSERT ... RETURNING). */
  query(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Runs a statement; resolves to the number of rows it changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
  /** Runs `fn` holding the migration lock (PostgreSQL: an advisory lock; SQLite: one process owns the file). */
  withMigrationLock<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Runs `fn` inside one transaction on one connection (`tx`), committed when `fn` resolves and rolled back
   * when it throws; resolves only once the commit is durable (`synchronous=FULL` / PostgreSQL's default
   * `synchronous_commit`). SQLite has a single connection: the caller must keep other statements out while
   * it runs (SqlCloudStore.batch does).
   */
  transaction<T>(fn: (tx: SqlDriver) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** BEGIN / COMMIT on SQLite's one connection; ROLLBACK when `fn` throws. */
async function sqliteTransaction<T>(self: SqlDriver, fn: (tx: SqlDriver) => Promise<T>): Promise<T> {
  // IMMEDIATE: take the write lock at once, so a second process on the file waits here (busy_timeout), not
  // at the first write after reads that another writer may have made stale.
  await self.run('BEGIN IMMEDIATE');
  let value: T;
  try {
    value = await fn(self);
  } catch (e) {
    await self.run('ROLLBACK').catch(() => undefined);
    throw e;
  }
  await self.run('COMMIT');
  return value;
}

function bindable(params: readonly unknown[]): unknown[] {
  return params.map((p) =>
    p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p.buffer, p.byteOffset, p.byteLength) : p,
  );
}

interface BetterSqliteStatement {
  readonly reader: boolean;
  all(...params: unknown[]): Row[];
  run(...params: unknown[]): { changes: number };
}
interface BetterSqliteDatabase {
  prepare(sql: string): BetterSqliteStatement;
  pragma(s: string): unknown;
  close(): void;
}
type BetterSqliteCtor = new (path: string) => BetterSqliteDatabase;

/** Which SQLite engine: the native `better-sqlite3`, the WebAssembly `node-sqlite3-wasm`, or the first that loads. */
export type SqliteEngine = 'better-sqlite3' | 'wasm' | 'auto';

/**
 * Opens an SQLite database file. `better-sqlite3` 12 is the embedded default; it is an optional dependency
 * because its native module is built by its install script, which npm 11 runs only when package.json
 * `allowScripts` lists it (and which needs a compiler). Where it did not build, `auto` falls back to
 * `node-sqlite3-wasm` (the same SQLite compiled to WebAssembly, no native build): same SQL, same file format.
 */
export function openSqliteDriver(path: string, engine: SqliteEngine = 'auto'): SqlDriver {
  if (engine === 'wasm') return openWasmDriver(path);
  try {
    return openBetterSqliteDriver(path);
  } catch (e) {
    if (engine === 'auto' && (e as { notInstalled?: boolean }).notInstalled === true)
      return openWasmDriver(path);
    throw e;
  }
}

interface WasmDatabase {
  all(sql: string, values?: unknown[]): Row[];
  run(sql: string, values?: unknown[]): { changes: number };
  exec(sql: string): void;
  close(): void;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: unknown }).code === 'EPERM';
  }
}

/**
 * node-sqlite3-wasm's file system VFS locks a database by creating the directory `<file>.lock` and unlocks it
 * by removing it, for every lock level (readers too). A process killed while it holds the lock (kill -9 in the
 * middle of a statement, the OOM killer, a power cut) leaves the directory behind, and every later open of the
 * file fails with "database is locked", for good: `tandem start` or `tandem cloud` after a kill -9 did not
 * start (issue 8, the start flake). The directory says nothing of its owner, so the processes that open the
 * file with this driver say who they are: each makes `<file>.openers/<pid>` before it opens, and removes it
 * when it closes. A lock directory found while no other registered opener is alive was left by a dead
 * process: it is removed, and SQLite then rolls back the transaction the dead process left in its journal
 * (a hot journal; https://www.sqlite.org/atomiccommit.html §4, "Rollback"). Registering before looking means
 * two processes that open at once both see the other and leave the directory alone: they fail with the
 * message below instead of taking a lock that may be held. Returns the registration's release.
 */
/** Connections this process has open per database file (see {@link claimWasmFile}). */
const openHere = new Map<string, number>();

function claimWasmFile(path: string): () => void {
  // In-memory and temporary databases (SQLite's special names) have no file to lock.
  if (path === '' || path === ':memory:' || path.startsWith('file:')) return () => undefined;
  const openers = `${path}.openers`;
  const mine = join(openers, String(process.pid));
  // One registration per process, whatever number of connections it opens: a second connection of this
  // process must count the first as alive (it may hold the lock), and closing one must not unregister the other.
  const here = openHere.get(path) ?? 0;
  openHere.set(path, here + 1);
  mkdirSync(openers, { recursive: true, mode: 0o700 });
  writeFileSync(mine, '');
  let othersAlive = here > 0;
  for (const name of readdirSync(openers)) {
    const pid = Number(name);
    if (pid === process.pid) continue;
    if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) othersAlive = true;
    else unlinkSync(join(openers, name));
  }
  if (!othersAlive && existsSync(`${path}.lock`)) rmdirSync(`${path}.lock`);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const left = (openHere.get(path) ?? 1) - 1;
    if (left > 0) {
      openHere.set(path, left);
      return;
    }
    openHere.delete(path);
    try {
      unlinkSync(mine);
    } catch {
      // Already gone: nothing to release.
    }
  };
}

function openWasmDriver(path: string): SqlDriver {
  let db: WasmDatabase;
  let release = (): void => undefined;
  try {
    release = claimWasmFile(path);
    const { Database } = createRequire(import.meta.url)('node-sqlite3-wasm') as {
      Database: new (path: string) => WasmDatabase;
    };
    db = new Database(path);
    db.exec('PRAGMA synchronous = FULL');
  } catch (e) {
    release();
    const held = /database is locked/.test(String((e as Error).message))
      ? ` (${path}.lock is held by another process that has the file open: ${path}.openers names them; stop it, or remove the directory if none runs)`
      : '';
    throw new CloudError(
      'ERR_CLOUD_STORE',
      `cannot open SQLite database ${path} (node-sqlite3-wasm): ${(e as Error).message}${held}`,
      {
        cause: e,
      },
    );
  }
  const driver: SqlDriver = {
    dialect: 'sqlite',
    query: (sql, params = []) => Promise.resolve(db.all(sql, bindable(params))),
    run: (sql, params = []) => Promise.resolve(db.run(sql, bindable(params)).changes),
    withMigrationLock: (fn) => fn(),
    transaction: (fn) => sqliteTransaction(driver, fn),
    close: () => {
      try {
        db.close();
      } finally {
        release();
      }
      return Promise.resolve();
    },
  };
  return driver;
}

/** Opens an SQLite file with the native `better-sqlite3` 12 (WAL journal, `synchronous=FULL`). */
export function openBetterSqliteDriver(path: string): SqlDriver {
  const notInstalled = (e: unknown): never => {
    const err = new CloudError(
      'ERR_CLOUD_STORE',
      'better-sqlite3 is not installed or its native module is missing: build it with `npm rebuild ' +
        'better-sqlite3 --ignore-scripts=false` (needs g++, make and python3), or use PostgreSQL',
      { cause: e },
    ) as CloudError & { notInstalled?: boolean };
    err.notInstalled = true;
    throw err;
  };
  let Database: BetterSqliteCtor;
  try {
    Database = createRequire(import.meta.url)('better-sqlite3') as BetterSqliteCtor;
  } catch (e) {
    notInstalled(e);
  }
  let db: BetterSqliteDatabase;
  try {
    // better-sqlite3 loads its native module on the first `new Database`, not at require: an unbuilt module
    // (npm ran no install script, .npmrc) shows here as the `bindings` package's "Could not locate".
    db = new Database!(path);
  } catch (e) {
    if (/Could not locate the bindings file|NODE_MODULE_VERSION|invalid ELF header/.test(String(e)))
      notInstalled(e);
    throw new CloudError('ERR_CLOUD_STORE', `cannot open SQLite database ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
  } catch (e) {
    throw new CloudError('ERR_CLOUD_STORE', `cannot open SQLite database ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const cache = new Map<string, BetterSqliteStatement>();
  const prepared = (sql: string): BetterSqliteStatement => {
    let s = cache.get(sql);
    if (s === undefined) {
      s = db.prepare(sql);
      cache.set(sql, s);
    }
    return s;
  };
  const driver: SqlDriver = {
    dialect: 'sqlite',
    query: (sql, params = []) => Promise.resolve(prepared(sql).all(...bindable(params))),
    run: (sql, params = []) => {
      const s = prepared(sql);
      // DDL and statements without rows go through run(); better-sqlite3 refuses all() on them.
      return Promise.resolve(
        s.reader ? s.all(...bindable(params)).length : s.run(...bindable(params)).changes,
      );
    },
    withMigrationLock: (fn) => fn(),
    transaction: (fn) => sqliteTransaction(driver, fn),
    close: () => {
      db.close();
      return Promise.resolve();
    },
  };
  return driver;
}

interface PgPool {
  query(sql: string, params?: unknown[]): Promise<{ rows: Row[]; rowCount: number | null }>;
  connect(): Promise<{ query: PgPool['query']; release(destroy?: boolean): void }>;
  end(): Promise<void>;
  on(event: 'error', listener: (e: Error) => void): void;
}

function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** Opens a PostgreSQL connection pool (`pg`) on `connectionString`. */
export async function openPostgresDriver(connectionString: string): Promise<SqlDriver> {
  const pg = (await import('pg')).default as unknown as { Pool: new (o: object) => PgPool };
  const pool = new pg.Pool({ connectionString, max: 4 });
  // An idle client's error (server restart) must not crash the cloud process; the next query reconnects.
  pool.on('error', () => undefined);
  try {
    await pool.query('SELECT 1');
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw new CloudError('ERR_CLOUD_STORE', `cannot reach PostgreSQL: ${(e as Error).message}`, {
      cause: e,
      temporary: true,
    });
  }
  return {
    dialect: 'postgres',
    query: async (sql, params = []) => (await pool.query(numbered(sql), bindable(params))).rows,
    run: async (sql, params = []) => (await pool.query(numbered(sql), bindable(params))).rowCount ?? 0,
    transaction: async (fn) => {
      // One pooled connection for the whole transaction: BEGIN ... COMMIT must share it.
      const client = await pool.connect();
      const tx: SqlDriver = {
        dialect: 'postgres',
        query: async (sql, params = []) => (await client.query(numbered(sql), bindable(params))).rows,
        run: async (sql, params = []) => (await client.query(numbered(sql), bindable(params))).rowCount ?? 0,
        withMigrationLock: () =>
          Promise.reject(new CloudError('ERR_CLOUD_STORE', 'no migration inside a transaction')),
        transaction: () => Promise.reject(new CloudError('ERR_CLOUD_STORE', 'transactions do not nest')),
        close: () => Promise.resolve(),
      };
      let broken = false;
      try {
        await client.query('BEGIN');
        const value = await fn(tx);
        await client.query('COMMIT');
        return value;
      } catch (e) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw e;
      } finally {
        // A connection whose ROLLBACK failed is in an unknown state: the pool drops it instead of reusing it.
        client.release(broken);
      }
    },
    withMigrationLock: async (fn) => {
      const client = await pool.connect();
      try {
        // Several bridge instances may start together; one migrates, the others wait and find it done.
        await client.query('SELECT pg_advisory_lock(7106001)');
        return await fn();
      } finally {
        await client.query('SELECT pg_advisory_unlock(7106001)').catch(() => undefined);
        client.release();
      }
    },
    close: () => pool.end(),
  };
}
