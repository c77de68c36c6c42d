// Reconnection with capped exponential backoff and full jitter ([TANDEM-MQTT-LINK]), on virtual timers: the
// link's clock is a ManualClock, the refused connections are real ones to a closed port on 127.0.0.1.
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../hardware/src/clock.js';
import { backoffCapMs, backoffDelayMs } from '../src/mqtt/backoff.js';
import { LockMqttClient } from '../src/mqtt/lock-mqtt-client.js';
import { LOCK, makeLock } from './lock-harness.js';
import { TestBroker, freePort, waitFor } from './mqtt-fixture.js';
import { SeededRandom } from '../../hardware/src/accel/gaussian.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
});

describe('backoff', () => {
  const policy = { initialMs: 1000, maxMs: 300_000 };

  it('doubles the cap from initialMs and stops at maxMs', () => {
    expect([0, 1, 2, 3, 8, 9, 40, 5000].map((a) => backoffCapMs(policy, a))).toEqual([
      1000, 2000, 4000, 8000, 256_000, 300_000, 300_000, 300_000,
    ]);
  });

  it('draws each delay uniformly in [0, cap] (full jitter), so a fleet spreads over the window', () => {
    expect(backoffDelayMs(policy, 9, () => 0)).toBe(0);
    expect(backoffDelayMs(policy, 9, () => 0.5)).toBe(150_000);
    expect(backoffDelayMs(policy, 3, () => 0.999_999)).toBe(7999);
    // A misbehaving random source cannot push a delay outside the window.
    expect(backoffDelayMs(policy, 3, () => 7)).toBe(8000);
    expect(backoffDelayMs(policy, 3, () => NaN)).toBe(0);
    // 1000 locks returning after an outage, all at attempt 9 (cap 300 s): every tenth of the window gets
    // between 5 % and 15 % of them, none above the cap.
    const r = new SeededRandom(42);
    const delays = Array.from({ length: 1000 }, () => backoffDelayMs(policy, 9, () => r.next()));
    expect(Math.max(...delays)).toBeLessThanOrEqual(300_000);
    const buckets = new Array<number>(10).fill(0);
    for (const d of delays) buckets[Math.min(9, Math.floor(d / 30_000))]!++;
    for (const b of buckets) expect(b).toBeGreaterThan(50);
    for (const b of buckets) expect(b).toBeLessThan(150);
  });
});

describe('LockMqttClient reconnection', () => {
  it('waits a growing, capped, jittered delay between refused connections, and starts over once up', async () => {
    const lock = await makeLock();
    const port = await freePort();
    const clock = new ManualClock(0);
    const delays: { attempt: number; delayMs: number; capMs: number }[] = [];
    const client = new LockMqttClient({
      lockId: LOCK,
      authority: lock.authority,
      outbox: lock.stores.outbox,
      issuerKey: lock.anchors.issuerKey,
      deviceKey: lock.device,
      url: `mqtt://127.0.0.1:${port}`,
      username: LOCK,
      password: 'x',
      clock,
      random: () => 0.75,
      backoff: { initialMs: 100, maxMs: 1600 },
    });
    cleanup.push(() => client.stop(10));
    client.on('reconnect', (e) => delays.push(e));
    await client.start();
    for (let i = 1; i <= 8; i++) {
      await waitFor(() => delays.length === i, `refused connection ${i}`);
      // Nothing is retried before its delay has passed on the link's clock.
      clock.advance(delays[i - 1]!.delayMs - 1);
      expect(delays).toHaveLength(i);
      clock.advance(1);
    }
    expect(delays.map((d) => d.capMs)).toEqual([100, 200, 400, 800, 1600, 1600, 1600, 1600]);
    expect(delays.map((d) => d.delayMs)).toEqual([75, 150, 300, 600, 1200, 1200, 1200, 1200]);
    expect(client.status()).toMatchObject({ link: 'connecting', attempt: 8 });

    // A broker appears: the next attempt connects and the backoff starts over.
    await waitFor(() => delays.length === 9, 'the ninth refusal');
    const broker = await TestBroker.start(port);
    cleanup.push(() => broker.kill());
    clock.advance(delays[8]!.delayMs);
    await waitFor(() => client.status().link === 'up', 'the link');
    expect(client.status().attempt).toBe(0);
    await broker.kill();
    await waitFor(() => delays.length === 10, 'a reconnection after the broker died');
    expect(delays[9]).toMatchObject({ attempt: 1, capMs: 100 });
  });
});
