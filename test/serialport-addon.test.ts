// The lock bundle's lookup of serialport's native addon (scripts/serialport-addon.mjs): the file node-gyp-build
// picks, by its rules, for the names @serialport/bindings-cpp ships; nothing where it cannot judge.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

interface Target {
  platform: string;
  arch: string;
  libc: string;
  armv: string;
}
// Plain JavaScript of the bundle script, without declarations.
const script: string = '../scripts/serialport-addon.mjs';
const { addonPath, currentTarget } = (await import(script)) as {
  addonPath(root: string, target: Target): string | undefined;
  currentTarget(): Target;
};
const require = createRequire(import.meta.url);

const dir = mkdtempSync(join(tmpdir(), 'tandem-addon-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A package folder holding these files (relative paths). */
function pkg(...files: string[]): string {
  const root = join(dir, `p${++n}`);
  for (const f of files) {
    mkdirSync(dirname(join(root, f)), { recursive: true });
    writeFileSync(join(root, f), '');
  }
  return root;
}

const NAME = '@serialport+bindings-cpp';
const x64 = { platform: 'linux', arch: 'x64', libc: 'glibc', armv: '' };
const zeroW = { platform: 'linux', arch: 'arm', libc: 'glibc', armv: '6' };

describe('serialport addon lookup', () => {
  it('picks the prebuild of this C library on x64', () => {
    const root = pkg(`prebuilds/linux-x64/${NAME}.glibc.node`, `prebuilds/linux-x64/${NAME}.musl.node`);
    expect(addonPath(root, x64)).toBe(`${root}/prebuilds/linux-x64/${NAME}.glibc.node`);
    expect(addonPath(root, { ...x64, libc: 'musl' })).toBe(`${root}/prebuilds/linux-x64/${NAME}.musl.node`);
  });

  it('picks the ARM version of the board: armv6 on a Zero W, never armv7 code it cannot run', () => {
    const root = pkg(
      `prebuilds/linux-arm/${NAME}.armv6.glibc.node`,
      `prebuilds/linux-arm/${NAME}.armv7.glibc.node`,
      `prebuilds/linux-arm/${NAME}.armv7.musl.node`,
    );
    expect(addonPath(root, zeroW)).toBe(`${root}/prebuilds/linux-arm/${NAME}.armv6.glibc.node`);
    expect(addonPath(root, { ...zeroW, armv: '7' })).toBe(
      `${root}/prebuilds/linux-arm/${NAME}.armv7.glibc.node`,
    );
    expect(addonPath(root, { ...zeroW, armv: '8' })).toBeUndefined();
  });

  it('prefers a build from source, then the more specific and the single-architecture prebuild', () => {
    const root = pkg(
      `prebuilds/linux-x64/${NAME}.node`,
      `prebuilds/linux-x64/${NAME}.glibc.node`,
      `prebuilds/linux-x64+arm64/${NAME}.node`,
    );
    expect(addonPath(root, x64)).toBe(`${root}/prebuilds/linux-x64/${NAME}.glibc.node`);
    const built = pkg(`prebuilds/linux-x64/${NAME}.glibc.node`, 'build/Release/bindings.node');
    expect(addonPath(built, x64)).toBe(`${built}/build/Release/bindings.node`);
  });

  it('leaves to node-gyp-build what it does not judge (N-API, ABI, runtime tags) or cannot find', () => {
    expect(addonPath(pkg(`prebuilds/linux-x64/${NAME}.napi.node`), x64)).toBeUndefined();
    expect(addonPath(pkg(`prebuilds/linux-x64/${NAME}.abi115.node`), x64)).toBeUndefined();
    expect(addonPath(pkg(`prebuilds/darwin-x64/${NAME}.node`), x64)).toBeUndefined();
    expect(addonPath(join(dir, 'missing'), x64)).toBeUndefined();
  });

  it('finds the same file as node-gyp-build in the installed package on this machine', () => {
    const root = dirname(require.resolve('@serialport/bindings-cpp/package.json'));
    const gyp = require('node-gyp-build') as { resolve(dir: string): string };
    expect(addonPath(root, currentTarget())).toBe(gyp.resolve(root));
  });
});
