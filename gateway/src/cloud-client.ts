/**
 * The phone-side cloud client (issue 10 part 6): signs in with the OAuth 2.0 Device Authorization Grant
 * (RFC 8628) through `openid-client` (a certified relying party, not a hand-rolled one), refreshes, reads the
 * delegations claim of Userinfo (SPEC §5.9, [TANDEM-DLG-2]) and calls the sharing API (`/api/v1`, the
 * contract in cloud-bridge's OpenAPI document): devices, locks, shares and the phone's sync.
 *
 * Tokens and caches live in a {@link SessionStore}; this class changes it and the caller saves it. Failures
 * are coded {@link GatewayError}s that say what to do:
 *
 * - `ERR_GW_OFFLINE` (temporary): refused, unresolvable or timed out. Cached delegations, revocation updates
 *   and beacons still serve `tandem unlock` until they expire.
 * - `ERR_GW_UNAUTHORIZED`: the cloud answered 401 after one refresh, or refused the refresh: log in again.
 * - `ERR_GW_CLOUD`: any other refusal, with the cloud's `ERR_API_*` code and its message (naming the field);
 *   5xx is marked temporary.
 */
import * as oidc from 'openid-client';
import type { PublicKey } from '../../protocol/src/keys.js';
import { GatewayError } from './errors.js';
import type { CachedDelegation, SessionStore, SessionTokens } from './session-store.js';

/** The claim of Userinfo that lists a rider's delegations (SPEC §5.9, [TANDEM-DLG-1]). */
export const DELEGATIONS_CLAIM = 'https://tandem.example/delegations';
/** The OAuth client of the command line ([TANDEM-DLG-6]: device grant and refresh only). */
export const CLI_CLIENT_ID = 'tandem-cli';
/** What `tandem login` asks for: the delegations claim, and a refresh token to outlive the access token. */
export const LOGIN_SCOPE = 'openid profile offline_access delegations';
/** An access token closer than this to its expiry is refreshed before use. */
const REFRESH_MARGIN_SECONDS = 30;

/** A weekly window as the API carries it (maps to protocol/src/schedule.ts ScheduleWindow). */
export interface ApiScheduleWindow {
  readonly days: readonly string[];
  readonly start: string;
  readonly end: string;
}

/** A share as the API returns it. */
export interface ApiShare {
  readonly id: string;
  readonly lock: string;
  readonly owner: string;
  readonly rider: string;
  readonly scope: readonly string[];
  readonly notBefore: string;
  readonly notAfter: string;
  readonly schedule?: readonly ApiScheduleWindow[];
  readonly maxUses?: number;
  readonly usesReported: number;
  readonly mayReshare: boolean;
  readonly revoked: boolean;
  readonly revokedAt?: string;
}

/** What an owner asks for with POST /locks/{lockId}/shares. */
export interface ShareRequest {
  readonly rider: string;
  readonly scope: readonly string[];
  readonly notBefore?: string;
  readonly notAfter: string;
  readonly schedule?: readonly ApiScheduleWindow[];
  readonly maxUses?: number;
  readonly mayReshare?: boolean;
}

/** A lock as the API shows its owner. */
export interface ApiLock {
  readonly id: string;
  readonly owner: string;
  readonly claimedAt: string;
  readonly state: string | null;
  readonly stateAt: string | null;
  readonly lastContact: string | null;
  readonly revocation: {
    readonly version: number;
    readonly acknowledgedVersion: number | null;
    readonly acknowledgedAt: string | null;
  };
  /** The owner's Home Assistant choice ([TANDEM-HA-2]); absent from clouds before it existed. */
  readonly remoteLocking?: boolean;
  /** The issuer anchor the lock acknowledged ([TANDEM-SYNC-5]); absent from clouds before it was shown. */
  readonly anchor?: {
    readonly version: number;
    readonly acknowledgedVersion: number | null;
    readonly acknowledgedAt: string | null;
    readonly via: string | null;
  };
}

