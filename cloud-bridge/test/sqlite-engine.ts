import { createRequire } from 'node:module';

/**
 * Why better-sqlite3 cannot be used here, or undefined when it can: its native module exists only where its
 * install script ran (package.json "allowScripts"; `npm ci` with npm 11 does not run it). Where it is missing
 * the cloud's SQLite is node-sqlite3-wasm (sql-driver.ts, engine `auto`).
 */
export function betterSqliteMissing(): string | undefined {
  try {
    // The native module loads on the first database, not at require.
    const Database = createRequire(import.meta.url)('better-sqlite3') as new (path: string) => {
      close(): void;
    };
    new Database(':memory:').close();
    return undefined;
  } catch {
    return 'better-sqlite3 native module not built (npm rebuild better-sqlite3 --ignore-scripts=false)';
  }
}
