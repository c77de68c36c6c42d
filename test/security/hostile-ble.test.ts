// The attack catalogue's hostile BLE peer rows (test/security/CATALOGUE.md): bleno 0.6.2 throws on some
// malformed ATT and SMP traffic (firmware-sim/test/ble-crash.test.ts). Here the same inputs hit the real lock
// runtime on the virtual radio (startRadioLock: LockAuthority behind BlenoLockPeripheral, simulated solenoid):
// the link drops, the BLE service restarts, the solenoid never moves, and the next rider still unlocks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MessageType } from '../../protocol/src/gatt.js';
import { chainHash } from '../../protocol/src/chain.js';
import { Command, createRequest } from '../../protocol/src/pop.js';
import { Status } from '../../protocol/src/status.js';
import {
  VirtualClock,
  VirtualRadio,
  createNoble,
  installVirtualHci,
  loadBleno,
} from '../../hardware/src/virtual-radio/index.js';
import { startRadioLock } from '../../firmware-sim/src/runtime/radio-lock.js';
import type { RadioLock } from '../../firmware-sim/src/runtime/radio-lock.js';
import { AttTap, TestPhone, until, within } from '../../firmware-sim/test/ble-fixture.js';
import { issuerProvisioning, tokenWorld } from '../../gateway/test/helpers.js';

const LOCK_ID = 'lock-hostile';
const clock = new VirtualClock({ autoAdvance: true });
const radio = new VirtualRadio({
  clock,
  linkLayerPayload: 27,
  connectionIntervalMs: 30,
  attMtuCap: 185,
  seed: 11,
});
const tap = new AttTap(radio, 1);
// Before bleno or noble is first required: both construct their HCI socket then.
installVirtualHci(tap);
const phone = new TestPhone(createNoble({ deviceId: 1 }));
const world = tokenWorld();
const rider = world.rider(LOCK_ID);
let lock: RadioLock;
const crashes: unknown[] = [];

beforeAll(async () => {
  lock = await startRadioLock({
    loadBleno: () => loadBleno({ deviceId: 0 }),
    clock,
    lockId: LOCK_ID,
    ...issuerProvisioning(world, LOCK_ID),
  });
  lock.peripheral.on('crash', (e) => crashes.push(e));
}, 30_000);

afterAll(async () => {
  await phone.disconnect();
  await lock.stop();
});

function unmoved(): void {
  expect(lock.pulses).toHaveLength(0);
  expect(lock.mechanism.solenoid.isEnergised()).toBe(false);
  expect(lock.authority.snapshot().state).toBe('locked');
}

/** Connects, sends `payload` on L2CAP channel `cid` bypassing noble, and waits for the lock to drop the link. */
async function attack(cid: number, payload: Buffer): Promise<void> {
  await within('connect', 15_000, phone.connect());
  const gone = phone.disconnected();
  tap.inject(cid, payload);
  await within('dropped after the crash', 15_000, gone);
  await until(
    'restarted',
    () => lock.peripheral.state === 'running' && lock.peripheral.connection() === undefined,
  );
}

describe('attack catalogue: hostile BLE peers against the lock runtime', () => {
  it('a central that crashes bleno’s ATT parser (a Write Request without its handle): link dropped, BLE restarted, the solenoid never moves', async () => {
    await attack(0x0004, Buffer.from([0x12, 0x0f]));
    expect(crashes).toHaveLength(1);
    expect((crashes[0] as Error).stack).toContain('bleno/lib/hci-socket/gatt.js');
    unmoved();
  });

  it('a central that crashes bleno’s SMP (Pairing Random before any Pairing Confirm): link dropped, BLE restarted, the solenoid never moves', async () => {
    await attack(0x0006, Buffer.from([0x04, ...new Uint8Array(16).fill(0x42)]));
    expect(crashes).toHaveLength(2);
    expect((crashes[1] as Error).stack).toContain('bleno/lib/hci-socket/smp.js');
    unmoved();
  });

  it('after the hostile peers an honest rider unlocks once (the control)', async () => {
    await within('connect', 15_000, phone.connect());
    await within('subscribe', 15_000, phone.subscribe('result'));
    const { nonce } = await within('challenge', 15_000, phone.challenge('result', 0));
    const request = createRequest({
      lockId: LOCK_ID,
      nonce,
      command: Command.UNLOCK,
      chain: rider.chain,
      chainHash: chainHash(rider.chain),
      holderKey: rider.key,
    });
    await phone.send('request', MessageType.unlockRequest, request);
    expect(Status[(await within('result', 15_000, phone.result(0))).status]).toBe('OK');
    expect(lock.pulses).toHaveLength(1);
    await phone.disconnect();
  });
});
