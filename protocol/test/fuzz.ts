/** Test helpers: a seeded fuzz loop for decoders (SPEC §10: only ProtocolError may escape). */
import { it } from 'vitest';
import { ProtocolError } from '../src/errors.js';

// Seeded PRNG (mulberry32): the fuzz loop is reproducible.
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
export function mutate(r: () => number, base: Uint8Array): Uint8Array {
  const int = (n: number) => Math.floor(r() * n);
  let b = Uint8Array.from(base);
  const ops = 1 + int(3);
  for (let k = 0; k < ops; k++) {
    const op = int(5);
    if (op === 0 && b.length > 0) b[int(b.length)]! ^= 1 << int(8);
    else if (op === 1) b = b.subarray(0, int(b.length + 1));
    else if (op === 2 && b.length > 0) b[int(b.length)] = int(256);
    else if (op === 3) {
      const at = int(b.length + 1);
      const ins = Uint8Array.from({ length: 1 + int(4) }, () => int(256));
      b = Uint8Array.from([...b.subarray(0, at), ...ins, ...b.subarray(at)]);
    } else if (b.length > 1) {
      const at = int(b.length);
      b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + 1 + int(3))]);
    }
  }
  return b;
}
export function fuzz(name: string, run: (b: Uint8Array) => unknown, seeds: Uint8Array[], seed: number): void {
  it(`fuzz ${name}: 2,000 random and mutated inputs throw only ProtocolError`, () => {
    const r = rng(seed);
    for (let i = 0; i < 2000; i++) {
      const input =
        i % 4 === 0
          ? Uint8Array.from({ length: Math.floor(r() * 80) }, () => Math.floor(r() * 256))
          : mutate(r, seeds[i % seeds.length]!);
      try {
        run(input);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
      }
    }
  });
}
