/**
 * The OpenID Provider's storage seam: accounts with their phone keys ({@link AccountStore}) and the shares
 * a rider holds ({@link DelegationSource}). Two implementations sit side by side: in memory
 * (`memory-store.ts`) and SQLite through better-sqlite3 (`sqlite-store.ts`); one contract suite runs against
 * both. The cloud's storage (`../store/types.ts`, `CloudStore`) extends both interfaces: in the cloud process
 * accounts, phone keys and shares live in its SQL store; the two implementations here serve the provider run
 * alone (`main.ts`) and its own tests.
 */
import type { PublicKey } from '../../../protocol/src/keys.js';
import type { Schedule } from '../../../protocol/src/schedule.js';

/** A Tandem account: the OpenID subject. */
export interface Account {
  /** The OpenID `sub` and the rider/owner id in tokens: 1-64 of `a-z 0-9 . _ -`, starting alphanumeric. */
  readonly id: string;
  /** Display name, the OpenID `name` claim (1-128 characters). */
  readonly name: string;
  /** Argon2id PHC string (`$argon2id$v=19$...`). */
  readonly passwordHash: string;
}

/**
 * Accounts and their phone keys. A phone key is registered per device, and a device is one login: the OpenID
 * grant its tokens belong to ([TANDEM-DLG-5]). Re-registering a device replaces its key; removing it (a lost
 * phone) leaves the account's other devices alone.
 */
export interface AccountStore {
  /** Adds an account; ERR_OIDC_ACCOUNT_EXISTS when the id is taken. */
  createAccount(account: Account): Promise<void>;
  /** The account with this id, or undefined. */
  findAccount(id: string): Promise<Account | undefined>;
  /** Registers (or replaces) the P-256 phone key of one device of an account. */
  registerPhoneKey(accountId: string, deviceId: string, key: PublicKey): Promise<void>;
  /** The phone key of that device, or undefined when none is registered. */
  phoneKey(accountId: string, deviceId: string): Promise<PublicKey | undefined>;
  /** Removes a device's key; resolves true when there was one. */
  removePhoneKey(accountId: string, deviceId: string): Promise<boolean>;
}

/** One share as the sharing store keeps it (ARCHITECTURE.md flow 2). */
export interface Share {
  /** Stable share id (1-64 printable ASCII characters); the tokens' `cti` is derived from it ([TANDEM-DLG-4]). */
  readonly id: string;
  /** The owner's account id: the token's `sub`. */
  readonly owner: string;
  /** The lock id: the token's `aud` ([TANDEM-GEN-3]). */
  readonly lock: string;
  /** The rider's account id: the token's Tandem `rider` claim. */
  readonly rider: string;
  /** Scope tokens granted ([TANDEM-TOK-5]); `manage` is never shared ([TANDEM-DLG-3]). */
  readonly scope: readonly string[];
  /** Start of validity, Unix seconds. */
  readonly notBefore: number;
  /** End of validity (exclusive), Unix seconds. */
  readonly notAfter: number;
  /** Weekly schedule (§5.4); absent = any time. */
  readonly schedule?: Schedule;
  /** Most unlocks over the whole share; absent = unlimited. */
  readonly maxUses?: number;
  /** Uses the cloud has seen in audit records so far (§9.4); 0 when absent. */
  readonly usesReported?: number;
  /** True when the rider may pass on a narrower share (scope `delegate`, §5.5). */
  readonly mayReshare?: boolean;
  /** Revocation version the lock must hold before accepting ([TANDEM-TOK-4] minRevocation). */
  readonly minRevocation?: number;
  /** True once the owner revoked it. */
  readonly revoked?: boolean;
  /** When the owner revoked it, Unix seconds (with `revoked`). */
  readonly revokedAt?: number;
  /** When the owner made it, Unix seconds. */
  readonly createdAt?: number;
}

/** Where the shares a rider holds come from; the sharing store backs it in the cloud. */
export interface DelegationSource {
  /** Every share held by `rider`, revoked and expired ones included or not: the caller filters. */
  sharesFor(rider: string): Promise<readonly Share[]>;
}
