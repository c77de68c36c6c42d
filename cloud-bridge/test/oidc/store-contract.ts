/**
 * One contract for every {@link AccountStore} + share store implementation (memory, SQLite): the same rules,
 * the same refusals.
 */
import { describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../../protocol/src/keys.js';
import type { Share } from '../../src/oidc/store.js';
import type { AccountStore, DelegationSource } from '../../src/oidc/store.js';

/** What the contract drives: the account store, and share writes as both stores offer them. */
export interface StoreUnderTest extends AccountStore, DelegationSource {
  put(share: Share): void;
  revoke(id: string): boolean;
  reportUses(id: string, uses: number): void;
}

const HASH = '$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA';

const SHARE: Share = {
  id: 'share-1',
  owner: 'adam',
  lock: 'lock-1',
  rider: 'bianca',
  scope: ['unlock', 'status'],
  notBefore: 1_796_000_000,
  notAfter: 1_796_007_200,
  schedule: [{ days: 31, start: 420, end: 1200 }],
  maxUses: 3,
};

export function storeContract(name: string, build: () => Promise<StoreUnderTest>, skip?: string): void {
  describe.skipIf(skip !== undefined)(`${name}: store contract${skip ? ` (skipped: ${skip})` : ''}`, () => {
    it('creates and finds accounts; a second account with the same id is refused', async () => {
      const s = await build();
      await s.createAccount({ id: 'bianca', name: 'Bianca Doe', passwordHash: HASH });
      expect(await s.findAccount('bianca')).toEqual({ id: 'bianca', name: 'Bianca Doe', passwordHash: HASH });
      expect(await s.findAccount('nobody')).toBeUndefined();
      await expect(
        s.createAccount({ id: 'bianca', name: 'Other', passwordHash: HASH }),
      ).rejects.toMatchObject({
        code: 'ERR_OIDC_ACCOUNT_EXISTS',
      });
      expect((await s.findAccount('bianca'))!.name).toBe('Bianca Doe');
    });

    it.each([
      ['an id with capitals', { id: 'Bianca', name: 'B', passwordHash: HASH }, /account id/],
      ['an empty name', { id: 'b', name: '', passwordHash: HASH }, /"name"/],
      ['a hash that is not Argon2id', { id: 'b', name: 'B', passwordHash: '$2b$10$abc' }, /Argon2id/],
    ])('refuses %s', async (_n, account, message) => {
      const s = await build();
      await expect(s.createAccount(account)).rejects.toMatchObject({
        code: 'ERR_OIDC_ACCOUNT_INVALID',
        message: expect.stringMatching(message),
      });
      expect(await s.findAccount(account.id)).toBeUndefined();
    });

    it('keeps one P-256 key per device; replacing one device leaves the others; a lost phone is removed alone', async () => {
      const s = await build();
      await s.createAccount({ id: 'bianca', name: 'Bianca', passwordHash: HASH });
      const k1 = generateKeyPair('ES256').publicKey;
      const k2 = generateKeyPair('ES256').publicKey;
      const k3 = generateKeyPair('ES256').publicKey;
      await s.registerPhoneKey('bianca', 'grant-phone', k1);
      await s.registerPhoneKey('bianca', 'grant-laptop', k2);
      await s.registerPhoneKey('bianca', 'grant-phone', k3);
      expect(Buffer.from((await s.phoneKey('bianca', 'grant-phone'))!.raw)).toEqual(Buffer.from(k3.raw));
      expect(Buffer.from((await s.phoneKey('bianca', 'grant-laptop'))!.raw)).toEqual(Buffer.from(k2.raw));
      expect(await s.removePhoneKey('bianca', 'grant-phone')).toBe(true);
      expect(await s.removePhoneKey('bianca', 'grant-phone')).toBe(false);
      expect(await s.phoneKey('bianca', 'grant-phone')).toBeUndefined();
      expect(await s.phoneKey('bianca', 'grant-laptop')).toBeDefined();
    });

    it('refuses an Ed25519 phone key, a malformed device id and an unknown account', async () => {
      const s = await build();
      await s.createAccount({ id: 'bianca', name: 'Bianca', passwordHash: HASH });
      await expect(
        s.registerPhoneKey('bianca', 'd', generateKeyPair('EdDSA').publicKey),
      ).rejects.toMatchObject({
        code: 'ERR_OIDC_PHONE_KEY_INVALID',
      });
      await expect(
        s.registerPhoneKey('bianca', 'has space', generateKeyPair('ES256').publicKey),
      ).rejects.toMatchObject({
        code: 'ERR_OIDC_PHONE_KEY_INVALID',
      });
      await expect(
        s.registerPhoneKey('ghost', 'd', generateKeyPair('ES256').publicKey),
      ).rejects.toMatchObject({
        code: 'ERR_OIDC_ACCOUNT_UNKNOWN',
      });
      expect(await s.phoneKey('bianca', 'd')).toBeUndefined();
    });

    it('stores shares per rider, with revocation and reported uses', async () => {
      const s = await build();
      s.put(SHARE);
      s.put({
        ...SHARE,
        id: 'share-2',
        rider: 'carol',
        mayReshare: true,
        scope: ['unlock', 'delegate'],
        minRevocation: 4,
      });
      const got = await s.sharesFor('bianca');
      expect(got).toHaveLength(1);
      expect(got[0]).toMatchObject({ ...SHARE });
      expect((await s.sharesFor('carol'))[0]).toMatchObject({
        mayReshare: true,
        minRevocation: 4,
        scope: ['unlock', 'delegate'],
      });
      expect(s.revoke('share-1')).toBe(true);
      expect(s.revoke('nope')).toBe(false);
      s.reportUses('share-1', 2);
      expect((await s.sharesFor('bianca'))[0]).toMatchObject({ revoked: true, usesReported: 2 });
    });

    it('refuses a share that breaks TANDEM-DLG-3 and stores nothing of it', async () => {
      const s = await build();
      expect(() => s.put({ ...SHARE, scope: ['manage'] })).toThrow(
        expect.objectContaining({ code: 'ERR_OIDC_SHARE_INVALID' }),
      );
      expect(() => s.put({ ...SHARE, notAfter: SHARE.notBefore })).toThrow(/notBefore < notAfter/);
      expect(() => s.put({ ...SHARE, lock: 'LOCK' })).toThrow(/"lock"/);
      expect(() => s.put({ ...SHARE, maxUses: 0 })).toThrow(/"maxUses"/);
      expect(await s.sharesFor('bianca')).toEqual([]);
    });
  });
}
