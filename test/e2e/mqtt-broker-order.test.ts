/**
 * The embedded broker delivers every QoS 1 message a lock publishes to the connected bridge, whatever order
 * its LevelDB persistence finishes in (cloud-bridge/src/broker.ts, `deliverEveryPacket`). aedes 1.2 numbered
 * each message on arrival and dropped, per subscriber, one numbered lower than a message it had already
 * forwarded; a retained message waits for its LevelDB write, so a plain message published right after it
 * overtook it and the retained one never reached a connected subscriber. That is how a lock's signed
 * revocation acknowledgement ([TANDEM-REV-9], retained, published once per delivery) followed by its next
 * audit record was lost under load (issue 10, "Adam sees the revocation acknowledged").
 *
 * Both kinds of subscriber the cloud uses are checked: a clean session and a persistent one (the bridge's,
 * clean: false). Every wait is a bounded loop on what arrived.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../cloud-bridge/src/broker.js';
import { startBroker } from '../../cloud-bridge/src/broker.js';
import { BRIDGE_USERNAME, generatePassword, hashPassword } from '../../cloud-bridge/src/credentials.js';
import { topicFor } from '../../protocol/src/mqtt.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-broker-order-'));
const PAIRS = 50;
const passwords = { bridge: generatePassword(), lock: generatePassword() };
// One lock per case, so that no retained value is held when a case subscribes.
const records = new Map([
  [BRIDGE_USERNAME, hashPassword(passwords.bridge)],
  ['lock-c', hashPassword(passwords.lock)],
  ['lock-p', hashPassword(passwords.lock)],
]);
let broker: Broker;
let url: string;
const clients: MqttClient[] = [];

beforeAll(async () => {
  broker = await startBroker({
    passwordRecord: (u) => Promise.resolve(records.get(u)),
    persistence: { kind: 'level', path: join(dir, 'broker') },
    tcp: { port: 0 },
    // The pairs are a burst on purpose; the flood limit is not what this test is about.
    lockRate: { perSecond: 10_000, burst: 10_000 },
    log: () => undefined,
  });
  url = `mqtt://127.0.0.1:${broker.ports.tcp}`;
});

afterAll(async () => {
  for (const c of clients) await c.endAsync(true);
  await broker?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function connect(username: string, password: string, clean: boolean): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, {
    username,
    password,
    clientId: `${username}-${clean ? 'clean' : 'kept'}`,
    clean,
    reconnectPeriod: 0,
  });
  clients.push(c);
  return c;
}

async function until(check: () => boolean, steps = 1000): Promise<void> {
  for (let i = 0; i < steps && !check(); i++) await new Promise((r) => setTimeout(r, 10));
}

describe.each([
  { session: 'clean', clean: true, lockId: 'lock-c' },
  { session: 'persistent (the bridge)', clean: false, lockId: 'lock-p' },
])('a $session subscriber', ({ clean, lockId }) => {
  it('gets every retained revocation acknowledgement published right before an audit record', async () => {
    const bridge = await connect(BRIDGE_USERNAME, passwords.bridge, clean);
    const got = { ack: 0, audit: 0 };
    bridge.on('message', (topic) => {
      if (topic === topicFor('revocation-ack', lockId)) got.ack++;
      if (topic === topicFor('audit', lockId)) got.audit++;
    });
    await bridge.subscribeAsync([topicFor('revocation-ack', lockId), topicFor('audit', lockId)], { qos: 1 });
    const lock = await connect(lockId, passwords.lock, true);
    for (let i = 0; i < PAIRS; i++) {
      // As the lock does after applying an update: its acknowledgement, then (at once) its next record.
      lock.publish(topicFor('revocation-ack', lockId), Buffer.from(`ack ${i}`), { qos: 1, retain: true });
      lock.publish(topicFor('audit', lockId), Buffer.from(`audit ${i}`), { qos: 1 });
    }
    await until(() => got.audit >= PAIRS && got.ack >= PAIRS);
    expect(got.audit).toBe(PAIRS);
    expect(got.ack).toBe(PAIRS);
    await lock.endAsync();
    await bridge.endAsync();
  });
});
