/**
 * What the lock records of every attempt (ARCHITECTURE.md flow 4; SPEC.md §5.7: "every attempt, accepted or
 * refused, becomes an audit record"), and how its local audit trail is read and verified.
 *
 * [TANDEM-AUDIT-2]: the local trail (`AuditLog`, `audit.log`) keeps the device-signed audit records of
 * [TANDEM-MQTT-6] themselves, the very bytes queued for the cloud, hash-chained by their `previous hash`
 * ([TANDEM-MQTT-7]). One device signature per attempt: nothing is signed twice. What an attempt records
 * ({@link AuditEntry}) goes into the record's fields and its `detail` map:
 *
 * | entry field  | record field                                                                      |
 * | ------------ | --------------------------------------------------------------------------------- |
 * | status       | 6 status                                                                          |
 * | kind, event  | 5 event: the command's name (acted), `refused`, `busy`, `rate-limited`, `fault`,   |
 * |              | `revocation-applied` / `-refused`, `time-beacon` / `time-refused`, or the event    |
 * | command      | 7 command                                                                         |
 * | cti          | 8 token id                                                                        |
 * | rider        | 9 rider                                                                           |
 * | time         | 3 time (trusted earliest, Unix seconds)                                            |
 * | peer         | detail `peer` (at most 64 characters)                                             |
 * | suppressed   | detail `suppressed`: refusals of this peer not recorded while rate limited        |
 * | version      | detail `version`: revocation version applied or offered                          |
 * | signers      | detail `signers`: hex thumbprints joined by `.`, root first ([TANDEM-AUDIT-1])    |
 * | holder       | detail `holder`: hex thumbprint of the leaf's holder key                          |
 * | detail       | the other detail entries (lock events)                                            |
 *
 * [TANDEM-AUDIT-1]: `rider` is whatever the token's signer wrote (a delegator can write any name); who acted
 * is `signers` and `holder`, the first 8 bytes of SHA-256 of each key's COSE_Key ([TANDEM-KEY-2]), which the
 * owner can match against the keys they know.
 *
 * READ_AUDIT ([TANDEM-AUDIT-3]) returns the trail as `[seq, record]` pairs ({@link auditRecordCbor}), which
 * {@link verifyAuditTrail} checks with the lock's device key.
 */
import type { CborValue } from '../../../protocol/src/cbor.js';
import { decodeStrict } from '../../../protocol/src/cbor.js';
import { ProtocolError } from '../../../protocol/src/errors.js';
import type { PublicKey } from '../../../protocol/src/keys.js';
import type { AuditRecord as WireAuditRecord } from '../../../protocol/src/mqtt.js';
import { auditRecordHash, decodeAuditRecord, verifyAuditRecord } from '../../../protocol/src/mqtt.js';
import type { Command } from '../../../protocol/src/pop.js';
import type { Status } from '../../../protocol/src/status.js';
import type { AuditRecord } from '../store/audit-log.js';

/** What an audit entry is about. */
export type AuditKind = 'request' | 'revocation' | 'time' | 'event';

/** What one attempt or event records (module comment: where each field goes in the signed record). */
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
  /** Key thumbprints (8 bytes) of each token's signer, root (its anchor) first ([TANDEM-AUDIT-1]). */
  readonly signers?: readonly Uint8Array[];
  /** Key thumbprint (8 bytes) of the leaf's holder key. */
  readonly holder?: Uint8Array;
  /** Lock events: what the event is about (the record's detail, [TANDEM-MQTT-9]). */
  readonly detail?: ReadonlyMap<string, number>;
}

/** Longest peer id kept in an audit record's detail ([TANDEM-MQTT-9]: text values ≤ 64 characters). */
export const AUDIT_PEER_MAX = 64;

/** Detail keys the entry's own fields use; the rest is the entry's `detail`. */
const ENTRY_DETAIL = new Set(['peer', 'suppressed', 'version', 'signers', 'holder', 'not_queued']);

const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

/** The kind of entry a record's `event` stands for (module comment). */
export function kindOfEvent(event: string, command: Command | undefined): AuditKind {
  if (event === 'revocation-applied' || event === 'revocation-refused') return 'revocation';
  if (event === 'time-beacon' || event === 'time-refused') return 'time';
  if (command !== undefined || ['refused', 'busy', 'rate-limited', 'fault'].includes(event)) return 'request';
  return 'event';
}

/**
 * The entry a signed audit record of the local trail records (for the console, the owner's tools and
 * tests). Does not check the signature: {@link verifyAuditTrail} does. Throws only ProtocolError.
 */
export function decodeAuditEntry(record: Uint8Array): AuditEntry & { readonly notQueued?: number } {
  return entryOf(decodeAuditRecord(record).record);
}

