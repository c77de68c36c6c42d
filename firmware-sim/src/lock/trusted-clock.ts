/**
 * Trusted time for a lock without a real-time clock (issue 3, "What it does" 2; SPEC.md [TANDEM-TIME-CHECK],
 * §7 time beacons, [TANDEM-TIME-6]).
 *
 * The lock never knows the time exactly; it knows an interval [earliest, latest] (Unix seconds) that the true
 * time lies in, and decides tokens only when the whole interval agrees (SPEC.md §5.7 steps 5 and 6).
 *
 * [TANDEM-TIME-6]: the interval rests on issuer-signed beacons and the monotonic clock only. The operating
 * system's clock is not an input (a Pi has no RTC: after a power-off its clock is restored to the last saved
 * time, and NTP is unauthenticated), and nothing is assumed about how long the lock was off.
 *
 * - **Floor.** A persisted lower bound that only moves forward: raised by every verified beacon and, while
 *   running, by the monotonic clock. It is written at most every `persistIntervalS` (default 600 s: an SD card
 *   write every ten minutes, not every second) and on every beacon, so after a power cut the floor is at most
 *   that stale; stale only makes `earliest` lower, which is safe (more tokens straddle nbf and are refused as
 *   uncertain, none is accepted early).
 * - **After a boot**: [floor, unknown]. Only the floor survives a restart; the upper bound stays unknown
 *   (`latest` is reported as 2^32 − 1, the challenge's uncertainty as null) until a nonce-bound beacon
 *   arrives, so every time-limited token straddles its `exp` and is refused as TIME_UNCERTAIN, or EXPIRED
 *   once the floor has passed it. That is the price of honest time: a phone (or the network, [TANDEM-MQTT-12])
 *   must bring a beacon for the lock's nonce after each reboot.
 * - **Nonce-bound beacon** ([TANDEM-TIME-4]): a beacon that carries a nonce this lock issued at most
 *   `maxRelayDelayMs` ago gives [time − accuracy, time + accuracy + relay delay] (`boundFromBeacon`).
 *   Any other beacon only raises the floor ([TANDEM-TIME-5]): it may be a replay.
 * - **Drift**: between anchors, each end moves with the monotonic clock, widened by `driftPpm` (default 200
 *   ppm: a crystal's tolerance plus temperature, ~17 s a day).
 */
import createDebug from 'debug';
import type { Clock, TimerHandle } from '../../../hardware/src/clock.js';
import type { TimeBound } from '../../../protocol/src/chain.js';
import type { BeaconBound, TimeBeacon } from '../../../protocol/src/time-beacon.js';
import { boundFromBeacon } from '../../../protocol/src/time-beacon.js';
import { AtomicFile } from '../store/atomic-file.js';
import { isStoreError } from '../store/errors.js';
import type { StoreFs } from '../store/store-fs.js';
import { LockError } from './errors.js';

const debug = createDebug('tandem:lock:time');

const UINT32_MAX = 0xffff_ffff;

/** Defaults of {@link TrustedClockOptions}. */
export const TRUSTED_CLOCK_DEFAULTS = {
  driftPpm: 200,
  persistIntervalS: 600,
  maxRelayDelayMs: 30_000,
} as const;

/** `latest` of a bound whose upper end is unknown ([TANDEM-TIME-6]): past every `exp` a token can carry. */
export const UNKNOWN_LATEST = UINT32_MAX;

/** Options of {@link TrustedClock.open}. */
export interface TrustedClockOptions {
  /** Monotonic time and timers (the persistence timer). */
  readonly clock: Clock;
  readonly fs: StoreFs;
  readonly dir: string;
  /** File of the persisted floor (default 'time-floor.bin'). */
  readonly name?: string;
  /** Bound on the monotonic clock's rate error, parts per million. */
  readonly driftPpm?: number;
  /** Seconds between floor writes while running. */
  readonly persistIntervalS?: number;
  /** Longest accepted time between issuing a nonce and receiving the beacon that answers it. */
  readonly maxRelayDelayMs?: number;
}

/** Where the bound comes from, for diagnostics and the challenge's `uncertainty`. */
export type TimeSource = 'unknown' | 'beacon';

interface Base {
  readonly earliest: number;
  /** Undefined: unknown upper bound (no nonce-bound beacon since boot, [TANDEM-TIME-6]). */
  readonly latest: number | undefined;
  readonly atMono: number;
}

