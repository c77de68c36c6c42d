/**
 * The one error family of `cloud-bridge/`: every failure carries a stable `code`, one line of meaning each,
 * and says whether a retry may succeed (as gateway/src/errors.ts does after vehicle-command's `Temporary()`).
 */

/** Every code a `cloud-bridge/` function can throw. */
export type CloudErrorCode =
  | 'ERR_CLOUD_CONFIG' // a configuration value (port, path, URL, option) is missing or malformed
  | 'ERR_CLOUD_CREDENTIAL' // a lock credential or password record is malformed ([TANDEM-MQTT-13])
  | 'ERR_CLOUD_LOCK_UNKNOWN' // no lock with that id is registered
  | 'ERR_CLOUD_SYNC_INVALID' // a phone's sync request is malformed or over its limits; nothing was stored
  | 'ERR_CLOUD_STORE' // the store failed or is unavailable (driver missing, migration failed)
  | 'ERR_CLOUD_KEY_FILE' // the issuer key file is unreadable, malformed or too widely readable
  | 'ERR_CLOUD_ADMIN' // the local admin channel refused a request (bad token, bad body)
  | 'ERR_CLOUD_UNAVAILABLE'; // the broker or the cloud process cannot be reached

/** Base class of every error thrown by `cloud-bridge/`. */
export class CloudError extends Error {
  readonly code: CloudErrorCode;
  /** True when the same call may well succeed a moment later (a server still starting, a dropped link). */
  readonly temporary: boolean;
  constructor(code: CloudErrorCode, message: string, options: { cause?: unknown; temporary?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CloudError';
    this.code = code;
    this.temporary = options.temporary ?? false;
  }
}

/** True when `e` is a {@link CloudError}, optionally with the given code. */
export function isCloudError(e: unknown, code?: CloudErrorCode): e is CloudError {
  return e instanceof CloudError && (code === undefined || e.code === code);
}
