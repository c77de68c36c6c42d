/**
 * NobleTransport on real HCI, on a machine that may have no Bluetooth: noble is loaded only when a BLE
 * operation runs, and an unusable adapter becomes ERR_GW_BLE_UNAVAILABLE with the command that fixes it.
 * No virtual HCI is installed in this file, so noble reaches for the native socket.
 */
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../src/errors.js';
import { NobleTransport, bleUnavailable } from '../src/noble-transport.js';

describe('NobleTransport without a usable adapter', () => {
  it('loads nothing at construction, and fails the first scan with ERR_GW_BLE_UNAVAILABLE', async () => {
    const transport = new NobleTransport({ binding: { kind: 'hci', deviceId: 0 }, powerOnTimeoutMs: 2_000 });
    const error = await transport.scan('lock-7f3a', { timeoutMs: 1_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    // Where this machine has a working adapter and the rights to use it, the scan times out instead.
    if (error instanceof GatewayError && error.code === 'ERR_GW_LOCK_NOT_FOUND') return;
    expect(error).toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ code: 'ERR_GW_BLE_UNAVAILABLE' });
    await transport.close();
    await transport.close();
  });

  it.each([
    [{ code: 'EAFNOSUPPORT' }, undefined, /no Bluetooth HCI support.*--radio/],
    [{ code: 'EPERM' }, undefined, /CAP_NET_RAW\/CAP_NET_ADMIN: `sudo setcap cap_net_raw,cap_net_admin\+eip/],
    [undefined, 'unauthorized', /CAP_NET_RAW\/CAP_NET_ADMIN/],
    [undefined, 'poweredOff', /`bluetoothctl power on` \/ `sudo hciconfig hci0 up`/],
    [{ code: 'ENODEV' }, undefined, /missing or powered off/],
  ])('explains %o (state %s) with fix-it text', (cause, state, message) => {
    const e = bleUnavailable(cause, state);
    expect(e.code).toBe('ERR_GW_BLE_UNAVAILABLE');
    expect(e.message).toMatch(message);
  });
});
