/**
 * The cloud's issuer key (Ed25519): signs revocation updates, time beacons and outbox acknowledgements
 * (ARCHITECTURE.md, "Trust and keys"). The cloud keeps its keys in the encrypted keyring of `keyring.ts`, whose
 * `issuer` follows rotations; {@link loadOrCreateIssuer} is the plaintext single-file layout of earlier
 * versions, kept for callers outside the cloud process (the keyring migrates its file, `tandem cloud issuer
 * encrypt`).
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, existsSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { JsonWebKey } from 'node:crypto';
import type { PrivateKey } from '../../protocol/src/keys.js';
import { exportJwk, generateKeyPair, privateKeyFromJwk } from '../../protocol/src/keys.js';
import { CloudError } from './errors.js';

/** The issuer key and the key id that locks resolve it by ([TANDEM-REV-1]). */
export interface Issuer {
  readonly key: PrivateKey;
  /** The `kid` as bytes (UTF-8 of the JWK's "kid"). */
  readonly kid: Uint8Array;
  readonly kidText: string;
}

/** Wraps a private key with a kid derived from its public key (`cloud-` + 8 hex digits of its SHA-256). */
export function issuerFromKey(key: PrivateKey, kidText?: string): Issuer {
  const text = kidText ?? `cloud-${createHash('sha256').update(key.publicKey.raw).digest('hex').slice(0, 8)}`;
  return { key, kid: new TextEncoder().encode(text), kidText: text };
}

/**
 * @deprecated The cloud uses the encrypted keyring (`keyring.ts`). Loads the issuer key from `path`, or creates it (mode 0600, never overwriting) with its public JWK at
 * `<path without .jwk.json>.pub.jwk.json`. Throws ERR_CLOUD_KEY_FILE for a malformed or exposed file.
 */
export function loadOrCreateIssuer(path: string): Issuer {
  if (!existsSync(path)) {
    const key = generateKeyPair('EdDSA');
    const issuer = issuerFromKey(key);
    let fd: number;
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    } catch (e) {
      throw new CloudError(
        'ERR_CLOUD_KEY_FILE',
        `cannot create issuer key file ${path}: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    try {
      writeFileSync(fd, `${JSON.stringify(exportJwk(key, issuer.kidText), null, 2)}\n`);
    } finally {
      closeSync(fd);
    }
    writeFileSync(
      publicPath(path),
      `${JSON.stringify(exportJwk(key.publicKey, issuer.kidText), null, 2)}\n`,
      {
        mode: 0o644,
      },
    );
    return issuer;
  }
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new CloudError(
      'ERR_CLOUD_KEY_FILE',
      `issuer key file ${path} has mode ${mode.toString(8)}: others may read it; run chmod 600 ${path}`,
    );
  }
  let jwk: JsonWebKey;
  try {
    jwk = JSON.parse(readFileSync(path, 'utf8')) as JsonWebKey;
    const key = privateKeyFromJwk(jwk);
    if (key.alg !== 'EdDSA') throw new Error('the issuer key must be Ed25519 (EdDSA)');
    return issuerFromKey(key, typeof jwk.kid === 'string' ? jwk.kid : undefined);
  } catch (e) {
    throw new CloudError(
      'ERR_CLOUD_KEY_FILE',
      `issuer key file ${path} is not an Ed25519 private JWK: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
}

/** Where the public JWK of the issuer key at `path` lives. */
export function publicPath(path: string): string {
  return path.endsWith('.jwk.json') ? `${path.slice(0, -'.jwk.json'.length)}.pub.jwk.json` : `${path}.pub`;
}
