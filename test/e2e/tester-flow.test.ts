// The hardware tester's flow, every step a `tandem` process as a person would type it: keys, a token and a
// time beacon from the CLI; a simulated lock (`tandem lock --simulate --serve-radio`) provisioned over its
// console; then the rider's `tandem unlock` in another process over the virtual radio. A fresh lock knows no
// time: the unlock is refused until the phone carries a beacon.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'tandem-tester-'));
const CLI = ['--import', 'tsx', join(root, 'cli/main.ts')];
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tandem(...args: string[]) {
  const r = spawnSync(process.execPath, [...CLI, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('a tester drives a simulated lock from the command line', () => {
  it('provisions it, is refused without a time beacon, and unlocks with one', async () => {
    const f = (name: string) => join(dir, name);
    const issuerKey = tandem('keys', 'generate', '--alg', 'EdDSA', '--out', f('issuer'), '--kid', 'hex:01');
    expect(issuerKey.status).toBe(0);
    const issuerHex = /raw public key \(hex[^)]*\): ([0-9a-f]{64})/.exec(issuerKey.stdout)![1]!;
    expect(tandem('keys', 'generate', '--alg', 'ES256', '--out', f('bianca')).status).toBe(0);
    const token = tandem(
      'token',
      'mint',
      '--issuer-key',
      f('issuer.jwk.json'),
      '--iss',
      'tandem',
      '--sub',
      'adam',
      '--aud',
      'lock-7f3a',
      '--holder-key',
      f('bianca.pub.jwk.json'),
      '--scope',
      'unlock status',
      '--rider',
      'bianca',
    );
    expect(token.status).toBe(0);
    writeFileSync(f('bianca.hex'), token.stdout.trim());
    const beacon = tandem('beacon', '--issuer-key', f('issuer.jwk.json'));
    expect(beacon.status).toBe(0);
    writeFileSync(f('beacon.hex'), beacon.stdout.trim());

    const socket = f('radio.sock');
    const lock = spawn(
      process.execPath,
      [...CLI, 'lock', '--simulate', '--console', 'stdio', '--data-dir', f('lock'), '--serve-radio', socket],
      { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    lock.stdout.on('data', (d: Buffer) => (out += d.toString()));
    lock.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => lock.on('exit', resolve));
    const waitFor = async (re: RegExp, text: () => string) => {
      for (let i = 0; i < 400 && !re.test(text()); i++) await new Promise((r) => setTimeout(r, 50));
      return text();
    };
    try {
      expect(await waitFor(/virtual radio: listening/, () => err)).toMatch(/virtual radio: listening/);
      lock.stdin.write('provision lock-id lock-7f3a\n');
      lock.stdin.write(`provision anchor add 01 EdDSA ${issuerHex} issuer tandem\n`);
      expect(await waitFor(/anchor 01 added/, () => out)).toMatch(
        /OK lock-id=lock-7f3a\r\nOK anchor 01 added/,
      );

      const radio = ['--radio', socket, '--device-id', '1', '--timeout', '15s'];
      const refused = tandem(
        'unlock',
        'lock-7f3a',
        '--key',
        f('bianca.jwk.json'),
        '--token',
        f('bianca.hex'),
        ...radio,
      );
      expect(refused.status).toBe(1);
      expect(refused.stdout + refused.stderr).toMatch(/NOT_YET_VALID/);

      const opened = tandem(
        'unlock',
        'lock-7f3a',
        '--key',
        f('bianca.jwk.json'),
        '--token',
        f('bianca.hex'),
        '--beacon',
        f('beacon.hex'),
        ...radio,
      );
      expect(opened.stdout + opened.stderr).toMatch(/status OK \(0x00\)/);
      expect(opened.status).toBe(0);
      lock.stdin.write('status\n');
      expect(await waitFor(/state=unlocked/, () => out)).toMatch(/state=unlocked/);
    } finally {
      lock.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });
});
