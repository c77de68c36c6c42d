/**
 * Opening the lock's stores at start, with safe mode (issue 3, "What it does" 3, "Safe mode"): a store whose
 * bytes fail their checksum (ERR_STORE_CORRUPT) is never trusted. Its file is moved aside (`<name>.corrupt`,
 * kept for the owner's diagnosis), an empty store is opened in its place, and the runtime is told to start in
 * safe mode: locked, unlocks refused with SAFE_MODE, owner management only. Any other store failure (I/O) is
 * thrown: the lock cannot run and stays locked.
 */
import createDebug from 'debug';
import { AuditLog } from '../store/audit-log.js';
import { ConfigStore } from '../store/config-store.js';
import { isStoreError } from '../store/errors.js';
import { Outbox } from '../store/outbox.js';
import { RevocationStore } from '../store/revocation-store.js';
import type { StoreFs } from '../store/store-fs.js';
import { UseCounterStore } from '../store/use-counter-store.js';
import { legacyChainHead } from './audit.js';

const debug = createDebug('tandem:lock:stores');

/** The stores the lock runtime uses. */
export interface LockStores {
  readonly config: ConfigStore;
  readonly useCounters: UseCounterStore;
  readonly revocations: RevocationStore;
  readonly audit: AuditLog;
  readonly outbox: Outbox;
}

/** What {@link openLockStores} opened, and which stores were found corrupt (and replaced by empty ones). */
export interface OpenedLockStores {
  readonly stores: LockStores;
  /** File names found corrupt; non-empty means: start in safe mode. */
  readonly corrupt: readonly string[];
}

/** Options of {@link openLockStores}. */
export interface OpenLockStoresOptions {
  /**
   * Not used since [TANDEM-AUDIT-2] (the audit log keeps the records the authority signs, and signs nothing
   * itself); accepted so that callers written before it keep compiling.
   * @deprecated
   */
  readonly auditSign?: (hash: Uint8Array) => Uint8Array;
  /** Not used since [TANDEM-AUDIT-2] (each record carries its trusted time). @deprecated */
  readonly auditClock?: () => number;
}

/** Opens every store in `dir`, moving corrupt ones aside (module comment). */
export async function openLockStores(
  fs: StoreFs,
  dir: string,
  _options: OpenLockStoresOptions = {},
): Promise<OpenedLockStores> {
  await fs.mkdir(dir);
  const corrupt: string[] = [];
  const guarded = async <T>(name: string, open: () => Promise<T>): Promise<T> => {
    try {
      return await open();
    } catch (error) {
      if (!isStoreError(error, 'ERR_STORE_CORRUPT')) throw error;
      debug('%s is corrupt, moving it aside: %O', name, error);
      corrupt.push(name);
      await fs.rename(`${dir}/${name}`, `${dir}/${name}.corrupt`);
      await fs.fsyncDir(dir);
      return open();
    }
  };
  const config = await guarded('config.bin', () => ConfigStore.open(fs, dir));
  const useCounters = await guarded('use-counters.log', () => UseCounterStore.open(fs, dir));
  const revocations = await guarded('revocations.log', () => RevocationStore.open(fs, dir));
  // [TANDEM-AUDIT-4]: a log of format 1 is migrated, the chain continuing from the head its entries noted.
  const audit = await guarded('audit.log', () => AuditLog.open(fs, dir, { legacyChainHead }));
  const outbox = await guarded('outbox.log', () => Outbox.open(fs, dir));
  return { stores: { config, useCounters, revocations, audit, outbox }, corrupt };
}
