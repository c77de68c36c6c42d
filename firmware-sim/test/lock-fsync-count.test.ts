/**
 * [TANDEM-USES-6] (issue 8 §2): at most one fsync between an unlock request and the solenoid energising, on
 * the real filesystem (NodeStoreFs in a temp dir), counted, not timed. The use counts of every counted link
 * go in one append; the audit record and the outbox record follow the action.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../protocol/src/token.js';
import { Status } from '../../protocol/src/status.js';
import { CountingStoreFs } from '../src/store/counting-store-fs.js';
import { NodeStoreFs } from '../src/store/store-fs.js';
import { decodeAuditEntry } from '../src/lock/audit.js';
import type { Lock } from './lock-harness.js';
import { claims, freshCti, makeLock } from './lock-harness.js';

/** Sends `request` and returns the fsyncs before the solenoid energised and in the whole request. */
async function countedUnlock(
  lock: Lock,
  fs: CountingStoreFs,
  request: Uint8Array,
): Promise<{ before: string[]; total: string[]; status: Status }> {
  const solenoid = lock.mech.solenoid;
  const pulse = solenoid.pulse.bind(solenoid);
  let before: string[] | undefined;
  const start = fs.synced.length;
  solenoid.pulse = (ms: number) => {
    before ??= fs.synced.slice(start);
    return pulse(ms);
  };
  try {
    const r = await lock.send(request);
    const total = fs.synced.slice(start);
    if (before === undefined) throw new Error(`the solenoid did not move (status ${r.status})`);
    return { before, total, status: r.status };
  } finally {
    solenoid.pulse = pulse;
  }
}

describe('fsyncs before the solenoid moves [TANDEM-USES-6]', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tandem-fsync-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a token without a use limit: no fsync before the solenoid, first or repeat; audit and outbox after it', async () => {
    const fs = new CountingStoreFs(new NodeStoreFs());
    const lock = await makeLock({ storeFs: fs, dir: join(dir, 'plain') });
    const token = lock.token();
    const first = await countedUnlock(lock, fs, lock.request({ chain: [token] }));
    expect(first.status).toBe(Status.OK);
    expect(first.before).toEqual([]);
    // Durability is not traded away: the outbox record and the local audit entry are each fsynced, after.
    expect(first.total.map((p) => p.split('/').at(-1))).toEqual(['outbox.log', 'audit.log']);
    await lock.relock();
    const repeat = await countedUnlock(lock, fs, lock.request({ chain: [token], byRef: true }));
    expect(repeat.status).toBe(Status.OK);
    expect(repeat.before).toEqual([]);
    expect(repeat.total).toHaveLength(2);
    expect(decodeAuditEntry(lock.stores.audit.records().at(-1)!.payload).status).toBe(Status.OK);
    expect(lock.pulses).toHaveLength(2);
    await lock.trusted.close();
  });

  it('a delegated chain whose root and link both count uses: one fsync before the solenoid, first and repeat', async () => {
    const fs = new CountingStoreFs(new NodeStoreFs());
    const lock = await makeLock({ storeFs: fs, dir: join(dir, 'counted') });
    const w = lock.w;
    const rootCti = freshCti();
    const linkCti = freshCti();
    const root = lock.token({ cti: rootCti, scope: ['unlock', 'delegate'], maxUses: 5 });
    const link = mintToken(
      claims(w, { cti: linkCti, iss: 'bianca', cnf: w.friend.publicKey, scope: ['unlock'], maxUses: 3 }),
      w.rider,
    );
    const chain = [root, link];
    const first = await countedUnlock(lock, fs, lock.request({ chain, holder: w.friend }));
    expect(first.status).toBe(Status.OK);
    // Two counters, one append: before this change each link was its own append and fsync (2).
    expect(first.before.map((p) => p.split('/').at(-1))).toEqual(['use-counters.log']);
    expect(lock.usesOf(rootCti)).toBe(1);
    expect(lock.usesOf(linkCti, w.rider.publicKey)).toBe(1);
    await lock.relock();
    const repeat = await countedUnlock(lock, fs, lock.request({ chain, holder: w.friend, byRef: true }));
    expect(repeat.status).toBe(Status.OK);
    expect(repeat.before.map((p) => p.split('/').at(-1))).toEqual(['use-counters.log']);
    expect(lock.usesOf(linkCti, w.rider.publicKey)).toBe(2);
    expect(lock.usesOf(rootCti)).toBe(2);
    await lock.trusted.close();
  });
});
