#!/usr/bin/env node
// Bundles the `tandem` CLI and the lock into dist/bundle/ with esbuild, in two builds (issue 8 §2, start time
// and memory of the lock as it runs on a Pi):
//
// - The CLI (`main.js`), split: the dispatcher loads only the chunks of the command it runs. Unsplit, one
//   1.5 MB file held every command, the cloud's included, and `tandem lock` (what systemd runs on the Pi)
//   took 0.7-0.9 s and 84 MB peak RSS just to import it, twice `node -e 0`'s 40 MB.
// - The lock (`lock.js`), one file: `tandem lock` (cli/lock.ts) and the runtime's entry
//   (firmware-sim/src/runtime/index.ts) with everything they load, so that a lock resolves and compiles one
//   module instead of ~150 (split into chunks, the runtime alone took 4-5 MB more peak RSS and ~50 ms more).
//   The CLI's dispatcher imports it at run time (`import('./lock.js')` stays external), and
//   bench/start-lock.mjs times it. Two classes must be one across the two builds, because the dispatcher
//   reports errors by `instanceof`: CliError (cli/args.ts) and ProtocolError (protocol/src/errors.ts). Both
//   are entries of the CLI build (`args.js`, `errors.js`) and external imports of the lock build.
//
// Why bundle at all: Node resolves and compiles every module of ours and of cbor-x/debug one by one at
// start-up; on a Pi Zero W, where Node alone takes over a second to start, that is the difference between a
// lock that comes back after a crash at once or noticeably later (npm run bench -- firmware,
// runtime.start_ratio). Native modules stay external: bleno's HCI socket (the virtual HCI radio hooks its
// require) and serialport's addon; so do noble (phone side only) and the cloud's packages.
// Runs after tsc in `npm run build` (and `npm run bundle`); where esbuild has no binary for the platform, it
// says so and bin/tandem.js falls back to tsc's output in dist/.
import { rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
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

const common = {
  absWorkingDir: root,
  outdir,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  sourcemap: 'linked',
  // The cloud's server packages stay external too: classic-level and better-sqlite3 find their native
  // modules relative to their own folders, node-sqlite3-wasm its .wasm file, and only `tandem cloud` loads them.
  external: [
    // bleno's and noble's native HCI socket (the virtual radio's hook replaces it in the simulator and bench),
    // and noble, which only the phone side (`tandem unlock`) loads. bleno's JavaScript is bundled into the lock.
    '@abandonware/bluetooth-hci-socket',
    '@abandonware/noble',
    '@abandonware/noble/*',
    // bleno's macOS binding (native, not built here); Tandem's lock runs on Linux.
    './native/binding',
    // argon2 (the cloud's password hashes) loads a platform package's .node file: only `tandem cloud` needs it.
    '@node-rs/*',
    '@serialport/bindings-cpp',
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
};

/**
 * Source files that one build leaves to a file of the bundle folder, by absolute path. `out` is relative to
 * the bundle folder; an import from a module that lands in `chunks/` (every command but the dispatcher's entry
 * file `main`, since the dispatcher imports commands lazily) reaches it one folder up.
 */
function externalTo(files, entries = []) {
  const byPath = new Map(Object.entries(files).map(([src, out]) => [resolve(root, src), out]));
  const entryFiles = new Set(entries.map((e) => resolve(root, e)));
  return {
    name: 'tandem-bundle-externals',
    setup(build) {
      build.onResolve({ filter: /^\.\.?\// }, (args) => {
        const abs = resolve(args.resolveDir, args.path.replace(/\.js$/, '.ts'));
        const out = byPath.get(abs);
        if (out === undefined) return undefined;
        const fromChunk = build.initialOptions.splitting === true && !entryFiles.has(args.importer);
        return { path: fromChunk ? `.${out}` : out, external: true };
      });
    },
  };
}

// serialport as the lock needs it (issue 8 §2): its `serialport` package loads every parser it ships and
// `@serialport/bindings-cpp`'s index loads the macOS and Windows bindings and a second copy of `debug` beside
// the Linux one, ~20 CommonJS modules resolved and compiled from node_modules at start (5.5 MB of peak RSS
// and ~1/3 of `node -e 0`'s start time with the console on, `start-lock.mjs imports`). The lock runs on
// Linux (a Pi): the bundle holds the two classes it uses (SerialPort with the Linux binding, and
// SerialPortMock for simulations) and the Linux binding's JavaScript; the native addon itself still loads from
// node_modules, from the installed package's folder (below). Loading `serialport` still loads
// the native addon, as on a Pi: the bench's mock UART (start-lock.mjs) pays for it too.
const SERIALPORT_FOR_THE_LOCK = `
const { SerialPortStream } = require('@serialport/stream');
const { MockBinding } = require('@serialport/binding-mock');
const { LinuxBinding } = require('@serialport/bindings-cpp/dist/linux.js');
class SerialPort extends SerialPortStream {
  static list = LinuxBinding.list;
  static binding = LinuxBinding;
  constructor(options, openCallback) { super({ binding: LinuxBinding, ...options }, openCallback); }
}
class SerialPortMock extends SerialPortStream {
  static list = MockBinding.list;
  static binding = MockBinding;
  constructor(options, openCallback) { super({ binding: MockBinding, ...options }, openCallback); }
}
module.exports = { SerialPort, SerialPortMock };
`;
// bindings-cpp finds its addon relative to its own file (node-gyp-build(__dirname + '/..')), which in a bundle
// would be dist/bundle/: the addon is looked up in the installed package instead, at run time, by the rules
// of node-gyp-build without its cost on Node 22 (scripts/serialport-addon.mjs).
const SERIALPORT_ADDON = `import { loadBinding } from ${JSON.stringify(join(root, 'scripts', 'serialport-addon.mjs'))};
export const binding = loadBinding();`;

/** Replaces serialport's entry and bindings-cpp's addon loader for the lock build (see above). */
const serialportForTheLock = {
  name: 'tandem-serialport-linux',
  setup(build) {
    build.onResolve({ filter: /^serialport$/ }, () => ({
      path: 'serialport',
      namespace: 'tandem-serialport',
    }));
    build.onResolve({ filter: /^\.\/serialport-bindings$/ }, (args) =>
      /[\\/]@serialport[\\/]bindings-cpp[\\/]/.test(args.importer)
        ? { path: 'addon', namespace: 'tandem-serialport' }
        : undefined,
    );
    // One copy of `debug` (bindings-cpp pins its own 4.4.0 in a nested node_modules).
    build.onResolve({ filter: /^debug$/ }, (args) =>
      args.importer.includes('node_modules')
        ? build.resolve('debug', { kind: args.kind, resolveDir: root })
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'tandem-serialport' }, (args) => ({
      contents: args.path === 'addon' ? SERIALPORT_ADDON : SERIALPORT_FOR_THE_LOCK,
      loader: 'js',
      resolveDir: root,
    }));
  },
};

// cbor-x's optional addon, `cbor-extract` (issue 8 §2, start time of the lock). cbor-x tries it when it loads
// and falls back to its JavaScript decoder when that throws. Bundled, the attempt cannot succeed: cbor-extract
// finds its addon relative to `__dirname`, which an ES module bundle does not have, so it threw a
// ReferenceError every time, after node-gyp-build-optional-packages had probed the C library at load
// (detect-libc reads /usr/bin/ldd and the process report): ~2-5 ms of CPU at every start for nothing.
// In both builds `cbor-extract` is an empty module: cbor-x sees no extractor and takes the path it took
// anyway (tsc's unbundled dist/ still tries the addon, where it can be found).
const withoutCborExtract = {
  name: 'tandem-without-cbor-extract',
  setup(build) {
    build.onResolve({ filter: /^cbor-extract$/ }, () => ({
      path: 'cbor-extract',
      namespace: 'tandem-stub',
    }));
    build.onLoad({ filter: /.*/, namespace: 'tandem-stub' }, () => ({
      contents: 'module.exports = undefined;',
      loader: 'js',
    }));
  },
};

try {
  await esbuild.build({
    ...common,
    entryPoints: { main: 'cli/main.ts', args: 'cli/args.ts', errors: 'protocol/src/errors.ts' },
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    plugins: [
      withoutCborExtract,
      externalTo({ 'cli/lock.ts': './lock.js' }, ['cli/main.ts', 'cli/args.ts', 'protocol/src/errors.ts']),
    ],
  });
  await esbuild.build({
    ...common,
    // `tandem lock` (cli/lock.ts) and the runtime's exports (what bench/start-lock.mjs drives), one file.
    stdin: {
      contents:
        "export * from './firmware-sim/src/runtime/index.ts';\n" +
        "export { claimRadioSocket, run } from './cli/lock.ts';\n" +
        // For the bench's stand-ins (start-lock.mjs): the UART's mock binding and the virtual radio, the same
        // copies `tandem lock --simulate` uses, both loaded only when called.
        "export { loadSystemBleno } from './firmware-sim/src/ble/bleno-lock-peripheral.ts';\n" +
        "export { SerialportConsole, loadMockBinding, mockPortOpener } from './hardware/src/serial/serialport-console.ts';\n" +
        "export const loadVirtualRadio = () => import('./hardware/src/virtual-radio/index.ts');\n",
      resolveDir: root,
      sourcefile: 'lock-entry.ts',
      loader: 'ts',
    },
    outdir: undefined,
    outfile: join(outdir, 'lock.js'),
    splitting: false,
    // bindings-cpp's Linux JavaScript is bundled (plugin above); node-gyp-build finds its addon at run time.
    external: [
      ...common.external.filter((p) => p !== '@serialport/bindings-cpp'),
      'node-gyp-build',
      '@serialport/bindings-cpp/package.json',
    ],
    plugins: [
      serialportForTheLock,
      withoutCborExtract,
      externalTo({ 'cli/args.ts': './args.js', 'protocol/src/errors.ts': './errors.js' }),
    ],
  });
} catch (e) {
  rmSync(outdir, { recursive: true, force: true });
  console.warn(`bundle: esbuild failed (${e.message}); tandem runs from dist/ unbundled`);
  process.exit(0);
}
console.log(`bundle: dist/bundle/ written`);
