/**
 * The error family of the OpenID Provider (`cloud-bridge/src/oidc/`): every refusal at this boundary carries a
 * stable `code` and a message that names what is wrong. HTTP answers use OAuth 2.0 error objects (RFC 6749
 * §5.2) produced by oidc-provider; these codes are for the Tandem parts around it (accounts, phone keys,
 * shares, interactions).
 */

import { TandemError } from '../../../protocol/src/errors.js';

/** Every code the OpenID Provider's own code can throw. */
export type OidcErrorCode =
  | 'ERR_OIDC_CONFIG' // the provider was configured with something unusable (issuer URL, keys, clients)
  | 'ERR_OIDC_ACCOUNT_INVALID' // an account id, name or password does not meet the account rules
  | 'ERR_OIDC_ACCOUNT_EXISTS' // an account with that id is already registered
  | 'ERR_OIDC_ACCOUNT_UNKNOWN' // no account with that id
  | 'ERR_OIDC_PHONE_KEY_INVALID' // a phone key is not a P-256 public key, or its device id is malformed
  | 'ERR_OIDC_SHARE_INVALID' // a share from the DelegationSource breaks the share rules (TANDEM-DLG-3)
  | 'ERR_OIDC_RATE_LIMITED' // too many login attempts for the account or from the address (TANDEM-DLG-8)
  | 'ERR_OIDC_BAD_REQUEST' // an interaction request is malformed (body too large, wrong form fields, origin)
  | 'ERR_OIDC_STORE'; // the storage backend failed or is not available (better-sqlite3 not built)

/** Base class of every error thrown by the OpenID Provider's own code. */
export class OidcError extends TandemError {
  readonly code: OidcErrorCode;
  constructor(code: OidcErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OidcError';
    this.code = code;
  }
}

/** True when `e` is an {@link OidcError}, optionally with the given code. */
export function isOidcError(e: unknown, code?: OidcErrorCode): e is OidcError {
  return e instanceof OidcError && (code === undefined || e.code === code);
}
