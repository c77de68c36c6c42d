/**
 * Errors of the lock's BLE peripheral. Each code says what failed; messages for OS-level failures carry the
 * fix-it text an installer needs on the Pi (teslamotors/vehicle-command style: "grant CAP_NET_ADMIN").
 */

import { TandemError } from '../../../protocol/src/errors.js';

/** Every code a BLE peripheral error can carry. */
export type BleErrorCode =
  /** The HCI socket was refused for lack of CAP_NET_RAW / CAP_NET_ADMIN (EPERM, EACCES, "unauthorized"). */
  | 'ERR_BLE_PERMISSION'
  /** The adapter is held by someone else (EBUSY; advertising refused with Command Disallowed). */
  | 'ERR_BLE_ADAPTER_BUSY'
  /** No AF_BLUETOOTH in this kernel (EAFNOSUPPORT), or the controller does not do LE. */
  | 'ERR_BLE_UNSUPPORTED'
  /** No such HCI device (ENODEV), or the adapter went down. */
  | 'ERR_BLE_NO_ADAPTER'
  /** bleno did not come up (module missing, powered off, start-up timed out). */
  | 'ERR_BLE_START'
  /** The peripheral was stopped while an operation waited. */
  | 'ERR_BLE_STOPPED'
  /** The supervisor gave up after too many restarts: the process must be restarted (systemd does). */
  | 'ERR_BLE_FATAL'
  /** An option of the peripheral is out of range (e.g. a connection parameter request Apple would reject). */
  | 'ERR_BLE_CONFIG';

/** An error of the BLE peripheral, with a stable code and the original error as `cause`. */
export class BleError extends TandemError {
  readonly code: BleErrorCode;

  constructor(code: BleErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BleError';
    this.code = code;
  }
}

/** True when `err` is a {@link BleError}, optionally with `code`. */
export function isBleError(err: unknown, code?: BleErrorCode): err is BleError {
  return err instanceof BleError && (code === undefined || err.code === code);
}

/** Fix-it text for a missing capability ([bleno README, "Running without root/sudo"]). */
export const FIX_PERMISSION =
  'needs CAP_NET_ADMIN/CAP_NET_RAW: run via the systemd unit or ' +
  '`sudo setcap cap_net_raw,cap_net_admin+eip $(readlink -f $(which node))`';

/** Fix-it text for an adapter held by BlueZ. */
export const FIX_BUSY =
  'is bluetoothd holding hci0? `sudo systemctl stop bluetooth` or `sudo hciconfig hci0 down`';

/** Fix-it text for a kernel or machine without Bluetooth. */
export const FIX_UNSUPPORTED =
  'this kernel has no Bluetooth HCI sockets (AF_BLUETOOTH): on a laptop or in CI install the virtual radio ' +
  'first (`installVirtualHci(radio)` from hardware/src/virtual-radio); on the Pi check that ' +
  '`dtoverlay=disable-bt` is not in /boot/config.txt and that `hciconfig -a` lists hci0';

/** Fix-it text for a missing or downed adapter. */
export const FIX_NO_ADAPTER =
  'no usable HCI device: check `hciconfig -a` and `rfkill list`, then `sudo rfkill unblock bluetooth` and ' +
  '`sudo hciconfig hci0 up`; set BLENO_HCI_DEVICE_ID for another adapter';

function errnoOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const message = (err as { message?: unknown }).message;
  // The native bluetooth-hci-socket throws ErrnoException-like errors whose code may only be in the text.
  if (typeof message === 'string') {
    const m = /\b(EPERM|EACCES|EBUSY|EAFNOSUPPORT|ENODEV|ENETDOWN)\b/.exec(message);
    if (m !== null) return m[1];
  }
  return undefined;
}

/**
 * Turns what loading or initialising bleno threw into a {@link BleError} with fix-it text. `what` says which
 * step failed ("loading bleno", "opening hci0").
 */
export function bleErrorFrom(err: unknown, what: string): BleError {
  if (err instanceof BleError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  switch (errnoOf(err)) {
    case 'EPERM':
    case 'EACCES':
      return new BleError('ERR_BLE_PERMISSION', `${what}: ${detail}; ${FIX_PERMISSION}`, { cause: err });
    case 'EBUSY':
      return new BleError('ERR_BLE_ADAPTER_BUSY', `${what}: ${detail}; ${FIX_BUSY}`, { cause: err });
    case 'EAFNOSUPPORT':
      return new BleError('ERR_BLE_UNSUPPORTED', `${what}: ${detail}; ${FIX_UNSUPPORTED}`, { cause: err });
    case 'ENODEV':
    case 'ENETDOWN':
      return new BleError('ERR_BLE_NO_ADAPTER', `${what}: ${detail}; ${FIX_NO_ADAPTER}`, { cause: err });
    default:
      return new BleError('ERR_BLE_START', `${what}: ${detail}`, { cause: err });
  }
}

/** The error for a bleno adapter state that will not become poweredOn by itself. */
export function bleErrorForState(state: string): BleError {
  switch (state) {
    case 'unauthorized':
      return new BleError('ERR_BLE_PERMISSION', `Bluetooth adapter state "unauthorized"; ${FIX_PERMISSION}`);
    case 'unsupported':
      return new BleError(
        'ERR_BLE_UNSUPPORTED',
        `Bluetooth adapter state "unsupported" (no LE, or HCI older than 4.0); ${FIX_UNSUPPORTED}`,
      );
    default:
      return new BleError('ERR_BLE_NO_ADAPTER', `Bluetooth adapter state "${state}"; ${FIX_NO_ADAPTER}`);
  }
}
