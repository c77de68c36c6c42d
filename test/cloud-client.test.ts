/**
 * gateway's CloudClient against the real OpenID Provider (createOidcProvider on the memory stores, as
 * cloud-bridge/test/oidc/provider.test.ts drives it) with a small stand-in for `/api/v1` that checks bearer
 * tokens the way the contract says (verifyAccessToken; 401 with WWW-Authenticate). The device grant is
 * approved through the provider's own pages (test/fixtures/cloud-stub.ts). Lives in test/ because gateway/
 * may not import cloud-bridge/.
 */
import { mkdtemp, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudClient, syncAll } from '../gateway/src/cloud-client.js';
import { GatewayError } from '../gateway/src/errors.js';
import { SessionStore } from '../gateway/src/session-store.js';
import { decodeToken } from '../protocol/src/token.js';
import { decodeRevocationUpdate } from '../protocol/src/revocation.js';
import { generateKeyPair } from '../protocol/src/keys.js';
import type { CloudStub } from './fixtures/cloud-stub.js';
import { PASSWORDS, approveDevice, startCloudStub } from './fixtures/cloud-stub.js';

const NOW_S = () => Math.floor(Date.now() / 1000);

let w: CloudStub;
let dir: string;

async function approve(uriComplete: string, login: 'bianca', abort = false): Promise<void> {
  await approveDevice(w.issuer, uriComplete, login, PASSWORDS[login]!, abort);
}

async function login(path: string): Promise<CloudClient> {
  const session = await SessionStore.open(path);
  const client = new CloudClient({ session, timeoutSeconds: 5 });
  const pending = await client.startLogin(w.issuer);
  await approve(pending.verificationUriComplete!, 'bianca');
  await pending.complete(AbortSignal.timeout(30_000));
  await session.save();
  return client;
}

beforeAll(async () => {
  w = await startCloudStub();
  dir = await mkdtemp(join(tmpdir(), 'tandem-cloud-client-'));
});
afterAll(async () => {
  await w.close();
  await rm(dir, { recursive: true, force: true });
});

