/**
 * The cloud's storage, behind one interface ([TANDEM-MQTT-8], [TANDEM-MQTT-11], [TANDEM-REV-9]) with two
 * implementations that pass one contract suite (cloud-bridge/test/store-contract.ts): SQLite embedded by
 * default and PostgreSQL for a fleet. Every method is safe to call from several bridge instances at once:
 * records are keyed by (lock id, epoch, sequence), progress moves by compare-and-set.
 */

import type { PublicKey } from '../../../protocol/src/keys.js';
import type { AccountStore, DelegationSource, Share } from '../oidc/store.js';

export type { Account, Share } from '../oidc/store.js';

/** A registered lock: its device key (verifies everything it signs) and its MQTT password record. */
export interface LockRecord {
  readonly lockId: string;
  /** Raw Ed25519 public key, 32 bytes ([TANDEM-KEY-2]). */
  readonly deviceKey: Uint8Array;
  /** Mosquitto `$7$` record of the lock's MQTT password ([TANDEM-MQTT-13]); null if it has none yet. */
  readonly passwordHash: string | null;
  readonly registeredAt: number;
}

/** An outbox record the cloud holds, exactly as the lock signed it. */
export interface StoredRecord {
  readonly lockId: string;
  readonly epoch: number;
  readonly sequence: number;
  readonly kind: 'alert' | 'audit';
  /** The complete COSE_Sign1 bytes. */
  readonly bytes: Uint8Array;
  /** Lock time of the record, Unix seconds. */
  readonly time: number;
  /** When the cloud stored it, Unix milliseconds. */
  readonly receivedAt: number;
  /** How it arrived: `mqtt` or `relay` (a phone's upload). */
  readonly via: string;
}

/** Result of {@link CloudStore.insertRecord}. */
export type InsertOutcome =
  | 'inserted'
  | 'duplicate' // the same bytes were already held: ignored
  | 'conflict'; // other bytes hold that (lock, epoch, sequence): a fork

/** The cloud's progress through one outbox epoch of one lock. */
export interface OutboxProgress {
  readonly lockId: string;
  readonly epoch: number;
  /** Highest sequence such that all of 1..sequence are held and chain-checked; 0 when none. */
  readonly ackedSequence: number;
  /** SHA-256 of the last audit record within 1..ackedSequence, or null when none yet. */
  readonly lastAuditHash: Uint8Array | null;
  /** When the cloud first saw this epoch, Unix milliseconds (the latest is the lock's current epoch). */
  readonly firstSeenAt: number;
}

/** Something the owner should be told: an alert, a gap, a fork, a forgery, an epoch change, ... */
export interface CloudEvent {
  readonly id: number;
  readonly lockId: string;
  readonly kind: string;
  /** Small JSON-able facts. */
  readonly detail: Readonly<Record<string, string | number | boolean | null>>;
  readonly at: number;
}

/** The last lock state report held for a lock ([TANDEM-MQTT-10]). */
export interface StoredState {
  readonly lockId: string;
  readonly bytes: Uint8Array;
  readonly state: string;
  readonly time: number;
  readonly receivedAt: number;
}

/** The revocation list the cloud holds for a lock, and its signed full update ([TANDEM-REV-3]). */
export interface StoredRevocation {
  readonly lockId: string;
  readonly version: number;
  /** Hex token id → expiry (Unix seconds). */
  readonly entries: ReadonlyMap<string, number>;
  /**
   * Hex token id → the version that added it, so that deltas can be built (revocation-history.ts). Optional
   * when writing: the store dates new entries itself against the list it replaces; an entry without a date
   * (a row from before dates were kept) counts as added in `version`.
   */
  readonly addedIn?: ReadonlyMap<string, number>;
  /** The signed full update for `version`, as published retained. */
  readonly bytes: Uint8Array;
}

/** A lock's latest revocation acknowledgement ([TANDEM-REV-9]): which version landed, and when. */
export interface StoredRevocationAck {
  readonly lockId: string;
  readonly version: number;
  readonly lockTime: number;
  readonly receivedAt: number;
}

/**
 * A lock's latest anchor acknowledgement ([TANDEM-ANCHOR-5]): the issuer anchor version it holds, and when
 * the cloud learnt it.
 */
/** What the owner chose for a lock (PATCH /locks/{id}). */
export interface LockSettings {
  /** Home Assistant may show a `lock` entity with a command topic ([TANDEM-HA-2]). Default false. */
  readonly remoteLocking: boolean;
}

