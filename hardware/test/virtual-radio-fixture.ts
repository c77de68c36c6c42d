/**
 * Shared by the virtual-radio tests and the child lock process: a small GATT service on bleno (readable,
 * writable-with-response and notifying characteristic) and the noble steps to reach it.
 */
import { once } from 'node:events';
import type {
  Bleno,
  ConnectionInfo,
  Noble,
  NobleCharacteristic,
  NoblePeripheral,
} from '../src/virtual-radio/index.js';
import {
  VirtualClock,
  VirtualRadio,
  createNoble,
  installVirtualHci,
  loadBleno,
} from '../src/virtual-radio/index.js';

export const SERVICE_UUID = '7a6e0001b5a34f0e9c6e5d4c3b2a1900';
export const DATA_UUID = '7a6e0002b5a34f0e9c6e5d4c3b2a1900';
export const LOCK_NAME = 'tandem-test';

/** Reject after `ms` of real time so a stuck stack fails the test instead of hanging it. */
export function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function poweredOn(stack: Bleno | Noble): Promise<void> {
  if (stack.state === 'poweredOn') return;
  for (;;) {
    const [state] = (await once(stack, 'stateChange')) as [string];
    if (state === 'poweredOn') return;
  }
}

/**
 * Start the lock side: one service with one characteristic that can be read (long reads), written with
 * response (long writes), and that notifies every written value back in chunks of the current
 * maximum notification size.
 */
export async function startLock(bleno: Bleno): Promise<{ writes: Buffer[] }> {
  const writes: Buffer[] = [];
  let value = Buffer.alloc(0);
  let notify: ((data: Buffer) => void) | null = null;
  let maxValueSize = 20;
  const characteristic = new bleno.Characteristic({
    uuid: DATA_UUID,
    properties: ['read', 'write', 'notify'],
    onReadRequest(offset, callback) {
      if (offset > value.length) return callback(bleno.Characteristic.RESULT_INVALID_OFFSET);
      callback(bleno.Characteristic.RESULT_SUCCESS, value.subarray(offset));
    },
    onWriteRequest(data, _offset, _withoutResponse, callback) {
      value = Buffer.from(data);
      writes.push(value);
      callback(bleno.Characteristic.RESULT_SUCCESS);
      if (notify !== null) {
        for (let off = 0; off < value.length; off += maxValueSize)
          notify(value.subarray(off, off + maxValueSize));
      }
    },
    onSubscribe(max, update) {
      maxValueSize = max;
      notify = update;
    },
    onUnsubscribe() {
      notify = null;
    },
  });
  await poweredOn(bleno);
  await new Promise<void>((resolve, reject) =>
    bleno.setServices(
      [new bleno.PrimaryService({ uuid: SERVICE_UUID, characteristics: [characteristic] })],
      (err) => (err ? reject(err) : resolve()),
    ),
  );
  await new Promise<void>((resolve, reject) =>
    bleno.startAdvertising(LOCK_NAME, [SERVICE_UUID], (err) => (err ? reject(err) : resolve())),
  );
  return { writes };
}

/** Scan until a peripheral advertising SERVICE_UUID shows up. */
export async function findLock(noble: Noble): Promise<NoblePeripheral> {
  await poweredOn(noble);
  const found = once(noble, 'discover') as Promise<[NoblePeripheral]>;
  await noble.startScanningAsync([SERVICE_UUID], false);
  const [peripheral] = await found;
  await noble.stopScanningAsync();
  return peripheral;
}

/** Connect and discover the data characteristic (the ATT MTU exchange is noble's first request). */
export async function openLock(peripheral: NoblePeripheral): Promise<NobleCharacteristic> {
  await peripheral.connectAsync();
  const { characteristics } = await peripheral.discoverSomeServicesAndCharacteristicsAsync(
    [SERVICE_UUID],
    [DATA_UUID],
  );
  const c = characteristics[0];
  if (c === undefined) throw new Error('data characteristic not found');
  return c;
}

/** Collect notifications until `length` bytes have arrived. */
export function collectNotifications(c: NobleCharacteristic, length: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let got = 0;
    const onData = (data: Buffer, isNotification: boolean): void => {
      if (!isNotification) return;
      parts.push(data);
      got += data.length;
      if (got >= length) {
        c.off('data', onData);
        resolve(Buffer.concat(parts));
      }
    };
    c.on('data', onData);
  });
}

/** A deterministic 300-byte test value. */
export function testValue(length = 300, salt = 0): Buffer {
  return Buffer.from(Array.from({ length }, (_, i) => (i * 7 + salt) & 0xff));
}

/**
 * One test file's air (bleno is a process-wide singleton): a radio on an auto-advancing virtual clock with a
 * 27-byte link layer and a 30 ms interval, bleno (device 0) serving the test lock, noble (device 1), and the
 * newest connection's counters.
 */
export function radioWorld(options: {
  readonly attMtuCap: number;
  readonly seed: number;
  readonly lossRate?: number;
}) {
  const clock = new VirtualClock({ autoAdvance: true });
  const radio = new VirtualRadio({
    clock,
    linkLayerPayload: 27,
    connectionIntervalMs: 30,
    attMtuCap: options.attMtuCap,
    seed: options.seed,
    ...(options.lossRate === undefined ? {} : { lossRate: options.lossRate }),
  });
  // Before bleno or noble is first required: both construct their HCI socket then.
  installVirtualHci(radio);
  const bleno = loadBleno({ deviceId: 0 });
  const noble = createNoble({ deviceId: 1 });
  const current = (): ConnectionInfo => {
    const all = radio.connections();
    const c = all[all.length - 1];
    if (c === undefined) throw new Error('no connection');
    return c;
  };
  return { clock, radio, bleno, noble, lockReady: startLock(bleno), current };
}
