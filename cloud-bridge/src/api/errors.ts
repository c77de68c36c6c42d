/**
 * What the sharing API answers when it refuses: an HTTP status and the contract's error shape
 * `{"error": "ERR_API_*", "message": "<what is wrong, naming the field>"}` (cloud-bridge/api/openapi.json).
 */

/** Every error code of the sharing API. */
export type ApiErrorCode =
  | 'ERR_API_UNAUTHENTICATED' // no bearer token, or one that is unknown, expired, revoked or tampered (401)
  | 'ERR_API_SCOPE' // the token lacks the `delegations` scope: another client's token (403)
  | 'ERR_API_NOT_FOUND' // no such lock, share or device of the caller's (404, no existence oracle)
  | 'ERR_API_METHOD' // the path exists, the method does not (405)
  | 'ERR_API_MEDIA_TYPE' // a body that is not application/json (415)
  | 'ERR_API_TOO_LARGE' // a body over 64 KiB (413)
  | 'ERR_API_BODY' // a body that is not JSON, or does not match its schema (400)
  | 'ERR_API_PARAM' // a path or query parameter out of its pattern (400)
  | 'ERR_API_KEY' // a phone key that is not a valid P-256 public key (400)
  | 'ERR_API_SHARE' // a share that breaks a rule beyond its schema: times, schedule, rider (400)
  | 'ERR_API_RECEIPT' // a claim receipt that does not verify (422)
  | 'ERR_API_CONFLICT' // the lock is claimed by someone else (409)
  | 'ERR_API_UNAVAILABLE' // the store, the bridge or a part of the cloud is not available (503)
  | 'ERR_API_INTERNAL'; // a fault of ours (500)

/** A refusal with its HTTP status. */
export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  constructor(status: number, code: ApiErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

export const notFound = (what: string): ApiError =>
  new ApiError(404, 'ERR_API_NOT_FOUND', `${what} not found`);
