/**
 * Runs async tasks one at a time in call order. Every store mutates its in-memory state only after the
 * matching write is durable; two overlapping calls (two increments of one counter) would otherwise both read
 * the old state and one would be lost.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  /** Run `task` after every task queued before it has settled; resolves or rejects with its result. */
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    // The chain must survive a rejected task, so the next task waits on settlement only.
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
