import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';
import { SystemClock } from '../clock.js';
import type { Clock, TimerHandle } from '../clock.js';
import { HardwareError } from '../interfaces.js';
import type { AccelSample, Accelerometer } from '../interfaces.js';
import { Listeners } from '../listeners.js';

const debug = createDebug('tandem:hw:accel');

/** IIO driver names of accelerometers that fit the lock, as the kernel reports them in `name`. */
export const KNOWN_IIO_ACCELEROMETERS: readonly string[] = [
  'adxl345',
  'mma8452',
  'lis3dh',
  'mpu6050',
  'adxl343',
];

export interface LinuxIioAccelerometerOptions {
  /** Samples per second delivered by polling; default 50. */
  readonly sampleRateHz?: number;
  /** IIO device directory name (`iio:device0`), or a driver name / names to look for in `<dev>/name`. */
  readonly device?: string;
  readonly names?: readonly string[];
  /** Root of the IIO tree; default `/sys/bus/iio/devices` (tests point it at a fake tree). */
  readonly root?: string;
  readonly clock?: Clock;
}

interface Axis {
  readonly raw: string;
  readonly scale: number;
  readonly offset: number;
}

/**
 * Accelerometer through the kernel's Industrial I/O sysfs interface. Each sample reads
 * `in_accel_{x,y,z}_raw` and converts with `(raw + offset) * scale`, where the kernel's accel scale is
 * already in m/s² per count (Documentation/ABI/testing/sysfs-bus-iio). Polling is timed with the injected
 * clock; the next read is scheduled after the previous one finished, so a slow SD card never stacks reads.
 */
export class LinuxIioAccelerometer implements Accelerometer {
  readonly sampleRateHz: number;
  readonly #root: string;
  readonly #device: string | undefined;
  readonly #names: readonly string[];
  readonly #clock: Clock;
  readonly #samples = new Listeners<AccelSample>();
  readonly #errors = new Listeners<HardwareError>();
  #axes: { x: Axis; y: Axis; z: Axis } | undefined;
  #dir: string | undefined;
  #timer: TimerHandle | undefined;
  #open = false;
  #nextDue = 0;

  constructor(options: LinuxIioAccelerometerOptions = {}) {
    this.sampleRateHz = options.sampleRateHz ?? 50;
    if (!(this.sampleRateHz > 0 && this.sampleRateHz <= 1000)) {
      throw new HardwareError(
        'ERR_HW_INVALID_ARGUMENT',
        `accelerometer: sampleRateHz must be in (0, 1000], got ${this.sampleRateHz}`,
      );
    }
    this.#root = options.root ?? '/sys/bus/iio/devices';
    this.#device = options.device;
    this.#names = options.names ?? KNOWN_IIO_ACCELEROMETERS;
    this.#clock = options.clock ?? new SystemClock({ unref: true });
  }

  /** The IIO device directory in use, once open. */
  get devicePath(): string | undefined {
    return this.#dir;
  }

