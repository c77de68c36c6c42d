// The hardware tester's flow, every step a `tandem` process as a person would type it: keys, a token and a
// time beacon from the CLI; a simulated lock (`tandem lock --simulate --serve-radio`) provisioned over its
// console; then the rider's `tandem unlock` in another process over the virtual radio. A fresh lock knows no
// time ([TANDEM-TIME-6]): the unlock is refused until the phone brings a beacon bound to the lock's nonce,
// which `--issuer-key` signs on the spot. Then what a tester hit (issue 11 §4), each as the user did it.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'tandem-tester-'));
const CLI = ['--import', 'tsx', join(root, 'cli/main.ts')];
const LEFTOVERS = ['--import', 'tsx', join(root, 'test/e2e/fixtures/cli-leftovers.ts')];
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tandem(...args: string[]) {
  const r = spawnSync(process.execPath, [...CLI, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, out: r.stdout + r.stderr };
}

const f = (name: string) => join(dir, name);

interface LockProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly out: () => string;
  readonly err: () => string;
  readonly exited: Promise<number | null>;
  waitFor(re: RegExp, text: () => string): Promise<string>;
  say(line: string): void;
}

function startLock(socket: string): LockProcess {
  const child = spawn(
    process.execPath,
    [...CLI, 'lock', '--simulate', '--console', 'stdio', '--data-dir', f('lock'), '--serve-radio', socket],
    { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  return {
    child,
    out: () => out,
    err: () => err,
    exited,
    async waitFor(re, text) {
      for (let i = 0; i < 400 && !re.test(text()); i++) await new Promise((r) => setTimeout(r, 50));
      return text();
    },
    say: (line) => child.stdin.write(line + '\n'),
  };
}

describe('a tester drives a simulated lock from the command line', { timeout: 480_000 }, () => {
  it('provisions it, is told why a stale beacon does not help, and unlocks with --issuer-key', async () => {
    const issuerKey = tandem('keys', 'generate', '--alg', 'EdDSA', '--out', f('issuer'), '--kid', 'hex:01');
    expect(issuerKey.status).toBe(0);
    const issuerHex = /raw public key \(hex[^)]*\): ([0-9a-f]{64})/.exec(issuerKey.stdout)![1]!;
    expect(tandem('keys', 'generate', '--alg', 'ES256', '--out', f('bianca')).status).toBe(0);
    // The walkthrough's scope includes `lock`, so that `tandem relock` works with the same token.
    const token = tandem(
      ...['token', 'mint', '--issuer-key', f('issuer.jwk.json'), '--iss', 'tandem', '--sub', 'adam'],
      ...['--aud', 'lock-7f3a', '--holder-key', f('bianca.pub.jwk.json'), '--scope', 'unlock lock status'],
      ...['--rider', 'bianca'],
    );
    expect(token.status).toBe(0);
    writeFileSync(f('bianca.hex'), token.stdout.trim());
    const beacon = tandem('beacon', '--issuer-key', f('issuer.jwk.json'));
    expect(beacon.status).toBe(0);
    writeFileSync(f('beacon.hex'), beacon.stdout.trim());
    writeFileSync(f('garbage.hex'), 'deadbeef\n');

    const socket = f('radio.sock');
    let lock = startLock(socket);
    try {
      expect(await lock.waitFor(/virtual radio: listening/, lock.err)).toMatch(/virtual radio: listening/);
      lock.say('provision lock-id lock-7f3a');
      lock.say(`provision anchor add 01 EdDSA ${issuerHex} issuer tandem`);
      expect(await lock.waitFor(/anchor 01 added/, lock.out)).toMatch(
        /OK lock-id=lock-7f3a\r\nOK anchor 01 added/,
      );

      const radio = ['--radio', socket, '--device-id', '1', '--timeout', '15s'];
      const rider = ['lock-7f3a', '--key', f('bianca.jwk.json'), '--token', f('bianca.hex'), ...radio];
      // Without a beacon: refused, and told what to do.
      const refused = tandem('unlock', ...rider);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(/status TIME_UNCERTAIN \(0x16\)/);
      expect(refused.stderr).toMatch(/the lock does not know the time .*give --issuer-key <issuer jwk>/);
      // A beacon made beforehand carries no nonce: it cannot tell the lock the time, and the CLI says so.
      const stale = tandem('unlock', ...rider, '--beacon', f('beacon.hex'));
      expect(stale.status).toBe(1);
      expect(stale.stderr).toMatch(/status TIME_UNCERTAIN \(0x16\)/);
      expect(stale.stderr).toMatch(
        /beacons go stale: .*beacon\.hex is \d+ s old and bound to no nonce, so it can only raise the lock’s time floor/,
      );
      lock.say('status');
      expect(await lock.waitFor(/uncertaintyS=unknown/, lock.out)).toMatch(/state=locked/);

      // A tester holding the issuer key: a beacon bound to the current challenge is signed on the spot. The
      // process leaves no timer armed once the command has returned (noble's adapter poll is stopped).
      const opened = spawnSync(
        process.execPath,
        [...LEFTOVERS, 'unlock', ...rider, '--issuer-key', f('issuer.jwk.json')],
        { cwd: root, encoding: 'utf8', timeout: 60_000 },
      );
      expect(opened.stdout).toMatch(/status OK \(0x00\)/);
      expect(opened.status).toBe(0);
      expect(opened.stderr).toMatch(/LEFTOVER_TIMERS 0\n/);
      lock.say('status');
      expect(await lock.waitFor(/state=unlocked/, lock.out)).toMatch(/state=unlocked/);

      // relock with the shackle still open: accepted, and the message says what to do.
      const relock = tandem('relock', ...rider);
      expect(relock.status).toBe(0);
      expect(relock.stdout).toMatch(/LOCK accepted, but the lock is still unlocked/);
      expect(relock.stdout).toMatch(/push the shackle shut .*`sim latch push` at its console/);
      lock.say('sim latch push');
      lock.say('status');
      expect(await lock.waitFor(/state=locked[^\n]*lockout=false/, lock.out)).toMatch(/lockout=false/);

      // A lockout is ended by the owner's signed CLEAR_LOCKOUT (`tandem clear-lockout`); a rider may not.
      const notOwner = tandem('clear-lockout', ...rider);
      expect(notOwner.status).toBe(1);
      expect(notOwner.stderr).toMatch(/status SCOPE_DENIED \(0x1b\)/);
      expect(notOwner.stderr).toMatch(/only a chain granting scope "manage" \(the owner’s own token\)/);
      const ownerKey = tandem('keys', 'generate', '--alg', 'ES256', '--out', f('adam'), '--kid', 'hex:0a');
      const ownerHex = /raw public key \(hex[^)]*\): ([0-9a-f]+)/.exec(ownerKey.stdout)![1]!;
      lock.say(`provision claim 0a ES256 ${ownerHex} adam`);
      expect(await lock.waitFor(/claimed by adam/, lock.out)).toMatch(/provisioning closed/);
      const ownerToken = tandem(
        ...['token', 'mint', '--issuer-key', f('adam.jwk.json'), '--iss', 'adam', '--sub', 'adam'],
        ...['--aud', 'lock-7f3a', '--holder-key', f('adam.pub.jwk.json'), '--scope', 'manage'],
      );
      expect(ownerToken.status).toBe(0);
      writeFileSync(f('adam.hex'), ownerToken.stdout.trim());
      const cleared = tandem(
        'clear-lockout',
        'lock-7f3a',
        '--key',
        f('adam.jwk.json'),
        '--token',
        f('adam.hex'),
        ...radio,
      );
      expect(cleared.stdout).toMatch(/lock-7f3a: lockout cleared, state locked\nstatus OK \(0x00\)/);
      expect(cleared.status).toBe(0);

      // Files that are not what they claim are refused locally, naming the file (exit 2).
      const badToken = tandem(
        'unlock',
        'lock-7f3a',
        '--key',
        f('bianca.jwk.json'),
        '--token',
        f('garbage.hex'),
        ...radio,
      );
      expect(badToken.status).toBe(2);
      expect(badToken.stderr).toMatch(/^ERR_INPUT: .*garbage\.hex is not a Tandem token: /);
      const badBeacon = tandem('unlock', ...rider, '--beacon', f('garbage.hex'));
      expect(badBeacon.status).toBe(2);
      expect(badBeacon.stderr).toMatch(/^ERR_INPUT: .*garbage\.hex is not a time beacon: /);
      // A public key given as --key is called what it is.
      copyFileSync(f('bianca.pub.jwk.json'), f('public.json'));
      chmodSync(f('public.json'), 0o644);
      const publicKey = tandem(
        'unlock',
        'lock-7f3a',
        '--key',
        f('public.json'),
        '--token',
        f('bianca.hex'),
        ...radio,
      );
      expect(publicKey.status).toBe(4);
      expect(publicKey.stderr).toMatch(/is a public JWK \(no "d"\)/);
      expect(publicKey.stderr).not.toMatch(/readable by others/);
      // The lock's own device id: a coded error naming the fix, within --timeout, not a hang.
      const own = tandem(
        'status',
        'lock-7f3a',
        '--key',
        f('bianca.jwk.json'),
        '--token',
        f('bianca.hex'),
        '--radio',
        socket,
        '--device-id',
        '0',
        '--timeout',
        '3s',
      );
      expect(own.status).toBe(4);
      expect(own.stderr).toMatch(
        /^ERR_GW_BLE_UNAVAILABLE: device id 0 on the virtual radio .* is taken .*--device-id 1/,
      );

      // A second lock on the same socket is refused with a coded error; the running one keeps it.
      const second = tandem(
        'lock',
        '--simulate',
        '--console',
        'none',
        '--data-dir',
        f('lock2'),
        '--serve-radio',
        socket,
      );
      expect(second.status).toBe(3);
      expect(second.stderr).toMatch(/another process is serving a radio there/);

      // Killed hard, the lock leaves its socket file behind; the next start takes it over.
      lock.child.kill('SIGKILL');
      await lock.exited;
      expect(existsSync(socket)).toBe(true);
      const noLock = tandem('status', ...rider.slice(0, 5), '--radio', socket, '--device-id', '1');
      expect(noLock.status).toBe(4);
      expect(noLock.stderr).toMatch(/nothing serves the virtual radio at .* start the simulated lock again/);
      expect(noLock.stderr).not.toMatch(/serveRadio/);
      lock = startLock(socket);
      expect(await lock.waitFor(/virtual radio: listening|ERR_/, lock.err)).toMatch(
        /virtual radio: listening/,
      );
      lock.say('status');
      expect(await lock.waitFor(/state=locked/, lock.out)).toMatch(/lockId=lock-7f3a/);
    } finally {
      lock.child.kill('SIGTERM');
      expect(await lock.exited).toBe(0);
    }
    // An orderly stop removes the socket: nothing is left for the next start to clean up.
    expect(existsSync(socket)).toBe(false);
  });
});
