/** Locates ../shared/vectors (beside the repository in development and in CI). */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const SHARED_VECTORS = [
  resolve(here, '../../../shared/vectors'),
  resolve(here, '../../shared/vectors'),
].find((p) => existsSync(p));

export function readJson<T>(...parts: string[]): T {
  if (SHARED_VECTORS === undefined) throw new Error('../shared/vectors not found beside the repository');
  return JSON.parse(readFileSync(join(SHARED_VECTORS, ...parts), 'utf8')) as T;
}

export function listJson(...parts: string[]): string[] {
  if (SHARED_VECTORS === undefined) throw new Error('../shared/vectors not found beside the repository');
  return readdirSync(join(SHARED_VECTORS, ...parts))
    .filter((f) => f.endsWith('.json'))
    .sort();
}
