// Crash safety (issue 7 §2). A short smoke of `npm run fuzz -- --crash N`: the lock runtime in a real child
// process, killed with SIGKILL at seeded moments while it unlocks, applies revocation updates and queues
// alerts, restarted on the same data directory each time. And power cuts that lose un-synced writes
// (CrashingStoreFs + sweepPowerCuts) at every filesystem operation of the same workload.
import { describe, expect, it } from 'vitest';
import { encodeAlert } from '../../protocol/src/mqtt.js';
import { encodeRevocationUpdate } from '../../protocol/src/revocation.js';
import { Status } from '../../protocol/src/status.js';
import type { CrashingStoreFs } from '../../firmware-sim/src/store/crashing-store-fs.js';
import { sweepPowerCuts } from '../../firmware-sim/src/store/power-cut-sweep.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { LOCK, NOW, makeLock, settle, world } from '../../firmware-sim/test/lock-harness.js';
import { bootViolations, runCrashCampaign } from './crash/campaign.js';
import type { Acknowledged, Facts } from './crash/campaign.js';

const BOOT: Facts = {
  lockId: 'lock-crash',
  corrupt: [],
  state: 'locked',
  energised: false,
  outboxSeqs: [1, 2, 3],
  outboxAckedThrough: 0,
  auditLastSeq: 9,
  auditCount: 9,
  revocationVersion: 4,
  pulses: 0,
  alerts: 1,
};

describe('crash safety: kill -9 of the lock process', () => {
  it('the boot check fails on safe mode, an open lock, an energised coil and each lost acknowledged record', () => {
    const acked: Acknowledged = { outbox: [1, 2, 3], auditLastSeq: 9, revocationVersion: 4, outboxSize: 3 };
    expect(bootViolations(BOOT, acked)).toEqual([]);
    expect(bootViolations({ ...BOOT, corrupt: ['audit'] }, acked)).toEqual([
      'booted in safe mode: audit corrupt',
    ]);
    expect(bootViolations({ ...BOOT, state: 'unlocked', energised: true }, acked)).toEqual([
      'booted unlocked, not locked',
      'booted with the solenoid energised',
    ]);
    expect(bootViolations({ ...BOOT, outboxSeqs: [1, 3] }, acked)).toEqual([
      'acknowledged outbox record(s) 2 lost',
      'outbox holds 2 records; 3 had been acknowledged',
    ]);
    // Records the cloud acknowledged may go.
    expect(bootViolations({ ...BOOT, outboxSeqs: [3], outboxAckedThrough: 2 }, acked)).toEqual([]);
    expect(bootViolations({ ...BOOT, auditLastSeq: 8, revocationVersion: 3 }, acked)).toEqual([
      'audit log ends at 8; 9 had been acknowledged',
      'revocation version 3; 4 had been acknowledged',
    ]);
  });

  it('5 SIGKILLs at seeded moments during unlocks, revocation updates and alerts: every boot locked, nothing corrupt or lost', async () => {
    const s = await runCrashCampaign({ runs: 5, seed: 20261205, maxKillMs: 1500 });
    expect(s.violations).toEqual([]);
    expect(s.ok).toBe(true);
    expect(s.kills).toBe(5);
    // Five kills and the final check: six boots on the same directory.
    expect(s.boots).toBe(6);
    expect(s.acknowledged.unlocks + s.acknowledged.revocations).toBeGreaterThan(0);
  }, 180_000);
});

describe('crash safety: power cuts that lose un-synced writes', () => {
  it('at every filesystem operation of an unlock, a revocation update and an alert: locked, not corrupt, nothing acknowledged lost', async () => {
    const w = world();
    const device = generateKeyPair('EdDSA');
    const holder = w.rider;
    const base = await makeLock({ world: w, device });
    const token = base.token({ schedule: undefined, maxUses: 10 });
    const update = encodeRevocationUpdate(
      {
        kind: 'full',
        version: 3,
        issuedAt: NOW,
        lockId: LOCK,
        added: [{ id: Uint8Array.of(1, 2, 3, 4), exp: NOW + 86_400 }],
        removed: [],
      },
      w.issuer,
      w.issuerKid,
    );
    let cuts = 0;
    const report = await sweepPowerCuts(
      () => {
        const acked = { audit: 0, version: 0, outbox: [] as number[] };
        return {
          async run(fs: CrashingStoreFs) {
            let lock;
            try {
              lock = await makeLock({ fs, world: w, device });
            } catch (e) {
              // The cut came during the boot or the time beacon: nothing was acknowledged.
              if (fs.poweredOff) return;
              throw e;
            }
            const req = lock.request({ chain: [token], holder });
            const r = await lock.send(req);
            if (r.status === Status.OK) acked.audit = lock.stores.audit.records().at(-1)?.seq ?? 0;
            const d = await settle(lock.clock, lock.authority.applyRevocationUpdate(update));
            if (d.status === Status.OK) acked.version = 3;
            let seq: number;
            try {
              seq = await lock.stores.outbox.enqueueWith('alert', (sequence, epoch) =>
                encodeAlert(
                  { lockId: LOCK, sequence, epoch, time: NOW, kind: 'tamper', detail: new Map() },
                  device,
                ),
              );
            } catch (e) {
              // The store reports the cut in its own words (ERR_STORE_CLOSED after a failed roll-back).
              if (fs.poweredOff) return;
              throw e;
            }
            acked.outbox = lock.stores.outbox.peek(1000).map((e) => e.seq);
            expect(acked.outbox).toContain(seq);
          },
          async check(fs: CrashingStoreFs) {
            cuts += 1;
            const lock = await makeLock({ fs, world: w, device, noBeacon: true });
            expect(lock.corrupt).toEqual([]);
            expect(lock.sm.state).toBe('locked');
            expect(lock.mech.solenoid.isEnergised()).toBe(false);
            expect(lock.pulses).toHaveLength(0);
            expect(lock.stores.revocations.version).toBeGreaterThanOrEqual(acked.version);
            expect(lock.stores.audit.records().at(-1)?.seq ?? 0).toBeGreaterThanOrEqual(acked.audit);
            const present = lock.stores.outbox.peek(1000).map((e) => e.seq);
            for (const s of acked.outbox) expect(present).toContain(s);
            lock.authority.close();
          },
        };
      },
      { modes: ['lose', 'random'], randomSeeds: 1 },
    );
    expect(report.operations).toBeGreaterThan(10);
    expect(cuts).toBe(report.runs + 1);
  }, 180_000);
});
