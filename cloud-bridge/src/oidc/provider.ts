/**
 * Tandem's OpenID Provider: `oidc-provider` (a certified implementation, built on `jose`) configured for
 * Tandem (SPEC.md §5.9): authorization code with PKCE for apps, the device authorization grant (RFC 8628) for
 * the command line, refresh tokens, no implicit flow, `iss` in authorization responses (RFC 9207), and the
 * delegations claim on Userinfo computed at request time. Accounts, phone keys and shares come through the
 * storage seam (`store.ts`); the issuer key is passed in. Nothing of ours is shared between two providers
 * (but a memo of share ids to cti, which is a pure function); without an
 * `adapter`, oidc-provider's development adapter keeps sessions, grants and tokens in one process-wide LRU of
 * 1000 entries, which is for tests and development only.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type {
  Account as OidcAccount,
  ClientMetadata,
  Configuration,
  JWK,
  KoaContextWithOIDC,
} from 'oidc-provider';
import type { DelegationsClaim, IssuerKey } from './delegations.js';
import { DELEGATIONS_CLAIM, DELEGATIONS_SCOPE, mintDelegations } from './delegations.js';
import { OidcError } from './errors.js';
import { handleInteraction } from './interactions.js';
import type { PasswordHasher } from './passwords.js';
import { Argon2idHasher } from './passwords.js';
import { LoginRateLimiter } from './rate-limit.js';
import type { AccountStore, DelegationSource } from './store.js';
import { esc, page, userCodeConfirmPage, userCodePage } from './views.js';

/** Lifetimes in seconds. */
export interface OidcTtl {
  accessToken: number;
  refreshToken: number;
  deviceCode: number;
  interaction: number;
  session: number;
  grant: number;
  idToken: number;
}

export const DEFAULT_TTL: OidcTtl = {
  accessToken: 15 * 60,
  refreshToken: 30 * 24 * 3600,
  deviceCode: 10 * 60,
  interaction: 30 * 60,
  session: 14 * 24 * 3600,
  grant: 30 * 24 * 3600,
  idToken: 15 * 60,
};

/** Options of {@link createOidcProvider}. */
export interface OidcProviderOptions {
  /** The issuer identifier (RFC 8414 §2): https, or http on a loopback address for tests and development. */
  issuer: string;
  accounts: AccountStore;
  delegations: DelegationSource;
  /** The Ed25519 key that signs delegated tokens, and the issuer id locks know it by. */
  issuerKey: IssuerKey;
  /** Registered clients (OpenID Connect Dynamic Client Registration metadata); see {@link tandemClients}. */
  clients: ClientMetadata[];
  /** Private JWKs signing ID tokens (ES256 recommended); one is generated when absent (tests, development). */
  jwks?: { keys: JWK[] };
  /** Keys signing the provider's cookies (newest first); random when absent, which logs everyone out on restart. */
  cookieKeys?: string[];
  passwords?: PasswordHasher;
  rateLimiter?: LoginRateLimiter;
  ttl?: Partial<OidcTtl>;
  /** Seconds a device client waits between polls (RFC 8628 §3.2 `interval`; default 5). */
  deviceInterval?: number;
  /** Unix milliseconds; oidc-provider itself reads `Date.now()`, so keep the default outside tests. */
  now?: () => number;
  /** Trust X-Forwarded-* headers (behind a TLS-terminating proxy). */
  proxy?: boolean;
  /**
   * oidc-provider's storage adapter for sessions, grants and tokens (its `Adapter` interface). Absent: its
   * in-memory adapter, which loses every login on restart and cannot be shared between processes.
   */
  adapter?: Configuration['adapter'];
}

/** A running provider's parts. */
export interface TandemOidc {
  readonly provider: Provider;
  /** The Node request handler: interactions, then everything oidc-provider serves. */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** Resolves a bearer access token to who holds it, or undefined (unknown, expired, revoked). */
  verifyAccessToken(token: string): Promise<AccessTokenInfo | undefined>;
}