/**
 * The lock's trusted time (module comment). {@link TrustedClock.bound} is cheap (arithmetic only) and is called
 * once per decision.
 */
export class TrustedClock {
  readonly #clock: Clock;
  readonly #file: AtomicFile;
  readonly #drift: number;
  readonly #persistMs: number;
  readonly #maxRelayDelayMs: number;
  #base: Base;
  #floor: number;
  #persistedFloor: number;
  #timer: TimerHandle | undefined;
  #writes: Promise<void> = Promise.resolve();
  #closed = false;
  /** True when the stored floor was unreadable at open (the floor restarted from 0: fail closed). */
  readonly floorWasCorrupt: boolean;

  private constructor(options: TrustedClockOptions, file: AtomicFile, floor: number, corrupt: boolean) {
    this.#clock = options.clock;
    this.#file = file;
    this.#drift = nonNegative(options.driftPpm ?? TRUSTED_CLOCK_DEFAULTS.driftPpm, 'driftPpm') / 1e6;
    this.#persistMs =
      positive(options.persistIntervalS ?? TRUSTED_CLOCK_DEFAULTS.persistIntervalS, 'persistIntervalS') *
      1000;
    this.#maxRelayDelayMs = positive(
      options.maxRelayDelayMs ?? TRUSTED_CLOCK_DEFAULTS.maxRelayDelayMs,
      'maxRelayDelayMs',
    );
    this.#floor = floor;
    this.#persistedFloor = floor;
    this.floorWasCorrupt = corrupt;
    // [TANDEM-TIME-6]: only the floor survives a restart.
    this.#base = { earliest: floor, latest: undefined, atMono: this.#clock.now() };
    this.#schedulePersist();
  }

  /**
   * Reads the persisted floor and starts the persistence timer. A corrupt floor file is not fatal: the floor
   * restarts at 0, which refuses every token until a beacon arrives (`floorWasCorrupt` reports it).
   */
  static async open(options: TrustedClockOptions): Promise<TrustedClock> {
    await options.fs.mkdir(options.dir);
    const file = new AtomicFile(options.fs, options.dir, options.name ?? 'time-floor.bin', {
      magic: 'TDTF',
      maxBytes: 16,
    });
    let floor = 0;
    let corrupt = false;
    try {
      const raw = await file.read();
      if (raw !== undefined) {
        if (raw.length !== 4) throw new Error(`time floor of ${raw.length} bytes`);
        floor = new DataView(raw.buffer, raw.byteOffset, 4).getUint32(0);
      }
    } catch (error) {
      if (!isStoreError(error, 'ERR_STORE_CORRUPT') && isStoreError(error)) throw error;
      debug('time floor unreadable, restarting from 0: %O', error);
      corrupt = true;
    }
    return new TrustedClock(options, file, floor, corrupt);
  }

  /** The highest time floor known, Unix seconds (persisted at most `persistIntervalS` ago). */
  get floor(): number {
    return Math.max(this.#floor, Math.floor(this.#earliestRaw(this.#clock.now())));
  }

  /** Longest accepted relay delay of a nonce-bound beacon, ms. */
  get maxRelayDelayMs(): number {
    return this.#maxRelayDelayMs;
  }

  /**
   * The interval the true time lies in now, whole Unix seconds (earliest rounded down, latest up); an unknown
   * upper bound is {@link UNKNOWN_LATEST}.
   */
  bound(): TimeBound {
    const now = this.#clock.now();
    return {
      earliest: clamp(Math.floor(this.#earliestRaw(now))),
      latest: clamp(Math.ceil(this.#latestRaw(now))),
    };
  }

  /** Width of {@link bound} in seconds, or null while the upper bound is unknown ([TANDEM-GATT-8]). */
  uncertainty(): number | null {
    if (this.#base.latest === undefined) return null;
    const b = this.bound();
    return b.latest - b.earliest;
  }

  /** What the current bound rests on: a nonce-bound beacon since boot, or nothing but the floor. */
  source(): TimeSource {
    return this.#base.latest === undefined ? 'unknown' : 'beacon';
  }

  /** Milliseconds since the Unix epoch for audit records: the earliest possible time (never ahead). */
  auditTimeMs(): number {
    return this.bound().earliest * 1000;
  }

  /**
   * Applies a verified beacon ([TANDEM-TIME-4], [TANDEM-TIME-5]): a nonce-bound, fresh beacon anchors the
   * bound; any other raises the floor only. Resolves once the new floor is durable.
   *
   * @param nonce the lock's challenge the beacon names, with when it was issued (monotonic ms), if any
   */
  async applyBeacon(
    beacon: TimeBeacon,
    nonce?: { readonly nonce: Uint8Array; readonly issuedAtMs: number },
  ): Promise<BeaconBound> {
    this.#checkOpen();
    const now = this.#clock.now();
    const result = boundFromBeacon(beacon, {
      nowLocalMs: now,
      maxRelayDelayMs: this.#maxRelayDelayMs,
      ...(nonce === undefined ? {} : { lockNonce: nonce.nonce, issuedAtLocalMs: nonce.issuedAtMs }),
    });
    if (result.kind === 'bound' && result.latest >= this.#earliestRaw(now)) {
      // Never backwards: the held floor still bounds the anchored interval from below.
      const earliest = Math.max(result.earliest, this.#earliestRaw(now));
      this.#base = { earliest, latest: Math.max(result.latest, earliest), atMono: now };
    } else {
      if (result.kind === 'bound') debug('beacon bound ends before the held floor; used as a floor only');
      this.#raiseFloor(result.floor, now);
    }
    this.#floor = Math.max(this.#floor, Math.floor(this.#earliestRaw(now)));
    await this.#persist();
    return result;
  }

  /** Writes the floor now if it moved (the periodic timer calls this; the lead's shutdown may too). */
  persist(): Promise<void> {
    return this.#persist();
  }

  /** Stops the timer and persists the floor one last time (an orderly shutdown loses no time). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      await this.#persist();
    } catch (error) {
      debug('time floor write on close failed: %O', error);
    }
  }

  #earliestRaw(now: number): number {
    const dt = Math.max(0, now - this.#base.atMono) / 1000;
    return Math.max(this.#floor, this.#base.earliest + dt * (1 - this.#drift));
  }

  #latestRaw(now: number): number {
    if (this.#base.latest === undefined) return Infinity;
    const dt = Math.max(0, now - this.#base.atMono) / 1000;
    return Math.max(this.#earliestRaw(now), this.#base.latest + dt * (1 + this.#drift));
  }

  #raiseFloor(floor: number, now: number): void {
    const earliest = this.#earliestRaw(now);
    if (floor <= earliest) return;
    const latest = this.#latestRaw(now);
    // A floor past our latest means the assumptions behind the bound broke: start again from "unknown".
    this.#base =
      floor > latest
        ? { earliest: floor, latest: undefined, atMono: now }
        : { earliest: floor, latest: Number.isFinite(latest) ? latest : undefined, atMono: now };
    this.#floor = Math.max(this.#floor, floor);
  }

  #persist(): Promise<void> {
    const run = async (): Promise<void> => {
      const floor = clamp(Math.max(this.#floor, Math.floor(this.#earliestRaw(this.#clock.now()))));
      if (floor <= this.#persistedFloor) return;
      const raw = new Uint8Array(4);
      new DataView(raw.buffer).setUint32(0, floor);
      await this.#file.write(raw);
      this.#persistedFloor = floor;
      this.#floor = Math.max(this.#floor, floor);
      debug('time floor persisted: %d', floor);
    };
    const p = this.#writes.then(run, run);
    this.#writes = p.catch(() => undefined);
    return p;
  }

  #schedulePersist(): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      if (this.#closed) return;
      this.#persist().catch((error: unknown) => debug('time floor write failed: %O', error));
      this.#schedulePersist();
    }, this.#persistMs);
  }

  #checkOpen(): void {
    if (this.#closed) throw new LockError('ERR_LOCK_CLOSED', 'trusted clock closed');
  }
}

function clamp(n: number): number {
  return Math.min(UINT32_MAX, Math.max(0, n));
}

function positive(n: number, name: string): number {
  if (!Number.isFinite(n) || n <= 0) {
    throw new LockError('ERR_LOCK_INVALID_ARGUMENT', `${name} must be a positive number, got ${n}`);
  }
  return n;
}

function nonNegative(n: number, name: string): number {
  if (!Number.isFinite(n) || n < 0) {
    throw new LockError('ERR_LOCK_INVALID_ARGUMENT', `${name} must be a non-negative number, got ${n}`);
  }
  return n;
}
