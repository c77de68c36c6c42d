/** The lock's BLE peripheral (SPEC §8): the runtime port, the per-connection session and the bleno adapter. */
export type { LockGattBackend, RelayItem } from './lock-gatt-backend.js';
export { DELIVERED_TYPES, RELAY_TYPES, UNKNOWN_STATE } from './lock-gatt-backend.js';
export { GattSession, DEFAULT_GATT_SESSION_LIMITS } from './gatt-session.js';
export type {
  DropReason,
  GattSessionLimits,
  GattSessionOptions,
  GattSessionStats,
  NotifyingCharacteristic,
  NotifySender,
  ReadOutcome,
  ReadableCharacteristic,
  WritableCharacteristic,
} from './gatt-session.js';
export { BlenoLockPeripheral, loadSystemBleno } from './bleno-lock-peripheral.js';
export type {
  BlenoLockPeripheralEvents,
  BlenoLockPeripheralOptions,
  ConnectionSnapshot,
  PeripheralState,
  PeripheralStats,
} from './bleno-lock-peripheral.js';
export type { BlenoApi, BlenoLoader } from './bleno-types.js';
export { BleError, isBleError, bleErrorFrom, bleErrorForState } from './errors.js';
export type { BleErrorCode } from './errors.js';
export { AuthorityBackend } from './authority-backend.js';
export type { AuthorityBackendOptions } from './authority-backend.js';
