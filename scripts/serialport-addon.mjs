// How the lock's bundle finds serialport's native addon (scripts/bundle.mjs, issue 8 §2): the file
// node-gyp-build would pick in the installed `@serialport/bindings-cpp`, chosen by the same rules, for the
// names that package ships (`prebuilds/<platform>-<arch>/@serialport+bindings-cpp[.armv<N>][.glibc|.musl].node`,
// or a `build/Release` made from source). node-gyp-build itself is the fallback for anything else.
//
// Why not node-gyp-build every time: on Node 22 its probing was what made V8 optimise `node:path`'s
// normalizeString with TurboFan while the lock started, and that alone took ~5.5 MB of peak RSS (TurboFan's
// code pages; 60.5 MB against 55 MB without, Node 22.12, `--trace-opt`). Node 20 does not cross that line.
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

// In the bundle, import.meta.url is the bundle's file: packages resolve from its node_modules.
const require = createRequire(import.meta.url);

/** @param {string} dir */
function list(dir) {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The addon file in `root` for this process, or undefined where a name has a tag this does not judge (runtime,
 * ABI, N-API, libuv: node-gyp-build decides those) or nothing matches.
 *
 * @param {string} root the package folder
 * @param {{ platform: string, arch: string, libc: string, armv: string }} target
 */
export function addonPath(root, target) {
  for (const build of ['build/Release', 'build/Debug']) {
    const file = list(`${root}/${build}`).find((name) => name.endsWith('.node'));
    if (file !== undefined) return `${root}/${build}/${file}`;
  }
  // prebuilds/<platform>-<arch>[+<arch>...]: single-architecture folders first, as node-gyp-build.
  const tuple = list(`${root}/prebuilds`)
    .map((name) => ({ name, parts: name.split('-') }))
    .filter(({ parts }) => parts.length === 2 && parts[0] === target.platform)
    .map(({ name, parts }) => ({ name, archs: parts[1].split('+') }))
    .filter(({ archs }) => archs.includes(target.arch))
    .sort((a, b) => a.archs.length - b.archs.length)[0];
  if (tuple === undefined) return undefined;
  const candidates = [];
  for (const file of list(`${root}/prebuilds/${tuple.name}`)) {
    const tags = file.split('.');
    if (tags.pop() !== 'node') continue;
    let specificity = 0;
    let fits = true;
    for (const tag of tags.slice(1)) {
      if (tag.startsWith('armv')) fits &&= tag.slice(4) === target.armv;
      else if (tag === 'glibc' || tag === 'musl') fits &&= tag === target.libc;
      else return undefined;
      specificity++;
    }
    if (fits) candidates.push({ file, specificity });
  }
  const winner = candidates.sort((a, b) => b.specificity - a.specificity)[0];
  return winner === undefined ? undefined : `${root}/prebuilds/${tuple.name}/${winner.file}`;
}

/** This process's target, read as node-gyp-build reads it. */
export function currentTarget() {
  const arch = process.env.npm_config_arch || process.arch;
  const platform = process.env.npm_config_platform || process.platform;
  const variables = (process.config && process.config.variables) || {};
  return {
    platform,
    arch,
    libc: process.env.LIBC || (platform === 'linux' && existsSync('/etc/alpine-release') ? 'musl' : 'glibc'),
    armv: process.env.ARM_VERSION || (arch === 'arm64' ? '8' : String(variables.arm_version ?? '')),
  };
}

export function loadBinding() {
  const root = dirname(require.resolve('@serialport/bindings-cpp/package.json'));
  const file = addonPath(root, currentTarget());
  // node-gyp-build as bindings-cpp itself would load it: from its own folder.
  return file === undefined ? createRequire(`${root}/package.json`)('node-gyp-build')(root) : require(file);
}
