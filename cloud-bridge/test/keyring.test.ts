/**
 * The issuer keyring (cloud-bridge/src/keyring.ts): encrypted at rest under TANDEM_ISSUER_SECRET, refused
 * with a coded error naming the variable when the secret is missing, malformed or wrong (never a new key),
 * plaintext only with the development flag, migrated by a command; rotation with pre-publication
 * ([TANDEM-ANCHOR-7]). Files in a temporary directory; the clock is injected.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compactDecrypt } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyAnchorUpdate, verifyAnchorUpdate } from '../../protocol/src/anchor-update.js';
import type { AnchorState } from '../../protocol/src/anchor-update.js';
import { exportJwk, generateKeyPair, publicKeyFromRaw } from '../../protocol/src/keys.js';
import { isCloudError } from '../src/errors.js';
import type { CloudErrorCode } from '../src/errors.js';
import {
  IssuerKeyring,
  KEYRING_FILE,
  LEGACY_KEY_FILE,
  generateIssuerSecret,
  parseIssuerSecret,
} from '../src/keyring.js';

const SECRET = generateIssuerSecret();
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-keyring-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** `<code>: <message>` of the CloudError `f` throws; anything else fails the test. */
function refusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (!isCloudError(e)) throw e;
    return `${e.code}: ${e.message}`;
  }
  return 'accepted';
}
const code = (f: () => unknown): CloudErrorCode | 'accepted' => refusal(f).split(':')[0] as CloudErrorCode;

describe('encrypted at rest', () => {
  it('writes each private key as a JWE (dir, A256GCM) that jose decrypts, the kid protected; mode 0600', async () => {
    const ring = IssuerKeyring.open({ dir, secret: SECRET });
    const path = join(dir, KEYRING_FILE);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const text = readFileSync(path, 'utf8');
    const d = exportJwk(ring.current.key).d!;
    expect(text).not.toContain(d);
    const stored = JSON.parse(text) as { keys: { kid: string; private: string }[] };
    const { plaintext, protectedHeader } = await compactDecrypt(
      stored.keys[0]!.private,
      parseIssuerSecret(SECRET),
    );
    expect(protectedHeader).toMatchObject({ alg: 'dir', enc: 'A256GCM', kid: ring.current.kidText });
    expect((JSON.parse(new TextDecoder().decode(plaintext)) as { d: string }).d).toBe(d);
    // The public JWK beside it is the trust anchor locks are provisioned with.
    const pub = JSON.parse(readFileSync(join(dir, 'issuer.pub.jwk.json'), 'utf8')) as {
      kid: string;
      d?: string;
    };
    expect(pub.kid).toBe(ring.current.kidText);
    expect(pub.d).toBeUndefined();
  });

  it('reopens with the same secret to the same key (a restart), hex or base64url', () => {
    const first = IssuerKeyring.open({ dir, secret: SECRET });
    const b64 = Buffer.from(SECRET, 'hex').toString('base64url');
    const again = IssuerKeyring.open({ dir, secret: b64 });
    expect(again.current.kidText).toBe(first.current.kidText);
    expect(Buffer.from(again.current.key.publicKey.raw)).toEqual(
      Buffer.from(first.current.key.publicKey.raw),
    );
    expect(again.encrypted).toBe(true);
  });

  it('a wrong secret is an error naming the variable, and the file is left as it was', () => {
    IssuerKeyring.open({ dir, secret: SECRET });
    const before = readFileSync(join(dir, KEYRING_FILE));
    expect(refusal(() => IssuerKeyring.open({ dir, secret: generateIssuerSecret() }))).toMatch(
      /^ERR_CLOUD_SECRET_WRONG: TANDEM_ISSUER_SECRET does not decrypt issuer key cloud-[0-9a-f]{8} in .*no new key was made/,
    );
    expect(readFileSync(join(dir, KEYRING_FILE))).toEqual(before);
  });

  it('a missing secret is refused, naming the variable and the development flag', () => {
    expect(refusal(() => IssuerKeyring.open({ dir }))).toMatch(
      /^ERR_CLOUD_SECRET_MISSING: TANDEM_ISSUER_SECRET is not set: .*--insecure-plaintext-key/,
    );
    expect(existsSync(join(dir, KEYRING_FILE))).toBe(false);
    IssuerKeyring.open({ dir, secret: SECRET });
    // An encrypted keyring needs its secret even with the development flag.
    expect(code(() => IssuerKeyring.open({ dir, insecurePlaintext: true }))).toBe('ERR_CLOUD_SECRET_MISSING');
  });

  it('a malformed secret is refused, saying what it must be', () => {
    for (const bad of ['', 'abc', 'g'.repeat(64), 'A'.repeat(44), SECRET.slice(2)]) {
      expect(
        refusal(() => IssuerKeyring.open({ dir, secret: bad })),
        bad,
      ).toMatch(
        /^ERR_CLOUD_SECRET_INVALID: TANDEM_ISSUER_SECRET must be 32 random bytes as 64 hex digits or 43 base64url/,
      );
    }
  });

  it('a ciphertext moved to another entry does not decrypt: the kid is authenticated', () => {
    const ring = IssuerKeyring.open({ dir, secret: SECRET, now: () => 1_000_000 });
    ring.rotate(60);
    const path = join(dir, KEYRING_FILE);
    const stored = JSON.parse(readFileSync(path, 'utf8')) as {
      keys: { private: string; publicKey: string }[];
    };
    const [a, b] = stored.keys;
    [a!.private, b!.private] = [b!.private, a!.private];
    writeFileSync(path, JSON.stringify(stored), { mode: 0o600 });
    expect(refusal(() => IssuerKeyring.open({ dir, secret: SECRET }))).toMatch(
      /^ERR_CLOUD_KEY_FILE: .*is not a usable JWE: its protected "kid" is "cloud-/,
    );
  });

  it('refuses a keyring others may read', () => {
    IssuerKeyring.open({ dir, secret: SECRET });
    chmodSync(join(dir, KEYRING_FILE), 0o644);
    expect(refusal(() => IssuerKeyring.open({ dir, secret: SECRET }))).toMatch(
      /^ERR_CLOUD_KEY_FILE: .*mode 644.*chmod 600/,
    );
  });
});

