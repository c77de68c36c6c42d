/**
 * [TANDEM-GATT-18]: the lock asks every central for 15-30 ms right after it connects, with an L2CAP
 * Connection Parameter Update Request (Bluetooth Core v5.3 Vol 3 Part A 4.20) written through bleno's HCI
 * layer; it follows the answer and LE Connection Update Complete without ever waiting for them. End to end
 * on the real bleno and noble over the virtual radio with the iPhone profile (which judges the request by
 * Apple's rules), and the requester alone against a recording HCI.
 */
import { EventEmitter } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';
import {
  IPHONE,
  PI_ZERO_W,
  VirtualClock,
  VirtualRadio,
  createNoble,
  installVirtualHci,
  loadBleno,
} from '../../hardware/src/virtual-radio/index.js';
import { BlenoLockPeripheral } from '../src/ble/bleno-lock-peripheral.js';
import {
  ConnectionParameterRequester,
  DEFAULT_CONNECTION_PARAMETERS,
  checkConnectionParameters,
  encodeParameterRequest,
} from '../src/ble/connection-parameters.js';
import type { BlenoHci } from '../src/ble/connection-parameters.js';
import { isBleError } from '../src/ble/errors.js';
import { FakeBackend, TestPhone, until, within } from './ble-fixture.js';

/** bleno's HCI object as the requester sees it, recording what is queued. */
class RecordingHci extends EventEmitter {
  readonly sent: { handle: number; cid: number; data: Buffer }[] = [];
  queueAclDataPkt(handle: number, cid: number, data: Buffer): void {
    this.sent.push({ handle, cid, data: Buffer.from(data) });
  }
}

const response = (identifier: number, result: number): Buffer =>
  Buffer.from([0x13, identifier, 2, 0, result & 0xff, result >> 8]);

describe('the request the lock sends', () => {
  it("is 15-30 ms, latency 0, 2 s, in the signalling command's units", () => {
    expect(encodeParameterRequest(200, DEFAULT_CONNECTION_PARAMETERS)).toEqual(
      Buffer.from([0x12, 200, 8, 0, 12, 0, 24, 0, 0, 0, 200, 0]),
    );
  });

  it("refuses a request Apple's rules would reject, naming the rule (ERR_BLE_CONFIG)", () => {
    for (const [bad, why] of [
      [{ minIntervalMs: 7.5 }, /multiple of 15 ms/],
      [{ maxIntervalMs: 20 }, /min \+ 15 ms/],
      [{ supervisionTimeoutMs: 1000 }, /outside 2-6 s/],
      [{ latency: 31 }, /latency 31/],
      [{ minIntervalMs: 16 }, /multiples of 1.25 ms/],
    ] as const) {
      let caught: unknown;
      try {
        checkConnectionParameters({ ...DEFAULT_CONNECTION_PARAMETERS, ...bad });
      } catch (e) {
        caught = e;
      }
      expect(isBleError(caught, 'ERR_BLE_CONFIG')).toBe(true);
      expect((caught as Error).message).toMatch(why);
    }
    expect(
      () =>
        new BlenoLockPeripheral({
          backend: new FakeBackend(),
          connectionParameters: { ...DEFAULT_CONNECTION_PARAMETERS, minIntervalMs: 10 },
        }),
    ).toThrow(/ERR_BLE_CONFIG|multiple of 15 ms/);
  });
});

