/**
 * Radio trouble on the virtual air with the real stacks: packet loss (seeded) only delays a transfer, and a
 * lock that drops out of range mid-transfer is reported to both sides as a supervision timeout (0x08).
 */
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  collectNotifications,
  findLock,
  openLock,
  testValue,
  within,
  radioWorld,
} from './virtual-radio-fixture.js';

const { clock, radio, bleno, noble, lockReady, current } = radioWorld({
  attMtuCap: 185,
  seed: 42,
  lossRate: 0.2,
});

async function until(what: string, predicate: () => boolean): Promise<void> {
  await within(
    what,
    10_000,
    (async () => {
      while (!predicate()) await new Promise((resolve) => setImmediate(resolve));
    })(),
  );
}

describe('virtual radio: loss and supervision timeout', () => {
  it('completes a 300-byte write, read and notification at 20 % packet loss, later than without loss', async () => {
    await within('lock start', 10_000, lockReady);
    const peripheral = await within('discovery', 10_000, findLock(noble));
    const data = await within('connect', 10_000, openLock(peripheral));
    expect(peripheral.mtu).toBe(185);
    await within('subscribe', 10_000, data.subscribeAsync());
    const value = testValue(300, 1);
    const notified = collectNotifications(data, value.length);
    const before = current();
    await within('write', 10_000, data.writeAsync(value, false));
    const after = current();
    expect(await within('notify', 10_000, notified)).toEqual(value);
    expect(await within('read', 10_000, data.readAsync())).toEqual(value);
    // Lossless, this write takes 26 connection events (see virtual-radio.test.ts); lost packets are sent
    // again at later events, so it takes longer, and nothing is lost for the application.
    expect(after.lostPackets - before.lostPackets).toBeGreaterThan(0);
    expect(after.eventCounter - before.eventCounter).toBeGreaterThan(26);
    expect(after.open).toBe(true);
    const gone = once(peripheral, 'disconnect');
    await within('disconnect', 10_000, peripheral.disconnectAsync());
    await gone;
  });

  it('reports a lock going out of range mid-transfer to both sides as Connection Timeout (0x08)', async () => {
    radio.configure({ lossRate: 0, attMtuCap: 23 });
    const peripheral = await within('discovery', 10_000, findLock(noble));
    const data = await within('connect', 10_000, openLock(peripheral));
    const nobleGone = once(peripheral, 'disconnect') as Promise<[number]>;
    const blenoGone = once(bleno, 'disconnect') as Promise<[string]>;
    const start = current();
    const write = data.writeAsync(testValue(300, 2), false);
    write.catch(() => undefined);
    await until('transfer under way', () => current().pdusToPeripheral >= start.pdusToPeripheral + 5);
    const lostAt = clock.now();
    radio.setInRange(0, false);
    const [reason] = await within('noble disconnect', 10_000, nobleGone);
    const [address] = await within('bleno disconnect', 10_000, blenoGone);
    expect(reason).toBe(0x08);
    expect(address).toBe(radio.addressOf(1));
    const info = current();
    expect(info.open).toBe(false);
    expect(info.disconnectReason).toBe(0x08);
    expect(info.pdusToPeripheral).toBeLessThan(start.pdusToPeripheral + 18);
    // The timeout runs from the last good exchange: within one connection interval of the supervision timeout.
    expect(clock.now() - lostAt).toBeGreaterThanOrEqual(info.supervisionTimeoutMs - info.intervalMs);
    expect(clock.now() - lostAt).toBeLessThanOrEqual(info.supervisionTimeoutMs + info.intervalMs);
  });

  it('lets the phone find and connect to the lock again once it is back in range', async () => {
    radio.setInRange(0, true);
    const peripheral = await within('discovery', 10_000, findLock(noble));
    const data = await within('connect', 10_000, openLock(peripheral));
    const value = testValue(40, 3);
    await within('write', 10_000, data.writeAsync(value, false));
    expect(await within('read', 10_000, data.readAsync())).toEqual(value);
    await within('disconnect', 10_000, peripheral.disconnectAsync());
  });
});
