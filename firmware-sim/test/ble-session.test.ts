/**
 * The per-connection GATT session without bleno, on a manual clock: the limits that bound what one peer can
 * make the lock do (flood, refusals, operations, queue, outstanding bytes, idle and total time), and what
 * happens when the runtime misbehaves (throws, returns a result the wire cannot carry, offers bad relay items).
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../hardware/src/clock.js';
import type { Result } from '../../protocol/src/gatt.js';
import {
  MessageType,
  Reassembler,
  decodeChallenge,
  decodeResult,
  frameMessage,
} from '../../protocol/src/gatt.js';
import { Status } from '../../protocol/src/status.js';
import type { GattSessionLimits, NotifyingCharacteristic } from '../src/ble/gatt-session.js';
import { GattSession } from '../src/ble/gatt-session.js';
import { FakeBackend, LOCK_TIME, firstRequest } from './ble-fixture.js';

interface Harness {
  readonly session: GattSession;
  readonly clock: ManualClock;
  readonly backend: FakeBackend;
  readonly dropped: string[];
  messages(on: NotifyingCharacteristic): { type: number; body: Uint8Array }[];
  results(): Result[];
  frames: number[];
}

function harness(limits: Partial<GattSessionLimits> = {}, backend = new FakeBackend(), mtu = 185): Harness {
  const clock = new ManualClock(1_000);
  const dropped: string[] = [];
  const session = new GattSession({
    peer: 'aa:bb#1',
    backend,
    clock,
    limits,
    onDrop: (r) => dropped.push(r),
  });
  session.setMtu(mtu);
  const inbox = new Map<NotifyingCharacteristic, { type: number; body: Uint8Array }[]>();
  const frames: number[] = [];
  for (const c of ['result', 'challenge', 'relay'] as const) {
    inbox.set(c, []);
  }
  const h: Harness = {
    session,
    clock,
    backend,
    dropped,
    frames,
    messages: (on) => inbox.get(on)!,
    results: () =>
      inbox
        .get('result')!
        .filter((m) => m.type === MessageType.result)
        .map((m) => decodeResult(m.body)),
  };
  const subscribe = (c: NotifyingCharacteristic): void => {
    const r = new Reassembler();
    session.subscribe(c, (frame) => {
      frames.push(frame.length);
      const m = r.push(frame);
      if (m !== undefined) inbox.get(c)!.push(m);
    });
  };
  subscribe('result');
  return Object.assign(h, { subscribeRelay: () => subscribe('relay') });
}

async function settle(h: Harness): Promise<void> {
  await h.session.settled();
  await new Promise((resolve) => setImmediate(resolve));
}

describe('GattSession', () => {
  it('notifies a challenge on subscription and another after each request result (TANDEM-GATT-8)', async () => {
    const h = harness();
    const first = decodeChallenge(h.messages('result')[0]!.body);
    for (const f of frameMessage(MessageType.unlockRequest, firstRequest(first.nonce), 185))
      h.session.write('request', f);
    await settle(h);
    expect(h.messages('result').map((m) => m.type)).toEqual([
      MessageType.challenge,
      MessageType.result,
      MessageType.challenge,
    ]);
    expect(h.results()[0]!.status).toBe(Status.OK);
    expect(h.session.stats().challenges).toBe(2);
    // Every notification fits MTU - 3.
    expect(Math.max(...h.frames)).toBeLessThanOrEqual(182);
  });

  it('drops a peer that writes faster than the frame bucket refills, not one that writes a 4096-byte message at MTU 23', () => {
    const slow = harness({ frameBurst: 10, framesPerSecond: 5 }, new FakeBackend(), 23);
    // First frames of a 16-byte message, each abandoning the one before: frames, no message, no refusal.
    const frame = Uint8Array.of(0x80, MessageType.timeBeacon, 0x00, 0x10, 1);
    for (let i = 0; i < 10; i++) slow.session.write('delivery', frame);
    expect(slow.dropped).toEqual([]);
    slow.clock.advance(200); // one token back
    slow.session.write('delivery', frame);
    expect(slow.dropped).toEqual([]);
    slow.session.write('delivery', frame);
    expect(slow.dropped).toEqual(['flood']);
    expect(slow.session.closed).toBe(true);

    const big = harness({}, new FakeBackend(), 23);
    const frames = frameMessage(MessageType.revocationUpdate, new Uint8Array(4096).fill(7), 23);
    expect(frames.length).toBe(216);
    for (const f of frames) big.session.write('delivery', f);
    expect(big.dropped).toEqual([]);
    expect(big.session.stats().messages).toBe(1);
  });

  it('answers BUSY past the queue limit and drops a peer past the operation limit', async () => {
    const backend = new FakeBackend();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    backend.deliver = async (peer, type, body) => {
      await gate;
      return FakeBackend.prototype.deliver.call(backend, peer, type, body);
    };
    const h = harness({ maxQueuedMessages: 2, maxOperations: 6 }, backend);
    const beacon = (i: number): Uint8Array => Uint8Array.of(0xc0, MessageType.timeBeacon, 0x00, 0x01, i);
    h.session.write('delivery', beacon(1));
    h.session.write('delivery', beacon(2));
    h.session.write('delivery', beacon(3)); // queue full
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.results().map((r) => [r.status, r.answers])).toEqual([[Status.BUSY, MessageType.timeBeacon]]);
    release();
    await settle(h);
    expect(h.results().map((r) => r.status)).toEqual([Status.BUSY, Status.OK, Status.OK]);
    // Operations so far: the subscription's challenge and three messages; two more are allowed.
    h.session.write('delivery', beacon(4));
    h.session.write('delivery', beacon(5));
    expect(h.dropped).toEqual([]);
    h.session.write('delivery', beacon(6));
    expect(h.dropped).toEqual(['operations']);
  });

  it('refuses a message that would hold more than the outstanding-byte limit with BUSY', () => {
    const h = harness({ maxOutstandingBytes: 5000 });
    h.session.write('delivery', Uint8Array.of(0x80, MessageType.revocationUpdate, 0x0f, 0xa0, 1)); // 4000 declared
    h.session.write('request', Uint8Array.of(0x80, MessageType.unlockRequest, 0x04, 0x00, 1)); // +1024
    expect(h.results().map((r) => [r.status, r.answers])).toEqual([[Status.BUSY, MessageType.unlockRequest]]);
    expect(h.backend.requests.length).toBe(0);
  });

  it('answers FAULT when the runtime throws or returns a result the wire cannot carry, keeping the request fields', async () => {
    const backend = new FakeBackend();
    backend.handleRequest = async () => {
      throw new Error('store unavailable');
    };
    const h = harness({}, backend);
    const nonce = decodeChallenge(h.messages('result')[0]!.body).nonce;
    for (const f of frameMessage(MessageType.unlockRequest, firstRequest(nonce), 185))
      h.session.write('request', f);
    await settle(h);
    expect(h.results()[0]).toMatchObject({
      status: Status.FAULT,
      answers: MessageType.unlockRequest,
      command: 1,
      nonce,
    });
    expect(h.results()[0]!.lockTime).toBe(LOCK_TIME);

    backend.deliver = async () => ({
      status: 0x99 as Status,
      answers: MessageType.timeBeacon,
      state: 'locked',
      lockTime: 1,
    });
    h.session.write('delivery', Uint8Array.of(0xc0, MessageType.timeBeacon, 0x00, 0x01, 0));
    await settle(h);
    expect(h.results().at(-1)).toMatchObject({ status: Status.FAULT, answers: MessageType.timeBeacon });
  });

  it('notifies only valid relay items, at most maxRelayItems, framed with their type', async () => {
    const backend = new FakeBackend();
    backend.relay = [
      { type: MessageType.alert, body: new Uint8Array(10) },
      { type: MessageType.unlockRequest, body: new Uint8Array(10) }, // not a relay type
      { type: MessageType.auditRecord, body: new Uint8Array(5000) }, // over 4096
      { type: MessageType.lockState, body: new Uint8Array(3) },
      { type: MessageType.revocationAck, body: new Uint8Array(4) },
    ];
    const h = harness({ maxRelayItems: 4 }, backend) as Harness & { subscribeRelay(): void };
    h.subscribeRelay();
    await settle(h);
    expect(h.messages('relay').map((m) => [m.type, m.body.length])).toEqual([
      [MessageType.alert, 10],
      [MessageType.lockState, 3],
    ]);
  });

  it('counts relay records against the operation budget, so re-subscribing cannot replay the outbox forever', async () => {
    const backend = new FakeBackend();
    backend.relay = Array.from({ length: 10 }, (_, i) => ({
      type: MessageType.alert,
      body: Uint8Array.of(i),
    }));
    const h = harness({ maxOperations: 5 }, backend) as Harness & { subscribeRelay(): void };
    h.subscribeRelay(); // operations: the result subscription, this one, then 3 records
    await settle(h);
    expect(h.messages('relay').map((m) => m.body[0])).toEqual([0, 1, 2]);
    expect(h.dropped).toEqual([]);
    h.subscribeRelay();
    await settle(h);
    expect(h.dropped).toEqual(['operations']);
    expect(h.messages('relay').length).toBe(3);
  });

  it('drops a connection kept open longer than maxConnectionMs even while busy, and notifies nothing after close', async () => {
    const backend = new FakeBackend();
    const h = harness({ maxConnectionMs: 30_000, idleTimeoutMs: 10_000 }, backend);
    for (let i = 0; i < 5; i++) {
      h.clock.advance(5_000);
      h.session.write('delivery', Uint8Array.of(0xc0, MessageType.timeBeacon, 0x00, 0x01, 0));
      await settle(h);
    }
    h.clock.advance(4_999);
    expect(h.dropped).toEqual([]);
    h.clock.advance(1);
    expect(h.dropped).toEqual(['max-duration']);
    const before = h.messages('result').length;
    h.session.write('delivery', Uint8Array.of(0xc0, MessageType.timeBeacon, 0x00, 0x01, 0));
    expect(await h.session.read('lockInfo', 0)).toEqual({ ok: false, error: 'unavailable' });
    await settle(h);
    expect(h.messages('result').length).toBe(before);
    expect(backend.gone).toEqual(['aa:bb#1']);
  });

  it('names a refused message by its own type when the characteristic takes it, else by the first type', async () => {
    const h = harness();
    h.session.write('delivery', Uint8Array.of(0xc0, MessageType.revocationUpdate, 0x00, 0x01, 9));
    await settle(h);
    h.session.write('delivery', Uint8Array.of(0x80)); // a first frame without its type: not the last message's
    h.session.write('delivery', Uint8Array.of(0x80, MessageType.revocationUpdate, 0x00)); // short header
    h.session.write('relay', Uint8Array.of(0xc0, MessageType.alert, 0x00, 0x01, 0)); // not taken here
    await settle(h);
    expect(h.results().map((r) => [r.status, r.answers])).toEqual([
      [Status.OK, MessageType.revocationUpdate],
      [Status.MALFORMED, MessageType.timeBeacon],
      [Status.MALFORMED, MessageType.revocationUpdate],
      [Status.MALFORMED, MessageType.outboxAck],
    ]);
    expect(h.backend.deliveries.length).toBe(1);
  });

  it('keeps a read value for its blob reads and refuses offsets past it', async () => {
    const h = harness();
    const whole = await h.session.read('challenge', 0);
    if (!whole.ok) throw new Error('read failed');
    const tail = await h.session.read('challenge', 22);
    expect(tail.ok && Buffer.from(tail.data)).toEqual(Buffer.from(whole.data.subarray(22)));
    expect(await h.session.read('challenge', whole.data.length + 1)).toEqual({
      ok: false,
      error: 'invalid-offset',
    });
    expect(await h.session.read('lockInfo', 1)).toEqual({ ok: false, error: 'invalid-offset' });
  });
});
