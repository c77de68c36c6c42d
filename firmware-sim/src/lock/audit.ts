/**
 * What the lock writes to its audit log for every attempt (ARCHITECTURE.md flow 4; SPEC.md §5.7: "every
 * attempt, accepted or refused, becomes an audit record"), and how an audit record is queued for the cloud.
 *
 * Payload: a CBOR map with integer keys ([TANDEM-GEN-1]):
 *
 * | key | field      | type   | meaning                                                             |
 * | --- | ---------- | ------ | ------------------------------------------------------------------- |
 * | 1   | status     | uint   | the wire status (SPEC.md §10)                                       |
 * | 2   | kind       | uint   | 0 request, 1 revocation update, 2 time beacon, 3 lock event         |
 * | 3   | command    | uint   | the request's command ([TANDEM-POP-5]), when it decoded             |
 * | 4   | cti        | bstr   | the leaf token's id, when the chain decoded                         |
 * | 5   | rider      | tstr   | the leaf's `tandem.rider`, when present: a label its signer wrote   |
 * | 6   | time       | uint   | trusted time, earliest bound (Unix seconds)                         |
 * | 7   | peer       | tstr   | who sent it (connection id given by the transport), ≤ 32 chars      |
 * | 8   | suppressed | uint   | refusals of this peer not written individually while rate limited   |
 * | 9   | version    | uint   | revocation version applied or offered                               |
 * | 10  | event      | tstr   | lock events: "boot", "lockout", "lockout-cleared", "safe-mode", …   |
 * | 11  | wire seq   | uint   | outbox sequence of the signed record sent to the cloud, if queued   |
 * | 12  | wire hash  | bstr   | SHA-256 of that record ([TANDEM-MQTT-7]): the chain resumes from it |
 * | 13  | signers    | [bstr] | who signed each token, root first: 8-byte key thumbprints           |
 * | 14  | holder     | bstr   | the leaf's holder key (`cnf`), 8-byte thumbprint                    |
 * | 15  | detail     | map    | lock events: tstr → uint, e.g. a refused outbox ack's epoch and sequence |
 *
 * [TANDEM-AUDIT-1]: `rider` is whatever the token's signer wrote (a delegator can write any name); who acted
 * is `signers` and `holder`, the first 8 bytes of SHA-256 of each key's COSE_Key ([TANDEM-KEY-2]), which the
 * owner can match against the keys they know.
 *
 * This is the lock's own trail (READ_AUDIT returns it as `[seq, time, prevHash, payload, signature]` records of
 * the AuditLog, whose hash chain and device signatures `verifyAuditLog` in `../store/audit-log.ts` checks). The
 * cloud receives the signed audit records of SPEC.md [TANDEM-MQTT-6] through the outbox instead.
 */
import type { CborValue } from '../../../protocol/src/cbor.js';
import { decodeStrict, encode } from '../../../protocol/src/cbor.js';
import { ProtocolError } from '../../../protocol/src/errors.js';
import type { Command } from '../../../protocol/src/pop.js';
import { isStatus } from '../../../protocol/src/status.js';
import type { Status } from '../../../protocol/src/status.js';
import type { AuditRecord } from '../store/audit-log.js';

/** What an audit entry is about. */
export type AuditKind = 'request' | 'revocation' | 'time' | 'event';
const KIND_CODE: Record<AuditKind, number> = { request: 0, revocation: 1, time: 2, event: 3 };
const CODE_KIND: readonly AuditKind[] = ['request', 'revocation', 'time', 'event'];

/** One audit entry (the payload of an audit record). */
export interface AuditEntry {
  readonly status: Status;
  readonly kind: AuditKind;
  readonly command?: Command;
  readonly cti?: Uint8Array;
  readonly rider?: string;
  /** Unix seconds (trusted earliest). */
  readonly time: number;
  readonly peer: string;
  readonly suppressed?: number;
  readonly version?: number;
  readonly event?: string;
  readonly wireSequence?: number;
  readonly wireHash?: Uint8Array;
  /** Key thumbprints (8 bytes) of each token's signer, root (its anchor) first ([TANDEM-AUDIT-1]). */
  readonly signers?: readonly Uint8Array[];
  /** Key thumbprint (8 bytes) of the leaf's holder key. */
  readonly holder?: Uint8Array;
  /** Lock events: what the event is about (also in the signed record's detail, [TANDEM-MQTT-6]). */
  readonly detail?: ReadonlyMap<string, number>;
}

/** Longest peer id kept in an audit entry. */
export const AUDIT_PEER_MAX = 32;

