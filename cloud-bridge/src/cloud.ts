/**
 * The cloud process on embedded defaults (`tandem cloud`): store, broker, bridge and admin channel, all in a
 * data directory:
 *
 * | file | what |
 * | --- | --- |
 * | `cloud.db` | SQLite store (unless a PostgreSQL URL is given) |
 * | `broker/` | aedes' LevelDB persistence: sessions, retained messages, QoS 1 in flight |
 * | `issuer.keyring.json` | the issuer keys, encrypted under `TANDEM_ISSUER_SECRET`, mode 0600 (`keyring.ts`) |
 * | `issuer.pub.jwk.json` | the current key's public JWK: the trust anchor locks are provisioned with |
 * | `bridge.password` | the bridge's MQTT password, mode 0600 |
 * | `admin.token` | the admin channel's bearer token, mode 0600 |
 * | `admin.port` | the port of the admin channel (the CLI reads it) |
 * | `mosquitto/` | `passwd` and `acl` for running Mosquitto in aedes' place ({@link writeMosquittoFiles}) |
 * | `oidc.cookie-key` | the OpenID Provider's cookie signing key, mode 0600 (with `http`) |
 * | `oidc.jwks.json` | the OpenID Provider's ID token signing key (ES256 private JWK), mode 0600 (with `http`) |
 *
 * With `http`, one HTTP listener serves `/api/v1/...` (the sharing API), `/dashboard/...` (an optional
 * handler) and everything else to the OpenID Provider, whose issuer is `http://<host>:<port>`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { JWK } from 'oidc-provider';
import { oidcAuth } from './api/auth.js';
import { EventFeed, eventStreamHandler } from './feed.js';
import { SyncService, syncJsonHandler } from './sync.js';
import type { ApiExtensions, ClaimVerifier } from './api/server.js';
import { API_PREFIX, createApiHandler } from './api/server.js';
import type { OidcProviderOptions, TandemOidc } from './oidc/provider.js';
import { createOidcProvider, tandemClients } from './oidc/provider.js';
import { dashboardRedirectUri } from './dashboard/handler.js';
import { HOME_ASSISTANT_USERNAME, mosquittoAcl, mosquittoPasswordFile } from './acl.js';
import { startAdmin } from './admin.js';
import type { Broker, BrokerPersistence, ListenAddress } from './broker.js';
import { startBroker } from './broker.js';
import { Bridge } from './bridge.js';
import { BRIDGE_USERNAME, generatePassword, hashPassword } from './credentials.js';
import { CloudError } from './errors.js';
import type { Issuer } from './issuer.js';
import { ISSUER_SECRET_VARIABLE, IssuerKeyring } from './keyring.js';
import type { LogSink } from './log.js';
import { debugSink } from './log.js';
import type { SqlCloudStore } from './store/sql-store.js';
import { openSqlStore } from './store/sql-store.js';

/** Options of {@link startCloud}. */
export interface CloudOptions {
  readonly dataDir: string;
  /** MQTT over TCP; default 127.0.0.1:1883. */
  readonly mqtt?: ListenAddress;
  readonly mqtts?: ListenAddress & { readonly key: string | Buffer; readonly cert: string | Buffer };
  readonly ws?: ListenAddress & { readonly path?: string };
  /** Admin channel port on 127.0.0.1; default 0 (any free port, written to `admin.port`). */
  readonly adminPort?: number;
  /** A PostgreSQL URL instead of the embedded SQLite file. */
  readonly postgresUrl?: string;
  /** Redis for a fleet: aedes persistence and message sharing between instances. */
  readonly redisUrl?: string;
  /** In-memory broker persistence (tests); default LevelDB in the data directory. */
  readonly brokerPersistence?: BrokerPersistence;
  readonly beaconIntervalMs?: number;
  /**
   * This instance's bridge handles only the locks of partition `index` of `count` (FNV-1a of the lock id,
   * bridge.ts `partitionOf`): several instances over one Redis share the bridge work (README, "Fleet").
   */
  readonly partition?: { readonly index: number; readonly count: number };
  readonly lockRate?: { readonly perSecond: number; readonly burst: number };
  readonly log?: LogSink;
  /**
   * The keyring secret (32 bytes as 64 hex digits or 43 base64url characters); default the environment's
   * `TANDEM_ISSUER_SECRET`. Without either the cloud refuses to start (ERR_CLOUD_SECRET_MISSING).
   */
  readonly issuerSecret?: string;
  /** Development only (`--insecure-plaintext-key`): keep issuer keys unencrypted when no secret is given. */
  readonly insecurePlaintextKey?: boolean;
  /** How often to check whether a rotation's overlap has ended ([TANDEM-ANCHOR-7]); default one minute. */
  readonly keyCheckIntervalMs?: number;
  /**
   * The HTTP listener: OpenID Provider, sharing API (`/api/v1`) and dashboard mount (`/dashboard`). Absent: no
   * HTTP. `issuerUrl` overrides `http://<host>:<port>` (behind a TLS proxy; required on a non-loopback host).
   */
  readonly http?: { readonly port: number; readonly host?: string; readonly issuerUrl?: string };
  /** The issuer name locks' issuer anchors carry: delegated tokens' `iss` (default `tandem`). */
  readonly issuerId?: string;
  /** Serves `/dashboard` and everything under it (helper h-dash's `dashboardHandler`); 404 when absent. */
  readonly dashboardHandler?: (req: IncomingMessage, res: ServerResponse) => void;
  /** Redirect URIs of the `tandem-app` client (authorization code + PKCE). */
  readonly appRedirectUris?: readonly string[];
  /** Overrides of the provider's options (tests: a cheap password hasher, lifetimes, the clock, clients). */
  readonly oidc?: Partial<Omit<OidcProviderOptions, 'issuer' | 'accounts' | 'delegations' | 'issuerKey'>>;
  /** The claim receipt verifier of POST /locks (default: protocol's, SPEC §12). */
  readonly verifyClaim?: ClaimVerifier;
  /** POST /sync and GET /events, where a module supplies them. */
  readonly api?: ApiExtensions;
}

