/**
 * Typed loaders for the two real stacks on a virtual radio. Minimal hand-written types: only what Tandem
 * uses of `@abandonware/bleno` and `@abandonware/noble` (neither ships TypeScript types); the lock's GATT
 * service (`firmware-sim/src/ble/bleno-types.ts`) uses the same bleno types on real HCI too.
 *
 * Call {@link installVirtualHci} first: both stacks construct their HCI socket when first required.
 */
import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';

const require = createRequire(import.meta.url);

/** Result codes of bleno characteristic callbacks (ATT error codes, Vol 3 Part F 3.4.1.1). */
export interface BlenoResultCodes {
  readonly RESULT_SUCCESS: number;
  readonly RESULT_INVALID_OFFSET: number;
  readonly RESULT_ATTR_NOT_LONG: number;
  readonly RESULT_INVALID_ATTRIBUTE_LENGTH: number;
  readonly RESULT_UNLIKELY_ERROR: number;
}

/** Options of `new bleno.Characteristic(...)`. */
export interface BlenoCharacteristicOptions {
  uuid: string;
  properties: Array<'read' | 'write' | 'writeWithoutResponse' | 'notify' | 'indicate'>;
  value?: Buffer | null;
  onReadRequest?: (offset: number, callback: (result: number, data?: Buffer) => void) => void;
  onWriteRequest?: (
    data: Buffer,
    offset: number,
    withoutResponse: boolean,
    callback: (result: number) => void,
  ) => void;
  onSubscribe?: (maxValueSize: number, updateValueCallback: (data: Buffer) => void) => void;
  onUnsubscribe?: () => void;
}

/** The bleno singleton (peripheral role). */
export interface Bleno extends EventEmitter {
  readonly state: string;
  readonly address: string;
  readonly mtu: number;
  readonly Characteristic: (new (options: BlenoCharacteristicOptions) => object) & BlenoResultCodes;
  readonly PrimaryService: new (options: { uuid: string; characteristics: object[] }) => object;
  startAdvertising(name: string, serviceUuids: string[], callback?: (error?: Error | null) => void): void;
  /** Advertising and scan response as raw AD structures (Core Vol 3 Part C §11). */
  startAdvertisingWithEIRData(advertisementData: Buffer, scanData: Buffer): void;
  stopAdvertising(callback?: () => void): void;
  setServices(services: object[], callback?: (error?: Error | null) => void): void;
  disconnect(): void;
}

/** A characteristic as seen by noble. */
export interface NobleCharacteristic extends EventEmitter {
  readonly uuid: string;
  readonly properties: string[];
  readAsync(): Promise<Buffer>;
  writeAsync(data: Buffer, withoutResponse: boolean): Promise<void>;
  subscribeAsync(): Promise<void>;
  unsubscribeAsync(): Promise<void>;
}

/** A remote peripheral as seen by noble. */
export interface NoblePeripheral extends EventEmitter {
  readonly id: string;
  readonly address: string;
  readonly state: string;
  readonly mtu: number | null;
  readonly advertisement: { localName?: string; serviceUuids: string[] };
  connectAsync(): Promise<void>;
  disconnectAsync(): Promise<void>;
  discoverSomeServicesAndCharacteristicsAsync(
    serviceUuids: string[],
    characteristicUuids: string[],
  ): Promise<{ services: object[]; characteristics: NobleCharacteristic[] }>;
}

/** A noble instance (central role). */
export interface Noble extends EventEmitter {
  readonly state: string;
  startScanningAsync(serviceUuids?: string[], allowDuplicates?: boolean): Promise<void>;
  stopScanningAsync(): Promise<void>;
}

/**
 * Load the bleno singleton on HCI device `deviceId` (sets `BLENO_HCI_DEVICE_ID`, read by bleno when the first
 * `stateChange` listener is added). One bleno per process.
 */
export function loadBleno(options: { deviceId: number; advertisingIntervalMs?: number }): Bleno {
  process.env.BLENO_HCI_DEVICE_ID = String(options.deviceId);
  if (options.advertisingIntervalMs !== undefined) {
    process.env.BLENO_ADVERTISING_INTERVAL = String(options.advertisingIntervalMs);
  }
  return require('@abandonware/bleno') as Bleno;
}

/** Create a noble instance on HCI device `deviceId` through `@abandonware/noble/with-custom-binding`. */
export function createNoble(options: { deviceId: number }): Noble {
  const withCustomBinding = require('@abandonware/noble/with-custom-binding') as (opts: {
    deviceId: number;
  }) => Noble;
  return withCustomBinding({ deviceId: options.deviceId });
}
