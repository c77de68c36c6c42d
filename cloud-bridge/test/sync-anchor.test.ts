// Anchor updates through the phone ([TANDEM-SYNC-5]): the sync answer carries the keyring's anchor update while
// the lock has not acknowledged its version; the anchor acknowledgement a phone uploads is verified as over
// MQTT and stored (anchor-acks.ts), after which the update is no longer handed out.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { encodeAnchorAck, verifyAnchorUpdate } from '../../protocol/src/anchor-update.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { ingestAnchorAck } from '../src/anchor-acks.js';
import { Ingestor } from '../src/ingest.js';
import { IssuerKeyring } from '../src/keyring.js';
import { openSqlStore } from '../src/store/sql-store.js';
import type { CloudStore } from '../src/store/types.js';
import { SyncService, syncJsonHandler } from '../src/sync.js';
import { FakeLock } from './fake-lock.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-sync-anchor-'));
let n = 0;
const open: CloudStore[] = [];
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

const NOW_MS = 1_800_000_000_000;
const LOCK = 'lock-7';
const SECRET = 'ab'.repeat(32);

async function setup(options: { rotate?: boolean } = {}) {
  const store = await openSqlStore({ kind: 'sqlite', engine: 'wasm', path: join(dir, `a${++n}.db`) });
  open.push(store);
  const ringDir = mkdtempSync(join(dir, 'ring-'));
  const clock = { ms: NOW_MS };
  const ring = IssuerKeyring.open({ dir: ringDir, secret: SECRET, now: () => clock.ms });
  const oldKey = ring.current;
  if (options.rotate !== false) ring.rotate(7 * 86_400);
  const ingestor = new Ingestor({ store, now: () => NOW_MS });
  const sync = new SyncService({ store, ingestor, issuer: ring.issuer, anchors: ring, now: () => NOW_MS });
  const lock = new FakeLock(LOCK);
  await lock.register(store);
  const ack = (version: number, key = lock.deviceKey, lockId = LOCK): Uint8Array =>
    encodeAnchorAck({ lockId, version, lockTime: 1_800_000_000 }, key);
  return { store, ring, oldKey, sync, lock, ack, clock };
}

describe('the sync answer carries the anchor update until the lock acknowledges it', () => {
  it('hands out the update signed by the old key while no ack is held; an uploaded ack stops it', async () => {
    const { sync, store, ring, oldKey, ack, clock } = await setup();
    expect(ring.anchorVersion).toBe(1);
    const first = await sync.sync({ lockId: LOCK, records: [] });
    expect(first.anchor).not.toBeNull();
    // The lock checks it with the anchor it holds: the old key ([TANDEM-ANCHOR-2]).
    const verified = verifyAnchorUpdate(
      first.anchor!,
      (kid) => (Buffer.from(kid).toString() === oldKey.kidText ? oldKey.key.publicKey : undefined),
      LOCK,
    );
    expect(verified.update.version).toBe(1);
    expect(Buffer.from(first.anchor!)).toEqual(Buffer.from(ring.anchorUpdateFor(LOCK)!));

    // The phone relays the lock's ack (GATT 0x0d) in its next sync: stored, and no update any more.
    const second = await sync.sync({ lockId: LOCK, records: [ack(1)] });
    expect(second.results).toEqual([{ index: 0, outcome: 'stored' }]);
    expect(second.anchor).toBeNull();
    expect(await store.getAnchorAck(LOCK)).toEqual({
      lockId: LOCK,
      version: 1,
      lockTime: 1_800_000_000,
      receivedAt: NOW_MS,
      via: 'relay',
    });
    // The same ack again (a second phone): a duplicate.
    expect((await sync.sync({ lockId: LOCK, records: [ack(1)] })).results).toEqual([
      { index: 0, outcome: 'duplicate' },
    ]);
    // The next rotation step (the overlap ends): version 2, handed out again until acknowledged.
    clock.ms += 8 * 86_400_000;
    expect(ring.advance()).toBe(true);
    expect(ring.anchorVersion).toBe(2);
    expect((await sync.sync({ lockId: LOCK, records: [] })).anchor).not.toBeNull();
  });

  it('a forged ack, or one naming another lock, is refused and changes nothing', async () => {
    const { sync, store, ack } = await setup();
    const other = new FakeLock('lock-8');
    await other.register(store);
    const res = await sync.sync({
      lockId: LOCK,
      records: [ack(1, generateKeyPair('EdDSA')), ack(1, other.deviceKey, 'lock-8')],
    });
    expect(res.results.map((r) => r.outcome)).toEqual(['refused', 'refused']);
    expect(res.results[0]!.reason).toMatch(/^ERR_SIGNATURE_INVALID/);
    expect(res.results[1]!.reason).toMatch(/^ERR_/);
    expect(await store.getAnchorAck(LOCK)).toBeUndefined();
    expect(await store.getAnchorAck('lock-8')).toBeUndefined();
    expect(res.anchor).not.toBeNull();
  });

  it('an ack over MQTT (as the bridge ingests it) stops the update for phones too', async () => {
    const { sync, store, ack } = await setup();
    expect(await ingestAnchorAck(store, LOCK, ack(1), 'mqtt', NOW_MS)).toMatchObject({ outcome: 'stored' });
    expect((await sync.sync({ lockId: LOCK, records: [] })).anchor).toBeNull();
    expect(await ingestAnchorAck(store, 'lock-9', ack(1), 'mqtt', NOW_MS)).toEqual({
      outcome: 'refused',
      reason: 'lock lock-9 is not registered',
    });
  });

  it('before any rotation there is no anchor update to carry', async () => {
    const { sync } = await setup({ rotate: false });
    expect((await sync.sync({ lockId: LOCK, records: [] })).anchor).toBeNull();
  });

  it('the JSON form carries it base64url, and takes a relayed ack', async () => {
    const { sync, ack, store } = await setup();
    const handler = syncJsonHandler(sync);
    const out = (await handler({ lock: LOCK, records: [] }, 'bianca')) as { anchor: string | null };
    expect(out.anchor).toMatch(/^[A-Za-z0-9_-]+$/);
    const after = (await handler(
      { lock: LOCK, records: [Buffer.from(ack(1)).toString('base64url')] },
      'bianca',
    )) as { anchor: string | null; results: unknown };
    expect(after).toMatchObject({ anchor: null, results: [{ index: 0, outcome: 'stored' }] });
    expect((await store.getAnchorAck(LOCK))?.via).toBe('relay');
  });
});
