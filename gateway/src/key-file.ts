/**
 * The rider key file: the phone's private P-256 key as a JWK (RFC 7517) and, per lock, the token chain the
 * rider holds and the chains the lock has verified (so that a repeat unlock sends a chainRef,
 * [TANDEM-POP-6]). A phone keeps this in its secure storage; on a laptop it is a file that only its owner
 * may read:
 *
 * ```json
 * { "version": 1,
 *   "key": { "kty": "EC", "crv": "P-256", "x": "...", "y": "...", "d": "..." },
 *   "locks": { "lock-7f3a": { "chain": ["<hex token>", ...], "verified": ["<hex chain hash>"] } } }
 * ```
 *
 * A bare private JWK (what `tandem keys generate --alg ES256` writes) is read as a key file without locks.
 * Written with mode 0600, atomically (temporary file, fsync, rename, fsync of the directory: ARCHITECTURE.md
 * "the SD card can lose power mid-write"); a file readable by group or others is refused.
 */
import { randomBytes } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { PrivateKey } from '../../protocol/src/keys.js';
import { exportJwk, generateKeyPair, privateKeyFromJwk } from '../../protocol/src/keys.js';
import { GatewayError } from './errors.js';
import type { ChainRefMemory } from './lock-client.js';

/** What the rider holds for one lock. */
export interface LockEntry {
  /** The token chain, root first. */
  chain?: Uint8Array[];
  /** Hex SHA-256 chain hashes the lock has verified (after an OK). */
  verified?: string[];
}

/** A rider key file in memory. */
export interface RiderKeyFile {
  readonly key: PrivateKey;
  readonly locks: Record<string, LockEntry>;
  /** `jwk`: read from a bare private JWK, which a writer should not silently turn into a key file. */
  readonly format: 'key-file' | 'jwk';
}

const FORMAT_VERSION = 1;
const HEX = /^(?:[0-9a-f]{2})+$/;

function fail(path: string, message: string, cause?: unknown): never {
  throw new GatewayError('ERR_GW_KEY_FILE', `${path}: ${message}`, cause === undefined ? {} : { cause });
}

function parseLocks(path: string, value: unknown): Record<string, LockEntry> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    fail(path, '"locks" must be an object');
  const locks: Record<string, LockEntry> = {};
  for (const [lockId, raw] of Object.entries(value)) {
    if (typeof raw !== 'object' || raw === null) fail(path, `"locks"."${lockId}" must be an object`);
    const { chain, verified } = raw as { chain?: unknown; verified?: unknown };
    const entry: LockEntry = {};
    if (chain !== undefined) {
      if (
        !Array.isArray(chain) ||
        chain.length === 0 ||
        !chain.every((t) => typeof t === 'string' && HEX.test(t))
      ) {
        fail(path, `"locks"."${lockId}"."chain" must be a non-empty array of hex tokens`);
      }
      entry.chain = chain.map((t: string) => new Uint8Array(Buffer.from(t, 'hex')));
    }
    if (verified !== undefined) {
      if (
        !Array.isArray(verified) ||
        !verified.every((h) => typeof h === 'string' && /^[0-9a-f]{64}$/.test(h))
      ) {
        fail(path, `"locks"."${lockId}"."verified" must be an array of 32-byte hex hashes`);
      }
      entry.verified = [...verified] as string[];
    }
    locks[lockId] = entry;
  }
  return locks;
}

/**
 * Reads a rider key file. Throws ERR_GW_KEY_FILE when it is missing, readable by group or others (with the
 * `chmod 600` that fixes it), not JSON, or its key is not a private P-256 JWK.
 */
