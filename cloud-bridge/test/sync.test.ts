// The phone's sync service (sync.ts) and revocation deltas (revocation-history.ts): uploads take the MQTT
// path's checks, the answer carries the outbox ack, a revocation update a lock at its reported version applies,
// and a beacon bound to the challenge nonce.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { HEADER, signSign1 } from '../../protocol/src/cose.js';
import { encode } from '../../protocol/src/cbor.js';
import type { CborValue } from '../../protocol/src/cbor.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import type { PublicKey } from '../../protocol/src/keys.js';
import { CONTENT_FORMAT } from '../../protocol/src/index.js';
import { verifyOutboxAck } from '../../protocol/src/mqtt.js';
import type { OutboxAck } from '../../protocol/src/mqtt.js';
import {
  EMPTY_REVOCATION_STATE,
  applyRevocationUpdate,
  encodeRevocationUpdate,
  verifyRevocationUpdate,
} from '../../protocol/src/revocation.js';
import type { RevocationState } from '../../protocol/src/revocation.js';
import { boundFromBeacon, verifyTimeBeacon } from '../../protocol/src/time-beacon.js';
import { isCloudError } from '../src/errors.js';
import { EventFeed } from '../src/feed.js';
import { Ingestor } from '../src/ingest.js';
import { issuerFromKey } from '../src/issuer.js';
import type { Issuer } from '../src/issuer.js';
import { MAX_BLE_REVOCATION_BYTES, revocationFor } from '../src/revocation-history.js';
import type { SqlDriver } from '../src/store/sql-driver.js';
import { openSqlStore } from '../src/store/sql-store.js';
import type { CloudEvent, CloudStore } from '../src/store/types.js';
import { SyncService, syncJsonHandler } from '../src/sync.js';
import type { SyncRequest } from '../src/sync.js';
import { FakeLock } from './fake-lock.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-sync-'));
let n = 0;
const open: CloudStore[] = [];
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

const NOW_MS = 1_800_000_000_000;
const NOW = NOW_MS / 1000;
const LOCK = 'lock-7';
const NONCE = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

async function setup() {
  const store = await openSqlStore({ kind: 'sqlite', engine: 'wasm', path: join(dir, `s${++n}.db`) });
  open.push(store);
  const issuer = issuerFromKey(generateKeyPair('EdDSA'));
  const feed = new EventFeed(store);
  const ingestor = new Ingestor({ store, feed, now: () => NOW_MS });
  const acks: OutboxAck[] = [];
  const sync = new SyncService({ store, ingestor, issuer, now: () => NOW_MS, onAck: (a) => acks.push(a) });
  const lock = new FakeLock(LOCK);
  await lock.register(store);
  const resolve = (kid: Uint8Array): PublicKey | undefined =>
    Buffer.from(kid).equals(Buffer.from(issuer.kid)) ? issuer.key.publicKey : undefined;
  return { store, issuer, feed, ingestor, sync, lock, acks, resolve };
}

/** What the sync call throws, as `code: message`. */
async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isCloudError(e)) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'accepted';
}

/**
 * Revokes entries on `lockId` as the bridge does (Bridge.revoke): the next full update, stored by
 * compare-and-set; the store dates the new entries.
 */
async function revoke(
  store: CloudStore,
  issuer: Issuer,
  add: { id: Uint8Array; exp: number }[],
  lockId = LOCK,
): Promise<Uint8Array> {
  const held = await store.getRevocation(lockId);
  const entries = new Map(held?.entries ?? []);
  for (const a of add) entries.set(Buffer.from(a.id).toString('hex'), a.exp);
  const version = (held?.version ?? 0) + 1;
  const bytes = encodeRevocationUpdate(
    {
      kind: 'full',
      version,
      issuedAt: NOW,
      lockId,
      added: [...entries].map(([hex, exp]) => ({ id: Uint8Array.from(Buffer.from(hex, 'hex')), exp })),
      removed: [],
    },
    issuer.key,
    issuer.kid,
  );
  expect(await store.putRevocation({ lockId, version, entries, bytes }, held?.version ?? 0)).toBe(true);
  return bytes;
}

const id = (k: number, len = 16) => Uint8Array.from({ length: len }, (_, i) => (k * 31 + i) & 0xff);

