/**
 * Battery gauge contract ([TANDEM-MQTT-14]): the simulation, the sysfs driver over a fake power-supply tree,
 * and the sysfs driver on a real board when TANDEM_HW_BATTERY names its supply.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BatteryMonitor, LinuxSysfsBattery, SimBattery } from '../src/battery.js';
import { ManualClock, flushMicrotasks } from '../src/clock.js';
import type { Battery } from '../src/battery.js';
import { HardwareError } from '../src/interfaces.js';
import { expectHardwareError, suiteTitle } from './contract/harness.js';

/** What every gauge does: a reading is an integer percent 0..100. */
function batteryContract(
  name: string,
  make: () => Promise<{ battery: Battery; cleanup?: () => Promise<void> }>,
  skip?: string,
): void {
  describe.skipIf(skip !== undefined)(suiteTitle(`Battery contract: ${name}`, skip), () => {
    it('reads an integer percent from 0 to 100, twice the same when nothing changed', async () => {
      const { battery: b, cleanup } = await make();
      onTestFinished(async () => cleanup?.());
      const v = await b.read();
      expect(Number.isInteger(v)).toBe(true);
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(100);
      expect(await b.read()).toBe(v);
      expect(typeof b.name).toBe('string');
    });
  });
}

/** A fake /sys/class/power_supply: each supply a directory with `type` and optionally `capacity`. */
async function powerSupplyTree(
  supplies: Record<string, { type: string; capacity?: string }>,
): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'tandem-power-supply-'));
  for (const [n, s] of Object.entries(supplies)) {
    await mkdir(join(root, n));
    await writeFile(join(root, n, 'type'), `${s.type}\n`);
    if (s.capacity !== undefined) await writeFile(join(root, n, 'capacity'), s.capacity);
  }
  return root;
}

batteryContract('SimBattery', async () => ({ battery: new SimBattery(64) }));
batteryContract('LinuxSysfsBattery over a fake tree', async () => {
  const root = await powerSupplyTree({ AC: { type: 'Mains' }, BAT0: { type: 'Battery', capacity: '87\n' } });
  return {
    battery: new LinuxSysfsBattery({ root }),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});
const supply = process.env.TANDEM_HW_BATTERY;
batteryContract(
  `LinuxSysfsBattery on ${supply ?? '<supply>'}`,
  async () => ({ battery: new LinuxSysfsBattery({ supply: supply! }) }),
  supply === undefined
    ? 'needs a board with a fuel gauge: set TANDEM_HW_BATTERY to its /sys/class/power_supply name, e.g. max17048'
    : undefined,
);

describe('LinuxSysfsBattery over a fake power-supply tree', () => {
  it('finds the one supply of type Battery and reads its capacity; follows the file as it changes', async () => {
    const root = await powerSupplyTree({
      AC: { type: 'Mains' },
      'usb-c': { type: 'USB', capacity: '5\n' },
      max17048: { type: 'Battery', capacity: '87\n' },
    });
    try {
      const b = new LinuxSysfsBattery({ root });
      expect(await b.read()).toBe(87);
      expect(b.name).toBe('sysfs max17048');
      await writeFile(join(root, 'max17048', 'capacity'), '12\n');
      expect(await b.read()).toBe(12);
      expect(await new LinuxSysfsBattery({ root, supply: 'usb-c' }).read()).toBe(5);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('refuses what is not a percentage, with ERR_HW_IO naming the file', async () => {
    const root = await powerSupplyTree({ BAT0: { type: 'Battery', capacity: '101\n' } });
    try {
      const b = new LinuxSysfsBattery({ root });
      const e = await expectHardwareError(b.read(), 'ERR_HW_IO');
      expect(e.message).toBe(`${join(root, 'BAT0', 'capacity')} reads "101", not a percentage from 0 to 100`);
      for (const bad of ['', '-1\n', '8.5\n', 'full\n', '0x40\n']) {
        await writeFile(join(root, 'BAT0', 'capacity'), bad);
        await expectHardwareError(b.read(), 'ERR_HW_IO');
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('a board without a gauge, or with two, or a supply without capacity: ERR_HW_UNAVAILABLE saying which', async () => {
    const none = await powerSupplyTree({ AC: { type: 'Mains' } });
    const two = await powerSupplyTree({
      BAT0: { type: 'Battery', capacity: '1' },
      BAT1: { type: 'Battery' },
    });
    try {
      expect(
        (await expectHardwareError(new LinuxSysfsBattery({ root: none }).read(), 'ERR_HW_UNAVAILABLE'))
          .message,
      ).toBe(`no battery under ${none} (no supply of type Battery): this board has no fuel gauge`);
      expect(
        (await expectHardwareError(new LinuxSysfsBattery({ root: two }).read(), 'ERR_HW_UNAVAILABLE'))
          .message,
      ).toBe(`several batteries under ${two} (BAT0, BAT1): name one`);
      await expectHardwareError(
        new LinuxSysfsBattery({ root: two, supply: 'BAT1' }).read(),
        'ERR_HW_UNAVAILABLE',
      );
      await expectHardwareError(
        new LinuxSysfsBattery({ root: join(none, 'missing') }).read(),
        'ERR_HW_UNAVAILABLE',
      );
    } finally {
      await rm(none, { recursive: true, force: true });
      await rm(two, { recursive: true, force: true });
    }
  });

  it('refuses a supply name that is a path, before touching the file system', () => {
    for (const s of ['../etc', 'BAT0/../../x', '', '.hidden']) {
      expect(() => new LinuxSysfsBattery({ supply: s })).toThrow(HardwareError);
    }
  });
});

describe('SimBattery', () => {
  it('has no reading until set, takes 0..100, and can lose its gauge again', async () => {
    const b = new SimBattery();
    await expectHardwareError(b.read(), 'ERR_HW_UNAVAILABLE');
    b.set(0);
    expect(await b.read()).toBe(0);
    b.set(100);
    expect(await b.read()).toBe(100);
    for (const bad of [-1, 101, 50.5, Number.NaN])
      expect(() => b.set(bad)).toThrow('must be an integer percent');
    expect(await b.read()).toBe(100);
    b.set(null);
    await expectHardwareError(b.read(), 'ERR_HW_UNAVAILABLE');
  });
});

describe('BatteryMonitor', () => {
  it('reads at start and every period; undefined after a failed read; listeners hear each change', async () => {
    const clock = new ManualClock();
    const b = new SimBattery(90);
    const m = new BatteryMonitor(b, clock, 60_000);
    const heard: (number | undefined)[] = [];
    m.onChange((l) => heard.push(l));
    m.start();
    await flushMicrotasks();
    expect(m.level).toBe(90);
    b.set(89);
    clock.advance(59_999);
    await flushMicrotasks();
    expect(m.level).toBe(90);
    clock.advance(1);
    await flushMicrotasks();
    expect(m.level).toBe(89);
    b.set(null);
    expect(await m.refresh()).toBeUndefined();
    expect(m.lastError).toMatch(/no battery level set/);
    expect(heard).toEqual([90, 89, undefined]);
    m.stop();
    b.set(10);
    clock.advance(120_000);
    await flushMicrotasks();
    expect(m.level).toBeUndefined();
    expect(clock.pendingTimers()).toBe(0);
  });
});