export async function readKeyFile(path: string): Promise<RiderKeyFile> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (cause) {
    fail(path, (cause as { code?: unknown }).code === 'ENOENT' ? 'no such file' : 'cannot read', cause);
  }
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    fail(path, 'is not a JSON rider key file', cause);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(path, 'is not a JSON object');
  const obj = json as { version?: unknown; key?: unknown; locks?: unknown; kty?: unknown };
  // A bare JWK (tandem keys generate) is a key file without locks.
  const jwk = (obj.kty !== undefined ? obj : obj.key) as JsonWebKey | undefined;
  // A public key is not a leaked private key: say which file was meant (issue 11 §4).
  if (typeof jwk === 'object' && jwk !== null && jwk.d === undefined && typeof jwk.kty === 'string') {
    fail(
      path,
      'is a public JWK (no "d"): the rider proves possession with the private key; give the private key file ' +
        '(e.g. bianca.jwk.json from `tandem keys generate`, not bianca.pub.jwk.json)',
    );
  }
  if ((mode & 0o077) !== 0) {
    fail(
      path,
      `holds a private key but is readable by others (mode 0${(mode & 0o777).toString(8)}); run \`chmod 600 ${path}\``,
    );
  }
  if (obj.kty === undefined && obj.version !== FORMAT_VERSION) {
    fail(path, `"version" must be ${FORMAT_VERSION}`);
  }
  if (typeof jwk !== 'object' || jwk === null) fail(path, '"key" must be a private JWK');
  let key: PrivateKey;
  try {
    key = privateKeyFromJwk(jwk);
  } catch (cause) {
    fail(path, `"key" is not a usable private JWK: ${(cause as Error).message}`, cause);
  }
  if (key.alg !== 'ES256')
    fail(path, '"key" must be a P-256 (ES256) key: riders prove possession with ES256');
  return obj.kty !== undefined
    ? { key, locks: {}, format: 'jwk' }
    : { key, locks: parseLocks(path, obj.locks), format: 'key-file' };
}

/** The JSON text of a key file. */
export function serializeKeyFile(file: RiderKeyFile): string {
  const locks: Record<string, { chain?: string[]; verified?: string[] }> = {};
  for (const [lockId, entry] of Object.entries(file.locks)) {
    locks[lockId] = {
      ...(entry.chain === undefined ? {} : { chain: entry.chain.map((t) => Buffer.from(t).toString('hex')) }),
      ...(entry.verified === undefined || entry.verified.length === 0 ? {} : { verified: entry.verified }),
    };
  }
  return JSON.stringify({ version: FORMAT_VERSION, key: exportJwk(file.key), locks }, null, 2) + '\n';
}

/**
 * Writes a key file atomically with mode 0600: a new temporary file beside it (created 0600, never widened),
 * fsync, rename over `path`, fsync of the directory so the rename itself survives a power cut.
 */
export async function writeKeyFile(path: string, file: RiderKeyFile): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const h = await open(tmp, 'wx', 0o600);
    try {
      await h.writeFile(serializeKeyFile(file));
      await h.sync();
    } finally {
      await h.close();
    }
    await rename(tmp, path);
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (cause) {
    await unlink(tmp).catch(() => undefined);
    fail(path, `cannot write: ${(cause as Error).message}`, cause);
  }
}

/** A new key file with a fresh P-256 key and no locks (not yet written). */
export function newKeyFile(): RiderKeyFile {
  return { key: generateKeyPair('ES256'), locks: {}, format: 'key-file' };
}

/**
 * A {@link ChainRefMemory} kept in a key file: which chains each lock verified survives between runs, so the
 * next `tandem unlock` sends a chainRef. `dirty` says whether the file should be written back.
 */
export class KeyFileChainRefs implements ChainRefMemory {
  dirty = false;
  constructor(private readonly file: RiderKeyFile) {}
  knows(lockId: string, hash: Uint8Array): boolean {
    return this.file.locks[lockId]?.verified?.includes(Buffer.from(hash).toString('hex')) ?? false;
  }
  remember(lockId: string, hash: Uint8Array): void {
    if (this.knows(lockId, hash)) return;
    const entry = (this.file.locks[lockId] ??= {});
    (entry.verified ??= []).push(Buffer.from(hash).toString('hex'));
    this.dirty = true;
  }
  forget(lockId: string, hash: Uint8Array): void {
    const entry = this.file.locks[lockId];
    const h = Buffer.from(hash).toString('hex');
    if (entry?.verified?.includes(h)) {
      entry.verified = entry.verified.filter((v) => v !== h);
      this.dirty = true;
    }
  }
}
