import createDebug from 'debug';

const debug = createDebug('tandem:hw');

/** A small listener set: `add` returns the unsubscribe function the hardware interfaces promise. */
export class Listeners<T> {
  readonly #set = new Set<(value: T) => void>();

  add(listener: (value: T) => void): () => void {
    // Wrap so that subscribing the same function twice gives two independent subscriptions.
    const entry = (value: T): void => listener(value);
    this.#set.add(entry);
    return () => {
      this.#set.delete(entry);
    };
  }

  get size(): number {
    return this.#set.size;
  }

  /**
   * Call every listener. A throwing listener must not stop the others nor unwind into driver code that is
   * in the middle of de-energising a coil, so its exception is logged and dropped.
   */
  emit(value: T): void {
    for (const listener of [...this.#set]) {
      try {
        listener(value);
      } catch (error) {
        debug('listener threw: %O', error);
      }
    }
  }

  clear(): void {
    this.#set.clear();
  }
}
