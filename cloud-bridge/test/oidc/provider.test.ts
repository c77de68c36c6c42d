/**
 * The OpenID Provider against a certified relying party (`openid-client`), on 127.0.0.1: discovery, code +
 * PKCE, device grant, refresh, Userinfo with the delegations claim (SPEC.md §5.9), and the refusals. Time is
 * `Date` faked by vitest (oidc-provider reads Date.now()): no test depends on how long anything takes.
 */
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { TrustAnchor } from '../../../protocol/src/chain.js';
import { verifyChain } from '../../../protocol/src/chain.js';
import type { PrivateKey } from '../../../protocol/src/keys.js';
import { generateKeyPair } from '../../../protocol/src/keys.js';
import { decodeToken } from '../../../protocol/src/token.js';
import type { DelegationEntry } from '../../src/oidc/delegations.js';
import { DELEGATIONS_CLAIM, shareCti } from '../../src/oidc/delegations.js';
import type { Share } from '../../src/oidc/store.js';
import type { Fixture } from './fixture.js';
import { APP_REDIRECT, Browser, PASSWORDS, hiddenForm, startProvider } from './fixture.js';
import type { StoreKind } from './fixture.js';
import { loadBetterSqlite3 } from '../../src/oidc/sqlite-store.js';

// The whole suite runs on the in-memory stores, and on SQLite (accounts, shares and oidc-provider's own
// state through SqliteOidcStore.adapter()) when better-sqlite3's binary is built.
const KINDS: StoreKind[] = (await loadBetterSqlite3().then(
  () => true,
  () => false,
))
  ? ['memory', 'sqlite']
  : ['memory'];

const T0 = Date.UTC(2026, 11, 7, 10, 0, 0); // Monday 7 December 2026, 10:00 UTC
const T0S = T0 / 1000;
const SCOPE = 'openid profile offline_access delegations';

let f: Fixture;
let now = T0;
function setNow(ms: number): void {
  now = ms;
  vi.setSystemTime(ms);
}

function share(over: Partial<Share> = {}): Share {
  return {
    id: 'share-adam-bianca-1',
    owner: 'adam',
    lock: 'lock-7f3a',
    rider: 'bianca',
    scope: ['unlock', 'status'],
    notBefore: T0S - 60,
    notAfter: T0S + 2 * 3600,
    schedule: [{ days: 31, start: 420, end: 1200 }],
    maxUses: 3,
    ...over,
  };
}

async function configFor(clientId: string): Promise<client.Configuration> {
  return client.discovery(new URL(f.issuer), clientId, undefined, client.None(), {
    execute: [client.allowInsecureRequests],
  });
}

/** Code + PKCE up to the redirect back to the app: the callback URL and what the exchange needs. */
async function authorizeCode(login: string, clientId = 'tandem-app', scope = SCOPE) {
  const config = await configFor(clientId);
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: APP_REDIRECT,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  });
  const browser = new Browser(f.issuer);
  const end = await browser.signInAndConsent(await browser.go(url.href), login);
  expect(end.location, end.body.slice(0, 300)).toMatch(/^http:\/\/127\.0\.0\.1\/callback\?/);
  return { config, verifier, state, callback: new URL(end.location!) };
}

/** Runs code + PKCE for `login` through the HTML forms; returns the tokens. */
async function codeFlow(login: string, clientId = 'tandem-app', scope = SCOPE) {
  const { config, verifier, state, callback } = await authorizeCode(login, clientId, scope);
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
  });
  return { config, tokens, callback };
}

/** The delegations claim of a Userinfo response, or undefined. */
function claimOf(info: unknown): Record<string, DelegationEntry[]> | undefined {
  return (info as Record<string, unknown>)[DELEGATIONS_CLAIM] as
    Record<string, DelegationEntry[]> | undefined;
}

async function grantOf(accessToken: string): Promise<string> {
  const info = await f.oidc.verifyAccessToken(accessToken);
  return info!.grantId;
}

async function userinfoRaw(accessToken?: string): Promise<Response> {
  return fetch(`${f.issuer}/me`, accessToken ? { headers: { authorization: `Bearer ${accessToken}` } } : {});
}

const anchors = (): ((kid: Uint8Array) => TrustAnchor | undefined) => (kid) =>
  kid.length === 1 && kid[0] === 1
    ? { kid, key: f.issuerKey.key.publicKey, role: 'issuer', name: 'tandem' }
    : undefined;

