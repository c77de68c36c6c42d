/**
 * bleno 0.6.2 itself throws on some malformed traffic. A central that sends it must not take the process
 * down: the peripheral's crash guard catches the exception, the supervisor restarts the service, and the
 * next rider is served; past its restart budget the supervisor gives up with a `fatal` event (the process
 * then exits and systemd restarts it, locked).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MessageType } from '../../protocol/src/gatt.js';
import { Status } from '../../protocol/src/status.js';
import type { BleError } from '../src/ble/errors.js';
import { firstRequest, until, within, bleRig } from './ble-fixture.js';

const { tap, backend, lock, phone } = bleRig({
  attMtuCap: 185,
  seed: 9,
  peripheral: { maxRestarts: 3, restartWindowMs: 10 * 60_000 },
});
const crashes: unknown[] = [];
const restarts: string[] = [];
const fatal: BleError[] = [];
lock.on('crash', (err) => crashes.push(err));
lock.on('restart', (reason) => restarts.push(reason));
lock.on('fatal', (err) => fatal.push(err));

beforeAll(async () => {
  await within('lock start', 15_000, lock.start());
});

afterAll(async () => {
  await phone.disconnect();
  await lock.stop();
});

/** A full unlock on a fresh connection: the service works. */
async function unlocks(): Promise<void> {
  await within('connect', 15_000, phone.connect());
  await within('subscribe', 15_000, phone.subscribe('result'));
  const { nonce } = await within('challenge', 15_000, phone.challenge('result', 0));
  await phone.send('request', MessageType.unlockRequest, firstRequest(nonce));
  expect((await within('result', 15_000, phone.result(0))).status).toBe(Status.OK);
  await phone.disconnect();
}

/** Connects, sends `payload` on L2CAP channel `cid` bypassing noble, and waits for the lock to drop the link. */
async function attack(cid: number, payload: Buffer): Promise<void> {
  await within('connect', 15_000, phone.connect());
  const gone = phone.disconnected();
  tap.inject(cid, payload);
  await within('dropped after the crash', 15_000, gone);
  await until('restarted', () => lock.state === 'running' && lock.connection() === undefined);
}

describe('BlenoLockPeripheral supervisor', () => {
  it('contains a crash in bleno’s ATT parser (a Write Request without its handle) and serves the next rider', async () => {
    await unlocks();
    await attack(0x0004, Buffer.from([0x12, 0x0f]));
    expect(crashes.length).toBe(1);
    expect(crashes[0]).toBeInstanceOf(RangeError);
    expect((crashes[0] as Error).stack).toContain('bleno/lib/hci-socket/gatt.js');
    expect(restarts[0]).toMatch(/^BLE stack crash: /);
    expect(lock.stats()).toMatchObject({ crashes: 1, restarts: 1 });
    await unlocks();
  });

  it('contains a crash in bleno’s SMP (Pairing Random before any Pairing Confirm) and serves the next rider', async () => {
    await attack(0x0006, Buffer.from([0x04, ...new Uint8Array(16).fill(0x42)]));
    expect(crashes.length).toBe(2);
    expect((crashes[1] as Error).stack).toContain('bleno/lib/hci-socket/smp.js');
    expect(lock.stats()).toMatchObject({ crashes: 2, restarts: 2 });
    await unlocks();
    expect(backend.requests.length).toBe(3);
  });

  it('gives up with a fatal ERR_BLE_FATAL past its restart budget', async () => {
    await lock.restart('operator asked');
    expect(lock.state).toBe('running');
    await unlocks();
    await within('connect', 15_000, phone.connect());
    const gone = phone.disconnected();
    tap.inject(0x0004, Buffer.from([0x0a])); // a Read Request without its handle: crash number 3, restart 4
    await within('dropped', 15_000, gone);
    expect(crashes.length).toBe(3);
    expect(fatal.length).toBe(1);
    expect(fatal[0]!.code).toBe('ERR_BLE_FATAL');
    expect(fatal[0]!.message).toMatch(/gave up after 4 restarts/);
    expect(lock.state).toBe('failed');
  });
});
