import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../src/clock.js';
import type { ExitHooks } from '../src/gpio/exit-hooks.js';
import { LinuxLatchSensor } from '../src/gpio/linux-latch-sensor.js';
import { LinuxSolenoid } from '../src/gpio/linux-solenoid.js';
import { LibgpiodTools } from '../src/gpio/libgpiod.js';
import { HardwareError } from '../src/interfaces.js';
import type { LatchState } from '../src/interfaces.js';
import { FakeSpawner, libgpiodScript } from './fake-spawner.js';

const V1 = 'v1.6.3';
const V2 = 'v2.1.3';

class FakeExitHooks implements ExitHooks {
  readonly callbacks = new Set<() => void>();
  add(callback: () => void): () => void {
    this.callbacks.add(callback);
    return () => this.callbacks.delete(callback);
  }
  fire(): void {
    for (const cb of this.callbacks) cb();
  }
}

function solenoid(version: string, maxPulseMs = 500, script?: Parameters<typeof libgpiodScript>[1]) {
  const spawner = new FakeSpawner(libgpiodScript(version, script));
  const clock = new ManualClock();
  const exitHooks = new FakeExitHooks();
  const driver = new LinuxSolenoid({
    line: { chip: 'gpiochip0', offset: 17 },
    maxPulseMs,
    spawner,
    clock,
    exitHooks,
  });
  return { spawner, clock, exitHooks, driver };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await flushMicrotasks();
}

async function rejection(promise: Promise<unknown>): Promise<HardwareError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(HardwareError);
  return error as HardwareError;
}

describe('LinuxSolenoid command lines (libgpiod v1, Debian 12 / bookworm)', () => {
  it('detects v1, drives the line low on open, times the pulse in gpioset, then drives low again', async () => {
    const { spawner, driver } = solenoid(V1);
    await driver.open();
    const pulse = driver.pulse(200);
    await settle();
    expect(driver.isEnergised()).toBe(true);
    spawner.last('gpioset')?.exit(0);
    await pulse;
    expect(driver.isEnergised()).toBe(false);
    expect(spawner.commandLines).toEqual([
      'gpioset --version',
      'gpioset --mode=exit gpiochip0 17=0',
      'gpioset --mode=time --sec=0 --usec=200000 gpiochip0 17=1',
      'gpioset --mode=exit gpiochip0 17=0',
    ]);
  });

  it('splits pulses of a second or more into --sec and --usec', async () => {
    const { spawner, driver } = solenoid(V1, 2000);
    await driver.open();
    const pulse = driver.pulse(1500);
    await settle();
    spawner.last('gpioset')?.exit(0);
    await pulse;
    expect(spawner.commandLines[2]).toBe('gpioset --mode=time --sec=1 --usec=500000 gpiochip0 17=1');
  });
});

describe('LinuxSolenoid command lines (libgpiod v2)', () => {
  it('uses -c <chip> and a toggle sequence that ends low', async () => {
    const { spawner, driver } = solenoid(V2);
    await driver.open();
    const pulse = driver.pulse(200);
    await settle();
    spawner.last('gpioset')?.exit(0);
    await pulse;
    expect(spawner.commandLines).toEqual([
      'gpioset --version',
      'gpioset -c gpiochip0 -t 0 17=0',
      'gpioset -c gpiochip0 -t 200ms,0 17=1',
      'gpioset -c gpiochip0 -t 0 17=0',
    ]);
  });

  it('skips detection when the version is configured', async () => {
    const spawner = new FakeSpawner(libgpiodScript(V2));
    const driver = new LinuxSolenoid({
      line: { chip: 'gpiochip0', offset: 17 },
      maxPulseMs: 100,
      spawner,
      libgpiodMajor: 2,
      clock: new ManualClock(),
      exitHooks: new FakeExitHooks(),
    });
    await driver.open();
    expect(spawner.commandLines).toEqual(['gpioset -c gpiochip0 -t 0 17=0']);
  });
});