describe('SyncService: uploads take the MQTT path', () => {
  it('stores relayed records and answers with the issuer-signed outbox ack covering them (TANDEM-MQTT-8)', async () => {
    const { sync, lock, store, issuer, acks } = await setup();
    const res = await sync.sync({
      lockId: LOCK,
      records: [lock.alert('moved'), lock.audit('unlock'), lock.state()],
    });
    expect(res.results).toEqual([
      { index: 0, outcome: 'stored' },
      { index: 1, outcome: 'stored' },
      { index: 2, outcome: 'stored' },
    ]);
    expect(await store.countRecords(LOCK)).toBe(2);
    expect((await store.getState(LOCK))?.state).toBe('locked');
    const ack = verifyOutboxAck(
      res.outboxAck!,
      (kid) => (Buffer.from(kid).equals(Buffer.from(issuer.kid)) ? issuer.key.publicKey : undefined),
      LOCK,
    );
    expect(ack).toEqual({ lockId: LOCK, epoch: 7, sequence: 2 });
    expect(acks.at(-1)).toEqual({ lockId: LOCK, epoch: 7, sequence: 2 });
    expect(res.revocation).toBeNull();
    expect(res.beacon).toBeNull();
  });

  it('a relay replaying the same records changes nothing: each is a duplicate', async () => {
    const { sync, lock, store } = await setup();
    const records = [lock.alert('moved'), lock.audit('unlock')];
    const first = await sync.sync({ lockId: LOCK, records });
    const again = await sync.sync({ lockId: LOCK, records });
    expect(again.results.map((r) => r.outcome)).toEqual(['duplicate', 'duplicate']);
    expect(await store.countRecords(LOCK)).toBe(2);
    expect(Buffer.from(again.outboxAck!)).toEqual(Buffer.from(first.outboxAck!));
    const kinds = (await store.listEvents({ lockId: LOCK, limit: 50 })).map((e) => e.kind);
    expect(kinds.filter((k) => k === 'alert')).toHaveLength(1);
  });

  it('a forged record is refused exactly as over MQTT, flagged to the owner, and not stored', async () => {
    const { sync, lock, store, ingestor } = await setup();
    const thief = generateKeyPair('EdDSA');
    const forged = lock.alert('moved', thief);
    const res = await sync.sync({ lockId: LOCK, records: [forged] });
    expect(res.results[0]).toMatchObject({ index: 0, outcome: 'refused' });
    const overMqtt = await ingestor.ingest('alert', LOCK, forged, 'mqtt');
    expect(overMqtt).toMatchObject({ outcome: 'refused', flagged: 'forgery' });
    expect(res.results[0]!.reason).toBe((overMqtt as { reason: string }).reason);
    expect(res.results[0]!.reason).toMatch(/^ERR_SIGNATURE_INVALID/);
    expect(await store.countRecords(LOCK)).toBe(0);
    expect(res.outboxAck).toBeNull();
    const events = await store.listEvents({ lockId: LOCK, limit: 10 });
    expect(events.map((e) => e.kind)).toEqual(['forgery', 'forgery']);
  });

  it("another lock's genuine record is refused in this lock's sync and not ingested", async () => {
    const { sync, store } = await setup();
    const other = new FakeLock('lock-8');
    await other.register(store);
    const res = await sync.sync({ lockId: LOCK, records: [other.alert('moved')] });
    expect(res.results[0]).toEqual({
      index: 0,
      outcome: 'refused',
      reason: 'alert names lock lock-8, not lock-7',
    });
    expect(await store.countRecords('lock-8')).toBe(0);
  });

  it('a record that is no lock record is refused on its own; the others are stored', async () => {
    const { sync, lock } = await setup();
    const res = await sync.sync({ lockId: LOCK, records: [Uint8Array.of(1, 2, 3), lock.alert('bump')] });
    expect(res.results).toEqual([
      {
        index: 0,
        outcome: 'refused',
        reason: 'not an alert, audit record, revocation acknowledgement or lock state',
      },
      { index: 1, outcome: 'stored' },
    ]);
  });

  it('publishes the alert of an upload on the event feed', async () => {
    const { sync, lock, feed } = await setup();
    const got: CloudEvent[] = [];
    feed.subscribe(
      (l) => l === LOCK,
      undefined,
      (e) => got.push(e),
    );
    await sync.sync({ lockId: LOCK, records: [lock.alert('tamper')] });
    expect(got.map((e) => [e.kind, e.detail.alert, e.detail.via])).toEqual([['alert', 'tamper', 'relay']]);
  });
});

