/**
 * The lock's GATT service on the real bleno, driven by the real noble over the virtual radio (27-byte link
 * layer, 30 ms connection interval, virtual clock): advertising with the lock tag, the flow of SPEC §8 at ATT
 * MTU 23 and 185 with the ATT writes and round trips counted on the air, plain reads, deliveries and relay.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GATT_SERVICE_UUID,
  MessageType,
  compactUuid,
  decodeChallenge,
  decodeLockInfo,
  lockTag,
  parseServiceData,
} from '../../protocol/src/gatt.js';
import { Command } from '../../protocol/src/pop.js';
import { Status } from '../../protocol/src/status.js';
import {
  ATT,
  ATT_REQUEST_OPCODES,
  LOCK_ID,
  firstRequest,
  repeatRequest,
  within,
  bleRig,
} from './ble-fixture.js';

const { radio, tap, backend, lock, phone } = bleRig({ attMtuCap: 185, seed: 3 });

beforeAll(async () => {
  await within('lock start', 15_000, lock.start());
});

afterAll(async () => {
  await phone.disconnect();
  await lock.stop();
});

/**
 * ATT requests (each one round trip) the phone sent since `mark`, other than discovery. noble looks up a CCCD's
 * handle with a Read By Type Request (0x08) before writing it; phone stacks find descriptors during service
 * discovery, so that lookup is counted apart ({@link cccdLookups}).
 */
function roundTrips(mark: number): number {
  return tap.log
    .slice(mark)
    .filter(
      (p) =>
        p.from === 'phone' && p.cid === 4 && ATT_REQUEST_OPCODES.includes(p.pdu[0]!) && p.pdu[0] !== 0x08,
    ).length;
}

/** Read By Type Requests for the CCCD (UUID 0x2902) since `mark`. */
function cccdLookups(mark: number): number {
  return tap.phoneAtt(0x08, mark).filter((p) => p.pdu.length === 7 && p.pdu.readUInt16LE(5) === 0x2902)
    .length;
}

