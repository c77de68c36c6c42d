/** In-memory {@link AccountStore} and {@link DelegationSource}: for tests and for running the provider alone. */
import type { PublicKey } from '../../../protocol/src/keys.js';
import { OidcError } from './errors.js';
import { checkAccount, checkDeviceId, checkPhoneKey, checkShare } from './rules.js';
import type { Account, AccountStore, DelegationSource, Share } from './store.js';

/** Accounts and phone keys held in memory. */
export class MemoryAccountStore implements AccountStore {
  private readonly accounts = new Map<string, Account>();
  private readonly keys = new Map<string, PublicKey>();

  async createAccount(account: Account): Promise<void> {
    checkAccount(account);
    if (this.accounts.has(account.id)) {
      throw new OidcError('ERR_OIDC_ACCOUNT_EXISTS', `account "${account.id}" already exists`);
    }
    this.accounts.set(account.id, { ...account });
  }

  async findAccount(id: string): Promise<Account | undefined> {
    return this.accounts.get(id);
  }

  async registerPhoneKey(accountId: string, deviceId: string, key: PublicKey): Promise<void> {
    checkDeviceId(deviceId);
    checkPhoneKey(key);
    if (!this.accounts.has(accountId)) {
      throw new OidcError('ERR_OIDC_ACCOUNT_UNKNOWN', `no account "${accountId}"`);
    }
    this.keys.set(keyOf(accountId, deviceId), key);
  }

  async phoneKey(accountId: string, deviceId: string): Promise<PublicKey | undefined> {
    return this.keys.get(keyOf(accountId, deviceId));
  }

  async removePhoneKey(accountId: string, deviceId: string): Promise<boolean> {
    return this.keys.delete(keyOf(accountId, deviceId));
  }
}

function keyOf(accountId: string, deviceId: string): string {
  return JSON.stringify([accountId, deviceId]);
}

/** Shares held in memory, indexed by rider. */
export class MemoryDelegationSource implements DelegationSource {
  private readonly byId = new Map<string, Share>();

  /** Adds or replaces a share (checked against [TANDEM-DLG-3]). */
  put(share: Share): void {
    checkShare(share);
    this.byId.set(share.id, { ...share });
  }

  /** Marks a share revoked; resolves true when it existed. */
  revoke(id: string): boolean {
    const s = this.byId.get(id);
    if (!s) return false;
    this.byId.set(id, { ...s, revoked: true });
    return true;
  }

  /** Records uses seen in audit records. */
  reportUses(id: string, uses: number): void {
    const s = this.byId.get(id);
    if (s) this.byId.set(id, { ...s, usesReported: (s.usesReported ?? 0) + uses });
  }

  async sharesFor(rider: string): Promise<readonly Share[]> {
    return [...this.byId.values()].filter((s) => s.rider === rider);
  }
}
