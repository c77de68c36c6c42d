import createDebug from 'debug';
import { SystemClock } from '../clock.js';
import type { Clock, TimerHandle } from '../clock.js';
import { HardwareError } from '../interfaces.js';
import type { Solenoid } from '../interfaces.js';
import { ProcessExitHooks } from './exit-hooks.js';
import type { ExitHooks } from './exit-hooks.js';
import { LibgpiodTools, toolError, validateLine } from './libgpiod.js';
import type { GpioLine, LibgpiodMajor } from './libgpiod.js';
import { NodeProcessSpawner, collect } from '../process-spawner.js';
import type { ProcessSpawner, SpawnedProcess } from '../process-spawner.js';
import { checkPulse } from './pulse-limit.js';

const debug = createDebug('tandem:hw:gpio');

export interface LinuxSolenoidOptions {
  /** The output line driving the solenoid's transistor/MOSFET (high = energised). */
  readonly line: GpioLine;
  /** Rated maximum on-time of the coil, enforced here. */
  readonly maxPulseMs: number;
  /** Defaults to {@link NodeProcessSpawner}. */
  readonly spawner?: ProcessSpawner;
  /** Skip `gpioset --version` and use this syntax. */
  readonly libgpiodMajor?: LibgpiodMajor;
  /**
   * The libgpiod tools to run, shared with the lock's other GPIO drivers so that their version is detected
   * once (one `gpioset --version` at start instead of one per driver; issue 8 §2). When given, `spawner` and
   * `libgpiodMajor` are its own. Default: tools of this driver's own.
   */
  readonly tools?: LibgpiodTools;
  /** Defaults to a {@link SystemClock} whose timers do not keep the process alive. */
  readonly clock?: Clock;
  /** Defaults to {@link ProcessExitHooks}. */
  readonly exitHooks?: ExitHooks;
}

interface ActivePulse {
  readonly child: SpawnedProcess;
  done: Promise<void>;
  watchdog: TimerHandle | undefined;
  killedBy: 'release' | 'watchdog' | 'exit' | undefined;
}

/**
 * Solenoid on a GPIO output through the libgpiod tools. The on-time is bounded three times over: the tool
 * itself times the pulse (`gpioset --mode=time` in v1, `gpioset -t <ms>ms,0` in v2), a watchdog timer
 * kills the tool and drives the line low `maxPulseMs` after the pulse started whatever happens, and a
 * process exit hook drives it low if the process ends mid-pulse. Pulses longer than `maxPulseMs` are
 * refused before anything is spawned. The watchdog counts from the spawn, before the tool has even started,
 * so a pulse of exactly `maxPulseMs` may be cut short by the tool's start-up time: the bound wins.
 */
export class LinuxSolenoid implements Solenoid {
  readonly maxPulseMs: number;
  readonly #line: GpioLine;
  readonly #tools: LibgpiodTools;
  readonly #clock: Clock;
  readonly #exitHooks: ExitHooks;
  #open = false;
  #opening: Promise<void> | undefined;
  #pulse: ActivePulse | undefined;
  #energised = false;
  #removeExitHook: (() => void) | undefined;

  constructor(options: LinuxSolenoidOptions) {
    validateLine(options.line, 'solenoid');
    if (!Number.isInteger(options.maxPulseMs) || options.maxPulseMs < 1) {
      throw new HardwareError(
        'ERR_HW_INVALID_ARGUMENT',
        `solenoid: maxPulseMs must be a positive integer (the coil's rated on-time in ms), got ${options.maxPulseMs}`,
      );
    }
    this.maxPulseMs = options.maxPulseMs;
    this.#line = options.line;
    this.#tools =
      options.tools ??
      new LibgpiodTools({
        spawner: options.spawner ?? new NodeProcessSpawner(),
        ...(options.libgpiodMajor === undefined ? {} : { major: options.libgpiodMajor }),
      });
    this.#clock = options.clock ?? new SystemClock({ unref: true });
    this.#exitHooks = options.exitHooks ?? new ProcessExitHooks();
  }

