/**
 * The anchor update `tandem sync` hands the phone ([TANDEM-SYNC-5]): kept in the session file until a sync
 * brings none (the cloud holds the lock's ack), read back for `tandem unlock`, and a malformed one refused
 * naming the field.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionStore } from '../src/session-store.js';

const T = 1_795_000_000;
let dir: string;
const clock = { now: () => T };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-session-anchor-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function loggedIn(name: string): Promise<SessionStore> {
  const s = await SessionStore.open(join(dir, name), clock);
  s.begin({
    cloud: 'http://127.0.0.1:8080',
    clientId: 'tandem-cli',
    metadata: {},
    account: 'bianca',
    tokens: { accessToken: 'at', expiresAt: T + 900, scope: 'openid' },
  });
  return s;
}

describe('SessionStore: the anchor update to carry', () => {
  it('keeps it across a save until a sync brings none, then forgets it', async () => {
    const s = await loggedIn('a.json');
    expect(s.anchorUpdate('lock-7')).toBeUndefined();
    s.putAnchor('lock-7', Uint8Array.of(1, 2, 3));
    await s.save();
    const again = await SessionStore.open(s.path, clock);
    expect([...again.anchorUpdate('lock-7')!]).toEqual([1, 2, 3]);
    expect(again.lockIds()).toContain('lock-7');
    again.putAnchor('lock-7', null);
    expect(again.anchorUpdate('lock-7')).toBeUndefined();
    await again.save();
    expect(JSON.parse(await readFile(s.path, 'utf8')).locks['lock-7'].anchor).toBeUndefined();
    // Forgetting what was never held changes nothing.
    again.putAnchor('lock-9', null);
    expect(again.data!.locks['lock-9']).toBeUndefined();
  });

  it('a hand-edited anchor that is not base64url is refused naming the field', async () => {
    const s = await loggedIn('b.json');
    s.putAnchor('lock-7', Uint8Array.of(1));
    await s.save();
    const text = JSON.parse(await readFile(s.path, 'utf8'));
    text.locks['lock-7'].anchor.bytes = 'not base64url!';
    await writeFile(s.path, JSON.stringify(text), { mode: 0o600 });
    await expect(SessionStore.open(s.path, clock)).rejects.toMatchObject({
      code: 'ERR_GW_SESSION',
      message: expect.stringContaining('"locks.lock-7.anchor.bytes" must be base64url'),
    });
  });
});
