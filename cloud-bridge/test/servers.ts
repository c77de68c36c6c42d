/**
 * Real servers for tests, started by the test itself on 127.0.0.1 in a temporary directory: PostgreSQL
 * (initdb + pg_ctl), Redis and Mosquitto from Debian's packages. Without the binaries a test reports itself
 * skipped and names what is missing (.ci/run installs them).
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on `port`; bounded by `tries`. */
export async function waitForPort(port: number, tries = 100): Promise<void> {
  for (let i = 0; i < tries; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

function which(cmd: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

function pgBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) if (existsSync(join(root, v, 'bin', 'initdb'))) return join(root, v, 'bin');
  return undefined;
}

/** Why PostgreSQL cannot be started here, or undefined when it can. */
export function postgresMissing(): string | undefined {
  return pgBin() === undefined
    ? 'PostgreSQL server binaries (Debian package postgresql) not installed'
    : undefined;
}

/** A running test server. */
export interface TestServer {
  readonly port: number;
  readonly dir: string;
  /** The server's process id, when the test spawned it (the bench reads its memory from /proc). */
  readonly pid?: number;
  stop(): Promise<void>;
}

/** Starts a throw-away PostgreSQL on 127.0.0.1 (trust auth, user postgres); `url` connects to it. */
export async function startPostgres(): Promise<TestServer & { url: string }> {
  const bin = pgBin();
  if (bin === undefined) throw new Error(postgresMissing());
  const dir = mkdtempSync(join(tmpdir(), 'tandem-pg-'));
  const data = join(dir, 'data');
  const port = await freePort();
  // initdb refuses to run as root; CI runs as root, so the server runs as Debian's postgres user.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    chmodSync(dir, 0o755);
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
    chownSync(dir, uid, gid);
  }
  const run = (args: string[]): void => {
    const cmd = asRoot ? 'runuser' : args[0]!;
    const argv = asRoot ? ['-u', 'postgres', '--', ...args] : args.slice(1);
    execFileSync(cmd, argv, { stdio: 'pipe', timeout: 60_000 });
  };
  run([join(bin, 'initdb'), '-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  run([
    join(bin, 'pg_ctl'),
    '-D',
    data,
    '-w',
    '-l',
    join(dir, 'log'),
    '-o',
    `-h 127.0.0.1 -p ${port} -k ${dir} -c fsync=off`,
    'start',
  ]);
  return {
    port,
    dir,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: () => {
      try {
        run([join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      return Promise.resolve();
    },
  };
}

function spawned(child: ChildProcess, port: number, dir: string): TestServer {
  return {
    port,
    dir,
    ...(child.pid === undefined ? {} : { pid: child.pid }),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) {
          rmSync(dir, { recursive: true, force: true });
          return resolve();
        }
        child.once('exit', () => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
        child.kill('SIGKILL');
      }),
  };
}

/** Why Redis cannot be started here, or undefined. */
export function redisMissing(): string | undefined {
  return which('redis-server') === undefined
    ? 'redis-server (Debian package redis-server) not installed'
    : undefined;
}

/** Starts a throw-away Redis on 127.0.0.1, no persistence. */
export async function startRedis(): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-redis-'));
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  await waitForPort(port);
  return spawned(child, port, dir);
}

/** Why Mosquitto cannot be started here, or undefined. */
export function mosquittoMissing(): string | undefined {
  return which('mosquitto') === undefined && !existsSync('/usr/sbin/mosquitto')
    ? 'mosquitto (Debian package mosquitto) not installed'
    : undefined;
}

/**
 * Starts Mosquitto on 127.0.0.1 with `config` (the repository's cloud-bridge/mosquitto/mosquitto.conf,
 * with `{{port}}`, `{{dir}}` filled in) and the given password and ACL files written into its directory.
 */
export async function startMosquitto(config: string, files: Record<string, string>): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-mosquitto-'));
  const port = await freePort();
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text, { mode: 0o600 });
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, config.replaceAll('{{port}}', String(port)).replaceAll('{{dir}}', dir));
  if (process.getuid?.() === 0) {
    // Mosquitto drops root privileges to the mosquitto user, which must read its files.
    try {
      const uid = Number(execFileSync('id', ['-u', 'mosquitto'], { encoding: 'utf8' }));
      chownSync(dir, uid, uid);
      for (const name of [...Object.keys(files), 'mosquitto.conf']) chownSync(join(dir, name), uid, uid);
    } catch {
      // No mosquitto user: it keeps running as root.
    }
  }
  const bin = which('mosquitto') ?? '/usr/sbin/mosquitto';
  const child = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    await waitForPort(port, 50);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`mosquitto did not start: ${stderr}`, { cause: e });
  }
  return spawned(child, port, dir);
}
