/**
 * [TANDEM-REV-12]: a verified lock state is the lock's signed statement of the revocation version it holds,
 * recorded as its acknowledgement when higher than the one held, so the owner sees a revocation landed even
 * when the broker lost the acknowledgement itself (it is published once per delivery, the state at every
 * connection). A forged state, or a lower version, changes nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { generateKeyPair } from '../../protocol/src/keys.js';
import type { PrivateKey } from '../../protocol/src/keys.js';
import { encodeLockState } from '../../protocol/src/mqtt.js';
import { Ingestor } from '../src/ingest.js';
import { openSqlStore } from '../src/store/sql-store.js';
import { FakeLock } from './fake-lock.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-rev-state-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function state(lock: FakeLock, revocationVersion: number, time: number, key: PrivateKey = lock.deviceKey) {
  return encodeLockState(
    {
      lockId: lock.lockId,
      state: 'locked',
      time,
      uncertainty: 2,
      revocationVersion,
      outboxEpoch: lock.epoch,
      outboxSequence: 0,
    },
    key,
  );
}

it('records the revocation version a signed state reports, never a lower one, nor a forged one', async () => {
  const store = await openSqlStore({ kind: 'sqlite', engine: 'wasm', path: join(dir, 'r.db') });
  try {
    const lock = new FakeLock('lock-s');
    await lock.register(store);
    const ingestor = new Ingestor({ store, now: () => 1_800_000_500_000 });
    // A state with version 0 acknowledges nothing.
    expect((await ingestor.ingest('state', 'lock-s', state(lock, 0, 1_800_000_000), 'mqtt')).outcome).toBe(
      'stored',
    );
    expect(await store.getRevocationAck('lock-s')).toBeUndefined();
    // A forged state (another key) is refused and acknowledges nothing.
    const forged = state(lock, 9, 1_800_000_001, generateKeyPair('EdDSA'));
    expect((await ingestor.ingest('state', 'lock-s', forged, 'mqtt')).outcome).toBe('refused');
    expect(await store.getRevocationAck('lock-s')).toBeUndefined();
    // The state after applying version 3: acknowledged, with the state's time, and the owner is told.
    await ingestor.ingest('state', 'lock-s', state(lock, 3, 1_800_000_010), 'mqtt');
    expect(await store.getRevocationAck('lock-s')).toMatchObject({ version: 3, lockTime: 1_800_000_010 });
    // The acknowledgement itself, arriving after, and an older state change nothing.
    expect((await ingestor.ingest('revocation-ack', 'lock-s', lock.revocationAck(3), 'mqtt')).outcome).toBe(
      'duplicate',
    );
    await ingestor.ingest('state', 'lock-s', state(lock, 2, 1_800_000_020), 'mqtt');
    expect(await store.getRevocationAck('lock-s')).toMatchObject({ version: 3, lockTime: 1_800_000_010 });
    const applied = (await store.listEvents({ lockId: 'lock-s', limit: 100 })).filter(
      (e) => e.kind === 'revocation-applied',
    );
    expect(applied.map((e) => e.detail)).toEqual([{ version: 3, lockTime: 1_800_000_010 }]);
  } finally {
    await store.close();
  }
});
