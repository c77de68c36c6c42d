/**
 * Login rate limiting ([TANDEM-DLG-8]): failed logins are counted per account and per client address in a
 * sliding window. While either count is at its limit, every login for that account or from that address is
 * refused before the password is checked, so a guesser learns nothing, not even from a right guess.
 */

/** At most `max` failures within `windowSeconds`. */
export interface RateLimitRule {
  readonly max: number;
  readonly windowSeconds: number;
}

export interface LoginRateLimiterOptions {
  perAccount?: RateLimitRule;
  perAddress?: RateLimitRule;
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
  /** Most keys tracked per kind; the oldest is forgotten first (memory stays bounded under a spray). */
  maxKeys?: number;
}

/** The verdict of {@link LoginRateLimiter.check}. */
export interface RateLimitVerdict {
  readonly allowed: boolean;
  /** Seconds until an attempt may succeed again (0 when allowed). */
  readonly retryAfter: number;
}

class Window {
  private readonly hits = new Map<string, number[]>();
  constructor(
    private readonly rule: RateLimitRule,
    private readonly maxKeys: number,
  ) {}

  private live(key: string, now: number): number[] {
    const since = now - this.rule.windowSeconds * 1000;
    const list = (this.hits.get(key) ?? []).filter((t) => t > since);
    if (list.length === 0) this.hits.delete(key);
    else this.hits.set(key, list);
    return list;
  }

  retryAfter(key: string, now: number): number {
    const list = this.live(key, now);
    if (list.length < this.rule.max) return 0;
    const oldest = list[list.length - this.rule.max]!;
    return Math.max(1, Math.ceil((oldest + this.rule.windowSeconds * 1000 - now) / 1000));
  }

  add(key: string, now: number): void {
    const list = this.live(key, now);
    list.push(now);
    if (list.length > this.rule.max) list.splice(0, list.length - this.rule.max);
    this.hits.delete(key);
    this.hits.set(key, list);
    while (this.hits.size > this.maxKeys) {
      const first = this.hits.keys().next().value as string;
      this.hits.delete(first);
    }
  }

  clear(key: string): void {
    this.hits.delete(key);
  }
}

/** Counts failed logins per account and per address. */
export class LoginRateLimiter {
  private readonly accounts: Window;
  private readonly addresses: Window;
  private readonly now: () => number;

  constructor(options: LoginRateLimiterOptions = {}) {
    const maxKeys = options.maxKeys ?? 10_000;
    this.accounts = new Window(options.perAccount ?? { max: 5, windowSeconds: 15 * 60 }, maxKeys);
    this.addresses = new Window(options.perAddress ?? { max: 20, windowSeconds: 15 * 60 }, maxKeys);
    this.now = options.now ?? (() => Date.now());
  }

  /** May a login for `account` from `address` be tried now? */
  check(account: string, address: string): RateLimitVerdict {
    const now = this.now();
    const wait = Math.max(this.accounts.retryAfter(account, now), this.addresses.retryAfter(address, now));
    return { allowed: wait === 0, retryAfter: wait };
  }

  /** Records a failed login. */
  failure(account: string, address: string): void {
    const now = this.now();
    this.accounts.add(account, now);
    this.addresses.add(address, now);
  }

  /** A successful login clears the account's failures (not the address's: one right password proves little). */
  success(account: string): void {
    this.accounts.clear(account);
  }
}
