/**
 * Minimal hand-written types for the parts of `@abandonware/bleno` 0.6.2 the lock uses (bleno is CommonJS and
 * ships no types). `hardware/src/virtual-radio/stacks.ts` declares a smaller subset for its own tests; this one
 * adds advertising with raw EIR data and the internals the crash guard reaches.
 */
import type { EventEmitter } from 'node:events';

/** Result codes of characteristic callbacks: ATT error codes (Core Vol 3 Part F §3.4.1.1). */
export interface BlenoResultCodes {
  readonly RESULT_SUCCESS: number;
  readonly RESULT_INVALID_OFFSET: number;
  readonly RESULT_ATTR_NOT_LONG: number;
  readonly RESULT_INVALID_ATTRIBUTE_LENGTH: number;
  readonly RESULT_UNLIKELY_ERROR: number;
}

/** A characteristic property in bleno's spelling. */
export type BlenoProperty = 'read' | 'write' | 'writeWithoutResponse' | 'notify' | 'indicate';

/** Options of `new bleno.Characteristic(...)`; handlers run inside bleno's ATT code. */
export interface BlenoCharacteristicOptions {
  uuid: string;
  properties: BlenoProperty[];
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

/**
 * The bleno singleton. Events used: `stateChange` (adding the first listener opens the HCI socket), `accept`
 * (central address), `disconnect` (central address), `mtuChange` (ATT MTU), `advertisingStart`,
 * `advertisingStartError`, `advertisingStop`, `servicesSet`, `servicesSetError`.
 */
export interface BlenoApi extends EventEmitter {
  readonly state: string;
  readonly mtu: number;
  readonly Characteristic: (new (options: BlenoCharacteristicOptions) => object) & BlenoResultCodes;
  readonly PrimaryService: new (options: { uuid: string; characteristics: object[] }) => object;
  startAdvertisingWithEIRData(advertisementData: Buffer, scanData: Buffer): void;
  stopAdvertising(): void;
  setServices(services: object[]): void;
  disconnect(): void;
}

/** Loads (requires) bleno; called once, inside `start()`, never at import. */
export type BlenoLoader = () => BlenoApi;

/**
 * The internals of bleno's Linux bindings the crash guard reaches (bleno 0.6.2 `lib/hci-socket/`): the HCI
 * socket whose `data` listener runs all of bleno's HCI, L2CAP, SMP and ATT parsing synchronously.
 */
export interface BlenoInternals {
  readonly _bindings?: { readonly _hci?: { readonly _socket?: EventEmitter } };
}
