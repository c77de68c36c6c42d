/**
 * Seeded pseudo-random source for packet loss and advertising jitter, so that a run with the same seed and
 * the same host behaviour loses exactly the same packets (mulberry32: small, fast, and good enough for
 * simulation; not for cryptography).
 */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}