describe('SyncService: malformed requests are refused whole, with nothing stored', () => {
  const cases: [string, (lock: FakeLock) => SyncRequest, string][] = [
    [
      'a lock id in upper case',
      () => ({ lockId: 'Lock-7', records: [] }),
      'ERR_CLOUD_SYNC_INVALID: sync "lock" must be a lock id matching ^[a-z0-9][a-z0-9-]{0,31}$',
    ],
    [
      '65 records',
      (lock) => ({
        lockId: LOCK,
        records: [lock.alert(), ...Array.from({ length: 64 }, () => Uint8Array.of(1))],
      }),
      'ERR_CLOUD_SYNC_INVALID: sync "records" has 65 items, more than 64',
    ],
    [
      'a record of 513 bytes',
      (lock) => ({ lockId: LOCK, records: [lock.alert(), new Uint8Array(513)] }),
      'ERR_CLOUD_SYNC_INVALID: sync "records"[1] is 513 bytes, more than 512',
    ],
    [
      'a lock state of 282 bytes (its kind allows 256)',
      (lock) => {
        const big = signSign1(encode(new Map<number, CborValue>([[1, 'x'.repeat(200)]])), lock.deviceKey, {
          protectedHeader: new Map<number, CborValue>([[HEADER.contentType, CONTENT_FORMAT.lockState]]),
        });
        return { lockId: LOCK, records: [lock.alert(), big] };
      },
      'ERR_CLOUD_SYNC_INVALID: sync "records"[1] is a state of 282 bytes, more than 256',
    ],
    [
      'an empty record',
      (lock) => ({ lockId: LOCK, records: [lock.alert(), new Uint8Array(0)] }),
      'ERR_CLOUD_SYNC_INVALID: sync "records"[1] must be a non-empty byte string',
    ],
    [
      'a 15-byte nonce',
      (lock) => ({
        lockId: LOCK,
        records: [lock.alert()],
        challenge: { nonce: new Uint8Array(15), revocationVersion: 0 },
      }),
      'ERR_CLOUD_SYNC_INVALID: sync "challenge.nonce" must be 16 bytes',
    ],
    [
      'a negative revocation version',
      (lock) => ({
        lockId: LOCK,
        records: [lock.alert()],
        challenge: { nonce: NONCE, revocationVersion: -1 },
      }),
      'ERR_CLOUD_SYNC_INVALID: sync "challenge.revocationVersion" must be an unsigned integer below 2^32',
    ],
    [
      'a revocation version of 2^32',
      (lock) => ({
        lockId: LOCK,
        records: [lock.alert()],
        challenge: { nonce: NONCE, revocationVersion: 2 ** 32 },
      }),
      'ERR_CLOUD_SYNC_INVALID: sync "challenge.revocationVersion" must be an unsigned integer below 2^32',
    ],
    [
      'a lock the cloud does not know',
      () => ({ lockId: 'lock-9', records: [] }),
      'ERR_CLOUD_LOCK_UNKNOWN: lock lock-9 is not registered',
    ],
  ];
  for (const [name, make, expected] of cases) {
    it(`${name}: ${expected.split(':')[0]}`, async () => {
      const { sync, lock, store } = await setup();
      expect(await refusal(sync.sync(make(lock)))).toBe(expected);
      expect(await store.countRecords(LOCK)).toBe(0);
      expect(await store.listEvents({ limit: 10 })).toEqual([]);
    });
  }
});

describe('SyncService: beacon bound to the challenge (TANDEM-TIME-4)', () => {
  it('signs a beacon carrying the nonce and the lock id, which gives the lock an upper bound', async () => {
    const { sync, resolve } = await setup();
    const res = await sync.sync({
      lockId: LOCK,
      records: [],
      challenge: { nonce: NONCE, revocationVersion: 0 },
    });
    const beacon = verifyTimeBeacon(res.beacon!, resolve, LOCK);
    expect(beacon).toEqual({ time: NOW, nonce: NONCE, lockId: LOCK, accuracy: 2 });
    const bound = boundFromBeacon(beacon, {
      lockNonce: NONCE,
      issuedAtLocalMs: 1_000,
      nowLocalMs: 3_000,
      maxRelayDelayMs: 30_000,
    });
    expect(bound).toEqual({ kind: 'bound', earliest: NOW - 2, latest: NOW + 2 + 2, floor: NOW - 2 });
  });

  it('signs no beacon without a challenge', async () => {
    const { sync } = await setup();
    expect((await sync.sync({ lockId: LOCK, records: [] })).beacon).toBeNull();
  });
});

