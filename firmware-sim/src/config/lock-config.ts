/**
 * The lock's configuration file (`tandem lock --config <file>`): hardware wiring, paths and behaviour. The
 * lock's identity (lock id, device key, trust anchors, MQTT credentials) is not here: it is provisioned over
 * the serial console and kept in the crash-safe stores under `dataDir` (ARCHITECTURE.md, flow 1).
 *
 * Every field is checked; an unknown key, a wrong type or a value out of range is refused with
 * ERR_CONFIG_INVALID and the exact path of the field, before the lock touches any hardware.
 */
import { readFile } from 'node:fs/promises';
import { DEFAULT_THEFT_DETECTOR_CONFIG } from '../theft/theft-detector.js';
import type { TheftDetectorConfig } from '../theft/theft-detector.js';

/** Codes of configuration errors. */
export type ConfigErrorCode = 'ERR_CONFIG_INVALID' | 'ERR_CONFIG_UNREADABLE';

/** A configuration file that cannot be used; `message` names the file and the field. */
export class ConfigError extends Error {
  readonly code: ConfigErrorCode;
  constructor(code: ConfigErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
    this.code = code;
  }
}

/** Hardware wiring on the Raspberry Pi (ignored with `--simulate`). */
export interface HardwareConfig {
  /** GPIO character device chip, e.g. `gpiochip0` (line offsets are chip-relative, not sysfs numbers). */
  readonly gpioChip: string;
  readonly solenoidLine: number;
  readonly latchLine: number;
  /** True when the latch switch pulls the line low while the latch is closed. */
  readonly latchActiveLow: boolean;
  /** IIO device name of the accelerometer (`cat /sys/bus/iio/devices/iio:device*\/name`). */
  readonly accelerometer: string;
  readonly accelSampleRateHz: number;
  /** The provisioning console: the Pi's UART. */
  readonly serialPath: string;
  readonly serialBaudRate: number;
}

/** Lock behaviour. */
export interface BehaviourConfig {
  /** Solenoid pulse for one unlock, milliseconds. */
  readonly pulseMs: number;
  /** The solenoid's rated maximum on-time, enforced by the driver. */
  readonly maxPulseMs: number;
  /** After an unlock whose latch was never opened, the lock counts as locked again after this. */
  readonly autoRelockSeconds: number;
  /** A pulse whose latch has not opened after this is reported as jammed. */
  readonly jamTimeoutMs: number;
  /** Lifetime of a challenge nonce ([TANDEM-POP-4]). */
  readonly challengeLifetimeSeconds: number;
  /** IANA time zone of the lock, for weekly schedules ([TANDEM-SCHED-2]). */
  readonly timeZone: string;
  /** How far the system clock may drift per day without a beacon, seconds (Pi Zero crystal: ~ 2 s/day). */
  readonly clockDriftSecondsPerDay: number;
}

/** The whole configuration. */
export interface LockConfig {
  /** Where the stores live (on the Pi: `/var/lib/tandem`). */
  readonly dataDir: string;
  readonly hardware: HardwareConfig;
  readonly behaviour: BehaviourConfig;
  readonly theft: TheftDetectorConfig;
}

/** The embedded defaults: a Pi Zero W wired as in README.md, Europe/Berlin. */
export const DEFAULT_CONFIG: LockConfig = {
  dataDir: '/var/lib/tandem',
  hardware: {
    gpioChip: 'gpiochip0',
    solenoidLine: 17,
    latchLine: 27,
    latchActiveLow: true,
    accelerometer: 'adxl345',
    accelSampleRateHz: 100,
    serialPath: '/dev/serial0',
    serialBaudRate: 115200,
  },
  behaviour: {
    pulseMs: 300,
    maxPulseMs: 500,
    autoRelockSeconds: 10,
    jamTimeoutMs: 1500,
    challengeLifetimeSeconds: 30,
    timeZone: 'Europe/Berlin',
    clockDriftSecondsPerDay: 2,
  },
  theft: { ...DEFAULT_THEFT_DETECTOR_CONFIG },
};

type Check = (value: unknown, path: string) => unknown;

function invalid(path: string, what: string): never {
  throw new ConfigError('ERR_CONFIG_INVALID', `config "${path}" ${what}`);
}

const int =
  (min: number, max: number): Check =>
  (v, p) =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max
      ? v
      : invalid(p, `must be an integer from ${min} to ${max}`);
const num =
  (min: number, max: number): Check =>
  (v, p) =>
    typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max
      ? v
      : invalid(p, `must be a number from ${min} to ${max}`);
const bool: Check = (v, p) => (typeof v === 'boolean' ? v : invalid(p, 'must be true or false'));
const str =
  (re: RegExp, what: string): Check =>
  (v, p) =>
    typeof v === 'string' && re.test(v) ? v : invalid(p, `must be ${what}`);
