/**
 * The issuer keyring: the cloud's Ed25519 issuer keys, encrypted at rest, rotated with an overlap
 * (ARCHITECTURE.md, "Trust and keys"; SPEC.md §6.6 and [TANDEM-ANCHOR-7]).
 *
 * ## At rest
 * One JSON file, `issuer.keyring.json`, mode 0600, written atomically (temporary file, fsync, rename, fsync of
 * the directory). Each private key is a JWE in compact serialization (RFC 7516 §7.1) with `alg` "dir" and
 * `enc` "A256GCM" (RFC 7518 §4.5, §5.3) under a 32-byte secret from the environment
 * (`TANDEM_ISSUER_SECRET`: 64 hex digits or 43 base64url characters). The JWE protected header carries the
 * key's `kid`, and the protected header is the AES-GCM associated data (RFC 7516 §5.1 step 14): a ciphertext
 * moved to another entry, or an entry whose kid was edited, does not decrypt. Any JOSE library reads the
 * entries with the same secret (tested with `jose`). A wrong secret is an error naming the variable, never a
 * new key. Plaintext private JWKs are read only with the explicit development flag
 * (`insecurePlaintext`), and an old `issuer.jwk.json` is migrated by `tandem cloud issuer encrypt`, never
 * silently.
 *
 * ## Rotation ([TANDEM-ANCHOR-7])
 * Keys are `current` (signs everything the issuer signs), `next` (published to locks, signs nothing yet) and
 * `retired` (signs only the anchor updates that remove it, for locks that never received the new key).
 * `rotate(overlap)` makes a `next` key and sets the current key's `retireAfter`; every lock is sent an anchor
 * update, signed by the current key, that adds the next one. When `retireAfter` has passed, `advance` makes
 * the next key current and retires the old one; the anchor update then adds the new key and removes the old,
 * still signed by the old key, so one message brings any lock from any earlier anchor version to the new
 * key. This is DNSSEC's pre-publication rollover (RFC 6781 §4.1.1.1): the new key never signs before locks
 * have had the whole overlap to learn it. A rotation while one is in progress is refused; the next rotation
 * forgets the retired key.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { AnchorKey, AnchorUpdate } from '../../protocol/src/anchor-update.js';
import { encodeAnchorUpdate } from '../../protocol/src/anchor-update.js';
import type { PrivateKey } from '../../protocol/src/keys.js';
import { exportJwk, generateKeyPair, privateKeyFromJwk } from '../../protocol/src/keys.js';
import { CloudError } from './errors.js';
import type { Issuer } from './issuer.js';

/** The environment variable that holds the keyring secret. */
export const ISSUER_SECRET_VARIABLE = 'TANDEM_ISSUER_SECRET';
/** File names in the cloud's data directory. */
export const KEYRING_FILE = 'issuer.keyring.json';
/** The plaintext private JWK of earlier versions (one key, no rotation). */
export const LEGACY_KEY_FILE = 'issuer.jwk.json';
/** The public JWK of the current key: the trust anchor new locks are provisioned with. */
export const PUBLIC_KEY_FILE = 'issuer.pub.jwk.json';

const FORMAT = 'tandem-issuer-keyring/1';
const JWE_HEADER_CTY = 'jwk+json';

/** A key's place in the rotation (module comment). */
export type KeyState = 'current' | 'next' | 'retired';

/** One key of the keyring, decrypted. */
export interface KeyringKey {
  readonly kidText: string;
  readonly state: KeyState;
  /** Unix seconds. */
  readonly createdAt: number;
  /** Unix seconds after which a current key with a next key beside it is retired. */
  readonly retireAfter?: number;
  readonly key: PrivateKey;
}

/** How to open a keyring. */
export interface KeyringOptions {
  /** The data directory holding {@link KEYRING_FILE}. */
  readonly dir: string;
  /** The 32-byte secret, as text (64 hex digits or 43 base64url characters) or bytes. */
  readonly secret?: string | Uint8Array;
  /** Development only: read and write private keys unencrypted when no secret is given. */
  readonly insecurePlaintext?: boolean;
  /** Unix milliseconds; default Date.now. */
  readonly now?: () => number;
}