describe('LinuxSolenoid safety', () => {
  it('refuses a pulse over maxPulseMs before spawning anything', async () => {
    const { spawner, driver } = solenoid(V1, 500);
    await driver.open();
    const before = spawner.calls.length;
    const error = await rejection(driver.pulse(501));
    expect(error.code).toBe('ERR_HW_PULSE_LIMIT');
    expect(error.message).toMatch(/at most 500 ms/);
    expect(spawner.calls.length).toBe(before);
    expect(driver.isEnergised()).toBe(false);
  });

  it('the watchdog kills a gpioset that outlives maxPulseMs and drives the line low', async () => {
    const { spawner, clock, driver } = solenoid(V1, 500);
    await driver.open();
    const pulse = driver.pulse(500);
    await settle();
    const tool = spawner.last('gpioset');
    clock.advance(499);
    expect(tool?.running).toBe(true);
    clock.advance(1);
    await pulse;
    expect(tool?.kills).toEqual(['SIGKILL']);
    expect(driver.isEnergised()).toBe(false);
    expect(spawner.commandLines.at(-1)).toBe('gpioset --mode=exit gpiochip0 17=0');
  });

  it('release() during a pulse kills the tool and drives low; the pulse resolves', async () => {
    const { spawner, driver } = solenoid(V2);
    await driver.open();
    const pulse = driver.pulse(300);
    await settle();
    await driver.release();
    await pulse;
    expect(spawner.last('gpioset')?.args).toEqual(['-c', 'gpiochip0', '-t', '0', '17=0']);
    expect(driver.isEnergised()).toBe(false);
  });

  it('close() de-energises and later pulses are refused', async () => {
    const { driver } = solenoid(V1);
    await driver.open();
    const pulse = driver.pulse(300);
    await settle();
    await driver.close();
    await pulse;
    expect(driver.isEnergised()).toBe(false);
    expect((await rejection(driver.pulse(10))).code).toBe('ERR_HW_NOT_OPEN');
  });

  it('on process exit mid-pulse, kills the tool and drives low synchronously', async () => {
    const { spawner, driver, exitHooks } = solenoid(V1);
    await driver.open();
    const pulse = driver.pulse(300);
    await settle();
    exitHooks.fire();
    expect(spawner.syncCalls).toEqual([{ command: 'gpioset', args: ['--mode=exit', 'gpiochip0', '17=0'] }]);
    expect(driver.isEnergised()).toBe(false);
    await pulse;
    await driver.close();
    expect(exitHooks.callbacks.size).toBe(0);
  });

  it('on process exit, retries the synchronous drive-low while the killed tool still holds the line', async () => {
    const { spawner, driver, exitHooks } = solenoid(V2);
    await driver.open();
    const pulse = driver.pulse(300);
    await settle();
    spawner.syncCodes.push(1, 1);
    exitHooks.fire();
    expect(spawner.syncCalls.map((c) => c.args.join(' '))).toEqual([
      '-c gpiochip0 -t 0 17=0',
      '-c gpiochip0 -t 0 17=0',
      '-c gpiochip0 -t 0 17=0',
    ]);
    await pulse;
  });

  it('refuses a second pulse while one runs', async () => {
    const { spawner, driver } = solenoid(V1);
    await driver.open();
    const first = driver.pulse(100);
    await settle();
    expect((await rejection(driver.pulse(100))).code).toBe('ERR_HW_BUSY');
    spawner.last('gpioset')?.exit(0);
    await first;
  });

  it('reports a pulse tool failure after driving low', async () => {
    const { spawner, driver } = solenoid(V1, 500, (c, a) =>
      c === 'gpioset' && a.includes('17=1') ? { hold: true } : undefined,
    );
    await driver.open();
    const pulse = driver.pulse(100);
    await settle();
    spawner
      .last('gpioset')
      ?.exit(1, null, 'gpioset: error setting the GPIO line values: Device or resource busy\n');
    const error = await rejection(pulse);
    expect(error.code).toBe('ERR_HW_BUSY');
    expect(spawner.commandLines.at(-1)).toBe('gpioset --mode=exit gpiochip0 17=0');
    expect(driver.isEnergised()).toBe(false);
  });
});