/** What an access token stands for. */
export interface AccessTokenInfo {
  readonly accountId: string;
  readonly clientId: string;
  /** The grant: the device this login belongs to ([TANDEM-DLG-5]). */
  readonly grantId: string;
  readonly scopes: ReadonlySet<string>;
}

/**
 * The first-party clients: the phone app (authorization code + PKCE, public, native), the command line
 * (device grant, public) and, when its redirect URIs are given, the tester dashboard (authorization code +
 * PKCE, public, a web page served by the cloud at `/dashboard`; `dashboardRedirectUri` of
 * cloud-bridge/src/dashboard/handler.ts gives its URI). None may use the implicit flow.
 */
export function tandemClients(
  appRedirectUris: string[],
  dashboardRedirectUris: string[] = [],
): ClientMetadata[] {
  const dashboard: ClientMetadata[] =
    dashboardRedirectUris.length === 0
      ? []
      : [
          {
            client_id: 'tandem-dashboard',
            client_name: 'Tandem dashboard',
            application_type: 'web',
            token_endpoint_auth_method: 'none',
            // A page in a browser tab: no refresh token, it logs in again when the access token expires.
            grant_types: ['authorization_code'],
            response_types: ['code'],
            redirect_uris: dashboardRedirectUris,
            // `delegations` is the sharing API's scope (cloud-bridge/src/api/server.ts API_SCOPE); the page never
            // registers a phone key, so its Userinfo never carries delegated tokens ([TANDEM-DLG-5]).
            scope: `openid profile ${DELEGATIONS_SCOPE}`,
          },
        ];
  return [
    {
      client_id: 'tandem-app',
      client_name: 'Tandem app',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: appRedirectUris,
      scope: `openid profile offline_access ${DELEGATIONS_SCOPE}`,
    },
    {
      client_id: 'tandem-cli',
      client_name: 'Tandem command line',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      scope: `openid profile offline_access ${DELEGATIONS_SCOPE}`,
    },
    ...dashboard,
  ];
}

function checkIssuer(issuer: string): void {
  let u: URL;
  try {
    u = new URL(issuer);
  } catch {
    throw new OidcError('ERR_OIDC_CONFIG', `issuer ${JSON.stringify(issuer)} is not a URL`);
  }
  const loopback = u.hostname === '127.0.0.1' || u.hostname === '[::1]' || u.hostname === 'localhost';
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) {
    throw new OidcError('ERR_OIDC_CONFIG', 'issuer must be https (http only on a loopback address)');
  }
  if (u.search || u.hash) {
    throw new OidcError('ERR_OIDC_CONFIG', 'issuer must have no query or fragment (RFC 8414 §2)');
  }
}

async function generatedJwks(): Promise<{ keys: JWK[] }> {
  const { exportJWK, generateKeyPair } = await import('jose');
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { keys: [{ ...jwk, alg: 'ES256', use: 'sig', kid: randomBytes(8).toString('hex') } as JWK] };
}

/** RFC 8628 §3.5 slow_down, which oidc-provider leaves out: per device code, the last poll and the interval. */
class PollTracker {
  private readonly polls = new Map<string, { last: number; interval: number }>();
  constructor(
    private readonly interval: number,
    private readonly maxEntries = 10_000,
  ) {}

  /** Records a pending poll at `now` (ms); true when it came sooner than the code's interval. */
  tooSoon(deviceCode: string, now: number): boolean {
    const key = createHash('sha256').update(deviceCode).digest('base64url');
    const prev = this.polls.get(key);
    const interval = prev?.interval ?? this.interval;
    const soon = prev !== undefined && now - prev.last < interval * 1000;
    this.polls.delete(key);
    this.polls.set(key, { last: now, interval: soon ? interval + 5 : interval });
    while (this.polls.size > this.maxEntries) this.polls.delete(this.polls.keys().next().value as string);
    return soon;
  }
}

