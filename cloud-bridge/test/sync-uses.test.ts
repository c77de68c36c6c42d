// The uses a lock reports in its audit records are mirrored on the share they were made under (uses.ts,
// [TANDEM-SYNC-4]), once per stored record, on both ingestion paths: over MQTT and in a phone's upload.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../protocol/src/keys.js';
import type { AuditRecord } from '../../protocol/src/mqtt.js';
import { AUDIT_GENESIS_HASH, auditRecordHash, encodeAuditRecord } from '../../protocol/src/mqtt.js';
import { Command } from '../../protocol/src/pop.js';
import { Status } from '../../protocol/src/status.js';
import { Ingestor } from '../src/ingest.js';
import { issuerFromKey } from '../src/issuer.js';
import { isLive, shareCti } from '../src/oidc/delegations.js';
import { openSqlStore } from '../src/store/sql-store.js';
import type { CloudStore, Share } from '../src/store/types.js';
import { SyncService } from '../src/sync.js';
import { countUse, isCountedUse } from '../src/uses.js';
import { FakeLock } from './fake-lock.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-uses-'));
let n = 0;
const open: CloudStore[] = [];
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

const NOW = 1_800_000_000;
const LOCK = 'lock-7';
const ONE_SIGNER = '0123456789abcdef';

const share = (id: string, over: Partial<Share> = {}): Share => ({
  id,
  owner: 'adam',
  lock: LOCK,
  rider: 'bianca',
  scope: ['unlock', 'lock', 'status'],
  notBefore: NOW - 60,
  notAfter: NOW + 7200,
  maxUses: 3,
  createdAt: NOW - 60,
  ...over,
});

/** Signs audit records for `lock`, chained, with the fields a lock writes for a request ([TANDEM-MQTT-6]). */
class Trail {
  #prev = AUDIT_GENESIS_HASH;
  constructor(readonly lock: FakeLock) {}
  record(o: {
    event?: string;
    status?: Status;
    command?: Command;
    tokenId?: Uint8Array;
    signers?: string;
    lockId?: string;
  }): Uint8Array {
    const sequence = ++this.lock.sequence;
    const detail = new Map<string, string>([['peer', 'ble']]);
    if (o.signers !== undefined) detail.set('signers', o.signers);
    const bytes = encodeAuditRecord(
      {
        lockId: o.lockId ?? this.lock.lockId,
        sequence,
        epoch: this.lock.epoch,
        time: NOW + sequence,
        previousHash: this.#prev,
        event: o.event ?? 'unlock',
        status: o.status ?? Status.OK,
        ...(o.command === undefined ? {} : { command: o.command }),
        ...(o.tokenId === undefined ? {} : { tokenId: o.tokenId }),
        rider: 'bianca',
        detail,
      },
      this.lock.deviceKey,
    );
    this.#prev = auditRecordHash(bytes);
    return bytes;
  }
  /** An accepted UNLOCK with share `id`'s token, as the lock writes it. */
  unlock(id: string): Uint8Array {
    return this.record({ command: Command.UNLOCK, tokenId: shareCti(id), signers: ONE_SIGNER });
  }
}

async function setup() {
  const store = await openSqlStore({ kind: 'sqlite', engine: 'wasm', path: join(dir, `u${++n}.db`) });
  open.push(store);
  const ingestor = new Ingestor({ store, now: () => NOW * 1000 });
  const issuer = issuerFromKey(generateKeyPair('EdDSA'));
  const sync = new SyncService({ store, ingestor, issuer, now: () => NOW * 1000 });
  const lock = new FakeLock(LOCK);
  await lock.register(store);
  await store.putShare(share('s-1'));
  const uses = async (id = 's-1'): Promise<number | undefined> => (await store.getShare(id))?.usesReported;
  return { store, ingestor, sync, lock, trail: new Trail(lock), uses };
}

const base: AuditRecord = {
  lockId: LOCK,
  sequence: 1,
  epoch: 1,
  time: NOW,
  previousHash: AUDIT_GENESIS_HASH,
  event: 'unlock',
  status: Status.OK,
  command: Command.UNLOCK,
  tokenId: shareCti('s-1'),
  detail: new Map([['signers', ONE_SIGNER]]),
};

describe('which audit records are uses ([TANDEM-USES-2])', () => {
  it.each<[string, Partial<AuditRecord>, boolean]>([
    ['an accepted UNLOCK', {}, true],
    ['an accepted LOCK (the lock counts it too)', { command: Command.LOCK, event: 'lock' }, true],
    ['an UNLOCK that acted before a fault', { status: Status.FAULT }, true],
    ['a refused UNLOCK', { event: 'refused', status: Status.USES_EXHAUSTED }, false],
    ['a busy UNLOCK', { event: 'busy', status: Status.BUSY }, false],
    ['STATUS, which counts no use', { command: Command.STATUS, event: 'status' }, false],
    ['READ_AUDIT, which counts no use', { command: Command.READ_AUDIT, event: 'read-audit' }, false],
    ['a record without a command', { command: undefined, event: 'boot' }, false],
    ['a record without a token id', { tokenId: undefined }, false],
    ['a chain of two tokens', { detail: new Map([['signers', `${ONE_SIGNER}.fedcba9876543210`]]) }, false],
    ['a record without signers', { detail: new Map() }, false],
  ])('%s: %s', (_what, over, counted) => {
    expect(isCountedUse({ ...base, ...over })).toBe(counted);
  });
});