/** Encodes an audit entry (module comment). */
export function encodeAuditEntry(e: AuditEntry): Uint8Array {
  const m = new Map<number, CborValue>([
    [1, e.status],
    [2, KIND_CODE[e.kind]],
  ]);
  if (e.command !== undefined) m.set(3, e.command);
  if (e.cti !== undefined) m.set(4, e.cti);
  if (e.rider !== undefined) m.set(5, e.rider);
  m.set(6, e.time);
  m.set(7, e.peer.slice(0, AUDIT_PEER_MAX));
  if (e.suppressed !== undefined && e.suppressed > 0) m.set(8, e.suppressed);
  if (e.version !== undefined) m.set(9, e.version);
  if (e.event !== undefined) m.set(10, e.event);
  if (e.wireSequence !== undefined) m.set(11, e.wireSequence);
  if (e.wireHash !== undefined) m.set(12, e.wireHash);
  if (e.signers !== undefined) m.set(13, [...e.signers]);
  if (e.holder !== undefined) m.set(14, e.holder);
  if (e.detail !== undefined && e.detail.size > 0) m.set(15, new Map<string, CborValue>(e.detail));
  return encode(m);
}

function bad(what: string): never {
  throw new ProtocolError('ERR_MESSAGE_INVALID', `audit entry ${what}`);
}

/** Decodes an audit entry (for READ_AUDIT readers, the cloud and tests). Throws only ProtocolError. */
export function decodeAuditEntry(bytes: Uint8Array): AuditEntry {
  const m = decodeStrict(bytes, { maxBytes: 512, maxDepth: 2, maxItems: 24 });
  if (!(m instanceof Map)) bad('must be a map');
  for (const k of m.keys()) if (typeof k !== 'number' || k < 1 || k > 15) bad(`has unknown key ${String(k)}`);
  const status = m.get(1);
  if (!isStatus(status)) bad('"status" (1) must be a status byte');
  const kind = CODE_KIND[m.get(2) as number];
  if (kind === undefined) bad('"kind" (2) must be 0..3');
  const time = m.get(6);
  const peer = m.get(7);
  if (typeof time !== 'number' || typeof peer !== 'string') bad('needs "time" (6) and "peer" (7)');
  const command = m.get(3);
  const cti = m.get(4);
  const rider = m.get(5);
  const suppressed = m.get(8);
  const version = m.get(9);
  const event = m.get(10);
  const wireSequence = m.get(11);
  const wireHash = m.get(12);
  const signers = m.get(13);
  const holder = m.get(14);
  if (signers !== undefined && !(Array.isArray(signers) && signers.every((x) => x instanceof Uint8Array)))
    bad('"signers" (13) must be an array of byte strings');
  const rawDetail = m.get(15);
  let detail: Map<string, number> | undefined;
  if (rawDetail !== undefined) {
    if (!(rawDetail instanceof Map)) bad('"detail" (15) must be a map');
    detail = new Map();
    for (const [k, v] of rawDetail) {
      if (typeof k !== 'string' || typeof v !== 'number') bad('"detail" (15) must map text to integers');
      detail.set(k, v);
    }
  }
  return {
    status,
    kind,
    time,
    peer,
    ...(typeof command === 'number' ? { command: command as Command } : {}),
    ...(cti instanceof Uint8Array ? { cti } : {}),
    ...(typeof rider === 'string' ? { rider } : {}),
    ...(typeof suppressed === 'number' ? { suppressed } : {}),
    ...(typeof version === 'number' ? { version } : {}),
    ...(typeof event === 'string' ? { event } : {}),
    ...(typeof wireSequence === 'number' ? { wireSequence } : {}),
    ...(wireHash instanceof Uint8Array ? { wireHash } : {}),
    ...(signers === undefined ? {} : { signers: signers as Uint8Array[] }),
    ...(holder instanceof Uint8Array ? { holder } : {}),
    ...(detail === undefined ? {} : { detail }),
  };
}

/**
 * The CBOR form of a local audit log record for READ_AUDIT: `[seq, time, prevHash, payload, signature]`, with
 * `time` (Unix milliseconds) as an 8-byte big-endian byte string exactly as `auditHash` hashes it:
 * milliseconds pass 2^32, which Tandem's CBOR profile cannot carry as an integer ([TANDEM-CBOR-9]).
 */
export function auditRecordCbor(r: AuditRecord): CborValue {
  const time = new Uint8Array(8);
  new DataView(time.buffer).setBigUint64(0, BigInt(r.time));
  return [r.seq, time, r.prevHash, r.payload, r.signature];
}