describe.each(KINDS)('%s store', (kind) => {
  beforeAll(async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    setNow(T0);
    f = await startProvider({}, kind);
  });
  afterAll(async () => {
    await f.close();
    vi.useRealTimers();
  });

  describe('discovery (OpenID Connect Discovery 1.0, RFC 8414)', () => {
    it('publishes code + PKCE, device grant, refresh, iss in responses, and no implicit flow', async () => {
      const res = await fetch(`${f.issuer}/.well-known/openid-configuration`);
      expect(res.status).toBe(200);
      const m = (await res.json()) as Record<string, unknown>;
      expect(m.issuer).toBe(f.issuer);
      expect(m.response_types_supported).toEqual(['code']);
      expect(m.code_challenge_methods_supported).toEqual(['S256']);
      expect(m.authorization_response_iss_parameter_supported).toBe(true);
      expect(m.grant_types_supported).toEqual(
        expect.arrayContaining([
          'authorization_code',
          'refresh_token',
          'urn:ietf:params:oauth:grant-type:device_code',
        ]),
      );
      expect(m.grant_types_supported).not.toContain('implicit');
      expect(m.device_authorization_endpoint).toBe(`${f.issuer}/device/auth`);
      expect(m.revocation_endpoint).toBe(`${f.issuer}/token/revocation`);
      expect(m.userinfo_endpoint).toBe(`${f.issuer}/me`);
      expect(m.scopes_supported).toEqual(expect.arrayContaining(['openid', 'delegations', 'offline_access']));
      expect(m.claims_supported).toContain(DELEGATIONS_CLAIM);
      const config = await configFor('tandem-app');
      expect(config.serverMetadata().issuer).toBe(f.issuer);
    });
  });

  describe('authorization code with PKCE (RFC 7636) and refresh', () => {
    it('signs Bianca in; the authorization response carries iss (RFC 9207); Userinfo names her', async () => {
      const { config, tokens, callback } = await codeFlow('bianca');
      expect(callback.searchParams.get('iss')).toBe(f.issuer);
      expect(tokens.claims()!.sub).toBe('bianca');
      expect(tokens.refresh_token).toBeTruthy();
      const info = await client.fetchUserInfo(config, tokens.access_token, 'bianca');
      expect(info.name).toBe('Bianca Doe');
    });

    it('refreshes; the rotated refresh token cannot be used again', async () => {
      const { config, tokens } = await codeFlow('bianca');
      const next = await client.refreshTokenGrant(config, tokens.refresh_token!);
      expect(next.access_token).not.toBe(tokens.access_token);
      expect((await client.fetchUserInfo(config, next.access_token, 'bianca')).sub).toBe('bianca');
      await expect(client.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({
        error: 'invalid_grant',
      });
    });
  });

  describe('Userinfo delegations claim (SPEC §5.9)', () => {
    let phone: PrivateKey;
    let session: Awaited<ReturnType<typeof codeFlow>>;

    beforeAll(async () => {
      f.shares.put(share());
      session = await codeFlow('bianca');
      phone = generateKeyPair('ES256');
      await f.accounts.registerPhoneKey(
        'bianca',
        await grantOf(session.tokens.access_token),
        phone.publicKey,
      );
    });

    it('[TANDEM-DLG-2] one entry per (owner, lock): a 300 s token for the lock, bound to the phone key', async () => {
      const info = await client.fetchUserInfo(session.config, session.tokens.access_token, 'bianca');
      const claim = claimOf(info)!;
      expect(Object.keys(claim)).toEqual(['adam']);
      expect(claim.adam).toHaveLength(1);
      const e = claim.adam![0]!;
      expect(e).toMatchObject({
        expires_in: 300,
        scope: ['unlock', 'status'],
        lock: 'lock-7f3a',
        share: 'share-adam-bianca-1',
      });
      const bytes = Buffer.from(e.access_token, 'base64url');
      const t = decodeToken(bytes).claims;
      expect(t.iss).toBe('tandem');
      expect(t.sub).toBe('adam');
      expect(t.aud).toBe('lock-7f3a');
      expect(t.rider).toBe('bianca');
      expect(t.scope).toEqual(['unlock', 'status']);
      expect(t.iat).toBe(T0S);
      expect(t.exp).toBe(T0S + 300);
      expect(t.nbf).toBe(T0S - 60);
      expect(t.maxUses).toBe(3);
      expect(t.schedule).toEqual([{ days: 31, start: 420, end: 1200 }]);
      expect(Buffer.from(t.cnf.raw).equals(Buffer.from(phone.publicKey.raw))).toBe(true);
      expect(Buffer.from(t.cti).equals(Buffer.from(shareCti('share-adam-bianca-1')))).toBe(true);
      // The lock's own verification accepts it: issuer signature under kid 01, audience.
      const grant = verifyChain([bytes], anchors(), 'lock-7f3a');
      expect(grant.leaf.sub).toBe('adam');
    });

    it("[TANDEM-DLG-4] each call mints a fresh token; the cti stays the share's", async () => {
      const first = await client.fetchUserInfo(session.config, session.tokens.access_token, 'bianca');
      setNow(now + 30_000);
      const second = await client.fetchUserInfo(session.config, session.tokens.access_token, 'bianca');
      const a = claimOf(first)!.adam![0]!;
      const b = claimOf(second)!.adam![0]!;
      expect(b.access_token).not.toBe(a.access_token);
      const ta = decodeToken(Buffer.from(a.access_token, 'base64url')).claims;
      const tb = decodeToken(Buffer.from(b.access_token, 'base64url')).claims;
      expect(tb.iat - ta.iat).toBe(30);
      expect(Buffer.from(tb.cti).equals(Buffer.from(ta.cti))).toBe(true);
    });
  });

  describe('Userinfo delegations: who sees what', () => {
    it("[TANDEM-DLG-5] the access token's device decides the key: app and command line get their own", async () => {
      f.shares.put(share({ id: 'share-dlg5', lock: 'lock-dlg5' }));
      const app = await codeFlow('bianca');
      const cli = await deviceFlow('bianca');
      const appKey = generateKeyPair('ES256');
      const cliKey = generateKeyPair('ES256');
      await f.accounts.registerPhoneKey('bianca', await grantOf(app.tokens.access_token), appKey.publicKey);
      await f.accounts.registerPhoneKey('bianca', await grantOf(cli.tokens.access_token), cliKey.publicKey);
      const appInfo = await f.oidc.verifyAccessToken(app.tokens.access_token);
      const cliInfo = await f.oidc.verifyAccessToken(cli.tokens.access_token);
      expect(appInfo).toMatchObject({ accountId: 'bianca', clientId: 'tandem-app' });
      expect(cliInfo).toMatchObject({ accountId: 'bianca', clientId: 'tandem-cli' });
      expect([...appInfo!.scopes]).toEqual(expect.arrayContaining(['openid', 'delegations']));
      expect(appInfo!.grantId).not.toBe(cliInfo!.grantId);
      const viaApp = claimOf(await client.fetchUserInfo(app.config, app.tokens.access_token, 'bianca'))!;
      const viaCli = claimOf(await client.fetchUserInfo(cli.config, cli.tokens.access_token, 'bianca'))!;
      const holder = (c: Record<string, DelegationEntry[]>) =>
        Buffer.from(
          decodeToken(Buffer.from(c.adam!.find((e) => e.lock === 'lock-dlg5')!.access_token, 'base64url'))
            .claims.cnf.raw,
        );
      expect(holder(viaApp).equals(Buffer.from(appKey.publicKey.raw))).toBe(true);
      expect(holder(viaCli).equals(Buffer.from(cliKey.publicKey.raw))).toBe(true);
    });

    it('[TANDEM-DLG-5] no phone key registered for this device: the claim is absent', async () => {
      const { config, tokens } = await codeFlow('bianca');
      const info = await client.fetchUserInfo(config, tokens.access_token, 'bianca');
      expect(info.sub).toBe('bianca');
      expect(claimOf(info)).toBeUndefined();
    });

    it("the wrong user sees nothing of other riders' delegations", async () => {
      f.shares.put(share({ id: 'share-for-bianca-only', lock: 'lock-private' }));
      const { config, tokens } = await codeFlow('carol');
      await f.accounts.registerPhoneKey(
        'carol',
        await grantOf(tokens.access_token),
        generateKeyPair('ES256').publicKey,
      );
      const info = await client.fetchUserInfo(config, tokens.access_token, 'carol');
      expect(info.sub).toBe('carol');
      expect(claimOf(info)).toEqual({});
      expect(JSON.stringify(info)).not.toContain('lock-');
    });

    it('a client not allowed the delegations scope is refused it (invalid_scope)', async () => {
      const config = await configFor('other-app');
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: APP_REDIRECT,
        scope: SCOPE,
        code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
      });
      const page = await new Browser(f.issuer).go(url.href);
      const callback = new URL(page.location!);
      expect(callback.origin + callback.pathname).toBe(APP_REDIRECT);
      expect(callback.searchParams.get('error')).toBe('invalid_scope');
      expect(callback.searchParams.get('iss')).toBe(f.issuer);
    });

    it('a token for another client carries no delegations, even with a phone key on its grant', async () => {
      f.shares.put(share());
      const { config, tokens } = await codeFlow('bianca', 'other-app', 'openid profile');
      await f.accounts.registerPhoneKey(
        'bianca',
        await grantOf(tokens.access_token),
        generateKeyPair('ES256').publicKey,
      );
      const info = await client.fetchUserInfo(config, tokens.access_token, 'bianca');
      expect(info.name).toBe('Bianca Doe');
      expect(claimOf(info)).toBeUndefined();
    });

    it('[TANDEM-DLG-3] revoked, expired, not yet started and used-up shares yield nothing', async () => {
      f.shares.put(share({ id: 's-revoked', lock: 'lock-revoked' }));
      f.shares.revoke('s-revoked');
      f.shares.put(share({ id: 's-over', lock: 'lock-over', notBefore: T0S - 7200, notAfter: T0S - 1 }));
      f.shares.put(share({ id: 's-later', lock: 'lock-later', notBefore: now / 1000 + 3600 }));
      f.shares.put(share({ id: 's-used', lock: 'lock-used', maxUses: 2, usesReported: 2 }));
      const { config, tokens } = await codeFlow('bianca');
      await f.accounts.registerPhoneKey(
        'bianca',
        await grantOf(tokens.access_token),
        generateKeyPair('ES256').publicKey,
      );
      const locks = claimOf(await client.fetchUserInfo(config, tokens.access_token, 'bianca'))!.adam!.map(
        (e) => e.lock,
      );
      expect(locks).toContain('lock-7f3a');
      for (const gone of ['lock-revoked', 'lock-over', 'lock-later', 'lock-used'])
        expect(locks).not.toContain(gone);
    });
  });

  /** Device grant for `login` with the browser approving; returns openid-client's tokens. */
  async function deviceFlow(login: string) {
    const config = await configFor('tandem-cli');
    const da = await client.initiateDeviceAuthorization(config, { scope: SCOPE });
    await approveDevice(da.verification_uri_complete!, login);
    setNow(now + 60_000); // past any slow_down interval
    const tokens = await client.pollDeviceAuthorizationGrant(config, da);
    return { config, tokens, da };
  }

  /** The user types the code in a browser, signs in and allows. */
  async function approveDevice(verificationUriComplete: string, login: string): Promise<void> {
    const browser = new Browser(f.issuer);
    const confirm = await openVerification(browser, verificationUriComplete);
    const { action, fields } = hiddenForm(confirm.body, 'op.deviceConfirmForm');
    const start = await browser.go(action, { form: { ...fields, confirm: 'yes' } });
    const done = await browser.signInAndConsent(start, login);
    expect(done.body).toContain('Device connected');
  }

  /** Opens verification_uri_complete: oidc-provider answers with a self-submitting form carrying its CSRF token. */
  async function openVerification(browser: Browser, uri: string) {
    const first = await browser.go(uri);
    const { action, fields } = hiddenForm(first.body);
    return browser.go(action, { form: fields });
  }

  async function poll(deviceCode: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${f.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
        device_code: deviceCode,
        client_id: 'tandem-cli',
      }).toString(),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  describe('device authorization grant (RFC 8628)', () => {
    it('answers authorization_pending, then slow_down to a client polling too fast, then the tokens', async () => {
      const config = await configFor('tandem-cli');
      const da = await client.initiateDeviceAuthorization(config, { scope: SCOPE });
      expect(da.interval).toBe(1);
      expect(da.verification_uri).toBe(`${f.issuer}/device`);
      expect(await poll(da.device_code)).toEqual({
        status: 400,
        body: expect.objectContaining({ error: 'authorization_pending' }),
      });
      // Same instant: sooner than the interval (§3.5).
      expect(await poll(da.device_code)).toEqual({
        status: 400,
        body: expect.objectContaining({ error: 'slow_down' }),
      });
      // After slow_down the interval grew by 5 s: 3 s later is still too soon, 7 s later is not.
      setNow(now + 3_000);
      expect((await poll(da.device_code)).body.error).toBe('slow_down');
      setNow(now + 11_000);
      expect((await poll(da.device_code)).body.error).toBe('authorization_pending');
      await approveDevice(da.verification_uri_complete!, 'bianca');
      setNow(now + 60_000);
      const tokens = await client.pollDeviceAuthorizationGrant(config, da);
      expect(tokens.refresh_token).toBeTruthy();
      expect((await client.fetchUserInfo(config, tokens.access_token, 'bianca')).name).toBe('Bianca Doe');
      // A device code is used once.
      expect((await poll(da.device_code)).body.error).toBe('invalid_grant');
    });

    it('a user who aborts gets the command line access_denied', async () => {
      const config = await configFor('tandem-cli');
      const da = await client.initiateDeviceAuthorization(config, { scope: SCOPE });
      const browser = new Browser(f.issuer);
      const confirm = await openVerification(browser, da.verification_uri_complete!);
      const { action, fields } = hiddenForm(confirm.body, 'op.deviceConfirmForm');
      await browser.go(action, { form: { ...fields, abort: 'yes' } });
      setNow(now + 60_000);
      expect((await poll(da.device_code)).body.error).toBe('access_denied');
    });
  });

  describe('refusals at Userinfo (RFC 6750 §3.1)', () => {
    it('no token: 401', async () => {
      const res = await userinfoRaw();
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
    });

    it('a tampered token: 401 invalid_token', async () => {
      const { tokens } = await codeFlow('bianca');
      const t = tokens.access_token;
      const flipped = t.slice(0, -1) + (t.endsWith('A') ? 'B' : 'A');
      const res = await userinfoRaw(flipped);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('invalid_token');
    });

    it('an expired token: 401 invalid_token', async () => {
      const { tokens } = await codeFlow('bianca');
      expect(tokens.expires_in).toBe(900);
      expect((await userinfoRaw(tokens.access_token)).status).toBe(200);
      // Past exp and oidc-provider's 15 s clock tolerance.
      setNow(now + 15 * 60_000 + 16_000);
      const res = await userinfoRaw(tokens.access_token);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('invalid_token');
    });

    it('a revoked access token (RFC 7009): 401', async () => {
      const { config, tokens } = await codeFlow('bianca');
      await client.tokenRevocation(config, tokens.access_token);
      expect((await userinfoRaw(tokens.access_token)).status).toBe(401);
    });

    it('a revoked refresh token revokes the grant: its access tokens die too', async () => {
      const { config, tokens } = await codeFlow('bianca');
      await client.tokenRevocation(config, tokens.refresh_token!);
      expect((await userinfoRaw(tokens.access_token)).status).toBe(401);
      expect(await f.oidc.verifyAccessToken(tokens.access_token)).toBeUndefined();
      await expect(client.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({
        error: 'invalid_grant',
      });
    });

    it("another client cannot revoke Bianca's token", async () => {
      const { tokens } = await codeFlow('bianca');
      const other = await configFor('other-app');
      await client.tokenRevocation(other, tokens.access_token).catch(() => undefined);
      expect((await userinfoRaw(tokens.access_token)).status).toBe(200);
    });
  });

  describe('token endpoint refusals (RFC 7636 §4.6, RFC 6749 §4.1.2)', () => {
    it('a code exchanged with the wrong code_verifier: invalid_grant', async () => {
      const { config, state, callback } = await authorizeCode('bianca');
      await expect(
        client.authorizationCodeGrant(config, callback, {
          pkceCodeVerifier: client.randomPKCECodeVerifier(),
          expectedState: state,
        }),
      ).rejects.toMatchObject({ error: 'invalid_grant' });
    });

    it('a code used twice: invalid_grant, and the tokens of the first use are revoked', async () => {
      const { config, verifier, state, callback } = await authorizeCode('bianca');
      const tokens = await client.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: verifier,
        expectedState: state,
      });
      expect((await userinfoRaw(tokens.access_token)).status).toBe(200);
      await expect(
        client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state }),
      ).rejects.toMatchObject({ error: 'invalid_grant' });
      expect((await userinfoRaw(tokens.access_token)).status).toBe(401);
    });
  });

  describe('authorization request refusals', () => {
    async function authorize(params: Record<string, string>): Promise<URL | string> {
      const browser = new Browser(f.issuer);
      const page = await browser.request(
        `/auth?${new URLSearchParams({ client_id: 'tandem-app', redirect_uri: APP_REDIRECT, scope: 'openid', ...params })}`,
      );
      return page.location ? new URL(page.location) : `${page.status}: ${page.body}`;
    }

    it('PKCE missing for a public client: invalid_request, with iss', async () => {
      const r = await authorize({ response_type: 'code' });
      expect(r).toBeInstanceOf(URL);
      const u = r as URL;
      expect(u.origin + u.pathname).toBe(APP_REDIRECT);
      expect(u.searchParams.get('error')).toBe('invalid_request');
      expect(u.searchParams.get('error_description')).toMatch(/PKCE/);
      expect(u.searchParams.get('iss')).toBe(f.issuer);
    });

    it('PKCE with the plain method: refused', async () => {
      const r = (await authorize({
        response_type: 'code',
        code_challenge: 'a'.repeat(43),
        code_challenge_method: 'plain',
      })) as URL;
      expect(r.searchParams.get('error')).toBe('invalid_request');
    });

    it.each(['token', 'id_token', 'id_token token', 'code id_token'])(
      'implicit/hybrid response_type=%s: refused',
      async (rt) => {
        const r = await authorize({
          response_type: rt,
          nonce: 'n-0S6_WzA2Mj',
          code_challenge: 'a'.repeat(43),
          code_challenge_method: 'S256',
        });
        const error =
          r instanceof URL
            ? (r.searchParams.get('error') ?? new URLSearchParams(r.hash.slice(1)).get('error'))
            : r;
        expect(error).toMatch(/unsupported_response_type|unauthorized_client/);
        if (r instanceof URL) expect(r.hash).not.toMatch(/access_token|id_token=/);
      },
    );
  });

  describe('login interaction', () => {
    async function loginPage(browser: Browser): Promise<string> {
      const config = await configFor('tandem-app');
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: APP_REDIRECT,
        scope: 'openid',
        code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
      });
      const page = await browser.go(url.href);
      return /action="(\/interaction\/[A-Za-z0-9_-]+\/login)"/.exec(page.body)![1]!;
    }

    it('a wrong password: 401 and the form again, with no external asset', async () => {
      const browser = new Browser(f.issuer);
      const action = await loginPage(browser);
      const page = await browser.request(action, { form: { login: 'adam', password: 'wrong-password' } });
      expect(page.status).toBe(401);
      expect(page.body).toContain('Wrong account or password.');
      expect(page.body).not.toMatch(/https?:\/\//);
    });

    it('[TANDEM-DLG-8] five failures lock the account out, even for the right password, until the window passes', async () => {
      const browser = new Browser(f.issuer);
      const action = await loginPage(browser);
      for (let i = 0; i < 5; i++) {
        expect(
          (await browser.request(action, { form: { login: 'carol', password: `guess-${i}-guess` } })).status,
        ).toBe(401);
      }
      const locked = await browser.request(action, { form: { login: 'carol', password: PASSWORDS.carol! } });
      expect(locked.status).toBe(429);
      setNow(now + 15 * 60_000 + 1_000);
      const again = await browser.request(action, { form: { login: 'carol', password: PASSWORDS.carol! } });
      expect(again.status).toBe(303);
    });

    it('a login form posted from another origin: 403', async () => {
      const browser = new Browser(f.issuer);
      const action = await loginPage(browser);
      const page = await browser.request(action, {
        form: { login: 'adam', password: PASSWORDS.adam! },
        headers: { origin: 'http://evil.example' },
      });
      expect(page.status).toBe(403);
    });

    it('a login form posted without the interaction cookie: 400', async () => {
      const action = await loginPage(new Browser(f.issuer));
      const stranger = new Browser(f.issuer);
      const page = await stranger.request(action, { form: { login: 'adam', password: PASSWORDS.adam! } });
      expect(page.status).toBe(400);
    });
  });
});
