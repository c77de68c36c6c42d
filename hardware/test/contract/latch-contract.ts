import { afterEach, describe, expect, it } from 'vitest';
import type { LatchSensor, LatchState } from '../../src/interfaces.js';
import { expectHardwareError, suiteTitle } from './harness.js';
import type { Elapse } from './harness.js';

export interface LatchHarness {
  readonly latch: LatchSensor;
  readonly elapse: Elapse;
  /** Longest time from a physical movement to its debounced event. */
  readonly settleMs: number;
  /** Move the physical latch, with contact bounce (simulations; on hardware a person would have to). */
  readonly move?: (to: LatchState) => Promise<void>;
  cleanup?(): Promise<void>;
}

/** The behaviour every {@link LatchSensor} must show. */
export function latchContract(
  name: string,
  build: () => Promise<LatchHarness>,
  options: { skip?: string; canMove: boolean },
): void {
  describe.skipIf(options.skip !== undefined)(
    suiteTitle(`LatchSensor contract: ${name}`, options.skip),
    () => {
      let harness: LatchHarness | undefined;
      const make = async (): Promise<LatchHarness> => {
        harness = await build();
        return harness;
      };
      afterEach(async () => {
        await harness?.latch.close();
        await harness?.cleanup?.();
        harness = undefined;
      });

      it('read() before open() is ERR_HW_NOT_OPEN', async () => {
        const { latch } = await make();
        await expectHardwareError(latch.read(), 'ERR_HW_NOT_OPEN');
      });

      it('reads open or closed once open', async () => {
        const { latch } = await make();
        await latch.open();
        expect(['open', 'closed']).toContain(await latch.read());
      });

      it('close() is idempotent and read() afterwards is ERR_HW_NOT_OPEN', async () => {
        const { latch } = await make();
        await latch.open();
        await latch.close();
        await latch.close();
        await expectHardwareError(latch.read(), 'ERR_HW_NOT_OPEN');
      });

      it.skipIf(!options.canMove)(
        'reports one debounced change per movement, despite contact bounce',
        async () => {
          const { latch, elapse, settleMs, move } = await make();
          await latch.open();
          const start = await latch.read();
          const other: LatchState = start === 'open' ? 'closed' : 'open';
          const seen: LatchState[] = [];
          latch.onChange((s) => seen.push(s));
          await move?.(other);
          await elapse(settleMs);
          expect(seen).toEqual([other]);
          expect(await latch.read()).toBe(other);
          await move?.(start);
          await elapse(settleMs);
          expect(seen).toEqual([other, start]);
        },
      );

      it.skipIf(!options.canMove)('an unsubscribed listener is not called', async () => {
        const { latch, elapse, settleMs, move } = await make();
        await latch.open();
        const start = await latch.read();
        const seen: LatchState[] = [];
        const off = latch.onChange((s) => seen.push(s));
        off();
        await move?.(start === 'open' ? 'closed' : 'open');
        await elapse(settleMs);
        expect(seen).toEqual([]);
      });
    },
  );
}