export interface StoredAnchorAck {
  readonly lockId: string;
  /** The anchor version the lock holds ([TANDEM-ANCHOR-3]). */
  readonly version: number;
  /** The lock's time in the ack, Unix seconds. */
  readonly lockTime: number;
  /** When the cloud stored it, Unix milliseconds. */
  readonly receivedAt: number;
  /** How it arrived: `mqtt` or `relay` (a phone's upload, [TANDEM-SYNC-5]). */
  readonly via: string;
}

/** One phone of an account ([TANDEM-DLG-5]): the device id is the OpenID grant id of its login. */
export interface DeviceRecord {
  readonly accountId: string;
  readonly deviceId: string;
  /** The phone's P-256 public key: delegated tokens are bound to it (`cnf`). */
  readonly key: PublicKey;
  /** What the rider calls it ("Bianca's Pixel"); null when unnamed. */
  readonly name: string | null;
  /** RFC 7638 JWK thumbprint (SHA-256, base64url) of the key: what an app shows to tell keys apart. */
  readonly thumbprint: string;
  /** Unix milliseconds. */
  readonly registeredAt: number;
}

/** Who owns a lock: the account that claimed it and the owner key the lock was provisioned with. */
export interface LockClaim {
  readonly lockId: string;
  readonly owner: string;
  /** The owner key of the lock's claim (role `owner` anchor). */
  readonly ownerKey: PublicKey;
  /** The COSE kid of the owner anchor on the lock. */
  readonly ownerKid: Uint8Array;
  /** Unix milliseconds. */
  readonly claimedAt: number;
}

/** Result of {@link CloudStore.claimLock}. */
export type ClaimOutcome =
  | 'claimed' // stored now
  | 'already' // the same owner had claimed it with the same key: nothing changed
  | 'conflict'; // another owner (or another key) holds it

/** One step's outcome inside {@link CloudStore.batch}. */
export type StepOutcome<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/** What {@link CloudStore.batch} hands its function. */
export interface BatchScope {
  /**
   * Runs `fn` as one step of the batch (an SQL savepoint): when `fn` throws, the writes it made are undone,
   * the batch goes on, and the error is returned rather than thrown, so one bad message is refused alone.
   * Steps run one after another, never concurrently.
   */
  step<T>(fn: () => Promise<T>): Promise<StepOutcome<T>>;
}

/** The storage interface. Implementations: `SqlCloudStore` over SQLite or PostgreSQL. */
export interface CloudStore extends AccountStore, DelegationSource {
  /**
   * Group commit: runs `fn` in one transaction. Every call of this store made from inside `fn` (its async
   * context) joins the transaction and sees its uncommitted writes; the promise resolves once the commit is
   * durable, and rejects, with everything rolled back, when `fn` throws or the commit fails. Calls from
   * outside wait for the batch on SQLite (one connection) and run beside it on PostgreSQL. Batches do not
   * nest. The bridge writes a burst of messages this way, one fsync for all ([TANDEM-MQTT-15]).
   */
  batch<T>(fn: (scope: BatchScope) => Promise<T>): Promise<T>;

  registerLock(lock: LockRecord): Promise<void>;
  getLock(lockId: string): Promise<LockRecord | undefined>;
  listLocks(): Promise<LockRecord[]>;

  insertRecord(record: StoredRecord): Promise<InsertOutcome>;
  getRecord(lockId: string, epoch: number, sequence: number): Promise<StoredRecord | undefined>;
  /** Records of one epoch with a sequence above `after`, in sequence order, at most `limit`. */
  recordsAfter(lockId: string, epoch: number, after: number, limit: number): Promise<StoredRecord[]>;
  /** Alerts, newest first. */
  listAlerts(options: { lockId?: string; limit: number }): Promise<StoredRecord[]>;
  countRecords(lockId: string): Promise<number>;
  /**
   * Records of one kind of a lock in the order the cloud received them (then epoch, sequence), strictly after
   * the position `after`, at most `limit`: the sharing API pages the audit log with it.
   */
  recordsByArrival(
    lockId: string,
    kind: StoredRecord['kind'],
    after: { readonly receivedAt: number; readonly epoch: number; readonly sequence: number } | undefined,
    limit: number,
  ): Promise<StoredRecord[]>;