describe('libgpiod errors tell what to do', () => {
  const cases: [string, string, string, RegExp][] = [
    [
      'permission',
      'gpioset: error setting the GPIO line values: Permission denied\n',
      'ERR_HW_UNAVAILABLE',
      /gpio group/,
    ],
    [
      'busy line',
      'gpioset: error setting the GPIO line values: Device or resource busy\n',
      'ERR_HW_BUSY',
      /gpioinfo/,
    ],
    [
      'missing chip',
      'gpioset: error setting the GPIO line values: No such file or directory\n',
      'ERR_HW_UNAVAILABLE',
      /gpiodetect/,
    ],
    [
      'bad offset',
      'gpioset: error setting the GPIO line values: Invalid argument\n',
      'ERR_HW_INVALID_ARGUMENT',
      /gpioinfo/,
    ],
  ];
  for (const [title, stderr, code, hint] of cases) {
    it(`${title}: ${code}`, async () => {
      const { driver } = solenoid(V1, 500, (_c, a) => (a.includes('17=0') ? { code: 1, stderr } : undefined));
      const error = await rejection(driver.open());
      expect(error.code).toBe(code);
      expect(error.message).toMatch(hint);
    });
  }

  it('missing tools: ERR_HW_UNAVAILABLE naming the package', async () => {
    const { driver } = solenoid(V1, 500, () => ({ spawnError: 'ENOENT' }));
    const error = await rejection(driver.open());
    expect(error.code).toBe('ERR_HW_UNAVAILABLE');
    expect(error.message).toMatch(/sudo apt install gpiod/);
  });

  it('rejects a chip name that is not one', () => {
    expect(
      () => new LinuxSolenoid({ line: { chip: 'gpiochip0; rm -rf /', offset: 17 }, maxPulseMs: 100 }),
    ).toThrow(/gpiodetect/);
  });
});

function latch(version: string, options: { initial?: string; closedLevel?: 0 | 1 } = {}) {
  const spawner = new FakeSpawner(
    libgpiodScript(version, (c) => (c === 'gpioget' ? { stdout: options.initial ?? '0\n' } : undefined)),
  );
  const clock = new ManualClock();
  const sensor = new LinuxLatchSensor({
    line: { chip: 'gpiochip0', offset: 27 },
    spawner,
    clock,
    debounceMs: 20,
    restartDelayMs: 1000,
    ...(options.closedLevel === undefined ? {} : { closedLevel: options.closedLevel }),
  });
  const changes: LatchState[] = [];
  sensor.onChange((s) => changes.push(s));
  return { spawner, clock, sensor, changes };
}

