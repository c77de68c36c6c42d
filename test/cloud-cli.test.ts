/**
 * The cloud commands of the `tandem` CLI (login, keys register, sync, share, shares, locks, revoke in both
 * forms, logout) in-process through cli/main.ts, against the real OpenID Provider and the stand-in API of
 * test/fixtures/cloud-stub.ts: what they print, their exit codes, and what they send. The whole flow with
 * the real cloud, lock and radio is test/e2e/sharing.test.ts.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../cli/main.js';
import { parseDays, parseWhen } from '../cli/share.js';
import type { CloudStub } from './fixtures/cloud-stub.js';
import { PASSWORDS, approveDevice, startCloudStub } from './fixtures/cloud-stub.js';

let w: CloudStub;
let dir: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `tandem ...args`; `onOut` sees stdout as it grows (for the login's URL). */
async function tandem(args: string[], onOut?: (text: string) => void): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => {
    out += d.toString();
    onOut?.(out);
  });
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await main(args, { stdin: new PassThrough(), stdout, stderr });
  return { code, stdout: out, stderr: err };
}

/** `tandem login` for `who`, approving the code it prints. */
async function login(session: string, who: 'adam' | 'bianca'): Promise<Run> {
  let approving: Promise<void> | undefined;
  const r = await tandem(['login', '--cloud', w.issuer, '--session', session], (out) => {
    const uri = /or open: (\S+)/.exec(out)?.[1];
    if (uri !== undefined && approving === undefined) {
      approving = approveDevice(w.issuer, uri, who, PASSWORDS[who]!);
    }
  });
  await approving;
  return r;
}

beforeAll(async () => {
  w = await startCloudStub();
  dir = await mkdtemp(join(tmpdir(), 'tandem-cloud-cli-'));
});
afterAll(async () => {
  await w.close();
  await rm(dir, { recursive: true, force: true });
});

