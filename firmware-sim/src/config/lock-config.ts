/**
 * The lock's configuration file (`tandem lock --config <file>`): hardware wiring, paths and behaviour. The
 * lock's identity (lock id, device key, trust anchors, MQTT credentials) is not here: it is provisioned over
 * the serial console and kept in the crash-safe stores under `dataDir` (ARCHITECTURE.md, flow 1).
 *
 * Every field is checked; an unknown key, a wrong type or a value out of range is refused with
 * ERR_CONFIG_INVALID and the exact path of the field, before the lock touches any hardware.
 */
import { readFile } from 'node:fs/promises';
import { CONFIG_KEYS, DEFAULT_LOCK_CONFIG, isTimeZone } from '../lock/management.js';
import type { LockConfig } from '../lock/management.js';
import { TRUSTED_CLOCK_DEFAULTS } from '../lock/trusted-clock.js';
import { DEFAULT_THEFT_DETECTOR_CONFIG } from '../theft/theft-detector.js';
import type { TheftDetectorConfig } from '../theft/theft-detector.js';
import { TandemError } from '../../../protocol/src/errors.js';

/** Codes of configuration errors. */
export type ConfigErrorCode = 'ERR_CONFIG_INVALID' | 'ERR_CONFIG_UNREADABLE';

/** A configuration file that cannot be used; `message` names the file and the field. */
export class ConfigError extends TandemError {
  readonly code: ConfigErrorCode;
  constructor(code: ConfigErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
    this.code = code;
  }
}

/** Hardware wiring and ratings on the Raspberry Pi (wiring is ignored with `--simulate`). */
export interface HardwareConfig {
  /** GPIO character device chip, e.g. `gpiochip0` (line offsets are chip-relative, not sysfs numbers). */
  readonly gpioChip: string;
  readonly solenoidLine: number;
  readonly latchLine: number;
  /** True when the latch switch pulls the line low while the latch is closed. */
  readonly latchActiveLow: boolean;
  /** The solenoid's rated maximum on-time, ms, enforced by the driver itself. */
  readonly maxPulseMs: number;
  /** A pulse after which the shackle has not left `closed` within this long is reported jammed. */
  readonly jamTimeoutMs: number;
  /** True for a spring-loaded shackle that opens by itself; false for a latch the rider pulls. */
  readonly latchSpringsOpen: boolean;
  /** IIO device name of the accelerometer (`cat /sys/bus/iio/devices/iio:device*\/name`). */
  readonly accelerometer: string;
  readonly accelSampleRateHz: number;
  /** The provisioning console: the Pi's UART. */
  readonly serialPath: string;
  readonly serialBaudRate: number;
}

/** Trusted time without a real-time clock (README.md, "Lock runtime"). */
export interface TimeConfig {
  /** Bound on the clock's rate error, parts per million (the Pi Zero's crystal: well under 100). */
  readonly driftPpm: number;
}

/**
 * Settings that existed once and are refused by name, with why ([TANDEM-TIME-6]: the lock's time comes only
 * from signed beacons, so neither the OS clock nor an assumed longest power-off is an input any more).
 */
const REMOVED: Readonly<Record<string, string>> = {
  'time.systemToleranceS':
    'was removed: the lock no longer trusts the operating system clock at all (SPEC [TANDEM-TIME-6]); delete it',
  'time.maxUnknownOfflineS':
    'was removed: after a boot the upper time bound stays unknown until a nonce-bound beacon (SPEC [TANDEM-TIME-6]); delete it',
};

/** Theft detector settings other than the four thresholds, which are in `behaviour` (owner-settable). */
export type TheftTuning = Omit<TheftDetectorConfig, 'bumpThreshold' | 'tamperRms' | 'tiltDeg' | 'motionRms'>;

/**
 * The lock's MQTT link (SPEC §9; firmware-sim/src/mqtt/). Absent: the lock has no network link and relies on
 * phones alone. The credentials are not here: the username is the lock id and the password is made on the
 * lock and kept in `passwordFile` ([TANDEM-MQTT-13]).
 */
export interface MqttConfig {
  /** `mqtt://`, `mqtts://`, `ws://` or `wss://` host[:port][/path]; no credentials in the URL. */
  readonly url: string;
  /** PEM files for TLS (mqtts://, wss:// only): the CA to trust instead of the system's, a client certificate. */
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  /** The password file (default `<dataDir>/mqtt-password`, mode 0600). */
  readonly passwordFile?: string;
  /** Ask the cloud for a nonce-bound beacon when the clock's uncertainty passes this, seconds. */
  readonly uncertaintyBoundS: number;
  /** Reconnection backoff: the first cap and the largest, ms ([TANDEM-MQTT-LINK]). */
  readonly reconnectInitialMs: number;
  readonly reconnectMaxMs: number;
  /** MQTT keepalive, seconds. */
  readonly keepaliveS: number;
}

