/**
 * The cloud process on embedded defaults (`tandem cloud`): store, broker, bridge and admin channel, all in a
 * data directory:
 *
 * | file | what |
 * | --- | --- |
 * | `cloud.db` | SQLite store (unless a PostgreSQL URL is given) |
 * | `broker/` | aedes' LevelDB persistence: sessions, retained messages, QoS 1 in flight |
 * | `issuer.jwk.json` | the issuer's private key, mode 0600, created on first start |
 * | `issuer.pub.jwk.json` | its public JWK: the trust anchor locks are provisioned with |
 * | `bridge.password` | the bridge's MQTT password, mode 0600 |
 * | `admin.token` | the admin channel's bearer token, mode 0600 |
 * | `admin.port` | the port of the admin channel (the CLI reads it) |
 * | `mosquitto/` | `passwd` and `acl` for running Mosquitto in aedes' place ({@link writeMosquittoFiles}) |
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mosquittoAcl, mosquittoPasswordFile } from './acl.js';
import { startAdmin } from './admin.js';
import type { Broker, BrokerPersistence, ListenAddress } from './broker.js';
import { startBroker } from './broker.js';
import { Bridge } from './bridge.js';
import { BRIDGE_USERNAME, generatePassword, hashPassword } from './credentials.js';
import { CloudError } from './errors.js';
import type { Issuer } from './issuer.js';
import { loadOrCreateIssuer } from './issuer.js';
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
}

/** A running cloud. */
export interface Cloud {
  readonly store: SqlCloudStore;
  readonly broker: Broker;
  readonly bridge: Bridge;
  readonly issuer: Issuer;
  readonly adminPort: number;
  readonly adminToken: string;
  /** Broker URL the bridge uses (TCP). */
  readonly mqttUrl: string;
  close(): Promise<void>;
}

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
  const issuer = loadOrCreateIssuer(join(options.dataDir, 'issuer.jwk.json'));
  const bridgePassword = loadOrCreateSecret(join(options.dataDir, 'bridge.password'));
  const bridgeRecord = hashPassword(bridgePassword);
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
        user === BRIDGE_USERNAME ? bridgeRecord : ((await store.getLock(user))?.passwordHash ?? undefined),
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
    const bridge = await Bridge.start({
      url: mqttUrl,
      password: bridgePassword,
      store,
      issuer,
      log,
      ...(options.beaconIntervalMs === undefined ? {} : { beaconIntervalMs: options.beaconIntervalMs }),
      ...(options.partition === undefined ? {} : { partition: options.partition }),
    });
    closers.push(() => bridge.close());
    const admin = await startAdmin({ port: options.adminPort ?? 0, token: adminToken, store, bridge, log });
    closers.push(() => admin.close());
    writeFileSync(join(options.dataDir, 'admin.port'), `${admin.port}\n`);
    return { store, broker, bridge, issuer, adminPort: admin.port, adminToken, mqttUrl, close: closeAll };
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
): Promise<{ passwd: string; acl: string }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const locks = await store.listLocks();
  const passwd = mosquittoPasswordFile([
    [BRIDGE_USERNAME, bridgeRecord],
    ...locks.filter((l) => l.passwordHash !== null).map((l) => [l.lockId, l.passwordHash!] as const),
  ]);
  const acl = mosquittoAcl();
  writeFileSync(join(dir, 'passwd'), passwd, { mode: 0o600 });
  writeFileSync(join(dir, 'acl'), acl, { mode: 0o644 });
  return { passwd: join(dir, 'passwd'), acl: join(dir, 'acl') };
}
