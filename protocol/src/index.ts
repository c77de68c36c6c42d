/** Public surface of `protocol/`: Tandem's wire formats and their rules (SPEC.md). No I/O. */
export * from './errors.js';
export * from './status.js';
export * from './cbor.js';
export * from './keys.js';
export * from './cose.js';
export * from './schedule.js';
export * from './token.js';
export * from './chain.js';
export * from './pop.js';
export * from './revocation.js';
export * from './time-beacon.js';
export * from './gatt.js';
export * from './mqtt.js';
export * from './claim-receipt.js';
// The public names of the conventions §6-§9 share; the rest of lib/ stays internal.
export { CONTENT_FORMAT, LOCK_ID_PATTERN, UINT32_MAX, isLockId } from './lib/signed-payload.js';
export type { DetailValue } from './lib/signed-payload.js';
