/**
 * Smoke test of `npm run bench -- ble`: the group runs (noble and bleno on the virtual radio against the lock
 * runtime on real files), the process exits by itself, and its JSON lines keep their names, one set per lock
 * board and phone profile. Counts are deterministic and checked; the goals are attached to the iPhone against
 * Pi Zero W rows only; modelled times are only checked to be positive (whether they meet their goals is the
 * bench's report, not a test).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const BOARDS = ['pi-zero-w', 'pi-zero-2-w'];
const PHONES = ['iphone', 'iphone-15ms', 'android', 'pessimistic'];
const QUANTITIES = [
  'gatt_round_trips',
  'att_writes',
  'tap_to_solenoid_ms',
  'tap_to_result_ms',
  'connected_to_solenoid_ms',
  'interval_at_solenoid_ms',
];
const pairNames = (b: string, p: string): string[] =>
  ['first', 'repeat'].flatMap((what) => QUANTITIES.map((q) => `ble.${b}.${p}.${q}_${what}`));
// Every pair, then the goal pair once more with a lock that sends no connection parameter request.
const NAMES = [
  ...BOARDS.flatMap((b) => PHONES.flatMap((p) => pairNames(b, p))),
  ...pairNames('pi-zero-w', 'iphone-no-request'),
];
/**
 * The interval when the solenoid moved ([TANDEM-GATT-18]): the iPhone grants the lock's 15-30 ms request in
 * time for a first unlock (discovery) but not for a repeat; the pessimistic phone rejects it; a lock that asks
 * nothing keeps the iPhone's 30 ms.
 */
const INTERVAL = (name: string): number => {
  if (name.includes('.pessimistic.') || name.includes('.iphone-no-request.')) return 30;
  if (name.includes('.iphone.')) return name.endsWith('_first') ? 15 : 30;
  return 15;
};
/** Issue 8 §2: goals for the iPhone against a Pi Zero W, as multiples of Tesla's 309 ms. */
const GOALS: Record<string, string> = {
  'ble.pi-zero-w.iphone.gatt_round_trips_repeat': '<= 2',
  'ble.pi-zero-w.iphone.tap_to_solenoid_ms_first': '<= 772.5',
  'ble.pi-zero-w.iphone.tap_to_solenoid_ms_repeat': '<= 494.4',
  'ble.pi-zero-w.iphone.connected_to_solenoid_ms_first': '<= 200.9',
  'ble.pi-zero-w.iphone.connected_to_solenoid_ms_repeat': '<= 123.6',
};

describe('npm run bench -- ble', () => {
  it(
    'reports round trips and writes within their goals, and modelled times',
    { timeout: 120_000 },
    async () => {
      const { stdout } = await run(
        process.execPath,
        ['--import', 'tsx', 'bench/run.ts', 'ble', '--json', '--quick'],
        {
          cwd: ROOT,
          timeout: 120_000,
        },
      );
      const lines = stdout
        .trimEnd()
        .split('\n')
        .map(
          (l) => JSON.parse(l) as { name: string; value: number; goal: string | null; met: boolean | null },
        );
      expect(lines.map((l) => l.name)).toEqual(NAMES);
      const byName = new Map(lines.map((l) => [l.name, l]));
      for (const name of NAMES) {
        const m = byName.get(name)!;
        expect(m.goal, name).toBe(GOALS[name] ?? null);
        if (name.includes('.gatt_round_trips_'))
          expect(m.value, name).toBe(2); // on the air, cached or not
        else if (name.endsWith('.att_writes_first')) expect(m.value, name).toBe(2);
        else if (name.endsWith('.att_writes_repeat')) expect(m.value, name).toBe(1);
        else if (name.includes('.interval_at_solenoid_ms_')) expect(m.value, name).toBe(INTERVAL(name));
        else expect(m.value, name).toBeGreaterThan(0);
      }
    },
  );
});