/** A registered device (phone key). */
export interface ApiDevice {
  readonly id: string;
  readonly name: string;
  readonly thumbprint: string;
  readonly registeredAt: string;
}

/** The answer of POST /sync: what the phone carries back to the lock. */
export interface SyncAnswer {
  readonly results: readonly { readonly index: number; readonly outcome: string }[];
  readonly outboxAck: Uint8Array | null;
  readonly revocation: Uint8Array | null;
  readonly beacon: Uint8Array | null;
  /** The issuer's anchor update to carry first ([TANDEM-SYNC-5]); null when the lock holds it. */
  readonly anchor: Uint8Array | null;
}

/** What a device login shows the user (RFC 8628 §3.2), and the wait for its approval. */
export interface PendingLogin {
  readonly userCode: string;
  readonly verificationUri: string;
  readonly verificationUriComplete: string | undefined;
  /** Seconds the code stays valid. */
  readonly expiresIn: number;
  /** Seconds between polls, as the server asked ([RFC 8628 §3.5]; `slow_down` adds 5). */
  readonly interval: number;
  /** Polls the token endpoint until approved; writes the tokens into the session. */
  complete(signal?: AbortSignal): Promise<{ account: string }>;
}

/** Options of {@link CloudClient}. */
export interface CloudClientOptions {
  readonly session: SessionStore;
  /** Seconds each HTTP request may take (default 15). */
  readonly timeoutSeconds?: number;
  /** Unix seconds; injected for tests. */
  readonly now?: () => number;
  /** The fetch to use (default the global one). */
  readonly fetch?: typeof fetch;
}

// Network failures that mean "the cloud cannot be reached", as Node's fetch (undici) reports them.
const OFFLINE_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_HEADERS_TIMEOUT',
]);

/** True when `e` (or a cause of it) is a connection failure or a timeout. */
export function isOfflineError(e: unknown): boolean {
  for (let x: unknown = e, depth = 0; x !== undefined && x !== null && depth < 6; depth++) {
    const o = x as { code?: unknown; name?: unknown; cause?: unknown };
    if (typeof o.code === 'string' && OFFLINE_CODES.has(o.code)) return true;
    if (o.name === 'TimeoutError' || o.name === 'AbortError') return true;
    x = o.cause;
  }
  return false;
}

function offline(cloud: string, cause: unknown): GatewayError {
  return new GatewayError(
    'ERR_GW_OFFLINE',
    `the cloud at ${cloud} is unreachable; cached tokens are used until they expire`,
    { cause, temporary: true },
  );
}

function loginAgain(cloud: string, why: string, cause?: unknown): GatewayError {
  return new GatewayError(
    'ERR_GW_UNAUTHORIZED',
    `${why}: log in again with \`tandem login --cloud ${cloud}\``,
    cause === undefined ? { httpStatus: 401 } : { cause, httpStatus: 401 },
  );
}

const isLoopbackHttp = (url: URL): boolean =>
  url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);

/** Checks a cloud URL: https, or http on a loopback address (as the provider itself requires). */
export function checkCloudUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new GatewayError(
      'ERR_GW_CLOUD',
      `--cloud must be a URL such as https://cloud.example, not ${JSON.stringify(text)}`,
    );
  }
  if (url.protocol !== 'https:' && !isLoopbackHttp(url)) {
    throw new GatewayError(
      'ERR_GW_CLOUD',
      `the cloud URL must be https (http only on 127.0.0.1), not ${url.href}`,
    );
  }
  return url;
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

function bytesOrNull(v: unknown, field: string): Uint8Array | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'string' || !/^[A-Za-z0-9_-]*$/.test(v)) {
    throw new GatewayError(
      'ERR_GW_CLOUD',
      `the cloud's sync answer has a malformed "${field}" (not base64url)`,
    );
  }
  return new Uint8Array(Buffer.from(v, 'base64url'));
}

