/** Crash-safe stores of the lock runtime (README.md, "Stores"). */
export { StoreError, isStoreError } from './errors.js';
export type { StoreErrorCode } from './errors.js';
export { NodeStoreFs } from './store-fs.js';
export type { StoreFs, StoreFileHandle } from './store-fs.js';
export { CrashingStoreFs } from './crashing-store-fs.js';
export { CountingStoreFs } from './counting-store-fs.js';
export type { CrashingStoreFsOptions, DiskImage, TornWriteMode } from './crashing-store-fs.js';
export { crc32 } from './crc32.js';
export { AtomicFile, ATOMIC_FILE_HEADER_BYTES, ATOMIC_FILE_FORMAT_VERSION } from './atomic-file.js';
export type { AtomicFileOptions } from './atomic-file.js';
export {
  AppendLog,
  APPEND_LOG_FRAME_BYTES,
  APPEND_LOG_HEADER_BYTES,
  APPEND_LOG_FORMAT_VERSION,
} from './append-log.js';
export type { AppendLogOpened, AppendLogOptions } from './append-log.js';
export { MAX_TOKEN_ID_BYTES } from './token-id.js';
export { UseCounterStore, USE_COUNTER_MAX_ENTRIES } from './use-counter-store.js';
export type {
  ConsumeAllResult,
  ConsumeItem,
  ConsumeResult,
  UseCounterStoreOptions,
} from './use-counter-store.js';
export {
  RevocationStore,
  REVOCATION_MAX_ENTRIES,
  REVOCATION_ENTRY_OVERHEAD_BYTES,
} from './revocation-store.js';
export type { RevocationDelta, RevocationStoreOptions, RevokedToken } from './revocation-store.js';
export {
  AuditLog,
  recordHash,
  AUDIT_GENESIS_HASH,
  AUDIT_MAX_RECORDS,
  AUDIT_MAX_PAYLOAD_BYTES,
} from './audit-log.js';
export type { AuditLogOptions, AuditRecord } from './audit-log.js';
export { Outbox, OUTBOX_MAX_BYTES, OUTBOX_MAX_ENTRIES, OUTBOX_MAX_PAYLOAD_BYTES } from './outbox.js';
export type { OutboxEntry, OutboxKind, OutboxOptions } from './outbox.js';
export { ConfigStore, CONFIG_MAX_BYTES } from './config-store.js';
export type { ConfigStoreOptions, ConfigValue } from './config-store.js';
export { sweepPowerCuts } from './power-cut-sweep.js';
export type { PowerCutScenario, PowerCutSweepOptions, PowerCutSweepReport } from './power-cut-sweep.js';