/** Defaults of the `mqtt` section (all but `url`). */
export const DEFAULT_MQTT_CONFIG = {
  uncertaintyBoundS: 60,
  reconnectInitialMs: 1000,
  reconnectMaxMs: 300_000,
  keepaliveS: 60,
} as const;

/** The whole configuration. */
export interface LockFileConfig {
  /** Where the stores live (on the Pi: `/var/lib/tandem`). */
  readonly dataDir: string;
  readonly hardware: HardwareConfig;
  /**
   * Behaviour the owner may also change with SET_CONFIG (SPEC §5.8): the same names and ranges as
   * `CONFIG_KEYS` in `lock/management.ts`; a value set by SET_CONFIG and persisted wins over the file.
   */
  readonly behaviour: Partial<LockConfig>;
  readonly time: TimeConfig;
  readonly theft: TheftTuning;
  /** The MQTT link; absent: none. */
  readonly mqtt?: MqttConfig;
}

const THEFT_THRESHOLDS = ['bumpThreshold', 'tamperRms', 'tiltDeg', 'motionRms'] as const;

/** The embedded defaults: a Pi Zero W wired as in README.md, Europe/Berlin. */
export const DEFAULT_CONFIG: LockFileConfig = {
  dataDir: '/var/lib/tandem',
  hardware: {
    gpioChip: 'gpiochip0',
    solenoidLine: 17,
    latchLine: 27,
    latchActiveLow: true,
    maxPulseMs: 500,
    jamTimeoutMs: 1500,
    latchSpringsOpen: true,
    accelerometer: 'adxl345',
    accelSampleRateHz: 100,
    serialPath: '/dev/serial0',
    serialBaudRate: 115200,
  },
  behaviour: { pulseMs: 300, timeZone: 'Europe/Berlin' },
  time: {
    driftPpm: TRUSTED_CLOCK_DEFAULTS.driftPpm,
  },
  theft: Object.fromEntries(
    Object.entries(DEFAULT_THEFT_DETECTOR_CONFIG).filter(
      ([k]) => !(THEFT_THRESHOLDS as readonly string[]).includes(k),
    ),
  ) as unknown as TheftTuning,
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

const HARDWARE: Record<keyof HardwareConfig, Check> = {
  gpioChip: str(/^gpiochip\d{1,3}$/, 'a GPIO chip name such as "gpiochip0"'),
  solenoidLine: int(0, 511),
  latchLine: int(0, 511),
  latchActiveLow: bool,
  maxPulseMs: int(10, 5000),
  jamTimeoutMs: int(100, 60_000),
  latchSpringsOpen: bool,
  accelerometer: str(/^[a-z0-9_-]{1,32}$/, 'an IIO device name such as "adxl345"'),
  accelSampleRateHz: int(1, 1000),
  serialPath: str(/^\/[\w./-]{1,255}$/, 'an absolute device path such as "/dev/serial0"'),
  serialBaudRate: int(1200, 4_000_000),
};
const TIME: Record<keyof TimeConfig, Check> = {
  driftPpm: int(0, 100_000),
};
// Behaviour: the SET_CONFIG whitelist and its ranges, so that the file and the owner's command agree. Wire
// values are scaled integers (no floats in CBOR, [TANDEM-CBOR-3]); the file holds natural units.
const BEHAVIOUR = Object.fromEntries(
  Object.values(CONFIG_KEYS).map((f) => [
    f.name,
    ((v, p) => {
      if (f.kind === 'zone') {
        return isTimeZone(v) ? v : invalid(p, `must be an IANA time zone such as "Europe/Berlin"`);
      }
      const scale = f.scale ?? 1;
      const wire = typeof v === 'number' && Number.isFinite(v) ? Math.round(v * scale) : NaN;
      const min = (f.min ?? 0) / scale;
      const max = (f.max ?? Number.MAX_SAFE_INTEGER) / scale;
      if (
        !(wire >= (f.min ?? 0) && wire <= (f.max ?? Number.MAX_SAFE_INTEGER)) ||
        (scale === 1 && !Number.isInteger(v))
      ) {
        invalid(p, `must be ${scale === 1 ? 'an integer' : 'a number'} from ${min} to ${max}`);
      }
      return v;
    }) as Check,
  ]),
) as Record<keyof LockConfig, Check>;
const path = str(/^[^\0]{1,4096}$/, 'a file path');
const MQTT: Record<keyof MqttConfig, Check> = {
  url: (v, p) => {
    if (typeof v !== 'string' || v.length > 1024)
      invalid(p, 'must be a URL such as "mqtts://broker.example:8883"');
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      invalid(p, 'must be a URL such as "mqtts://broker.example:8883"');
    }
    if (!['mqtt:', 'mqtts:', 'ws:', 'wss:'].includes(u.protocol))
      invalid(p, 'must use mqtt://, mqtts://, ws:// or wss://');
    if (u.hostname === '') invalid(p, 'must name a host');
    // The password lives in its own 0600 file; a URL is printed in logs and on the console.
    if (u.username !== '' || u.password !== '')
      invalid(p, 'must not hold credentials (the password is in mqtt.passwordFile)');
    return v;
  },
  caFile: path,
  certFile: path,
  keyFile: path,
  passwordFile: path,
  uncertaintyBoundS: int(1, 86_400),
  reconnectInitialMs: int(100, 60_000),
  reconnectMaxMs: int(1000, 3_600_000),
  keepaliveS: int(10, 3600),
};

