/**
 * The owner-facing event feed: every event the cloud stores (alerts, gaps, forks, forgeries, epoch changes,
 * state changes, revocation acknowledgements) is published here after it is stored, and the sharing API's
 * server-sent events (`GET /api/v1/events`) follow it.
 *
 * A subscriber that resumes (`after` = the SSE `Last-Event-ID`) first receives the stored events after that id
 * from the store, then live ones, with neither a gap nor a duplicate between the two: the live listener is
 * registered *before* the store is read, live events are held while the catch-up runs, and each subscriber
 * remembers which ids it was given. An event stored and published by another process (a second bridge
 * instance) reaches this feed through {@link EventFeed.poll}.
 */
import type { CloudEvent, CloudStore } from './store/types.js';

/** Events read from the store per page during a catch-up. */
const PAGE = 500;
/** Most stored events one catch-up replays; a subscriber further behind resumes from the newest. */
const MAX_CATCH_UP = 50_000;
/** Ids each subscriber remembers above its contiguous watermark (events published out of id order). */
const MAX_REMEMBERED = 10_000;

interface Subscriber {
  readonly filter: (lockId: string) => boolean;
  readonly listener: (e: CloudEvent) => void;
  /** Live events held while the catch-up runs; undefined once live. */
  held: CloudEvent[] | undefined;
  /** Every id at or below this was delivered or skipped. */
  floor: number;
  /** Ids above `floor` already delivered. */
  readonly seen: Set<number>;
  closed: boolean;
}

/** Live owner events with gap-free catch-up from the store. One instance per process. */
export class EventFeed {
  readonly #store: CloudStore;
  readonly #subscribers = new Set<Subscriber>();
  /** Highest id published or polled, where {@link poll} continues. */
  #high = 0;
  #polling: Promise<void> | undefined;

  constructor(store: CloudStore) {
    this.#store = store;
  }

  /** Publishes an event that has been stored (it carries its store id). Never throws. */
  publish(e: CloudEvent): void {
    if (e.id > this.#high) this.#high = e.id;
    for (const s of this.#subscribers) {
      if (s.closed || !s.filter(e.lockId)) continue;
      if (s.held !== undefined) s.held.push(e);
      else deliver(s, e);
    }
  }

  /**
   * Calls `listener` for every event whose lock passes `filter`: with `after` (a Last-Event-ID), first the
   * stored events with a greater id, oldest first, then live ones; without it, live ones only. Returns a
   * function that stops the subscription (idempotent). A listener that throws is not called again.
   */
  subscribe(
    filter: (lockId: string) => boolean,
    after: number | undefined,
    listener: (e: CloudEvent) => void,
  ): () => void {
    const s: Subscriber = {
      filter,
      listener,
      held: after === undefined ? undefined : [],
      floor: after ?? 0,
      seen: new Set(),
      closed: false,
    };
    this.#subscribers.add(s);
    const stop = () => {
      s.closed = true;
      this.#subscribers.delete(s);
    };
    if (after !== undefined) {
      this.#catchUp(s, after).catch(() => {
        // The store failed: go live rather than hold events for ever; the client's next reconnect (with its
        // Last-Event-ID) catches up again.
        this.#goLive(s);
      });
    }
    return stop;
  }

  /**
   * Publishes the stored events this process has not seen yet (those another bridge instance stored), at most
   * `limit`. The cloud process may call it on a timer; concurrent calls share one read.
   */
  poll(limit = PAGE): Promise<void> {
    this.#polling ??= (async () => {
      try {
        const events = await this.#store.listEvents({ after: this.#high, limit });
        for (const e of events) this.publish(e);
      } finally {
        this.#polling = undefined;
      }
    })();
    return this.#polling;
  }

  /** Number of live subscriptions (for tests and metrics). */
  get size(): number {
    return this.#subscribers.size;
  }

  async #catchUp(s: Subscriber, after: number): Promise<void> {
    let cursor = after;
    for (let read = 0; read < MAX_CATCH_UP && !s.closed;) {
      const page = await this.#store.listEvents({ after: cursor, limit: PAGE });
      for (const e of page) {
        if (s.closed) return;
        if (s.filter(e.lockId)) deliver(s, e);
        cursor = e.id;
      }
      read += page.length;
      if (page.length < PAGE) break;
    }
    this.#goLive(s);
  }

  #goLive(s: Subscriber): void {
    const held = s.held ?? [];
    s.held = undefined;
    for (const e of held) {
      if (s.closed) return;
      deliver(s, e);
    }
  }
}

function deliver(s: Subscriber, e: CloudEvent): void {
  if (s.closed || e.id <= s.floor || s.seen.has(e.id)) return;
  s.seen.add(e.id);
  // Move the watermark over the ids delivered in a row, so that `seen` holds only the out-of-order ones.
  while (s.seen.has(s.floor + 1)) s.seen.delete(++s.floor);
  if (s.seen.size > MAX_REMEMBERED) {
    // Forget the older half: an event that old arriving now for the first time is taken as delivered.
    const ids = [...s.seen].sort((a, b) => a - b);
    const cut = ids[Math.floor(ids.length / 2)]!;
    for (const id of ids) if (id <= cut) s.seen.delete(id);
    s.floor = cut;
  }
  try {
    s.listener(e);
  } catch {
    s.closed = true;
  }
}
