/** Errors of the lock's MQTT link. */

import { TandemError } from '../../../protocol/src/errors.js';

/** Codes, each with its one-line meaning. */
export type MqttLinkErrorCode =
  /** The credentials file is missing, unreadable, not private (mode 0600) or not 64 hex digits. */
  | 'ERR_MQTT_CREDENTIALS'
  /** A TLS file named in the configuration cannot be read. */
  | 'ERR_MQTT_TLS_FILE';

/** A coded error of the MQTT link; `message` names the file or field and what to do. */
export class MqttLinkError extends TandemError {
  readonly code: MqttLinkErrorCode;
  constructor(code: MqttLinkErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MqttLinkError';
    this.code = code;
  }
}
