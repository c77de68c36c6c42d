/**
 * Starting the peripheral where bleno cannot open the adapter. The real failures (EPERM without capabilities,
 * EAFNOSUPPORT without Bluetooth, an adapter held by bluetoothd) need hardware, so a stand-in bleno raises
 * them the way bleno 0.6.2 does; the test checks the coded error and its fix-it text. Importing the module
 * must not load bleno.
 */
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../hardware/src/clock.js';
import { BlenoLockPeripheral } from '../src/ble/bleno-lock-peripheral.js';
import type { BlenoApi } from '../src/ble/bleno-types.js';
import { isBleError } from '../src/ble/errors.js';
import { FakeBackend } from './ble-fixture.js';

/** A bleno double: `stateChange` listeners trigger `onInit`, commands answer as scripted. */
class ScriptedBleno extends EventEmitter {
  state = 'unknown';
  mtu = 23;
  readonly Characteristic = Object.assign(
    class {
      constructor(readonly options: unknown) {}
    },
    {
      RESULT_SUCCESS: 0,
      RESULT_INVALID_OFFSET: 7,
      RESULT_ATTR_NOT_LONG: 0x0b,
      RESULT_INVALID_ATTRIBUTE_LENGTH: 0x0d,
      RESULT_UNLIKELY_ERROR: 0x0e,
    },
  );
  readonly PrimaryService = class {
    constructor(readonly options: unknown) {}
  };
  advertisingError: Error | undefined;

  constructor(private readonly onInit: (self: ScriptedBleno) => void) {
    super();
    this.on('newListener', (event: string) => {
      if (event === 'stateChange' && this.listenerCount('stateChange') === 0) this.onInit(this);
    });
  }

  setServices(): void {
    setImmediate(() => this.emit('servicesSet'));
  }

  stopAdvertising(): void {
    setImmediate(() => this.emit('advertisingStop'));
  }

  startAdvertisingWithEIRData(): void {
    const err = this.advertisingError;
    setImmediate(() => (err ? this.emit('advertisingStartError', err) : this.emit('advertisingStart')));
  }

  disconnect(): void {}
}

function peripheral(loadBleno: () => BlenoApi): BlenoLockPeripheral {
  return new BlenoLockPeripheral({ backend: new FakeBackend(), loadBleno, clock: new ManualClock(0) });
}

describe('BlenoLockPeripheral.start', () => {
  it('does not load bleno at import', () => {
    const cache = Object.keys(createRequire(import.meta.url).cache);
    expect(cache.filter((p) => p.includes('@abandonware/bleno'))).toEqual([]);
  });

  it('explains a machine without Bluetooth (EAFNOSUPPORT while loading bleno)', async () => {
    const p = peripheral(() => {
      throw Object.assign(new Error('socket: Address family not supported by protocol'), {
        code: 'EAFNOSUPPORT',
      });
    });
    const err = await p.start().catch((e: unknown) => e);
    expect(isBleError(err, 'ERR_BLE_UNSUPPORTED')).toBe(true);
    expect((err as Error).message).toContain('installVirtualHci');
    expect(p.state).toBe('stopped');
  });

  it('explains missing capabilities (EPERM when bleno binds the HCI socket)', async () => {
    const p = peripheral(
      () =>
        new ScriptedBleno(() => {
          throw Object.assign(new Error('bind: Operation not permitted'), { code: 'EPERM' });
        }) as unknown as BlenoApi,
    );
    const err = await p.start().catch((e: unknown) => e);
    expect(isBleError(err, 'ERR_BLE_PERMISSION')).toBe(true);
    expect((err as Error).message).toContain(
      'needs CAP_NET_ADMIN/CAP_NET_RAW: run via the systemd unit or `sudo setcap cap_net_raw,cap_net_admin+eip $(readlink -f $(which node))`',
    );
  });

  it('explains an adapter state of "unauthorized" (bleno’s report of EPERM on the socket)', async () => {
    const p = peripheral(
      () =>
        new ScriptedBleno((self) =>
          setImmediate(() => {
            self.state = 'unauthorized';
            self.emit('stateChange', 'unauthorized');
          }),
        ) as unknown as BlenoApi,
    );
    const err = await p.start().catch((e: unknown) => e);
    expect(isBleError(err, 'ERR_BLE_PERMISSION')).toBe(true);
    expect((err as Error).message).toContain('setcap cap_net_raw,cap_net_admin+eip');
  });

  it('explains an adapter held by bluetoothd (advertising refused with Command Disallowed)', async () => {
    const bleno = new ScriptedBleno((self) =>
      setImmediate(() => {
        self.state = 'poweredOn';
        self.emit('stateChange', 'poweredOn');
      }),
    );
    bleno.advertisingError = new Error('Command Disallowed');
    const err = await peripheral(() => bleno as unknown as BlenoApi)
      .start()
      .catch((e: unknown) => e);
    expect(isBleError(err, 'ERR_BLE_ADAPTER_BUSY')).toBe(true);
    expect((err as Error).message).toContain(
      'is bluetoothd holding hci0? `sudo systemctl stop bluetooth` or `sudo hciconfig hci0 down`',
    );
    expect(bleno.listenerCount('accept')).toBe(0); // let go of bleno's events
  });
});