  /** Detect the tools' version and drive the line low, which also proves the line can be requested. */
  open(): Promise<void> {
    if (this.#open) return Promise.resolve();
    this.#opening ??= (async () => {
      try {
        await this.#tools.detect();
        await this.#tools.run('gpioset', this.#tools.setArgs(this.#line, 0), 'solenoid open');
        this.#removeExitHook = this.#exitHooks.add(() => this.#deEnergiseSync());
        this.#open = true;
        debug('solenoid %s:%d open (libgpiod v%d)', this.#line.chip, this.#line.offset, this.#tools.major);
      } finally {
        this.#opening = undefined;
      }
    })();
    return this.#opening;
  }

  isEnergised(): boolean {
    return this.#energised;
  }

  async pulse(ms: number): Promise<void> {
    if (!this.#open) throw new HardwareError('ERR_HW_NOT_OPEN', 'solenoid not open: call open() first');
    checkPulse(ms, this.maxPulseMs);
    if (this.#pulse !== undefined) {
      throw new HardwareError(
        'ERR_HW_BUSY',
        'solenoid: a pulse is already in progress; wait for it to finish',
      );
    }
    const child = this.#tools.start('gpioset', this.#tools.pulseArgs(this.#line, ms));
    this.#energised = true;
    const stderr = collect(child.stderr);
    const active: ActivePulse = { child, watchdog: undefined, killedBy: undefined, done: Promise.resolve() };
    active.done = (async () => {
      const exit = await child.exited;
      if (active.watchdog !== undefined) this.#clock.clearTimeout(active.watchdog);
      try {
        // Drive low even when the tool ended the pulse itself: v1 leaves the line at its last level.
        await this.#driveLow();
      } finally {
        this.#pulse = undefined;
      }
      if (active.killedBy === undefined && (exit.error !== undefined || exit.code !== 0)) {
        throw toolError(
          'gpioset',
          this.#tools.pulseArgs(this.#line, ms),
          exit,
          await stderr,
          'solenoid pulse',
        );
      }
    })();
    active.watchdog = this.#clock.setTimeout(() => {
      active.watchdog = undefined;
      debug('solenoid watchdog: still energised after %d ms, killing gpioset', this.maxPulseMs);
      active.killedBy = 'watchdog';
      child.kill('SIGKILL');
    }, this.maxPulseMs);
    this.#pulse = active;
    await active.done;
  }

  async release(): Promise<void> {
    const active = this.#pulse;
    if (active === undefined) return;
    active.killedBy ??= 'release';
    active.child.kill('SIGKILL');
    try {
      await active.done;
    } catch (error) {
      // The caller of pulse() sees the tool's failure; release() only promises the coil is off.
      debug('solenoid release: pulse ended with %O', error);
    }
  }

  async close(): Promise<void> {
    if (this.#opening !== undefined) await this.#opening.catch(() => undefined);
    await this.release();
    this.#removeExitHook?.();
    this.#removeExitHook = undefined;
    this.#open = false;
  }

  async #driveLow(): Promise<void> {
    try {
      await this.#tools.run('gpioset', this.#tools.setArgs(this.#line, 0), 'solenoid de-energise');
    } finally {
      // A failed gpioset leaves the level unknown; the pulse tool has exited either way, and on v2 it ended
      // by driving low, so report not-energised and let the caller see the error.
      this.#energised = false;
    }
  }

  #deEnergiseSync(): void {
    const active = this.#pulse;
    if (active === undefined) return;
    active.killedBy = 'exit';
    active.child.kill('SIGKILL');
    // The killed tool may still hold the line for a moment (EBUSY); each synchronous attempt takes a few
    // milliseconds, long enough for the kernel to release it.
    for (let attempt = 0; attempt < 5; attempt++) {
      if (this.#tools.runSync('gpioset', this.#tools.setArgs(this.#line, 0))) break;
    }
    this.#energised = false;
  }
}