describe('BlenoLockPeripheral on the virtual radio', () => {
  it('advertises the Tandem service and the lock tag in the scan response (TANDEM-GATT-2, -3)', async () => {
    backend.flags = { relayPending: true, alarm: false };
    await lock.refreshAdvertising();
    const peripheral = await within('connect', 15_000, phone.connect());
    expect(peripheral.advertisement.serviceUuids).toContain(compactUuid(GATT_SERVICE_UUID));
    const serviceData =
      (peripheral.advertisement as { serviceData?: { uuid: string; data: Buffer }[] }).serviceData ?? [];
    const ours = serviceData.find((d) => d.uuid === compactUuid(GATT_SERVICE_UUID));
    expect(ours).toBeDefined();
    const { tag, flags } = parseServiceData(Uint8Array.from(ours!.data));
    expect(Buffer.from(tag)).toEqual(Buffer.from(lockTag(LOCK_ID)));
    expect(flags).toEqual({ relayPending: true, alarm: false });
    expect(lock.connection()?.peer).toMatch(/^54:41:4e:00:00:01#\d+$/);
    await phone.disconnect();
    backend.flags = { relayPending: false, alarm: false };
  });

  it('advertises flags changed during a connection once the central has gone', async () => {
    await within('connect', 15_000, phone.connect());
    backend.flags = { relayPending: false, alarm: true };
    await lock.refreshAdvertising(); // connected: applied when advertising resumes
    await phone.disconnect();
    const peripheral = await within('connect', 15_000, phone.connect());
    const serviceData =
      (peripheral.advertisement as { serviceData?: { uuid: string; data: Buffer }[] }).serviceData ?? [];
    const ours = serviceData.find((d) => d.uuid === compactUuid(GATT_SERVICE_UUID))!;
    expect(parseServiceData(Uint8Array.from(ours.data)).flags).toEqual({ relayPending: false, alarm: true });
    await phone.disconnect();
    backend.flags = { relayPending: false, alarm: false };
    await lock.refreshAdvertising();
  });

  it('unlocks at ATT MTU 185 with 10 % packet loss: lost packets only delay the same two writes', async () => {
    radio.configure({ attMtuCap: 185, lossRate: 0.1 });
    try {
      await within('connect', 15_000, phone.connect());
      await within('subscribe', 15_000, phone.subscribe('result'));
      const challenge = await within('challenge', 15_000, phone.challenge('result', 0));
      const before = tap.phoneAtt(ATT.writeCommand).length;
      const lostBefore = radio.connections().at(-1)!.lostPackets;
      expect(await phone.send('request', MessageType.unlockRequest, firstRequest(challenge.nonce))).toBe(2);
      expect((await within('result', 15_000, phone.result(0))).status).toBe(Status.OK);
      expect(tap.phoneAtt(ATT.writeCommand).length - before).toBe(2);
      expect(radio.connections().at(-1)!.lostPackets).toBeGreaterThan(lostBefore);
      await phone.disconnect();
    } finally {
      radio.configure({ lossRate: 0 });
    }
  });

  it('unlocks at ATT MTU 185 in 2 round trips: 2 writes for a 312-byte request, 1 for a 106-byte repeat', async () => {
    radio.configure({ attMtuCap: 185 });
    await within('connect', 15_000, phone.connect());
    expect(phone.mtu).toBe(185);
    expect(lock.connection()?.mtu).toBe(185);
    const peer = lock.connection()!.peer;

    // Round trip 1: the CCCD write; the lock notifies a fresh challenge on the result characteristic.
    const mark = tap.log.length;
    await within('subscribe', 15_000, phone.subscribe('result'));
    const challenge = await within('challenge', 15_000, phone.challenge('result', 0));
    expect(challenge.lockId).toBe(LOCK_ID);
    expect(backend.issued.get(Buffer.from(challenge.nonce).toString('hex'))).toBe(peer);
    expect(roundTrips(mark)).toBe(1); // the CCCD Write Request
    expect(cccdLookups(mark)).toBe(1);
    expect(tap.phoneAtt(ATT.writeRequest, mark).length).toBe(1);

    // Round trip 2: the request frames as Write Commands, the result as notifications.
    const request = firstRequest(challenge.nonce);
    expect(request.length).toBe(312);
    const writesBefore = tap.phoneAtt(ATT.writeCommand).length;
    expect(await phone.send('request', MessageType.unlockRequest, request)).toBe(2);
    const result = await within('result', 15_000, phone.result(0));
    expect(tap.phoneAtt(ATT.writeCommand).length - writesBefore).toBe(2);
    expect(lock.connection()?.stats.writes.request).toBe(2);
    expect(roundTrips(mark)).toBe(1); // Write Commands and notifications wait for no response
    expect(result).toEqual({
      status: Status.OK,
      answers: MessageType.unlockRequest,
      command: Command.UNLOCK,
      state: 'unlocked',
      lockTime: backend.lockTime(),
      nonce: challenge.nonce,
    });
    expect(Buffer.from(backend.requests.at(-1)!.body)).toEqual(Buffer.from(request));
    // Every notification fits one ATT payload: MTU - 3 (Core Vol 3 Part F §3.4.7.1).
    for (const n of tap.log.slice(mark).filter((p) => p.from === 'lock' && p.pdu[0] === ATT.notification)) {
      expect(n.pdu.length - 3).toBeLessThanOrEqual(185 - 3);
    }

    // A repeat by chain reference, with the challenge the lock notified after the result (TANDEM-GATT-8).
    const next = await within('next challenge', 15_000, phone.challenge('result', 1));
    const repeat = repeatRequest(next.nonce);
    expect(repeat.length).toBe(106);
    const before = tap.phoneAtt(ATT.writeCommand).length;
    expect(await phone.send('request', MessageType.unlockRequest, repeat)).toBe(1);
    expect((await within('repeat result', 15_000, phone.result(1))).status).toBe(Status.OK);
    expect(tap.phoneAtt(ATT.writeCommand).length - before).toBe(1);
    expect(roundTrips(mark)).toBe(1);
    await phone.disconnect();
    expect(backend.gone).toContain(peer);
  });

  it('unlocks at ATT MTU 23 over a 27-byte link layer: 17 writes for 312 bytes, 6 for the repeat', async () => {
    radio.configure({ attMtuCap: 23 });
    await within('connect', 15_000, phone.connect());
    expect(phone.mtu).toBe(23);
    expect(lock.connection()?.mtu).toBe(23);
    const mark = tap.log.length;
    await within('subscribe', 15_000, phone.subscribe('result'));
    const challenge = await within('challenge', 15_000, phone.challenge('result', 0));
    const before = tap.phoneAtt(ATT.writeCommand).length;
    expect(await phone.send('request', MessageType.unlockRequest, firstRequest(challenge.nonce))).toBe(17);
    expect((await within('result', 15_000, phone.result(0))).status).toBe(Status.OK);
    expect(tap.phoneAtt(ATT.writeCommand).length - before).toBe(17);
    for (const n of tap.log.slice(mark).filter((p) => p.from === 'lock' && p.pdu[0] === ATT.notification)) {
      expect(n.pdu.length - 3).toBeLessThanOrEqual(20);
    }
    const next = await within('next challenge', 15_000, phone.challenge('result', 1));
    expect(await phone.send('request', MessageType.unlockRequest, repeatRequest(next.nonce))).toBe(6);
    expect((await within('repeat result', 15_000, phone.result(1))).status).toBe(Status.OK);
    expect(roundTrips(mark)).toBe(1);
    await phone.disconnect();
  });

  it('serves plain reads of a fresh challenge and of lock info with long reads at MTU 23 (TANDEM-GATT-12)', async () => {
    radio.configure({ attMtuCap: 23 });
    await within('connect', 15_000, phone.connect());
    const mark = tap.log.length;
    const first = decodeChallenge(
      Uint8Array.from(await within('read', 15_000, phone.char('challenge').readAsync())),
    );
    const second = decodeChallenge(
      Uint8Array.from(await within('read', 15_000, phone.char('challenge').readAsync())),
    );
    expect(first.lockId).toBe(LOCK_ID);
    expect(Buffer.from(first.nonce)).not.toEqual(Buffer.from(second.nonce));
    // A challenge body is longer than MTU - 1 = 22 bytes: noble continues with Read Blob Requests, and the
    // lock answers them from the value it produced for offset 0.
    expect(tap.phoneAtt(ATT.readBlobRequest, mark).length).toBeGreaterThanOrEqual(2);
    const info = decodeLockInfo(
      Uint8Array.from(await within('read', 15_000, phone.char('lockInfo').readAsync())),
    );
    expect(info).toEqual(backend.lockInfo());
    await phone.disconnect();
  });

  it('takes a time beacon and a revocation update written back to back before the request, in order', async () => {
    radio.configure({ attMtuCap: 185 });
    await within('connect', 15_000, phone.connect());
    const peer = lock.connection()!.peer;
    await within('subscribe', 15_000, phone.subscribe('result'));
    const challenge = await within('challenge', 15_000, phone.challenge('result', 0));
    const beacon = Uint8Array.from({ length: 120 }, (_, i) => i);
    const update = Uint8Array.from({ length: 700 }, (_, i) => (i * 3) & 0xff);
    const deliveriesBefore = backend.deliveries.length;
    await phone.send('delivery', MessageType.timeBeacon, beacon);
    await phone.send('delivery', MessageType.revocationUpdate, update);
    await phone.send('request', MessageType.unlockRequest, firstRequest(challenge.nonce));
    const results = [await phone.result(0), await phone.result(1), await phone.result(2)];
    expect(results.map((r) => [r.answers, r.status])).toEqual([
      [MessageType.timeBeacon, Status.OK],
      [MessageType.revocationUpdate, Status.OK],
      [MessageType.unlockRequest, Status.OK],
    ]);
    expect(results[0]!.command).toBeUndefined();
    const delivered = backend.deliveries.slice(deliveriesBefore);
    expect(delivered.map((d) => [d.peer, d.type, d.body.length])).toEqual([
      [peer, MessageType.timeBeacon, 120],
      [peer, MessageType.revocationUpdate, 700],
    ]);
    expect(Buffer.from(delivered[1]!.body)).toEqual(Buffer.from(update));
    await phone.disconnect();
  });

  it('relays queued records on subscription, serves the oldest by read and takes an outbox ack (TANDEM-GATT-11)', async () => {
    radio.configure({ attMtuCap: 23 });
    const alert = Uint8Array.from({ length: 300 }, (_, i) => (i * 5) & 0xff);
    const audit = Uint8Array.from({ length: 90 }, (_, i) => (i * 11) & 0xff);
    backend.relay = [
      { type: MessageType.alert, body: alert },
      { type: MessageType.auditRecord, body: audit },
    ];
    await within('connect', 15_000, phone.connect());
    await within('subscribe result', 15_000, phone.subscribe('result'));
    await within('subscribe relay', 15_000, phone.subscribe('relay'));
    expect(Buffer.from(await within('alert', 15_000, phone.message('relay', MessageType.alert, 0)))).toEqual(
      Buffer.from(alert),
    );
    expect(
      Buffer.from(await within('audit', 15_000, phone.message('relay', MessageType.auditRecord, 0))),
    ).toEqual(Buffer.from(audit));
    const oldest = await within('read relay', 15_000, phone.char('relay').readAsync());
    expect(Buffer.from(oldest)).toEqual(Buffer.from(alert));
    const ack = Uint8Array.from({ length: 64 }, (_, i) => i ^ 0x55);
    await phone.send('relay', MessageType.outboxAck, ack);
    const result = await within('ack result', 15_000, phone.result(0));
    expect(result).toMatchObject({ status: Status.OK, answers: MessageType.outboxAck });
    expect(backend.deliveries.at(-1)!.type).toBe(MessageType.outboxAck);
    expect(Buffer.from(backend.deliveries.at(-1)!.body)).toEqual(Buffer.from(ack));
    backend.relay = [];
    const empty = await within('read relay', 15_000, phone.char('relay').readAsync());
    expect(empty.length).toBe(0);
    await phone.disconnect();
    expect(lock.stats().crashes).toBe(0);
  });
});
