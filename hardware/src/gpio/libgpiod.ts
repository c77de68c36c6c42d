/**
 * Command lines for the libgpiod tools (`gpioset`, `gpioget`, `gpiomon`), which reach GPIO through the Linux
 * GPIO character device (`/dev/gpiochipN`), never the deprecated sysfs interface. Lines are named by chip and
 * chip-relative offset: the character device has no global numbering.
 *
 * Two generations of the tools are in the field and their syntax differs:
 * - v1 (Debian 12 / Raspberry Pi OS bookworm ship 1.6.3): chip as first positional argument,
 *   `gpioset --mode=exit|time|signal`, `gpiomon --line-buffered --format=%e` (`%e`: 0 falling, 1 rising).
 * - v2 (Debian 13 / trixie and later): chip as `-c <chip>`, gpioset holds the line until killed unless
 *   `-t/--toggle` is given (a last period of 0 means: apply the sequence, then exit), `gpiomon --format=%E`
 *   (`rising` / `falling`), `gpioget --numeric`.
 * The version comes from `gpioset --version` ("gpioset (libgpiod) v1.6.3").
 */
import createDebug from 'debug';
import { HardwareError } from '../interfaces.js';
import { collect } from '../process-spawner.js';
import type { ProcessSpawner, SpawnedProcess } from '../process-spawner.js';

const debug = createDebug('tandem:hw:gpio');

/** Syntax generation of the libgpiod tools. */
export type LibgpiodMajor = 1 | 2;

/** Bias applied to an input line; 'as-is' leaves the firmware/device-tree setting alone. */
export type GpioBias = 'as-is' | 'pull-up' | 'pull-down' | 'disable';

/** A GPIO line: chip name as `gpiodetect` prints it (or a /dev path) and the chip-relative offset. */
export interface GpioLine {
  readonly chip: string;
  readonly offset: number;
}

export interface LibgpiodToolsOptions {
  readonly spawner: ProcessSpawner;
  /** Skip detection and use this syntax (when the version is known from the image build). */
  readonly major?: LibgpiodMajor;
  /** Tool paths, for installs outside PATH. */
  readonly gpioset?: string;
  readonly gpioget?: string;
  readonly gpiomon?: string;
}

/** One parsed edge from `gpiomon`: the level the line went to. */
export type GpioLevel = 0 | 1;

const CHIP_RE = /^[A-Za-z0-9_./-]+$/;

/** Check a line spec before it reaches a command line, with a message saying what a valid one looks like. */
export function validateLine(line: GpioLine, role: string): void {
  if (!CHIP_RE.test(line.chip)) {
    throw new HardwareError(
      'ERR_HW_INVALID_ARGUMENT',
      `${role}: chip "${line.chip}" is not a chip name; use a name from gpiodetect such as "gpiochip0"`,
    );
  }
  if (!Number.isInteger(line.offset) || line.offset < 0 || line.offset > 1023) {
    throw new HardwareError(
      'ERR_HW_INVALID_ARGUMENT',
      `${role}: line offset ${line.offset} is not a chip-relative offset (0..1023); list lines with gpioinfo ${line.chip}`,
    );
  }
}

/** Builds libgpiod command lines for the detected version and runs them through the injected spawner. */
export class LibgpiodTools {
  readonly #spawner: ProcessSpawner;
  readonly #paths: { gpioset: string; gpioget: string; gpiomon: string };
  #major: LibgpiodMajor | undefined;
  #detecting: Promise<LibgpiodMajor> | undefined;