/** The client. One instance per command run; it holds no state beyond the session it was given. */
export class CloudClient {
  readonly session: SessionStore;
  private readonly timeoutSeconds: number;
  private readonly now: () => number;
  private readonly fetchFn: typeof fetch;
  private config: oidc.Configuration | undefined;

  constructor(options: CloudClientOptions) {
    this.session = options.session;
    this.timeoutSeconds = options.timeoutSeconds ?? 15;
    this.now = options.now ?? (() => Math.floor(Date.now() / 1000));
    this.fetchFn = options.fetch ?? ((input, init) => fetch(input, init));
  }

  private configure(config: oidc.Configuration, url: URL): oidc.Configuration {
    config.timeout = this.timeoutSeconds;
    config[oidc.customFetch] = (u, o) => this.fetchFn(u, o as RequestInit);
    if (isLoopbackHttp(url)) oidc.allowInsecureRequests(config);
    return config;
  }

  /** The configuration from the session's stored metadata: no discovery round trip per command. */
  private configuration(): oidc.Configuration {
    if (this.config !== undefined) return this.config;
    const s = this.session.require();
    this.config = this.configure(
      new oidc.Configuration(
        s.metadata as unknown as oidc.ServerMetadata,
        s.clientId,
        undefined,
        oidc.None(),
      ),
      new URL(s.cloud),
    );
    return this.config;
  }

  /**
   * Starts a device login at `cloud` (discovery, then the device authorization request, RFC 8628 §3.1).
   * The caller shows the user code and verification URL, then awaits {@link PendingLogin.complete}.
   */
  async startLogin(cloud: string, clientId = CLI_CLIENT_ID): Promise<PendingLogin> {
    const url = checkCloudUrl(cloud);
    const issuer = url.href.replace(/\/$/, '');
    let config: oidc.Configuration;
    try {
      config = await oidc.discovery(url, clientId, undefined, oidc.None(), {
        [oidc.customFetch]: (u, o) => this.fetchFn(u, o as RequestInit),
        timeout: this.timeoutSeconds,
        ...(isLoopbackHttp(url) ? { execute: [oidc.allowInsecureRequests] } : {}),
      });
    } catch (e) {
      throw this.translate(e, issuer, 'discovery');
    }
    this.configure(config, url);
    if (config.serverMetadata().device_authorization_endpoint === undefined) {
      throw new GatewayError('ERR_GW_CLOUD', `${issuer} offers no device authorization endpoint (RFC 8628)`);
    }
    let da: oidc.DeviceAuthorizationResponse;
    try {
      da = await oidc.initiateDeviceAuthorization(config, { scope: LOGIN_SCOPE });
    } catch (e) {
      throw this.translate(e, issuer, 'device authorization');
    }
    const metadata = JSON.parse(JSON.stringify(config.serverMetadata())) as Record<string, unknown>;
    return {
      userCode: da.user_code,
      verificationUri: da.verification_uri,
      verificationUriComplete: da.verification_uri_complete,
      expiresIn: da.expires_in,
      interval: da.interval ?? 5,
      complete: async (signal?: AbortSignal) => {
        let tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
        try {
          tokens = await oidc.pollDeviceAuthorizationGrant(config, da, undefined, signal ? { signal } : {});
        } catch (e) {
          const error = (e as { error?: unknown }).error;
          if (error === 'access_denied') {
            throw new GatewayError('ERR_GW_LOGIN', 'the login was denied in the browser');
          }
          if (error === 'expired_token' || (e as { name?: unknown }).name === 'TimeoutError') {
            throw new GatewayError(
              'ERR_GW_LOGIN',
              `the code ${da.user_code} expired before it was approved: run \`tandem login\` again`,
            );
          }
          throw this.translate(e, issuer, 'token');
        }
        const account = tokens.claims()?.sub;
        if (account === undefined) {
          throw new GatewayError('ERR_GW_CLOUD', `${issuer} returned no ID token: "openid" scope refused?`);
        }
        this.session.begin({
          cloud: issuer,
          clientId,
          metadata,
          account,
          tokens: this.tokensOf(tokens),
        });
        this.config = config;
        return { account };
      },
    };
  }

