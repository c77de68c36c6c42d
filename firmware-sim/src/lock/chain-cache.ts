/**
 * Verified chains kept for repeat requests by reference (SPEC.md [TANDEM-POP-6]): least recently used first
 * out, keyed by the first {@link CHAIN_REF_LENGTH} bytes of the chain hash. The authority puts a chain here
 * only once its holder proved possession, and empties it whenever a trust anchor is added or removed.
 */
import type { Grant } from '../../../protocol/src/chain.js';
import { CHAIN_REF_LENGTH } from '../../../protocol/src/pop.js';
import { LockError } from './errors.js';

const refKey = (b: Uint8Array): string =>
  String.fromCharCode.apply(null, b.subarray(0, CHAIN_REF_LENGTH) as unknown as number[]);

/** A bounded LRU of verified chains (module comment). */
export class ChainCache {
  readonly #grants = new Map<string, Grant>();
  readonly #capacity: number;

  /** `capacity`: most chains held (default 32). */
  constructor(capacity = 32) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new LockError(
        'ERR_LOCK_INVALID_ARGUMENT',
        `chain cache size must be an integer >= 1, got ${capacity}`,
      );
    }
    this.#capacity = capacity;
  }

  /** Chains held. */
  get size(): number {
    return this.#grants.size;
  }

  /** The chain a `chainRef` names, if held. A query: the use is recorded by {@link ChainCache.put}. */
  get(ref: Uint8Array): Grant | undefined {
    return this.#grants.get(refKey(ref));
  }

  /** Holds `grant` as the most recently used chain, dropping the least recently used past the bound. */
  put(grant: Grant): void {
    const key = refKey(grant.chainHash);
    this.#grants.delete(key);
    this.#grants.set(key, grant);
    while (this.#grants.size > this.#capacity)
      this.#grants.delete(this.#grants.keys().next().value as string);
  }

  /** Forgets every chain (an anchor changed: chains verified with a removed key must not be accepted). */
  clear(): void {
    this.#grants.clear();
  }
}
