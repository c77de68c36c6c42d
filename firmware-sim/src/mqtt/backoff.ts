/**
 * Reconnection delays ([TANDEM-MQTT-LINK]): capped exponential backoff with full jitter. After a broker outage
 * every lock of a fleet loses its link at the same moment; with a fixed or merely exponential delay they would
 * all come back in the same instants and storm the broker. Full jitter draws each delay uniformly from
 * [0, cap], where cap = min(maxMs, initialMs * 2^attempt), which spreads the fleet's returns evenly over the
 * window (the "full jitter" of Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015).
 */

/** Bounds of the reconnection delay. */
export interface BackoffPolicy {
  /** The cap of the first retry, ms. */
  readonly initialMs: number;
  /** The largest cap, ms: a lock never waits longer than this between attempts. */
  readonly maxMs: number;
}

/** The defaults: 1 s, doubling up to 5 minutes. */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1000, maxMs: 300_000 };

/** The cap of attempt `attempt` (0 for the first retry): min(maxMs, initialMs * 2^attempt). */
export function backoffCapMs(policy: BackoffPolicy, attempt: number): number {
  // 2^31 overflows nothing in a double, and any cap beyond maxMs is cut anyway.
  return Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 31));
}

/**
 * The delay before attempt `attempt`: uniform in [0, cap] from `random` (a number in [0, 1), injectable so
 * that tests are deterministic).
 */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random: () => number): number {
  const r = random();
  const u = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0;
  return Math.floor(u * backoffCapMs(policy, attempt));
}
