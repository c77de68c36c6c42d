/** Public surface of `cloud-bridge/`: the broker, the bridge, the store and the cloud process built of them. */
export * from './errors.js';
export * from './credentials.js';
export * from './acl.js';
export * from './ingest.js';
export * from './feed.js';
export * from './sync.js';
export * from './revocation-history.js';
export * from './issuer.js';
export * from './broker.js';
export * from './bridge.js';
export * from './admin.js';
export * from './cloud.js';
export type * from './store/types.js';
export { SqlCloudStore, openSqlStore } from './store/sql-store.js';
export type { StoreConfig } from './store/sql-store.js';
export type { LogEntry, LogSink } from './log.js';
