/**
 * The lock's decision (SPEC.md §5.7): one pure, synchronous function from (a decoded request, what the lock
 * holds, its trusted time bound) to a {@link Verdict}, each step a small named function as jose keeps its
 * verification steps. Counting uses, pulsing the solenoid, caching the chain, charging lockout evidence and
 * auditing are the caller's ({@link LockAuthority}), after the verdict.
 *
 * The order, first failing step wins ([TANDEM-DECIDE-1]):
 *
 *   1. decode the request and the command's args ({@link decodeStep}): MALFORMED; a `chainRef` must name a
 *      chain the lock holds: TOKEN_REF_UNKNOWN. (The caller then spends the challenge the request names.)
 *      Safe mode refuses anything but management: SAFE_MODE.
 *   2. signatures of the chain: UNKNOWN_SIGNER, BAD_SIGNATURE.  3. narrowing: CHAIN_INVALID.
 *   4. audience: WRONG_AUDIENCE. In safe mode the root must be an owner anchor: SAFE_MODE.
 *   5. possession: the challenge is live and was read by this peer, and the leaf's holder signed it
 *      (CHALLENGE_UNKNOWN, CHALLENGE_EXPIRED, POP_INVALID). Nothing the lock holds has been looked at yet, so
 *      a sender without the holder's key learns nothing of lockout, time, revocation, uses or scope.
 *   6. lockout of the chain's root or holder key (never for an owner-anchor chain): LOCKED_OUT.
 *   7. time: EXPIRED, NOT_YET_VALID, TIME_UNCERTAIN. 8. schedule: OUTSIDE_SCHEDULE, TIME_UNCERTAIN. Both are
 *      skipped for the owner's own token ([TANDEM-DECIDE-3]).
 *   9. revocation: REVOKED, REVOCATION_STALE.  10. uses: USES_EXHAUSTED, QUOTA_EXCEEDED.
 *   11. scope: SCOPE_DENIED.
 *
 * A refusal after step 5 was caused by a key holder; if it is misuse ({@link LOCKOUT_EVIDENCE}), the verdict
 * names the subjects to charge ([TANDEM-LOCKOUT-1]). A CHAIN_INVALID refusal (step 3) charges them too when
 * the request nevertheless carries a valid proof of possession for the broken chain.
 */
import { createHash } from 'node:crypto';
import { encode } from '../../../protocol/src/cbor.js';
import type { AnchorLookup, Grant, TimeBound } from '../../../protocol/src/chain.js';
import { chainHash, checkSchedule, checkScope, checkTime, verifyChain } from '../../../protocol/src/chain.js';
import { ProtocolError } from '../../../protocol/src/errors.js';
import type { PublicKey } from '../../../protocol/src/keys.js';
import type { UnlockRequest } from '../../../protocol/src/pop.js';
import { Command, SCOPE_OF_COMMAND, decodeRequest, verifyPop } from '../../../protocol/src/pop.js';
import { Status } from '../../../protocol/src/status.js';
import { coseKeyOf, decodeToken } from '../../../protocol/src/token.js';
import type { DecodedToken } from '../../../protocol/src/token.js';
import type { TakenChallenge } from './challenges.js';
import type { CommandArgs } from './management.js';
import { decodeCommandArgs, isManagementCommand } from './management.js';
import { LOCKOUT_EVIDENCE } from './rate-limiter.js';

/** Commands that change nothing: they count no use and an exhausted token still gets them ([TANDEM-USES-2]). */
export const READ_ONLY_COMMANDS: ReadonlySet<Command> = new Set([Command.STATUS, Command.READ_AUDIT]);

/** What the decision reads of the lock's state. Every member is a query: nothing here changes the lock. */
export interface HeldState {
  readonly lockId: string;
  readonly anchors: AnchorLookup;
  /** IANA time zone of weekly schedules ([TANDEM-SCHED-2]). */
  readonly timeZone: string;
  /** True in safe mode (a store was found corrupt). */
  readonly safeMode: boolean;
  /** A chain verified before, by the first 16 bytes of its hash ([TANDEM-POP-6]). */
  cachedGrant(ref: Uint8Array): Grant | undefined;
  /** True when the revocation list holds `cti` ([TANDEM-USES-5]). */
  revoked(cti: Uint8Array): boolean;
  readonly revocationVersion: number;
  /** Uses counted for a token state id ({@link tokenStateId}). */
  usesCounted(id: Uint8Array): number;
  /** True when the use counters have room for one more token under `group` ([TANDEM-USES-3]). */
  groupHasRoom(group: Uint8Array): boolean;
  /** True when any of the subjects is locked out ([TANDEM-LOCKOUT-2]). */
  lockedOut(subjects: readonly string[]): boolean;
}