/** A running cloud. */
export interface Cloud {
  readonly store: SqlCloudStore;
  readonly broker: Broker;
  readonly bridge: Bridge;
  /** The current issuer key; follows rotations ({@link IssuerKeyring.issuer}). */
  readonly issuer: Issuer;
  readonly keyring: IssuerKeyring;
  readonly adminPort: number;
  readonly adminToken: string;
  /** Broker URL the bridge uses (TCP). */
  readonly mqttUrl: string;
  /** With `http`: the listener's URL (`http://127.0.0.1:<port>`), the provider's issuer and the provider. */
  readonly httpUrl?: string;
  readonly issuerUrl?: string;
  readonly oidc?: TandemOidc;
  close(): Promise<void>;
}

/** The default issuer name: what `provision anchor add <kid> EdDSA <key> issuer tandem` gives a lock. */
export const DEFAULT_ISSUER_ID = 'tandem';

/** Reads the provider's ID token signing key, or creates one (ES256, mode 0600). */
async function loadOrCreateJwks(path: string): Promise<{ keys: JWK[] }> {
  if (existsSync(path)) {
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as { keys: JWK[] };
    } catch (e) {
      throw new CloudError('ERR_CLOUD_KEY_FILE', `${path} is not a JWK set: ${(e as Error).message}`);
    }
  }
  const { exportJWK, generateKeyPair } = await import('jose');
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig' } as JWK;
  jwk.kid = `id-${Date.now().toString(36)}`;
  const jwks = { keys: [jwk] };
  writeFileSync(path, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  return jwks;
}

const isLoopback = (host: string): boolean => host === '127.0.0.1' || host === 'localhost' || host === '::1';

