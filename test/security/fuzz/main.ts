/**
 * `npm run fuzz`: the long fuzz run (issue 7 §2). Every target runs in its own worker thread for `--runs`
 * inputs (default 1,000,000); the parent prints per-target totals, writes a JSON summary and the reproducing
 * inputs of any finding, and exits 1 when anything was found. A worker that reports no progress for
 * `--hang-s` seconds is a hang: it is stopped and its current input saved.
 *
 *     npm run fuzz                                   # every target, 1,000,000 inputs each
 *     npm run fuzz -- --runs 20000 --target cbor,chain --seed 7 --jobs 2
 *     npm run fuzz -- --crash 500                    # the kill -9 crash runs instead (test/security/crash/)
 *     npm run fuzz -- --list
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { clean } from './runner.js';
import type { TargetTotals } from './runner.js';
import { TARGETS } from './targets.js';
import { runCrashCampaign } from '../crash/campaign.js';

const root = join(import.meta.dirname, '..', '..', '..');
const outDir = join(root, '.tandem-tmp');

const usage = `usage: npm run fuzz -- [--runs N] [--target a,b] [--seed S] [--jobs J] [--hang-s S] [--out FILE]
       npm run fuzz -- --crash N [--seed S] [--jobs J] [--out FILE]
       npm run fuzz -- --list`;

function fail(message: string): never {
  process.stderr.write(`ERR_USAGE: ${message}\n${usage}\n`);
  process.exit(2);
}

function uint(value: string | undefined, name: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
    fail(`--${name} must be an integer >= ${min}, got "${value}"`);
  }
  return Number(value);
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      runs: { type: 'string' },
      target: { type: 'string' },
      seed: { type: 'string' },
      jobs: { type: 'string' },
      'hang-s': { type: 'string' },
      out: { type: 'string' },
      crash: { type: 'string' },
      list: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  }).values;
} catch (e) {
  fail((e as Error).message);
}
if (parsed.help) {
  process.stdout.write(usage + '\n');
  process.exit(0);
}
if (parsed.list) {
  for (const t of TARGETS) process.stdout.write(`${t.name.padEnd(20)} ${t.description}\n`);
  process.exit(0);
}
const seed = uint(parsed.seed, 'seed', 20261205, 0);
mkdirSync(outDir, { recursive: true });

if (parsed.crash !== undefined) {
  const runs = uint(parsed.crash, 'crash', 500);
  const summary = await runCrashCampaign({
    runs,
    seed,
    lanes: uint(parsed.jobs, 'jobs', 1),
    log: (line) => process.stdout.write(line + '\n'),
  });
  const file = parsed.out ?? join(outDir, 'crash-summary.json');
  writeFileSync(file, JSON.stringify(summary, null, 2) + '\n');
  process.stdout.write(`crash summary written to ${file}\n`);
  process.exit(summary.ok ? 0 : 1);
}

const runs = uint(parsed.runs, 'runs', 1_000_000);
const jobs = uint(parsed.jobs, 'jobs', 1);
const hangMs = uint(parsed['hang-s'], 'hang-s', 120) * 1000;
const names = parsed.target === undefined ? TARGETS.map((t) => t.name) : parsed.target.split(',');
for (const n of names) {
  if (!TARGETS.some((t) => t.name === n)) fail(`unknown target "${n}"; --list shows them`);
}

function runInWorker(target: string): Promise<TargetTotals> {
  const current = new SharedArrayBuffer(8 + 65_536);
  // Loader hooks are per thread: the worker registers tsx itself before importing the TypeScript entry.
  const entry = JSON.stringify(new URL('./worker.ts', import.meta.url).href);
  const worker = new Worker(
    `import('tsx/esm/api').then(({ register }) => { register(); return import(${entry}); })`,
    { eval: true, workerData: { target, runs, seed, current } },
  );
  const started = Date.now();
  let last = Date.now();
  let inputs = 0;
  return new Promise((resolve) => {
    const hung = (message: string): TargetTotals => {
      const header = new Int32Array(current, 0, 2);
      const len = Atomics.load(header, 1);
      const input = Buffer.from(new Uint8Array(current, 8, len)).toString('hex');
      return {
        target,
        seed,
        inputs: Atomics.load(header, 0),
        crashes: 0,
        hangs: 1,
        unexpected: 0,
        unlocks: 0,
        ms: Date.now() - started,
        findings: [{ kind: 'hang', run: Atomics.load(header, 0), message, input }],
      };
    };
    const watchdog = setInterval(() => {
      if (Date.now() - last > hangMs) {
        clearInterval(watchdog);
        void worker.terminate();
        resolve(hung(`no progress for ${hangMs / 1000} s after ${inputs} inputs`));
      }
    }, 1000);
    worker.on('message', (m: { progress?: number; totals?: TargetTotals }) => {
      last = Date.now();
      if (m.progress !== undefined) {
        inputs = m.progress;
        if (inputs % 100_000 === 0) process.stdout.write(`  ${target}: ${inputs} inputs\n`);
      }
      if (m.totals) {
        clearInterval(watchdog);
        resolve(m.totals);
      }
    });
    worker.on('error', (e) => {
      clearInterval(watchdog);
      const t = hung(`the worker died: ${e.stack ?? e.message}`);
      resolve({ ...t, hangs: 0, crashes: 1, findings: [{ ...t.findings[0]!, kind: 'crash' }] });
    });
  });
}

process.stdout.write(`fuzz: ${names.length} target(s), ${runs} inputs each, seed ${seed}, ${jobs} job(s)\n`);
const startedAt = new Date().toISOString();
const results: TargetTotals[] = [];
const queue = [...names];
await Promise.all(
  Array.from({ length: Math.min(jobs, queue.length) }, async () => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      const t = await runInWorker(name);
      results.push(t);
      process.stdout.write(
        `${t.target.padEnd(20)} inputs ${String(t.inputs).padStart(9)}  crashes ${t.crashes}  hangs ${t.hangs}  ` +
          `unexpected ${t.unexpected}  unlocks ${t.unlocks}  ${(t.ms / 1000).toFixed(1)} s\n`,
      );
    }
  }),
);
results.sort((a, b) => names.indexOf(a.target) - names.indexOf(b.target));

const failed = results.filter((t) => !clean(t));
if (failed.length > 0) {
  const dir = join(outDir, 'fuzz-findings');
  mkdirSync(dir, { recursive: true });
  for (const t of failed) {
    for (const f of t.findings) {
      const file = join(dir, `${t.target}-seed${t.seed}-run${f.run}.json`);
      writeFileSync(
        file,
        JSON.stringify(
          {
            ...f,
            target: t.target,
            seed: t.seed,
            replay: `npm run fuzz -- --target ${t.target} --seed ${t.seed}`,
          },
          null,
          2,
        ) + '\n',
      );
      process.stdout.write(`FINDING ${f.kind} in ${t.target} (run ${f.run}): saved ${file}\n`);
    }
  }
}
const summary = {
  kind: 'tandem-fuzz-summary',
  startedAt,
  finishedAt: new Date().toISOString(),
  runsPerTarget: runs,
  seed,
  ok: failed.length === 0 && results.length === names.length,
  totals: results.reduce(
    (s, t) => ({
      inputs: s.inputs + t.inputs,
      crashes: s.crashes + t.crashes,
      hangs: s.hangs + t.hangs,
      unexpected: s.unexpected + t.unexpected,
      unlocks: s.unlocks + t.unlocks,
    }),
    { inputs: 0, crashes: 0, hangs: 0, unexpected: 0, unlocks: 0 },
  ),
  targets: results,
};
const file = parsed.out ?? join(outDir, 'fuzz-summary.json');
writeFileSync(file, JSON.stringify(summary, null, 2) + '\n');
process.stdout.write(
  `total: ${summary.totals.inputs} inputs, ${summary.totals.crashes} crashes, ${summary.totals.hangs} hangs, ` +
    `${summary.totals.unexpected} unexpected exceptions, ${summary.totals.unlocks} unlocks; summary in ${file}\n`,
);
process.exit(summary.ok ? 0 : 1);
