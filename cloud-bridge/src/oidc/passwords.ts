/**
 * Password hashing with Argon2id (RFC 9106) through `@node-rs/argon2`, a maintained Rust binding that ships
 * prebuilt per-platform packages as optionalDependencies: it installs under `npm ci` with no install script and
 * no compiler. Loaded lazily, on first use, so that importing this module touches no native code.
 */
import type * as Argon2 from '@node-rs/argon2';
import { OidcError } from './errors.js';
import { checkPassword } from './rules.js';

/** Hashes and verifies passwords. */
export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(hash: string, password: string): Promise<boolean>;
}

/** Argon2id cost parameters (RFC 9106 §4; defaults: OWASP's 19 MiB, 2 passes, 1 lane). */
export interface Argon2idParams {
  memoryCostKiB: number;
  timeCost: number;
  parallelism: number;
}

export const DEFAULT_ARGON2ID: Argon2idParams = { memoryCostKiB: 19_456, timeCost: 2, parallelism: 1 };

type Argon2Module = typeof Argon2;
let loaded: Promise<Argon2Module> | undefined;

function argon2(): Promise<Argon2Module> {
  loaded ??= import('@node-rs/argon2').catch((cause: unknown) => {
    loaded = undefined;
    throw new OidcError(
      'ERR_OIDC_CONFIG',
      '@node-rs/argon2 could not be loaded: run `npm ci` so that its prebuilt package for this platform is installed',
      { cause },
    );
  });
  return loaded;
}

/** The Argon2id {@link PasswordHasher}. */
export class Argon2idHasher implements PasswordHasher {
  constructor(private readonly params: Argon2idParams = DEFAULT_ARGON2ID) {}

  async hash(password: string): Promise<string> {
    checkPassword(password);
    const a = await argon2();
    return a.hash(password, {
      algorithm: 2, // Algorithm.Argon2id; a const enum, which isolatedModules cannot import
      memoryCost: this.params.memoryCostKiB,
      timeCost: this.params.timeCost,
      parallelism: this.params.parallelism,
    });
  }

  async verify(hash: string, password: string): Promise<boolean> {
    if (!hash.startsWith('$argon2id$') || password.length > 1024) return false;
    const a = await argon2();
    try {
      return await a.verify(hash, password);
    } catch {
      return false;
    }
  }
}
