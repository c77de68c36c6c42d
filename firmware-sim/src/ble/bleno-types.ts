/**
 * The types of `@abandonware/bleno` 0.6.2 the lock uses (bleno is CommonJS and ships no types): the library's
 * surface is declared once, in `hardware/src/virtual-radio/stacks.ts`; this adds the internals the crash
 * guard reaches.
 */
import type { EventEmitter } from 'node:events';
import type {
  Bleno,
  BlenoCharacteristicOptions,
  BlenoResultCodes,
} from '../../../hardware/src/virtual-radio/stacks.js';

export type { BlenoCharacteristicOptions, BlenoResultCodes };

/** A characteristic property in bleno's spelling. */
export type BlenoProperty = BlenoCharacteristicOptions['properties'][number];

/**
 * The parts of the bleno singleton the lock uses. Events used: `stateChange` (adding the first listener
 * opens the HCI socket), `accept` (central address), `disconnect` (central address), `mtuChange` (ATT MTU),
 * `advertisingStart`, `advertisingStartError`, `advertisingStop`, `servicesSet`, `servicesSetError`.
 */
export type BlenoApi = EventEmitter &
  Pick<
    Bleno,
    | 'state'
    | 'mtu'
    | 'Characteristic'
    | 'PrimaryService'
    | 'startAdvertisingWithEIRData'
    | 'stopAdvertising'
    | 'setServices'
    | 'disconnect'
  >;

/** Loads (requires) bleno; called once, inside `start()`, never at import. */
export type BlenoLoader = () => BlenoApi;

/**
 * The internals of bleno's Linux bindings the crash guard reaches (bleno 0.6.2 `lib/hci-socket/`): the HCI
 * socket whose `data` listener runs all of bleno's HCI, L2CAP, SMP and ATT parsing synchronously.
 */
export interface BlenoInternals {
  readonly _bindings?: {
    readonly _hci?: { readonly _socket?: EventEmitter };
    /** The current connection's HCI handle (set before `accept` is emitted, null after `disconnect`). */
    readonly _handle?: number | null;
  };
}
