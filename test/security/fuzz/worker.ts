/**
 * One fuzz target in a worker thread, so that the long run's parent can watch it: progress every 1,000
 * inputs, and the current input in shared memory, where the parent reads it back when the worker hangs.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runTarget } from './runner.js';
import { targetNamed } from './targets.js';

interface Data {
  readonly target: string;
  readonly runs: number;
  readonly seed: number;
  /** [0] = run index, [1] = input length; the bytes follow at offset 8. */
  readonly current: SharedArrayBuffer;
}

const data = workerData as Data;
const header = new Int32Array(data.current, 0, 2);
const bytes = new Uint8Array(data.current, 8);
const target = targetNamed(data.target);
if (target === undefined) throw new Error(`unknown fuzz target ${data.target}`);
const totals = await runTarget(target, {
  runs: data.runs,
  seed: data.seed,
  onProgress: (inputs) => parentPort!.postMessage({ progress: inputs }),
  onInput: (input, run) => {
    const n = Math.min(input.length, bytes.length);
    bytes.set(input.subarray(0, n));
    Atomics.store(header, 1, n);
    Atomics.store(header, 0, run);
  },
});
parentPort!.postMessage({ totals });