const timeZone: Check = (v, p) => {
  if (typeof v !== 'string') invalid(p, 'must be an IANA time zone name such as "Europe/Berlin"');
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: v });
  } catch {
    invalid(p, `names an unknown time zone ${JSON.stringify(v)}`);
  }
  return v;
};

const HARDWARE: Record<keyof HardwareConfig, Check> = {
  gpioChip: str(/^gpiochip\d{1,3}$/, 'a GPIO chip name such as "gpiochip0"'),
  solenoidLine: int(0, 511),
  latchLine: int(0, 511),
  latchActiveLow: bool,
  accelerometer: str(/^[a-z0-9_-]{1,32}$/, 'an IIO device name such as "adxl345"'),
  accelSampleRateHz: int(1, 1000),
  serialPath: str(/^\/[\w./-]{1,255}$/, 'an absolute device path such as "/dev/serial0"'),
  serialBaudRate: int(1200, 4_000_000),
};
const BEHAVIOUR: Record<keyof BehaviourConfig, Check> = {
  pulseMs: int(10, 5000),
  maxPulseMs: int(10, 5000),
  autoRelockSeconds: int(1, 3600),
  jamTimeoutMs: int(100, 60_000),
  challengeLifetimeSeconds: int(5, 600),
  timeZone,
  clockDriftSecondsPerDay: num(0, 3600),
};
const THEFT = Object.fromEntries(
  Object.keys(DEFAULT_THEFT_DETECTOR_CONFIG).map((k) => [k, num(0, 1_000_000)]),
) as Record<keyof TheftDetectorConfig, Check>;

function section<T extends object>(
  value: unknown,
  path: string,
  checks: Record<keyof T, Check>,
  defaults: T,
): T {
  if (value === undefined) return { ...defaults };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) invalid(path, 'must be an object');
  const out: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  for (const [k, v] of Object.entries(value)) {
    const check = (checks as Record<string, Check>)[k];
    if (check === undefined) {
      invalid(`${path}.${k}`, `is not a known setting (known: ${Object.keys(checks).join(', ')})`);
    }
    out[k] = check(v, `${path}.${k}`);
  }
  return out as T;
}

/** Checks a parsed configuration object, filling in defaults. Throws ERR_CONFIG_INVALID naming the field. */
export function parseLockConfig(value: unknown, defaults: LockConfig = DEFAULT_CONFIG): LockConfig {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    invalid('(root)', 'must be a JSON object');
  const root = value as Record<string, unknown>;
  for (const k of Object.keys(root)) {
    if (!['dataDir', 'hardware', 'behaviour', 'theft', '$comment'].includes(k)) {
      invalid(k, 'is not a known section (known: dataDir, hardware, behaviour, theft)');
    }
  }
  const dataDir =
    root.dataDir === undefined
      ? defaults.dataDir
      : (str(/^[^\0]{1,4096}$/, 'a directory path')(root.dataDir, 'dataDir') as string);
  const config: LockConfig = {
    dataDir,
    hardware: section(root.hardware, 'hardware', HARDWARE, defaults.hardware),
    behaviour: section(root.behaviour, 'behaviour', BEHAVIOUR, defaults.behaviour),
    theft: section(root.theft, 'theft', THEFT, defaults.theft),
  };
  if (config.behaviour.pulseMs > config.behaviour.maxPulseMs) {
    invalid(
      'behaviour.pulseMs',
      `(${config.behaviour.pulseMs}) must not exceed behaviour.maxPulseMs (${config.behaviour.maxPulseMs})`,
    );
  }
  if (config.hardware.solenoidLine === config.hardware.latchLine) {
    invalid('hardware.latchLine', 'must differ from hardware.solenoidLine');
  }
  return config;
}

/** Reads and checks a configuration file. Throws ERR_CONFIG_UNREADABLE or ERR_CONFIG_INVALID. */
export async function loadLockConfig(
  path: string,
  defaults: LockConfig = DEFAULT_CONFIG,
): Promise<LockConfig> {
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > 64 * 1024)
      throw new ConfigError('ERR_CONFIG_INVALID', `config file ${path} is larger than 64 KiB`);
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (cause) {
    if (cause instanceof ConfigError) throw cause;
    throw new ConfigError(
      'ERR_CONFIG_UNREADABLE',
      `cannot read config file ${path}: ${(cause as Error).message}`,
      { cause },
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `config file ${path} is not valid JSON: ${(cause as Error).message}`,
      { cause },
    );
  }
  try {
    return parseLockConfig(value, defaults);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(e.code, `${path}: ${e.message}`);
    throw e;
  }
}