/** Builds the provider. */
export async function createOidcProvider(o: OidcProviderOptions): Promise<TandemOidc> {
  checkIssuer(o.issuer);
  if (o.clients.length === 0)
    throw new OidcError('ERR_OIDC_CONFIG', 'at least one client must be registered');
  const ttl = { ...DEFAULT_TTL, ...o.ttl };
  const now = o.now ?? (() => Date.now());
  const passwords = o.passwords ?? new Argon2idHasher();
  const limiter = o.rateLimiter ?? new LoginRateLimiter({ now });
  const interval = o.deviceInterval ?? 5;
  const polls = new PollTracker(interval);
  let dummy: Promise<string> | undefined;
  const dummyHash = (): Promise<string> => (dummy ??= passwords.hash(randomBytes(24).toString('base64url')));

  async function delegationsFor(
    accountId: string,
    grantId: string | undefined,
  ): Promise<DelegationsClaim | undefined> {
    if (grantId === undefined) return undefined;
    const holder = await o.accounts.phoneKey(accountId, grantId);
    // No key registered for this device: the claim is left out, so the app knows to register one ([TANDEM-DLG-5]).
    if (!holder) return undefined;
    const shares = await o.delegations.sharesFor(accountId);
    return mintDelegations({
      rider: accountId,
      shares,
      holder,
      issuer: o.issuerKey,
      now: Math.floor(now() / 1000),
    });
  }

  const configuration: Configuration = {
    ...(o.adapter !== undefined ? { adapter: o.adapter } : {}),
    clients: o.clients,
    jwks: o.jwks ?? (await generatedJwks()),
    cookies: {
      keys: o.cookieKeys ?? [randomBytes(32).toString('base64url')],
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    clientDefaults: {
      grant_types: ['authorization_code'],
      id_token_signed_response_alg: 'ES256',
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    },
    // Code flow only: no implicit or hybrid response types ([TANDEM-DLG-7], OAuth 2.0 Security BCP RFC 9700 §2.1.2).
    responseTypes: ['code'],
    // PKCE for every client, S256 only (RFC 9700 §2.1.1); public clients could not be served safely without it.
    pkce: { required: () => true },
    scopes: ['openid', 'profile', 'offline_access', DELEGATIONS_SCOPE],
    claims: {
      openid: ['sub'],
      profile: ['name'],
      [DELEGATIONS_SCOPE]: [DELEGATIONS_CLAIM],
    },
    features: {
      devInteractions: { enabled: false },
      deviceFlow: {
        enabled: true,
        userCodeInputSource: async (ctx: KoaContextWithOIDC, form: string, _out: unknown, err: unknown) => {
          const e = err as { userCode?: unknown; name?: string } | undefined;
          ctx.type = 'html';
          ctx.body = userCodePage(
            form,
            e === undefined
              ? undefined
              : e.userCode || e.name === 'NoCodeError'
                ? 'That code is not right. Try again.'
                : 'The sign-in could not go on. Start again on your device.',
          );
        },
        userCodeConfirmSource: async (
          ctx: KoaContextWithOIDC,
          form: string,
          client: { clientName?: string; clientId: string },
          _info: unknown,
          userCode: string,
        ) => {
          ctx.type = 'html';
          ctx.body = userCodeConfirmPage(form, client.clientName ?? client.clientId, userCode);
        },
        successSource: async (ctx: KoaContextWithOIDC) => {
          ctx.type = 'html';
          ctx.body = page('Device connected', '<p>You can close this page and go back to your device.</p>');
        },
      },
      revocation: { enabled: true },
      resourceIndicators: { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx: KoaContextWithOIDC, form: string) => {
          ctx.type = 'html';
          ctx.body = page(
            'Sign out?',
            `${form}<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>` +
              `<button type="submit" form="op.logoutForm">Stay signed in</button>`,
          );
        },
        postLogoutSuccessSource: async (ctx: KoaContextWithOIDC) => {
          ctx.type = 'html';
          ctx.body = page('Signed out', '<p>You are signed out.</p>');
        },
      },
    },
    renderError: async (ctx: KoaContextWithOIDC, out: object) => {
      ctx.type = 'html';
      ctx.body = page(
        'Sign-in error',
        Object.entries(out)
          .map(([k, v]) => `<p><strong>${esc(k)}</strong>: ${esc(v)}</p>`)
          .join(''),
      );
    },
    interactions: {
      url: (_ctx: KoaContextWithOIDC, interaction: { uid: string }) => `/interaction/${interaction.uid}`,
    },
    // Refresh tokens for every client allowed the grant: a phone or terminal stays signed in without a browser.
    issueRefreshToken: async (_ctx: KoaContextWithOIDC, client: { grantTypeAllowed(t: string): boolean }) =>
      client.grantTypeAllowed('refresh_token'),
    findAccount: async (
      _ctx: KoaContextWithOIDC,
      sub: string,
      token?: unknown,
    ): Promise<OidcAccount | undefined> => {
      const account = await o.accounts.findAccount(sub);
      if (!account) return undefined;
      return {
        accountId: account.id,
        async claims(use: string, scope: string) {
          const out: { sub: string; [claim: string]: unknown } = { sub: account.id, name: account.name };
          // Computed per Userinfo call, never put into an ID token: a token minted now is fresh ([TANDEM-DLG-4]).
          if (use === 'userinfo' && scope.split(' ').includes(DELEGATIONS_SCOPE)) {
            const grantId = (token as { grantId?: string } | undefined)?.grantId;
            const claim = await delegationsFor(account.id, grantId);
            if (claim !== undefined) out[DELEGATIONS_CLAIM] = claim;
          }
          return out;
        },
      };
    },
    ttl: {
      AccessToken: () => ttl.accessToken,
      AuthorizationCode: () => 60,
      ClientCredentials: () => ttl.accessToken,
      DeviceCode: () => ttl.deviceCode,
      IdToken: () => ttl.idToken,
      Interaction: () => ttl.interaction,
      RefreshToken: () => ttl.refreshToken,
      Session: () => ttl.session,
      Grant: () => ttl.grant,
      BackchannelAuthenticationRequest: () => 600,
    },
  };

  // Loaded here, not at import: oidc-provider prints a runtime warning on load, and whoever imports this module
  // only for its types or helpers (the bench, the CLI) should not pay for it or see it.
  const { default: ProviderClass } = await import('oidc-provider');
  const provider = new ProviderClass(o.issuer, configuration);
  provider.proxy = o.proxy ?? false;

  // RFC 8628 §3.2 `interval`, and §3.5 slow_down for a client that polls sooner than it.
  provider.use(async (ctx, next) => {
    await next();
    const oidc = (ctx as unknown as KoaContextWithOIDC).oidc;
    if (
      oidc?.route === 'device_authorization' &&
      ctx.status === 200 &&
      ctx.body &&
      typeof ctx.body === 'object'
    ) {
      (ctx.body as Record<string, unknown>).interval = interval;
    }
    if (oidc?.route === 'token' && ctx.status === 400 && ctx.body && typeof ctx.body === 'object') {
      const body = ctx.body as Record<string, unknown>;
      const code = oidc.params?.device_code;
      if (body.error === 'authorization_pending' && typeof code === 'string' && polls.tooSoon(code, now())) {
        ctx.body = {
          error: 'slow_down',
          error_description: 'you are polling too quickly and must wait 5 seconds longer between polls',
        };
      }
    }
  });

  const callback = provider.callback();
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path.startsWith('/interaction/')) {
      handleInteraction(
        { provider, accounts: o.accounts, passwords, limiter, issuer: o.issuer, dummyHash },
        req,
        res,
      ).catch((e: unknown) => {
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        }
        res.end(`internal error: ${(e as Error).message}`);
      });
      return;
    }
    void callback(req, res);
  };

  async function verifyAccessToken(token: string): Promise<AccessTokenInfo | undefined> {
    if (typeof token !== 'string' || token.length === 0 || token.length > 512) return undefined;
    const at = await provider.AccessToken.find(token);
    if (!at || !at.accountId || !at.grantId) return undefined;
    const grant = await provider.Grant.find(at.grantId);
    if (!grant) return undefined; // the grant was revoked: every token of it is dead
    return { accountId: at.accountId, clientId: at.clientId!, grantId: at.grantId, scopes: at.scopes };
  }

  return { provider, handler, verifyAccessToken };
}