describe('usesReported is fed from ingested audit records', () => {
  it('over MQTT: each accepted use counts once; the same record again counts nothing', async () => {
    const { ingestor, trail, uses } = await setup();
    const first = trail.unlock('s-1');
    expect(await ingestor.ingest('audit', LOCK, first, 'mqtt')).toMatchObject({ outcome: 'stored' });
    expect(await uses()).toBe(1);
    expect(await ingestor.ingest('audit', LOCK, first, 'mqtt')).toEqual({ outcome: 'duplicate' });
    expect(await uses()).toBe(1);
    await ingestor.ingest(
      'audit',
      LOCK,
      trail.record({ command: Command.LOCK, event: 'lock', tokenId: shareCti('s-1'), signers: ONE_SIGNER }),
      'mqtt',
    );
    expect(await uses()).toBe(2);
  });

  it("in a phone's upload: counted like MQTT, and a second phone uploading the same record counts nothing", async () => {
    const { sync, ingestor, trail, uses, store } = await setup();
    const a = trail.unlock('s-1');
    const b = trail.unlock('s-1');
    const res = await sync.sync({ lockId: LOCK, records: [a, b] });
    expect(res.results.map((r) => r.outcome)).toEqual(['stored', 'stored']);
    expect(await uses()).toBe(2);
    // The same records over MQTT (the lock reconnects) and from another phone: already held.
    expect(await ingestor.ingest('audit', LOCK, a, 'mqtt')).toEqual({ outcome: 'duplicate' });
    expect((await sync.sync({ lockId: LOCK, records: [a, b] })).results.map((r) => r.outcome)).toEqual([
      'duplicate',
      'duplicate',
    ]);
    expect(await uses()).toBe(2);
    // The third use: the share is used up and yields no token any more ([TANDEM-DLG-3]).
    await sync.sync({ lockId: LOCK, records: [trail.unlock('s-1')] });
    expect(await uses()).toBe(3);
    expect(isLive((await store.getShare('s-1'))!, NOW)).toBe(false);
  });

  it('counts nothing for refusals, STATUS, other tokens, re-shared links, forged or foreign records', async () => {
    const { ingestor, sync, trail, lock, uses, store } = await setup();
    await store.putShare(share('s-2', { rider: 'carol' }));
    const cti = shareCti('s-1');
    const records = [
      trail.record({
        event: 'refused',
        status: Status.OUTSIDE_SCHEDULE,
        command: Command.UNLOCK,
        tokenId: cti,
        signers: ONE_SIGNER,
      }),
      trail.record({ event: 'status', command: Command.STATUS, tokenId: cti, signers: ONE_SIGNER }),
      trail.record({ command: Command.UNLOCK, tokenId: new Uint8Array(16).fill(7), signers: ONE_SIGNER }),
      // A link whose delegator wrote the share's cti as his own ([TANDEM-USES-5]): not the share's use.
      trail.record({ command: Command.UNLOCK, tokenId: cti, signers: `${ONE_SIGNER}.fedcba9876543210` }),
    ];
    for (const r of records) await ingestor.ingest('audit', LOCK, r, 'mqtt');
    expect(await uses()).toBe(0);
    expect(await uses('s-2')).toBe(0);

    // Signed by another key: refused as a forgery, counts nothing.
    const thief = new FakeLock(LOCK);
    thief.sequence = lock.sequence;
    const forged = new Trail(thief).unlock('s-1');
    expect((await sync.sync({ lockId: LOCK, records: [forged] })).results[0]).toMatchObject({
      outcome: 'refused',
    });
    // Another lock's share with the same id would have the same cti: a record of lock-7 never counts for it.
    const other = new FakeLock('lock-8');
    await other.register(store);
    await store.putShare(share('s-8', { lock: 'lock-8' }));
    await ingestor.ingest(
      'audit',
      LOCK,
      trail.record({ command: Command.UNLOCK, tokenId: shareCti('s-8'), signers: ONE_SIGNER }),
      'mqtt',
    );
    expect(await uses('s-8')).toBe(0);
    expect(await uses()).toBe(0);
  });

  it('countUse names the share it counted against, or nothing', async () => {
    const { store } = await setup();
    expect(await countUse(store, base)).toBe('s-1');
    expect(await countUse(store, { ...base, tokenId: shareCti('s-1').subarray(0, 8) })).toBeUndefined();
    expect((await store.getShare('s-1'))!.usesReported).toBe(1);
  });
});