describe('revocation deltas (TANDEM-REV-3, TANDEM-REV-4, TANDEM-REV-7)', () => {
  /** A lock's revocation state after applying `updates` with the real protocol code. */
  function lockAt(
    updates: Uint8Array[],
    resolve: (kid: Uint8Array) => PublicKey | undefined,
  ): RevocationState {
    let s = EMPTY_REVOCATION_STATE;
    for (const u of updates) s = applyRevocationUpdate(s, verifyRevocationUpdate(u, resolve, LOCK), NOW);
    return s;
  }

  it('a lock at version v gets a delta from v, and applying it yields the full list', async () => {
    const { sync, store, issuer, resolve } = await setup();
    const v1 = await revoke(store, issuer, [{ id: id(1), exp: NOW + 3600 }]);
    const v2 = await revoke(store, issuer, [{ id: id(2), exp: NOW + 3600 }]);
    await revoke(store, issuer, [{ id: id(3), exp: NOW + 7200 }]);
    const v4 = await revoke(store, issuer, [
      { id: id(4), exp: NOW + 7200 },
      { id: id(1), exp: NOW + 9000 },
    ]);
    const lock = lockAt([v1, v2], resolve);
    expect(lock.version).toBe(2);
    const res = await sync.sync({
      lockId: LOCK,
      records: [],
      challenge: { nonce: NONCE, revocationVersion: 2 },
    });
    const update = verifyRevocationUpdate(res.revocation!, resolve, LOCK);
    expect(update).toMatchObject({ kind: 'delta', version: 4, baseVersion: 2, removed: [] });
    // Ids 3 and 4 are new since version 2; id 1 took a new expiry in version 4. Id 2 the lock holds already.
    expect(update.added.map((e) => Buffer.from(e.id).toString('hex')).sort()).toEqual(
      [id(1), id(3), id(4)].map((b) => Buffer.from(b).toString('hex')).sort(),
    );
    const after = applyRevocationUpdate(lock, update, NOW);
    expect(after).toEqual(lockAt([v4], resolve));
    expect(res.revocation!.length).toBeLessThan(v4.length);
  });

  it('a lock at version 0, or at a version the cloud never issued, gets the full update', async () => {
    const { sync, store, issuer } = await setup();
    await revoke(store, issuer, [{ id: id(1), exp: NOW + 3600 }]);
    const full = await revoke(store, issuer, [{ id: id(2), exp: NOW + 3600 }]);
    for (const v of [0, 9]) {
      const res = await sync.sync({
        lockId: LOCK,
        records: [],
        challenge: { nonce: NONCE, revocationVersion: v },
      });
      expect(Buffer.from(res.revocation!)).toEqual(Buffer.from(full));
    }
    // Without a challenge the cloud does not know the lock's version: the full update.
    expect(Buffer.from((await sync.sync({ lockId: LOCK, records: [] })).revocation!)).toEqual(
      Buffer.from(full),
    );
  });

  it('a lock that holds the current version gets nothing; a cloud with no list sends nothing', async () => {
    const { sync, store, issuer } = await setup();
    const challenge = { nonce: NONCE, revocationVersion: 0 };
    expect((await sync.sync({ lockId: LOCK, records: [], challenge })).revocation).toBeNull();
    await revoke(store, issuer, [{ id: id(1), exp: NOW + 3600 }]);
    const res = await sync.sync({
      lockId: LOCK,
      records: [],
      challenge: { ...challenge, revocationVersion: 1 },
    });
    expect(res.revocation).toBeNull();
  });

  it('a delta that would not fit a BLE message (4,096 bytes) is replaced by the full update', async () => {
    const { store, issuer, resolve } = await setup();
    const v1 = await revoke(store, issuer, [{ id: id(0), exp: NOW + 3600 }]);
    const many = Array.from({ length: 200 }, (_, k) => ({ id: id(k + 1, 32), exp: NOW + 3600 }));
    const full = await revoke(store, issuer, many);
    const held = await store.getRevocation(LOCK);
    const d = revocationFor(held, 1, issuer, NOW);
    expect(d.kind).toBe('full');
    expect(Buffer.from(d.kind === 'full' ? d.bytes : new Uint8Array())).toEqual(Buffer.from(full));
    // The same list in a budget that fits it is a delta the lock applies.
    const roomy = revocationFor(held, 1, issuer, NOW, 16_384);
    expect(roomy.kind).toBe('delta');
    expect(MAX_BLE_REVOCATION_BYTES).toBe(4096);
    const delta = verifyRevocationUpdate(roomy.kind === 'delta' ? roomy.bytes : full, resolve, LOCK);
    expect(applyRevocationUpdate(lockAt([v1], resolve), delta, NOW)).toEqual(lockAt([full], resolve));
  });

  it('entries expired by now are left out of a delta (the lock drops them itself, TANDEM-REV-8)', async () => {
    const { store, issuer, resolve } = await setup();
    await revoke(store, issuer, [{ id: id(1), exp: NOW + 3600 }]);
    await revoke(store, issuer, [
      { id: id(2), exp: NOW + 10 },
      { id: id(3), exp: NOW + 3600 },
    ]);
    const d = revocationFor(await store.getRevocation(LOCK), 1, issuer, NOW + 60);
    expect(d.kind).toBe('delta');
    const u = verifyRevocationUpdate(d.kind === 'delta' ? d.bytes : new Uint8Array(), resolve, LOCK);
    expect(u.added.map((e) => Buffer.from(e.id).toString('hex'))).toEqual([
      Buffer.from(id(3)).toString('hex'),
    ]);
  });

  it('a row written before entries were dated still reads; every delta then carries its entries', async () => {
    const { store, issuer, resolve, sync } = await setup();
    const v1 = await revoke(store, issuer, [{ id: id(1), exp: NOW + 3600 }]);
    const v2 = await revoke(store, issuer, [{ id: id(2), exp: NOW + 3600 }]);
    // The entries column as the store wrote it before this change: [hex, exp] pairs.
    const db = (store as unknown as { db: SqlDriver }).db;
    await db.run('UPDATE revocations SET entries = ? WHERE lock_id = ?', [
      JSON.stringify([
        [Buffer.from(id(1)).toString('hex'), NOW + 3600],
        [Buffer.from(id(2)).toString('hex'), NOW + 3600],
      ]),
      LOCK,
    ]);
    const held = await store.getRevocation(LOCK);
    expect(held?.version).toBe(2);
    expect([...(held?.addedIn?.values() ?? [])]).toEqual([2, 2]);
    const res = await sync.sync({
      lockId: LOCK,
      records: [],
      challenge: { nonce: NONCE, revocationVersion: 1 },
    });
    const u = verifyRevocationUpdate(res.revocation!, resolve, LOCK);
    expect(u).toMatchObject({ kind: 'delta', baseVersion: 1, version: 2 });
    expect(applyRevocationUpdate(lockAt([v1], resolve), u, NOW)).toEqual(lockAt([v2], resolve));
    // The next version dates its new entry; the undated ones keep counting as version 2.
    await revoke(store, issuer, [{ id: id(3), exp: NOW + 3600 }]);
    const d = revocationFor(await store.getRevocation(LOCK), 2, issuer, NOW);
    const u3 = verifyRevocationUpdate(d.kind === 'delta' ? d.bytes : new Uint8Array(), resolve, LOCK);
    expect(u3.added.map((e) => Buffer.from(e.id).toString('hex'))).toEqual([
      Buffer.from(id(3)).toString('hex'),
    ]);
  });
});

