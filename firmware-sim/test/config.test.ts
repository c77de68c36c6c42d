// The lock's configuration file: every malformed field refused with ERR_CONFIG_INVALID naming its path.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_CONFIG,
  loadLockFileConfig,
  parseLockFileConfig,
} from '../src/config/lock-config.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function refusal(value: unknown): string {
  try {
    parseLockFileConfig(value);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return `${(e as ConfigError).code}: ${(e as ConfigError).message}`;
  }
  return 'accepted';
}

describe('lock configuration', () => {
  it('an empty object gives the embedded defaults', () => {
    expect(parseLockFileConfig({})).toEqual(DEFAULT_CONFIG);
  });

  it('the shipped sample configs load', async () => {
    const pi = await loadLockFileConfig(join(import.meta.dirname, '..', 'config', 'pi.json'));
    expect(pi.hardware.solenoidLine).toBe(17);
    const sim = await loadLockFileConfig(join(import.meta.dirname, '..', 'config', 'sim.json'));
    expect(sim.behaviour.timeZone).toBe('Europe/Berlin');
    expect(sim.behaviour.autoRelockS).toBe(10);
  });

  const table: [string, unknown, RegExp][] = [
    ['an array', [], /"\(root\)" must be a JSON object/],
    ['an unknown section', { radio: {} }, /"radio" is not a known section/],
    ['an unknown setting', { hardware: { gpioPin: 17 } }, /"hardware.gpioPin" is not a known setting/],
    [
      'a line as text',
      { hardware: { solenoidLine: '17' } },
      /"hardware.solenoidLine" must be an integer from 0 to 511/,
    ],
    [
      'a sysfs-style chip',
      { hardware: { gpioChip: '/sys/class/gpio' } },
      /"hardware.gpioChip" must be a GPIO chip name/,
    ],
    [
      'a relative serial path',
      { hardware: { serialPath: 'serial0' } },
      /"hardware.serialPath" must be an absolute device path/,
    ],
    [
      'a pulse above the rated maximum',
      { behaviour: { pulseMs: 900 }, hardware: { maxPulseMs: 500 } },
      /"behaviour.pulseMs" \(900\) must not exceed the solenoid's rating/,
    ],
    [
      'a pulse outside the SET_CONFIG range',
      { behaviour: { pulseMs: 5 } },
      /"behaviour.pulseMs" must be an integer from 20 to 2000/,
    ],
    [
      'a fractional auto-relock',
      { behaviour: { autoRelockS: 1.5 } },
      /"behaviour.autoRelockS" must be an integer/,
    ],
    [
      'a theft threshold in the theft section',
      { theft: { tiltDeg: 20 } },
      /"theft.tiltDeg" is set as behaviour.theftTiltDeg/,
    ],
    [
      'a theft threshold out of range',
      { behaviour: { theftBumpThreshold: 100 } },
      /"behaviour.theftBumpThreshold" must be a number from 0.5 to 50/,
    ],
    [
      'an unknown time zone',
      { behaviour: { timeZone: 'Mars/Olympus' } },
      /"behaviour.timeZone" must be an IANA time zone/,
    ],
    ['a hold time as text', { theft: { tamperHoldMs: 'long' } }, /"theft.tamperHoldMs" must be a number/],
    ['an unknown time setting', { time: { rtc: true } }, /"time.rtc" is not a known setting/],
    [
      'the removed OS-clock tolerance ([TANDEM-TIME-6])',
      { time: { systemToleranceS: 120 } },
      /"time.systemToleranceS" was removed: the lock no longer trusts the operating system clock/,
    ],
    [
      'the removed longest power-off assumption ([TANDEM-TIME-6])',
      { time: { maxUnknownOfflineS: 2592000 } },
      /"time.maxUnknownOfflineS" was removed: after a boot the upper time bound stays unknown/,
    ],
    [
      'the same line twice',
      { hardware: { solenoidLine: 5, latchLine: 5 } },
      /"hardware.latchLine" must differ/,
    ],
  ];
  for (const [name, value, expected] of table) {
    it(`refuses ${name}`, () => expect(refusal(value)).toMatch(expected));
  }

  it('refuses unreadable, non-JSON and oversized files with the file name', async () => {
    await expect(loadLockFileConfig(join(dir, 'missing.json'))).rejects.toMatchObject({
      code: 'ERR_CONFIG_UNREADABLE',
    });
    writeFileSync(join(dir, 'bad.json'), '{ "dataDir": ');
    await expect(loadLockFileConfig(join(dir, 'bad.json'))).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
      message: expect.stringMatching(/bad\.json is not valid JSON/),
    });
    writeFileSync(join(dir, 'big.json'), ' '.repeat(70_000));
    await expect(loadLockFileConfig(join(dir, 'big.json'))).rejects.toMatchObject({
      message: expect.stringMatching(/larger than 64 KiB/),
    });
    writeFileSync(join(dir, 'field.json'), JSON.stringify({ behaviour: { autoRelockS: 0 } }));
    await expect(loadLockFileConfig(join(dir, 'field.json'))).rejects.toThrow(
      /field\.json: config "behaviour.autoRelockS"/,
    );
  });
});