function mqttSection(value: unknown): MqttConfig | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    invalid('mqtt', 'must be an object');
  if (!('url' in value)) invalid('mqtt.url', 'is required when the mqtt section is present');
  const m = section(value, 'mqtt', MQTT, DEFAULT_MQTT_CONFIG as unknown as MqttConfig);
  if (m.reconnectMaxMs < m.reconnectInitialMs) {
    invalid(
      'mqtt.reconnectMaxMs',
      `(${m.reconnectMaxMs}) must not be below mqtt.reconnectInitialMs (${m.reconnectInitialMs})`,
    );
  }
  const tls = m.url.startsWith('mqtts:') || m.url.startsWith('wss:');
  for (const k of ['caFile', 'certFile', 'keyFile'] as const) {
    if (m[k] !== undefined && !tls) invalid(`mqtt.${k}`, 'only applies to mqtts:// and wss:// URLs');
  }
  if ((m.certFile === undefined) !== (m.keyFile === undefined)) {
    invalid(
      m.certFile === undefined ? 'mqtt.certFile' : 'mqtt.keyFile',
      'must be given together with its pair (certFile and keyFile)',
    );
  }
  return m;
}

const THEFT = Object.fromEntries(
  Object.keys(DEFAULT_CONFIG.theft).map((k) => [k, num(0, 1_000_000)]),
) as Record<keyof TheftTuning, Check>;

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
      const removed = REMOVED[`${path}.${k}`];
      if (removed !== undefined) invalid(`${path}.${k}`, removed);
      if (path === 'theft' && (THEFT_THRESHOLDS as readonly string[]).includes(k)) {
        invalid(
          `${path}.${k}`,
          `is set as behaviour.theft${k[0]!.toUpperCase()}${k.slice(1)} (owner-settable)`,
        );
      }
      invalid(`${path}.${k}`, `is not a known setting (known: ${Object.keys(checks).join(', ')})`);
    }
    out[k] = check(v, `${path}.${k}`);
  }
  return out as T;
}

/** Checks a parsed configuration object, filling in defaults. Throws ERR_CONFIG_INVALID naming the field. */
export function parseLockFileConfig(
  value: unknown,
  defaults: LockFileConfig = DEFAULT_CONFIG,
): LockFileConfig {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    invalid('(root)', 'must be a JSON object');
  const root = value as Record<string, unknown>;
  for (const k of Object.keys(root)) {
    if (!['dataDir', 'hardware', 'behaviour', 'time', 'theft', 'mqtt', '$comment'].includes(k)) {
      invalid(k, 'is not a known section (known: dataDir, hardware, behaviour, time, theft, mqtt)');
    }
  }
  const dataDir =
    root.dataDir === undefined
      ? defaults.dataDir
      : (str(/^[^\0]{1,4096}$/, 'a directory path')(root.dataDir, 'dataDir') as string);
  const behaviour = { ...defaults.behaviour };
  if (root.behaviour !== undefined) {
    Object.assign(behaviour, section(root.behaviour, 'behaviour', BEHAVIOUR, {} as Partial<LockConfig>));
  }
  const config: LockFileConfig = {
    dataDir,
    hardware: section(root.hardware, 'hardware', HARDWARE, defaults.hardware),
    behaviour,
    time: section(root.time, 'time', TIME, defaults.time),
    theft: section(root.theft, 'theft', THEFT, defaults.theft),
    ...(root.mqtt === undefined
      ? defaults.mqtt === undefined
        ? {}
        : { mqtt: defaults.mqtt }
      : { mqtt: mqttSection(root.mqtt)! }),
  };
  if ((config.behaviour.pulseMs ?? DEFAULT_LOCK_CONFIG.pulseMs) > config.hardware.maxPulseMs) {
    invalid(
      'behaviour.pulseMs',
      `(${config.behaviour.pulseMs}) must not exceed the solenoid's rating hardware.maxPulseMs (${config.hardware.maxPulseMs})`,
    );
  }
  if (config.hardware.solenoidLine === config.hardware.latchLine) {
    invalid('hardware.latchLine', 'must differ from hardware.solenoidLine');
  }
  return config;
}

/** Reads and checks a configuration file. Throws ERR_CONFIG_UNREADABLE or ERR_CONFIG_INVALID. */
export async function loadLockFileConfig(
  path: string,
  defaults: LockFileConfig = DEFAULT_CONFIG,
): Promise<LockFileConfig> {
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
    return parseLockFileConfig(value, defaults);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(e.code, `${path}: ${e.message}`);
    throw e;
  }
}