/** A request past step 1: decoded, with its command's arguments. */
export interface DecodedRequest {
  readonly request: UnlockRequest;
  readonly args: CommandArgs;
}

/** One token of the chain that has `maxUses`: what step 11 of the caller counts ([TANDEM-USES-1]). */
export interface CountedToken {
  /** {@link tokenStateId} of the token: its signer's key and its `cti`. */
  readonly id: Uint8Array;
  readonly exp: number;
  readonly maxUses: number;
  /** The id of the chain's root token: the quota group ([TANDEM-USES-3]). */
  readonly group: Uint8Array;
}

/** Who signed what: key thumbprints ({@link keyThumbprint}) for the audit trail ([TANDEM-AUDIT-1]). */
export interface Signers {
  /** Signer of each token, root (its trust anchor) first. */
  readonly signers: readonly Uint8Array[];
  /** The leaf's holder key (`cnf`). */
  readonly holder: Uint8Array;
}

/** The answer of {@link decide}. */
export type Verdict =
  | {
      readonly ok: true;
      readonly status: Status.OK;
      readonly request: UnlockRequest;
      readonly args: CommandArgs;
      readonly grant: Grant;
      /** Tokens of the chain with `maxUses`, to count before acting (none for read-only commands). */
      readonly counted: readonly CountedToken[];
      readonly signers: Signers;
    }
  | {
      readonly ok: false;
      readonly status: Status;
      readonly message: string;
      readonly request?: UnlockRequest;
      /** The chain, when it verified (steps 2-4). */
      readonly grant?: Grant;
      readonly signers?: Signers;
      /** True when the leaf's holder proved possession: the refusal was caused by a key holder. */
      readonly possession: boolean;
      /** Lockout subjects to charge ([TANDEM-LOCKOUT-1]); absent when the refusal is no evidence. */
      readonly evidence?: readonly string[];
    };

/** A refusal inside the decision: the step's status and why. */
export class Refusal {
  constructor(
    readonly status: Status,
    readonly message: string,
  ) {}
}

/** Status of an exception: refusals and protocol errors map by code; anything else is FAULT. */
export function statusOf(error: unknown): Status {
  if (error instanceof Refusal) return error.status;
  if (error instanceof ProtocolError) return error.status;
  return Status.FAULT;
}