describe('ConnectionParameterRequester', () => {
  it('sends once per connection on CID 5, takes only the answer to its own identifier', () => {
    const hci = new RecordingHci();
    const changes: string[] = [];
    const r = new ConnectionParameterRequester(DEFAULT_CONNECTION_PARAMETERS, (e) =>
      changes.push(`${e.outcome}${e.intervalMs === undefined ? '' : `@${e.intervalMs}`}`),
    );
    r.attach(hci as unknown as BlenoHci);
    r.request(0x40);
    r.request(0x40);
    expect(hci.sent).toHaveLength(1);
    expect(hci.sent[0]!.handle).toBe(0x40);
    expect(hci.sent[0]!.cid).toBe(0x0005);
    const id = hci.sent[0]!.data[1]!;
    expect(id).toBeGreaterThanOrEqual(200);
    // Another identifier, another handle, another channel: not ours.
    hci.emit('aclDataPkt', 0x40, 0x0005, response(id + 1, 0));
    hci.emit('aclDataPkt', 0x41, 0x0005, response(id, 0));
    hci.emit('aclDataPkt', 0x40, 0x0004, response(id, 0));
    expect(r.outcome).toBe('pending');
    hci.emit('aclDataPkt', 0x40, 0x0005, response(id, 0x0001));
    expect(r.outcome).toBe('rejected');
    // A second answer does not change the first.
    hci.emit('aclDataPkt', 0x40, 0x0005, response(id, 0x0000));
    expect(r.stats()).toMatchObject({ requested: 1, accepted: 0, rejected: 1, unsupported: 0 });
    expect(changes).toEqual(['rejected']);
  });

  it('counts Command Reject as unsupported, and LE Connection Update Complete on its connection', () => {
    const hci = new RecordingHci();
    const r = new ConnectionParameterRequester(DEFAULT_CONNECTION_PARAMETERS);
    r.attach(hci as unknown as BlenoHci);
    r.request(0x41);
    const id = hci.sent[0]!.data[1]!;
    hci.emit('aclDataPkt', 0x41, 0x0005, Buffer.from([0x01, id, 2, 0, 0, 0]));
    expect(r.outcome).toBe('unsupported');
    hci.emit('leConnUpdateComplete', 0, 0x99, 15, 0, 2000); // another connection
    hci.emit('leConnUpdateComplete', 0x3b, 0x41, 15, 0, 2000); // failed update
    expect(r.stats().updates).toBe(0);
    hci.emit('leConnUpdateComplete', 0, 0x41, 15, 0, 2000);
    expect(r.stats()).toMatchObject({ updates: 1, lastIntervalMs: 15, unsupported: 1 });
    // After the connection ends, a late answer is not taken; the next connection asks again.
    r.forget();
    hci.emit('aclDataPkt', 0x41, 0x0005, response(id, 0));
    expect(r.stats().accepted).toBe(0);
    r.request(0x42);
    expect(hci.sent).toHaveLength(2);
    expect(hci.sent[1]!.data[1]).not.toBe(id);
  });
});

describe('end to end: the lock on bleno, an iPhone on noble, over the virtual radio', () => {
  const clock = new VirtualClock({ autoAdvance: true });
  const radio = new VirtualRadio({ clock, seed: 18, profiles: { 0: PI_ZERO_W, 1: IPHONE } });
  const installation = installVirtualHci(radio);
  const lock = new BlenoLockPeripheral({
    backend: new FakeBackend(),
    clock,
    loadBleno: () => loadBleno({ deviceId: 0 }),
  });
  const phone = new TestPhone(createNoble({ deviceId: 1 }));
  const events: string[] = [];
  lock.on('parameters', (_peer, outcome, intervalMs) => events.push(`${outcome}:${intervalMs ?? '-'}`));

  afterAll(async () => {
    await phone.disconnect().catch(() => undefined);
    await lock.stop();
    clock.setAutoAdvance(false);
    radio.close();
    installation.uninstall();
  });

  it('asks at once; the iPhone accepts and the connection runs at 15 ms instead of its 30 ms', async () => {
    await within('the lock to start', 15_000, lock.start());
    await within('the phone to connect', 15_000, phone.connect());
    await until('the connection update', () => lock.stats().parameters.updates === 1);
    expect(lock.stats().parameters).toEqual({
      requested: 1,
      accepted: 1,
      rejected: 0,
      unsupported: 0,
      updates: 1,
      lastIntervalMs: 15,
    });
    const conn = radio.connections().find((c) => c.open)!;
    expect(conn.intervalMs).toBe(15);
    expect([conn.parameterRequests, conn.parameterRequestsAccepted]).toEqual([1, 1]);
    expect(events).toEqual(['accepted:-', 'accepted:15']);
    // The link still serves GATT after the update: a challenge read answers.
    const challenge = await within('a challenge read', 15_000, phone.char('challenge').readAsync());
    expect(challenge.length).toBeGreaterThan(0);
  });
});
