/** The lock runtime on the real filesystem (NodeStoreFs in a temp dir): unlock, reboot, corrupt store. */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../hardware/src/clock.js';
import { Status } from '../../protocol/src/status.js';
import { NodeStoreFs } from '../src/store/store-fs.js';
import { makeLock } from './lock-harness.js';

describe('lock runtime on the real filesystem', () => {
  let dir = '';
  const storeFs = new NodeStoreFs();
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tandem-lock-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('unlocks, keeps its counts, floor and lockout-free state across a restart, and enters safe mode on a corrupt store', async () => {
    const d = join(dir, 'lock');
    const first = await makeLock({ storeFs, dir: d });
    const token = first.token({ maxUses: 2 });
    expect((await first.send(first.request({ chain: [token] }))).status).toBe(Status.OK);
    await first.trusted.close();
    expect((await readdir(d)).sort()).toEqual(
      [
        'audit.log',
        'config.bin',
        'outbox.log',
        'revocations.log',
        'time-floor.bin',
        'use-counters.log',
      ].sort(),
    );
    const second = await makeLock({
      storeFs,
      dir: d,
      world: first.w,
      clock: new ManualClock(0),
      noBeacon: true,
    });
    expect(second.corrupt).toEqual([]);
    // The floor persisted at shutdown (the simulated clock runs on while real fsyncs complete).
    expect(second.trusted.bound().earliest).toBeGreaterThanOrEqual(first.trusted.floor);
    await second.syncTime(second.trusted.bound().earliest + 2);
    expect((await second.send(second.request({ chain: [token] }))).status).toBe(Status.OK);
    await second.relock();
    expect((await second.send(second.request({ chain: [token] }))).status).toBe(Status.USES_EXHAUSTED);
    await second.trusted.close();
    await writeFile(join(d, 'revocations.log'), 'not a revocation log');
    const third = await makeLock({ storeFs, dir: d, world: first.w });
    expect(third.corrupt).toEqual(['revocations.log']);
    expect(third.sm.state).toBe('safe-mode');
    expect((await readdir(d)).includes('revocations.log.corrupt')).toBe(true);
    expect((await third.send(third.request({ chain: [third.token()] }))).status).toBe(Status.SAFE_MODE);
    expect(third.pulses).toHaveLength(0);
    await third.trusted.close();
  });
});
