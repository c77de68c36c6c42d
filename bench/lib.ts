/**
 * The benchmark harness: what a group reports and how it measures.
 *
 * The benchmark machine is shared and noisy (2 cores, other jobs), so absolute times drift by tens of per cent
 * between runs. Goals are therefore stated as ratios between two operations measured side by side in one run:
 * {@link compare} alternates them in interleaved rounds, so that a slow stretch of the machine slows both
 * and cancels out of each round's ratio; the median over rounds discards the rounds a GC pause or another
 * process spoiled.
 */

/** A goal a measurement is held to: its value must be at most (`<=`) or at least (`>=`) `value`. */
export interface Goal {
  readonly op: '<=' | '>=';
  readonly value: number;
}

/** The value must not exceed `value`. */
export function atMost(value: number): Goal {
  return { op: '<=', value };
}

/** The value must reach at least `value`. */
export function atLeast(value: number): Goal {
  return { op: '>=', value };
}

/** One number a group reports. */
export interface Measurement {
  /** Dotted, stable name (`token.size_ratio_vs_jwt`): later runs and dashboards compare by it. */
  readonly name: string;
  readonly value: number;
  /** `ratio`, `bytes`, `count`, `ns`, ... */
  readonly unit: string;
  /** Null when the number is informative only. */
  readonly goal: Goal | null;
  /** How the number came about, for a reader: rounds, spread, absolute times, where time goes. */
  readonly note?: string;
}

/** What a group is handed when it runs. */
export interface BenchContext {
  /** Smoke-test mode (`--quick`): few short rounds. The numbers are then only indicative. */
  readonly quick: boolean;
  /** Reports one measurement; the runner prints it at once. */
  report(measurement: Measurement): void;
}

/** A bench group: one file `bench/<name>.ts`, registered in `bench/groups.ts`. */
export interface BenchGroup {
  /** The name `npm run bench -- <name>` selects. */
  readonly name: string;
  readonly description: string;
  run(ctx: BenchContext): void | Promise<void>;
}

/** True when the value meets its goal; null when there is none. */
export function goalMet(m: Measurement): boolean | null {
  if (m.goal === null) return null;
  return m.goal.op === '<=' ? m.value <= m.goal.value : m.value >= m.goal.value;
}

/** The goal as printed and as put in JSON: `"<= 0.5"`, or null. */
export function formatGoal(goal: Goal | null): string | null {
  return goal === null ? null : `${goal.op} ${goal.value}`;
}

// Results of the measured operations are stored here so that the engine cannot drop a call whose result
// nobody reads (dead-code elimination would otherwise make a pure operation look free). A module-level
// array escapes every value put in it; the counter makes the sink observable from outside.
const sink: unknown[] = new Array<unknown>(8);
let sinkCount = 0;

/** Keeps `value` reachable so that the call producing it cannot be optimised away. */
export function consume(value: unknown): void {
  sink[sinkCount & 7] = value;
  sinkCount++;
}

/** How many results the harness has consumed so far. */
export function sinkSize(): number {
  return sinkCount;
}

/** Options of {@link compare}. */
export interface CompareOptions {
  /** Recorded rounds. Default 101 (odd: a true median). */
  readonly rounds?: number;
  /** Rounds run first and thrown away. Default 10. */
  readonly warmupRounds?: number;
  /** Slices per round: each side is timed this many times, alternating with the other. Default 8. */
  readonly slices?: number;
  /** Target duration of one slice of one side, in milliseconds; sets its iterations. Default 0.5. */
  readonly sliceMs?: number;
  /** Both operations run untimed for about this long first, so that calibration sees optimised code. */
  readonly warmupMs?: number;
}

/** The outcome of {@link compare}. */
export interface Comparison {
  /** Median over rounds of the per-round ratio time-per-call(A) / time-per-call(B). */
  readonly ratio: number;
  readonly minRatio: number;
  readonly maxRatio: number;
  /** Median nanoseconds per call of A and of B (absolute: only indicative on a shared machine). */
  readonly nsA: number;
  readonly nsB: number;
  readonly rounds: number;
  readonly slices: number;
  /** Calls of A and of B per slice. */
  readonly iterationsA: number;
  readonly iterationsB: number;
}

