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
 * - **Lockout.** Only refusals that show a *genuine* token for this lock being misused count (the chain
 *   verified against a trust anchor, then was refused: REVOKED, CHAIN_INVALID, SCOPE_DENIED, POP_INVALID,
 *   CHALLENGE_UNKNOWN). Malformed bytes, unknown signers and bad signatures, the things a fuzzer or a random
 *   radio produces, never lock out; nor do the mistakes an honest rider makes (expired, outside schedule,
 *   time uncertain, uses exhausted, stale revocation, expired challenge). At `lockoutThreshold` such
 *   refusals within `lockoutWindowMs`, across peers, the lock is LOCKED_OUT until the owner clears it.
 */
import type { Clock } from '../../../hardware/src/clock.js';
import { Status } from '../../../protocol/src/status.js';

/** Statuses that count as lockout evidence (module comment). */
export const LOCKOUT_EVIDENCE: ReadonlySet<Status> = new Set([
  Status.REVOKED,
  Status.CHAIN_INVALID,
  Status.SCOPE_DENIED,
  Status.POP_INVALID,
  Status.CHALLENGE_UNKNOWN,
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

/** Counts lockout evidence in a sliding window (module comment). */
export class LockoutCounter {
  readonly #clock: Clock;
  readonly #times: number[] = [];
  #threshold: number;
  #windowMs: number;

  constructor(options: { clock: Clock; threshold: number; windowMs: number }) {
    this.#clock = options.clock;
    this.#threshold = options.threshold;
    this.#windowMs = options.windowMs;
  }

  configure(o: { threshold: number; windowMs: number }): void {
    this.#threshold = o.threshold;
    this.#windowMs = o.windowMs;
  }

  /** Count `status` if it is evidence; returns true when the threshold is reached (lock out now). */
  record(status: Status): boolean {
    if (!LOCKOUT_EVIDENCE.has(status)) return false;
    const now = this.#clock.now();
    prune(this.#times, now - this.#windowMs);
    this.#times.push(now);
    if (this.#times.length < this.#threshold) return false;
    this.#times.length = 0;
    return true;
  }

  reset(): void {
    this.#times.length = 0;
  }
}

function prune(times: number[], after: number): void {
  let i = 0;
  while (i < times.length && times[i]! <= after) i++;
  if (i > 0) times.splice(0, i);
}