  private tokensOf(t: oidc.TokenEndpointResponse, previousRefresh?: string): SessionTokens {
    const refresh = t.refresh_token ?? previousRefresh;
    return {
      accessToken: t.access_token,
      expiresAt: this.now() + (t.expires_in ?? 60),
      ...(refresh === undefined ? {} : { refreshToken: refresh }),
      scope: t.scope ?? LOGIN_SCOPE,
    };
  }

  /** Maps an openid-client or fetch failure to a coded error. */
  private translate(e: unknown, cloud: string, what: string): GatewayError {
    if (e instanceof GatewayError) return e;
    if (isOfflineError(e)) return offline(cloud, e);
    if (e instanceof oidc.ResponseBodyError) {
      if (e.error === 'invalid_grant' || e.status === 401) {
        return loginAgain(cloud, `the cloud refused the session (${e.error})`, e);
      }
      return new GatewayError(
        'ERR_GW_CLOUD',
        `the cloud refused the ${what} request: ${e.error}${e.error_description ? ` (${e.error_description})` : ''}`,
        { cause: e, httpStatus: e.status, cloudCode: e.error, temporary: e.status >= 500 },
      );
    }
    if (e instanceof oidc.WWWAuthenticateChallengeError && e.status === 401) {
      return loginAgain(cloud, 'the cloud no longer accepts this session', e);
    }
    return new GatewayError('ERR_GW_CLOUD', `${what} at ${cloud} failed: ${(e as Error).message}`, {
      cause: e,
    });
  }

  /** A valid access token: the stored one, or a refreshed one (refresh tokens rotate: the new one is kept). */
  async accessToken(force = false): Promise<string> {
    const s = this.session.require();
    if (!force && s.tokens.expiresAt - REFRESH_MARGIN_SECONDS > this.now()) return s.tokens.accessToken;
    if (s.tokens.refreshToken === undefined) {
      throw loginAgain(s.cloud, 'the access token expired and there is no refresh token');
    }
    try {
      const t = await oidc.refreshTokenGrant(this.configuration(), s.tokens.refreshToken);
      this.session.setTokens(this.tokensOf(t, s.tokens.refreshToken));
      return t.access_token;
    } catch (e) {
      throw this.translate(e, s.cloud, 'refresh');
    }
  }

  /** Revokes the refresh token at the cloud (RFC 7009), best effort, and forgets the session. */
  async logout(): Promise<{ revoked: boolean }> {
    const s = this.session.data;
    let revoked = false;
    if (s !== undefined && s.metadata.revocation_endpoint !== undefined) {
      try {
        const config = this.configuration();
        if (s.tokens.refreshToken !== undefined) await oidc.tokenRevocation(config, s.tokens.refreshToken);
        await oidc.tokenRevocation(config, s.tokens.accessToken);
        revoked = true;
      } catch {
        // Offline or refused: the local session goes anyway; the tokens expire on their own.
      }
    }
    this.session.clear();
    return { revoked };
  }

  /** Userinfo, as openid-client checks it (the subject must be the session's account). */
  async userinfo(): Promise<Record<string, unknown>> {
    const s = this.session.require();
    const call = async (token: string) => oidc.fetchUserInfo(this.configuration(), token, s.account);
    try {
      return (await call(await this.accessToken())) as Record<string, unknown>;
    } catch (e) {
      if (e instanceof oidc.WWWAuthenticateChallengeError && e.status === 401) {
        try {
          return (await call(await this.accessToken(true))) as Record<string, unknown>;
        } catch (e2) {
          throw this.translate(e2, s.cloud, 'userinfo');
        }
      }
      throw this.translate(e, s.cloud, 'userinfo');
    }
  }

