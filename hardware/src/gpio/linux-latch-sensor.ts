import createDebug from 'debug';
import { SystemClock } from '../clock.js';
import type { Clock, TimerHandle } from '../clock.js';
import { HardwareError } from '../interfaces.js';
import type { LatchSensor, LatchState } from '../interfaces.js';
import { Listeners } from '../listeners.js';
import { Debouncer } from './debouncer.js';
import { LibgpiodTools, toolError, validateLine } from './libgpiod.js';
import type { GpioBias, GpioLevel, GpioLine, LibgpiodMajor } from './libgpiod.js';
import { NodeProcessSpawner, collect } from '../process-spawner.js';
import type { ProcessSpawner, SpawnedProcess } from '../process-spawner.js';

const debug = createDebug('tandem:hw:gpio');

export interface LinuxLatchSensorOptions {
  /** The input line of the latch switch. */
  readonly line: GpioLine;
  /** Bias of the input; default 'pull-up' (switch to ground, the Pi's usual wiring). */
  readonly bias?: GpioBias;
  /** Level that means "closed"; default 0 (the switch pulls the pulled-up line low when the shackle is in). */
  readonly closedLevel?: GpioLevel;
  /** A change is reported once the input has been steady this long; default 20 ms. */
  readonly debounceMs?: number;
  /** Wait before restarting a monitor process that died; default 1000 ms. */
  readonly restartDelayMs?: number;
  readonly spawner?: ProcessSpawner;
  readonly libgpiodMajor?: LibgpiodMajor;
  /** Tools shared with the other GPIO drivers (see LinuxSolenoidOptions.tools); replaces the two above. */
  readonly tools?: LibgpiodTools;
  readonly clock?: Clock;
}

/**
 * Latch sensor on a GPIO input. open() reads the level once with `gpioget`, then keeps one `gpiomon` running
 * for both edges and debounces them here; read() answers from that state, because a second request for the
 * line (another gpioget) would fail with EBUSY while gpiomon holds it.
 */
export class LinuxLatchSensor implements LatchSensor {
  readonly #line: GpioLine;
  readonly #bias: GpioBias;
  readonly #closedLevel: GpioLevel;
  readonly #restartDelayMs: number;
  readonly #debounceMs: number;
  readonly #tools: LibgpiodTools;
  readonly #clock: Clock;
  readonly #changes = new Listeners<LatchState>();
  readonly #errors = new Listeners<HardwareError>();
  #debouncer: Debouncer<GpioLevel> | undefined;
  #monitor: SpawnedProcess | undefined;
  #restartTimer: TimerHandle | undefined;
  #open = false;

  constructor(options: LinuxLatchSensorOptions) {
    validateLine(options.line, 'latch sensor');
    this.#line = options.line;
    this.#bias = options.bias ?? 'pull-up';
    this.#closedLevel = options.closedLevel ?? 0;
    this.#debounceMs = options.debounceMs ?? 20;
    this.#restartDelayMs = options.restartDelayMs ?? 1000;
    if (!(this.#debounceMs >= 0) || !(this.#restartDelayMs >= 0)) {
      throw new HardwareError(
        'ERR_HW_INVALID_ARGUMENT',
        'latch sensor: debounceMs and restartDelayMs must be >= 0',
      );
    }
    this.#tools =
      options.tools ??
      new LibgpiodTools({
        spawner: options.spawner ?? new NodeProcessSpawner(),
        ...(options.libgpiodMajor === undefined ? {} : { major: options.libgpiodMajor }),
      });
    this.#clock = options.clock ?? new SystemClock({ unref: true });
  }

  async open(): Promise<void> {
    if (this.#open) return;
    await this.#tools.detect();
    const level = await this.#readOnce();
    this.#debouncer = new Debouncer<GpioLevel>(this.#clock, this.#debounceMs, level, (stable) =>
      this.#changes.emit(this.#toState(stable)),
    );
    this.#open = true;
    this.#startMonitor();
    debug('latch %s:%d open, %s', this.#line.chip, this.#line.offset, this.#toState(level));
  }

  async read(): Promise<LatchState> {
    if (!this.#open || this.#debouncer === undefined) {
      throw new HardwareError('ERR_HW_NOT_OPEN', 'latch sensor not open: call open() first');
    }
    return this.#toState(this.#debouncer.stable);
  }

  onChange(listener: (state: LatchState) => void): () => void {
    return this.#changes.add(listener);
  }

  onError(listener: (error: HardwareError) => void): () => void {
    return this.#errors.add(listener);
  }

  async close(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    if (this.#restartTimer !== undefined) this.#clock.clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    this.#debouncer?.cancel();
    const monitor = this.#monitor;
    this.#monitor = undefined;
    if (monitor !== undefined) {
      monitor.kill('SIGTERM');
      await monitor.exited;
    }
  }

  #toState(level: GpioLevel): LatchState {
    return level === this.#closedLevel ? 'closed' : 'open';
  }

  async #readOnce(): Promise<GpioLevel> {
    const args = this.#tools.getArgs(this.#line, this.#bias);
    const out = await this.#tools.run('gpioget', args, 'latch sensor read');
    const level = this.#tools.parseValue(out);
    if (level === undefined) {
      throw new HardwareError(
        'ERR_HW_IO',
        `latch sensor: gpioget printed ${JSON.stringify(out.trim())}, expected 0 or 1; check that the libgpiod tools are 1.x or 2.x`,
      );
    }
    return level;
  }

  #startMonitor(): void {
    const args = this.#tools.monitorArgs(this.#line, this.#bias);
    const child = this.#tools.start('gpiomon', args);
    this.#monitor = child;
    const stderr = collect(child.stderr);
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        const text = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        const level = this.#tools.parseEdge(text);
        if (level === undefined) debug('latch: ignoring gpiomon output %j', text);
        else if (this.#monitor === child) this.#debouncer?.input(level);
        newline = pending.indexOf('\n');
      }
    });
    void child.exited.then(async (exit) => {
      if (this.#monitor !== child || !this.#open) return;
      this.#monitor = undefined;
      const error = toolError('gpiomon', args, exit, await stderr, 'latch sensor monitor stopped');
      debug('latch monitor ended: %s', error.message);
      this.#errors.emit(error);
      this.#scheduleRestart();
    });
  }

  #scheduleRestart(): void {
    this.#restartTimer = this.#clock.setTimeout(() => {
      this.#restartTimer = undefined;
      if (!this.#open) return;
      // Edges while no monitor ran are lost: re-read the level and report it if it changed meanwhile.
      this.#readOnce().then(
        (level) => {
          if (!this.#open) return;
          this.#debouncer?.input(level);
          this.#startMonitor();
        },
        (error: unknown) => {
          if (!this.#open) return;
          this.#errors.emit(
            error instanceof HardwareError
              ? error
              : new HardwareError('ERR_HW_IO', String(error), { cause: error }),
          );
          this.#scheduleRestart();
        },
      );
    }, this.#restartDelayMs);
  }
}
