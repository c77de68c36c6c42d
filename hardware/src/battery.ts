/**
 * The battery's fuel gauge (issue 11 §3, SPEC [TANDEM-MQTT-14]): the lock reports the charge it measured in
 * its signed state, and nothing when it measured nothing. Two implementations, both first-class:
 *
 * - {@link LinuxSysfsBattery}: the kernel's power-supply class, `/sys/class/power_supply/<name>/capacity`
 *   (an integer percent, Documentation/ABI/testing/sysfs-class-power), as a fuel-gauge driver on the Pi
 *   exposes it (e.g. a MAX17048 on I²C with the `max17040_battery` driver, or a UPS HAT's own driver);
 * - {@link SimBattery}: a level a tester sets (console `sim battery <percent>`, the dashboard), or none.
 *
 * Errors are {@link HardwareError}s: ERR_HW_UNAVAILABLE when there is no such supply or it is not a
 * battery, ERR_HW_IO when the kernel refuses the read or returns something that is not a percentage.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock, TimerHandle } from './clock.js';
import { HardwareError } from './interfaces.js';

/** A battery gauge: `read()` resolves with the charge in percent, an integer from 0 to 100. */
export interface Battery {
  /** What is measured, for a person (`sysfs BAT0`, `simulated`). */
  readonly name: string;
  read(): Promise<number>;
}

const PERCENT = /^(\d{1,3})\s*$/;

function percent(text: string, where: string): number {
  const m = PERCENT.exec(text);
  const v = m === null ? NaN : Number(m[1]);
  if (!Number.isInteger(v) || v < 0 || v > 100) {
    throw new HardwareError(
      'ERR_HW_IO',
      `${where} reads ${JSON.stringify(text.trim().slice(0, 20))}, not a percentage from 0 to 100`,
    );
  }
  return v;
}

/** Options of {@link LinuxSysfsBattery}. */
export interface LinuxSysfsBatteryOptions {
  /** The supply's directory name under `root` (e.g. `BAT0`, `max17048`); default: the only battery there. */
  readonly supply?: string;
  /** The power-supply class directory (default `/sys/class/power_supply`; tests pass a fake tree). */
  readonly root?: string;
}

/** Supply names: what the kernel uses (letters, digits, `-`, `_`, `.`, `:`); never a path. */
const SUPPLY = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/**
 * Reads `<root>/<supply>/capacity`. Without `supply`, the one supply whose `type` is `Battery` (a board with
 * none has no gauge; with several, name one). Each read opens the file afresh: the kernel computes the value
 * at read time and a gauge may come and go (a HAT unplugged).
 */
export class LinuxSysfsBattery implements Battery {
  readonly #root: string;
  readonly #supply: string | undefined;
  #resolved: string | undefined;

  constructor(options: LinuxSysfsBatteryOptions = {}) {
    if (options.supply !== undefined && !SUPPLY.test(options.supply)) {
      throw new HardwareError(
        'ERR_HW_INVALID_ARGUMENT',
        `battery supply ${JSON.stringify(options.supply)} must be a power_supply name such as BAT0 (letters, digits, . _ : -)`,
      );
    }
    this.#root = options.root ?? '/sys/class/power_supply';
    this.#supply = options.supply;
  }

  get name(): string {
    return `sysfs ${this.#supply ?? this.#resolved ?? '(the only battery)'}`;
  }

  async #find(): Promise<string> {
    if (this.#supply !== undefined) return this.#supply;
    if (this.#resolved !== undefined) return this.#resolved;
    let names: string[];
    try {
      names = await readdir(this.#root);
    } catch (e) {
      throw new HardwareError('ERR_HW_UNAVAILABLE', `${this.#root} cannot be listed: no power-supply class`, {
        cause: e,
      });
    }
    const batteries: string[] = [];
    for (const n of names.sort()) {
      const type = await readFile(join(this.#root, n, 'type'), 'utf8').catch(() => '');
      if (type.trim() === 'Battery') batteries.push(n);
    }
    if (batteries.length !== 1) {
      throw new HardwareError(
        'ERR_HW_UNAVAILABLE',
        batteries.length === 0
          ? `no battery under ${this.#root} (no supply of type Battery): this board has no fuel gauge`
          : `several batteries under ${this.#root} (${batteries.join(', ')}): name one`,
      );
    }
    this.#resolved = batteries[0]!;
    return this.#resolved;
  }

  async read(): Promise<number> {
    const supply = await this.#find();
    const file = join(this.#root, supply, 'capacity');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new HardwareError(
        code === 'ENOENT' ? 'ERR_HW_UNAVAILABLE' : 'ERR_HW_IO',
        code === 'ENOENT'
          ? `${file} does not exist: no supply ${supply}, or its driver reports no capacity`
          : `${file} cannot be read (${code ?? 'error'})`,
        { cause: e },
      );
    }
    return percent(text, file);
  }
}

/** A simulated gauge: no reading until a level is set; `set(null)` takes the gauge away again. */
export class SimBattery implements Battery {
  readonly name = 'simulated';
  #level: number | null;

  constructor(level: number | null = null) {
    this.#level = null;
    this.set(level);
  }

  /** Sets the level (integer percent 0..100), or null for "no gauge". */
  set(level: number | null): void {
    if (level !== null && (!Number.isInteger(level) || level < 0 || level > 100)) {
      throw new HardwareError(
        'ERR_HW_INVALID_ARGUMENT',
        `battery level ${String(level)} must be an integer percent from 0 to 100`,
      );
    }
    this.#level = level;
  }

  /** The level set, or null. */
  get level(): number | null {
    return this.#level;
  }

  read(): Promise<number> {
    if (this.#level === null) {
      return Promise.reject(
        new HardwareError(
          'ERR_HW_UNAVAILABLE',
          'the simulated board has no battery level set (sim battery <percent>)',
        ),
      );
    }
    return Promise.resolve(this.#level);
  }
}

/**
 * Keeps the last reading of a gauge: read at `start()`, then every `periodMs` (default 60 s), and at once on
 * `refresh()`. `level` is undefined until a read succeeds and again after one fails ([TANDEM-MQTT-14]: a level
 * not measured is not reported). Listeners hear each change of `level`.
 */
export class BatteryMonitor {
  readonly #battery: Battery;
  readonly #clock: Pick<Clock, 'setTimeout' | 'clearTimeout'>;
  readonly #periodMs: number;
  readonly #listeners = new Set<(level: number | undefined) => void>();
  #level: number | undefined;
  #lastError: string | undefined;
  #timer: TimerHandle | undefined;
  #stopped = true;

  constructor(battery: Battery, clock: Pick<Clock, 'setTimeout' | 'clearTimeout'>, periodMs = 60_000) {
    this.#battery = battery;
    this.#clock = clock;
    this.#periodMs = periodMs;
  }

  /** The last level read, or undefined. */
  get level(): number | undefined {
    return this.#level;
  }

  /** Why the last read failed, if it did. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  onChange(listener: (level: number | undefined) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    void this.#poll();
  }

  /** Reads now; resolves with the level afterwards. */
  async refresh(): Promise<number | undefined> {
    let next: number | undefined;
    try {
      next = await this.#battery.read();
      this.#lastError = undefined;
    } catch (e) {
      next = undefined;
      this.#lastError = (e as Error).message;
    }
    if (next !== this.#level) {
      this.#level = next;
      for (const l of [...this.#listeners]) l(next);
    }
    return next;
  }

  async #poll(): Promise<void> {
    await this.refresh();
    if (this.#stopped) return;
    this.#timer = this.#clock.setTimeout(() => void this.#poll(), this.#periodMs);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
