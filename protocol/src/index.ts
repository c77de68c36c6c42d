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
