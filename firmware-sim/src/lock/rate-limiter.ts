/**
 * Rate limiting and lockout of refused attempts (issue 3, "What it does" 3). Policy, in short (README.md,
 * "Lock runtime"):
 *
 * - **Per peer.** The caller names the peer (a BLE connection, the serial console, MQTT). Refusals of one
 *   peer in a sliding window of `windowMs`: at `threshold` the peer is refused with RATE_LIMITED, before any
 *   parsing, for a back-off that doubles each time (2 s, 4 s, … up to `backoffMaxMs`) and resets after a
 *   quiet period of twice the maximum or an accepted request. Garbage from one connection slows that
 *   connection only.
 * - **Global cap.** Refusals from all peers in the window: at `globalThreshold` every peer is refused for a
 *   short fixed `globalBackoffMs` (default 5 s). It bounds the work a peer that rotates its BLE address can
 *   cause, and because it never grows, garbage cannot keep a rider out for more than a few seconds at a time.
 * - **Lockout** ([TANDEM-LOCKOUT-1] to [TANDEM-LOCKOUT-4]). Only refusals that a *key holder* caused count:
 *   the proof of possession verified, so the sender holds the leaf's private key, and the chain was still
 *   refused as misuse (REVOKED, SCOPE_DENIED, or CHAIN_INVALID from a link its delegator signed). A stranger
 *   replaying a recorded request (CHALLENGE_UNKNOWN) or re-sending a sniffed chain with a junk signature
 *   (POP_INVALID) never counts; nor do honest mistakes (expired, outside schedule, time uncertain, uses
 *   exhausted, stale revocation, expired challenge). The evidence is charged to what misbehaved, its
 *   *subjects*: the chain's root token and the leaf's holder key. At `threshold` charges within `windowMs`
 *   a subject is locked out: every chain with that root or that holder key gets LOCKED_OUT until an owner
 *   (or an issuer token with `manage`) clears it; other riders and the owner never notice. Locked subjects
 *   are persisted (at most `maxLocked`, the oldest forgotten first); the evidence windows are not, and are
 *   bounded too (`maxTracked`, least recently charged forgotten first). Chains rooted in an owner anchor are
 *   never charged nor locked out (the caller decides that, [TANDEM-LOCKOUT-3]).
 */
import type { Clock } from '../../../hardware/src/clock.js';
import { Status } from '../../../protocol/src/status.js';

/**
 * Statuses that count as lockout evidence, and only once the proof of possession verified (module comment,
 * [TANDEM-LOCKOUT-1]).
 */
export const LOCKOUT_EVIDENCE: ReadonlySet<Status> = new Set([
  Status.REVOKED,
  Status.CHAIN_INVALID,
  Status.SCOPE_DENIED,
]);

/** Options of {@link RateLimiter}. */
export interface RateLimiterOptions {
  readonly clock: Clock;
  readonly windowMs: number;
  readonly threshold: number;
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs: number;
  readonly globalThreshold: number;
  readonly globalBackoffMs?: number;
  /** Peers tracked at once (default 64; the least recently seen is forgotten first). */
  readonly maxPeers?: number;
}

interface PeerState {
  refusals: number[];
  level: number;
  blockedUntil: number;
  lastRefusal: number;
}

/** A verdict of {@link RateLimiter.check}. */
export type RateVerdict =
  | { readonly limited: false }
  | {
      readonly limited: true;
      /** Monotonic ms when the peer may try again. */
      readonly untilMs: number;
      /** True for the first refusal of this back-off (the one worth an audit record). */
      readonly first: boolean;
    };

/** Per-peer sliding-window limiter with a global cap (module comment). */
export class RateLimiter {
  readonly #clock: Clock;
  readonly #peers = new Map<string, PeerState>();
  readonly #global: number[] = [];
  #globalBlockedUntil = 0;
  #windowMs: number;
  #threshold: number;
  readonly #baseMs: number;
  #maxMs: number;
  #globalThreshold: number;
  readonly #globalBackoffMs: number;
  readonly #maxPeers: number;
  readonly #announced = new Set<string>();
  #globalAnnounced = false;

  constructor(options: RateLimiterOptions) {
    this.#clock = options.clock;
    this.#windowMs = options.windowMs;
    this.#threshold = options.threshold;
    this.#baseMs = options.backoffBaseMs ?? 2000;
    this.#maxMs = options.backoffMaxMs;
    this.#globalThreshold = options.globalThreshold;
    this.#globalBackoffMs = options.globalBackoffMs ?? 5000;
    this.#maxPeers = options.maxPeers ?? 64;
  }

  /** Apply new thresholds (SET_CONFIG). */
  configure(o: { windowMs: number; threshold: number; backoffMaxMs: number; globalThreshold: number }): void {
    this.#windowMs = o.windowMs;
    this.#threshold = o.threshold;
    this.#maxMs = o.backoffMaxMs;
    this.#globalThreshold = o.globalThreshold;
  }

