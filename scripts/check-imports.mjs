#!/usr/bin/env node
// Enforces the folder rules of the architecture brief ("Folders", mirrored in README.md "What is where"): which top-level folder may import which.
// protocol/ imports nothing of ours and does no I/O; firmware-sim/, gateway/ and cloud-bridge/ never import
// each other; gateway/ may use hardware/ only for the virtual radio. And no import cycle of any length
// within our source (issue 12; STYLE.md: a module that another needs only a few hooks of gets an interface
// for them). Runs in `npm test`.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
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
// protocol/src/lib/ holds the building blocks the sections share; its public names are re-exported by
// protocol/src/index.ts (issue 12: a public surface that is used, and nothing more).
const PROTOCOL_INTERNAL = /^protocol\/src\/lib\//;
// gateway/ may use hardware/ only for the virtual radio (ARCHITECTURE.md, "Folders"), and its Clock: the one
// clock interface of the project (issue 12), whose timer half the phone side waits with.
const GATEWAY_HARDWARE_ALLOWED = /^hardware\/src\/(virtual-radio|ble|clock)\b/;

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
// Static imports (including `import type` and `export ... from`): what a module needs to be understood.
// Dynamic `import()` is left out, being how a module loads an optional part lazily.
const STATIC_RE = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm;
// Known cycles, each with the issue that removes it; the check warns once one of them is gone, so that
// the entry goes with it. Cycles are named by their files, sorted, joined with " <-> ".
// Empty since issue 12 item 2 split the console's commands from the runtime; a cycle that has to stay for a
// while is added here as ['a.ts <-> b.ts', 'issue that removes it'].
const KNOWN_CYCLES = new Map([]);
/** Files imported by relative specifier, by importing file (all relative to the root, '/'-separated). */
const graph = new Map();
const posix = (p) => p.split(sep).join('/');

/** The file a relative specifier names: TypeScript's `.js` -> `.ts` mapping, or a folder's index. */
function resolveSpec(file, spec) {
  const base = resolve(dirname(file), spec);
  const stem = base.replace(/\.(m?js)$/, '');
  for (const candidate of [
    `${stem}.ts`,
    `${stem}.mts`,
    base,
    join(base, 'index.ts'),
    join(base, 'index.js'),
  ]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return posix(relative(root, candidate));
  }
  return undefined;
}

/** Strongly connected components with more than one file (Tarjan), i.e. every import cycle. */
function cycles(g) {
  let index = 0;
  const stack = [];
  const on = new Set();
  const idx = new Map();
  const low = new Map();
  const out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const scc = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (g.get(v) ?? new Set()).has(v)) out.push(scc.sort());
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return out;
}

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
    const edges = new Set();
    for (const m of text.matchAll(STATIC_RE)) {
      const spec = m[1] ?? m[2];
      if (!spec.startsWith('.')) continue;
      const target = resolveSpec(file, spec);
      if (target !== undefined) edges.add(target);
    }
    graph.set(posix(relative(root, file)), edges);
    for (const m of text.matchAll(SPEC_RE)) {
      const spec = m[1] ?? m[2] ?? m[3] ?? m[4];
      const rel = relative(root, file);
      if (spec.startsWith('.')) {
        const target = relative(root, resolve(dirname(file), spec));
        const top = target.split(sep)[0];
        if (top === folder || !(top in ALLOWED)) continue;
        if (top === 'protocol' && PROTOCOL_INTERNAL.test(target.split(sep).join('/'))) {
          problems.push(
            `${rel}: protocol/src/lib/ is internal to protocol/; import its public names from protocol/src/index.ts ("${spec}")`,
          );
        } else if (!ALLOWED[folder].includes(top)) {
          problems.push(`${rel}: ${folder}/ may not import ${top}/ ("${spec}")`);
        } else if (
          folder === 'gateway' &&
          top === 'hardware' &&
          !GATEWAY_HARDWARE_ALLOWED.test(target.split(sep).join('/'))
        ) {
          problems.push(
            `${rel}: gateway/ may import hardware/ only for the virtual radio and the clock ("${spec}")`,
          );
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
const seen = new Set();
for (const scc of cycles(graph)) {
  const name = scc.join(' <-> ');
  seen.add(name);
  if (!KNOWN_CYCLES.has(name)) {
    problems.push(
      `import cycle: ${name} (give the module that needs a few hooks of another an interface for them)`,
    );
  }
}
for (const [name, issue] of KNOWN_CYCLES) {
  // A warning, not a failure: the branch that removes the cycle need not touch this file to stay green.
  if (!seen.has(name)) {
    console.warn(`check-imports: known import cycle ${name} is gone (${issue}): remove it from KNOWN_CYCLES`);
  }
}
if (problems.length > 0) {
  console.error(`check-imports: ${problems.length} forbidden import(s):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(
  `check-imports: ${files} files follow the folder rules of ARCHITECTURE.md, no import cycle` +
    (KNOWN_CYCLES.size > 0 ? ` but the ${KNOWN_CYCLES.size} known one(s) of KNOWN_CYCLES` : ''),
);
