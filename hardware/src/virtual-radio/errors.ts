/**
 * Coded errors of the virtual radio, shaped like `HardwareError` (see `../interfaces.ts`): `code` is stable,
 * `message` says what is wrong and what to do about it.
 */

import { TandemError } from '../../../protocol/src/errors.js';

/** Every failure the virtual radio reports. */
export type VirtualRadioErrorCode =
  | 'ERR_RADIO_INVALID_OPTION' // an option is outside its documented range
  | 'ERR_RADIO_CLOSED' // the radio, link or socket was used after close()
  | 'ERR_RADIO_NOT_INSTALLED' // the HCI socket stand-in was constructed with no radio installed
  | 'ERR_RADIO_DEVICE_IN_USE' // another process already drives this HCI device id
  | 'ERR_RADIO_LINK' // the multi-process link could not be opened or broke
  | 'ERR_RADIO_PROTOCOL' // a malformed frame arrived on the multi-process link
  | 'ERR_RADIO_CLOCK'; // the virtual clock was misused (negative step, runaway timers)

/** The one error class of the virtual radio. */
export class VirtualRadioError extends TandemError {
  readonly code: VirtualRadioErrorCode;
  constructor(code: VirtualRadioErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VirtualRadioError';
    this.code = code;
  }
}
