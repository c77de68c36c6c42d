/**
 * One contract suite for every {@link CloudStore} implementation (STYLE.md 6, after aedes' abstract
 * persistence tests): SQLite always, PostgreSQL where its server binaries are installed.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { sqlOidcAdapter } from '../src/store/oidc-adapter.js';
import type { CloudStore, Share, StoredRecord } from '../src/store/types.js';

const KEY = new Uint8Array(32).fill(7);
const HASH = '$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA';
const SHARE: Share = {
  id: 'share-1',
  owner: 'adam',
  lock: 'lock-7',
  rider: 'bianca',
  scope: ['unlock', 'status'],
  notBefore: 1_796_000_000,
  notAfter: 1_796_007_200,
  schedule: [{ days: 31, start: 420, end: 1200 }],
  maxUses: 3,
  createdAt: 1_795_999_000,
};

function rec(sequence: number, overrides: Partial<StoredRecord> = {}): StoredRecord {
  return {
    lockId: 'lock-7',
    epoch: 7,
    sequence,
    kind: 'alert',
    bytes: Uint8Array.of(1, 2, sequence & 0xff),
    time: 1_800_000_000 + sequence,
    receivedAt: 1_000 + sequence,
    via: 'mqtt',
    ...overrides,
  };
}

/** Runs the contract against stores made by `open` (each test gets a fresh, empty store). */
export function storeContract(name: string, open: () => Promise<CloudStore>, skip?: string): void {
  describe.skipIf(skip !== undefined)(
    `CloudStore contract: ${name}${skip === undefined ? '' : ` (skipped: ${skip})`}`,
    () => {
      let store: CloudStore;
      beforeEach(async () => {
        store = await open();
      });
      afterEach(async () => {
        await store.close();
      });

      it('registers a lock and reads it back, device key and password record intact', async () => {
        await store.registerLock({
          lockId: 'lock-7',
          deviceKey: KEY,
          passwordHash: '$7$101$a$b',
          registeredAt: 5,
        });
        const lock = await store.getLock('lock-7');
        expect(lock?.passwordHash).toBe('$7$101$a$b');
        expect(Buffer.from(lock!.deviceKey).equals(Buffer.from(KEY))).toBe(true);
        expect(await store.getLock('lock-8')).toBeUndefined();
        expect((await store.listLocks()).map((l) => l.lockId)).toEqual(['lock-7']);
      });

      it('keys records by (lock, epoch, sequence): same bytes are a duplicate, other bytes a conflict', async () => {
        expect(await store.insertRecord(rec(1))).toBe('inserted');
        expect(await store.insertRecord(rec(1))).toBe('duplicate');
        expect(await store.insertRecord(rec(1, { bytes: Uint8Array.of(9) }))).toBe('conflict');
        expect(await store.insertRecord(rec(1, { epoch: 8 }))).toBe('inserted');
        expect(await store.countRecords('lock-7')).toBe(2);
        const held = await store.getRecord('lock-7', 7, 1);
        expect(Buffer.from(held!.bytes).equals(Buffer.from(rec(1).bytes))).toBe(true);
      });

      it('lists records after a sequence in order, and alerts newest first', async () => {
        for (const s of [3, 1, 2]) await store.insertRecord(rec(s, { kind: s === 2 ? 'audit' : 'alert' }));
        expect((await store.recordsAfter('lock-7', 7, 1, 10)).map((r) => r.sequence)).toEqual([2, 3]);
        expect((await store.recordsAfter('lock-7', 7, 0, 1)).map((r) => r.sequence)).toEqual([1]);
        expect((await store.listAlerts({ limit: 10 })).map((r) => r.sequence)).toEqual([3, 1]);
        expect(await store.listAlerts({ lockId: 'lock-8', limit: 10 })).toEqual([]);
      });

      it('tracks epochs and advances progress only by compare-and-set', async () => {
        expect(await store.touchEpoch('lock-7', 7, 100)).toBe(true);
        expect(await store.touchEpoch('lock-7', 7, 200)).toBe(false);
        expect(await store.touchEpoch('lock-7', 9, 300)).toBe(true);
        expect((await store.listEpochs('lock-7')).map((e) => e.epoch)).toEqual([7, 9]);
        const hash = new Uint8Array(32).fill(1);
        expect(await store.advanceProgress('lock-7', 7, 0, 5, hash)).toBe(true);
        expect(await store.advanceProgress('lock-7', 7, 0, 6, null)).toBe(false);
        const p = await store.getProgress('lock-7', 7);
        expect(p?.ackedSequence).toBe(5);
        expect(Buffer.from(p!.lastAuditHash!).equals(Buffer.from(hash))).toBe(true);
      });

      it('appends events with increasing ids and lists them after an id', async () => {
        const a = await store.addEvent({ lockId: 'lock-7', kind: 'gap', detail: { from: 2, to: 3 }, at: 1 });
        const b = await store.addEvent({ lockId: 'lock-8', kind: 'fork', detail: { sequence: 4 }, at: 2 });
        expect(b).toBeGreaterThan(a);
        expect((await store.listEvents({ limit: 10 })).map((e) => e.kind)).toEqual(['gap', 'fork']);
        expect((await store.listEvents({ after: a, limit: 10 })).map((e) => e.id)).toEqual([b]);
        expect((await store.listEvents({ lockId: 'lock-7', limit: 10 }))[0]?.detail).toEqual({
          from: 2,
          to: 3,
        });
      });

      it('keeps the latest state report', async () => {
        await store.putState({
          lockId: 'lock-7',
          bytes: Uint8Array.of(1),
          state: 'locked',
          time: 1,
          receivedAt: 1,
        });
        await store.putState({
          lockId: 'lock-7',
          bytes: Uint8Array.of(2),
          state: 'alarm',
          time: 2,
          receivedAt: 2,
        });
        expect((await store.getState('lock-7'))?.state).toBe('alarm');
      });

      it('moves the revocation list only from the expected version', async () => {
        const v1 = { lockId: 'lock-7', version: 1, entries: new Map([['0a', 99]]), bytes: Uint8Array.of(1) };
        expect(await store.putRevocation(v1, 0)).toBe(true);
        expect(await store.putRevocation(v1, 0)).toBe(false);
        expect(await store.putRevocation({ ...v1, version: 2 }, 5)).toBe(false);
        expect(await store.putRevocation({ ...v1, version: 2, entries: new Map() }, 1)).toBe(true);
        const held = await store.getRevocation('lock-7');
        expect(held?.version).toBe(2);
        expect(held?.entries.size).toBe(0);
        expect((await store.listRevocations()).length).toBe(1);
      });

      it('dates each revocation entry with the version that added it, for deltas', async () => {
        const put = (version: number, entries: [string, number][]) =>
          store.putRevocation(
            { lockId: 'lock-7', version, entries: new Map(entries), bytes: Uint8Array.of(version) },
            version - 1,
          );
        expect(await put(1, [['0a', 99]])).toBe(true);
        expect(
          await put(2, [
            ['0a', 99],
            ['0b', 50],
          ]),
        ).toBe(true);
        // 0a's expiry changed: the lock must be told again, so version 3 added it.
        expect(
          await put(3, [
            ['0a', 120],
            ['0b', 50],
          ]),
        ).toBe(true);
        const held = await store.getRevocation('lock-7');
        expect([...(held?.addedIn ?? [])].sort()).toEqual([
          ['0a', 3],
          ['0b', 2],
        ]);
        expect([...(held?.entries ?? [])].sort()).toEqual([
          ['0a', 120],
          ['0b', 50],
        ]);
      });

      it('keeps the anchor acknowledgement with the highest version, and says whether it stored one', async () => {
        expect(await store.getAnchorAck('lock-7')).toBeUndefined();
        const first = { lockId: 'lock-7', version: 2, lockTime: 20, receivedAt: 200, via: 'relay' };
        expect(await store.putAnchorAck(first)).toBe(true);
        // A re-delivery the lock acknowledged again, and an older ack a phone carried late: nothing changes.
        expect(await store.putAnchorAck({ ...first, lockTime: 21, receivedAt: 250, via: 'mqtt' })).toBe(
          false,
        );
        expect(await store.putAnchorAck({ ...first, version: 1, receivedAt: 300 })).toBe(false);
        expect(await store.getAnchorAck('lock-7')).toEqual(first);
        const next = { lockId: 'lock-7', version: 3, lockTime: 30, receivedAt: 400, via: 'mqtt' };
        expect(await store.putAnchorAck(next)).toBe(true);
        expect(await store.getAnchorAck('lock-7')).toEqual(next);
        expect(await store.getAnchorAck('lock-8')).toBeUndefined();
        // An anchor ack is contact with the lock.
        expect(await store.lastContact('lock-7')).toBe(400);
      });

      it("keeps the owner's lock settings; remote locking is off until set ([TANDEM-HA-2])", async () => {
        expect(await store.getLockSettings('lock-7')).toEqual({ remoteLocking: false });
        await store.setLockSettings('lock-7', { remoteLocking: true }, 100);
        expect(await store.getLockSettings('lock-7')).toEqual({ remoteLocking: true });
        expect(await store.getLockSettings('lock-8')).toEqual({ remoteLocking: false });
        await store.setLockSettings('lock-7', { remoteLocking: false }, 200);
        expect(await store.getLockSettings('lock-7')).toEqual({ remoteLocking: false });
      });

      it('draws remote-command sequences per lock, 1, 2, 3, never the same twice ([TANDEM-RCMD-4])', async () => {
        expect(await store.nextRemoteCommandSequence('lock-7', 100)).toBe(1);
        expect(await store.nextRemoteCommandSequence('lock-7', 200)).toBe(2);
        expect(await store.nextRemoteCommandSequence('lock-8', 300)).toBe(1);
        const drawn = await Promise.all(
          Array.from({ length: 8 }, (_, i) => store.nextRemoteCommandSequence('lock-7', 400 + i)),
        );
        expect([...drawn].sort((a, b) => a - b)).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
      });

      it('keeps the revocation acknowledgement with the highest version', async () => {
        await store.putRevocationAck({ lockId: 'lock-7', version: 3, lockTime: 30, receivedAt: 300 });
        await store.putRevocationAck({ lockId: 'lock-7', version: 2, lockTime: 20, receivedAt: 400 });
        expect(await store.getRevocationAck('lock-7')).toEqual({
          lockId: 'lock-7',
          version: 3,
          lockTime: 30,
          receivedAt: 300,
        });
      });
      it('folds in the OpenID accounts: one per id, the hash kept as given, refusals named', async () => {
        await store.createAccount({ id: 'bianca', name: 'Bianca Doe', passwordHash: HASH });
        expect(await store.findAccount('bianca')).toEqual({
          id: 'bianca',
          name: 'Bianca Doe',
          passwordHash: HASH,
        });
        expect(await store.findAccount('nobody')).toBeUndefined();
        await expect(
          store.createAccount({ id: 'bianca', name: 'Other', passwordHash: HASH }),
        ).rejects.toMatchObject({ code: 'ERR_OIDC_ACCOUNT_EXISTS' });
        await expect(
          store.createAccount({ id: 'Bad Id', name: 'X', passwordHash: HASH }),
        ).rejects.toMatchObject({
          code: 'ERR_OIDC_ACCOUNT_INVALID',
          message: expect.stringMatching(/account id/),
        });
        expect(await store.findAccount('Bad Id')).toBeUndefined();
        expect((await store.findAccount('bianca'))!.name).toBe('Bianca Doe');
      });

      it('keeps one phone key per device with name, thumbprint and time; re-registering replaces it', async () => {
        await store.createAccount({ id: 'bianca', name: 'Bianca Doe', passwordHash: HASH });
        const a = generateKeyPair('ES256').publicKey;
        const b = generateKeyPair('ES256').publicKey;
        await store.registerPhoneKey('bianca', 'grant-1', a, { name: 'Pixel', at: 10 });
        await store.registerPhoneKey('bianca', 'grant-2', b, { at: 20 });
        const d1 = await store.getDevice('bianca', 'grant-1');
        expect(d1).toMatchObject({
          accountId: 'bianca',
          deviceId: 'grant-1',
          name: 'Pixel',
          registeredAt: 10,
        });
        expect(d1!.thumbprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
        expect(Buffer.from(d1!.key.raw).equals(Buffer.from(a.raw))).toBe(true);
        expect((await store.listDevices('bianca')).map((d) => d.deviceId)).toEqual(['grant-1', 'grant-2']);
        await store.registerPhoneKey('bianca', 'grant-1', b, { name: 'Pixel 2', at: 30 });
        const d1b = await store.getDevice('bianca', 'grant-1');
        expect(Buffer.from((await store.phoneKey('bianca', 'grant-1'))!.raw).equals(Buffer.from(b.raw))).toBe(
          true,
        );
        expect(d1b!.thumbprint).not.toBe(d1!.thumbprint);
        expect(d1b!.name).toBe('Pixel 2');
        expect(await store.removePhoneKey('bianca', 'grant-2')).toBe(true);
        expect(await store.removePhoneKey('bianca', 'grant-2')).toBe(false);
        expect((await store.listDevices('bianca')).map((d) => d.deviceId)).toEqual(['grant-1']);
        expect(await store.listDevices('adam')).toEqual([]);
      });

      it('refuses a phone key for an unknown account or of the wrong algorithm', async () => {
        await expect(
          store.registerPhoneKey('nobody', 'g', generateKeyPair('ES256').publicKey),
        ).rejects.toMatchObject({ code: 'ERR_OIDC_ACCOUNT_UNKNOWN' });
        await store.createAccount({ id: 'bianca', name: 'Bianca Doe', passwordHash: HASH });
        await expect(
          store.registerPhoneKey('bianca', 'g', generateKeyPair('EdDSA').publicKey),
        ).rejects.toMatchObject({ code: 'ERR_OIDC_PHONE_KEY_INVALID' });
        expect(await store.listDevices('bianca')).toEqual([]);
      });

      it('records one owner per lock: the same claim again is "already", another owner a conflict', async () => {
        await store.createAccount({ id: 'adam', name: 'Adam', passwordHash: HASH });
        await store.createAccount({ id: 'carol', name: 'Carol', passwordHash: HASH });
        const key = generateKeyPair('ES256').publicKey;
        const claim = {
          lockId: 'lock-7',
          owner: 'adam',
          ownerKey: key,
          ownerKid: Uint8Array.of(10),
          claimedAt: 5,
        };
        expect(await store.claimLock(claim)).toBe('claimed');
        expect(await store.claimLock(claim)).toBe('already');
        expect(await store.claimLock({ ...claim, owner: 'carol' })).toBe('conflict');
        expect(await store.claimLock({ ...claim, ownerKey: generateKeyPair('ES256').publicKey })).toBe(
          'conflict',
        );
        const held = await store.getClaim('lock-7');
        expect(held).toMatchObject({ lockId: 'lock-7', owner: 'adam', claimedAt: 5 });
        expect(Buffer.from(held!.ownerKey.raw).equals(Buffer.from(key.raw))).toBe(true);
        expect(Buffer.from(held!.ownerKid).equals(Buffer.from([10]))).toBe(true);
        expect((await store.claimsOf('adam')).map((c) => c.lockId)).toEqual(['lock-7']);
        expect(await store.claimsOf('carol')).toEqual([]);
      });

      it('stores shares with every field, lists them by rider and by lock, revokes once', async () => {
        await store.putShare(SHARE);
        await store.putShare({
          ...SHARE,
          id: 'share-2',
          rider: 'carol',
          mayReshare: true,
          scope: ['unlock', 'delegate'],
          schedule: undefined,
          maxUses: undefined,
          createdAt: 1_795_999_500,
        });
        await expect(store.putShare(SHARE)).rejects.toMatchObject({ code: 'ERR_CLOUD_STORE' });
        await expect(store.putShare({ ...SHARE, id: 'share-3', scope: ['manage'] })).rejects.toMatchObject({
          code: 'ERR_OIDC_SHARE_INVALID',
        });
        expect(await store.getShare('share-3')).toBeUndefined();
        expect(await store.getShare('share-1')).toEqual({
          ...SHARE,
          usesReported: 0,
          mayReshare: false,
          revoked: false,
        });
        expect((await store.sharesFor('bianca')).map((s) => s.id)).toEqual(['share-1']);
        expect((await store.sharesOfLock('lock-7')).map((s) => s.id)).toEqual(['share-1', 'share-2']);
        expect(await store.getShare('share-2')).toMatchObject({
          mayReshare: true,
          scope: ['unlock', 'delegate'],
        });
        expect(await store.revokeShare('share-1', 1_796_000_100)).toBe(true);
        expect(await store.revokeShare('share-1', 1_796_000_200)).toBe(false);
        expect(await store.revokeShare('nope', 1)).toBe(false);
        expect(await store.getShare('share-1')).toMatchObject({ revoked: true, revokedAt: 1_796_000_100 });
        await store.reportUses('share-2', 2);
        expect((await store.getShare('share-2'))!.usesReported).toBe(2);
      });

      it('pages records of one kind by arrival, then epoch and sequence', async () => {
        await store.insertRecord(rec(1, { kind: 'audit', receivedAt: 50 }));
        await store.insertRecord(rec(2, { kind: 'audit', receivedAt: 50 }));
        await store.insertRecord(rec(3, { kind: 'alert', receivedAt: 40 }));
        await store.insertRecord(rec(1, { kind: 'audit', epoch: 9, receivedAt: 45 }));
        const page1 = await store.recordsByArrival('lock-7', 'audit', undefined, 2);
        expect(page1.map((r) => [r.epoch, r.sequence])).toEqual([
          [9, 1],
          [7, 1],
        ]);
        const last = page1[1]!;
        const page2 = await store.recordsByArrival('lock-7', 'audit', last, 10);
        expect(page2.map((r) => [r.epoch, r.sequence])).toEqual([[7, 2]]);
        expect(await store.recordsByArrival('lock-8', 'audit', undefined, 10)).toEqual([]);
        await store.addEvent({ lockId: 'lock-7', kind: 'gap', detail: {}, at: 1 });
        await store.addEvent({ lockId: 'lock-7', kind: 'fork', detail: {}, at: 2 });
        expect((await store.listEvents({ lockId: 'lock-7', limit: 1, newestFirst: true }))[0]?.kind).toBe(
          'fork',
        );
      });

      it('knows when the lock was last heard from', async () => {
        expect(await store.lastContact('lock-7')).toBeUndefined();
        await store.insertRecord(rec(1, { receivedAt: 500 }));
        await store.putRevocationAck({ lockId: 'lock-7', version: 1, lockTime: 1, receivedAt: 700 });
        await store.putState({
          lockId: 'lock-7',
          bytes: Uint8Array.of(1),
          state: 'locked',
          time: 1,
          receivedAt: 600,
        });
        expect(await store.lastContact('lock-7')).toBe(700);
        expect(await store.lastContact('lock-8')).toBeUndefined();
      });

      it("keeps oidc-provider's artefacts: find by id, user code and uid, consume, revoke by grant", async () => {
        const db = (store as unknown as { db: Parameters<typeof sqlOidcAdapter>[0] }).db;
        let now = 1_000_000;
        const factory = sqlOidcAdapter(db, () => now);
        const tokens = factory('AccessToken');
        const codes = factory('DeviceCode');
        await tokens.upsert('t1', { grantId: 'g1', accountId: 'bianca' }, 60);
        await tokens.upsert('t2', { grantId: 'g2' }, 60);
        await codes.upsert('c1', { grantId: 'g1', userCode: 'ABCD', uid: 'u1' }, 60);
        expect(await tokens.find('t1')).toEqual({ grantId: 'g1', accountId: 'bianca' });
        expect(await codes.findByUserCode!('ABCD')).toMatchObject({ uid: 'u1' });
        expect(await codes.findByUid!('u1')).toMatchObject({ userCode: 'ABCD' });
        await codes.consume('c1');
        expect((await codes.find('c1'))!.consumed).toBe(1000);
        await tokens.revokeByGrantId('g1');
        expect(await tokens.find('t1')).toBeUndefined();
        expect(await codes.find('c1')).toBeUndefined();
        expect(await tokens.find('t2')).toBeDefined();
        now += 2 * 3600_000;
        expect(await tokens.find('t2')).toBeUndefined();
        await tokens.destroy('t2');
      });
    },
  );
}