describe('tandem login / keys register / sync / logout', () => {
  it('logs in with the device grant, registers the key, syncs, and logs out', async () => {
    const session = join(dir, 'bianca.json');
    const r = await login(session, 'bianca');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^To sign in, open http:\/\/127\.0\.0\.1:\d+\/device and enter the code \S+\n/);
    expect(r.stdout).toMatch(/waiting for the approval \(the code expires in \d+ s\)/);
    expect(r.stdout).toContain(`logged in to ${w.issuer} as bianca; session in ${session}`);
    expect((await stat(session)).mode & 0o777).toBe(0o600);

    // Before a key is registered, sync says what is missing.
    const early = await tandem(['sync', '--session', session]);
    expect(early.code).toBe(0);
    expect(early.stdout).toContain('no key registered for this login: run `tandem keys register');

    const gen = await tandem(['keys', 'generate', '--alg', 'ES256', '--out', join(dir, 'bianca')]);
    expect(gen.code).toBe(0);
    const reg = await tandem([
      'keys',
      'register',
      '--key',
      join(dir, 'bianca.jwk.json'),
      '--name',
      'laptop',
      '--session',
      session,
    ]);
    expect(reg.stderr).toBe('');
    expect(reg.code).toBe(0);
    expect(reg.stdout).toMatch(
      /^registered .*bianca\.jwk\.json as device \S+ \(laptop\), key thumbprint thumb\n/,
    );
    const jwk = JSON.parse(await readFile(join(dir, 'bianca.pub.jwk.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    const sent = w.seen.find((s) => s.path === '/devices')!.body as { key: Record<string, unknown> };
    expect(sent.key).toMatchObject({ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y });
    expect(sent.key.d).toBeUndefined();

    const now = Math.floor(Date.now() / 1000);
    w.shares.put({
      id: 'share-cli',
      owner: 'adam',
      lock: 'lock-ok',
      rider: 'bianca',
      scope: ['unlock', 'status'],
      notBefore: now - 60,
      notAfter: now + 7200,
    });
    const sync = await tandem(['sync', '--session', session]);
    expect(sync.code).toBe(0);
    // The cloud mints a 300 s token; the CLI prints what is left when it prints, so a second boundary (or a
    // slow spawn on a loaded machine) between the two reads may show 299: the count, not the clock, is checked.
    const valid = /^lock-ok: token from adam \(share share-cli, unlock,status\), valid (\d+) s\n/m.exec(
      sync.stdout,
    );
    expect(valid, sync.stdout).not.toBeNull();
    expect(Number(valid![1])).toBeLessThanOrEqual(300);
    expect(Number(valid![1])).toBeGreaterThan(240);
    expect(sync.stdout).toContain(
      'lock-ok: 0 relayed record(s) uploaded, revocation version 7 to carry, time beacon, outbox ack to carry',
    );

    const out = await tandem(['logout', '--session', session]);
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(`logged out of ${w.issuer}: tokens revoked, session removed\n`);
    await expect(stat(session)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('without a session: exit 4 and how to log in', async () => {
    const session = join(dir, 'nobody.json');
    const r = await tandem(['shares', '--session', session]);
    expect(r.code).toBe(4);
    expect(r.stderr).toBe(
      `ERR_GW_SESSION: not logged in (no session at ${session}): run \`tandem login --cloud <URL>\`\n`,
    );
  });

  it('offline: exit 3 and the cloud named', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const r = await tandem([
      'login',
      '--cloud',
      `http://127.0.0.1:${port}`,
      '--session',
      join(dir, 'off.json'),
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(
      `ERR_GW_OFFLINE: the cloud at http://127.0.0.1:${port} is unreachable; cached tokens are used until they expire\n`,
    );
  });
});

describe('the owner: share, shares, locks, revoke', () => {
  let session: string;
  beforeAll(async () => {
    session = join(dir, 'adam.json');
    expect((await login(session, 'adam')).code).toBe(0);
  });

  it('share sends the contract body: weekday window, uses, scope, times', async () => {
    const r = await tandem([
      ...['share', 'lock-ok', '--rider', 'bianca', '--from', '2026-12-07T08:00:00Z'],
      ...['--until', '2026-12-07T10:00:00+00:00', '--days', 'mon-fri', '--start', '08:00', '--end', '18:00'],
      ...['--uses', '3', '--scope', 'unlock,status', '--session', session],
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(w.seen.at(-1)).toEqual({
      method: 'POST',
      path: '/locks/lock-ok/shares',
      account: 'adam',
      body: {
        rider: 'bianca',
        scope: ['unlock', 'status'],
        notBefore: '2026-12-07T08:00:00.000Z',
        notAfter: '2026-12-07T10:00:00.000Z',
        schedule: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '08:00', end: '18:00' }],
        maxUses: 3,
      },
    });
    expect(r.stdout).toBe(
      "share share-1: adam's lock-ok for bianca, unlock,status, 2026-12-07T08:00:00.000Z to 2026-12-07T10:00:00.000Z, " +
        'mon,tue,wed,thu,fri 08:00-18:00, 0/3 uses\n',
    );
  });

  it("the cloud's refusal is exit 1 with its code and message", async () => {
    const r = await tandem([
      'share',
      'lock-7f3a',
      '--rider',
      'bianca',
      '--until',
      '+2h',
      '--session',
      session,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('ERR_GW_CLOUD: ERR_API_BODY: "notAfter" must be an ISO 8601 time\n');
  });

  it('refuses malformed options before sending anything (exit 2)', async () => {
    const before = w.seen.length;
    const cases: [string[], RegExp][] = [
      [['--until', 'tomorrow'], /--until must be an ISO 8601 time with its zone/],
      [['--until', '+2h', '--days', 'mon-fun'], /--days: "fun" is not a day/],
      [
        ['--until', '+2h', '--start', '18:00', '--end', '08:00'],
        /--end \(08:00\) must be after --start \(18:00\)/,
      ],
      [['--until', '+2h', '--uses', '0'], /--uses/],
      [
        ['--until', '+2h', '--scope', 'unlock,manage'],
        /--scope: "manage" is not one of unlock, lock, status/,
      ],
      [['--until', '2020-01-01T00:00:00Z'], /--until must be after --from \(or after now\)/],
    ];
    for (const [extra, message] of cases) {
      const r = await tandem(['share', 'lock-ok', '--rider', 'bianca', ...extra, '--session', session]);
      expect(r.code, extra.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(w.seen.length).toBe(before);
  });

  it('shares and locks print what the owner needs: uses, revocation acknowledged', async () => {
    const shares = await tandem(['shares', 'lock-ok', '--session', session]);
    expect(shares.code).toBe(0);
    expect(shares.stdout).toContain("share share-1: adam's lock-ok for bianca");
    const locks = await tandem(['locks', 'lock-ok', '--session', session]);
    expect(locks.stdout).toBe(
      'lock-ok: state locked (2026-12-07T09:00:00.000Z), last contact 2026-12-07T09:00:00.000Z, revocation version 4, ' +
        'acknowledged 4 at 2026-12-07T09:01:00.000Z (up to date)\n',
    );
    const json = await tandem(['locks', 'lock-ok', '--json', '--session', session]);
    expect(JSON.parse(json.stdout)).toMatchObject({ lock: { revocation: { acknowledgedVersion: 4 } } });
  });

  it('lock-settings shows remote locking, and --remote-locking on sends the PATCH body', async () => {
    const shown = await tandem(['lock-settings', 'lock-ok', '--session', session]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toBe('lock-ok: remote locking off\n');
    const on = await tandem(['lock-settings', 'lock-ok', '--remote-locking', 'on', '--session', session]);
    expect(on.code).toBe(0);
    expect(w.seen.at(-1)).toMatchObject({
      method: 'PATCH',
      path: '/locks/lock-ok',
      body: { remoteLocking: true },
    });
    expect(on.stdout).toBe('lock-ok: remote locking on\n');
    const before = w.seen.length;
    const bad = await tandem(['lock-settings', 'lock-ok', '--remote-locking', 'yes', '--session', session]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--remote-locking must be on or off, not "yes"');
    expect(w.seen.length).toBe(before);
  });

  it('revoke --share goes to the sharing API; the admin form still goes to the local cloud', async () => {
    const r = await tandem(['revoke', '--share', 'share-1', '--session', session]);
    expect(r.code).toBe(0);
    expect(w.seen.at(-1)).toMatchObject({ method: 'DELETE', path: '/shares/share-1' });
    expect(r.stdout).toBe(
      'revoked share share-1 (bianca on lock-ok): revocation version 4 published; ' +
        '`tandem locks lock-ok` shows when the lock acknowledges it\n',
    );
    const admin = await tandem([
      ...['revoke', '--lock', 'lock-ok', '--token', '0f1e', '--exp', '2027-01-01T00:00:00Z'],
      ...['--data-dir', join(dir, 'no-cloud-here')],
    ]);
    expect(admin.code).toBe(3);
    expect(w.seen.at(-1)).toMatchObject({ method: 'DELETE', path: '/shares/share-1' });
    const both = await tandem(['revoke', '--share', 'x', '--rider', 'bianca', '--session', session]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('give --share <id>, or --lock <lock> with --rider <account>');
  });
});

describe('option parsers', () => {
  it('days: ranges, lists, wrapping, daily', () => {
    expect(parseDays('mon-fri')).toEqual(['mon', 'tue', 'wed', 'thu', 'fri']);
    expect(parseDays('fri-mon')).toEqual(['mon', 'fri', 'sat', 'sun']);
    expect(parseDays('Sat,sunday')).toEqual(['sat', 'sun']);
    expect(parseDays('daily')).toHaveLength(7);
  });
  it('times: ISO with zone, or +duration from now', () => {
    expect(parseWhen('+2h', 'until', Date.UTC(2026, 11, 7, 8))).toBe('2026-12-07T10:00:00.000Z');
    expect(parseWhen('2026-12-07T10:00:00+01:00', 'until', 0)).toBe('2026-12-07T09:00:00.000Z');
    expect(() => parseWhen('2026-12-07T10:00:00', 'until', 0)).toThrow(/with its zone/);
  });
});
