/**
 * The phone-side client (gateway/src/lock-client.ts) over real noble, against the bleno fixture lock
 * (gateway/test/fixtures/fixture-lock.ts, a protocol-level verifier), both on one virtual radio in this
 * process with a virtual clock: a 27-byte link layer (Pi Zero W), a 30 ms connection interval, and the
 * client's own timeouts on the same modelled time, so every case is deterministic and bounded.
 * One bleno per process: this file owns device 0 (lock); phones are devices 1 and 2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  VirtualClock,
  VirtualRadio,
  installVirtualHci,
  loadBleno,
} from '../../hardware/src/virtual-radio/index.js';
import { MessageType, Reassembler, decodeResult, frameMessage } from '../../protocol/src/gatt.js';
import { Command } from '../../protocol/src/pop.js';
import { Status } from '../../protocol/src/status.js';
import { GatewayError } from '../src/errors.js';
import { InMemoryChainRefs, LockClient } from '../src/lock-client.js';
import type { LockClientOptions } from '../src/lock-client.js';
import { NobleTransport } from '../src/noble-transport.js';
import { startFixtureLock } from './fixtures/fixture-lock.js';
import type { FixtureLock } from './fixtures/fixture-lock.js';
import { NOW, RecordingTransport, clockTimers, tokenWorld } from './helpers.js';

const LOCK_ID = 'lock-7f3a';
const clock = new VirtualClock({ autoAdvance: true });
const radio = new VirtualRadio({ clock, linkLayerPayload: 27, connectionIntervalMs: 30, seed: 11 });
installVirtualHci(radio);
const bleno = loadBleno({ deviceId: 0 });
const timers = clockTimers(clock);
const phone1 = new RecordingTransport(
  new NobleTransport({ binding: { kind: 'virtual', deviceId: 1 }, timers }),
);
const phone2 = new RecordingTransport(
  new NobleTransport({ binding: { kind: 'virtual', deviceId: 2 }, timers }),
);
const world = tokenWorld();
const bianca = world.rider(LOCK_ID);
let lock: FixtureLock;

function client(transport: RecordingTransport, over: Partial<LockClientOptions> = {}): LockClient {
  return new LockClient({
    transport,
    timers,
    scanTimeoutMs: 5_000,
    responseTimeoutMs: 3_000,
    relayIdleMs: 300,
    chainRefs: new InMemoryChainRefs(),
    ...over,
  });
}

beforeAll(async () => {
  lock = await startFixtureLock(bleno, { lockId: LOCK_ID, anchors: world.anchors, now: () => NOW });
});

afterAll(async () => {
  await phone1.close();
  await phone2.close();
  radio.close();
});

function reset(): void {
  radio.configure({ attMtuCap: 517, lossRate: 0, latencyMs: 0 });
  radio.setInRange(1, true);
  lock.state = 'locked';
  phone1.reset();
  phone2.reset();
  phone1.afterWrite = undefined;
}

describe('LockClient.unlock over noble and bleno (virtual radio, 27-byte link layer)', () => {
  // With no cap (517, what Android 14 asks for) noble and bleno settle on 256: both stacks' own maximum.
  it.each([
    [23, 23, 17],
    [185, 185, 2],
    [517, 256, 2],
  ])(
    'unlocks under an ATT MTU cap of %i (MTU %i) in %i ATT writes, two GATT round trips',
    async (cap, mtu, frames) => {
      reset();
      radio.configure({ attMtuCap: cap });
      let linkMtu = 0;
      phone1.onConnected = (link) => (linkMtu = link.mtu);
      const acts = lock.acts.length;
      const outcome = await client(phone1).unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
      expect(outcome).toMatchObject({
        status: Status.OK,
        statusName: 'OK',
        meaning: 'accepted and done',
        state: 'unlocked',
        mayHaveActed: true,
        usedChainRef: false,
        requestFrames: frames,
      });
      expect(linkMtu).toBe(mtu);
      expect(lock.acts.length).toBe(acts + 1);
      expect(phone1.record.writesWithoutResponse).toBe(frames);
      expect(phone1.record.writesWithResponse).toBe(0);
      expect(phone1.record.roundTrips).toBe(2);
    },
  );

  it('repeats with a chainRef in one ATT write at MTU 185, and resends the full chain once on TOKEN_REF_UNKNOWN', async () => {
    reset();
    radio.configure({ attMtuCap: 185 });
    const c = client(phone1);
    await c.unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    phone1.reset();
    const repeat = await c.unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    expect(repeat).toMatchObject({ status: Status.OK, usedChainRef: true, requestFrames: 1 });
    expect(phone1.record.writesWithoutResponse).toBe(1);
    expect(phone1.record.roundTrips).toBe(2);

    lock.forgetChains();
    phone1.reset();
    const resent = await c.unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    expect(resent).toMatchObject({
      status: Status.OK,
      usedChainRef: false,
      resentFullChain: true,
      requestFrames: 2,
    });
    // The refused chainRef request, then the full chain answering the challenge notified after that result.
    expect(phone1.record.writesWithoutResponse).toBe(3);
    expect(phone1.record.reads).toBe(0);
    expect(lock.results.slice(-2)).toEqual([Status.TOKEN_REF_UNKNOWN, Status.OK]);
  });

  it('unlocks with 20 ms latency and 5 % packet loss', async () => {
    reset();
    radio.configure({ attMtuCap: 185, latencyMs: 20, lossRate: 0.05 });
    const outcome = await client(phone1).unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    expect(outcome.status).toBe(Status.OK);
    const info = radio.connections().at(-1)!;
    expect(info.pdusToPeripheral).toBeGreaterThan(0);
  });

  it('reports refusals as outcomes: an expired token (EXPIRED) and a token for another lock (WRONG_AUDIENCE)', async () => {
    reset();
    radio.configure({ attMtuCap: 185 });
    const acts = lock.acts.length;
    const expired = world.rider(LOCK_ID, { nbf: NOW - 7200, iat: NOW - 7200, exp: NOW - 3600 });
    const a = await client(phone1).unlock(LOCK_ID, { chain: expired.chain, holderKey: expired.key });
    expect(a).toMatchObject({
      status: Status.EXPIRED,
      statusName: 'EXPIRED',
      meaning: 'the token has expired',
      state: 'locked',
      mayHaveActed: false,
    });
    const other = world.rider('lock-other');
    const b = await client(phone1).unlock(LOCK_ID, { chain: other.chain, holderKey: other.key });
    expect(b).toMatchObject({
      status: Status.WRONG_AUDIENCE,
      statusName: 'WRONG_AUDIENCE',
      mayHaveActed: false,
    });
    expect(lock.acts.length).toBe(acts);
  });

  it('serves a second rider on another phone (second noble device)', async () => {
    reset();
    radio.configure({ attMtuCap: 185 });
    const carla = world.rider(LOCK_ID, { rider: 'carla' });
    const first = await client(phone1).unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    const locked = await client(phone2).lock(LOCK_ID, { chain: carla.chain, holderKey: carla.key });
    expect(first.status).toBe(Status.OK);
    expect(locked).toMatchObject({ status: Status.OK, state: 'locked', command: Command.LOCK });
    expect(radio.connections().at(-1)!.centralDevId).toBe(2);
  });

  it('reports a phone dropping out after the first frame as "may have acted", and unlockSafely then retries cleanly', async () => {
    reset();
    radio.configure({ attMtuCap: 23 });
    const acts = lock.acts.length;
    phone1.afterWrite = (name, index) => {
      if (name === 'request' && index === 0) radio.setInRange(1, false);
    };
    const c = client(phone1);
    const error = await c.unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key }).then(
      () => undefined,
      (e: unknown) => e,
    );
    // noble completes a write without response when the ATT PDU is queued to the controller, so the client
    // handed over all 17 frames before the link died: it cannot know the lock did not get them.
    expect(error).toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ code: 'ERR_GW_DISCONNECTED', mayHaveActed: true, temporary: false });
    expect(lock.acts.length).toBe(acts);

    phone1.afterWrite = undefined;
    radio.setInRange(1, true);
    const retry = await c.unlockSafely(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    expect(retry).toMatchObject({ status: Status.OK, recoveredBy: 'direct' });
    expect(lock.acts.length).toBe(acts + 1);
  });

  it('unlockSafely asks STATUS after a dropped link and resends the unlock when the lock is still locked', async () => {
    reset();
    radio.configure({ attMtuCap: 23 });
    const acts = lock.acts.length;
    let dropped = false;
    phone1.afterWrite = (name, index) => {
      if (name === 'request' && index === 0 && !dropped) {
        dropped = true;
        radio.setInRange(1, false);
        // Back in range after the link has timed out (noble's supervision timeout is 420 ms).
        clock.setTimeout(() => radio.setInRange(1, true), 2_000);
      }
    };
    const safe = await client(phone1, { scanTimeoutMs: 10_000 }).unlockSafely(LOCK_ID, {
      chain: bianca.chain,
      holderKey: bianca.key,
    });
    expect(safe).toMatchObject({ status: Status.OK, state: 'unlocked', recoveredBy: 'retry' });
    expect(lock.acts.length).toBe(acts + 1);
    expect(lock.results.slice(-2)).toEqual([Status.OK, Status.OK]);
  });

  it('refuses a replayed transcript of an earlier unlock with CHALLENGE_UNKNOWN, without acting', async () => {
    reset();
    radio.configure({ attMtuCap: 185 });
    await client(phone1).unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    const transcript = phone1.record.writes.filter((w) => w.name === 'request').map((w) => w.value);
    expect(transcript).toHaveLength(2);
    lock.state = 'locked';
    const acts = lock.acts.length;

    // An eavesdropper's replay on a new connection: subscribe (the lock sends a fresh challenge), then the
    // recorded frames verbatim.
    const found = await phone1.scan(LOCK_ID, { timeoutMs: 5_000 });
    const link = await phone1.connect(found, { timeoutMs: 5_000 });
    const reassembler = new Reassembler();
    const result = new Promise<Status>((resolve) => {
      void link.subscribe('result', (v) => {
        const m = reassembler.push(v);
        if (m?.type === MessageType.result) resolve(decodeResult(m.body).status);
      });
    });
    for (const frame of transcript) await link.write('request', frame, true);
    expect(await result).toBe(Status.CHALLENGE_UNKNOWN);
    await link.disconnect();
    expect(lock.acts.length).toBe(acts);
    expect(lock.state).toBe('locked');
  });

  it('says the lock may have acted when the result is lost, and unlockSafely asks STATUS instead of unlocking twice', async () => {
    reset();
    radio.configure({ attMtuCap: 185 });
    const acts = lock.acts.length;
    lock.dropResults(1);
    const error = await client(phone1)
      .unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toMatchObject({ code: 'ERR_GW_TIMEOUT', mayHaveActed: true, temporary: false });
    expect(lock.acts.length).toBe(acts + 1);

    lock.state = 'locked';
    lock.dropResults(1);
    const safe = await client(phone1).unlockSafely(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    expect(safe).toMatchObject({
      status: Status.OK,
      state: 'unlocked',
      recoveredBy: 'status',
      mayHaveActed: true,
    });
    expect(lock.acts.length).toBe(acts + 2);
    expect(lock.acts.at(-1)!.command).toBe(Command.UNLOCK);
  });

  it('gives up with ERR_GW_LOCK_NOT_FOUND (temporary) when no lock carries the tag', async () => {
    reset();
    const error = await client(phone1, { scanTimeoutMs: 1_000 })
      .unlock('lock-absent', { chain: bianca.chain, holderKey: bianca.key })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toMatchObject({ code: 'ERR_GW_LOCK_NOT_FOUND', temporary: true, mayHaveActed: false });
  });
});

describe('LockClient deliveries and relay', () => {
  it('delivers a newer revocation update and a time beacon before the request when the challenge asks for them', async () => {
    reset();
    radio.configure({ attMtuCap: 185 });
    lock.revocationVersion = 3;
    lock.uncertainty = null;
    const update = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
    const beacon = Uint8Array.from({ length: 90 }, (_, i) => (i * 3) & 0xff);
    const c = client(phone1, {
      carry: {
        revocationUpdate: () => ({ version: 4, bytes: update }),
        timeBeacon: () => beacon,
      },
    });
    const outcome = await c.unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    expect(outcome.status).toBe(Status.OK);
    expect(outcome.delivered).toEqual([MessageType.revocationUpdate, MessageType.timeBeacon]);
    // Pipelined before the request without waiting ([TANDEM-GATT-14]): still two round trips.
    expect(phone1.record.roundTrips).toBe(2);
    expect(lock.deliveries.slice(-2).map((d) => d.type)).toEqual([
      MessageType.revocationUpdate,
      MessageType.timeBeacon,
    ]);
    expect(Buffer.from(lock.deliveries.at(-2)!.body)).toEqual(Buffer.from(update));

    // The lock now holds version 4 and a fresh time: nothing is delivered again.
    const again = await c.unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    expect(again.delivered).toEqual([]);
  });

  it('deliver() writes one message to the delivery characteristic and returns the answer', async () => {
    reset();
    radio.configure({ attMtuCap: 23 });
    const body = Uint8Array.from({ length: 40 }, (_, i) => i);
    const outcome = await client(phone1).deliver(LOCK_ID, MessageType.timeBeacon, body);
    expect(outcome).toMatchObject({ status: Status.OK, statusName: 'OK' });
    expect(phone1.record.writes.map((w) => w.name)).toEqual(['delivery', 'delivery', 'delivery']);
    expect(frameMessage(MessageType.timeBeacon, body, 23)).toHaveLength(3);
  });

  it('collectRelay() returns every queued record, framed across notifications at MTU 23', async () => {
    reset();
    radio.configure({ attMtuCap: 23 });
    lock.relayQueue = [
      { type: MessageType.alert, body: Uint8Array.from({ length: 120 }, (_, i) => i) },
      { type: MessageType.auditRecord, body: Uint8Array.from({ length: 60 }, (_, i) => 255 - i) },
      { type: MessageType.lockState, body: Uint8Array.of(1, 2, 3) },
    ];
    const items = await client(phone1).collectRelay(LOCK_ID);
    expect(items.map((i) => i.typeName)).toEqual(['alert', 'auditRecord', 'lockState']);
    expect(items.map((i) => Buffer.from(i.bytes))).toEqual(lock.relayQueue.map((q) => Buffer.from(q.body)));
  });
});