describe('plaintext keys: the development flag and the migration command', () => {
  it('the flag keeps keys unencrypted; without it they are refused until `issuer encrypt`', () => {
    const ring = IssuerKeyring.open({ dir, insecurePlaintext: true });
    expect(ring.encrypted).toBe(false);
    expect(code(() => IssuerKeyring.open({ dir, secret: SECRET }))).toBe('ERR_CLOUD_KEY_PLAINTEXT');
    expect(IssuerKeyring.encrypt(dir, SECRET)).toMatch(/^encrypted 1 key/);
    const again = IssuerKeyring.open({ dir, secret: SECRET });
    expect(again.current.kidText).toBe(ring.current.kidText);
    expect(readFileSync(join(dir, KEYRING_FILE), 'utf8')).not.toContain(exportJwk(ring.current.key).d!);
  });

  it('an issuer.jwk.json of earlier versions is refused, then migrated with its kid; the plaintext is gone', () => {
    const key = generateKeyPair('EdDSA');
    writeFileSync(join(dir, LEGACY_KEY_FILE), JSON.stringify(exportJwk(key, 'cloud-legacy1')), {
      mode: 0o600,
    });
    expect(refusal(() => IssuerKeyring.open({ dir, secret: SECRET }))).toMatch(
      /^ERR_CLOUD_KEY_PLAINTEXT: .*issuer\.jwk\.json holds the issuer key unencrypted; .*tandem cloud issuer encrypt/,
    );
    // Development: it still loads, but cannot rotate until migrated.
    const dev = IssuerKeyring.open({ dir, insecurePlaintext: true });
    expect(dev.current.kidText).toBe('cloud-legacy1');
    expect(code(() => dev.rotate(60))).toBe('ERR_CLOUD_KEY_PLAINTEXT');
    expect(IssuerKeyring.encrypt(dir, SECRET)).toMatch(/kid cloud-legacy1/);
    expect(existsSync(join(dir, LEGACY_KEY_FILE))).toBe(false);
    const ring = IssuerKeyring.open({ dir, secret: SECRET });
    expect(ring.current.kidText).toBe('cloud-legacy1');
    expect(Buffer.from(ring.current.key.publicKey.raw)).toEqual(Buffer.from(key.publicKey.raw));
  });
});

