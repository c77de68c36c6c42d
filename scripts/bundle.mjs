#!/usr/bin/env node
// Bundles the `tandem` CLI and the lock runtime into dist/bundle/ with esbuild: one ES module file per entry,
// not split into shared chunks (split, the lock's peak RSS was 4 MB higher: 54.6 MB against 50.7 MB, for no
// gain in start time; V8 compiles functions lazily, so the commands a run does not use cost little). Why
// bundle at all: Node resolves and compiles ~150 modules
// of ours and cbor-x/debug one by one at start-up; on a Pi Zero W, where Node alone takes over a second to
// start, that is the difference between a lock that comes back after a crash at once or noticeably later
// (npm run bench -- firmware, runtime.start_ratio). Native and hardware-facing packages stay external:
// bleno/noble (the virtual HCI radio hooks their require of bluetooth-hci-socket) and serialport.
// Runs after tsc in `npm run build` (and so in `npm ci`); where esbuild has no binary for the platform, it
// says so and bin/tandem.js falls back to tsc's output in dist/.
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
let esbuild;
try {
  esbuild = await import('esbuild');
} catch (e) {
  console.warn(`bundle: esbuild is not usable here (${e.message}); tandem runs from dist/ unbundled`);
  process.exit(0);
}
const outdir = join(root, 'dist', 'bundle');
rmSync(outdir, { recursive: true, force: true });
try {
  await esbuild.build({
    absWorkingDir: root,
    entryPoints: { main: 'cli/main.ts', runtime: 'firmware-sim/src/runtime/index.ts' },
    outdir,
    bundle: true,
    splitting: false,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    minify: true,
    sourcemap: 'linked',
    // The cloud's server packages stay external too: classic-level and better-sqlite3 find their native
    // modules relative to their own folders, node-sqlite3-wasm its .wasm file, and only `tandem cloud` loads them.
    external: [
      '@abandonware/*',
      'serialport',
      '@serialport/*',
      // mqtt (MQTT.js and its streams) is loaded only by a lock whose config has an mqtt section, after start.
      'mqtt',
      'aedes',
      'aedes-*',
      'mqemitter-redis',
      'level',
      'classic-level',
      'pg',
      'better-sqlite3',
      'node-sqlite3-wasm',
    ],
    // CommonJS dependencies inside an ES module bundle need `require`.
    banner: {
      js: "import { createRequire as __tandemRequire } from 'node:module'; const require = __tandemRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
} catch (e) {
  rmSync(outdir, { recursive: true, force: true });
  console.warn(`bundle: esbuild failed (${e.message}); tandem runs from dist/ unbundled`);
  process.exit(0);
}
console.log(`bundle: dist/bundle/ written`);