describe('LinuxLatchSensor', () => {
  it('v1: reads with gpioget, then watches both edges with a line-buffered gpiomon', async () => {
    const { spawner, sensor } = latch(V1);
    await sensor.open();
    expect(await sensor.read()).toBe('closed');
    expect(spawner.commandLines).toEqual([
      'gpioset --version',
      'gpioget --bias=pull-up gpiochip0 27',
      'gpiomon --bias=pull-up --line-buffered --format=%e gpiochip0 27',
    ]);
    await sensor.close();
  });

  it('v2: --numeric gpioget and a gpiomon printing edge names', async () => {
    const { spawner, sensor } = latch(V2, { initial: '1\n' });
    await sensor.open();
    expect(await sensor.read()).toBe('open');
    expect(spawner.commandLines).toEqual([
      'gpioset --version',
      'gpioget --numeric -c gpiochip0 --bias=pull-up 27',
      'gpiomon -c gpiochip0 --bias=pull-up --edges=both --format=%E 27',
    ]);
    await sensor.close();
  });

  it('debounces contact bounce into one change', async () => {
    const { spawner, clock, sensor, changes } = latch(V1);
    await sensor.open();
    spawner.last('gpiomon')?.emit('1\n0\n1\n0\n1\n');
    await settle();
    clock.advance(19);
    expect(changes).toEqual([]);
    expect(await sensor.read()).toBe('closed');
    clock.advance(1);
    expect(changes).toEqual(['open']);
    expect(await sensor.read()).toBe('open');
    await sensor.close();
  });

  it('ignores a glitch shorter than the debounce period', async () => {
    const { spawner, clock, sensor, changes } = latch(V2);
    await sensor.open();
    spawner.last('gpiomon')?.emit('rising\n');
    await settle();
    clock.advance(5);
    spawner.last('gpiomon')?.emit('falling\n');
    await settle();
    clock.advance(100);
    expect(changes).toEqual([]);
    await sensor.close();
  });

  it('closedLevel 1 inverts the mapping', async () => {
    const { sensor } = latch(V1, { initial: '1\n', closedLevel: 1 });
    await sensor.open();
    expect(await sensor.read()).toBe('closed');
    await sensor.close();
  });

  it('reports a dead monitor and restarts it after re-reading the line', async () => {
    const { spawner, clock, sensor, changes } = latch(V1);
    const errors: HardwareError[] = [];
    sensor.onError((e) => errors.push(e));
    await sensor.open();
    spawner.last('gpiomon')?.exit(1, null, 'gpiomon: error waiting for events: Device or resource busy\n');
    await settle();
    expect(errors.map((e) => e.code)).toEqual(['ERR_HW_BUSY']);
    const before = spawner.calls.length;
    clock.advance(1000);
    await settle();
    expect(spawner.commandLines.slice(before)).toEqual([
      'gpioget --bias=pull-up gpiochip0 27',
      'gpiomon --bias=pull-up --line-buffered --format=%e gpiochip0 27',
    ]);
    expect(changes).toEqual([]);
    await sensor.close();
    expect(spawner.last('gpiomon')?.kills).toEqual(['SIGTERM']);
  });

  it('read() before open() is ERR_HW_NOT_OPEN', async () => {
    const { sensor } = latch(V1);
    expect((await rejection(sensor.read())).code).toBe('ERR_HW_NOT_OPEN');
  });
});

// Issue 8 §2: each libgpiod tool run at start is a process spawn (tens of ms on a Pi Zero); the lock's two GPIO
// drivers share one LibgpiodTools (firmware-sim's linuxHardware), so the version is detected once.
describe('GPIO drivers sharing one LibgpiodTools', () => {
  it('detect the libgpiod version once for both, opened together, with each its own command lines', async () => {
    const spawner = new FakeSpawner(libgpiodScript(V2));
    const tools = new LibgpiodTools({ spawner });
    const clock = new ManualClock();
    const coil = new LinuxSolenoid({
      line: { chip: 'gpiochip0', offset: 17 },
      maxPulseMs: 500,
      tools,
      clock,
      exitHooks: new FakeExitHooks(),
    });
    const sensor = new LinuxLatchSensor({ line: { chip: 'gpiochip0', offset: 27 }, tools, clock });
    await Promise.all([coil.open(), sensor.open()]);
    expect(spawner.commandLines.filter((l) => l.endsWith('--version'))).toEqual(['gpioset --version']);
    expect(spawner.commandLines).toContain('gpioset -c gpiochip0 -t 0 17=0');
    expect(spawner.commandLines.some((l) => l.startsWith('gpioget') && l.endsWith('27'))).toBe(true);
    expect(await sensor.read()).toBe('closed');
    await sensor.close();
    await coil.close();
  });
});
