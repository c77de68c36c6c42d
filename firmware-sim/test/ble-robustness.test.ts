/**
 * A malicious or broken central against the lock's GATT service on the real bleno (virtual radio, virtual
 * clock): malformed and out-of-order frames, oversized declarations, abandoned transfers, disconnects
 * mid-message, floods, writes to the wrong characteristic, early subscriptions, reads at odd offsets and long
 * writes. None may crash the runtime, reach the runtime with a broken message, or keep the next rider out.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHARACTERISTIC,
  MessageType,
  compactUuid,
  decodeChallenge,
  frameMessage,
} from '../../protocol/src/gatt.js';
import { Status } from '../../protocol/src/status.js';
import { ATT, firstRequest, until, within, bleRig } from './ble-fixture.js';

const { clock, radio, tap, backend, lock, phone, bleno: currentBleno } = bleRig({ attMtuCap: 23, seed: 5 });
const drops: string[] = [];
lock.on('disconnect', (_peer, reason) => drops.push(reason));

beforeAll(async () => {
  await within('lock start', 15_000, lock.start());
});

afterAll(async () => {
  await phone.disconnect();
  await lock.stop();
});

/** The value handle bleno gave a characteristic (test-only look into bleno's handle table). */
function valueHandle(name: keyof typeof CHARACTERISTIC): number {
  const handles = (
    currentBleno() as unknown as {
      _bindings: {
        _gatt: { _handles: ({ type: string; uuid?: string; valueHandle?: number } | undefined)[] };
      };
    }
  )._bindings._gatt._handles;
  const entry = handles.find(
    (h) => h?.type === 'characteristic' && h.uuid === compactUuid(CHARACTERISTIC[name]),
  );
  if (entry?.valueHandle === undefined) throw new Error(`no handle for ${name}`);
  return entry.valueHandle;
}

/** Connects, subscribes to results and returns the first challenge's nonce. */
async function session(): Promise<Uint8Array> {
  await within('connect', 15_000, phone.connect());
  await within('subscribe', 15_000, phone.subscribe('result'));
  return (await within('challenge', 15_000, phone.challenge('result', 0))).nonce;
}

/** The lock's ATT responses to the phone since `mark`. */
function fromLock(mark: number, opcode: number): Buffer[] {
  return tap.log
    .slice(mark)
    .filter((p) => p.from === 'lock' && p.cid === 4 && p.pdu[0] === opcode)
    .map((p) => p.pdu);
}

