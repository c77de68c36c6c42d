/**
 * The MQTT link as the lock runtime starts it: the configuration file's `mqtt` section, the password file
 * ([TANDEM-MQTT-13]) and TLS files read here, so that `lock-runtime.ts` only constructs, starts and stops it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../../../hardware/src/clock.js';
import type { PublicKey, PrivateKey } from '../../../protocol/src/keys.js';
import type { LockFileConfig } from '../config/lock-config.js';
import { loadOrCreateMqttPassword } from './credentials.js';
import { MqttLinkError } from './errors.js';
import { LockMqttClient } from './lock-mqtt-client.js';
import type { LockMqttClientOptions, MqttConnect } from './lock-mqtt-client.js';

/** Where the lock keeps its MQTT password: `mqtt.passwordFile`, by default `<dataDir>/mqtt-password`. */
export function mqttPasswordPath(config: LockFileConfig): string {
  return config.mqtt?.passwordFile ?? join(config.dataDir, 'mqtt-password');
}

/** What the runtime hands over. */
export interface LockMqttDeps {
  readonly config: LockFileConfig;
  readonly lockId: string;
  readonly authority: LockMqttClientOptions['authority'];
  readonly outbox: LockMqttClientOptions['outbox'];
  readonly issuerKey: (kid: Uint8Array) => PublicKey | undefined;
  readonly deviceKey: PrivateKey;
  readonly clock: Clock;
  readonly connect?: MqttConnect;
  readonly random?: (n: number) => Uint8Array;
  /** The fuel gauge's last reading ([TANDEM-MQTT-14]). */
  readonly battery?: () => number | undefined;
}

async function pem(path: string | undefined, what: string): Promise<Buffer | undefined> {
  if (path === undefined) return undefined;
  try {
    return await readFile(path);
  } catch (e) {
    throw new MqttLinkError('ERR_MQTT_TLS_FILE', `cannot read the ${what} file ${path}: ${String(e)}`, {
      cause: e,
    });
  }
}

/**
 * Builds and starts the link, or returns undefined when the configuration has no `mqtt` section. Throws an
 * {@link MqttLinkError} when the password or a TLS file is unusable (the runtime reports it and serves BLE on).
 */
export async function startLockMqtt(deps: LockMqttDeps): Promise<LockMqttClient | undefined> {
  const m = deps.config.mqtt;
  if (m === undefined) return undefined;
  const password = await loadOrCreateMqttPassword(mqttPasswordPath(deps.config), deps.random);
  const [ca, cert, key] = await Promise.all([
    pem(m.caFile, 'mqtt.caFile'),
    pem(m.certFile, 'mqtt.certFile'),
    pem(m.keyFile, 'mqtt.keyFile'),
  ]);
  const client = new LockMqttClient({
    lockId: deps.lockId,
    authority: deps.authority,
    outbox: deps.outbox,
    issuerKey: deps.issuerKey,
    deviceKey: deps.deviceKey,
    url: m.url,
    username: deps.lockId,
    password,
    tls: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) },
    clock: deps.clock,
    uncertaintyBoundS: m.uncertaintyBoundS,
    backoff: { initialMs: m.reconnectInitialMs, maxMs: m.reconnectMaxMs },
    keepaliveS: m.keepaliveS,
    ...(deps.connect ? { connect: deps.connect } : {}),
    ...(deps.battery ? { battery: deps.battery } : {}),
  });
  await client.start();
  return client;
}