interface StoredKey {
  kid: string;
  state: KeyState;
  createdAt: number;
  retireAfter?: number;
  /** Raw Ed25519 public key, base64url: lets the file be inspected without the secret. */
  publicKey: string;
  /** A compact JWE (dir, A256GCM), or in insecure mode the private JWK itself. */
  private: string | JsonWebKey;
}

interface StoredKeyring {
  format: string;
  anchorVersion: number;
  keys: StoredKey[];
}

/**
 * Parses the keyring secret: 32 bytes as 64 hex digits or 43 base64url characters (no padding). Throws
 * ERR_CLOUD_SECRET_INVALID naming the variable.
 */
export function parseIssuerSecret(text: string | Uint8Array): Buffer {
  if (typeof text !== 'string') {
    if (text.length === 32) return Buffer.from(text);
    throw new CloudError('ERR_CLOUD_SECRET_INVALID', `${ISSUER_SECRET_VARIABLE} must be 32 bytes`);
  }
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9_-]{43}$/.test(t)) {
    const b = Buffer.from(t, 'base64url');
    if (b.length === 32 && b.toString('base64url') === t) return b;
  }
  throw new CloudError(
    'ERR_CLOUD_SECRET_INVALID',
    `${ISSUER_SECRET_VARIABLE} must be 32 random bytes as 64 hex digits or 43 base64url characters ` +
      `(for example \`openssl rand -hex 32\`); it is ${t.length} characters long`,
  );
}

/** A fresh keyring secret as 64 hex digits (what `npm start`'s demo keeps in its data directory). */
export function generateIssuerSecret(): string {
  return randomBytes(32).toString('hex');
}

/** Wraps a private key and its kid as the {@link Issuer} the bridge signs with. */
function issuerOf(key: PrivateKey, kidText: string): Issuer {
  return { key, kid: new TextEncoder().encode(kidText), kidText };
}

/** A kid for a new key: `cloud-` and 8 hex digits of the SHA-256 of its public key. */
export function kidFor(key: PrivateKey): string {
  return `cloud-${createHash('sha256').update(key.publicKey.raw).digest('hex').slice(0, 8)}`;
}

/** Encrypts a private JWK as a compact JWE, dir + A256GCM, kid in the protected header (module comment). */
export function encryptPrivateJwk(jwk: JsonWebKey, kid: string, secret: Buffer): string {
  const header = Buffer.from(
    JSON.stringify({ alg: 'dir', enc: 'A256GCM', kid, cty: JWE_HEADER_CTY }),
  ).toString('base64url');
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', secret, iv);
  cipher.setAAD(Buffer.from(header, 'ascii'));
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(jwk), 'utf8'), cipher.final()]);
  return [
    header,
    '',
    iv.toString('base64url'),
    ciphertext.toString('base64url'),
    cipher.getAuthTag().toString('base64url'),
  ].join('.');
}

/**
 * Decrypts an entry written by {@link encryptPrivateJwk}. Throws ERR_CLOUD_KEY_FILE for a malformed JWE or
 * one whose protected kid is not `kid`, and ERR_CLOUD_SECRET_WRONG when the secret does not decrypt it.
 */
