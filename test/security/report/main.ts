/**
 * `npm run report:security`: the attack catalogue with each row's verdict, then the latest fuzz and crash
 * totals; exits 1 when any row fails (its test missing, skipped or failed), when a run found anything, or
 * when there is no run to report (issue 7 §2).
 *
 *     npm run report:security
 *     npm run report:security -- --fuzz long.json --fuzz short.json --crash .tandem-tmp/crash-summary.json
 *     npm run report:security -- --vitest-json FILE     # verdicts from an existing vitest JSON report
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseCatalogue, testFiles, verdicts } from './catalogue.js';
import type { VitestJson } from './catalogue.js';

const root = join(import.meta.dirname, '..', '..', '..');
const tmp = join(root, '.tandem-tmp');

let args;
try {
  args = parseArgs({
    options: {
      catalogue: { type: 'string' },
      fuzz: { type: 'string', multiple: true },
      crash: { type: 'string' },
      'vitest-json': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  }).values;
} catch (e) {
  process.stderr.write(`ERR_USAGE: ${(e as Error).message}\n`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(
    'usage: npm run report:security -- [--catalogue FILE] [--fuzz FILE]... [--crash FILE] [--vitest-json FILE]\n',
  );
  process.exit(0);
}

const cataloguePath = args.catalogue ?? join(root, 'test', 'security', 'CATALOGUE.md');
const rows = parseCatalogue(readFileSync(cataloguePath, 'utf8'));
const failures: string[] = [];
if (rows.length === 0) failures.push(`${cataloguePath} has no attack rows`);

let report: VitestJson = { testResults: [] };
if (args['vitest-json'] !== undefined) {
  report = JSON.parse(readFileSync(args['vitest-json'], 'utf8')) as VitestJson;
} else {
  const files = testFiles(rows).filter((f) => existsSync(join(root, f)));
  if (files.length > 0) {
    mkdirSync(tmp, { recursive: true });
    const out = join(tmp, 'security-vitest.json');
    process.stderr.write(`report:security: running ${files.length} test file(s) the catalogue names...\n`);
    spawnSync(
      process.execPath,
      [
        join(root, 'node_modules', 'vitest', 'vitest.mjs'),
        'run',
        '--reporter=json',
        `--outputFile=${out}`,
        ...files,
      ],
      { cwd: root, stdio: ['ignore', 'ignore', 'ignore'] },
    );
    if (existsSync(out)) report = JSON.parse(readFileSync(out, 'utf8')) as VitestJson;
    else failures.push('vitest wrote no JSON report');
  }
}

const cell = (s: string) => s.replace(/\|/g, '\\|');
const results = verdicts(rows, report, root);
let section: string | undefined;
for (const v of results) {
  if (v.row.section !== section) {
    section = v.row.section;
    process.stdout.write(
      `\n## ${section || 'Attacks'}\n\n| id | attack | enters at | expected status | test | verdict |\n| --- | --- | --- | --- | --- | --- |\n`,
    );
  }
  const tests = v.row.tests.map((t) => `${t.file} > ${t.title}`).join(' ; ');
  process.stdout.write(
    `| ${v.row.id} | ${cell(v.row.attack)} | ${cell(v.row.entersAt)} | ${cell(v.row.expected)} | ${cell(tests)} | ${v.pass ? 'PASS' : `FAIL: ${cell(v.why ?? '')}`} |\n`,
  );
  if (!v.pass) failures.push(`${v.row.id}: ${v.why}`);
}
const passed = results.filter((v) => v.pass).length;
process.stdout.write(`\ncatalogue: ${passed}/${results.length} rows pass\n`);

interface FuzzSummary {
  ok: boolean;
  finishedAt: string;
  runsPerTarget: number;
  seed: number;
  totals: { inputs: number; crashes: number; hangs: number; unexpected: number; unlocks: number };
  targets: {
    target: string;
    inputs: number;
    crashes: number;
    hangs: number;
    unexpected: number;
    unlocks: number;
    ms: number;
  }[];
}
interface CrashSummary {
  ok: boolean;
  finishedAt: string;
  runs: number;
  kills: number;
  boots: number;
  ms: number;
  acknowledged: { unlocks: number; revocations: number; alerts: number; records: number };
  violations: string[];
}

function load<T>(path: string, what: string, how: string): T | undefined {
  if (!existsSync(path)) {
    failures.push(`no ${what} at ${path}: run ${how}`);
    process.stdout.write(`\n${what}: none at ${path} (run ${how})\n`);
    return undefined;
  }
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

// Several fuzz summaries may be given (--fuzz A --fuzz B): e.g. a long run of some targets and a shorter one of
// the rest.
for (const file of args.fuzz ?? [join(tmp, 'fuzz-summary.json')]) {
  const fuzz = load<FuzzSummary>(file, 'fuzz summary', '`npm run fuzz`');
  if (!fuzz) continue;
  process.stdout.write(
    `\n## Fuzzing (${fuzz.finishedAt}, ${fuzz.runsPerTarget} inputs per target, seed ${fuzz.seed})\n\n` +
      '| target | inputs | crashes | hangs | unexpected exceptions | unlocks | seconds |\n| --- | --- | --- | --- | --- | --- | --- |\n',
  );
  for (const t of fuzz.targets) {
    process.stdout.write(
      `| ${t.target} | ${t.inputs} | ${t.crashes} | ${t.hangs} | ${t.unexpected} | ${t.unlocks} | ${(t.ms / 1000).toFixed(0)} |\n`,
    );
  }
  const s = fuzz.totals;
  process.stdout.write(
    `| total | ${s.inputs} | ${s.crashes} | ${s.hangs} | ${s.unexpected} | ${s.unlocks} | |\n`,
  );
  if (!fuzz.ok) failures.push(`the fuzz run in ${file} found something (see .tandem-tmp/fuzz-findings/)`);
}
const crash = load<CrashSummary>(
  args.crash ?? join(tmp, 'crash-summary.json'),
  'crash summary',
  '`npm run fuzz -- --crash 500`',
);
if (crash) {
  const a = crash.acknowledged;
  process.stdout.write(
    `\n## Crash safety (${crash.finishedAt})\n\n` +
      `${crash.runs} runs, ${crash.kills} SIGKILLs, ${crash.boots} boots checked in ${(crash.ms / 1000).toFixed(0)} s; ` +
      `acknowledged before the kills: ${a.unlocks} unlocks, ${a.revocations} revocation updates, ${a.alerts} alerts, ` +
      `${a.records} outbox records; violations: ${crash.violations.length}\n`,
  );
  for (const v of crash.violations.slice(0, 20)) process.stdout.write(`- ${v}\n`);
  if (!crash.ok) failures.push(`the crash runs found ${crash.violations.length} violation(s)`);
}

if (failures.length > 0) {
  process.stdout.write(`\nFAIL (${failures.length}):\n${failures.map((f) => `- ${f}`).join('\n')}\n`);
  process.exit(1);
}
process.stdout.write('\nPASS: every catalogue row proved, fuzz and crash runs clean\n');
