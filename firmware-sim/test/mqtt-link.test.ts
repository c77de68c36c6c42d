// The lock's MQTT link over real sockets on 127.0.0.1, against an embedded aedes broker and a test-only cloud
// (mqtt-fixture.ts): revocation, outbox delivery through broker restarts and reboots, catching up after days
// offline, refusal of bad payloads, and BLE unlocks that never wait on the link.
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from 'mqtt';
import type { MqttClient } from 'mqtt';
import { ManualClock } from '../../hardware/src/clock.js';
import { encodeAlert, encodeOutboxAck, topicFor } from '../../protocol/src/mqtt.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { encodeRevocationUpdate } from '../../protocol/src/revocation.js';
import { Status } from '../../protocol/src/status.js';
import { encodeTimeBeacon } from '../../protocol/src/time-beacon.js';
import type { LockMqttClient } from '../src/mqtt/lock-mqtt-client.js';
import type { LockMqttClientOptions } from '../src/mqtt/lock-mqtt-client.js';
import { LOCK, NOW, makeLock } from './lock-harness.js';
import type { Lock } from './lock-harness.js';
import { TestBroker, TestCloud, freePort, lockMqttClient, waitFor } from './mqtt-fixture.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
});

function link(lock: Lock, url: string, over: Partial<LockMqttClientOptions> = {}): LockMqttClient {
  const client = lockMqttClient(lock, url, 'not checked by the test broker', { resendAfterMs: 300, ...over });
  cleanup.push(() => client.stop(200));
  return client;
}

async function cloudFor(lock: Lock, url: string, now = () => NOW): Promise<TestCloud> {
  const cloud = await TestCloud.connect(url, {
    lockId: LOCK,
    deviceKey: lock.device.publicKey,
    issuer: lock.w.issuer,
    issuerKid: lock.w.issuerKid,
    now,
  });
  cleanup.push(() => cloud.close());
  return cloud;
}

async function broker(port?: number): Promise<TestBroker> {
  const b = await TestBroker.start(port);
  cleanup.push(() => b.kill());
  return b;
}

function queueAlert(lock: Lock): Promise<number> {
  return lock.stores.outbox.enqueueWith('alert', (sequence, epoch) =>
    encodeAlert({ lockId: LOCK, sequence, epoch, time: NOW, kind: 'moved', detail: new Map() }, lock.device),
  );
}

