#!/usr/bin/env node
// Enforces the folder rules of ../shared/ARCHITECTURE.md ("Folders"): which top-level folder may import which.
// protocol/ imports nothing of ours and does no I/O; firmware-sim/, gateway/ and cloud-bridge/ never import
// each other; gateway/ may use hardware/ only for the virtual radio. Runs in `npm test`.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ALLOWED = {
  protocol: [],
  hardware: ['protocol'],
  'firmware-sim': ['protocol', 'hardware'],
  gateway: ['protocol', 'hardware'],
  'cloud-bridge': ['protocol'],
  cli: ['protocol', 'hardware', 'firmware-sim', 'gateway', 'cloud-bridge'],
  bench: ['protocol', 'hardware', 'firmware-sim', 'gateway', 'cloud-bridge'],
  test: ['protocol', 'hardware', 'firmware-sim', 'gateway', 'cloud-bridge', 'cli'],
};
// protocol/ is the wire contract: pure functions over bytes, no file, network or process access.
const PROTOCOL_FORBIDDEN_BUILTINS =
  /^(node:)?(fs|fs\/promises|net|dgram|http|https|http2|child_process|worker_threads|cluster|tls|dns|readline|os)$/;
// gateway/ may use hardware/ only for the virtual radio (ARCHITECTURE.md, "Folders").
const GATEWAY_HARDWARE_ALLOWED = /^hardware\/src\/(virtual-radio|ble)\b/;

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* walk(p);
    else if (/\.(ts|mts|js|mjs)$/.test(name)) yield p;
  }
}

const SPEC_RE =
  /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|require\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;
const problems = [];
let files = 0;
for (const folder of Object.keys(ALLOWED)) {
  const abs = join(root, folder);
  try {
    statSync(abs);
  } catch {
    continue;
  }
  for (const file of walk(abs)) {
    files++;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(SPEC_RE)) {
      const spec = m[1] ?? m[2] ?? m[3] ?? m[4];
      const rel = relative(root, file);
      if (spec.startsWith('.')) {
        const target = relative(root, resolve(dirname(file), spec));
        const top = target.split(sep)[0];
        if (top === folder || !(top in ALLOWED)) continue;
        if (!ALLOWED[folder].includes(top)) {
          problems.push(`${rel}: ${folder}/ may not import ${top}/ ("${spec}")`);
        } else if (
          folder === 'gateway' &&
          top === 'hardware' &&
          !GATEWAY_HARDWARE_ALLOWED.test(target.split(sep).join('/'))
        ) {
          problems.push(`${rel}: gateway/ may import hardware/ only for the virtual radio ("${spec}")`);
        }
      } else if (
        folder === 'protocol' &&
        !file.includes(`${sep}test${sep}`) &&
        !file.includes(`${sep}vectors${sep}`)
      ) {
        if (PROTOCOL_FORBIDDEN_BUILTINS.test(spec))
          problems.push(`${rel}: protocol/ does no I/O, but imports "${spec}"`);
      }
    }
  }
}
if (problems.length > 0) {
  console.error(`check-imports: ${problems.length} forbidden import(s):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`check-imports: ${files} files follow the folder rules of ARCHITECTURE.md`);
