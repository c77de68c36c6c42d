/**
 * The lock's challenges (SPEC.md §5.8, [TANDEM-POP-4]): fresh 16-byte nonces, each accepted at most once and
 * only within its lifetime.
 *
 * Bounds: at most `maxOutstanding` live challenges in all and `maxPerPeer` per peer; issuing past a bound
 * drops the oldest (of that peer first), so a peer that reads challenges in a loop cannot starve the others
 * and memory stays bounded. A challenge is consumed by any request that names it, accepted or refused
 * ({@link ChallengeBook.take}). Nonces issued recently are remembered a little longer, after they are spent,
 * so that a time beacon answering one can still be matched to its issue time ([TANDEM-TIME-4]).
 */
import type { Clock } from '../../../hardware/src/clock.js';
import { NONCE_LENGTH } from '../../../protocol/src/pop.js';
import { LockError } from './errors.js';

/** An injectable source of random bytes (node:crypto's `randomFillSync` on the lock, seeded in tests). */
export type RandomSource = (length: number) => Uint8Array;

/** Options of {@link ChallengeBook}. */
export interface ChallengeBookOptions {
  readonly clock: Clock;
  readonly random: RandomSource;
  /** Lifetime of a challenge, ms ([TANDEM-POP-4]: 30 s by default). */
  readonly lifetimeMs: number;
  /** Default 16. */
  readonly maxOutstanding?: number;
  /** Default 2. */
  readonly maxPerPeer?: number;
  /** How many issued nonces are remembered for beacons (default 32). */
  readonly recentCapacity?: number;
}

/** A live challenge as the book holds it. */
export interface IssuedChallenge {
  readonly nonce: Uint8Array;
  /** Monotonic ms. */
  readonly issuedAtMs: number;
  readonly peer: string;
}

/** What {@link ChallengeBook.take} found. */
export type TakenChallenge =
  | { readonly kind: 'live'; readonly challenge: IssuedChallenge }
  | { readonly kind: 'expired'; readonly challenge: IssuedChallenge }
  | { readonly kind: 'unknown' };

const keyOf = (nonce: Uint8Array): string => String.fromCharCode.apply(null, nonce as unknown as number[]);

/** Issued, not yet spent challenges, bounded (module comment). */
export class ChallengeBook {
  readonly #clock: Clock;
  readonly #random: RandomSource;
  #lifetimeMs: number;
  readonly #maxOutstanding: number;
  readonly #maxPerPeer: number;
  readonly #recentCapacity: number;
  /** Insertion order = issue order, so the first entry is the oldest. */
  readonly #live = new Map<string, IssuedChallenge>();
  readonly #recent = new Map<string, IssuedChallenge>();

  constructor(options: ChallengeBookOptions) {
    this.#clock = options.clock;
    this.#random = options.random;
    this.#lifetimeMs = checkInt(options.lifetimeMs, 1, 'lifetimeMs');
    this.#maxOutstanding = checkInt(options.maxOutstanding ?? 16, 1, 'maxOutstanding');
    this.#maxPerPeer = checkInt(options.maxPerPeer ?? 2, 1, 'maxPerPeer');
    this.#recentCapacity = checkInt(options.recentCapacity ?? 32, 1, 'recentCapacity');
  }

  get lifetimeMs(): number {
    return this.#lifetimeMs;
  }

  set lifetimeMs(ms: number) {
    this.#lifetimeMs = checkInt(ms, 1, 'lifetimeMs');
  }

  /** Live challenges held. */
  get size(): number {
    return this.#live.size;
  }

  /** Issues a fresh challenge for `peer`. */
  issue(peer: string): IssuedChallenge {
    const now = this.#clock.now();
    this.#purge(now);
    let mine = 0;
    let oldestMine: string | undefined;
    for (const [k, c] of this.#live) {
      if (c.peer !== peer) continue;
      mine++;
      oldestMine ??= k;
    }
    if (mine >= this.#maxPerPeer && oldestMine !== undefined) this.#live.delete(oldestMine);
    if (this.#live.size >= this.#maxOutstanding) this.#live.delete(this.#live.keys().next().value as string);
    const nonce = this.#random(NONCE_LENGTH);
    if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_LENGTH) {
      throw new LockError('ERR_LOCK_INVALID_ARGUMENT', `random source must return ${NONCE_LENGTH} bytes`);
    }
    const challenge: IssuedChallenge = { nonce: Uint8Array.from(nonce), issuedAtMs: now, peer };
    const key = keyOf(challenge.nonce);
    this.#live.set(key, challenge);
    this.#recent.delete(key);
    this.#recent.set(key, challenge);
    if (this.#recent.size > this.#recentCapacity)
      this.#recent.delete(this.#recent.keys().next().value as string);
    return challenge;
  }

  /**
   * Spends the challenge `nonce` names, whatever the request's fate ([TANDEM-POP-4]): live, expired, or
   * unknown (never issued, already spent, or dropped by a bound).
   *
   * A challenge belongs to the peer (connection) that read it ([TANDEM-POP-7]): named by any other peer it
   * is `unknown` to that peer and stays live for its own, so that a relay or a sniffer that sends the nonce it
   * heard on the air first can neither use it nor burn it.
   */
  take(nonce: Uint8Array, peer: string): TakenChallenge {
    const key = keyOf(nonce);
    const c = this.#live.get(key);
    if (c === undefined || c.peer !== peer) return { kind: 'unknown' };
    this.#live.delete(key);
    const age = this.#clock.now() - c.issuedAtMs;
    return age <= this.#lifetimeMs && age >= 0
      ? { kind: 'live', challenge: c }
      : { kind: 'expired', challenge: c };
  }

  /** A nonce issued recently (spent or not), for matching a time beacon to its issue time. */
  recent(nonce: Uint8Array): IssuedChallenge | undefined {
    return this.#recent.get(keyOf(nonce));
  }

  /** Forget every challenge (a restart forgets them too: nonces never survive a reboot). */
  clear(): void {
    this.#live.clear();
  }

  #purge(now: number): void {
    // Expired challenges are kept for one more lifetime so that a late request hears CHALLENGE_EXPIRED.
    for (const [k, c] of this.#live) {
      if (now - c.issuedAtMs > 2 * this.#lifetimeMs) this.#live.delete(k);
    }
  }
}

function checkInt(n: number, min: number, name: string): number {
  if (!Number.isInteger(n) || n < min) {
    throw new LockError('ERR_LOCK_INVALID_ARGUMENT', `${name} must be an integer >= ${min}, got ${n}`);
  }
  return n;
}