  constructor(options: LibgpiodToolsOptions) {
    this.#spawner = options.spawner;
    this.#major = options.major;
    this.#paths = {
      gpioset: options.gpioset ?? 'gpioset',
      gpioget: options.gpioget ?? 'gpioget',
      gpiomon: options.gpiomon ?? 'gpiomon',
    };
  }

  get spawner(): ProcessSpawner {
    return this.#spawner;
  }

  /** The syntax generation in use; undefined before {@link detect}. */
  get major(): LibgpiodMajor | undefined {
    return this.#major;
  }

  /** Run `gpioset --version` once and remember the major version. */
  detect(): Promise<LibgpiodMajor> {
    if (this.#major !== undefined) return Promise.resolve(this.#major);
    this.#detecting ??= this.run('gpioset', ['--version']).then(
      (out) => {
        const match = /v(\d+)\.(\d+)/.exec(out);
        if (match === null) {
          throw new HardwareError(
            'ERR_HW_UNAVAILABLE',
            `cannot tell the libgpiod version from "gpioset --version" (printed ${JSON.stringify(out.slice(0, 80))}); install libgpiod tools 1.x or 2.x: sudo apt install gpiod`,
          );
        }
        const major: LibgpiodMajor = Number(match[1]) >= 2 ? 2 : 1;
        debug('libgpiod tools v%s.%s: using v%d syntax', match[1], match[2], major);
        this.#major = major;
        return major;
      },
      (error: unknown) => {
        this.#detecting = undefined;
        throw error;
      },
    );
    return this.#detecting;
  }

  #requireMajor(): LibgpiodMajor {
    if (this.#major === undefined) {
      throw new HardwareError('ERR_HW_NOT_OPEN', 'libgpiod version not detected yet: call open() first');
    }
    return this.#major;
  }

  /** Drive an output line to `value` and release it (the Pi's GPIO keeps the last driven level). */
  setArgs(line: GpioLine, value: GpioLevel): string[] {
    return this.#requireMajor() === 1
      ? ['--mode=exit', line.chip, `${line.offset}=${value}`]
      : ['-c', line.chip, '-t', '0', `${line.offset}=${value}`];
  }

  /**
   * Drive an output line high for `ms` milliseconds; the tool itself times the pulse so that the coil's
   * on-time does not depend on Node's event loop. v2 also drives the line low before it exits (`-t <ms>,0`);
   * v1 cannot, so the driver follows with {@link setArgs} to 0.
   */
  pulseArgs(line: GpioLine, ms: number): string[] {
    if (this.#requireMajor() === 1) {
      const whole = Math.floor(ms / 1000);
      // v1 hands --usec to a timespec: keep it below one second and put the rest in --sec.
      const usec = Math.round((ms - whole * 1000) * 1000);
      return ['--mode=time', `--sec=${whole}`, `--usec=${usec}`, line.chip, `${line.offset}=1`];
    }
    return ['-c', line.chip, '-t', `${ms}ms,0`, `${line.offset}=1`];
  }

  /** Read an input line once. */
  getArgs(line: GpioLine, bias: GpioBias): string[] {
    const biasArgs = bias === 'as-is' ? [] : [`--bias=${bias}`];
    return this.#requireMajor() === 1
      ? [...biasArgs, line.chip, String(line.offset)]
      : ['--numeric', '-c', line.chip, ...biasArgs, String(line.offset)];
  }

  /** Watch an input line for both edges, one line of output per edge. */
  monitorArgs(line: GpioLine, bias: GpioBias): string[] {
    const biasArgs = bias === 'as-is' ? [] : [`--bias=${bias}`];
    return this.#requireMajor() === 1
      ? // --line-buffered: stdout is a pipe, and a block-buffered edge would arrive seconds late.
        [...biasArgs, '--line-buffered', '--format=%e', line.chip, String(line.offset)]
      : // v2 flushes after every poll wake-up by itself.
        ['-c', line.chip, ...biasArgs, '--edges=both', '--format=%E', String(line.offset)];
  }

  /** Parse one output line of `gpioget` into a level. */
  parseValue(output: string): GpioLevel | undefined {
    const text = output.trim();
    if (text === '0' || /=(inactive|0)$/.test(text)) return 0;
    if (text === '1' || /=(active|1)$/.test(text)) return 1;
    return undefined;
  }

  /** Parse one output line of `gpiomon` (as formatted by {@link monitorArgs}) into the new level. */
  parseEdge(output: string): GpioLevel | undefined {
    const text = output.trim();
    if (this.#major === 1) {
      if (text === '1') return 1;
      if (text === '0') return 0;
      return undefined;
    }
    if (text === 'rising') return 1;
    if (text === 'falling') return 0;
    return undefined;
  }

  /** Start a long-running tool. */
  start(tool: 'gpioset' | 'gpioget' | 'gpiomon', args: readonly string[]): SpawnedProcess {
    debug('spawn %s %o', tool, args);
    return this.#spawner.spawn(this.#paths[tool], args);
  }

  /** Run a tool to completion; resolves with stdout, rejects with a {@link HardwareError} that says what to do. */
  async run(tool: 'gpioset' | 'gpioget' | 'gpiomon', args: readonly string[], context = ''): Promise<string> {
    const child = this.start(tool, args);
    const [stdout, stderr, exit] = await Promise.all([
      collect(child.stdout),
      collect(child.stderr),
      child.exited,
    ]);
    if (exit.error !== undefined || exit.code !== 0) {
      throw toolError(tool, args, exit, stderr, context);
    }
    return stdout;
  }

  /**
   * Run synchronously (exit hooks only) and return whether it succeeded; failures are only logged because
   * nothing could act on an error thrown there.
   */
  runSync(tool: 'gpioset' | 'gpioget' | 'gpiomon', args: readonly string[]): boolean {
    debug('spawnSync %s %o', tool, args);
    const result = this.#spawner.spawnSync(this.#paths[tool], args);
    if (result.code !== 0) debug('%s %o exited with %o', tool, args, result);
    return result.code === 0;
  }
}

