// The SQLite store on node-sqlite3-wasm after a kill -9 (issue 8, the `tandem start` flake): its VFS locks a
// database with a `<file>.lock` directory, which a process killed in the middle of a statement leaves behind,
// and every later open then failed with "database is locked". The driver removes the directory when no
// process that has the file open is alive, and leaves it to a live one.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteDriver } from '../src/store/sql-driver.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-stale-lock-'));
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const driverUrl = pathToFileURL(join(import.meta.dirname, '..', 'src', 'store', 'sql-driver.ts')).href;
const holder = join(dir, 'holder.mjs');
// A process that opens the file through the driver, starts a write transaction (the VFS's lock directory
// exists from here to COMMIT), writes one row, says so, and then waits with the lock held until told to
// commit ("commit" on stdin) or until it is killed.
writeFileSync(
  holder,
  `import { openSqliteDriver } from ${JSON.stringify(driverUrl)};
const db = openSqliteDriver(process.argv[2], 'wasm');
await db.run('CREATE TABLE IF NOT EXISTS t (x INTEGER)');
await db.run('BEGIN IMMEDIATE');
await db.run('INSERT INTO t VALUES (1)');
process.stdout.write('held\\n');
process.stdin.once('data', async () => {
  await db.run('COMMIT');
  await db.close();
  process.stdout.write('committed\\n');
  process.exit(0);
});
`,
);

/** Starts the holder on `path` and resolves once it holds the lock. */
async function holdLock(path: string): Promise<{ child: ChildProcess; lines: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', holder, path], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('held\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`holder exited ${String(code)} before holding the lock`)));
  });
  return { child, lines: () => out };
}

describe('SQLite on node-sqlite3-wasm after a kill -9', () => {
  it('opens a file whose last opener was killed holding its lock, and rolls its transaction back', async () => {
    const path = join(dir, 'killed.db');
    const { child } = await holdLock(path);
    expect(existsSync(`${path}.lock`)).toBe(true);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // What the kill leaves: the lock directory and the journal of the open transaction.
    expect(existsSync(`${path}.lock`)).toBe(true);
    const db = openSqliteDriver(path, 'wasm');
    try {
      // The uncommitted row is gone (hot journal rolled back) and the file takes writes again.
      expect(await db.query('SELECT count(*) AS n FROM t')).toEqual([{ n: 0 }]);
      expect(await db.run('INSERT INTO t VALUES (2)')).toBe(1);
    } finally {
      await db.close();
    }
    expect(existsSync(`${path}.lock`)).toBe(false);
  });

  it('leaves the lock of a live process alone: the second open is refused, the holder commits', async () => {
    const path = join(dir, 'live.db');
    const { child, lines } = await holdLock(path);
    let refused: unknown;
    try {
      const db = openSqliteDriver(path, 'wasm');
      // Opening takes no lock; the first statement does.
      await db.query('SELECT count(*) AS n FROM t').finally(() => db.close());
    } catch (e) {
      refused = e;
    }
    expect((refused as Error).message).toMatch(/database is locked/);
    expect(existsSync(`${path}.lock`)).toBe(true);
    const done = new Promise((r) => child.once('exit', r));
    child.stdin!.write('commit\n');
    expect(await done).toBe(0);
    expect(lines()).toContain('committed\n');
    const db = openSqliteDriver(path, 'wasm');
    try {
      expect(await db.query('SELECT count(*) AS n FROM t')).toEqual([{ n: 1 }]);
    } finally {
      await db.close();
    }
  });

  it('leaves the lock of another connection of this same process alone', async () => {
    const path = join(dir, 'same-process.db');
    const first = openSqliteDriver(path, 'wasm');
    await first.run('CREATE TABLE t (x INTEGER)');
    await first.run('BEGIN IMMEDIATE');
    await first.run('INSERT INTO t VALUES (1)');
    expect(existsSync(`${path}.lock`)).toBe(true);
    // The second connection registers under the same pid as the first: it must count the first as alive.
    let refused: unknown;
    try {
      const second = openSqliteDriver(path, 'wasm');
      await second.query('SELECT count(*) AS n FROM t').finally(() => second.close());
    } catch (e) {
      refused = e;
    }
    expect((refused as Error).message).toMatch(/database is locked/);
    expect(existsSync(`${path}.lock`)).toBe(true);
    await first.run('COMMIT');
    await first.close();
    const again = openSqliteDriver(path, 'wasm');
    try {
      expect(await again.query('SELECT count(*) AS n FROM t')).toEqual([{ n: 1 }]);
    } finally {
      await again.close();
    }
  });
});
