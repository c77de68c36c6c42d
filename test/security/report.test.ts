// `npm run report:security` reads the attack catalogue and decides each row from vitest's JSON report: a row
// passes only if every test it names ran and passed. Rows other helpers append in new sections must parse.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCatalogue, testFiles, verdicts } from './report/catalogue.js';
import type { VitestJson } from './report/catalogue.js';

const MD = `# Attack catalogue

Some prose, a | pipe, and a table that is not a catalogue:

| a | b |
| --- | --- |
| x | y |

## Replay

| id | attack | enters at | expected status | test |
| --- | --- | --- | --- | --- |
| REPLAY-1 | replay | GATT request | CHALLENGE_UNKNOWN | \`test/security/a.test.ts > replayed: CHALLENGE_UNKNOWN\` |
| POP-1 | copied \\| token | GATT request | POP_INVALID | test/security/a.test.ts > copied ; test/security/b.test.ts > also copied |

### Clock attacks (appended later by another helper)

| id | attack | enters at | expected status | test | note |
| --- | --- | --- | --- | --- | --- |
| CLOCK-1 | old beacon | GATT delivery | TIME_UNCERTAIN | test/security/c.test.ts > old beacon | extra column |
| CLOCK-2 | skipped | GATT delivery | TIME_UNCERTAIN | test/security/a.test.ts > skipped one |
| CLOCK-3 | missing title | GATT delivery | TIME_UNCERTAIN | test/security/a.test.ts > not there |
| CLOCK-4 | no test | GATT delivery | TIME_UNCERTAIN | |
`;

const REPORT: VitestJson = {
  testResults: [
    {
      name: '/repo/test/security/a.test.ts',
      assertionResults: [
        {
          title: 'replayed: CHALLENGE_UNKNOWN',
          fullName: 'replay replayed: CHALLENGE_UNKNOWN',
          status: 'passed',
        },
        { title: 'copied', fullName: 'x copied', status: 'passed' },
        { title: 'skipped one', fullName: 'x skipped one', status: 'skipped' },
      ],
    },
    {
      name: '/repo/test/security/b.test.ts',
      assertionResults: [{ title: 'also copied', fullName: 'also copied', status: 'failed' }],
    },
  ],
};

describe('report:security: the catalogue and its verdicts', () => {
  it('parses attack rows in any section, skips other tables and prose, keeps escaped pipes and extra columns', () => {
    const rows = parseCatalogue(MD);
    expect(rows.map((r) => r.id)).toEqual(['REPLAY-1', 'POP-1', 'CLOCK-1', 'CLOCK-2', 'CLOCK-3', 'CLOCK-4']);
    expect(rows[0]!.tests).toEqual([
      { file: 'test/security/a.test.ts', title: 'replayed: CHALLENGE_UNKNOWN' },
    ]);
    expect(rows[1]!.attack).toBe('copied | token');
    expect(rows[1]!.tests).toHaveLength(2);
    expect(rows[2]!.section).toBe('Clock attacks (appended later by another helper)');
    expect(testFiles(rows)).toEqual([
      'test/security/a.test.ts',
      'test/security/b.test.ts',
      'test/security/c.test.ts',
    ]);
  });

  it('a row passes only if every test it names ran and passed: failed, skipped, missing file, missing title and no test all fail', () => {
    const v = verdicts(parseCatalogue(MD), REPORT, '/repo');
    expect(v.map((x) => [x.row.id, x.pass, x.why])).toEqual([
      ['REPLAY-1', true, undefined],
      ['POP-1', false, '"also copied" failed'],
      ['CLOCK-1', false, 'test/security/c.test.ts did not run (missing file?)'],
      ['CLOCK-2', false, '"skipped one" skipped'],
      ['CLOCK-3', false, 'no test titled "not there" in test/security/a.test.ts'],
      ['CLOCK-4', false, 'names no test'],
    ]);
  });

  it('the repository catalogue parses: unique ids, every row names an existing test file under test/', () => {
    const root = join(import.meta.dirname, '..', '..');
    const rows = parseCatalogue(readFileSync(join(import.meta.dirname, 'CATALOGUE.md'), 'utf8'));
    expect(rows.length).toBeGreaterThanOrEqual(30);
    expect(new Set(rows.map((r) => r.id)).size).toBe(rows.length);
    for (const f of testFiles(rows)) expect(() => readFileSync(join(root, f))).not.toThrow();
  });
});