export function decryptPrivateJwk(jwe: string, kid: string, secret: Buffer, where: string): JsonWebKey {
  const parts = jwe.split('.');
  const bad = (why: string): never => {
    throw new CloudError('ERR_CLOUD_KEY_FILE', `${where}: issuer key ${kid} is not a usable JWE: ${why}`);
  };
  if (parts.length !== 5 || parts[1] !== '')
    bad('expected compact JWE with an empty encrypted key (alg "dir")');
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return bad('protected header is not JSON');
  }
  if (header.alg !== 'dir' || header.enc !== 'A256GCM') bad('alg must be "dir" and enc "A256GCM"');
  if (header.kid !== kid) bad(`its protected "kid" is ${JSON.stringify(header.kid)}`);
  const iv = Buffer.from(parts[2]!, 'base64url');
  const tag = Buffer.from(parts[4]!, 'base64url');
  if (iv.length !== 12 || tag.length !== 16) bad('iv must be 12 bytes and tag 16');
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', secret, iv);
    decipher.setAAD(Buffer.from(parts[0]!, 'ascii'));
    decipher.setAuthTag(tag);
    plain = Buffer.concat([decipher.update(Buffer.from(parts[3]!, 'base64url')), decipher.final()]);
  } catch {
    throw new CloudError(
      'ERR_CLOUD_SECRET_WRONG',
      `${ISSUER_SECRET_VARIABLE} does not decrypt issuer key ${kid} in ${where}: the secret is not the one ` +
        'the keyring was written with, or the file was altered. Nothing was changed; no new key was made.',
    );
  }
  try {
    return JSON.parse(plain.toString('utf8')) as JsonWebKey;
  } catch {
    return bad('the decrypted key is not JSON');
  }
}

/** Writes `text` to `path` atomically with mode 0600: temporary file, fsync, rename, fsync of the directory. */
function writeAtomic(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function refuseExposed(path: string): void {
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new CloudError(
      'ERR_CLOUD_KEY_FILE',
      `issuer key file ${path} has mode ${mode.toString(8)}: others may read it; run chmod 600 ${path}`,
    );
  }
}