  /**
   * Fetches the delegations claim and caches one entry per lock (the token for each lock the rider holds a
   * live share of, bound to this device's registered key, [TANDEM-DLG-5]). Without a registered key the claim
   * is absent: the result is empty and `keyRegistered` false.
   */
  async fetchDelegations(): Promise<{
    delegations: Record<string, CachedDelegation>;
    keyRegistered: boolean;
  }> {
    const info = await this.userinfo();
    const claim = info[DELEGATIONS_CLAIM];
    const out: Record<string, CachedDelegation> = {};
    if (claim === undefined) {
      this.session.setDelegations(out);
      return { delegations: out, keyRegistered: false };
    }
    if (typeof claim !== 'object' || claim === null || Array.isArray(claim)) {
      throw new GatewayError('ERR_GW_CLOUD', `Userinfo's "${DELEGATIONS_CLAIM}" is not an object`);
    }
    const now = this.now();
    for (const [owner, entries] of Object.entries(claim as Record<string, unknown>)) {
      if (!Array.isArray(entries)) {
        throw new GatewayError('ERR_GW_CLOUD', `Userinfo's delegations of "${owner}" are not an array`);
      }
      for (const raw of entries as unknown[]) {
        const e = raw as Record<string, unknown>;
        if (
          typeof e.access_token !== 'string' ||
          !/^[A-Za-z0-9_-]+$/.test(e.access_token) ||
          typeof e.lock !== 'string' ||
          typeof e.share !== 'string' ||
          !Number.isSafeInteger(e.expires_in) ||
          !Array.isArray(e.scope)
        ) {
          throw new GatewayError(
            'ERR_GW_CLOUD',
            `a delegation of "${owner}" lacks access_token, lock, share, expires_in or scope (SPEC §5.9)`,
          );
        }
        out[e.lock] = {
          owner,
          share: e.share,
          scope: e.scope as string[],
          token: e.access_token,
          expiresAt: now + (e.expires_in as number),
        };
      }
    }
    this.session.setDelegations(out);
    return { delegations: out, keyRegistered: true };
  }

