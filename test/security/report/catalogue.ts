/**
 * The attack catalogue (test/security/CATALOGUE.md) as data, and each row's verdict from a vitest JSON
 * report. The parser is tolerant: any markdown around the tables, any number of tables and sections; a row
 * counts when its first cell is an id such as `REPLAY-1` and it has the five columns
 * `id | attack | enters at | expected status | test`. The test cell is `path/file.test.ts > test title`
 * (backticks optional); several tests are separated by ` ; ` and must all pass.
 */

export interface TestRef {
  readonly file: string;
  readonly title: string;
}

export interface CatalogueRow {
  readonly id: string;
  readonly attack: string;
  readonly entersAt: string;
  readonly expected: string;
  readonly tests: readonly TestRef[];
  /** The section heading above the row ('' before the first). */
  readonly section: string;
  /** Line number in the file (1-based). */
  readonly line: number;
}

export interface Verdict {
  readonly row: CatalogueRow;
  readonly pass: boolean;
  /** Why it failed: the first test that did not run and pass. */
  readonly why?: string;
}

/** What vitest's JSON reporter says about one test (`--reporter=json`). */
export interface VitestAssertion {
  readonly title: string;
  readonly fullName: string;
  readonly status: string;
}
export interface VitestJson {
  readonly testResults: readonly {
    readonly name: string;
    readonly assertionResults: readonly VitestAssertion[];
  }[];
}

// An attack id: capitals and digits, dash-separated words (`CLOCK-3`, `REPLAY`); a header row never matches.
const ID = /^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*$/;

function cells(line: string): string[] {
  // Split on pipes that are not escaped; drop the empty cells outside the outer pipes.
  const parts = line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/);
  return parts.map((c) => c.trim().replace(/\\\|/g, '|'));
}

const unquote = (s: string) => s.replace(/^`+|`+$/g, '').trim();

/** Parses a test cell: `file > title` entries separated by ` ; `. */
export function parseTests(cell: string): TestRef[] {
  return cell
    .split(/\s;\s/)
    .map((part) => unquote(part.trim()))
    .filter((part) => part.length > 0)
    .map((part) => {
      const at = part.indexOf(' > ');
      if (at < 0) return { file: part, title: '' };
      return { file: unquote(part.slice(0, at)), title: unquote(part.slice(at + 3)) };
    });
}

/** Every attack row of a catalogue markdown file. */
export function parseCatalogue(markdown: string): CatalogueRow[] {
  const rows: CatalogueRow[] = [];
  let section = '';
  markdown.split(/\r?\n/).forEach((text, i) => {
    const heading = /^#{1,6}\s+(.*)$/.exec(text);
    if (heading) {
      section = heading[1]!.trim();
      return;
    }
    if (!text.trim().startsWith('|')) return;
    const c = cells(text);
    if (c.length < 5 || !ID.test(unquote(c[0]!))) return;
    rows.push({
      id: unquote(c[0]!),
      attack: c[1]!,
      entersAt: c[2]!,
      expected: c[3]!,
      tests: parseTests(c[4]!),
      section,
      line: i + 1,
    });
  });
  return rows;
}

/** The test files the rows name (to hand to vitest). */
export function testFiles(rows: readonly CatalogueRow[]): string[] {
  return [...new Set(rows.flatMap((r) => r.tests.map((t) => t.file)))].sort();
}

/** A row passes only if every test it names ran and passed; missing, skipped or todo tests fail it. */
export function verdicts(rows: readonly CatalogueRow[], report: VitestJson, root: string): Verdict[] {
  const norm = (p: string) => p.replace(/\\/g, '/').replace(/^\.\//, '');
  const byFile = new Map<string, readonly VitestAssertion[]>();
  for (const f of report.testResults) {
    let rel = norm(f.name);
    const r = norm(root).replace(/\/$/, '') + '/';
    if (rel.startsWith(r)) rel = rel.slice(r.length);
    byFile.set(rel, f.assertionResults);
  }
  const seenIds = new Set<string>();
  return rows.map((row) => {
    if (seenIds.has(row.id)) return { row, pass: false, why: `id ${row.id} appears twice` };
    seenIds.add(row.id);
    if (row.tests.length === 0) return { row, pass: false, why: 'names no test' };
    for (const t of row.tests) {
      const results = byFile.get(norm(t.file));
      if (results === undefined) return { row, pass: false, why: `${t.file} did not run (missing file?)` };
      if (t.title === '') return { row, pass: false, why: `no test title after "${t.file} >"` };
      const hit = results.filter((a) => a.title === t.title || a.fullName === t.title);
      if (hit.length === 0) return { row, pass: false, why: `no test titled "${t.title}" in ${t.file}` };
      const bad = hit.find((a) => a.status !== 'passed');
      if (bad !== undefined) return { row, pass: false, why: `"${t.title}" ${bad.status}` };
    }
    return { row, pass: true };
  });
}