describe('BlenoLockPeripheral against a malicious central', () => {
  it('answers malformed frames with MALFORMED and never calls the runtime (TANDEM-GATT-7)', async () => {
    const nonce = await session();
    const requests = backend.requests.length;
    const deliveries = backend.deliveries.length;
    await phone.writeFrames('request', [Uint8Array.of(0x01, 0xaa)]); // continuation without a first frame
    await phone.writeFrames('relay', [new Uint8Array(0)]); // empty frame
    await phone.writeFrames('request', frameMessage(MessageType.timeBeacon, new Uint8Array(8), 23)); // wrong type here
    await phone.writeFrames('delivery', [Uint8Array.of(0x80, 0x05, 0x00)]); // first frame shorter than its header
    const results = [
      await phone.result(0),
      await phone.result(1),
      await phone.result(2),
      await phone.result(3),
    ];
    expect(results.map((r) => [r.status, r.answers])).toEqual([
      [Status.MALFORMED, MessageType.unlockRequest],
      [Status.MALFORMED, MessageType.outboxAck],
      [Status.MALFORMED, MessageType.unlockRequest],
      [Status.MALFORMED, MessageType.timeBeacon],
    ]);
    expect(
      results.every((r) => r.command === undefined && r.nonce === undefined && r.state === 'locked'),
    ).toBe(true);
    expect(backend.requests.length).toBe(requests);
    expect(backend.deliveries.length).toBe(deliveries);
    // The connection still serves a well-formed request.
    await phone.send('request', MessageType.unlockRequest, firstRequest(nonce));
    expect((await phone.result(4)).status).toBe(Status.OK);
    expect(backend.requests.length).toBe(requests + 1);
    await phone.disconnect();
  });

  it('refuses a sequence gap and a repeated frame once each, ignores the rest of those messages', async () => {
    const nonce = await session();
    const frames = frameMessage(MessageType.unlockRequest, firstRequest(nonce), 23);
    expect(frames.length).toBe(17);
    await phone.writeFrames('request', [frames[0]!, frames[2]!, ...frames.slice(3)]); // frame 1 lost
    await phone.writeFrames('request', [frames[0]!, frames[1]!, frames[1]!, ...frames.slice(2)]); // frame 1 twice
    await phone.writeFrames('request', frames);
    expect((await phone.result(0)).status).toBe(Status.MALFORMED);
    expect((await phone.result(1)).status).toBe(Status.MALFORMED);
    expect((await phone.result(2)).status).toBe(Status.OK);
    expect(phone.messages('result').filter((m) => m.type === MessageType.result).length).toBe(3);
    expect(backend.requests.at(-1)!.body.length).toBe(312);
    await phone.disconnect();
  });

  it('refuses a first frame declaring more than 4096 bytes before any continuation arrives (TANDEM-GATT-6)', async () => {
    const nonce = await session();
    const requests = backend.requests.length;
    const first = Uint8Array.of(0x80, MessageType.unlockRequest, 0x10, 0x01, ...new Uint8Array(16)); // 4097 bytes
    await phone.writeFrames('request', [first]);
    const refused = await phone.result(0);
    expect(refused.status).toBe(Status.MALFORMED);
    expect(lock.connection()!.stats.writes.request).toBe(1);
    // Its continuation frames are dropped without another result; the next message is served.
    await phone.writeFrames('request', [Uint8Array.of(0x01, 1, 2, 3), Uint8Array.of(0x02, 4, 5, 6)]);
    await phone.send('request', MessageType.unlockRequest, firstRequest(nonce));
    expect((await phone.result(1)).status).toBe(Status.OK);
    expect(backend.requests.length).toBe(requests + 1);
    await phone.disconnect();
  });

  it('drops a transfer abandoned mid-way (new first frame, or 5 s of silence) and serves a fresh one', async () => {
    const nonce = await session();
    const frames = frameMessage(MessageType.unlockRequest, firstRequest(nonce), 23);
    await phone.writeFrames('request', frames.slice(0, 5));
    await phone.writeFrames('request', frames); // starts over: the half-finished one is dropped silently
    expect(await phone.result(0)).toMatchObject({ status: Status.OK, nonce });
    expect(lock.connection()!.stats.abandoned).toBe(1);

    const next = (await phone.challenge('result', 1)).nonce;
    const again = frameMessage(MessageType.unlockRequest, firstRequest(next), 23);
    await phone.writeFrames('request', again.slice(0, 5));
    const before = clock.now();
    await until('reassembly timeout', () => lock.connection()?.stats.abandoned === 2);
    expect(clock.now() - before).toBeGreaterThanOrEqual(5_000);
    await phone.writeFrames('request', again.slice(5)); // the rest of the timed-out message: ignored
    await phone.writeFrames('request', again);
    expect(await phone.result(1)).toMatchObject({ status: Status.OK, nonce: next });
    expect(phone.messages('result').filter((m) => m.type === MessageType.result).length).toBe(2);
    await phone.disconnect();
  });

  it('forgets a message cut by a disconnect and serves the reconnected phone', async () => {
    const nonce = await session();
    const peer = lock.connection()!.peer;
    const requests = backend.requests.length;
    await phone.writeFrames(
      'request',
      frameMessage(MessageType.unlockRequest, firstRequest(nonce), 23).slice(0, 6),
    );
    await phone.disconnect();
    await until('session closed', () => lock.connection() === undefined);
    expect(backend.gone).toContain(peer);
    const fresh = await session();
    expect(lock.connection()!.peer).not.toBe(peer);
    await phone.send('request', MessageType.unlockRequest, firstRequest(fresh));
    expect((await phone.result(0)).status).toBe(Status.OK);
    expect(backend.requests.length).toBe(requests + 1);
    await phone.disconnect();
  });

  it('drops a central that floods 500 frames and serves the next one', async () => {
    // A fast link so that frames arrive faster than the bucket refills: 7.5 ms, 8 PDUs per event.
    radio.configure({ connectionIntervalMs: 7.5, pdusPerEvent: 8 });
    await session();
    const peer = lock.connection()!.peer;
    const flood = Uint8Array.of(0x80, MessageType.unlockRequest, 0x10, 0x00, ...new Uint8Array(16)); // 4096 declared
    const gone = phone.disconnected();
    for (let i = 0; i < 500; i++)
      void phone
        .char('request')
        .writeAsync(Buffer.from(flood), true)
        .catch(() => {});
    await within('dropped', 15_000, gone);
    expect(lock.stats().drops.flood).toBe(1);
    const stats = lock.connectionStats(peer)!;
    expect(stats.writes.request).toBeGreaterThan(300);
    expect(stats.writes.request).toBeLessThan(500);
    expect(backend.requests.filter((r) => r.peer === peer).length).toBe(0);
    radio.configure({ connectionIntervalMs: 30, pdusPerEvent: 1 });
    const nonce = await session();
    await phone.send('request', MessageType.unlockRequest, firstRequest(nonce));
    expect((await phone.result(0)).status).toBe(Status.OK);
    await phone.disconnect();
  });

  it('drops a central after more than 4 refused messages', async () => {
    await session();
    const peer = lock.connection()!.peer;
    const gone = phone.disconnected();
    // First frames of the reserved type 0x00: each one is a new message, refused on its own.
    for (let i = 0; i < 6; i++)
      await phone.writeFrames('delivery', [Uint8Array.of(0xc0, 0x00, 0x00, 0x01, 0xff)]);
    await within('dropped', 15_000, gone);
    expect(lock.stats().drops.refusals).toBe(1);
    expect(lock.connectionStats(peer)!.refusals).toBe(5);
    // Four MALFORMED results were notified; those still queued for the air when the link went are lost.
    expect(phone.messages('result').filter((m) => m.type === MessageType.result).length).toBeLessThanOrEqual(
      4,
    );
    await until('lock side closed', () => lock.connection() === undefined);
    expect(drops.at(-1)).toBe('refusals');
  });

  it('refuses writes to read-only characteristics at the ATT level and long (prepared) writes as MALFORMED', async () => {
    const nonce = await session();
    const mark = tap.log.length;
    const requests = backend.requests.length;
    tap.inject(4, Buffer.from([ATT.writeRequest, ...u16(valueHandle('lockInfo')), 0x80, 0x02, 0x00, 0x00]));
    tap.inject(4, Buffer.from([ATT.writeRequest, ...u16(valueHandle('result')), 0x80, 0x02, 0x00, 0x00]));
    await until('two error responses', () => fromLock(mark, ATT.errorResponse).length === 2);
    // Error Response: opcode, request opcode, handle, 0x03 Write Not Permitted (Core Vol 3 Part F §3.4.1.1).
    expect(fromLock(mark, ATT.errorResponse).map((p) => p[4])).toEqual([0x03, 0x03]);
    // A 312-byte request as one long write: Prepare Write Requests and Execute, one frame over MTU - 3.
    const request = firstRequest(nonce);
    const whole = Buffer.concat([
      Buffer.of(0xc0, MessageType.unlockRequest, request.length >> 8, request.length & 0xff),
      request,
    ]);
    await within('long write', 15_000, phone.char('request').writeAsync(whole, false));
    expect(tap.phoneAtt(ATT.prepareWriteRequest, mark).length).toBeGreaterThan(1);
    expect((await phone.result(0)).status).toBe(Status.MALFORMED);
    expect(backend.requests.length).toBe(requests);
    await phone.send('request', MessageType.unlockRequest, request);
    expect((await phone.result(1)).status).toBe(Status.OK);
    await phone.disconnect();
  });

  it('serves subscriptions made before anything else, and reads at any offset without crashing', async () => {
    await within('connect', 15_000, phone.connect());
    await within('subscribe relay', 15_000, phone.subscribe('relay'));
    await within('subscribe challenge', 15_000, phone.subscribe('challenge'));
    const challenge = await within('challenge', 15_000, phone.challenge('challenge', 0));
    expect(challenge.lockId).toBe(backend.lockId);
    expect(phone.messages('relay').length).toBe(0);

    const mark = tap.log.length;
    const info = valueHandle('lockInfo');
    // A Read Blob at offset 5 before any read at offset 0 on this connection: Invalid Offset.
    tap.inject(4, Buffer.from([ATT.readBlobRequest, ...u16(info), ...u16(5)]));
    await until('error response', () => fromLock(mark, ATT.errorResponse).length === 1);
    expect(fromLock(mark, ATT.errorResponse)[0]![4]).toBe(0x07);
    const value = await within('read', 15_000, phone.char('lockInfo').readAsync());
    const mark2 = tap.log.length;
    tap.inject(4, Buffer.from([ATT.readBlobRequest, ...u16(info), ...u16(value.length)])); // at the end: empty
    tap.inject(4, Buffer.from([ATT.readBlobRequest, ...u16(info), ...u16(value.length + 1)])); // past it
    tap.inject(4, Buffer.from([ATT.readBlobRequest, ...u16(info), ...u16(0xffff)]));
    await until(
      'answers',
      () => fromLock(mark2, ATT.readBlobResponse).length + fromLock(mark2, ATT.errorResponse).length === 3,
    );
    expect(fromLock(mark2, ATT.readBlobResponse).map((p) => p.length)).toEqual([1]);
    expect(fromLock(mark2, ATT.errorResponse).map((p) => p[4])).toEqual([0x07, 0x07]);
    // The same connection still issues fresh challenges.
    const read = decodeChallenge(
      Uint8Array.from(await within('read', 15_000, phone.char('challenge').readAsync())),
    );
    expect(Buffer.from(read.nonce)).not.toEqual(Buffer.from(challenge.nonce));
    await phone.disconnect();
    expect(lock.stats().crashes).toBe(0);
    expect(lock.state).toBe('running');
  });

  it('drops a central that stays silent, so it cannot keep other riders out', async () => {
    const before = clock.now();
    await within('connect', 15_000, phone.connect());
    const peer = lock.connection()!.peer;
    const gone = phone.disconnected();
    await within('idle drop', 15_000, gone);
    expect(clock.now() - before).toBeGreaterThanOrEqual(10_000);
    expect(lock.stats().drops.idle).toBe(1);
    expect(backend.gone).toContain(peer);
    await until('lock side closed', () => lock.connection() === undefined);
    expect(drops.at(-1)).toBe('idle');
  });
});

function u16(n: number): number[] {
  return [n & 0xff, n >> 8];
}
