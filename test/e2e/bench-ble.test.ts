/**
 * Smoke test of `npm run bench -- ble`: the group runs (noble and bleno on the virtual radio against the lock
 * runtime), the process exits by itself, and its JSON lines keep their names. Counts are deterministic and
 * checked against their goals; modelled times are only checked to be positive.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const NAMES = [
  'ble.gatt_round_trips_first',
  'ble.att_writes_first',
  'ble.tap_to_solenoid_ms_first',
  'ble.tap_to_result_ms_first',
  'ble.connected_to_solenoid_ms_first',
  'ble.gatt_round_trips_repeat',
  'ble.att_writes_repeat',
  'ble.tap_to_solenoid_ms_repeat',
  'ble.tap_to_result_ms_repeat',
  'ble.connected_to_solenoid_ms_repeat',
];

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
      expect(byName.get('ble.gatt_round_trips_first')).toMatchObject({ value: 2, goal: '<= 2', met: true });
      expect(byName.get('ble.att_writes_first')).toMatchObject({ value: 2, goal: '<= 2', met: true });
      expect(byName.get('ble.att_writes_repeat')).toMatchObject({ value: 1, goal: '<= 1', met: true });
      for (const name of NAMES.filter((n) => n.endsWith('_ms_first') || n.endsWith('_ms_repeat'))) {
        expect(byName.get(name)!.value).toBeGreaterThan(0);
        expect(byName.get(name)!.goal).toBeNull();
      }
    },
  );
});