  async open(): Promise<void> {
    if (this.#open) return;
    const dir = await this.#findDevice();
    const axes = {
      x: await this.#axis(dir, 'x'),
      y: await this.#axis(dir, 'y'),
      z: await this.#axis(dir, 'z'),
    };
    await this.#setRate(dir);
    this.#dir = dir;
    this.#axes = axes;
    this.#open = true;
    this.#nextDue = this.#clock.now();
    this.#schedule();
    debug('accelerometer %s open at %d Hz', dir, this.sampleRateHz);
  }

  onSample(listener: (sample: AccelSample) => void): () => void {
    return this.#samples.add(listener);
  }

  onError(listener: (error: HardwareError) => void): () => void {
    return this.#errors.add(listener);
  }

  /** Read one sample now (also used by the polling loop). */
  async sampleOnce(): Promise<AccelSample> {
    const axes = this.#axes;
    if (!this.#open || axes === undefined) {
      throw new HardwareError('ERR_HW_NOT_OPEN', 'accelerometer not open: call open() first');
    }
    const [x, y, z] = await Promise.all([readAxis(axes.x), readAxis(axes.y), readAxis(axes.z)]);
    return { t: this.#clock.now(), x, y, z };
  }

  async close(): Promise<void> {
    this.#open = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    const period = 1000 / this.sampleRateHz;
    this.#nextDue += period;
    // Keep the average rate: a late read shortens the next wait, but never below zero (no burst catch-up).
    const now = this.#clock.now();
    if (this.#nextDue < now) this.#nextDue = now;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.sampleOnce().then(
        (sample) => {
          if (!this.#open) return;
          this.#samples.emit(sample);
          this.#schedule();
        },
        (error: unknown) => {
          if (!this.#open) return;
          this.#errors.emit(
            error instanceof HardwareError
              ? error
              : new HardwareError('ERR_HW_IO', String(error), { cause: error }),
          );
          this.#schedule();
        },
      );
    }, this.#nextDue - now);
  }

  async #findDevice(): Promise<string> {
    let entries: string[];
    try {
      entries = (await readdir(this.#root)).filter((e) => e.startsWith('iio:device')).sort();
    } catch (error) {
      throw unavailable(`cannot list ${this.#root}`, error);
    }
    if (this.#device !== undefined && entries.includes(this.#device)) return join(this.#root, this.#device);
    const wanted = this.#device !== undefined ? [this.#device] : this.#names;
    const seen: string[] = [];
    for (const entry of entries) {
      const name = (await readText(join(this.#root, entry, 'name')))?.trim();
      if (name === undefined) continue;
      seen.push(`${entry}=${name}`);
      if (wanted.some((w) => name === w || name.startsWith(`${w}-`) || name.startsWith(`${w}_`))) {
        return join(this.#root, entry);
      }
    }
    throw new HardwareError(
      'ERR_HW_UNAVAILABLE',
      `no IIO accelerometer named ${wanted.join('/')} under ${this.#root} (found: ${seen.join(', ') || 'none'}); is the IIO overlay loaded (e.g. dtoverlay=adxl345 in /boot/firmware/config.txt)? ls /sys/bus/iio/devices`,
    );
  }

  async #axis(dir: string, axis: 'x' | 'y' | 'z'): Promise<Axis> {
    const raw = join(dir, `in_accel_${axis}_raw`);
    if ((await readText(raw)) === undefined) {
      throw new HardwareError(
        'ERR_HW_UNAVAILABLE',
        `${raw} is missing or unreadable: check that ${dir} is an accelerometer and that the user may read it (udev rule or run as the iio/gpio group)`,
      );
    }
    // Per-axis attributes win over the shared ones, as in the IIO ABI.
    const scaleText =
      (await readText(join(dir, `in_accel_${axis}_scale`))) ?? (await readText(join(dir, 'in_accel_scale')));
    const scale = Number(scaleText);
    if (scaleText === undefined || !Number.isFinite(scale) || scale <= 0) {
      throw new HardwareError(
        'ERR_HW_UNAVAILABLE',
        `${dir}: in_accel_scale missing or invalid (${JSON.stringify(scaleText?.trim())}); the driver must expose a scale to convert to m/s²`,
      );
    }
    const offsetText =
      (await readText(join(dir, `in_accel_${axis}_offset`))) ??
      (await readText(join(dir, 'in_accel_offset')));
    const offset = offsetText === undefined ? 0 : Number(offsetText);
    return { raw, scale, offset: Number.isFinite(offset) ? offset : 0 };
  }

  async #setRate(dir: string): Promise<void> {
    for (const file of ['sampling_frequency', 'in_accel_sampling_frequency']) {
      const path = join(dir, file);
      if ((await readText(path)) === undefined) continue;
      // The device must sample at least as fast as we poll, or we read the same value repeatedly.
      const available = (await readText(join(dir, `${file}_available`)))
        ?.trim()
        .split(/\s+/)
        .map(Number)
        .filter((n) => Number.isFinite(n))
        .sort((a, b) => a - b);
      const rate = available?.find((n) => n >= this.sampleRateHz) ?? this.sampleRateHz;
      try {
        await writeFile(path, `${rate}\n`);
        debug('%s = %d', path, rate);
      } catch (error) {
        // Read-only attribute (root-owned): keep the device's rate rather than refusing to run.
        debug('cannot set %s: %O', path, error);
      }
      return;
    }
  }
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

async function readAxis(axis: Axis): Promise<number> {
  let text: string;
  try {
    text = await readFile(axis.raw, 'utf8');
  } catch (error) {
    throw new HardwareError(
      'ERR_HW_IO',
      `cannot read ${axis.raw}: the accelerometer stopped answering; check its wiring and dmesg`,
      { cause: error },
    );
  }
  const raw = Number(text.trim());
  if (!Number.isFinite(raw)) {
    throw new HardwareError('ERR_HW_IO', `${axis.raw} holds ${JSON.stringify(text.trim())}, not a number`);
  }
  return (raw + axis.offset) * axis.scale;
}

function unavailable(what: string, error: unknown): HardwareError {
  return new HardwareError(
    'ERR_HW_UNAVAILABLE',
    `${what}: is the IIO overlay loaded (e.g. dtoverlay=adxl345)? ls /sys/bus/iio/devices`,
    { cause: error },
  );
}