function entryOf(r: WireAuditRecord): AuditEntry & { readonly notQueued?: number } {
  const d = r.detail;
  const peer = d.get('peer');
  const suppressed = d.get('suppressed');
  const version = d.get('version');
  const signers = d.get('signers');
  const holder = d.get('holder');
  const notQueued = d.get('not_queued');
  const rest = new Map<string, number>();
  for (const [k, v] of d) if (!ENTRY_DETAIL.has(k) && typeof v === 'number') rest.set(k, v);
  const kind = kindOfEvent(r.event, r.command);
  return {
    status: r.status,
    kind,
    time: r.time,
    peer: typeof peer === 'string' ? peer : '',
    ...(r.command === undefined ? {} : { command: r.command }),
    ...(r.tokenId === undefined ? {} : { cti: r.tokenId }),
    ...(r.rider === undefined ? {} : { rider: r.rider }),
    ...(typeof suppressed === 'number' ? { suppressed } : {}),
    ...(typeof version === 'number' ? { version } : {}),
    ...(kind === 'event' ? { event: r.event } : {}),
    ...(typeof signers === 'string' ? { signers: signers.split('.').map(fromHex) } : {}),
    ...(typeof holder === 'string' ? { holder: fromHex(holder) } : {}),
    ...(rest.size === 0 ? {} : { detail: rest }),
    ...(typeof notQueued === 'number' ? { notQueued } : {}),
  };
}

/** One line for the console's `audit` command: the record's trusted time, event and status (not verified). */
export function describeAuditRecord(record: Uint8Array): string {
  try {
    const r = decodeAuditRecord(record).record;
    return `${new Date(r.time * 1000).toISOString()} ${r.event} status=${r.status} outbox=${r.epoch}/${r.sequence}`;
  } catch {
    return 'undecodable record';
  }
}

/**
 * [TANDEM-AUDIT-3] The CBOR form of a local audit trail record in READ_AUDIT's reply: `[seq, record]`, the
 * trail's sequence number and the signed audit record's bytes ([TANDEM-MQTT-6]) unchanged.
 */
export function auditRecordCbor(r: AuditRecord): CborValue {
  return [r.seq, r.payload];
}

/** Result of {@link verifyAuditTrail}. */
export type AuditTrailVerification =
  | { ok: true; lastSeq: number; lastHash: Uint8Array | undefined }
  | { ok: false; index: number; reason: 'seq-gap' | 'prev-hash' | 'signature' | 'bad-record' };

/**
 * [TANDEM-AUDIT-3] Checks a run of the local trail as the owner does with READ_AUDIT's reply: consecutive
 * trail sequence numbers, each record signed by the lock's device key for this lock id, and each record's
 * `previous hash` equal to SHA-256 of the record before it ([TANDEM-MQTT-7]). The first record anchors the
 * chain (the lock drops its oldest records), unless `anchor` gives the hash and sequence the reader already
 * holds. Reports the index of the first bad record.
 */
export function verifyAuditTrail(
  records: readonly AuditRecord[],
  deviceKey: PublicKey,
  lockId: string,
  anchor: { previousHash?: Uint8Array; nextSeq?: number } = {},
): AuditTrailVerification {
  let prev = anchor.previousHash;
  let expectSeq = anchor.nextSeq;
  let lastSeq = (anchor.nextSeq ?? 1) - 1;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (!Number.isSafeInteger(r.seq) || r.seq < 1) return { ok: false, index: i, reason: 'bad-record' };
    if (expectSeq !== undefined && r.seq !== expectSeq) return { ok: false, index: i, reason: 'seq-gap' };
    let record: WireAuditRecord;
    try {
      record = verifyAuditRecord(r.payload, deviceKey, lockId);
    } catch (error) {
      // Not signed by this lock's device key, or signed for another lock: not this lock's record.
      const code = error instanceof ProtocolError ? error.code : undefined;
      const forged = code === 'ERR_SIGNATURE_INVALID' || code === 'ERR_AUDIENCE_MISMATCH';
      return { ok: false, index: i, reason: forged ? 'signature' : 'bad-record' };
    }
    if (prev !== undefined && Buffer.compare(record.previousHash, prev) !== 0) {
      return { ok: false, index: i, reason: 'prev-hash' };
    }
    prev = auditRecordHash(r.payload);
    expectSeq = r.seq + 1;
    lastSeq = r.seq;
  }
  return { ok: true, lastSeq, lastHash: prev };
}

/**
 * [TANDEM-AUDIT-4] The chain head a format-1 local entry noted (its key 12, the SHA-256 of the signed record
 * it was queued as), for the migration of a format-1 `audit.log`; undefined when it noted none or does not
 * decode.
 */
export function legacyChainHead(payload: Uint8Array): Uint8Array | undefined {
  try {
    const m = decodeStrict(payload, { maxBytes: 512, maxDepth: 2, maxItems: 24 });
    const h = m instanceof Map ? m.get(12) : undefined;
    return h instanceof Uint8Array && h.length === 32 ? h : undefined;
  } catch {
    return undefined;
  }
}