function privateFromJwk(jwk: JsonWebKey, kid: string, where: string): PrivateKey {
  try {
    const key = privateKeyFromJwk(jwk);
    if (key.alg !== 'EdDSA') throw new Error('the issuer key must be Ed25519 (EdDSA)');
    return key;
  } catch (e) {
    throw new CloudError(
      'ERR_CLOUD_KEY_FILE',
      `${where}: issuer key ${kid} is not an Ed25519 private JWK: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/** The issuer keyring (module comment). */
export class IssuerKeyring {
  readonly path: string;
  readonly #secret: Buffer | undefined;
  readonly #now: () => number;
  #keys: KeyringKey[];
  #anchorVersion: number;
  /** Why the keyring may not be written (a legacy plaintext file loaded in development), if so. */
  #readOnly: string | undefined;
  /** The live signer: its properties follow the current key across rotations. */
  readonly issuer: Issuer;

  private constructor(
    path: string,
    secret: Buffer | undefined,
    now: () => number,
    keys: KeyringKey[],
    anchorVersion: number,
  ) {
    this.path = path;
    this.#secret = secret;
    this.#now = now;
    this.#keys = keys;
    this.#anchorVersion = anchorVersion;
    const current = (): KeyringKey => this.current;
    this.issuer = {
      get key() {
        return current().key;
      },
      get kid() {
        return new TextEncoder().encode(current().kidText);
      },
      get kidText() {
        return current().kidText;
      },
    };
  }

  /**
   * Opens the keyring in `options.dir`, or creates it with one fresh key. Needs the secret unless
   * `insecurePlaintext`; refuses (never overwrites) a plaintext `issuer.jwk.json` that has not been
   * migrated, a wrong secret, an exposed or malformed file.
   */
  static open(options: KeyringOptions): IssuerKeyring {
    const path = join(options.dir, KEYRING_FILE);
    const now = options.now ?? Date.now;
    const secret = options.secret === undefined ? undefined : parseIssuerSecret(options.secret);
    if (secret === undefined && options.insecurePlaintext !== true) {
      throw new CloudError(
        'ERR_CLOUD_SECRET_MISSING',
        `${ISSUER_SECRET_VARIABLE} is not set: the issuer keys are encrypted at rest under it ` +
          '(32 random bytes as 64 hex digits, e.g. `openssl rand -hex 32`; keep it outside the data directory). ' +
          'For development only, --insecure-plaintext-key keeps them unencrypted.',
      );
    }
    if (existsSync(path)) {
      refuseExposed(path);
      return IssuerKeyring.#read(path, secret, options.insecurePlaintext === true, now);
    }
    const legacy = join(options.dir, LEGACY_KEY_FILE);
    if (existsSync(legacy)) {
      if (secret !== undefined || options.insecurePlaintext !== true) {
        throw new CloudError(
          'ERR_CLOUD_KEY_PLAINTEXT',
          `${legacy} holds the issuer key unencrypted; encrypt it first with ` +
            `\`${ISSUER_SECRET_VARIABLE}=... tandem cloud issuer encrypt --data-dir ${options.dir}\``,
        );
      }
      return IssuerKeyring.#fromLegacy(options.dir, undefined, now, false);
    }
    const key = generateKeyPair('EdDSA');
    const ring = new IssuerKeyring(
      path,
      secret,
      now,
      [{ kidText: kidFor(key), state: 'current', createdAt: Math.floor(now() / 1000), key }],
      0,
    );
    ring.#save();
    return ring;
  }

  /**
   * `tandem cloud issuer encrypt`: encrypts under `secret` whatever is plaintext in `dir`: a legacy
   * `issuer.jwk.json` (same key, same kid, so provisioned locks keep trusting it; the old file is removed
   * once the keyring is durable) or a keyring written with plaintext entries. Returns what it did.
   */
  static encrypt(dir: string, secretText: string | Uint8Array, now: () => number = Date.now): string {
    const secret = parseIssuerSecret(secretText);
    const path = join(dir, KEYRING_FILE);
    const legacy = join(dir, LEGACY_KEY_FILE);
    if (existsSync(path)) {
      refuseExposed(path);
      const ring = IssuerKeyring.#read(path, secret, true, now, secret);
      ring.#save();
      return `encrypted ${ring.#keys.length} key(s) in ${path}`;
    }
    if (!existsSync(legacy)) {
      throw new CloudError(
        'ERR_CLOUD_KEY_FILE',
        `no issuer key in ${dir} (${KEYRING_FILE} or ${LEGACY_KEY_FILE})`,
      );
    }
    refuseExposed(legacy);
    const ring = IssuerKeyring.#fromLegacy(dir, secret, now, true);
    ring.#save();
    // The keyring is durable (writeAtomic fsyncs it and the directory): only now does the plaintext go.
    unlinkSync(legacy);
    fsyncDir(dir);
    return `encrypted ${legacy} into ${path} (kid ${ring.current.kidText})`;
  }

  static #fromLegacy(
    dir: string,
    secret: Buffer | undefined,
    now: () => number,
    writable: boolean,
  ): IssuerKeyring {
    const legacy = join(dir, LEGACY_KEY_FILE);
    refuseExposed(legacy);
    let jwk: JsonWebKey;
    try {
      jwk = JSON.parse(readFileSync(legacy, 'utf8')) as JsonWebKey;
    } catch (e) {
      throw new CloudError('ERR_CLOUD_KEY_FILE', `${legacy} is not JSON: ${(e as Error).message}`);
    }
    const key = privateFromJwk(jwk, String(jwk.kid), legacy);
    const kidText = typeof jwk.kid === 'string' ? jwk.kid : kidFor(key);
    const ring = new IssuerKeyring(
      join(dir, KEYRING_FILE),
      secret,
      now,
      [{ kidText, state: 'current', createdAt: Math.floor(statSync(legacy).mtimeMs / 1000), key }],
      0,
    );
    if (!writable)
      ring.#readOnly = `${legacy} is a plaintext key file: run \`tandem cloud issuer encrypt\` before rotating`;
    return ring;
  }

  static #read(
    path: string,
    secret: Buffer | undefined,
    allowPlaintext: boolean,
    now: () => number,
    writeSecret: Buffer | undefined = secret,
  ): IssuerKeyring {
    let stored: StoredKeyring;
    try {
      stored = JSON.parse(readFileSync(path, 'utf8')) as StoredKeyring;
    } catch (e) {
      throw new CloudError('ERR_CLOUD_KEY_FILE', `${path} is not JSON: ${(e as Error).message}`);
    }
    if (stored.format !== FORMAT || !Array.isArray(stored.keys) || !Number.isInteger(stored.anchorVersion)) {
      throw new CloudError(
        'ERR_CLOUD_KEY_FILE',
        `${path} is not a keyring (format ${JSON.stringify(FORMAT)})`,
      );
    }
    const keys = stored.keys.map((k): KeyringKey => {
      if (typeof k.kid !== 'string' || k.kid.length === 0 || k.kid.length > 32) {
        throw new CloudError('ERR_CLOUD_KEY_FILE', `${path}: a key has no usable "kid"`);
      }
      if (!['current', 'next', 'retired'].includes(k.state) || !Number.isInteger(k.createdAt)) {
        throw new CloudError('ERR_CLOUD_KEY_FILE', `${path}: key ${k.kid} has a bad "state" or "createdAt"`);
      }
      let jwk: JsonWebKey;
      if (typeof k.private === 'string') {
        if (secret === undefined) {
          throw new CloudError(
            'ERR_CLOUD_SECRET_MISSING',
            `${path} is encrypted: set ${ISSUER_SECRET_VARIABLE} to the secret it was written with`,
          );
        }
        jwk = decryptPrivateJwk(k.private, k.kid, secret, path);
      } else {
        if (!allowPlaintext) {
          throw new CloudError(
            'ERR_CLOUD_KEY_PLAINTEXT',
            `${path} holds issuer key ${k.kid} unencrypted; run \`tandem cloud issuer encrypt\` with ${ISSUER_SECRET_VARIABLE} set`,
          );
        }
        jwk = k.private;
      }
      const key = privateFromJwk(jwk, k.kid, path);
      if (Buffer.from(key.publicKey.raw).toString('base64url') !== k.publicKey) {
        throw new CloudError('ERR_CLOUD_KEY_FILE', `${path}: key ${k.kid} does not match its "publicKey"`);
      }
      return {
        kidText: k.kid,
        state: k.state,
        createdAt: k.createdAt,
        ...(k.retireAfter === undefined ? {} : { retireAfter: k.retireAfter }),
        key,
      };
    });
    if (
      keys.filter((k) => k.state === 'current').length !== 1 ||
      keys.filter((k) => k.state === 'next').length > 1
    ) {
      throw new CloudError(
        'ERR_CLOUD_KEY_FILE',
        `${path} must hold one current key and at most one next key`,
      );
    }
    return new IssuerKeyring(path, writeSecret, now, keys, stored.anchorVersion);
  }

  /** The key that signs tokens, revocation updates, beacons and outbox acks now. */
  get current(): KeyringKey {
    return this.#keys.find((k) => k.state === 'current')!;
  }

  /** Every key, current first. */
  get keys(): readonly KeyringKey[] {
    const order: Record<KeyState, number> = { current: 0, next: 1, retired: 2 };
    return [...this.#keys].sort((a, b) => order[a.state] - order[b.state]);
  }

  /** The version of the anchor set the issuer publishes; 0 until the first rotation ([TANDEM-ANCHOR-7]). */
  get anchorVersion(): number {
    return this.#anchorVersion;
  }

  /** Whether private keys are encrypted at rest. */
  get encrypted(): boolean {
    return this.#secret !== undefined;
  }

  /**
   * Starts a rotation: a new `next` key, published to locks now, signing from `now + overlapS` (when
   * {@link advance} makes it current). Refused (ERR_CLOUD_KEY_ROTATION) while a rotation is in progress.
   * Forgets a retired key: locks that have not learnt the key current now can then be reached only by
   * re-provisioning.
   */
  rotate(overlapS: number): KeyringKey {
    this.#writable();
    if (!Number.isInteger(overlapS) || overlapS < 0 || overlapS > 366 * 86_400) {
      throw new CloudError('ERR_CLOUD_CONFIG', 'the overlap must be whole seconds from 0 to 366 days');
    }
    if (this.#keys.some((k) => k.state === 'next')) {
      const next = this.#keys.find((k) => k.state === 'next')!;
      throw new CloudError(
        'ERR_CLOUD_KEY_ROTATION',
        `a rotation is in progress: ${next.kidText} becomes current after ${new Date((this.current.retireAfter ?? 0) * 1000).toISOString()}`,
      );
    }
    const nowS = Math.floor(this.#now() / 1000);
    const key = generateKeyPair('EdDSA');
    const next: KeyringKey = { kidText: kidFor(key), state: 'next', createdAt: nowS, key };
    this.#keys = [{ ...this.current, retireAfter: nowS + overlapS }, next];
    this.#anchorVersion++;
    this.#save();
    return next;
  }

  /**
   * Ends the overlap once the current key's `retireAfter` has passed: the next key becomes current, the old
   * one is retired. Returns true when it changed the keyring (the caller republishes what the new key signs
   * and the anchor updates).
   */
  advance(): boolean {
    const next = this.#keys.find((k) => k.state === 'next');
    const cur = this.current;
    if (
      next === undefined ||
      cur.retireAfter === undefined ||
      cur.retireAfter > Math.floor(this.#now() / 1000)
    ) {
      return false;
    }
    this.#writable();
    this.#keys = [
      { kidText: next.kidText, state: 'current', createdAt: next.createdAt, key: next.key },
      {
        kidText: cur.kidText,
        state: 'retired',
        createdAt: cur.createdAt,
        retireAfter: cur.retireAfter,
        key: cur.key,
      },
    ];
    this.#anchorVersion++;
    this.#save();
    return true;
  }

  /**
   * The anchor update for `lockId` at the keyring's anchor version ([TANDEM-ANCHOR-7]), or undefined before
   * the first rotation: adds the current and next keys, removes the retired one, signed by the key every
   * lock that predates the rotation holds (the retired key after the overlap, else the current key).
   */
  anchorUpdateFor(lockId: string): Uint8Array | undefined {
    if (this.#anchorVersion === 0) return undefined;
    const signer = this.#keys.find((k) => k.state === 'retired') ?? this.current;
    const add: AnchorKey[] = this.#keys
      .filter((k) => k.state !== 'retired')
      .map((k) => ({ kid: new TextEncoder().encode(k.kidText), alg: 'EdDSA', key: k.key.publicKey.raw }));
    const update: AnchorUpdate = {
      lockId,
      version: this.#anchorVersion,
      issuedAt: Math.floor(this.#now() / 1000),
      add,
      remove: this.#keys.filter((k) => k.state === 'retired').map((k) => new TextEncoder().encode(k.kidText)),
    };
    return encodeAnchorUpdate(update, signer.key, new TextEncoder().encode(signer.kidText));
  }

  #writable(): void {
    if (this.#readOnly !== undefined) throw new CloudError('ERR_CLOUD_KEY_PLAINTEXT', this.#readOnly);
  }

  /** Writes the keyring (atomically, 0600) and the current key's public JWK beside it. */
  #save(): void {
    const stored: StoredKeyring = {
      format: FORMAT,
      anchorVersion: this.#anchorVersion,
      keys: this.#keys.map((k) => {
        const jwk = exportJwk(k.key, k.kidText);
        return {
          kid: k.kidText,
          state: k.state,
          createdAt: k.createdAt,
          ...(k.retireAfter === undefined ? {} : { retireAfter: k.retireAfter }),
          publicKey: Buffer.from(k.key.publicKey.raw).toString('base64url'),
          private: this.#secret === undefined ? jwk : encryptPrivateJwk(jwk, k.kidText, this.#secret),
        };
      }),
    };
    writeAtomic(this.path, `${JSON.stringify(stored, null, 2)}\n`);
    const cur = this.current;
    writeFileSync(
      join(dirname(this.path), PUBLIC_KEY_FILE),
      `${JSON.stringify(exportJwk(cur.key.publicKey, cur.kidText), null, 2)}\n`,
      { mode: 0o644 },
    );
  }

  /** The live signer as a plain {@link Issuer} snapshot of the current key (for code that keeps one). */
  snapshot(): Issuer {
    return issuerOf(this.current.key, this.current.kidText);
  }
}