  /** Creates the progress row of an epoch if absent; returns true when it was new. */
  touchEpoch(lockId: string, epoch: number, at: number): Promise<boolean>;
  getProgress(lockId: string, epoch: number): Promise<OutboxProgress | undefined>;
  /** Every epoch of a lock, oldest first. */
  listEpochs(lockId: string): Promise<OutboxProgress[]>;
  /** Moves progress from `fromSequence` to `toSequence`; false when another writer moved it first. */
  advanceProgress(
    lockId: string,
    epoch: number,
    fromSequence: number,
    toSequence: number,
    lastAuditHash: Uint8Array | null,
  ): Promise<boolean>;

  addEvent(event: Omit<CloudEvent, 'id'>): Promise<number>;
  /** Events with an id above `after`, oldest first (`newestFirst`: the latest `limit`, newest first). */
  listEvents(options: {
    lockId?: string;
    after?: number;
    limit: number;
    newestFirst?: boolean;
  }): Promise<CloudEvent[]>;

  putState(state: StoredState): Promise<void>;
  getState(lockId: string): Promise<StoredState | undefined>;

  getRevocation(lockId: string): Promise<StoredRevocation | undefined>;
  /**
   * Stores version `next.version` only if the held version is `expectedVersion` (0 = none); false otherwise.
   * Entries of `next` without an `addedIn` date are dated against the held list (`deriveAddedIn`).
   */
  putRevocation(next: StoredRevocation, expectedVersion: number): Promise<boolean>;
  listRevocations(): Promise<StoredRevocation[]>;
  /** Keeps the acknowledgement with the highest version. */
  putRevocationAck(ack: StoredRevocationAck): Promise<void>;
  getRevocationAck(lockId: string): Promise<StoredRevocationAck | undefined>;
  /**
   * Keeps the anchor acknowledgement with the highest version ([TANDEM-ANCHOR-5]); true when this one was
   * stored (a higher version than the held one, or the first).
   */
  putAnchorAck(ack: StoredAnchorAck): Promise<boolean>;
  getAnchorAck(lockId: string): Promise<StoredAnchorAck | undefined>;
  /** The owner's settings of a lock; the defaults (remote locking off, [TANDEM-HA-2]) when never set. */
  getLockSettings(lockId: string): Promise<LockSettings>;
  setLockSettings(lockId: string, settings: LockSettings, at?: number): Promise<void>;
  /**
   * Draws the next remote-command sequence of a lock (1, 2, 3, …), durably, before the command is published
   * ([TANDEM-RCMD-4]): a number is never returned twice, even across restarts and concurrent bridges.
   */
  nextRemoteCommandSequence(lockId: string, at?: number): Promise<number>;
  /** When the cloud last heard from the lock (a record, a state report, a revocation or anchor ack), Unix ms. */
  lastContact(lockId: string): Promise<number | undefined>;

  // Accounts and phones (AccountStore: createAccount, findAccount, registerPhoneKey, phoneKey,
  // removePhoneKey). registerPhoneKey here also takes the device's name and registration time.
  registerPhoneKey(
    accountId: string,
    deviceId: string,
    key: PublicKey,
    options?: { readonly name?: string | null; readonly at?: number },
  ): Promise<void>;
  getDevice(accountId: string, deviceId: string): Promise<DeviceRecord | undefined>;
  listDevices(accountId: string): Promise<DeviceRecord[]>;

  // Ownership.
  /** Records that `claim.owner` owns the lock; never moves a lock from one owner to another. */
  claimLock(claim: LockClaim): Promise<ClaimOutcome>;
  getClaim(lockId: string): Promise<LockClaim | undefined>;
  /** The claims of one owner, by lock id. */
  claimsOf(owner: string): Promise<LockClaim[]>;

  // Shares (DelegationSource: sharesFor(rider)).
  /** Stores a new share (checked against [TANDEM-DLG-3]); ERR_CLOUD_STORE when the id is taken. */
  putShare(share: Share): Promise<void>;
  getShare(id: string): Promise<Share | undefined>;
  /** Every share of a lock, oldest first. */
  sharesOfLock(lockId: string): Promise<Share[]>;
  /** Marks a share revoked at `at` (Unix seconds); false when it does not exist or was already revoked. */
  revokeShare(id: string, at: number): Promise<boolean>;
  /** Adds uses seen in audit records (§9.4). */
  reportUses(id: string, uses: number): Promise<void>;

  close(): Promise<void>;
}
