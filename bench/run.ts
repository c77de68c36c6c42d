/**
 * `npm run bench [-- [--json] [--quick] [group ...]]`: runs the bench groups of `bench/groups.ts` (all of
 * them, or those named) and prints their measurements, as a table for people or, with `--json`, as one JSON
 * object per line: `{"name","value","unit","goal","met"}` plus `"note"` when there is one.
 *
 * Goals are reported, not enforced: a missed goal still exits 0, so that the numbers of every group are
 * always printed. Exit 1 when a group throws (its numbers would be missing), 2 for a usage error.
 */
import { groups } from './groups.js';
import type { BenchGroup, Measurement } from './lib.js';
import { formatGoal, goalMet } from './lib.js';

const USAGE = 'usage: npm run bench -- [--json] [--quick] [group ...]';

function listGroups(): string {
  return groups.map((g) => `  ${g.name.padEnd(16)} ${g.description}`).join('\n');
}

function usageError(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\ngroups:\n${listGroups()}\n`);
  process.exit(2);
}

interface Options {
  readonly json: boolean;
  readonly quick: boolean;
  readonly selected: readonly BenchGroup[];
}

function parseArgs(argv: readonly string[]): Options {
  let json = false;
  let quick = false;
  const names: string[] = [];
  for (const arg of argv) {
    if (arg === '--json') json = true;
    else if (arg === '--quick') quick = true;
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\ngroups:\n${listGroups()}\n`);
      process.exit(0);
    } else if (arg.startsWith('-')) usageError(`unknown option ${arg}`);
    else names.push(arg);
  }
  const selected = names.map((name) => {
    const group = groups.find((g) => g.name === name);
    return group ?? usageError(`unknown bench group "${name}"`);
  });
  return { json, quick, selected: selected.length > 0 ? selected : groups };
}

function jsonLine(m: Measurement): string {
  return JSON.stringify({
    name: m.name,
    value: m.value,
    unit: m.unit,
    goal: formatGoal(m.goal),
    met: goalMet(m),
    ...(m.note === undefined ? {} : { note: m.note }),
  });
}

function formatValue(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(3);
}

function table(rows: readonly Measurement[]): string {
  const cells = rows.map((m) => {
    const met = goalMet(m);
    return [
      m.name,
      formatValue(m.value),
      m.unit,
      formatGoal(m.goal) ?? '-',
      met === null ? '' : met ? '✓' : '✗',
    ];
  });
  const header = ['name', 'value', 'unit', 'goal', 'met'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[], note: string) =>
    [...c.map((v, i) => (i === 1 ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))), note]
      .join('  ')
      .trimEnd();
  return [line(header, 'note'), ...cells.map((c, i) => line(c, rows[i]!.note ?? ''))].join('\n');
}

const options = parseArgs(process.argv.slice(2));
let failed = false;
for (const group of options.selected) {
  const rows: Measurement[] = [];
  const started = process.hrtime.bigint();
  try {
    await group.run({
      quick: options.quick,
      report(m) {
        rows.push(m);
        if (options.json) process.stdout.write(`${jsonLine(m)}\n`);
      },
    });
  } catch (err) {
    failed = true;
    process.stderr.write(
      `bench group "${group.name}" failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
  }
  if (!options.json) {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    process.stdout.write(
      `\n${group.name}: ${group.description} (${seconds.toFixed(1)} s${options.quick ? ', --quick' : ''})\n`,
    );
    if (rows.length > 0) process.stdout.write(`${table(rows)}\n`);
  }
}
process.exitCode = failed ? 1 : 0;
