// Signature layer against Wycheproof (protocol/vectors/third-party/wycheproof): Ed25519 and ECDSA P-256/SHA-256 with
// IEEE P1363 signatures, the raw r‖s format COSE uses (RFC 9053 §2.1). SPEC.md TANDEM-KEY-3.
import { describe, expect, it } from 'vitest';
import { publicKeyFromJwk, publicKeyFromRaw, verifyBytes } from '../src/keys.js';
import type { PublicKey } from '../src/keys.js';
import { readJson } from './third-party-vectors.js';

interface WTest {
  tcId: number;
  comment: string;
  msg: string;
  sig: string;
  result: 'valid' | 'invalid' | 'acceptable';
  flags: string[];
}
interface WGroup {
  publicKey: { pk?: string; uncompressed?: string };
  publicKeyJwk?: Record<string, string>;
  tests: WTest[];
}
interface WFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: WGroup[];
}

function run(file: string, keyOf: (g: WGroup) => PublicKey) {
  const data = readJson<WFile>('wycheproof', file);
  const counts = { valid: 0, invalid: 0, acceptable: 0 };
  for (const group of data.testGroups) {
    const key = keyOf(group);
    for (const t of group.tests) {
      const ok = verifyBytes(key, Buffer.from(t.msg, 'hex'), Buffer.from(t.sig, 'hex'));
      if (t.result === 'valid') expect(ok, `tcId ${t.tcId} ${t.comment}`).toBe(true);
      else if (t.result === 'invalid') expect(ok, `tcId ${t.tcId} ${t.comment}`).toBe(false);
      counts[t.result]++;
    }
  }
  expect(counts.valid + counts.invalid + counts.acceptable).toBe(data.numberOfTests);
  return counts;
}

describe('Wycheproof', () => {
  it('ed25519_test.json: every verdict as expected', () => {
    const counts = run('ed25519_test.json', (g) =>
      publicKeyFromRaw('EdDSA', Buffer.from(g.publicKey.pk!, 'hex')),
    );
    expect(counts.valid).toBeGreaterThan(0);
    expect(counts.invalid).toBeGreaterThan(0);
  });

  it('ecdsa_secp256r1_sha256_p1363_test.json: every verdict as expected', () => {
    const counts = run('ecdsa_secp256r1_sha256_p1363_test.json', (g) =>
      g.publicKeyJwk
        ? publicKeyFromJwk(g.publicKeyJwk)
        : publicKeyFromRaw('ES256', Buffer.from(g.publicKey.uncompressed!, 'hex')),
    );
    expect(counts.valid).toBeGreaterThan(0);
    expect(counts.invalid).toBeGreaterThan(0);
  });

  it('every Wycheproof P-256 key (edge cases included), compressed, decompresses natively to the same point', () => {
    const data = readJson<WFile>('wycheproof', 'ecdsa_secp256r1_sha256_p1363_test.json');
    let checked = 0;
    for (const g of data.testGroups) {
      if (g.publicKey.uncompressed === undefined) continue;
      const full = publicKeyFromRaw('ES256', Buffer.from(g.publicKey.uncompressed, 'hex'));
      const compact = publicKeyFromRaw('ES256', Uint8Array.from(full.raw)); // a fresh array: a cache miss
      const a = full.key.export({ format: 'jwk' });
      const b = compact.key.export({ format: 'jwk' });
      expect([b.x, b.y], g.publicKey.uncompressed).toEqual([a.x, a.y]);
      checked++;
    }
    expect(checked).toBeGreaterThan(10);
  });

  it('compressed and uncompressed forms of a Wycheproof key are the same key', () => {
    const data = readJson<WFile>('wycheproof', 'ecdsa_secp256r1_sha256_p1363_test.json');
    const g = data.testGroups[0]!;
    const full = publicKeyFromRaw('ES256', Buffer.from(g.publicKey.uncompressed!, 'hex'));
    const compact = publicKeyFromRaw('ES256', full.raw);
    expect(compact.raw).toHaveLength(33);
    const t = g.tests.find((x) => x.result === 'valid')!;
    expect(verifyBytes(compact, Buffer.from(t.msg, 'hex'), Buffer.from(t.sig, 'hex'))).toBe(true);
  });
});
