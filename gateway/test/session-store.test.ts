/**
 * The session file: mode 0600, atomic rewrite, refusals naming the field, and the cache rules `tandem
 * unlock` relies on (delegations until their exp, beacons for a while, the newest revocation, relay queue).
 * Time is injected; nothing waits.
 */
import { chmod, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BEACON_CACHE_SECONDS,
  MAX_RELAY_RECORDS,
  SessionStore,
  defaultSessionPath,
} from '../src/session-store.js';

const T = 1_795_000_000;
let dir: string;
let now = T;
const clock = { now: () => now };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-session-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function loggedIn(name: string): Promise<SessionStore> {
  now = T;
  const s = await SessionStore.open(join(dir, name), clock);
  s.begin({
    cloud: 'http://127.0.0.1:8080',
    clientId: 'tandem-cli',
    metadata: { issuer: 'http://127.0.0.1:8080' },
    account: 'bianca',
    tokens: { accessToken: 'at', expiresAt: T + 900, refreshToken: 'rt', scope: 'openid' },
  });
  return s;
}

describe('SessionStore', () => {
  it('a missing file is no session; require() says how to log in', async () => {
    const s = await SessionStore.open(join(dir, 'none.json'));
    expect(s.data).toBeUndefined();
    expect(() => s.require()).toThrow(
      expect.objectContaining({
        code: 'ERR_GW_SESSION',
        message: `not logged in (no session at ${join(dir, 'none.json')}): run \`tandem login --cloud <URL>\``,
      }),
    );
  });

  it('writes with mode 0600 into a new 0700 directory, leaves no temporary file, and reads back', async () => {
    const path = join(dir, 'sub', 'session.json');
    const s = await SessionStore.open(path, clock);
    s.begin({
      cloud: 'http://127.0.0.1:1',
      clientId: 'tandem-cli',
      metadata: {},
      account: 'bianca',
      tokens: { accessToken: 'a', expiresAt: T, scope: 'openid' },
    });
    await s.save();
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'sub'))).mode & 0o777).toBe(0o700);
    expect(await readdir(join(dir, 'sub'))).toEqual(['session.json']);
    expect((await SessionStore.open(path)).data).toEqual(s.data);
    s.clear();
    await s.save();
    expect(await readdir(join(dir, 'sub'))).toEqual([]);
  });

  it('refuses a group-readable file with the chmod that fixes it', async () => {
    const path = join(dir, 'group.json');
    await writeFile(path, '{}', { mode: 0o600 });
    await chmod(path, 0o640);
    await expect(SessionStore.open(path)).rejects.toMatchObject({
      code: 'ERR_GW_SESSION',
      message: `${path}: holds access tokens but is readable by others (mode 0640); run \`chmod 600 ${path}\``,
    });
  });

  it('refuses malformed files naming the field', async () => {
    const s = await loggedIn('malformed-src.json');
    const good = JSON.parse(JSON.stringify(s.data)) as Record<string, unknown>;
    const cases: [string, unknown, string][] = [
      ['not-json', 'nope', 'is not a JSON session file'],
      ['version', { ...good, version: 2 }, '"version" must be 1'],
      ['cloud', { ...good, cloud: 'ftp://x' }, '"cloud" must be an http(s) URL'],
      [
        'tokens',
        { ...good, tokens: { accessToken: 'a', expiresAt: 'soon', scope: '' } },
        '"tokens.expiresAt" must be Unix seconds',
      ],
      [
        'relay',
        { ...good, locks: { 'lock-1': { relay: ['not base64!'] } } },
        '"locks.lock-1.relay" must be an array of base64url records',
      ],
      [
        'delegation',
        { ...good, delegations: { 'lock-1': { token: 'AA', expiresAt: T, owner: 'adam', share: 's' } } },
        '"delegations.lock-1.scope" must be an array',
      ],
    ];
    for (const [name, content, message] of cases) {
      const path = join(dir, `bad-${name}.json`);
      await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content), { mode: 0o600 });
      await expect(SessionStore.open(path), name).rejects.toMatchObject({
        code: 'ERR_GW_SESSION',
        message: `${path}: ${message}`,
      });
    }
  });

  it('serves a delegation until its exp, then only as stale', async () => {
    const s = await loggedIn('dlg.json');
    s.setDelegations({
      'lock-1': { owner: 'adam', share: 's1', scope: ['unlock'], token: 'AAEC', expiresAt: T + 300 },
    });
    expect(s.delegation('lock-1')?.share).toBe('s1');
    now = T + 299;
    expect(s.delegation('lock-1')).toBeDefined();
    now = T + 300;
    expect(s.delegation('lock-1')).toBeUndefined();
    expect(s.staleDelegation('lock-1')?.share).toBe('s1');
    // A fetch that no longer lists the share drops it.
    s.setDelegations({});
    expect(s.staleDelegation('lock-1')).toBeUndefined();
  });

  it('[TANDEM-REV-2] keeps the newest revocation update only', async () => {
    const s = await loggedIn('rev.json');
    s.putRevocation('lock-1', new Uint8Array([5]), 5);
    s.putRevocation('lock-1', new Uint8Array([4]), 4);
    expect(s.revocation('lock-1')).toEqual({ version: 5, bytes: new Uint8Array([5]) });
    s.putRevocation('lock-1', new Uint8Array([6]), 6);
    expect(s.revocation('lock-1')?.version).toBe(6);
  });

  it('drops a cached beacon after BEACON_CACHE_SECONDS; an ack once delivered is not delivered again', async () => {
    const s = await loggedIn('beacon.json');
    s.putBeacon('lock-1', new Uint8Array([1]));
    now = T + BEACON_CACHE_SECONDS;
    expect(s.beacon('lock-1')).toEqual(new Uint8Array([1]));
    now = T + BEACON_CACHE_SECONDS + 1;
    expect(s.beacon('lock-1')).toBeUndefined();
    s.putOutboxAck('lock-1', new Uint8Array([2]));
    expect(s.pendingOutboxAck('lock-1')).toEqual(new Uint8Array([2]));
    s.markOutboxAckDelivered('lock-1');
    s.putOutboxAck('lock-1', new Uint8Array([2]));
    expect(s.pendingOutboxAck('lock-1')).toBeUndefined();
    s.putOutboxAck('lock-1', new Uint8Array([3]));
    expect(s.pendingOutboxAck('lock-1')).toEqual(new Uint8Array([3]));
  });

  it('queues relayed records once each, oldest dropped beyond the cap', async () => {
    const s = await loggedIn('relay.json');
    expect(s.addRelay('lock-1', [new Uint8Array([1]), new Uint8Array([1]), new Uint8Array([2])])).toBe(2);
    expect(s.relay('lock-1')).toEqual([new Uint8Array([1]), new Uint8Array([2])]);
    const many = Array.from({ length: MAX_RELAY_RECORDS }, (_, i) => new Uint8Array([i >> 8, i & 255, 9]));
    s.addRelay('lock-1', many);
    const q = s.relay('lock-1');
    expect(q).toHaveLength(MAX_RELAY_RECORDS);
    expect(q[0]).toEqual(many[0]);
    s.dropRelay('lock-1', 10);
    expect(s.relay('lock-1')).toHaveLength(MAX_RELAY_RECORDS - 10);
    expect(s.lockIds()).toEqual(['lock-1']);
  });

  it('finds the default path from TANDEM_SESSION, XDG_CONFIG_HOME or HOME', () => {
    expect(defaultSessionPath({ TANDEM_SESSION: '/x/s.json' })).toBe('/x/s.json');
    expect(defaultSessionPath({ XDG_CONFIG_HOME: '/cfg', HOME: '/h' })).toBe('/cfg/tandem/session.json');
    expect(defaultSessionPath({ HOME: '/h' })).toBe('/h/.config/tandem/session.json');
  });
});