/** Map a failed tool run to a coded error whose message says how to fix it. */
export function toolError(
  tool: string,
  args: readonly string[],
  exit: { code: number | null; signal: string | null; error?: NodeJS.ErrnoException },
  stderr: string,
  context: string,
): HardwareError {
  const where = context === '' ? '' : `${context}: `;
  const command = `${tool} ${args.join(' ')}`;
  if (exit.error !== undefined) {
    if (exit.error.code === 'ENOENT') {
      return new HardwareError(
        'ERR_HW_UNAVAILABLE',
        `${where}${tool} not found: install the libgpiod tools (sudo apt install gpiod)`,
        { cause: exit.error },
      );
    }
    return new HardwareError('ERR_HW_IO', `${where}cannot run ${tool}: ${exit.error.message}`, {
      cause: exit.error,
    });
  }
  const said = stderr.trim().split('\n').slice(-1)[0] ?? '';
  const detail = `(${command} exited with ${exit.code ?? exit.signal}: ${said})`;
  if (/permission denied|operation not permitted/i.test(stderr)) {
    return new HardwareError(
      'ERR_HW_UNAVAILABLE',
      `${where}no permission on the GPIO chip: add the user to the gpio group (sudo usermod -aG gpio $USER, then log in again) ${detail}`,
    );
  }
  if (/busy/i.test(stderr)) {
    return new HardwareError(
      'ERR_HW_BUSY',
      `${where}the GPIO line is held by another program: find it with gpioinfo and stop it (a leftover gpioset or gpiomon, another Tandem instance) ${detail}`,
    );
  }
  if (
    /no such file|cannot find gpio chip|error opening gpiochip|unable to open chip|not a gpio/i.test(stderr)
  ) {
    return new HardwareError(
      'ERR_HW_UNAVAILABLE',
      `${where}GPIO chip not found: list the chips with gpiodetect and configure one of those names ${detail}`,
    );
  }
  if (/out of range|invalid argument|cannot find line|invalid offset/i.test(stderr)) {
    return new HardwareError(
      'ERR_HW_INVALID_ARGUMENT',
      `${where}the line offset does not exist on that chip: list the lines with gpioinfo ${detail}`,
    );
  }
  return new HardwareError('ERR_HW_IO', `${where}GPIO tool failed ${detail}`);
}
