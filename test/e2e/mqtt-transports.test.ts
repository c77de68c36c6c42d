/**
 * The embedded broker on its three transports (issue 9, §1): TCP (the other suites), TLS and WebSocket, each
 * with the same authentication ([TANDEM-MQTT-13]).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../cloud-bridge/src/broker.js';
import { startBroker } from '../../cloud-bridge/src/broker.js';
import { generatePassword, hashPassword } from '../../cloud-bridge/src/credentials.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-tls-'));
const password = generatePassword();
const record = hashPassword(password);
let broker: Broker;
let opensslMissing: string | undefined;

beforeAll(async () => {
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'pipe' },
    );
  } catch {
    opensslMissing = 'openssl not installed';
  }
  broker = await startBroker({
    passwordRecord: (u) => Promise.resolve(u === 'lock-t' ? record : undefined),
    persistence: { kind: 'memory' },
    ws: { port: 0 },
    ...(opensslMissing === undefined
      ? {
          tls: {
            port: 0,
            key: readFileSync(join(dir, 'key.pem')),
            cert: readFileSync(join(dir, 'cert.pem')),
          },
        }
      : {}),
    log: () => undefined,
  });
});
afterAll(async () => {
  await broker?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('broker transports', () => {
  it('takes MQTT over WebSocket with the lock credential and refuses a wrong one', async () => {
    const url = `ws://127.0.0.1:${broker.ports.ws}/mqtt`;
    const c = await mqtt.connectAsync(url, { username: 'lock-t', password, reconnectPeriod: 0 });
    const granted = await c.subscribeAsync('tandem/v1/time', { qos: 1 });
    expect(granted[0]?.qos).toBe(1);
    await c.endAsync();
    await expect(
      mqtt.connectAsync(url, { username: 'lock-t', password: 'wrong', reconnectPeriod: 0 }),
    ).rejects.toThrow(/Bad username or password/i);
  });

  it.skipIf(opensslMissing !== undefined)(
    'takes MQTT over TLS, the certificate checked by the client',
    async () => {
      const c = await mqtt.connectAsync(`mqtts://127.0.0.1:${broker.ports.tls}`, {
        username: 'lock-t',
        password,
        ca: readFileSync(join(dir, 'cert.pem')),
        servername: '127.0.0.1',
        rejectUnauthorized: true,
        reconnectPeriod: 0,
      });
      expect(c.connected).toBe(true);
      await c.endAsync();
    },
  );
});