  /**
   * One call of the sharing API. Retries once with a refreshed token on 401 (an access token revoked or
   * expired early); a second 401 is ERR_GW_UNAUTHORIZED.
   */
  async api<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const s = this.session.require();
    const url = `${s.cloud}/api/v1${path}`;
    const send = async (token: string): Promise<Response> => {
      try {
        return await this.fetchFn(url, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            accept: 'application/json',
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(this.timeoutSeconds * 1000),
        });
      } catch (e) {
        throw isOfflineError(e) ? offline(s.cloud, e) : this.translate(e, s.cloud, `${method} ${path}`);
      }
    };
    let res = await send(await this.accessToken());
    if (res.status === 401) {
      await res.body?.cancel();
      res = await send(await this.accessToken(true));
      if (res.status === 401) {
        await res.body?.cancel();
        throw loginAgain(s.cloud, 'the cloud no longer accepts this session (401)');
      }
    }
    let json: unknown;
    const text = await res.text().catch((e: unknown) => {
      throw isOfflineError(e) ? offline(s.cloud, e) : e;
    });
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const err = json as { error?: unknown; message?: unknown } | undefined;
      const code = typeof err?.error === 'string' ? err.error : `HTTP ${res.status}`;
      const message = typeof err?.message === 'string' ? err.message : text.slice(0, 200) || res.statusText;
      throw new GatewayError('ERR_GW_CLOUD', `${code}: ${message}`, {
        httpStatus: res.status,
        cloudCode: code,
        temporary: res.status >= 500,
      });
    }
    if (typeof json !== 'object' || json === null) {
      throw new GatewayError(
        'ERR_GW_CLOUD',
        `${method} ${path} answered ${res.status} without a JSON object`,
      );
    }
    return json as T;
  }

  /** POST /devices: registers the rider's public key for this login's device (re-registering replaces it). */
  async registerDevice(key: PublicKey, name?: string): Promise<ApiDevice> {
    const { exportJwk } = await import('../../protocol/src/keys.js');
    const jwk = exportJwk(key);
    const { device } = await this.api<{ device: ApiDevice }>('POST', '/devices', {
      key: jwk,
      ...(name === undefined ? {} : { name }),
    });
    this.session.setDevice(device);
    return device;
  }

  async devices(): Promise<ApiDevice[]> {
    return (await this.api<{ devices: ApiDevice[] }>('GET', '/devices')).devices;
  }

  async removeDevice(
    id: string,
  ): Promise<{ device: ApiDevice; revocations: { lock: string; version: number }[] }> {
    return this.api('DELETE', `/devices/${encodeURIComponent(id)}`);
  }

  /** POST /locks: claims a lock with the receipt its console printed (base64url). */
  async claimLock(receipt: string): Promise<ApiLock> {
    return (await this.api<{ lock: ApiLock }>('POST', '/locks', { receipt })).lock;
  }

  async locks(): Promise<ApiLock[]> {
    return (await this.api<{ locks: ApiLock[] }>('GET', '/locks')).locks;
  }

  async lock(lockId: string): Promise<ApiLock> {
    return (await this.api<{ lock: ApiLock }>('GET', `/locks/${encodeURIComponent(lockId)}`)).lock;
  }

  /** The owner changes a lock's settings (PATCH /locks/{id}): remote locking for Home Assistant. */
  async updateLock(lockId: string, settings: { readonly remoteLocking?: boolean }): Promise<ApiLock> {
    return (await this.api<{ lock: ApiLock }>('PATCH', `/locks/${encodeURIComponent(lockId)}`, settings))
      .lock;
  }

  async share(lockId: string, request: ShareRequest): Promise<ApiShare> {
    return (
      await this.api<{ share: ApiShare }>('POST', `/locks/${encodeURIComponent(lockId)}/shares`, request)
    ).share;
  }

  /** The owner's shares of a lock, or (no lock) the shares the caller holds as a rider. */
  async shares(lockId?: string): Promise<ApiShare[]> {
    const path = lockId === undefined ? '/shares' : `/locks/${encodeURIComponent(lockId)}/shares`;
    return (await this.api<{ shares: ApiShare[] }>('GET', path)).shares;
  }

  async revokeShare(
    shareId: string,
  ): Promise<{ share: ApiShare; revocation: { lock: string; version: number } }> {
    return this.api('DELETE', `/shares/${encodeURIComponent(shareId)}`);
  }

  async revokeRider(lockId: string, rider: string): Promise<unknown> {
    return this.api('DELETE', `/locks/${encodeURIComponent(lockId)}/riders/${encodeURIComponent(rider)}`);
  }

  /**
   * POST /sync for one lock: uploads relayed records and gets what to carry back. With `challenge` the
   * beacon is bound to the lock's current nonce ([TANDEM-TIME-4]) and the revocation may be a delta from the
   * version the challenge showed.
   */
  async sync(
    lockId: string,
    records: readonly Uint8Array[],
    challenge?: { nonce: Uint8Array; revocationVersion: number },
  ): Promise<SyncAnswer> {
    const a = await this.api<Record<string, unknown>>('POST', '/sync', {
      lock: lockId,
      records: records.map(b64),
      ...(challenge === undefined
        ? {}
        : { challenge: { nonce: b64(challenge.nonce), revocationVersion: challenge.revocationVersion } }),
    });
    if (!Array.isArray(a.results)) {
      throw new GatewayError('ERR_GW_CLOUD', 'the sync answer lacks "results"');
    }
    return {
      results: a.results as SyncAnswer['results'],
      outboxAck: bytesOrNull(a.outboxAck, 'outboxAck'),
      revocation: bytesOrNull(a.revocation, 'revocation'),
      beacon: bytesOrNull(a.beacon, 'beacon'),
      // A cloud from before [TANDEM-SYNC-5] sends no "anchor": nothing to carry.
      anchor: bytesOrNull(a.anchor, 'anchor'),
    };
  }
}