function messageOf(error: unknown): string {
  if (error instanceof Refusal) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

// ---------------------------------------------------------------------------------------------------------
// Identities: key thumbprints and token state ids.
// ---------------------------------------------------------------------------------------------------------

const thumbprints = new WeakMap<PublicKey, Uint8Array>();

/**
 * SHA-256 of a key's COSE_Key in its compact form ([TANDEM-KEY-2]): one value per key, whatever encoding the
 * key arrived in. Cached per parsed key (keys.ts caches the parsed keys themselves).
 */
export function keyThumbprint(key: PublicKey): Uint8Array {
  let t = thumbprints.get(key);
  if (t === undefined) {
    t = new Uint8Array(
      createHash('sha256')
        .update(encode(coseKeyOf(key)))
        .digest(),
    );
    thumbprints.set(key, t);
  }
  return t;
}

/** The first 8 bytes of {@link keyThumbprint}: what the audit trail records ([TANDEM-AUDIT-1]). */
export function shortThumbprint(key: PublicKey): Uint8Array {
  return keyThumbprint(key).subarray(0, 8);
}

const TOKEN_ID_CONTEXT = new TextEncoder().encode('Tandem-token-id-v1');

/**
 * [TANDEM-USES-4]: the lock keys per-token state by the signer's key and the `cti` the signer gave it,
 * SHA-256("Tandem-token-id-v1" ‖ thumbprint(signer) ‖ cti), so that no signer can name another signer's
 * token. Not the hash of the token's bytes: an ES256 signature can be re-encoded (r, n−s) into other bytes
 * of the same token.
 */
export function tokenStateId(signer: PublicKey, cti: Uint8Array): Uint8Array {
  return new Uint8Array(
    createHash('sha256').update(TOKEN_ID_CONTEXT).update(keyThumbprint(signer)).update(cti).digest(),
  );
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** Lockout subject of a root token ([TANDEM-LOCKOUT-2]). */
export const rootSubject = (rootId: Uint8Array): string => `root:${hex(rootId)}`;
/** Lockout subject of a holder key ([TANDEM-LOCKOUT-2]). */
export const keySubject = (key: PublicKey): string => `key:${hex(keyThumbprint(key))}`;

/** The signer of each token: the anchor for the root, the parent's holder key for a link. */
function signerKeys(anchorKey: PublicKey, tokens: readonly DecodedToken[]): PublicKey[] {
  return tokens.map((_, i) => (i === 0 ? anchorKey : tokens[i - 1]!.claims.cnf));
}

function signersOf(anchorKey: PublicKey, tokens: readonly DecodedToken[]): Signers {
  return {
    signers: signerKeys(anchorKey, tokens).map(shortThumbprint),
    holder: shortThumbprint(tokens[tokens.length - 1]!.claims.cnf),
  };
}

const sameKey = (a: PublicKey, b: PublicKey): boolean =>
  a.alg === b.alg && Buffer.compare(Buffer.from(a.raw), Buffer.from(b.raw)) === 0;

/**
 * [TANDEM-DECIDE-3]: the owner's own token, a chain of one root signed by an owner anchor whose `cnf` is
 * that same owner key. Its holder could sign a fresh one with any validity at any moment, so time and
 * schedule say nothing about it: they are skipped, and the owner opens the lock even when it knows no time.
 */
export function isOwnerSelf(grant: Grant): boolean {
  return (
    grant.tokens.length === 1 && grant.anchor.role === 'owner' && sameKey(grant.leaf.cnf, grant.anchor.key)
  );
}

/** Lockout subjects of a chain: its root token and its holder key ([TANDEM-LOCKOUT-2]). */
function subjectsOf(anchorKey: PublicKey, tokens: readonly DecodedToken[]): string[] {
  return [
    rootSubject(tokenStateId(anchorKey, tokens[0]!.claims.cti)),
    keySubject(tokens[tokens.length - 1]!.claims.cnf),
  ];
}

/** What the decision derives from a verified chain alone: computed once per {@link Grant}. */
interface Derived {
  readonly signers: Signers;
  readonly subjects: readonly string[];
  /** The tokens with `maxUses`, to count ([TANDEM-USES-1]). */
  readonly limited: readonly CountedToken[];
}

/**
 * A grant is immutable, and a repeat request (`chainRef`, [TANDEM-POP-6]) decides on the same grant object
 * again: its signers, lockout subjects and token state ids (SHA-256 each) need not be derived every time.
 */
const derivedOf = new WeakMap<Grant, Derived>();

function derive(grant: Grant): Derived {
  let d = derivedOf.get(grant);
  if (d === undefined) {
    const { anchor, tokens } = grant;
    const keys = signerKeys(anchor.key, tokens);
    const group = tokenStateId(anchor.key, tokens[0]!.claims.cti);
    const limited: CountedToken[] = [];
    for (let i = 0; i < tokens.length; i++) {
      const c = tokens[i]!.claims;
      if (c.maxUses === undefined) continue;
      limited.push({
        id: i === 0 ? group : tokenStateId(keys[i]!, c.cti),
        exp: c.exp,
        maxUses: c.maxUses,
        group,
      });
    }
    d = {
      signers: signersOf(anchor.key, tokens),
      subjects: [rootSubject(group), keySubject(tokens[tokens.length - 1]!.claims.cnf)],
      limited,
    };
    derivedOf.set(grant, d);
  }
  return d;
}

// ---------------------------------------------------------------------------------------------------------
// The steps.
// ---------------------------------------------------------------------------------------------------------

/** Step 1: the request's structure and its command's arguments (strict). Throws ProtocolError (MALFORMED). */
export function decodeStep(bytes: Uint8Array, maxPulseMs: number): DecodedRequest {
  const request = decodeRequest(bytes);
  return { request, args: decodeCommandArgs(request.command, request.args, maxPulseMs) };
}

/** Step 1 (cont.): the chain, verified now or found by reference. */
function chainStep(
  request: UnlockRequest,
  held: HeldState,
): { grant: Grant; fromCache: boolean } | { chain: readonly Uint8Array[] } {
  if (request.chainRef === undefined) return { chain: request.chain! };
  const grant = held.cachedGrant(request.chainRef);
  if (grant === undefined)
    throw new Refusal(Status.TOKEN_REF_UNKNOWN, 'the lock does not hold this chain; send it in full');
  return { grant, fromCache: true };
}

function safeModeStep(request: UnlockRequest, held: HeldState): void {
  if (held.safeMode && !isManagementCommand(request.command))
    throw new Refusal(Status.SAFE_MODE, 'safe mode: only the owner may manage the lock');
}

/** Steps 2-4 ([TANDEM-CHAIN-2], [TANDEM-CHAIN-3], audience) and the safe-mode root check. */
function verifyChainStep(chain: readonly Uint8Array[], held: HeldState): Grant {
  return verifyChain(chain, held.anchors, held.lockId);
}

function safeModeRootStep(grant: Grant, held: HeldState): void {
  if (held.safeMode && grant.anchor.role !== 'owner')
    throw new Refusal(Status.SAFE_MODE, 'safe mode: only the owner may manage the lock');
}

/** Step 5 ([TANDEM-POP-4], [TANDEM-POP-7], [TANDEM-POP-3]): a live challenge of this peer, signed by the holder. */
function possessionStep(
  request: UnlockRequest,
  challenge: TakenChallenge,
  holder: PublicKey,
  hash: Uint8Array,
  lockId: string,
): void {
  if (challenge.kind === 'unknown')
    throw new Refusal(
      Status.CHALLENGE_UNKNOWN,
      'the nonce is unknown, already spent or read by another peer',
    );
  if (challenge.kind === 'expired') throw new Refusal(Status.CHALLENGE_EXPIRED, 'the challenge expired');
  verifyPop(request, lockId, holder, hash);
}

/** Step 6 ([TANDEM-LOCKOUT-2]). CLEAR_LOCKOUT passes: it still needs `manage` (step 11). */
function lockoutStep(request: UnlockRequest, subjects: readonly string[], held: HeldState): void {
  if (request.command !== Command.CLEAR_LOCKOUT && held.lockedOut(subjects)) {
    throw new Refusal(
      Status.LOCKED_OUT,
      'this token or key is locked out after repeated misuse; the owner must clear it',
    );
  }
}

/** Steps 7-8 ([TANDEM-TIME-CHECK], [TANDEM-SCHED-2]), skipped for the owner's own token ([TANDEM-DECIDE-3]). */
function timeStep(grant: Grant, bound: TimeBound, held: HeldState): void {
  if (isOwnerSelf(grant)) return;
  checkTime(grant, bound);
  checkSchedule(grant.leaf.schedule, bound, held.timeZone);
}

/** Step 9 ([TANDEM-USES-5], [TANDEM-REV-10]): any link or holder key revoked, or the lock's list older than the chain demands. */
function revocationStep(grant: Grant, held: HeldState): void {
  for (const cti of grant.ctis) {
    if (held.revoked(cti)) throw new Refusal(Status.REVOKED, 'a token of the chain is revoked');
  }
  for (const holder of grant.holders) {
    // [TANDEM-REV-10]: a revoked phone key revokes every link bound to it.
    if (held.revoked(holder)) throw new Refusal(Status.REVOKED, 'a key of the chain is revoked');
  }
  if (held.revocationVersion < grant.minRevocation) {
    throw new Refusal(
      Status.REVOCATION_STALE,
      `the lock holds revocation version ${held.revocationVersion}, the token needs ${grant.minRevocation}`,
    );
  }
}

/**
 * Step 10 ([TANDEM-USES-1] to [TANDEM-USES-4]): the tokens to count, refused when one is exhausted or a new
 * counter would pass its root's quota. Read-only commands count nothing and pass ([TANDEM-USES-2]).
 */
function usesStep(
  request: UnlockRequest,
  limited: readonly CountedToken[],
  held: HeldState,
): readonly CountedToken[] {
  if (READ_ONLY_COMMANDS.has(request.command)) return [];
  for (const t of limited) {
    const used = held.usesCounted(t.id);
    if (used >= t.maxUses)
      throw new Refusal(Status.USES_EXHAUSTED, `all ${t.maxUses} uses of a token of the chain are spent`);
    if (used === 0 && !held.groupHasRoom(t.group)) {
      throw new Refusal(
        Status.QUOTA_EXCEEDED,
        'the tokens under this root already hold every use counter the lock keeps for one root',
      );
    }
  }
  return limited;
}

/** Step 11 ([TANDEM-POP-5]). */
function scopeStep(request: UnlockRequest, grant: Grant): void {
  checkScope(grant.leaf, SCOPE_OF_COMMAND[request.command]);
}

// ---------------------------------------------------------------------------------------------------------
// The decision.
// ---------------------------------------------------------------------------------------------------------

/**
 * Decides a decoded request (module comment). `challenge` is what the caller found when it spent the nonce
 * the request names. Never throws: an exception that is not a refusal or a ProtocolError is a FAULT verdict.
 */
export function decide(
  input: DecodedRequest & { readonly challenge: TakenChallenge },
  held: HeldState,
  bound: TimeBound,
): Verdict {
  const { request, args, challenge } = input;
  let grant: Grant | undefined;
  let signers: Signers | undefined;
  let possession = false;
  let subjects: readonly string[] | undefined;
  let owner = false;
  try {
    const found = chainStep(request, held);
    safeModeStep(request, held);
    if ('grant' in found) {
      grant = found.grant;
    } else {
      try {
        grant = verifyChainStep(found.chain, held);
      } catch (error) {
        return chainRefusal(error, found.chain, request, challenge, held);
      }
    }
    const derived = derive(grant);
    signers = derived.signers;
    safeModeRootStep(grant, held);
    possessionStep(request, challenge, grant.leaf.cnf, grant.chainHash, held.lockId);
    possession = true;
    owner = grant.anchor.role === 'owner';
    subjects = derived.subjects;
    // [TANDEM-LOCKOUT-3]: a chain rooted in an owner anchor is never locked out.
    if (!owner) lockoutStep(request, subjects, held);
    timeStep(grant, bound, held);
    revocationStep(grant, held);
    const counted = usesStep(request, derived.limited, held);
    scopeStep(request, grant);
    return { ok: true, status: Status.OK, request, args, grant, counted, signers };
  } catch (error) {
    const status = statusOf(error);
    const evidence = possession && !owner && LOCKOUT_EVIDENCE.has(status) ? subjects : undefined;
    return {
      ok: false,
      status,
      message: messageOf(error),
      request,
      ...(grant === undefined ? {} : { grant }),
      ...(signers === undefined ? {} : { signers }),
      possession,
      ...(evidence === undefined ? {} : { evidence }),
    };
  }
}

/**
 * A chain that failed steps 2-4. Only a narrowing failure (ERR_CHAIN_INVALID: every signature verified,
 * a delegator signed a link that widens its parent) can be evidence, and only when the request also proves
 * possession of the broken chain's leaf key: then a key holder is misusing it ([TANDEM-LOCKOUT-1]).
 */
function chainRefusal(
  error: unknown,
  chain: readonly Uint8Array[],
  request: UnlockRequest,
  challenge: TakenChallenge,
  held: HeldState,
): Verdict {
  const status = statusOf(error);
  const refusal = { ok: false as const, status, message: messageOf(error), request, possession: false };
  if (!(error instanceof ProtocolError) || error.code !== 'ERR_CHAIN_INVALID') return refusal;
  try {
    const tokens = chain.map((t) => decodeToken(t));
    const kid = tokens[0]!.sign1.kid;
    const anchor = kid === undefined ? undefined : held.anchors(kid);
    if (anchor === undefined) return refusal;
    const leaf = tokens[tokens.length - 1]!.claims;
    possessionStep(request, challenge, leaf.cnf, chainHash(chain), held.lockId);
    const signers = signersOf(anchor.key, tokens);
    if (anchor.role === 'owner') return { ...refusal, signers, possession: true };
    return { ...refusal, signers, possession: true, evidence: subjectsOf(anchor.key, tokens) };
  } catch {
    return refusal;
  }
}
