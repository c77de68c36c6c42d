// The vendored third-party vectors ([TANDEM-VEC-3]): unchanged since they were copied (the checksums of
// SOURCES.md), and the only vectors the tests read; nothing reads ../shared beside the repository.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { THIRD_PARTY_VECTORS } from './third-party-vectors.js';

const REPO = resolve(THIRD_PARTY_VECTORS, '../../..');

function walk(dir: string, keep: (path: string) => boolean, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, keep, out);
    else if (keep(p)) out.push(p);
  }
  return out;
}

describe('vendored third-party vectors [TANDEM-VEC-3]', () => {
  it('every vendored JSON file matches the SHA-256 that SOURCES.md records, and SOURCES.md lists them all', () => {
    const sources = readFileSync(join(THIRD_PARTY_VECTORS, 'SOURCES.md'), 'utf8');
    const listed = new Map(
      [...sources.matchAll(/^([0-9a-f]{64}) {2}\.\/(\S+)$/gm)].map((m) => [m[2]!, m[1]!] as const),
    );
    const files = walk(THIRD_PARTY_VECTORS, (p) => p.endsWith('.json')).map((p) =>
      relative(THIRD_PARTY_VECTORS, p),
    );
    expect(files.sort()).toEqual([...listed.keys()].sort());
    for (const f of files) {
      const sum = createHash('sha256')
        .update(readFileSync(join(THIRD_PARTY_VECTORS, f)))
        .digest('hex');
      expect(sum, f).toBe(listed.get(f));
    }
  });

  it('no source or test file reads ../shared: a fresh clone tests with nothing beside it', () => {
    const code = walk(REPO, (p) => /\.(ts|mts|js|mjs|cjs)$/.test(p));
    expect(code.length).toBeGreaterThan(50);
    const offenders = code.filter((p) =>
      /shared\/vectors|['"`]\.\.\/shared|\.\.\/\.\.\/shared/.test(readFileSync(p, 'utf8')),
    );
    expect(offenders.map((p) => relative(REPO, p))).toEqual([]);
  });
});
