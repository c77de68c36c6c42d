/** Rider key files (gateway/src/key-file.ts): mode 0600, atomic writes, refusals with fix-it text. */
import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJwk, generateKeyPair } from '../../protocol/src/keys.js';
import {
  KeyFileChainRefs,
  newKeyFile,
  readKeyFile,
  serializeKeyFile,
  writeKeyFile,
} from '../src/key-file.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-gw-keys-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('rider key file', () => {
  it('writes with mode 0600, leaves no temporary file, and reads back the key, chain and verified hashes', async () => {
    const path = join(dir, 'rider.json');
    const file = newKeyFile();
    file.locks['lock-7f3a'] = { chain: [Uint8Array.of(1, 2, 3)], verified: ['ab'.repeat(32)] };
    await writeKeyFile(path, file);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    const back = await readKeyFile(path);
    expect(back.key.publicKey.raw).toEqual(file.key.publicKey.raw);
    expect(back.locks['lock-7f3a']!.chain).toEqual([Uint8Array.of(1, 2, 3)]);
    expect(serializeKeyFile(back)).toBe(await readFile(path, 'utf8'));
  });

  it('refuses a key file readable by group or others, naming chmod 600', async () => {
    const path = join(dir, 'open.json');
    await writeKeyFile(path, newKeyFile());
    await chmod(path, 0o644);
    await expect(readKeyFile(path)).rejects.toMatchObject({
      code: 'ERR_GW_KEY_FILE',
      message: `${path}: holds a private key but is readable by others (mode 0644); run \`chmod 600 ${path}\``,
    });
  });

  it('reads a bare private JWK as a key file without locks, and refuses an Ed25519 key', async () => {
    const p256 = join(dir, 'bare.jwk.json');
    await writeFile(p256, JSON.stringify(exportJwk(generateKeyPair('ES256'))), { mode: 0o600 });
    expect((await readKeyFile(p256)).locks).toEqual({});
    const ed = join(dir, 'ed.jwk.json');
    await writeFile(ed, JSON.stringify(exportJwk(generateKeyPair('EdDSA'))), { mode: 0o600 });
    await expect(readKeyFile(ed)).rejects.toMatchObject({ code: 'ERR_GW_KEY_FILE', message: /P-256/ });
  });

  it('refuses a missing file, non-JSON and a malformed chain', async () => {
    await expect(readKeyFile(join(dir, 'none.json'))).rejects.toMatchObject({ message: /no such file/ });
    const junk = join(dir, 'junk.json');
    await writeFile(junk, 'not json', { mode: 0o600 });
    await expect(readKeyFile(junk)).rejects.toMatchObject({ message: /not a JSON rider key file/ });
    const bad = join(dir, 'bad.json');
    const jwk = exportJwk(generateKeyPair('ES256'));
    await writeFile(bad, JSON.stringify({ version: 1, key: jwk, locks: { l: { chain: ['xyz'] } } }), {
      mode: 0o600,
    });
    await expect(readKeyFile(bad)).rejects.toMatchObject({
      message: /"chain" must be a non-empty array of hex tokens/,
    });
  });

  it('keeps verified chain hashes per lock for chainRef repeats', () => {
    const file = newKeyFile();
    const refs = new KeyFileChainRefs(file);
    const h = new Uint8Array(32).fill(7);
    expect(refs.knows('lock-1', h)).toBe(false);
    refs.remember('lock-1', h);
    expect(refs.dirty).toBe(true);
    expect(refs.knows('lock-1', h)).toBe(true);
    expect(refs.knows('lock-2', h)).toBe(false);
    refs.forget('lock-1', h);
    expect(refs.knows('lock-1', h)).toBe(false);
  });
});
