import { mkdtemp, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppendLog } from '../src/store/append-log.js';
import { AuditLog } from '../src/store/audit-log.js';
import { ConfigStore } from '../src/store/config-store.js';
import { CrashingStoreFs } from '../src/store/crashing-store-fs.js';
import { StoreError } from '../src/store/errors.js';
import { Outbox } from '../src/store/outbox.js';
import { RevocationStore } from '../src/store/revocation-store.js';
import { NodeStoreFs } from '../src/store/store-fs.js';
import { UseCounterStore } from '../src/store/use-counter-store.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

describe('stores on the real filesystem (NodeStoreFs)', () => {
  let dir = '';
  const fs = new NodeStoreFs();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tandem-store-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('runs every store through a sequence, then reopens it intact', async () => {
    const d = join(dir, 'stores');
    const config = await ConfigStore.open(fs, d);
    await config.setMany({ lockId: 'L-1', ownerKey: new Uint8Array([1, 2, 3]) });
    const rev = await RevocationStore.open(fs, d, { compactAtBytes: 200 });
    await rev.replace(1, [{ id: enc('token-a'), exp: 100 }]);
    for (let v = 2; v <= 12; v++)
      await rev.applyDelta({
        baseVersion: v - 1,
        version: v,
        add: [{ id: enc(`token-${v}`), exp: 100 + v }],
      });
    await rev.prune(103);
    const uses = await UseCounterStore.open(fs, d, { compactAtBytes: 100 });
    for (let i = 0; i < 10; i++) await uses.increment(enc('token-x'), 500);
    const audit = await AuditLog.open(fs, d, { maxRecords: 5 });
    for (let i = 1; i <= 5; i++) await audit.append(enc(`event ${i}`));
    await audit.append(enc('event 6'));
    const box = await Outbox.open(fs, d, { compactAtBytes: 120 });
    for (let i = 1; i <= 6; i++) await box.enqueue(i % 2 ? 'alert' : 'audit', enc(`msg ${i}`));
    await box.ack(4);
    await Promise.all([rev.close(), uses.close(), audit.close(), box.close()]);

    expect((await readdir(d)).sort()).toEqual([
      'audit.log',
      'config.bin',
      'outbox.log',
      'revocations.log',
      'use-counters.log',
    ]);
    const config2 = await ConfigStore.open(fs, d);
    expect(config2.get('lockId')).toBe('L-1');
    expect(config2.getBytes('ownerKey')).toEqual(new Uint8Array([1, 2, 3]));
    const rev2 = await RevocationStore.open(fs, d);
    expect([rev2.version, rev2.size, rev2.has(enc('token-a')), rev2.has(enc('token-12'))]).toEqual([
      12,
      9,
      false,
      true,
    ]);
    expect((await UseCounterStore.open(fs, d)).get(enc('token-x'))).toBe(10);
    const audit2 = await AuditLog.open(fs, d);
    // Full at 5: the oldest dropped down to 3/4 of the bound before the sixth.
    expect(audit2.records().map((r) => `${r.seq}:${dec(r.payload)}`)).toEqual([
      '3:event 3',
      '4:event 4',
      '5:event 5',
      '6:event 6',
    ]);
    expect((await Outbox.open(fs, d)).peek().map((e) => dec(e.payload))).toEqual(['msg 5', 'msg 6']);
  });

  it('cuts a torn tail on a real file and reports a flipped bit as ERR_STORE_CORRUPT', async () => {
    const d = join(dir, 'log');
    const { log } = await AppendLog.open(fs, d, 'a.log');
    await log.append(enc('first'));
    await log.append(enc('second'));
    await log.close();
    const path = join(d, 'a.log');
    const size = (await readFile(path)).length;
    await truncate(path, size - 3);
    const opened = await AppendLog.open(fs, d, 'a.log');
    expect(opened.records.map(dec)).toEqual(['first']);
    expect(opened.tornTailBytes).toBe(APPEND_FRAME + 'second'.length - 3);
    await opened.log.append(enc('third'));
    await opened.log.close();
    const bytes = await readFile(path);
    bytes[10]! ^= 0x01;
    await writeFile(path, bytes);
    const err = await AppendLog.open(fs, d, 'a.log').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('ERR_STORE_CORRUPT');
  });

  it('cuts the power over a copy of a real store directory and saves the survivors back', async () => {
    const d = join(dir, 'copy');
    const box = await Outbox.open(fs, d);
    await box.enqueue('alert', enc('acknowledged before the copy'));
    await box.close();
    const sim = await CrashingStoreFs.load(fs, [d], { tornWrites: 'lose' });
    const simBox = await Outbox.open(sim, d);
    await simBox.enqueue('alert', enc('acknowledged on the simulated card'));
    sim.powerCut();
    await expectPowerLost(simBox.enqueue('alert', enc('never acknowledged')));
    await sim.reboot().saveTo(fs, [d]);
    const after = await Outbox.open(fs, d);
    expect(after.peek().map((e) => dec(e.payload))).toEqual([
      'acknowledged before the copy',
      'acknowledged on the simulated card',
    ]);
    // Only store directories of the card may be written back, never their parents.
    const refused = await sim
      .reboot()
      .saveTo(fs, [dir])
      .catch((e: unknown) => e);
    expect((refused as StoreError).code).toBe('ERR_STORE_INVALID_ARGUMENT');
  });

  it('maps a missing directory to ERR_STORE_NOT_FOUND', async () => {
    const err = await fs.readFile(join(dir, 'nope', 'x')).catch((e: unknown) => e);
    expect((err as StoreError).code).toBe('ERR_STORE_NOT_FOUND');
  });
});

const APPEND_FRAME = 12;

async function expectPowerLost(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect((err as StoreError).code).toBe('ERR_STORE_POWER_LOST');
}
