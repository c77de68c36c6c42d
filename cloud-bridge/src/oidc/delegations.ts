/**
 * The delegations claim of Userinfo (SPEC.md §5.9): for each (owner, lock) a rider holds a live share of, a
 * fresh short-lived compact token (§5) minted with `protocol/`'s `mintToken`, bound to the caller's phone key.
 * Pure: the clock, the shares, the holder key and the issuer key are all passed in.
 */
import { createHash } from 'node:crypto';
import type { PrivateKey, PublicKey } from '../../../protocol/src/keys.js';
import type { MintClaims } from '../../../protocol/src/token.js';
import { SCOPES, mintToken } from '../../../protocol/src/token.js';
import { OidcError } from './errors.js';
import { checkPhoneKey, checkShare } from './rules.js';
import type { Share } from './store.js';

/**
 * The claim name ([TANDEM-DLG-1]): a collision-resistant public claim name (RFC 7519 §4.2, OpenID Connect
 * Core §5.1.2) under a domain reserved by RFC 2606, so that it can never clash with a claim of another party.
 */
export const DELEGATIONS_CLAIM = 'https://tandem.example/delegations';
/** The scope that releases the claim at Userinfo ([TANDEM-DLG-1]). */
export const DELEGATIONS_SCOPE = 'delegations';
/** Lifetime of a minted token ([TANDEM-DLG-4]): short, since a fresh one costs one Userinfo call. */
export const DELEGATION_TTL_SECONDS = 300;
/** How far `nbf` reaches back, for locks whose clock is a little behind ([TANDEM-DLG-4]). */
export const DELEGATION_NBF_SKEW_SECONDS = 60;

/** One entry of the claim ([TANDEM-DLG-2]). */
export interface DelegationEntry {
  /** The compact token (§5), base64url without padding. */
  readonly access_token: string;
  /** Seconds until the token's `exp`. */
  readonly expires_in: number;
  /** The token's scope tokens. */
  readonly scope: readonly string[];
  /** The lock id (the token's `aud`). */
  readonly lock: string;
  /** The share the token stands for. */
  readonly share: string;
}

/** The claim value: owner id to that owner's locks the rider may use. */
export type DelegationsClaim = Record<string, DelegationEntry[]>;

/** The cloud's issuer identity and signing key ([TANDEM-CHAIN-4] issuer anchor). */
export interface IssuerKey {
  /** The issuer id every lock's issuer anchor names: the tokens' `iss`. */
  readonly id: string;
  /** The COSE `kid` of the anchor (at most 32 bytes, [TANDEM-COSE-6]). */
  readonly kid: Uint8Array;
  /** The Ed25519 private key. */
  readonly key: PrivateKey;
}

// Every Userinfo call needs the cti of each of the rider's shares: a bounded memo saves a hash per entry.
const CTI_MEMO_LIMIT = 4096;
const ctiMemo = new Map<string, Uint8Array>();

/** The stable token id of a share ([TANDEM-DLG-4]): revocation (§6) and use counting (§5.6) name it. */
export function shareCti(shareId: string): Uint8Array {
  let cti = ctiMemo.get(shareId);
  if (cti === undefined) {
    cti = new Uint8Array(
      createHash('sha256').update('Tandem-share-cti-v1\0').update(shareId, 'utf8').digest().subarray(0, 16),
    );
    if (ctiMemo.size >= CTI_MEMO_LIMIT) ctiMemo.delete(ctiMemo.keys().next().value as string);
    ctiMemo.set(shareId, cti);
  }
  return cti.slice(); // a copy: callers may not alter the memo
}

/** True when the share may yield a token at `now` ([TANDEM-DLG-3]). */
export function isLive(share: Share, now: number): boolean {
  if (share.revoked === true) return false;
  if (!(share.notBefore <= now && now < share.notAfter)) return false;
  if (share.maxUses !== undefined && (share.usesReported ?? 0) >= share.maxUses) return false;
  return true;
}

/** Of several live shares for one (owner, lock), the one that lasts longest, then the smallest id. */
function better(a: Share, b: Share): Share {
  if (a.notAfter !== b.notAfter) return a.notAfter > b.notAfter ? a : b;
  return a.id <= b.id ? a : b;
}

/** Options of {@link mintDelegations}. */
export interface MintDelegationsOptions {
  /** The caller: only shares whose `rider` is this account are used. */
  readonly rider: string;
  readonly shares: readonly Share[];
  /** The caller's phone key for the device the access token was issued to ([TANDEM-DLG-5]). */
  readonly holder: PublicKey;
  readonly issuer: IssuerKey;
  /** Unix seconds. */
  readonly now: number;
  readonly ttlSeconds?: number;
}

/** Builds the delegations claim ([TANDEM-DLG-2] to [TANDEM-DLG-6]). */
export function mintDelegations(o: MintDelegationsOptions): DelegationsClaim {
  checkPhoneKey(o.holder);
  if (o.issuer.key.alg !== 'EdDSA') {
    throw new OidcError('ERR_OIDC_CONFIG', 'issuer key must be Ed25519 (ARCHITECTURE.md, "Trust and keys")');
  }
  const ttl = o.ttlSeconds ?? DELEGATION_TTL_SECONDS;
  const chosen = new Map<string, Share>();
  for (const s of o.shares) {
    // A share the source got wrong is skipped, not fatal: one bad row must not hide the rider's other locks.
    try {
      checkShare(s);
    } catch {
      continue;
    }
    if (s.rider !== o.rider || !isLive(s, o.now)) continue;
    const k = JSON.stringify([s.owner, s.lock]);
    const prev = chosen.get(k);
    chosen.set(k, prev ? better(prev, s) : s);
  }
  const claim: DelegationsClaim = {};
  const sorted = [...chosen.values()].sort((a, b) =>
    a.owner === b.owner ? (a.lock < b.lock ? -1 : 1) : a.owner < b.owner ? -1 : 1,
  );
  for (const s of sorted) {
    const exp = Math.min(s.notAfter, o.now + ttl);
    const nbf = Math.max(s.notBefore, o.now - DELEGATION_NBF_SKEW_SECONDS);
    // Canonical order of [TANDEM-TOK-5]; `delegate` only when the owner allowed re-sharing.
    const scope = SCOPES.filter((sc) => s.scope.includes(sc) && (sc !== 'delegate' || s.mayReshare === true));
    const claims: MintClaims = {
      iss: o.issuer.id,
      sub: s.owner,
      aud: s.lock,
      exp,
      nbf,
      iat: o.now,
      cti: shareCti(s.id),
      cnf: o.holder,
      scope,
      rider: s.rider,
      ...(s.schedule !== undefined ? { schedule: s.schedule } : {}),
      ...(s.maxUses !== undefined ? { maxUses: s.maxUses } : {}),
      ...(s.minRevocation !== undefined ? { minRevocation: s.minRevocation } : {}),
    };
    const token = mintToken(claims, o.issuer.key, o.issuer.kid);
    (claim[s.owner] ??= []).push({
      access_token: Buffer.from(token).toString('base64url'),
      expires_in: exp - o.now,
      scope,
      lock: s.lock,
      share: s.id,
    });
  }
  return claim;
}
