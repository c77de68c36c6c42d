import { describe, expect, it } from 'vitest';
import { ManualClock, SystemClock } from '../src/clock.js';

describe('ManualClock', () => {
  it('fires due timers in order of due time, ties in order of scheduling, with now() at each due time', () => {
    const clock = new ManualClock(100);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`c@${clock.now()}`), 20);
    clock.advance(15);
    expect(fired).toEqual(['a@110']);
    clock.advance(5);
    expect(fired).toEqual(['a@110', 'b@120', 'c@120']);
    expect(clock.now()).toBe(120);
  });

  it('fires timers scheduled by a callback within the same advance when they fall due', () => {
    const clock = new ManualClock();
    const fired: number[] = [];
    const tick = (): void => {
      fired.push(clock.now());
      if (fired.length < 5) clock.setTimeout(tick, 10);
    };
    clock.setTimeout(tick, 10);
    clock.advance(35);
    expect(fired).toEqual([10, 20, 30]);
    expect(clock.pendingTimers()).toBe(1);
    clock.advance(100);
    expect(fired).toEqual([10, 20, 30, 40, 50]);
  });

  it('clearTimeout cancels; zero and negative delays fire on the next advance', () => {
    const clock = new ManualClock();
    const fired: string[] = [];
    const handle = clock.setTimeout(() => fired.push('cancelled'), 5);
    clock.setTimeout(() => fired.push('zero'), 0);
    clock.setTimeout(() => fired.push('negative'), -3);
    clock.clearTimeout(handle);
    clock.advance(0);
    expect(fired).toEqual(['zero', 'negative']);
    clock.advance(10);
    expect(fired).toEqual(['zero', 'negative']);
  });

  it('refuses to go backwards', () => {
    expect(() => new ManualClock().advance(-1)).toThrow(RangeError);
  });
});

describe('SystemClock', () => {
  it('runs a timer and can cancel another', async () => {
    const clock = new SystemClock();
    let cancelled = false;
    const handle = clock.setTimeout(() => {
      cancelled = true;
    }, 1);
    clock.clearTimeout(handle);
    await new Promise<void>((resolve) => clock.setTimeout(resolve, 1));
    expect(cancelled).toBe(false);
    expect(clock.now()).toBeGreaterThan(0);
  });
});
