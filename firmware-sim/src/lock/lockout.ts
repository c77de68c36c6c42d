/**
 * Lockout bookkeeping ([TANDEM-LOCKOUT-1], [TANDEM-LOCKOUT-2]): the {@link LockoutBook} of subjects (token
 * roots and holder keys) charged with refusals their key holder caused, persisted in the config store so that a
 * restart does not end a lockout, announced as `lockout` events and audited. The owner's CLEAR_LOCKOUT ends
 * it, together with every peer's back-off.
 */
import type { Clock } from '../../../hardware/src/clock.js';
import { Status } from '../../../protocol/src/status.js';
import type { AuditTrail } from './audit-trail.js';
import type { AuthorityStores, Emit } from './authority-types.js';
import type { LockConfig } from './management.js';
import { LOCKOUT_STORE_KEY } from './management.js';
import { LockoutBook } from './rate-limiter.js';
import type { RateLimiter } from './rate-limiter.js';

/** Options of {@link Lockout}. */
export interface LockoutOptions {
  readonly clock: Clock;
  readonly config: LockConfig;
  readonly store: AuthorityStores['config'];
  /** Reset with the lockout (CLEAR_LOCKOUT). */
  readonly limiter: Pick<RateLimiter, 'reset'>;
  readonly audit: Pick<AuditTrail, 'event'>;
  readonly emit: Emit;
}

/** The lock's lockout (module comment). */
export class Lockout {
  readonly #o: LockoutOptions;
  readonly #book: LockoutBook;

  constructor(options: LockoutOptions) {
    this.#o = options;
    this.#book = new LockoutBook({
      clock: options.clock,
      threshold: options.config.lockoutThreshold,
      windowMs: options.config.lockoutWindowS * 1000,
    });
    this.#book.restore(storedLockout(options.store.get(LOCKOUT_STORE_KEY)));
  }

  /** True while some token root or holder key is locked out ([TANDEM-LOCKOUT-2]). */
  get active(): boolean {
    return this.#book.locked.length > 0;
  }

  /** The locked-out subjects (`root:<hex>`, `key:<hex>`), oldest first. */
  get subjects(): readonly string[] {
    return this.#book.locked;
  }

  /** True when any of `subjects` is locked out (the decision's query). */
  isLocked(subjects: readonly string[]): boolean {
    return this.#book.isLocked(subjects);
  }

  configure(c: LockConfig): void {
    this.#book.configure({ threshold: c.lockoutThreshold, windowMs: c.lockoutWindowS * 1000 });
  }

  /** Charges a refusal a key holder caused ([TANDEM-LOCKOUT-1]); locks out the subjects it brings over. */
  async charge(evidence: readonly string[]): Promise<void> {
    const newly = this.#book.charge(evidence);
    if (newly.length > 0) await this.#enter(newly);
  }

  /** Ends every lockout and back-off (CLEAR_LOCKOUT). */
  async clear(): Promise<void> {
    const { store, limiter, emit } = this.#o;
    if (store.get(LOCKOUT_STORE_KEY) !== undefined) await store.delete(LOCKOUT_STORE_KEY);
    const was = this.active;
    limiter.reset();
    this.#book.clear();
    if (was) emit({ type: 'lockout', active: false });
  }

  /** Subjects just locked out ([TANDEM-LOCKOUT-2]): persisted (bounded), announced and audited. */
  async #enter(subjects: readonly string[]): Promise<void> {
    const { store, emit, audit } = this.#o;
    emit({ type: 'lockout', active: true, subjects });
    try {
      await store.set(LOCKOUT_STORE_KEY, { v: 2, subjects: [...this.#book.locked] });
    } catch (error) {
      // Still locked out in memory: refusing is the safe side.
      emit({ type: 'store-error', what: 'lockout', error });
    }
    await audit.event(Status.LOCKED_OUT, 'lockout');
  }
}

/**
 * The persisted lockout ([TANDEM-LOCKOUT-2]): `{v: 2, subjects: [...]}`. The whole-lock lockout of earlier
 * versions (`{since}`) named no subject; it is read as none (the owner would otherwise need to clear a lockout
 * that no longer has a meaning).
 */
function storedLockout(value: unknown): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array)
    return [];
  const subjects = (value as { subjects?: unknown }).subjects;
  return Array.isArray(subjects) ? subjects.filter((x): x is string => typeof x === 'string') : [];
}
