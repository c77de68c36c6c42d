// `tandem lock` as a hardware tester runs it: simulated hardware, the console on stdin/stdout, provisioning
// by typed commands, a clean stop on SIGTERM that leaves the lock locked, and a restart that keeps the
// identity. Bad configuration is refused before anything starts.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../protocol/src/keys.js';

const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'tandem-lock-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function startLock(dataDir: string) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'cli/main.ts', 'lock', '--simulate', '--console', 'stdio', '--data-dir', dataDir],
    {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const waitFor = async (re: RegExp, what: () => string) => {
    for (let i = 0; i < 300 && !re.test(what()); i++) await new Promise((r) => setTimeout(r, 50));
    return what();
  };
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    exited,
    say: async (line: string, expect: RegExp) => {
      child.stdin.write(line + '\n');
      return waitFor(expect, () => out);
    },
    stderr: (re: RegExp) => waitFor(re, () => err),
  };
}

describe('tandem lock --simulate', () => {
  it('provisions over the console, stops locked on SIGTERM, and restarts with its identity', async () => {
    const dataDir = join(dir, 'lock1');
    const issuer = Buffer.from(generateKeyPair('EdDSA').publicKey.raw).toString('hex');
    const lock = startLock(dataDir);
    expect(await lock.stderr(/not provisioned/)).toMatch(
      /tandem lock \(unprovisioned\): locked; simulated hardware/,
    );
    expect(await lock.say('provision lock-id lock-cli', /OK lock-id=lock-cli/)).toMatch(
      /OK lock-id=lock-cli/,
    );
    expect(
      await lock.say(`provision anchor add 01 EdDSA ${issuer} issuer tandem`, /anchor 01 added/),
    ).toMatch(/OK anchor 01 added/);
    expect(await lock.say('status', /serving=true/)).toMatch(/lockId=lock-cli state=locked .*serving=true/);
    expect(await lock.say('provision lock-id Bad_Id', /ERR ERR_CONSOLE_USAGE/)).toMatch(
      /<lock-id> must be a lock id/,
    );
    lock.child.kill('SIGTERM');
    expect(await lock.exited).toBe(0);
    expect(await lock.stderr(/stays locked/)).toMatch(/SIGTERM: stopping; the lock stays locked/);

    const again = startLock(dataDir);
    expect(await again.stderr(/tandem lock lock-cli/)).toMatch(/tandem lock lock-cli: locked/);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
  });

  it('refuses a malformed configuration file with its code and field, exit 1, before starting', () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ hardware: { solenoidLine: 'seventeen' } }));
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'cli/main.ts', 'lock', '--config', file, '--simulate', '--console', 'none'],
      {
        cwd: root,
        encoding: 'utf8',
        timeout: 20_000,
      },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /ERR_CONFIG_INVALID: .*bad\.json: config "hardware.solenoidLine" must be an integer/,
    );
  });

  it('a lock that cannot open its stores says why with the store error code, exits 3, and does not hang', () => {
    const file = join(dir, 'not-a-dir');
    writeFileSync(file, 'x');
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'cli/main.ts',
        'lock',
        '--simulate',
        '--console',
        'none',
        '--data-dir',
        join(file, 'lock'),
      ],
      { cwd: root, encoding: 'utf8', timeout: 20_000 },
    );
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/^ERR_IO: the lock could not start: ERR_STORE_IO: mkdir .* failed \(ENOTDIR\)/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('refuses --console uart with --simulate (usage error, exit 2)', () => {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'cli/main.ts', 'lock', '--simulate', '--console', 'uart'],
      {
        cwd: root,
        encoding: 'utf8',
        timeout: 20_000,
      },
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--console uart needs the real hardware/);
  });
});
