/**
 * The command lines against the libgpiod tools installed on this machine (Debian 12 ships 1.6.3), at a chip
 * that does not exist: the tools' own option parsers must accept every argv the drivers build, and the
 * failure must be the missing chip, mapped to ERR_HW_UNAVAILABLE. Nothing is driven, even on a Pi.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { LibgpiodTools } from '../src/gpio/libgpiod.js';
import { LinuxLatchSensor } from '../src/gpio/linux-latch-sensor.js';
import { LinuxSolenoid } from '../src/gpio/linux-solenoid.js';
import { HardwareError } from '../src/interfaces.js';
import { NodeProcessSpawner } from '../src/process-spawner.js';

const installed = spawnSync('gpioset', ['--version'], { stdio: 'ignore' }).error === undefined;
const line = { chip: 'gpiochip99', offset: 17 };

async function failure(promise: Promise<unknown>): Promise<HardwareError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(HardwareError);
  return error as HardwareError;
}

describe.skipIf(!installed)(
  `installed libgpiod tools${installed ? '' : ' (skipped: needs the libgpiod tools: sudo apt install gpiod)'}`,
  () => {
    it('detects the installed version from gpioset --version', async () => {
      const tools = new LibgpiodTools({ spawner: new NodeProcessSpawner() });
      const major = await tools.detect();
      const printed = spawnSync('gpioset', ['--version'], { encoding: 'utf8' }).stdout;
      expect(major).toBe(Number(/v(\d+)\./.exec(printed)?.[1]) >= 2 ? 2 : 1);
    });

    it('every command line passes the real option parser and fails only on the missing chip', async () => {
      const tools = new LibgpiodTools({ spawner: new NodeProcessSpawner() });
      await tools.detect();
      const runs: [tool: 'gpioset' | 'gpioget' | 'gpiomon', args: string[]][] = [
        ['gpioset', tools.setArgs(line, 0)],
        ['gpioset', tools.pulseArgs(line, 200)],
        ['gpioset', tools.pulseArgs(line, 1500)],
        ['gpioget', tools.getArgs(line, 'pull-up')],
        ['gpioget', tools.getArgs(line, 'as-is')],
        ['gpiomon', tools.monitorArgs(line, 'pull-down')],
      ];
      for (const [tool, args] of runs) {
        const error = await failure(tools.run(tool, args));
        expect(error.message, `${tool} ${args.join(' ')}`).not.toMatch(
          /unrecognized|invalid option|try gpio/i,
        );
        expect(error.code, error.message).toBe('ERR_HW_UNAVAILABLE');
        expect(error.message).toMatch(/gpiodetect/);
      }
    });

    it('LinuxSolenoid and LinuxLatchSensor refuse to open on a missing chip, saying what to do', async () => {
      const solenoid = new LinuxSolenoid({ line, maxPulseMs: 100 });
      expect((await failure(solenoid.open())).code).toBe('ERR_HW_UNAVAILABLE');
      expect(solenoid.isEnergised()).toBe(false);
      await solenoid.close();
      const latch = new LinuxLatchSensor({ line: { ...line, offset: 27 } });
      expect((await failure(latch.open())).message).toMatch(/gpiodetect/);
      await latch.close();
    });
  },
);
