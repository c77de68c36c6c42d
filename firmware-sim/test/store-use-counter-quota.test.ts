/**
 * UseCounterStore groups (SPEC.md [TANDEM-USES-3]): what one root's chains can make the lock store is bounded,
 * dropping a group frees it, and both survive a reboot and a power cut at every operation.
 */
import { describe, expect, it } from 'vitest';
import { CrashingStoreFs } from '../src/store/crashing-store-fs.js';
import { isStoreError } from '../src/store/errors.js';
import { sweepPowerCuts } from '../src/store/power-cut-sweep.js';
import { UseCounterStore } from '../src/store/use-counter-store.js';

const DIR = '/var/lib/tandem';
const id = (n: number): Uint8Array => Uint8Array.of(0x10, n >> 8, n & 0xff);
const G1 = Uint8Array.of(0xa1);
const G2 = Uint8Array.of(0xa2);

describe('UseCounterStore groups', () => {
  it('refuses a new token past its group bound with refused: quota; other groups and known tokens still count', async () => {
    const fs = new CrashingStoreFs();
    const s = await UseCounterStore.open(fs, DIR, { maxPerGroup: 3 });
    for (let i = 0; i < 3; i++) expect((await s.consume(id(i), 1000, 2, G1)).allowed).toBe(true);
    expect(await s.consume(id(3), 1000, 2, G1)).toEqual({ allowed: false, count: 0, refused: 'quota' });
    expect(s.size).toBe(3);
    // A token already counted in the full group still counts its uses.
    expect(await s.consume(id(0), 1000, 2, G1)).toEqual({ allowed: true, count: 2 });
    expect((await s.consume(id(4), 1000, 2, G2)).allowed).toBe(true);
    expect((await s.consume(id(5), 1000, 2)).allowed).toBe(true);
    expect([s.groupSize(G1), s.groupSize(G2)]).toEqual([3, 1]);
    const again = await UseCounterStore.open(fs.reboot(), DIR, { maxPerGroup: 3 });
    expect([again.groupSize(G1), again.groupSize(G2), again.size, again.get(id(0))]).toEqual([3, 1, 5, 2]);
    expect((await again.consume(id(6), 1000, 2, G1)).refused).toBe('quota');
  });

  it('dropGroups frees every entry of a group, durably; prune keeps the group sizes right', async () => {
    const fs = new CrashingStoreFs();
    const s = await UseCounterStore.open(fs, DIR, { maxPerGroup: 3 });
    await s.consume(id(1), 1000, 2, G1);
    await s.consume(id(2), 500, 2, G1);
    await s.consume(id(3), 1000, 2, G2);
    expect(await s.prune(500)).toBe(1);
    expect(s.groupSize(G1)).toBe(1);
    expect(await s.dropGroups([G1, Uint8Array.of(0xff)])).toBe(1);
    expect([s.get(id(1)), s.groupSize(G1), s.size]).toEqual([0, 0, 1]);
    const again = await UseCounterStore.open(fs.reboot(), DIR);
    expect([again.get(id(1)), again.get(id(3)), again.groupSize(G1), again.groupSize(G2)]).toEqual([
      0, 1, 0, 1,
    ]);
  });

  it('a power cut at every operation of grouped counting and a drop leaves a state some acknowledged call left', async () => {
    // The state after each call, in order: counts of id 1 and id 2 and the size of G1.
    const expected = ['0,0,0', '1,0,1', '1,1,2', '2,1,2', '0,0,0', '0,1,1'];
    const report = await sweepPowerCuts(() => {
      let acked = 0;
      const snap = (s: UseCounterStore): string => [s.get(id(1)), s.get(id(2)), s.groupSize(G1)].join(',');
      return {
        run: async (fs) => {
          const s = await UseCounterStore.open(fs, DIR, { compactAtBytes: 60 });
          const ops = [
            () => s.consume(id(1), 1000, 5, G1),
            () => s.consume(id(2), 1000, 5, G1),
            () => s.consume(id(1), 1000, 5, G1),
            () => s.dropGroups([G1]),
            () => s.consume(id(2), 1000, 5, G1),
          ];
          for (const op of ops) {
            await op();
            acked++;
            expect(snap(s)).toBe(expected[acked]);
          }
        },
        check: async (fs) => {
          const s = await UseCounterStore.open(fs, DIR, { compactAtBytes: 60 });
          expect(expected.slice(acked, acked + 2)).toContain(snap(s));
        },
      };
    });
    expect(report.runs).toBeGreaterThan(10);
  });

  describe("consumeAll: a chain's counters in one append [TANDEM-USES-6]", () => {
    it('counts every token with one fsync; a refusal of any token counts none', async () => {
      const fs = new CrashingStoreFs();
      const s = await UseCounterStore.open(fs, DIR, { maxPerGroup: 3 });
      const before = fs.operationCount;
      const r = await s.consumeAll([
        { id: id(1), exp: 1000, maxUses: 2, group: G1 },
        { id: id(2), exp: 900, maxUses: 1, group: G1 },
      ]);
      expect(r).toEqual({ allowed: true, counts: [1, 1] });
      // One write and one fsync for both counters.
      expect(fs.operationCount - before).toBe(2);
      // id 2 is exhausted: nothing is counted, not even id 1 before it.
      expect(
        await s.consumeAll([
          { id: id(1), exp: 1000, maxUses: 2, group: G1 },
          { id: id(2), exp: 900, maxUses: 1, group: G1 },
        ]),
      ).toEqual({ allowed: false, index: 1, count: 1, refused: 'exhausted' });
      expect([s.get(id(1)), s.get(id(2))]).toEqual([1, 1]);
      // Quota counts the tokens new in the same call: G1 holds 2 of 3, so two new ones are one too many.
      expect(
        await s.consumeAll([
          { id: id(3), exp: 1000, maxUses: 2, group: G1 },
          { id: id(4), exp: 1000, maxUses: 2, group: G1 },
        ]),
      ).toEqual({ allowed: false, index: 1, count: 0, refused: 'quota' });
      expect([s.get(id(3)), s.groupSize(G1)]).toEqual([0, 2]);
      // The same token twice in one call counts twice (as two consume calls would).
      expect(
        await s.consumeAll([
          { id: id(5), exp: 1000, maxUses: 2, group: G2 },
          { id: id(5), exp: 1000, maxUses: 2, group: G2 },
        ]),
      ).toEqual({ allowed: true, counts: [1, 2] });
      expect(s.groupSize(G2)).toBe(1);
      const again = await UseCounterStore.open(fs.reboot(), DIR, { maxPerGroup: 3 });
      expect([
        again.get(id(1)),
        again.get(id(2)),
        again.get(id(5)),
        again.groupSize(G1),
        again.groupSize(G2),
      ]).toEqual([1, 1, 2, 2, 1]);
    });

    it('refuses a malformed token id before writing anything', async () => {
      const s = await UseCounterStore.open(new CrashingStoreFs(), DIR);
      await expect(s.consumeAll([{ id: new Uint8Array(0), exp: 1000, maxUses: 1 }])).rejects.toMatchObject({
        code: 'ERR_STORE_INVALID_ARGUMENT',
      });
      expect(s.size).toBe(0);
    });

    it('a power cut at every operation: each counter is at its acknowledged value or one past it, never above', async () => {
      let acked = 0;
      const report = await sweepPowerCuts(() => {
        acked = 0;
        return {
          run: async (fs) => {
            const s = await UseCounterStore.open(fs, DIR, { compactAtBytes: 60 });
            for (let i = 0; i < 4; i++) {
              // A compaction cut short runs after its consumeAll resolved: the next call reports the closed
              // log, whose cause is the cut.
              const r = await s
                .consumeAll([
                  { id: id(1), exp: 1000, maxUses: 9, group: G1 },
                  { id: id(2), exp: 1000, maxUses: 9, group: G1 },
                ])
                .catch((err: unknown) => {
                  const cause = (err as { cause?: unknown }).cause;
                  throw isStoreError(err, 'ERR_STORE_CLOSED') && isStoreError(cause, 'ERR_STORE_POWER_LOST')
                    ? cause
                    : err;
                });
              expect(r.allowed).toBe(true);
              acked++;
            }
          },
          check: async (fs) => {
            const s = await UseCounterStore.open(fs, DIR, { compactAtBytes: 60 });
            // An acknowledged count is never lost; an unacknowledged append may have kept any of its records.
            for (const n of [s.get(id(1)), s.get(id(2))]) expect([acked, acked + 1]).toContain(n);
          },
        };
      });
      expect(report.runs).toBeGreaterThan(10);
    });
  });
});
