/** Trusted time without a real-time clock ([TANDEM-TIME-CHECK], SPEC.md §7). */
import { describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../hardware/src/clock.js';
import { TrustedClock, UNKNOWN_LATEST } from '../src/lock/trusted-clock.js';
import { CrashingStoreFs } from '../src/store/crashing-store-fs.js';
import { DIR, NOW } from './lock-harness.js';

const DAY = 86_400;
const nonce = new Uint8Array(16).fill(3);

async function open(
  fs = new CrashingStoreFs({ tornWrites: 'lose' }),
  clock = new ManualClock(0),
  extra = {},
) {
  const tc = await TrustedClock.open({ clock, fs, dir: DIR, ...extra });
  return { tc, fs, clock };
}

describe('TrustedClock', () => {
  it('first boot: [0, unknown]; the floor moves with the monotonic clock [TANDEM-TIME-6]', async () => {
    const { tc, clock } = await open();
    expect(tc.bound()).toEqual({ earliest: 0, latest: UNKNOWN_LATEST });
    expect(tc.uncertainty()).toBeNull();
    expect(tc.source()).toBe('unknown');
    clock.advance(1000_000);
    const b = tc.bound();
    expect(b.earliest).toBe(999); // 1000 s × (1 − 200 ppm), rounded down
    expect(b.latest).toBe(UNKNOWN_LATEST);
    await tc.close();
  });

  it('a nonce-bound beacon relayed within the limit gives ± accuracy + relay delay, then widens by the drift bound', async () => {
    const { tc, clock } = await open();
    clock.advance(5_000);
    const issuedAt = clock.now();
    clock.advance(1_500); // the phone fetched the beacon
    const used = await tc.applyBeacon({ time: NOW, nonce, accuracy: 2 }, { nonce, issuedAtMs: issuedAt });
    expect(used.kind).toBe('bound');
    expect(tc.bound()).toEqual({ earliest: NOW - 2, latest: NOW + 4 });
    expect(tc.uncertainty()).toBe(6);
    expect(tc.source()).toBe('beacon');
    clock.advance(DAY * 1000);
    const b = tc.bound();
    // One day later: earliest ≥ NOW − 2 + 86400 × (1 − 2e-4), latest ≤ NOW + 4 + 86400 × (1 + 2e-4).
    expect(b.earliest).toBe(NOW - 2 + DAY - 18);
    expect(b.latest).toBe(NOW + 4 + DAY + 18);
    await tc.close();
  });

  it('a beacon without our nonce, or relayed too slowly, only raises the floor [TANDEM-TIME-5]', async () => {
    const { tc, clock } = await open();
    expect((await tc.applyBeacon({ time: NOW, accuracy: 1 })).kind).toBe('floor');
    expect(tc.bound()).toEqual({ earliest: NOW - 1, latest: UNKNOWN_LATEST });
    const issuedAt = clock.now();
    clock.advance(31_000);
    const slow = await tc.applyBeacon(
      { time: NOW + 100, nonce, accuracy: 1 },
      { nonce, issuedAtMs: issuedAt },
    );
    expect(slow).toMatchObject({ kind: 'floor', reason: 'relay-too-slow' });
    expect(tc.bound().earliest).toBe(NOW + 99);
    expect(tc.source()).toBe('unknown');
    await tc.close();
  });

  it('never goes backwards: an old (replayed) beacon does not lower the floor', async () => {
    const { tc } = await open();
    await tc.applyBeacon({ time: NOW, accuracy: 0 });
    await tc.applyBeacon({ time: NOW - 3600, accuracy: 0 });
    expect(tc.bound().earliest).toBe(NOW);
    expect(tc.floor).toBe(NOW);
    await tc.close();
  });

  it('persists the floor on every beacon and every persistIntervalS, not more often', async () => {
    const { tc, fs, clock } = await open();
    await tc.applyBeacon({ time: NOW, nonce, accuracy: 0 }, { nonce, issuedAtMs: clock.now() });
    const afterBeacon = fs.operationCount;
    await clock.advanceAsync(599_000, 1000);
    expect(fs.operationCount).toBe(afterBeacon);
    await clock.advanceAsync(2_000, 1000);
    expect(fs.operationCount).toBeGreaterThan(afterBeacon);
    // After a power cut, the next boot starts from the floor persisted 600 s in.
    const again = await open(fs.reboot({ tornWrites: 'lose' }));
    expect(again.tc.bound().earliest).toBe(NOW + 599); // 600 s × (1 − 200 ppm), rounded down
    // Only the floor survives the restart: the upper bound is unknown again [TANDEM-TIME-6].
    expect(again.tc.bound().latest).toBe(UNKNOWN_LATEST);
    expect(again.tc.uncertainty()).toBeNull();
    await tc.close();
    await again.tc.close();
  });

  it('ignores the operating system clock, whatever it reads [TANDEM-TIME-6]', async () => {
    // The review's attack: a Pi restored to its last saved time after 10 days off. With the system clock
    // faked to read exactly the floor (or 20 days ahead), the bound must not narrow to it.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const fs = new CrashingStoreFs({ tornWrites: 'lose' });
      const first = await open(fs);
      await first.tc.applyBeacon({ time: NOW, nonce, accuracy: 0 }, { nonce, issuedAtMs: 0 });
      await first.tc.close();
      for (const sys of [NOW, NOW + 20 * DAY]) {
        vi.setSystemTime(sys * 1000);
        const { tc } = await open(fs.reboot({ tornWrites: 'lose' }));
        expect(tc.bound()).toEqual({ earliest: NOW, latest: UNKNOWN_LATEST });
        expect(tc.uncertainty()).toBeNull();
        expect(tc.source()).toBe('unknown');
        await tc.close();
      }
    } finally {
      vi.useRealTimers();
    }
  });

  it('a nonce-bound beacon after a reboot brings the upper bound back', async () => {
    const fs = new CrashingStoreFs({ tornWrites: 'lose' });
    const first = await open(fs);
    await first.tc.applyBeacon({ time: NOW, accuracy: 0 });
    await first.tc.close();
    const { tc, clock } = await open(fs.reboot({ tornWrites: 'lose' }));
    expect(tc.uncertainty()).toBeNull();
    const issuedAt = clock.now();
    clock.advance(2_000);
    await tc.applyBeacon({ time: NOW + 10 * DAY, nonce, accuracy: 1 }, { nonce, issuedAtMs: issuedAt });
    expect(tc.bound()).toEqual({ earliest: NOW + 10 * DAY - 1, latest: NOW + 10 * DAY + 3 });
    expect(tc.source()).toBe('beacon');
    await tc.close();
  });

  it('a corrupt floor file restarts from 0 (every token uncertain until a beacon), and says so', async () => {
    const fs = new CrashingStoreFs({ tornWrites: 'lose' });
    const first = await open(fs);
    await first.tc.applyBeacon({ time: NOW, accuracy: 0 });
    await first.tc.close();
    fs.corruptByte(`${DIR}/time-floor.bin`, 17);
    const { tc } = await open(fs);
    expect(tc.floorWasCorrupt).toBe(true);
    expect(tc.bound().earliest).toBe(0);
    await tc.close();
  });
});