  /** Whether `peer` must be refused now, before its request is even parsed. */
  check(peer: string): RateVerdict {
    const now = this.#clock.now();
    const p = this.#peers.get(peer);
    if (p !== undefined && p.blockedUntil > now && p.blockedUntil >= this.#globalBlockedUntil) {
      const first = !this.#announced.has(peer);
      if (this.#announced.size >= 4 * this.#maxPeers) this.#announced.clear();
      this.#announced.add(peer);
      return { limited: true, untilMs: p.blockedUntil, first };
    }
    this.#announced.delete(peer);
    if (now < this.#globalBlockedUntil) {
      // One announcement per global pause, not per peer: a sender rotating its address gets no record each.
      const first = !this.#globalAnnounced;
      this.#globalAnnounced = true;
      return { limited: true, untilMs: this.#globalBlockedUntil, first };
    }
    return { limited: false };
  }

  /** Count one refusal of `peer`. */
  refused(peer: string): void {
    const now = this.#clock.now();
    let p = this.#peers.get(peer);
    if (p === undefined) {
      if (this.#peers.size >= this.#maxPeers) this.#peers.delete(this.#peers.keys().next().value as string);
      p = { refusals: [], level: 0, blockedUntil: 0, lastRefusal: now };
    } else {
      this.#peers.delete(peer); // re-insert: most recently seen last
    }
    this.#peers.set(peer, p);
    if (now - p.lastRefusal > 2 * this.#maxMs) p.level = 0;
    p.lastRefusal = now;
    prune(p.refusals, now - this.#windowMs);
    p.refusals.push(now);
    if (p.refusals.length >= this.#threshold) {
      p.blockedUntil = now + Math.min(this.#maxMs, this.#baseMs * 2 ** p.level);
      p.level = Math.min(p.level + 1, 30);
      p.refusals.length = 0;
      this.#announced.delete(peer);
    }
    prune(this.#global, now - this.#windowMs);
    this.#global.push(now);
    if (this.#global.length >= this.#globalThreshold) {
      this.#globalBlockedUntil = now + this.#globalBackoffMs;
      this.#global.length = 0;
      this.#globalAnnounced = false;
    }
  }

  /** An accepted request: the peer's back-off level starts again. */
  accepted(peer: string): void {
    this.#peers.delete(peer);
    this.#announced.delete(peer);
  }

  /** Forget everything (CLEAR_LOCKOUT). */
  reset(): void {
    this.#peers.clear();
    this.#global.length = 0;
    this.#globalBlockedUntil = 0;
    this.#globalAnnounced = false;
    this.#announced.clear();
  }
}

/** Options of {@link LockoutBook}. */
export interface LockoutBookOptions {
  readonly clock: Clock;
  /** Charges within `windowMs` that lock a subject out. */
  readonly threshold: number;
  readonly windowMs: number;
  /** Subjects whose evidence is tracked at once (default 256; least recently charged forgotten first). */
  readonly maxTracked?: number;
  /** Locked-out subjects kept (default 64; the oldest forgotten first): the persisted state stays small. */
  readonly maxLocked?: number;
}

/**
 * Lockout scoped to what misbehaved (module comment). Subjects are opaque strings chosen by the caller (the
 * decision names them `root:<hex>` and `key:<hex>`).
 */
export class LockoutBook {
  readonly #clock: Clock;
  readonly #evidence = new Map<string, number[]>();
  /** Locked subjects in the order they were locked. */
  readonly #locked = new Set<string>();
  #threshold: number;
  #windowMs: number;
  readonly #maxTracked: number;
  readonly #maxLocked: number;

  constructor(options: LockoutBookOptions) {
    this.#clock = options.clock;
    this.#threshold = options.threshold;
    this.#windowMs = options.windowMs;
    this.#maxTracked = options.maxTracked ?? 256;
    this.#maxLocked = options.maxLocked ?? 64;
  }

  configure(o: { threshold: number; windowMs: number }): void {
    this.#threshold = o.threshold;
    this.#windowMs = o.windowMs;
  }

  /** Locked-out subjects, oldest first. */
  get locked(): readonly string[] {
    return [...this.#locked];
  }

  /** Most locked subjects kept. */
  get maxLocked(): number {
    return this.#maxLocked;
  }

  /** True when any of `subjects` is locked out. */
  isLocked(subjects: readonly string[]): boolean {
    for (const s of subjects) if (this.#locked.has(s)) return true;
    return false;
  }

  /**
   * Charges one refusal a key holder caused to each of `subjects`; returns the subjects it locked out now
   * (empty when none reached the threshold).
   */
  charge(subjects: readonly string[]): string[] {
    const now = this.#clock.now();
    const newly: string[] = [];
    for (const s of subjects) {
      if (this.#locked.has(s)) continue;
      let times = this.#evidence.get(s);
      if (times === undefined) {
        if (this.#evidence.size >= this.#maxTracked)
          this.#evidence.delete(this.#evidence.keys().next().value as string);
        times = [];
      } else {
        this.#evidence.delete(s); // re-insert: most recently charged last
      }
      this.#evidence.set(s, times);
      prune(times, now - this.#windowMs);
      times.push(now);
      if (times.length < this.#threshold) continue;
      this.#evidence.delete(s);
      this.#lock(s);
      newly.push(s);
    }
    return newly;
  }

  /** Restores the persisted locked subjects (at start). */
  restore(subjects: readonly string[]): void {
    for (const s of subjects) this.#lock(s);
  }

  /** Forgets everything (CLEAR_LOCKOUT). */
  clear(): void {
    this.#evidence.clear();
    this.#locked.clear();
  }

  #lock(s: string): void {
    this.#locked.delete(s);
    this.#locked.add(s);
    while (this.#locked.size > this.#maxLocked)
      this.#locked.delete(this.#locked.values().next().value as string);
  }
}

function prune(times: number[], after: number): void {
  let i = 0;
  while (i < times.length && times[i]! <= after) i++;
  if (i > 0) times.splice(0, i);
}