describe('LockMqttClient', () => {
  it('revoke: the lock refuses the token after one delivery and publishes the signed ack, retained', async () => {
    const b = await broker();
    const lock = await makeLock();
    const cloud = await cloudFor(lock, b.url);
    const client = link(lock, b.url);
    const applied: Status[] = [];
    client.on('applied', (e) => e.kind === 'revocation' && applied.push(e.status));
    await client.start();
    await waitFor(() => client.status().link === 'up', 'the link');
    await waitFor(() => cloud.states.length > 0, 'the lock state');
    expect(cloud.states[0]).toMatchObject({ lockId: LOCK, state: 'locked', revocationVersion: 0 });

    const cti = new Uint8Array(12).fill(7);
    const token = lock.token({ cti });
    cloud.revoke(1, [{ id: cti, exp: NOW + 86_400 }]);
    await waitFor(() => cloud.revocationAcks.includes(1), 'the revocation ack');
    expect(applied).toEqual([Status.OK]);
    expect(lock.stores.revocations.version).toBe(1);

    const r = await lock.send(lock.request({ chain: [token] }));
    expect(r.status).toBe(Status.REVOKED);
    expect(lock.pulses).toHaveLength(0);

    // The ack is retained: a bridge that starts later still sees the version landed.
    const late = await cloudFor(lock, b.url);
    await waitFor(() => late.revocationAcks.includes(1), 'the retained ack');
    await waitFor(() => cloud.states.some((s) => s !== 'offline' && s.revocationVersion === 1), 'new state');
    expect(cloud.invalid).toEqual([]);
  });

  it('battery ([TANDEM-MQTT-14]): absent without a reading, signed when there is one, republished on a change', async () => {
    const b = await broker();
    const lock = await makeLock();
    const cloud = await cloudFor(lock, b.url);
    let level: number | undefined = undefined;
    const client = link(lock, b.url, { battery: () => level });
    await client.start();
    await waitFor(() => cloud.states.length > 0, 'the lock state');
    const reports = () => cloud.states.filter((s) => s !== 'offline');
    expect(reports()[0]).not.toHaveProperty('battery');
    level = 87;
    client.kick();
    await waitFor(() => reports().some((s) => s.battery === 87), 'the state with the battery');
    level = 12;
    await waitFor(() => reports().some((s) => s.battery === 12), 'the state after the level changed');
    level = undefined;
    await waitFor(() => reports().at(-1)!.battery === undefined, 'the state without a reading');
    // Every one verified with the device key by the test cloud; nothing refused.
    expect(cloud.invalid).toEqual([]);
  });

  it('the broker is killed and restarted while alerts flow: every alert arrives, acked records leave', async () => {
    const b = await broker();
    const lock = await makeLock();
    const cloud = await cloudFor(lock, b.url);
    const client = link(lock, b.url);
    await client.start();
    await waitFor(() => client.status().link === 'up', 'the link');
    const sequences: number[] = [];
    for (let i = 0; i < 10; i++) sequences.push(await queueAlert(lock));
    client.kick();
    await waitFor(() => cloud.holdsThrough(lock.stores.outbox.epoch, 5), 'some alerts');
    await b.kill();
    for (let i = 0; i < 10; i++) sequences.push(await queueAlert(lock));
    await waitFor(() => client.status().link !== 'up', 'the link to drop');
    expect(lock.stores.outbox.size).toBeGreaterThan(0);
    await b.restart();
    for (let i = 0; i < 10; i++) sequences.push(await queueAlert(lock));
    const epoch = lock.stores.outbox.epoch;
    await waitFor(() => lock.stores.outbox.size === 0, 'the outbox to drain');
    expect(cloud.holdsThrough(epoch, lock.stores.outbox.lastSeq)).toBe(true);
    const alerts = new Set(cloud.records.filter((r) => r.kind === 'alert').map((r) => r.sequence));
    expect(sequences.filter((s) => !alerts.has(s))).toEqual([]);
    expect(lock.stores.outbox.ackedThrough).toBe(lock.stores.outbox.lastSeq);
    expect(client.status().connects).toBeGreaterThanOrEqual(2);
    // The broker published the lock's will when the link died unannounced? No: a killed broker publishes
    // nothing; the retained state came back at the reconnection.
    await waitFor(() => cloud.states.filter((s) => s !== 'offline').length >= 2, 'state after reconnecting');
    expect(cloud.invalid).toEqual([]);
  });

  it('a record leaves the outbox only with the issuer-signed ack for its epoch', async () => {
    const b = await broker();
    const lock = await makeLock();
    const cloud = await TestCloud.connect(b.url, {
      lockId: LOCK,
      deviceKey: lock.device.publicKey,
      issuer: lock.w.issuer,
      issuerKid: lock.w.issuerKid,
      now: () => NOW,
      autoAck: false,
    });
    cleanup.push(() => cloud.close());
    const client = link(lock, b.url);
    const refused: string[] = [];
    client.on('refused', (r) => refused.push(r));
    await client.start();
    const seq = await queueAlert(lock);
    client.kick();
    await waitFor(() => cloud.records.some((r) => r.sequence === seq), 'the alert');
    const epoch = lock.stores.outbox.epoch;
    const acked = lock.stores.outbox.ackedThrough;
    const ackTopic = topicFor('outbox-ack', LOCK);
    const forger = generateKeyPair('EdDSA');
    await cloud.publishRaw(
      ackTopic,
      encodeOutboxAck({ lockId: LOCK, sequence: seq, epoch }, forger, lock.w.issuerKid),
    );
    await cloud.publishRaw(
      ackTopic,
      encodeOutboxAck(
        { lockId: LOCK, sequence: seq, epoch: epoch === 1 ? 2 : epoch - 1 },
        lock.w.issuer,
        lock.w.issuerKid,
      ),
    );
    await cloud.publishRaw(
      ackTopic,
      encodeOutboxAck({ lockId: LOCK, sequence: seq + 50, epoch }, lock.w.issuer, lock.w.issuerKid),
    );
    await waitFor(() => refused.length >= 3, 'three refusals');
    expect(refused.slice(0, 3)).toEqual([
      'outbox ack refused: BAD_SIGNATURE',
      'outbox ack refused: ACK_MISMATCH',
      'outbox ack refused: ACK_MISMATCH',
    ]);
    expect(lock.stores.outbox.ackedThrough).toBe(acked);
    expect(lock.stores.outbox.peek(100).some((e) => e.seq === seq)).toBe(true);
    await cloud.publishRaw(
      ackTopic,
      encodeOutboxAck({ lockId: LOCK, sequence: seq, epoch }, lock.w.issuer, lock.w.issuerKid),
    );
    await waitFor(() => lock.stores.outbox.ackedThrough === seq, 'the genuine ack');
  });

  it('records survive a reboot of the lock while offline and reach the cloud after it', async () => {
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}`;
    const first = await makeLock();
    const client = link(first, url);
    await client.start();
    const queued = [await queueAlert(first), await queueAlert(first), await queueAlert(first)];
    const epoch = first.stores.outbox.epoch;
    await client.stop(50);
    first.fs.powerCut();
    const second = await makeLock({ fs: first.fs.reboot(), world: first.w, device: first.device });
    expect(second.stores.outbox.epoch).toBe(epoch);
    const b = await broker(port);
    const cloud = await cloudFor(second, b.url);
    const again = link(second, url);
    await again.start();
    await waitFor(() => second.stores.outbox.size === 0, 'the outbox to drain');
    expect(queued.every((s) => cloud.held.get(epoch)?.has(s))).toBe(true);
  });

  it('a lock offline for days reconnects and catches up: revocation, time, outbox', async () => {
    const port = await freePort();
    const lock = await makeLock();
    const client = link(lock, `mqtt://127.0.0.1:${port}`, { uncertaintyBoundS: 60 });
    await client.start();
    await waitFor(() => client.status().attempt >= 2, 'a few refused connections');
    const days = 3;
    lock.clock.advance(days * 86_400_000);
    await queueAlert(lock);
    // 200 ppm drift over three days: the bound has widened past the configured 60 s.
    expect(lock.authority.snapshot().uncertainty).toBeGreaterThan(60);

    const b = await broker(port);
    const later = NOW + days * 86_400;
    const cloud = await cloudFor(lock, b.url, () => later);
    const cti = new Uint8Array(12).fill(9);
    cloud.revoke(4, [{ id: cti, exp: later + 86_400 }]);
    // The broadcast beacon is retained and only raises the floor ([TANDEM-TIME-5]).
    cloud.publishRetained(
      topicFor('time'),
      encodeTimeBeacon({ time: later, accuracy: 1 }, lock.w.issuer, lock.w.issuerKid),
    );

    await waitFor(() => lock.stores.outbox.size === 0, 'the outbox to drain');
    await waitFor(() => cloud.revocationAcks.includes(4), 'the revocation ack');
    await waitFor(() => (lock.authority.snapshot().uncertainty ?? Infinity) <= 60, 'a nonce-bound beacon');
    expect(cloud.timeRequests.length).toBeGreaterThanOrEqual(1);
    expect(lock.authority.snapshot().time.earliest).toBeGreaterThanOrEqual(later - 1);
    const r = await lock.send(
      lock.request({ chain: [lock.token({ cti, exp: later + 3600, schedule: undefined })] }),
    );
    expect(r.status).toBe(Status.REVOKED);
    expect(cloud.invalid).toEqual([]);
  });

  it('bad payloads on subscribed topics are refused and logged without disturbing the lock', async () => {
    const b = await broker();
    const lock = await makeLock();
    const cloud = await cloudFor(lock, b.url);
    const client = link(lock, b.url);
    const refused: string[] = [];
    client.on('refused', (r) => refused.push(r));
    await client.start();
    await waitFor(() => client.status().link === 'up', 'the link');
    await waitFor(() => cloud.timeRequests.length > 0, 'the first time request');
    const bound = lock.authority.snapshot().time;
    const revTopic = topicFor('revocation', LOCK);
    const forger = generateKeyPair('EdDSA');
    const update = (o: { lockId?: string; key?: typeof forger; version?: number }) =>
      encodeRevocationUpdate(
        {
          kind: 'full',
          version: o.version ?? 5,
          issuedAt: NOW,
          lockId: o.lockId ?? LOCK,
          added: [{ id: new Uint8Array(12).fill(1), exp: NOW + 86_400 }],
          removed: [],
        },
        o.key ?? lock.w.issuer,
        lock.w.issuerKid,
      );
    const bad: [string, Uint8Array][] = [
      [revTopic, new TextEncoder().encode('not cbor at all')],
      [revTopic, update({ key: forger })],
      [revTopic, update({ lockId: 'lock-other' })],
      [revTopic, new Uint8Array(500 * 1024)],
      [topicFor('beacon', LOCK), Uint8Array.of(0xd2, 0x84)],
      [topicFor('time'), encodeTimeBeacon({ time: NOW + 999_999, accuracy: 1 }, forger, lock.w.issuerKid)],
      [
        topicFor('beacon', LOCK),
        encodeTimeBeacon({ time: NOW, lockId: 'lock-other', accuracy: 1 }, lock.w.issuer, lock.w.issuerKid),
      ],
      [topicFor('outbox-ack', LOCK), Uint8Array.of(1, 2, 3)],
    ];
    // Enough garbage to trip the lock's global refusal cap (40 a minute) if it reached the authority.
    for (let round = 0; round < 6; round++) for (const [t, p] of bad) await cloud.publishRaw(t, p);
    await waitFor(() => refused.length >= 6 * bad.length, 'every refusal');
    expect(refused.slice(0, bad.length).map((r) => r.replace(/:.*/, ''))).toEqual([
      'revocation update refused',
      'revocation update refused',
      'revocation update refused',
      'revocation update refused',
      'time beacon refused',
      'time beacon refused',
      'time beacon refused',
      'outbox ack refused',
    ]);
    expect(refused[1]).toMatch(/signature/i);
    expect(refused[2]).toMatch(/lock-other|audience/i);
    expect(client.status()).toMatchObject({ link: 'up', refused: 6 * bad.length });
    expect(lock.stores.revocations.version).toBe(0);
    expect(lock.authority.snapshot().time.earliest).toBeLessThanOrEqual(bound.latest);

    // The lock is undisturbed: a genuine update applies, and a rider unlocks.
    cloud.revoke(5, []);
    await waitFor(() => cloud.revocationAcks.includes(5), 'the genuine update');
    const r = await lock.send(lock.request({ chain: [lock.token()] }));
    expect(r.status).toBe(Status.OK);
    expect(lock.pulses).toHaveLength(1);
  });

  it('a BLE unlock completes while the broker is unreachable', async () => {
    const port = await freePort();
    const lock = await makeLock();
    const client = link(lock, `mqtt://127.0.0.1:${port}`);
    await client.start();
    await waitFor(() => client.status().attempt >= 1, 'a refused connection');
    await queueAlert(lock);
    const r = await lock.send(
      lock.request({ chain: [lock.token()], peer: 'AA:BB:CC:DD:EE:FF#1' }),
      'AA:BB:CC:DD:EE:FF#1',
    );
    expect(r.status).toBe(Status.OK);
    expect(lock.pulses).toHaveLength(1);
    expect(client.status().link).not.toBe('up');
    expect(client.status().lastError).toMatch(/ECONNREFUSED/);
  });

  it('asks for the time at connection, past the bound, again if unanswered, but not in a loop', async () => {
    const b = await broker();
    const lock = await makeLock();
    const cloud = await cloudFor(lock, b.url);
    const linkClock = new ManualClock(0);
    // Every time request the lock publishes, counted when it is handed to MQTT.js.
    const requests: number[] = [];
    const client = link(lock, b.url, {
      clock: linkClock,
      pollMs: 1000,
      uncertaintyBoundS: 60,
      timeRequestRetryMs: 30_000,
      timeRequestMinIntervalMs: 600_000,
      connect: (url, options) => {
        const c: MqttClient = connect(url, options);
        const publish = c.publish.bind(c) as (...a: unknown[]) => MqttClient;
        (c as unknown as { publish: (...a: unknown[]) => MqttClient }).publish = (...a) => {
          if (a[0] === topicFor('time-request', LOCK)) requests.push(linkClock.now());
          return publish(...a);
        };
        return c;
      },
    });
    const beacons: Status[] = [];
    client.on('applied', (e) => e.kind === 'beacon' && beacons.push(e.status));
    await client.start();
    await waitFor(() => beacons.length === 1, 'the answer to the request made at connection');
    expect(requests).toEqual([0]);
    expect(lock.authority.snapshot().uncertainty).toBeLessThanOrEqual(60);

    // Two days without a beacon: 200 ppm of drift on each end, 69 s more uncertainty, past the bound. The
    // answered request at connection holds the next one off for the minimum interval.
    lock.clock.advance(2 * 86_400_000);
    expect(lock.authority.snapshot().uncertainty).toBeGreaterThan(60);
    cloud.answerTime = 40; // a cloud whose own accuracy exceeds the bound: 80 s at best
    linkClock.advance(599_000);
    expect(requests).toEqual([0]);
    linkClock.advance(1000);
    expect(requests).toEqual([0, 600_000]);
    await waitFor(() => beacons.length === 2, 'the second answer');
    expect(lock.authority.snapshot().uncertainty).toBeGreaterThan(60);
    // Still past the bound, but answered: no request for another ten minutes, not one per poll.
    linkClock.advance(599_000);
    expect(requests).toEqual([0, 600_000]);
    cloud.answerTime = false;
    linkClock.advance(1000);
    expect(requests).toEqual([0, 600_000, 1_200_000]);
    // Unanswered: asked again after the retry delay.
    linkClock.advance(29_000);
    expect(requests).toHaveLength(3);
    linkClock.advance(1000);
    expect(requests).toEqual([0, 600_000, 1_200_000, 1_230_000]);
  });

  it('asks for the time once per connection, after subscribing, however long the subscription takes', async () => {
    const b = await broker();
    // No time yet: every poll tick wants a beacon.
    const lock = await makeLock({ noBeacon: true });
    expect(lock.authority.snapshot().uncertainty).toBeNull();
    await cloudFor(lock, b.url);
    const linkClock = new ManualClock(0);
    const requests: number[] = [];
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    let subscribing = false;
    const client = link(lock, b.url, {
      clock: linkClock,
      pollMs: 1000,
      connect: (url, options) => {
        const c: MqttClient = connect(url, options);
        const publish = c.publish.bind(c) as (...a: unknown[]) => MqttClient;
        (c as unknown as { publish: (...a: unknown[]) => MqttClient }).publish = (...a) => {
          if (a[0] === topicFor('time-request', LOCK)) requests.push(linkClock.now());
          return publish(...a);
        };
        // A loaded broker: the SUBACK is late, and the link's poll ticks run meanwhile.
        const subscribe = c.subscribeAsync.bind(c);
        c.subscribeAsync = (async (...a: Parameters<typeof subscribe>) => {
          subscribing = true;
          await held;
          return subscribe(...a);
        }) as typeof c.subscribeAsync;
        return c;
      },
    });
    const beacons: Status[] = [];
    client.on('applied', (e) => e.kind === 'beacon' && beacons.push(e.status));
    await client.start();
    await waitFor(() => subscribing && client.status().link === 'up', 'the link up, subscribing');
    linkClock.advance(5000);
    expect(requests).toEqual([]);
    release();
    await waitFor(() => beacons.length === 1, 'the answer to the request made at connection');
    linkClock.advance(5000);
    expect(requests).toEqual([5000]);
    expect(beacons).toEqual([Status.OK]);
  });

  it('the will marks the lock offline when its link dies unannounced; the signed state returns after it', async () => {
    const b = await broker();
    const lock = await makeLock();
    const cloud = await cloudFor(lock, b.url);
    const clients: MqttClient[] = [];
    const client = link(lock, b.url, {
      restateAfterMs: 100,
      connect: (url, options) => {
        const c = connect(url, options);
        clients.push(c);
        return c;
      },
    });
    await client.start();
    await waitFor(() => cloud.states.length >= 1, 'the signed state');
    expect(cloud.states[0]).toMatchObject({ lockId: LOCK, state: 'locked' });
    // The network goes: the socket dies without a DISCONNECT, and the broker publishes the will. The lock
    // reconnects at once, so the will and the new state race; the state published again after the
    // connection settles comes after both ([TANDEM-MQTT-WILL]).
    clients[0]!.stream.destroy();
    const settled = () => {
      const offline = cloud.states.indexOf('offline', 1);
      return offline > 0 && cloud.states.slice(offline + 1).some((s) => s !== 'offline');
    };
    await waitFor(settled, 'the will, then a signed state');
    expect(cloud.states.at(-1)).toMatchObject({ lockId: LOCK, state: 'locked' });
    expect(clients.length).toBe(2);
    // A clean stop says the same as the will.
    const before = cloud.states.length;
    await client.stop(1000);
    await waitFor(() => cloud.states.length > before && cloud.states.at(-1) === 'offline', 'the clean stop');
    expect(cloud.invalid).toEqual([]);
  });
});