/** Reads a secret file, or creates it with a fresh password (mode 0600). */
export function loadOrCreateSecret(path: string): string {
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const secret = generatePassword();
  writeFileSync(path, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  return secret;
}

/** Starts store, broker, bridge and admin channel. */
export async function startCloud(options: CloudOptions): Promise<Cloud> {
  const log = options.log ?? debugSink;
  try {
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new CloudError(
      'ERR_CLOUD_CONFIG',
      `cannot create data directory ${options.dataDir}: ${(e as Error).message}`,
    );
  }
  const secret = options.issuerSecret ?? process.env[ISSUER_SECRET_VARIABLE];
  const keyring = IssuerKeyring.open({
    dir: options.dataDir,
    ...(secret === undefined || secret === '' ? {} : { secret }),
    ...(options.insecurePlaintextKey === true ? { insecurePlaintext: true } : {}),
  });
  const issuer = keyring.issuer;
  const bridgePassword = loadOrCreateSecret(join(options.dataDir, 'bridge.password'));
  const bridgeRecord = hashPassword(bridgePassword);
  // [TANDEM-HA-4]: Home Assistant's own broker user; its password is in the data directory for its MQTT setup.
  const homeAssistantRecord = hashPassword(
    loadOrCreateSecret(join(options.dataDir, 'homeassistant.password')),
  );
  const adminToken = loadOrCreateSecret(join(options.dataDir, 'admin.token'));
  const store = await openSqlStore(
    options.postgresUrl === undefined
      ? { kind: 'sqlite', path: join(options.dataDir, 'cloud.db') }
      : { kind: 'postgres', url: options.postgresUrl },
  );
  const closers: (() => Promise<void>)[] = [() => store.close()];
  const closeAll = async (): Promise<void> => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    const broker = await startBroker({
      passwordRecord: async (user) =>
        user === BRIDGE_USERNAME
          ? bridgeRecord
          : user === HOME_ASSISTANT_USERNAME
            ? homeAssistantRecord
            : ((await store.getLock(user))?.passwordHash ?? undefined),
      persistence:
        options.brokerPersistence ??
        (options.redisUrl !== undefined
          ? { kind: 'redis', url: options.redisUrl }
          : { kind: 'level', path: join(options.dataDir, 'broker') }),
      ...(options.redisUrl === undefined ? {} : { redisEmitterUrl: options.redisUrl }),
      tcp: options.mqtt ?? { port: 1883 },
      ...(options.mqtts === undefined ? {} : { tls: options.mqtts }),
      ...(options.ws === undefined ? {} : { ws: options.ws }),
      ...(options.lockRate === undefined ? {} : { lockRate: options.lockRate }),
      log,
    });
    closers.push(() => broker.close());
    const mqttUrl = `mqtt://127.0.0.1:${broker.ports.tcp}`;
    // Every event the bridge stores is published here; the API's server-sent events follow it.
    const feed = new EventFeed(store);
    const bridge = await Bridge.start({
      url: mqttUrl,
      password: bridgePassword,
      store,
      issuer,
      keyring,
      log,
      feed,
      // [TANDEM-HA-2]: the owner's remote-locking choice, as stored (PATCH /locks/{id}).
      homeAssistant: { settings: (lockId) => store.getLockSettings(lockId) },
      ...(options.beaconIntervalMs === undefined ? {} : { beaconIntervalMs: options.beaconIntervalMs }),
      ...(options.partition === undefined ? {} : { partition: options.partition }),
    });
    closers.push(() => bridge.close());
    // An overlap that ended while the cloud was down ends now: new key current, retained messages re-signed.
    await bridge.advanceKeys();
    const admin = await startAdmin({ port: options.adminPort ?? 0, token: adminToken, store, bridge, log });
    closers.push(() => admin.close());
    writeFileSync(join(options.dataDir, 'admin.port'), `${admin.port}\n`);
    const keyTimer = setInterval(() => {
      bridge
        .advanceKeys()
        .catch((e: unknown) =>
          log({ level: 'warn', source: 'cloud', event: 'key rotation failed', reason: String(e) }),
        );
    }, options.keyCheckIntervalMs ?? 60_000);
    keyTimer.unref();
    closers.push(() => Promise.resolve(clearInterval(keyTimer)));
    let web: { httpUrl: string; issuerUrl: string; oidc: TandemOidc } | undefined;
    if (options.http !== undefined) {
      const host = options.http.host ?? '127.0.0.1';
      // The issuer URL needs the port, and the provider needs the issuer URL: listen first, route after.
      const route: { handler?: (req: IncomingMessage, res: ServerResponse) => void } = {};
      const server: Server = createServer((req, res) => {
        if (route.handler === undefined) {
          res.writeHead(503).end();
          return;
        }
        route.handler(req, res);
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', (e) =>
          reject(
            new CloudError(
              'ERR_CLOUD_CONFIG',
              `cannot listen on ${host}:${options.http!.port}: ${e.message}`,
            ),
          ),
        );
        server.listen(options.http!.port, host, resolve);
      });
      closers.push(
        () =>
          new Promise<void>((resolve) => {
            server.closeAllConnections();
            server.close(() => resolve());
          }),
      );
      const port = (server.address() as AddressInfo).port;
      const hostInUrl = host.includes(':') ? `[${host}]` : host;
      const httpUrl = `http://${hostInUrl}:${port}`;
      if (options.http.issuerUrl === undefined && !isLoopback(host)) {
        throw new CloudError(
          'ERR_CLOUD_CONFIG',
          `listening on ${host}, the OpenID issuer must be https: give its public URL (http.issuerUrl)`,
        );
      }
      const issuerUrl = options.http.issuerUrl ?? httpUrl;
      const oidc = await createOidcProvider({
        issuer: issuerUrl,
        accounts: store,
        delegations: store,
        // Delegated tokens are signed by the same issuer key as revocations and beacons, under the kid and the
        // issuer name the locks' issuer anchor carries ([TANDEM-CHAIN-4]).
        // Read at each signing, so that tokens follow a rotation ([TANDEM-ANCHOR-7]).
        issuerKey: {
          id: options.issuerId ?? DEFAULT_ISSUER_ID,
          get kid() {
            return issuer.kid;
          },
          get key() {
            return issuer.key;
          },
        },
        // The dashboard's client (code + PKCE) exists only where a dashboard is mounted.
        clients: tandemClients(
          [...(options.appRedirectUris ?? [])],
          options.dashboardHandler === undefined ? [] : [dashboardRedirectUri(issuerUrl)],
        ),
        cookieKeys: [loadOrCreateSecret(join(options.dataDir, 'oidc.cookie-key'))],
        jwks: await loadOrCreateJwks(join(options.dataDir, 'oidc.jwks.json')),
        adapter: store.oidcAdapter(),
        ...options.oidc,
      });
      // A phone's uploads go through the bridge's own ingestor (the MQTT path's checks); an acknowledgement
      // they move forward is published retained for the lock's MQTT link too.
      const sync = new SyncService({
        store,
        ingestor: bridge.ingestor,
        issuer,
        onAck: (a) => bridge.publishAck(a),
        // [TANDEM-SYNC-5]: a rotated anchor reaches locks offline from MQTT through a phone.
        anchors: keyring,
      });
      const api = createApiHandler({
        store,
        auth: oidcAuth(oidc),
        revoker: { revokeEntries: (lockId, entries) => bridge.revokeEntries(lockId, entries) },
        ...(options.verifyClaim === undefined ? {} : { verifyClaim: options.verifyClaim }),
        sync: syncJsonHandler(sync),
        events: eventStreamHandler(feed),
        anchorVersion: () => keyring.anchorVersion,
        lockSettingsChanged: (lockId) => bridge.homeAssistant?.settingsChanged(lockId),
        ...options.api,
        log,
      });
      const mounted = (path: string, prefix: string): boolean =>
        path === prefix || path.startsWith(`${prefix}/`);
      route.handler = (req, res) => {
        const path = (req.url ?? '/').split('?')[0]!;
        if (mounted(path, API_PREFIX)) api(req, res);
        else if (mounted(path, '/dashboard')) {
          if (options.dashboardHandler !== undefined) options.dashboardHandler(req, res);
          else res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('no dashboard here\n');
        } else oidc.handler(req, res);
      };
      web = { httpUrl, issuerUrl, oidc };
    }
    return {
      store,
      broker,
      bridge,
      issuer,
      keyring,
      adminPort: admin.port,
      adminToken,
      mqttUrl,
      ...(web ?? {}),
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/**
 * Writes Mosquitto's `passwd` (every registered lock's `$7$` record and the bridge's) and `acl` into
 * `dir`, for running Mosquitto in aedes' place with cloud-bridge/mosquitto/mosquitto.conf.
 */
export async function writeMosquittoFiles(
  store: SqlCloudStore,
  bridgeRecord: string,
  dir: string,
  /** Home Assistant's `$7$` record ([TANDEM-HA-4]); without it Home Assistant cannot log in. */
  homeAssistantRecord?: string,
): Promise<{ passwd: string; acl: string }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const locks = await store.listLocks();
  const passwd = mosquittoPasswordFile([
    [BRIDGE_USERNAME, bridgeRecord],
    ...(homeAssistantRecord === undefined ? [] : [[HOME_ASSISTANT_USERNAME, homeAssistantRecord] as const]),
    ...locks.filter((l) => l.passwordHash !== null).map((l) => [l.lockId, l.passwordHash!] as const),
  ]);
  const acl = mosquittoAcl();
  writeFileSync(join(dir, 'passwd'), passwd, { mode: 0o600 });
  writeFileSync(join(dir, 'acl'), acl, { mode: 0o644 });
  return { passwd: join(dir, 'passwd'), acl: join(dir, 'acl') };
}
