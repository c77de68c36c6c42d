import { CrashingStoreFs } from './crashing-store-fs.js';
import type { TornWriteMode } from './crashing-store-fs.js';
import { isStoreError } from './errors.js';

/** One run of a scripted sequence against a store; a fresh one is made for every cut. */
export interface PowerCutScenario {
  /** Drive the store; record what was acknowledged (resolved) as it goes. May stop early at the cut. */
  run(fs: CrashingStoreFs): Promise<void>;
  /** After reboot: reopen the store on `fs` and check what `run` recorded as acknowledged. */
  check(fs: CrashingStoreFs): Promise<void>;
}

/** Options of {@link sweepPowerCuts}. */
export interface PowerCutSweepOptions {
  /** Default ['lose', 'keep', 'random']. */
  modes?: readonly TornWriteMode[];
  /** Seeds per 'random' cut (default 4). */
  randomSeeds?: number;
}

/** What a sweep did. */
export interface PowerCutSweepReport {
  /** Filesystem operations in an uninterrupted run: the cut points 0..operations. */
  operations: number;
  /** Runs made (cut points × modes × seeds). */
  runs: number;
}

/**
 * Cut the power at every filesystem operation of a scripted sequence, reboot, and check: first one run
 * without a cut counts the operations N; then for every n in 0..N (N itself means "after the last one") and
 * every torn-write mode, a fresh scenario runs on a CrashingStoreFs that dies at operation n, then `check`
 * runs on the rebooted filesystem. Any failure other than the simulated power loss is rethrown, as is any
 * failure of `check`. Used by the store tests and by hardware testers to sweep their own sequences.
 */
export async function sweepPowerCuts(
  makeScenario: () => PowerCutScenario,
  options: PowerCutSweepOptions = {},
): Promise<PowerCutSweepReport> {
  const probe = new CrashingStoreFs({ tornWrites: 'keep' });
  const first = makeScenario();
  await first.run(probe);
  await first.check(probe.reboot());
  const operations = probe.operationCount;
  const modes = options.modes ?? ['lose', 'keep', 'random'];
  let runs = 0;
  for (const mode of modes) {
    const seeds = mode === 'random' ? (options.randomSeeds ?? 4) : 1;
    for (let seed = 1; seed <= seeds; seed++) {
      for (let n = 0; n <= operations; n++) {
        const fs = new CrashingStoreFs({ cutAtOperation: n, tornWrites: mode, seed: seed * 100_003 + n });
        const scenario = makeScenario();
        try {
          await scenario.run(fs);
        } catch (err) {
          if (!isStoreError(err, 'ERR_STORE_POWER_LOST')) throw err;
        }
        try {
          await scenario.check(fs.reboot());
        } catch (err) {
          const why = err instanceof Error ? err.message : String(err);
          throw new Error(
            `after a power cut at operation ${n}/${operations} (${mode}, seed ${seed}): ${why}`,
            { cause: err },
          );
        }
        runs++;
      }
    }
  }
  return { operations, runs };
}
