/**
 * Fixed keys for Tandem's test vectors, derived from fixed seeds so that the vectors are reproducible:
 * Ed25519 from a 32-byte seed (RFC 8032 §5.1.5, imported through PKCS#8, RFC 8410 §7), P-256 from a fixed
 * scalar. Test keys only: never provision them on a lock.
 */
import { createECDH, createHash, createPrivateKey } from 'node:crypto';
import { privateKeyFromKeyObject } from '../src/keys.js';
import type { PrivateKey } from '../src/keys.js';

const seed = (label: string) => createHash('sha256').update(`tandem test vector key: ${label}`).digest();

/** The Ed25519 key named `label`. */
export function edKey(label: string): PrivateKey {
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed(label)]);
  return privateKeyFromKeyObject('EdDSA', createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }));
}

/** The P-256 key named `label`. */
export function p256Key(label: string): PrivateKey {
  const d = seed(label);
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(d);
  const pub = ecdh.getPublicKey();
  const jwk = {
    kty: 'EC',
    crv: 'P-256',
    d: d.toString('base64url'),
    x: pub.subarray(1, 33).toString('base64url'),
    y: pub.subarray(33, 65).toString('base64url'),
  };
  return privateKeyFromKeyObject('ES256', createPrivateKey({ key: jwk, format: 'jwk' }));
}
