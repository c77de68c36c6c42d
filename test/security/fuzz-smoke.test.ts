// A short smoke of `npm run fuzz` (issue 7 §2): every target, a few hundred seeded inputs each, with the same
// oracle as the long run: only coded errors, nothing hangs (bounded simulated time), the solenoid never moves.
import { describe, expect, it } from 'vitest';
import { runTarget } from './fuzz/runner.js';
import { FuzzFinding, TARGETS, classify } from './fuzz/targets.js';

const RUNS: Record<string, number> = { 'lock-request': 150, 'gatt-session': 150, console: 150 };

describe('fuzz smoke (npm run fuzz runs >= 1,000,000 per target)', () => {
  for (const target of TARGETS) {
    it(`${target.name}: ${target.description}: no crash, hang, unexpected exception or unlock`, async () => {
      const totals = await runTarget(target, { runs: RUNS[target.name] ?? 400, seed: 20261205 });
      expect(totals.inputs).toBe(RUNS[target.name] ?? 400);
      expect(totals.findings).toEqual([]);
      expect([totals.crashes, totals.hangs, totals.unexpected, totals.unlocks]).toEqual([0, 0, 0, 0]);
    });
  }

  it('the oracle can fail: a TypeError is a crash, a finding keeps its kind, and a planted bug is caught', async () => {
    expect(classify(new TypeError('x')).kind).toBe('crash');
    expect(classify(new Error('x')).kind).toBe('unexpected');
    expect(classify(new FuzzFinding('unlock', 'x')).kind).toBe('unlock');
    const planted = await runTarget(
      {
        name: 'planted',
        description: 'a decoder that crashes on inputs starting with 0xa2',
        seeds: () => [Uint8Array.of(0xa2, 1, 2)],
        create: async () => ({
          run: (b) => {
            if (b[0] === 0xa2) void (undefined as unknown as { x: number }).x;
          },
        }),
      },
      { runs: 200, seed: 1 },
    );
    expect(planted.crashes).toBeGreaterThan(0);
    expect(planted.findings[0]!.input.startsWith('a2')).toBe(true);
  });
});
