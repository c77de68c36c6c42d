/**
 * The physical medium shared by advertising and connections: who can hear whom, the one loss roll of every
 * over-the-air packet, advertising jitter, and delivery to a host after the configured latency.
 */
import type { RadioClock } from './clock.js';
import type { LeController } from './controller.js';
import type { Tunables } from './options.js';
import { SeededRandom } from './prng.js';

export class Medium {
  readonly clock: RadioClock;
  private readonly rng: SeededRandom;
  private readonly settings: () => Readonly<Tunables>;
  private readonly isClosed: () => boolean;
  private readonly lastDelivery = new Map<LeController, number>();

  constructor(clock: RadioClock, seed: number, settings: () => Readonly<Tunables>, isClosed: () => boolean) {
    this.clock = clock;
    this.rng = new SeededRandom(seed);
    this.settings = settings;
    this.isClosed = isClosed;
  }

  /** Current radio settings. */
  get options(): Readonly<Tunables> {
    return this.settings();
  }

  get closed(): boolean {
    return this.isClosed();
  }

  /** Both devices present and in range. */
  reachable(a: LeController, b: LeController): boolean {
    return !a.removed && !b.removed && a.inRange && b.inRange && !this.isClosed();
  }

  /**
   * The loss roll of one over-the-air packet, the only one in the radio: true if it gets through. Every
   * call draws from the seeded generator (when loss is on), so a run is reproducible from its seed.
   */
  survives(): boolean {
    const lossRate = this.settings().lossRate;
    if (lossRate <= 0) return true;
    return this.rng.next() >= lossRate;
  }

  /** One over-the-air packet from a to b: true if received. */
  received(a: LeController, b: LeController): boolean {
    return this.reachable(a, b) && this.survives();
  }

  /** advDelay: 0..10 ms pseudo-random added to each advertising interval (Vol 6 Part B 4.4.2.2.1). */
  advDelayMs(): number {
    return Math.floor(this.rng.next() * 10_000) / 1000;
  }

  /** Deliver to a host after the configured latency, keeping each host's packets in order. */
  deliver(ctrl: LeController, packet: Buffer): void {
    const now = this.clock.now();
    const at = Math.max(now + this.settings().latencyMs, this.lastDelivery.get(ctrl) ?? 0);
    this.lastDelivery.set(ctrl, at);
    if (at <= now) ctrl.toHost(packet);
    else this.clock.setTimeout(() => ctrl.toHost(packet), at - now);
  }
}
