/** Shared fixtures for protocol tests: keys and a typical delegated token (SPEC.md §5.3 example). */
import { randomBytes } from 'node:crypto';
import type { TrustAnchor } from '../src/chain.js';
import { generateKeyPair } from '../src/keys.js';
import type { PrivateKey } from '../src/keys.js';
import type { MintClaims } from '../src/token.js';
import { mintToken } from '../src/token.js';

export const NOW = 1_795_000_000; // 2026-11-18, a Wednesday
export const LOCK = 'lock-7f3a';

export interface World {
  issuer: PrivateKey;
  issuerKid: Uint8Array;
  owner: PrivateKey;
  ownerKid: Uint8Array;
  rider: PrivateKey;
  friend: PrivateKey;
  anchors: TrustAnchor[];
  lookup: (kid: Uint8Array) => TrustAnchor | undefined;
}

export function world(): World {
  const issuer = generateKeyPair('EdDSA');
  const owner = generateKeyPair('ES256');
  const issuerKid = Uint8Array.of(0x01);
  const ownerKid = Uint8Array.of(0x0a);
  const anchors: TrustAnchor[] = [
    { kid: issuerKid, key: issuer.publicKey, role: 'issuer', name: 'tandem' },
    { kid: ownerKid, key: owner.publicKey, role: 'owner', name: 'adam' },
  ];
  return {
    issuer,
    issuerKid,
    owner,
    ownerKid,
    rider: generateKeyPair('ES256'),
    friend: generateKeyPair('ES256'),
    anchors,
    lookup: (kid) => anchors.find((a) => Buffer.compare(a.kid, kid) === 0),
  };
}

export function claims(w: World, over: Partial<MintClaims> = {}): MintClaims {
  return {
    iss: 'tandem',
    sub: 'adam',
    aud: LOCK,
    iat: NOW - 60,
    nbf: NOW - 60,
    exp: NOW + 7 * 86_400,
    cti: randomBytes(12),
    cnf: w.rider.publicKey,
    scope: ['unlock', 'status'],
    rider: 'bianca',
    schedule: [{ days: 0b0011111, start: 7 * 60, end: 20 * 60 }],
    ...over,
  };
}

export function issued(w: World, over: Partial<MintClaims> = {}): Uint8Array {
  return mintToken(claims(w, over), w.issuer, w.issuerKid);
}