describe('syncJsonHandler: the API contract JSON', () => {
  it('decodes base64url records and answers base64url messages with results of {index, outcome} only', async () => {
    const { sync, lock, resolve } = await setup();
    const handler = syncJsonHandler(sync);
    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
    const thief = generateKeyPair('EdDSA');
    const out = (await handler(
      {
        lock: LOCK,
        records: [b64(lock.alert('moved')), b64(lock.alert('moved', thief))],
        challenge: { nonce: b64(NONCE), revocationVersion: 0 },
      },
      'bianca',
    )) as { results: unknown[]; outboxAck: string; revocation: null; beacon: string };
    expect(out.results).toEqual([
      { index: 0, outcome: 'stored' },
      { index: 1, outcome: 'refused' },
    ]);
    expect(out.revocation).toBeNull();
    expect([...verifyTimeBeacon(Buffer.from(out.beacon, 'base64url'), resolve, LOCK).nonce!]).toEqual([
      ...NONCE,
    ]);
    expect(Object.keys(out).sort()).toEqual(['anchor', 'beacon', 'outboxAck', 'results', 'revocation']);
  });

  it('refuses text that is not base64url without padding, naming the field: ERR_CLOUD_SYNC_INVALID', async () => {
    const { sync, store } = await setup();
    const handler = syncJsonHandler(sync);
    expect(await refusal(handler({ lock: LOCK, records: ['AAAA', 'ab+c'] }, 'bianca'))).toBe(
      'ERR_CLOUD_SYNC_INVALID: sync "records[1]" must be base64url without padding',
    );
    expect(
      await refusal(
        handler({ lock: LOCK, records: [], challenge: { nonce: 'AAAA==', revocationVersion: 0 } }, 'b'),
      ),
    ).toBe('ERR_CLOUD_SYNC_INVALID: sync "challenge.nonce" must be base64url without padding');
    expect(await store.countRecords(LOCK)).toBe(0);
  });
});