describe('CloudClient: device grant, Userinfo, refresh (openid-client against the real provider)', () => {
  it('logs in with the device grant; the session file is 0600 and reads back', async () => {
    const path = join(dir, 'login', 'session.json');
    const client = await login(path);
    expect(client.session.data!.account).toBe('bianca');
    expect(client.session.data!.cloud).toBe(w.issuer);
    expect(client.session.data!.tokens.refreshToken).toBeTruthy();
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const again = await SessionStore.open(path);
    expect(again.data!.tokens.accessToken).toBe(client.session.data!.tokens.accessToken);
    expect(await w.oidc.verifyAccessToken(again.data!.tokens.accessToken)).toMatchObject({
      accountId: 'bianca',
      clientId: 'tandem-cli',
    });
  });

  it('a login the user aborts ends with ERR_GW_LOGIN', async () => {
    const client = new CloudClient({ session: await SessionStore.open(join(dir, 'aborted.json')) });
    const pending = await client.startLogin(w.issuer);
    await approve(pending.verificationUriComplete!, 'bianca', true);
    await expect(pending.complete(AbortSignal.timeout(30_000))).rejects.toMatchObject({
      code: 'ERR_GW_LOGIN',
      message: 'the login was denied in the browser',
    });
    expect(client.session.data).toBeUndefined();
  });

  it('[TANDEM-DLG-5] registers the key, then Userinfo yields a token bound to it, cached until its exp', async () => {
    const client = await login(join(dir, 'dlg.json'));
    w.shares.put({
      id: 'share-1',
      owner: 'adam',
      lock: 'lock-7f3a',
      rider: 'bianca',
      scope: ['unlock', 'status'],
      notBefore: NOW_S() - 60,
      notAfter: NOW_S() + 7200,
    });
    // Before a key is registered for this login the claim is absent.
    expect(await client.fetchDelegations()).toEqual({ delegations: {}, keyRegistered: false });
    const key = generateKeyPair('ES256');
    const device = await client.registerDevice(key.publicKey, 'laptop');
    expect(device.id).toBe(
      (await w.oidc.verifyAccessToken(client.session.data!.tokens.accessToken))!.grantId,
    );
    const { delegations, keyRegistered } = await client.fetchDelegations();
    expect(keyRegistered).toBe(true);
    const d = delegations['lock-7f3a']!;
    expect(d).toMatchObject({ owner: 'adam', share: 'share-1', scope: ['unlock', 'status'] });
    const claims = decodeToken(Buffer.from(d.token, 'base64url')).claims;
    expect(Buffer.from(claims.cnf.raw).equals(Buffer.from(key.publicKey.raw))).toBe(true);
    expect(d.expiresAt).toBe(claims.exp);
    expect(client.session.delegation('lock-7f3a')).toEqual(d);
  });

  it('refreshes an expired access token and keeps the rotated refresh token', async () => {
    const client = await login(join(dir, 'refresh.json'));
    const before = client.session.data!.tokens;
    client.session.setTokens({ ...before, expiresAt: NOW_S() - 1 });
    const token = await client.accessToken();
    expect(token).not.toBe(before.accessToken);
    expect(client.session.data!.tokens.refreshToken).not.toBe(before.refreshToken);
    expect((await client.userinfo()).sub).toBe('bianca');
  });

  it('a refused refresh says to log in again (ERR_GW_UNAUTHORIZED)', async () => {
    const client = await login(join(dir, 'refused.json'));
    const t = client.session.data!.tokens;
    client.session.setTokens({ ...t, expiresAt: NOW_S() - 1, refreshToken: 'not-a-refresh-token' });
    const e = await client.accessToken().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(GatewayError);
    expect(e).toMatchObject({ code: 'ERR_GW_UNAUTHORIZED', httpStatus: 401 });
    expect((e as Error).message).toBe(
      `the cloud refused the session (invalid_grant): log in again with \`tandem login --cloud ${w.issuer}\``,
    );
  });

  it('an API call with a revoked access token refreshes once, then succeeds', async () => {
    const client = await login(join(dir, 'revoked.json'));
    const t = client.session.data!.tokens;
    client.session.setTokens({ ...t, accessToken: 'tampered' + t.accessToken.slice(8) });
    const device = await client.registerDevice(generateKeyPair('ES256').publicKey);
    expect(device.id).toBeTruthy();
    expect(client.session.data!.tokens.accessToken).not.toContain('tampered');
  });

  it("a 4xx carries the cloud's code and message naming the field (ERR_GW_CLOUD)", async () => {
    const client = await login(join(dir, 'fourxx.json'));
    const e = await client
      .share('lock-7f3a', { rider: 'bianca', scope: ['unlock'], notAfter: 'soon' })
      .catch((x: unknown) => x);
    expect(e).toMatchObject({
      code: 'ERR_GW_CLOUD',
      httpStatus: 400,
      cloudCode: 'ERR_API_BODY',
      message: 'ERR_API_BODY: "notAfter" must be an ISO 8601 time',
      temporary: false,
    });
  });

  it('offline: ERR_GW_OFFLINE names the cloud and says cached tokens still serve', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const client = new CloudClient({ session: await SessionStore.open(join(dir, 'offline.json')) });
    const e = await client.startLogin(`http://127.0.0.1:${port}`).catch((x: unknown) => x);
    expect(e).toMatchObject({
      code: 'ERR_GW_OFFLINE',
      temporary: true,
      message: `the cloud at http://127.0.0.1:${port} is unreachable; cached tokens are used until they expire`,
    });
    // The same for an API call of a stored session whose cloud went away.
    const online = await login(join(dir, 'went-away.json'));
    online.session.setTokens({ ...online.session.data!.tokens, expiresAt: NOW_S() + 3600 });
    (online.session.data as { cloud: string }).cloud = `http://127.0.0.1:${port}`;
    await expect(online.devices()).rejects.toMatchObject({ code: 'ERR_GW_OFFLINE' });
  });

  it('refuses a cloud URL that is plain http off the loopback', async () => {
    const client = new CloudClient({ session: await SessionStore.open(join(dir, 'http.json')) });
    await expect(client.startLogin('http://cloud.example')).rejects.toMatchObject({
      code: 'ERR_GW_CLOUD',
      message: 'the cloud URL must be https (http only on 127.0.0.1), not http://cloud.example/',
    });
  });

  it('syncAll uploads the relay cache, keeps what to carry, and a refused lock does not stop the others', async () => {
    const client = await login(join(dir, 'sync.json'));
    await client.registerDevice(generateKeyPair('ES256').publicKey);
    client.session.addRelay('lock-7f3a', [new Uint8Array([1, 2]), new Uint8Array([3])]);
    client.session.addRelay('lock-gone', [new Uint8Array([9])]);
    const out = await syncAll(client, (bytes) => decodeRevocationUpdate(bytes).update.version);
    const mine = out.locks.find((l) => l.lock === 'lock-7f3a')!;
    expect(mine).toMatchObject({
      uploaded: 2,
      refused: [],
      revocationVersion: 7,
      beacon: true,
      outboxAck: true,
    });
    expect(client.session.relay('lock-7f3a')).toEqual([]);
    expect(client.session.revocation('lock-7f3a')?.version).toBe(7);
    // A revocation update that does not decode is that lock's failure, not the whole sync's.
    const bad = await syncAll(client, () => {
      throw new Error('not a revocation update');
    });
    expect(bad.locks.find((l) => l.lock === 'lock-7f3a')!.error).toMatchObject({
      code: 'ERR_GW_CLOUD',
      message: "the cloud's revocation update for lock-7f3a does not decode: not a revocation update",
    });
    expect(Buffer.from(client.session.pendingOutboxAck('lock-7f3a')!).toString()).toBe('ack');
    const gone = out.locks.find((l) => l.lock === 'lock-gone')!;
    expect(gone.error).toMatchObject({ code: 'ERR_GW_CLOUD', httpStatus: 404 });
    // Its records wait for a later sync: the lock keeps them until acknowledged anyway.
    expect(client.session.relay('lock-gone')).toHaveLength(1);
  });
});

describe('SessionStore file rules', () => {
  it('refuses a session file others may read, with the chmod that fixes it', async () => {
    const path = join(dir, 'wide.json');
    await writeFile(path, '{}');
    await chmod(path, 0o644);
    await expect(SessionStore.open(path)).rejects.toMatchObject({
      code: 'ERR_GW_SESSION',
      message: `${path}: holds access tokens but is readable by others (mode 0644); run \`chmod 600 ${path}\``,
    });
  });
});
