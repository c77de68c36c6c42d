/**
 * Reads the third-party vectors vendored in `protocol/vectors/third-party/` (origin, version and licence in
 * its SOURCES.md; SPEC.md [TANDEM-VEC-2]). Inside the repository, so that a fresh clone tests with nothing
 * beside it.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder holding `wycheproof/` and `cose-wg/`. */
export const THIRD_PARTY_VECTORS = resolve(dirname(fileURLToPath(import.meta.url)), '../vectors/third-party');

export function readJson<T>(...parts: string[]): T {
  return JSON.parse(readFileSync(join(THIRD_PARTY_VECTORS, ...parts), 'utf8')) as T;
}

export function listJson(...parts: string[]): string[] {
  return readdirSync(join(THIRD_PARTY_VECTORS, ...parts))
    .filter((f) => f.endsWith('.json'))
    .sort();
}