/** Options for `--quick`: enough to exercise the code, not to trust the numbers. */
export const QUICK: CompareOptions = { rounds: 5, warmupRounds: 1, slices: 2, sliceMs: 0.2, warmupMs: 5 };

function timeLoop(op: () => unknown, iterations: number): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) consume(op());
  return Number(process.hrtime.bigint() - start);
}

/** The median of `values` (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const s = [...values].sort((x, y) => x - y);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

// The first calls of an operation include compilation and one-off set-up (an Intl formatter, a parsed
// key); calibrating on them would size the slices for code that is not the code being measured.
function warmUp(a: () => unknown, b: () => unknown, ms: number): void {
  const until = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
  while (process.hrtime.bigint() < until) {
    for (let i = 0; i < 8; i++) {
      consume(a());
      consume(b());
    }
  }
}

// Calls per slice so that one slice of `op` lasts about `sliceMs`: long enough that the timer's resolution
// and its own cost (tens of ns) do not matter. Each trial keeps the fastest of three timings, so that a
// burst of load during calibration does not shrink the slices.
function calibrate(op: () => unknown, sliceMs: number): number {
  const target = sliceMs * 1e6;
  let n = 1;
  for (;;) {
    const t = Math.min(timeLoop(op, n), timeLoop(op, n), timeLoop(op, n));
    if (t >= target || n >= 1 << 24) return n;
    n = t <= 0 ? n * 16 : Math.max(n * 2, Math.ceil((n * target) / t));
  }
}

/**
 * Measures A against B in one run. Each round times A and B in `slices` alternating slices (AB, BA, AB, ...
 * so that neither side always runs on a cache or frequency state the other left behind) and keeps, per side,
 * the fastest slice: on a shared machine another process preempts this one for milliseconds at a time, and
 * that time lands on whichever slice is running; the fastest of a side's slices is the one nobody
 * disturbed. The round's ratio is A's time per call over B's. Reports the median ratio over rounds with its
 * extremes, and the median absolute time per call of each side.
 */
export function compare(a: () => unknown, b: () => unknown, options: CompareOptions = {}): Comparison {
  const roundCount = options.rounds ?? 101;
  const warmupRounds = options.warmupRounds ?? 10;
  const slices = options.slices ?? 8;
  const sliceMs = options.sliceMs ?? 0.5;
  warmUp(a, b, options.warmupMs ?? 100);
  const iterationsA = calibrate(a, sliceMs);
  const iterationsB = calibrate(b, sliceMs);
  const { record, summarize } = rounds();
  for (let r = 0; r < warmupRounds + roundCount; r++) {
    let ta = Infinity;
    let tb = Infinity;
    for (let s = 0; s < slices; s++) {
      if ((r + s) % 2 === 0) {
        ta = Math.min(ta, timeLoop(a, iterationsA));
        tb = Math.min(tb, timeLoop(b, iterationsB));
      } else {
        tb = Math.min(tb, timeLoop(b, iterationsB));
        ta = Math.min(ta, timeLoop(a, iterationsA));
      }
    }
    if (r >= warmupRounds) record(ta / iterationsA, tb / iterationsB);
  }
  return summarize({ rounds: roundCount, slices, iterationsA, iterationsB });
}

// The per-round results of a comparison and their summary, shared by the synchronous and asynchronous forms.
function rounds(): {
  record: (nsA: number, nsB: number) => void;
  summarize: (shape: Pick<Comparison, 'rounds' | 'slices' | 'iterationsA' | 'iterationsB'>) => Comparison;
} {
  const ratios: number[] = [];
  const perA: number[] = [];
  const perB: number[] = [];
  return {
    record(nsA, nsB) {
      ratios.push(nsA / nsB);
      perA.push(nsA);
      perB.push(nsB);
    },
    summarize: (shape) => ({
      ratio: median(ratios),
      minRatio: Math.min(...ratios),
      maxRatio: Math.max(...ratios),
      nsA: median(perA),
      nsB: median(perB),
      ...shape,
    }),
  };
}

