/**
 * Validation of what crosses the storage seam: accounts, device ids, phone keys and shares. Every refusal is
 * an {@link OidcError} whose message names the field at fault.
 */
import type { PublicKey } from '../../../protocol/src/keys.js';
import { parseSchedule, scheduleToCbor } from '../../../protocol/src/schedule.js';
import { SCOPES } from '../../../protocol/src/token.js';
import { LOCK_ID_PATTERN, UINT32_MAX } from '../../../protocol/src/index.js';
import { OidcError } from './errors.js';
import type { Account, Share } from './store.js';

/** Account ids fit the token's 64-character `sub`/`rider` ([TANDEM-TOK-3]) and read well in a URL. */
export const ACCOUNT_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Device ids are OpenID grant ids (oidc-provider: 43 base64url characters); any printable id up to 128. */
export const DEVICE_ID_PATTERN = /^[\x21-\x7e]{1,128}$/;
/** Share ids: printable ASCII, 1-64 characters. */
export const SHARE_ID_PATTERN = /^[\x21-\x7e]{1,64}$/;
/** Scopes an owner may share ([TANDEM-DLG-3]): everything of [TANDEM-TOK-5] but `manage`. */
export const SHAREABLE_SCOPES: readonly string[] = SCOPES.filter((s) => s !== 'manage');
/** Password length bounds: long passphrases welcome, but bounded so hashing stays bounded. */
export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 1024;

export function checkAccountId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !ACCOUNT_ID_PATTERN.test(id)) {
    throw new OidcError(
      'ERR_OIDC_ACCOUNT_INVALID',
      `account id must match ${ACCOUNT_ID_PATTERN.source} (got ${JSON.stringify(id)})`,
    );
  }
}

export function checkPassword(password: unknown): asserts password is string {
  if (typeof password !== 'string' || password.length < PASSWORD_MIN || password.length > PASSWORD_MAX) {
    throw new OidcError(
      'ERR_OIDC_ACCOUNT_INVALID',
      `password must be ${PASSWORD_MIN} to ${PASSWORD_MAX} characters`,
    );
  }
}

export function checkAccount(a: Account): void {
  checkAccountId(a.id);
  if (typeof a.name !== 'string' || a.name.length === 0 || a.name.length > 128) {
    throw new OidcError('ERR_OIDC_ACCOUNT_INVALID', 'account "name" must be 1 to 128 characters');
  }
  if (typeof a.passwordHash !== 'string' || !a.passwordHash.startsWith('$argon2id$')) {
    throw new OidcError('ERR_OIDC_ACCOUNT_INVALID', 'account "passwordHash" must be an Argon2id PHC string');
  }
}

export function checkDeviceId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !DEVICE_ID_PATTERN.test(id)) {
    throw new OidcError(
      'ERR_OIDC_PHONE_KEY_INVALID',
      'device id must be 1 to 128 printable ASCII characters',
    );
  }
}

/** Rider keys are P-256 (ARCHITECTURE.md, "Trust and keys": phone secure hardware requires it). */
export function checkPhoneKey(key: PublicKey): void {
  if (key?.alg !== 'ES256') {
    throw new OidcError('ERR_OIDC_PHONE_KEY_INVALID', 'phone key must be a P-256 (ES256) public key');
  }
}

function shareError(share: { id?: unknown }, what: string): never {
  throw new OidcError('ERR_OIDC_SHARE_INVALID', `share ${JSON.stringify(share.id)}: ${what}`);
}

function isUint32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= UINT32_MAX;
}

/** Checks a share against [TANDEM-DLG-3]. */
export function checkShare(s: Share): void {
  if (typeof s.id !== 'string' || !SHARE_ID_PATTERN.test(s.id))
    shareError(s, '"id" must be 1-64 printable characters');
  if (typeof s.owner !== 'string' || !ACCOUNT_ID_PATTERN.test(s.owner))
    shareError(s, '"owner" is not an account id');
  if (typeof s.rider !== 'string' || !ACCOUNT_ID_PATTERN.test(s.rider))
    shareError(s, '"rider" is not an account id');
  if (typeof s.lock !== 'string' || !LOCK_ID_PATTERN.test(s.lock)) {
    shareError(s, `"lock" must match ${LOCK_ID_PATTERN.source} (TANDEM-GEN-3)`);
  }
  if (!Array.isArray(s.scope) || s.scope.length === 0) shareError(s, '"scope" must list at least one scope');
  for (const sc of s.scope) {
    if (!SHAREABLE_SCOPES.includes(sc)) {
      shareError(
        s,
        `"scope" ${JSON.stringify(sc)} is not shareable (allowed: ${SHAREABLE_SCOPES.join(' ')})`,
      );
    }
  }
  if (new Set(s.scope).size !== s.scope.length) shareError(s, '"scope" lists a scope twice');
  if (s.scope.includes('delegate') && s.mayReshare !== true) {
    shareError(s, '"scope" has "delegate" but "mayReshare" is not true');
  }
  if (!isUint32(s.notBefore) || !isUint32(s.notAfter) || s.notBefore >= s.notAfter) {
    shareError(s, '"notBefore" and "notAfter" must be Unix seconds below 2^32 with notBefore < notAfter');
  }
  if (s.schedule !== undefined) {
    try {
      parseSchedule(scheduleToCbor(s.schedule), 'share "schedule"');
    } catch (e) {
      shareError(s, `"schedule" is invalid: ${(e as Error).message}`);
    }
  }
  if (s.maxUses !== undefined && (!isUint32(s.maxUses) || s.maxUses < 1)) {
    shareError(s, '"maxUses" must be an integer from 1 to 2^32-1');
  }
  if (s.usesReported !== undefined && !isUint32(s.usesReported)) {
    shareError(s, '"usesReported" must be an unsigned integer below 2^32');
  }
  if (s.minRevocation !== undefined && !isUint32(s.minRevocation)) {
    shareError(s, '"minRevocation" must be an unsigned integer below 2^32');
  }
}
