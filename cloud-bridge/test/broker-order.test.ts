/**
 * The embedded broker with LevelDB persistence delivers every QoS 1 message of a burst from many publishers to
 * a persistent subscriber (the bridge's session), without a reconnection. aedes 1.2's per-client `dedupe`
 * dropped those that its persistence finished out of order (broker.ts `deliverEveryPacket`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { startBroker } from '../src/broker.js';
import type { Broker } from '../src/broker.js';
import { BRIDGE_USERNAME, generatePassword, hashPassword } from '../src/credentials.js';
import { until } from './fake-lock.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-broker-order-'));
const clients: MqttClient[] = [];
let broker: Broker | undefined;
afterAll(async () => {
  for (const c of clients) await c.endAsync(true);
  await broker?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('aedes with LevelDB persistence', () => {
  it('delivers all 1,000 QoS 1 messages of 100 locks to the persistent bridge session', async () => {
    const passwords = new Map<string, string>();
    const bridgePassword = generatePassword();
    passwords.set(BRIDGE_USERNAME, hashPassword(bridgePassword));
    const locks = Array.from({ length: 100 }, (_, i) => `lock-${i}`);
    const lockPassword = generatePassword();
    const lockRecord = hashPassword(lockPassword);
    for (const l of locks) passwords.set(l, lockRecord);
    broker = await startBroker({
      passwordRecord: (u) => Promise.resolve(passwords.get(u)),
      persistence: { kind: 'level', path: join(dir, 'broker') },
      tcp: { port: 0, host: '127.0.0.1' },
      log: () => undefined,
    });
    const url = `mqtt://127.0.0.1:${broker.ports.tcp}`;
    const bridge = await mqtt.connectAsync(url, {
      username: BRIDGE_USERNAME,
      password: bridgePassword,
      clientId: 'tandem-bridge-order',
      clean: false,
      reconnectPeriod: 0,
    });
    clients.push(bridge);
    let reconnections = 0;
    bridge.on('close', () => reconnections++);
    const seen = new Set<string>();
    bridge.on('message', (_t, payload) => seen.add(payload.toString()));
    await bridge.subscribeAsync('tandem/v1/lock/+/alert', { qos: 1 });
    const publishers = await Promise.all(
      locks.map((l) =>
        mqtt.connectAsync(url, { username: l, password: lockPassword, clientId: l, reconnectPeriod: 0 }),
      ),
    );
    clients.push(...publishers);
    publishers.forEach((p, i) => {
      for (let j = 0; j < 10; j++) p.publish(`tandem/v1/lock/${locks[i]}/alert`, `${i}-${j}`, { qos: 1 });
    });
    await until(() => seen.size === 1000, 'all 1,000 messages', 1_000);
    expect(seen.size).toBe(1000);
    expect(reconnections).toBe(0);
  }, 60_000);
});