/** One side of {@link compareAsync}: `run(n)` does its own untimed set-up, then times n calls and returns ns. */
export interface Side {
  /** Most calls per slice (for example, the challenges a lock holds at once). */
  readonly maxCalls: number;
  run(n: number): Promise<number>;
}

/** A synchronous operation as a {@link Side}. */
export function syncSide(op: () => unknown): Side {
  return { maxCalls: 1 << 24, run: (n) => Promise.resolve(timeLoop(op, n)) };
}

/**
 * An asynchronous operation: `prepare(n)` (untimed) makes the inputs of n calls, `op(i)` is timed call by
 * call with `await`, `after()` (untimed) tidies up.
 */
export function asyncSide(
  maxCalls: number,
  prepare: (n: number) => void | Promise<void>,
  op: (i: number) => Promise<unknown>,
  after: () => Promise<void>,
): Side {
  return {
    maxCalls,
    async run(n) {
      await prepare(n);
      const start = process.hrtime.bigint();
      for (let i = 0; i < n; i++) consume(await op(i));
      const t = Number(process.hrtime.bigint() - start);
      await after();
      return t;
    },
  };
}

async function calibrateSide(side: Side, sliceMs: number): Promise<number> {
  const target = sliceMs * 1e6;
  let n = 1;
  for (;;) {
    const t = Math.min(await side.run(n), await side.run(n), await side.run(n));
    if (t >= target || n >= side.maxCalls) return n;
    n = Math.min(side.maxCalls, t <= 0 ? n * 16 : Math.max(n * 2, Math.ceil((n * target) / t)));
  }
}

/** {@link compare} (same defaults, alternation, fastest slice, median) for asynchronous {@link Side}s. */
export async function compareAsync(a: Side, b: Side, options: CompareOptions = {}): Promise<Comparison> {
  const roundCount = options.rounds ?? 101;
  const warmupRounds = options.warmupRounds ?? 10;
  const slices = options.slices ?? 8;
  const sliceMs = options.sliceMs ?? 0.5;
  const until = process.hrtime.bigint() + BigInt(Math.round((options.warmupMs ?? 100) * 1e6));
  while (process.hrtime.bigint() < until) {
    await a.run(Math.min(4, a.maxCalls));
    await b.run(Math.min(4, b.maxCalls));
  }
  const iterationsA = await calibrateSide(a, sliceMs);
  const iterationsB = await calibrateSide(b, sliceMs);
  const { record, summarize } = rounds();
  for (let r = 0; r < warmupRounds + roundCount; r++) {
    let ta = Infinity;
    let tb = Infinity;
    for (let s = 0; s < slices; s++) {
      const first = (r + s) % 2 === 0 ? a : b;
      const t1 = await first.run(first === a ? iterationsA : iterationsB);
      const second = first === a ? b : a;
      const t2 = await second.run(second === a ? iterationsA : iterationsB);
      ta = Math.min(ta, first === a ? t1 : t2);
      tb = Math.min(tb, first === a ? t2 : t1);
    }
    if (r >= warmupRounds) record(ta / iterationsA, tb / iterationsB);
  }
  return summarize({ rounds: roundCount, slices, iterationsA, iterationsB });
}

/** Formats nanoseconds for a note: `812 ns`, `57.3 µs`, `4.20 ms`. */
export function formatNs(ns: number): string {
  if (ns < 1_000) return `${ns.toFixed(0)} ns`;
  if (ns < 1_000_000) return `${(ns / 1_000).toFixed(1)} µs`;
  return `${(ns / 1_000_000).toFixed(2)} ms`;
}

/** A standard note for a comparison: spread and absolute times, naming the two sides (A and B). */
export function comparisonNote(c: Comparison, nameA: string, nameB: string): string {
  return (
    `median of ${c.rounds} rounds, each the fastest of ${c.slices} slices (${c.iterationsA} A, ${c.iterationsB} B calls) ` +
    `(min ${c.minRatio.toFixed(3)}, max ${c.maxRatio.toFixed(3)}); ` +
    `A ${nameA} ${formatNs(c.nsA)}/call, B ${nameB} ${formatNs(c.nsB)}/call`
  );
}