describe('rotation with pre-publication (TANDEM-ANCHOR-7)', () => {
  it('the new key is published during the overlap, signs after it, and the old key retires itself', () => {
    let now = 1_800_000_000_000;
    const ring = IssuerKeyring.open({ dir, secret: SECRET, now: () => now });
    const old = ring.current;
    expect(ring.anchorUpdateFor('lock-7')).toBeUndefined();
    const next = ring.rotate(3600);
    expect(ring.issuer.kidText).toBe(old.kidText);
    expect(code(() => ring.rotate(60))).toBe('ERR_CLOUD_KEY_ROTATION');

    // A lock provisioned with the old key only.
    const kid = (t: string) => new TextEncoder().encode(t);
    let lock: AnchorState = {
      version: 0,
      anchors: [
        { kid: kid(old.kidText), alg: 'EdDSA', key: old.key.publicKey.raw, role: 'issuer', name: 'tandem' },
      ],
    };
    const apply = (bytes: Uint8Array) => {
      const resolve = (k: Uint8Array) => {
        const a = lock.anchors.find((x) => Buffer.compare(x.kid, k) === 0);
        return a === undefined ? undefined : publicKeyFromRaw(a.alg, a.key);
      };
      lock = applyAnchorUpdate(lock, verifyAnchorUpdate(bytes, resolve, 'lock-7')).state;
    };
    apply(ring.anchorUpdateFor('lock-7')!);
    expect(lock.version).toBe(1);
    expect(lock.anchors.map((a) => new TextDecoder().decode(a.kid))).toEqual([old.kidText, next.kidText]);

    now += 3599_000;
    expect(ring.advance()).toBe(false);
    expect(ring.issuer.kidText).toBe(old.kidText);
    now += 1000;
    expect(ring.advance()).toBe(true);
    expect(ring.issuer.kidText).toBe(next.kidText);
    expect(ring.keys.map((k) => [k.kidText, k.state])).toEqual([
      [next.kidText, 'current'],
      [old.kidText, 'retired'],
    ]);
    apply(ring.anchorUpdateFor('lock-7')!);
    expect(lock.version).toBe(2);
    expect(lock.anchors.map((a) => new TextDecoder().decode(a.kid))).toEqual([next.kidText]);

    // A restart keeps the states; the next rotation forgets the retired key.
    const again = IssuerKeyring.open({ dir, secret: SECRET, now: () => now });
    expect(again.keys.map((k) => k.state)).toEqual(['current', 'retired']);
    expect(again.anchorVersion).toBe(2);
    again.rotate(60);
    expect(again.keys.map((k) => k.state)).toEqual(['current', 'next']);
    apply(again.anchorUpdateFor('lock-7')!);
    expect(lock.version).toBe(3);
  });

  it('a lock that missed the overlap gets the new key from one update signed by the old one', () => {
    let now = 1_800_000_000_000;
    const ring = IssuerKeyring.open({ dir, secret: SECRET, now: () => now });
    const old = ring.current;
    const next = ring.rotate(60);
    now += 60_000;
    ring.advance();
    const bytes = ring.anchorUpdateFor('lock-9')!;
    const verified = verifyAnchorUpdate(
      bytes,
      (k) => (new TextDecoder().decode(k) === old.kidText ? old.key.publicKey : undefined),
      'lock-9',
    );
    expect(verified.update.add.map((a) => new TextDecoder().decode(a.kid))).toEqual([next.kidText]);
    expect(verified.update.remove.map((k) => new TextDecoder().decode(k))).toEqual([old.kidText]);
  });
});
