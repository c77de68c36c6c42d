/**
 * The real bleno and noble stacks end to end on one virtual radio in this process (virtual clock):
 * discovery by service UUID, connection, ATT MTU exchange under a cap, a 300-byte long write, long read
 * and notifications, at ATT MTU 23 and 185 over a 27-byte link layer.
 */
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { NoblePeripheral } from '../src/virtual-radio/index.js';
import {
  LOCK_NAME,
  SERVICE_UUID,
  collectNotifications,
  findLock,
  openLock,
  testValue,
  within,
  radioWorld,
} from './virtual-radio-fixture.js';

const { clock, radio, bleno, noble, lockReady, current } = radioWorld({ attMtuCap: 23, seed: 7 });

const reports = new Map<number, Record<string, number>>();

async function session(
  mtuCap: number,
): Promise<{ peripheral: NoblePeripheral; report: Record<string, number> }> {
  await within('lock start', 10_000, lockReady);
  radio.configure({ attMtuCap: mtuCap });
  const peripheral = await within('discovery', 10_000, findLock(noble));
  expect(peripheral.advertisement.serviceUuids).toContain(SERVICE_UUID);
  expect(peripheral.advertisement.localName).toBe(LOCK_NAME);
  const data = await within('connect + discovery', 10_000, openLock(peripheral));
  expect(peripheral.mtu).toBe(mtuCap);
  expect(bleno.mtu).toBe(mtuCap);

  const value = testValue(300, mtuCap);
  await within('subscribe', 10_000, data.subscribeAsync());
  const notified = collectNotifications(data, value.length);

  const before = current();
  const t0 = clock.now();
  await within('300-byte write', 10_000, data.writeAsync(value, false));
  const afterWrite = current();
  const t1 = clock.now();
  expect(Buffer.concat([await within('notifications', 10_000, notified)])).toEqual(value);
  const read = await within('read', 10_000, data.readAsync());
  expect(read).toEqual(value);
  const afterRead = current();
  const t2 = clock.now();

  const report = {
    writeEvents: afterWrite.eventCounter - before.eventCounter,
    writeMs: t1 - t0,
    writePdusToPeripheral: afterWrite.pdusToPeripheral - before.pdusToPeripheral,
    readEvents: afterRead.eventCounter - afterWrite.eventCounter,
    readMs: t2 - t1,
  };
  return { peripheral, report };
}

describe('virtual radio: bleno and noble in one process', () => {
  it('finds, connects and transfers 300 bytes at ATT MTU 23 over a 27-byte link layer', async () => {
    const { peripheral, report } = await session(23);
    const info = current();
    expect(info.intervalMs).toBe(30);
    expect(info.mtuRewrites).toBeGreaterThanOrEqual(1);
    // A 300-byte value at MTU 23 is a long write: 17 Prepare Write Requests of 18 value bytes (27 octets
    // with the L2CAP header: one PDU each) and an Execute Write Request; every request waits for its
    // response, one PDU per direction per connection event: 2 events per request.
    expect(report.writePdusToPeripheral).toBe(18);
    expect(report.writeEvents).toBe(36);
    reports.set(23, report);
    const gone = once(peripheral, 'disconnect');
    await within('disconnect', 10_000, peripheral.disconnectAsync());
    await gone;
    expect(current().open).toBe(false);
    expect(current().disconnectReason).toBe(0x13);
  });

  it('reconnects at ATT MTU 185 and needs fewer connection events for the same write', async () => {
    const { peripheral, report } = await session(185);
    expect(current().intervalMs).toBe(30);
    // Prepare Write Requests of 180 and 120 value bytes (189 and 129 octets with headers: 7 and 5 PDUs of at
    // most 27), then Execute Write (1 PDU); the Prepare Write Responses echo the value (7 and 5 PDUs back).
    expect(report.writePdusToPeripheral).toBe(13);
    expect(report.writeEvents).toBe(7 + 7 + 5 + 5 + 1 + 1);
    expect(report.writeEvents).toBeLessThan(reports.get(23)!.writeEvents);
    expect(report.writeMs).toBe(report.writeEvents * 30);
    await within('disconnect', 10_000, peripheral.disconnectAsync());
  });
});
