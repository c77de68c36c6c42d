/**
 * Proof of possession (SPEC.md §5.8). The lock issues a challenge: a fresh 16-byte nonce, its lock id and
 * time. The rider's phone answers with a request carrying the token chain (or, for a repeat, a reference to
 * a chain the lock has verified), the command, the echoed nonce and a signature by the leaf's holder key
 * (`cnf`, RFC 8747) over all of them. A copied token is useless without that key ([TANDEM-POP-1]); a request
 * is bound to one nonce that the lock accepts once ([TANDEM-POP-4]), so a recorded request cannot be replayed.
 */
import type { CborLimits, CborValue } from './cbor.js';
import { decodeStrict, encode } from './cbor.js';
import { ProtocolError } from './errors.js';
import type { PrivateKey, PublicKey } from './keys.js';
import { signBytes, verifyBytes } from './keys.js';
import type { Scope } from './token.js';

/** Commands a request can carry ([TANDEM-POP-5]) and the scope each needs. */
export enum Command {
  UNLOCK = 1,
  LOCK = 2,
  STATUS = 3,
  ADD_ANCHOR = 16,
  REMOVE_ANCHOR = 17,
  ADD_OWNER_KEY = 18,
  REMOVE_OWNER_KEY = 19,
  SET_CONFIG = 20,
  READ_AUDIT = 21,
  CLEAR_LOCKOUT = 22,
}

/** The scope token each command needs ([TANDEM-POP-5]). */
export const SCOPE_OF_COMMAND: Readonly<Record<Command, Scope>> = {
  [Command.UNLOCK]: 'unlock',
  [Command.LOCK]: 'lock',
  [Command.STATUS]: 'status',
  [Command.ADD_ANCHOR]: 'manage',
  [Command.REMOVE_ANCHOR]: 'manage',
  [Command.ADD_OWNER_KEY]: 'manage',
  [Command.REMOVE_OWNER_KEY]: 'manage',
  [Command.SET_CONFIG]: 'manage',
  [Command.READ_AUDIT]: 'manage',
  [Command.CLEAR_LOCKOUT]: 'manage',
};

/** Nonce length in bytes ([TANDEM-POP-4]). */
export const NONCE_LENGTH = 16;
/** Length of a chain reference: the first bytes of the chain hash ([TANDEM-POP-6]). */
export const CHAIN_REF_LENGTH = 16;

/** Request map keys ([TANDEM-POP-2]). */
export const REQUEST_KEY = { chain: 1, chainRef: 2, command: 3, nonce: 4, args: 5, signature: 6 } as const;

/** A rider's request. Exactly one of `chain` and `chainRef` is present. */
export interface UnlockRequest {
  readonly chain?: readonly Uint8Array[];
  readonly chainRef?: Uint8Array;
  readonly command: Command;
  readonly nonce: Uint8Array;
  /** CBOR-encoded command arguments (management commands); empty when none. */
  readonly args: Uint8Array;
  readonly signature: Uint8Array;
}

const REQUEST_LIMITS: CborLimits = { maxBytes: 4096, maxDepth: 3, maxItems: 8 };
const EMPTY = new Uint8Array(0);
const POP_CONTEXT = 'Tandem-PoP-v1';

// The array head (6 items) and the context string "Tandem-PoP-v1" as a CBOR text string: the constant start
// of every PoP input.
const POP_PREFIX = Uint8Array.from([0x86, 0x60 | POP_CONTEXT.length, ...Buffer.from(POP_CONTEXT, 'ascii')]);