/** What {@link syncAll} did for one lock. */
export interface LockSyncReport {
  readonly lock: string;
  readonly uploaded: number;
  /** Outcomes of the uploaded records other than accepted ones, as the cloud named them. */
  readonly refused: readonly { readonly index: number; readonly outcome: string }[];
  readonly revocationVersion: number | undefined;
  readonly beacon: boolean;
  readonly outboxAck: boolean;
  /** True when the phone now carries the issuer's anchor update to the lock ([TANDEM-SYNC-5]). */
  readonly anchor: boolean;
  /** Set when this lock's sync failed (the others still ran). */
  readonly error?: GatewayError;
}

/** The cloud's sync takes at most this many records per call. */
export const SYNC_BATCH = 64;

/**
 * `tandem sync`: fetches the delegations, then for every lock the phone knows (delegations and caches)
 * uploads the relayed records in batches and keeps the revocation update, beacon, outbox ack and anchor update
 * to carry.
 * A refused lock (no live share any more: 404) does not stop the others. The caller saves the session.
 */
export async function syncAll(
  client: CloudClient,
  decodeRevocationVersion: (bytes: Uint8Array) => number,
): Promise<{
  delegations: Record<string, CachedDelegation>;
  keyRegistered: boolean;
  locks: LockSyncReport[];
}> {
  const { delegations, keyRegistered } = await client.fetchDelegations();
  const store = client.session;
  const reports: LockSyncReport[] = [];
  for (const lock of store.lockIds()) {
    let uploaded = 0;
    const refused: { index: number; outcome: string }[] = [];
    let answer: SyncAnswer | undefined;
    try {
      const queue = store.relay(lock);
      for (let start = 0; start === 0 || start < queue.length; start += SYNC_BATCH) {
        const batch = queue.slice(start, start + SYNC_BATCH);
        answer = await client.sync(lock, batch);
        uploaded += batch.length;
        for (const r of answer.results) {
          // The cloud's outcomes are stored, duplicate and refused (with its reason), as over MQTT.
          if (!/^(accepted|duplicate|ok|stored)$/i.test(r.outcome)) {
            const reason = (r as { reason?: unknown }).reason;
            refused.push({
              index: start + r.index,
              outcome: typeof reason === 'string' ? `${r.outcome}: ${reason}` : r.outcome,
            });
          }
        }
      }
      // The cloud has every record now: a refused one would be refused again, and the lock still holds it.
      store.dropRelay(lock, queue.length);
    } catch (e) {
      if (!(e instanceof GatewayError) || e.code === 'ERR_GW_OFFLINE' || e.code === 'ERR_GW_UNAUTHORIZED')
        throw e;
      reports.push({
        lock,
        uploaded,
        refused,
        revocationVersion: undefined,
        beacon: false,
        outboxAck: false,
        anchor: false,
        error: e,
      });
      continue;
    }
    let revocationVersion: number | undefined;
    if (answer?.revocation) {
      try {
        revocationVersion = decodeRevocationVersion(answer.revocation);
      } catch (cause) {
        // Not carried: the lock would refuse it anyway, and a newer sync may bring a good one.
        const error = new GatewayError(
          'ERR_GW_CLOUD',
          `the cloud's revocation update for ${lock} does not decode: ${(cause as Error).message}`,
          { cause },
        );
        reports.push({
          lock,
          uploaded,
          refused,
          revocationVersion: undefined,
          beacon: false,
          outboxAck: false,
          anchor: false,
          error,
        });
        continue;
      }
      store.putRevocation(lock, answer.revocation, revocationVersion);
    }
    if (answer?.beacon) store.putBeacon(lock, answer.beacon);
    if (answer?.outboxAck) store.putOutboxAck(lock, answer.outboxAck);
    // The last answer speaks for the lock's acknowledged anchor: an update to carry, or none any more.
    if (answer !== undefined) store.putAnchor(lock, answer.anchor);
    reports.push({
      lock,
      uploaded,
      refused,
      revocationVersion,
      beacon: answer?.beacon != null,
      outboxAck: answer?.outboxAck != null,
      anchor: answer?.anchor != null,
    });
  }
  return { delegations, keyRegistered, locks: reports };
}