/** A CBOR head of `major` type for the unsigned argument `n` (RFC 8949 §3.1, shortest form). */
function cborHead(major: number, n: number): Uint8Array {
  const m = major << 5;
  if (n < 24) return Uint8Array.of(m | n);
  if (n < 0x100) return Uint8Array.of(m | 24, n);
  if (n < 0x10000) return Uint8Array.of(m | 25, n >> 8, n & 0xff);
  return Uint8Array.of(m | 26, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

/** Bytes of {@link cborHead}`(major, n)`. */
function headLength(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

/** Writes {@link cborHead}`(major, n)` into `out` at `o`; returns the offset after it. */
function writeHead(out: Uint8Array, o: number, major: number, n: number): number {
  const m = major << 5;
  if (n < 24) {
    out[o] = m | n;
    return o + 1;
  }
  if (n < 0x100) {
    out[o] = m | 24;
    out[o + 1] = n;
    return o + 2;
  }
  if (n < 0x10000) {
    out[o] = m | 25;
    out[o + 1] = n >> 8;
    out[o + 2] = n & 0xff;
    return o + 3;
  }
  out[o] = m | 26;
  out[o + 1] = n >>> 24;
  out[o + 2] = (n >> 16) & 0xff;
  out[o + 3] = (n >> 8) & 0xff;
  out[o + 4] = n & 0xff;
  return o + 5;
}

// The constant start of the PoP input for one lock: POP_PREFIX and the lock id as a text string. A lock
// builds it for its own id on every request, so the last one is kept.
let lastLockId: string | undefined;
let lastLockPrefix: Uint8Array = POP_PREFIX;
function lockPrefix(lockId: string): Uint8Array {
  if (lockId !== lastLockId) {
    const id = Buffer.from(lockId, 'utf8');
    const head = cborHead(3, id.length);
    const p = new Uint8Array(POP_PREFIX.length + head.length + id.length);
    p.set(POP_PREFIX, 0);
    p.set(head, POP_PREFIX.length);
    p.set(id, POP_PREFIX.length + head.length);
    lastLockPrefix = p;
    lastLockId = lockId;
  }
  return lastLockPrefix;
}

/**
 * The bytes the holder signs ([TANDEM-POP-3]): CBOR `["Tandem-PoP-v1", lock id, nonce, command, args,
 * chain hash]`. The context string keeps the signature from being valid for any other Tandem message.
 * Written directly as bytes, the same bytes the generic encoder gives (pop.test.ts compares them): they are
 * built for every proof of possession the lock checks, on the unlock path.
 */
export function popSignedBytes(
  lockId: string,
  nonce: Uint8Array,
  command: Command,
  args: Uint8Array,
  chainHash: Uint8Array,
): Uint8Array {
  if (!Number.isInteger(command) || command < 0 || command > 0xffffffff) {
    throw new ProtocolError('ERR_MESSAGE_INVALID', `command ${String(command)} is not an unsigned integer`);
  }
  // Sizes first, then one buffer written in place: no array of parts, no head arrays (issue 8, decision cost).
  const start = lockPrefix(lockId);
  const length =
    start.length +
    headLength(nonce.length) +
    nonce.length +
    headLength(command) +
    headLength(args.length) +
    args.length +
    headLength(chainHash.length) +
    chainHash.length;
  const out = new Uint8Array(length);
  out.set(start, 0);
  let o = writeHead(out, start.length, 2, nonce.length);
  out.set(nonce, o);
  o = writeHead(out, o + nonce.length, 0, command);
  o = writeHead(out, o, 2, args.length);
  out.set(args, o);
  o = writeHead(out, o + args.length, 2, chainHash.length);
  out.set(chainHash, o);
  return out;
}

/** Builds and signs a request ([TANDEM-POP-2]). Pass `chainRef` instead of `chain` for a repeat. */
export function createRequest(options: {
  readonly lockId: string;
  readonly nonce: Uint8Array;
  readonly command: Command;
  readonly args?: Uint8Array;
  readonly chain?: readonly Uint8Array[];
  readonly chainRef?: Uint8Array;
  readonly chainHash: Uint8Array;
  readonly holderKey: PrivateKey;
}): Uint8Array {
  const args = options.args ?? EMPTY;
  const signature = signBytes(
    options.holderKey,
    popSignedBytes(options.lockId, options.nonce, options.command, args, options.chainHash),
  );
  const m = new Map<number, CborValue>();
  if (options.chain !== undefined) m.set(REQUEST_KEY.chain, [...options.chain]);
  else if (options.chainRef !== undefined) m.set(REQUEST_KEY.chainRef, options.chainRef);
  m.set(REQUEST_KEY.command, options.command);
  m.set(REQUEST_KEY.nonce, options.nonce);
  if (args.length > 0) m.set(REQUEST_KEY.args, args);
  m.set(REQUEST_KEY.signature, signature);
  return encode(m);
}

function reqError(message: string): never {
  throw new ProtocolError('ERR_MESSAGE_INVALID', message);
}

/** Decodes a request's structure ([TANDEM-POP-2]). Throws ERR_MESSAGE_INVALID naming the field. */
export function decodeRequest(bytes: Uint8Array): UnlockRequest {
  const m = decodeStrict(bytes, REQUEST_LIMITS);
  if (!(m instanceof Map)) reqError('request must be a map');
  for (const k of m.keys()) {
    if (typeof k !== 'number' || k < 1 || k > 6) reqError(`request has unknown key ${JSON.stringify(k)}`);
  }
  const chain = m.get(REQUEST_KEY.chain);
  const chainRef = m.get(REQUEST_KEY.chainRef);
  if ((chain === undefined) === (chainRef === undefined))
    reqError('request must carry exactly one of "chain" (1) and "chainRef" (2)');
  if (
    chain !== undefined &&
    (!Array.isArray(chain) || chain.length === 0 || !chain.every((t) => t instanceof Uint8Array))
  ) {
    reqError('request "chain" (1) must be a non-empty array of byte strings');
  }
  if (chainRef !== undefined && (!(chainRef instanceof Uint8Array) || chainRef.length !== CHAIN_REF_LENGTH)) {
    reqError(`request "chainRef" (2) must be a byte string of ${CHAIN_REF_LENGTH} bytes`);
  }
  const command = m.get(REQUEST_KEY.command);
  if (typeof command !== 'number' || !(command in SCOPE_OF_COMMAND))
    reqError('request "command" (3) is not a known command');
  const nonce = m.get(REQUEST_KEY.nonce);
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_LENGTH) {
    reqError(`request "nonce" (4) must be a byte string of ${NONCE_LENGTH} bytes`);
  }
  const args = m.get(REQUEST_KEY.args) ?? EMPTY;
  if (!(args instanceof Uint8Array)) reqError('request "args" (5) must be a byte string');
  const signature = m.get(REQUEST_KEY.signature);
  if (!(signature instanceof Uint8Array) || signature.length !== 64) {
    reqError('request "signature" (6) must be a byte string of 64 bytes');
  }
  return {
    ...(chain !== undefined ? { chain: chain as Uint8Array[] } : { chainRef: chainRef as Uint8Array }),
    command: command as Command,
    nonce,
    args,
    signature,
  };
}

/**
 * Verifies the proof of possession of a decoded request against the holder key of the verified chain's
 * leaf ([TANDEM-POP-1], [TANDEM-POP-3]). The caller has already matched the nonce to a live challenge of
 * its own ([TANDEM-POP-4]). Throws ERR_POP_INVALID.
 */
export function verifyPop(
  request: UnlockRequest,
  lockId: string,
  holder: PublicKey,
  chainHash: Uint8Array,
): void {
  const signed = popSignedBytes(lockId, request.nonce, request.command, request.args, chainHash);
  if (!verifyBytes(holder, signed, request.signature)) {
    throw new ProtocolError('ERR_POP_INVALID', 'proof-of-possession signature verification failed');
  }
}
