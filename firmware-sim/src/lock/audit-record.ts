/**
 * The lock's writer of its own audit records ([TANDEM-MQTT-6]): the bytes `encodeAuditRecord` of
 * `protocol/src/mqtt.ts` gives for the same record (Ed25519 signatures are deterministic, so the whole
 * COSE_Sign1 is byte-identical; `test/audit-record.test.ts` checks it), written in one pass into one buffer.
 *
 * Why: the lock writes one of these for every attempt, and in the decision's budget ([TANDEM-AUDIT-2], issue 8
 * §2: at most 1.2 times the cryptography it must do) the general path cost about as much as half the
 * signature: four cbor-x encodes (payload, protected header, Sig_structure, envelope), four well-formedness
 * walks and copies, and a strict decode of the payload to check it. Here the protected header is encoded
 * once, the payload is written straight from the fields, the Sig_structure and the envelope share it.
 *
 * A record outside the shapes written here (a field out of range, a non-ASCII or over-long text, a detail
 * value that is not a small integer, a boolean or short ASCII text, a record over 512 bytes) goes through
 * `encodeAuditRecord`, which refuses it with its coded error exactly as before: this writer never emits what
 * the protocol's encoder would refuse.
 */
import type { PrivateKey } from '../../../protocol/src/keys.js';
import { signBytes } from '../../../protocol/src/keys.js';
import type { AuditRecord } from '../../../protocol/src/mqtt.js';
import { MAX_AUDIT_RECORD_BYTES, decodeAuditRecord, encodeAuditRecord } from '../../../protocol/src/mqtt.js';
import { isCommand } from '../../../protocol/src/gatt.js';
import { isStatus } from '../../../protocol/src/status.js';

/** [TANDEM-MQTT-6] `event`. */
const EVENT = /^[a-z][a-z0-9-]{0,31}$/;
/** [TANDEM-MQTT-9] detail keys. */
const DETAIL_KEY = /^[a-z][a-z0-9_-]{0,31}$/;
/** [TANDEM-GEN-3] lock ids. */
const LOCK_ID = /^[a-z0-9][a-z0-9-]{0,31}$/;
const UINT32_MAX = 0xffff_ffff;
const SIGNATURE1 = new TextEncoder().encode('Signature1');

/** Thrown inside the one-pass writer for a record it does not write; never leaves this module. */
class NotWritten extends Error {}

/** Writes CBOR items into a fixed buffer (the record's bound); overflow means "too large": not written. */
class Writer {
  readonly buf = new Uint8Array(MAX_AUDIT_RECORD_BYTES);
  pos = 0;

  /** Empties the writer for the next record: its buffer is reused (issue 8: no allocation per record). */
  reset(): this {
    this.pos = 0;
    return this;
  }

  head(major: number, n: number): void {
    const b = this.buf;
    let p = this.pos;
    if (p + 5 > b.length) throw new NotWritten();
    const m = major << 5;
    if (n < 24) b[p++] = m | n;
    else if (n < 0x100) {
      b[p++] = m | 24;
      b[p++] = n;
    } else if (n < 0x10000) {
      b[p++] = m | 25;
      b[p++] = n >>> 8;
      b[p++] = n & 0xff;
    } else {
      b[p++] = m | 26;
      b[p++] = n >>> 24;
      b[p++] = (n >>> 16) & 0xff;
      b[p++] = (n >>> 8) & 0xff;
      b[p++] = n & 0xff;
    }
    this.pos = p;
  }

  uint(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > UINT32_MAX) throw new NotWritten();
    this.head(0, n);
  }

  bytes(v: Uint8Array): void {
    this.head(2, v.length);
    if (this.pos + v.length > this.buf.length) throw new NotWritten();
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  /** ASCII text only (one byte per character, as the checks on length in characters assume). */
  ascii(s: string, max: number): void {
    if (s.length === 0 || s.length > max) throw new NotWritten();
    this.head(3, s.length);
    const b = this.buf;
    let p = this.pos;
    if (p + s.length > b.length) throw new NotWritten();
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) throw new NotWritten();
      b[p++] = c;
    }
    this.pos = p;
  }
}

/** Encodes and signs the lock's audit records (module comment). */
export class AuditRecordWriter {
  readonly #key: PrivateKey;
  #protectedBytes: Uint8Array | undefined;
  #checkedLockId: string | undefined;
  /** Records handed to `encodeAuditRecord` because this writer does not write their shape. */
  fallbacks = 0;
  // One buffer each for the payload, the Sig_structure and the COSE_Sign1, reused by every record: encode()
  // is synchronous and copies what it returns out of them, so no record shares their bytes.
  readonly #payloadWriter = new Writer();
  readonly #tbsWriter = new Writer();
  readonly #outWriter = new Writer();

  constructor(deviceKey: PrivateKey) {
    this.#key = deviceKey;
  }

  /** The record's COSE_Sign1 bytes, as `encodeAuditRecord(record, deviceKey)` (module comment). */
  encode(record: AuditRecord): Uint8Array {
    let payload: Uint8Array;
    try {
      payload = this.#payload(record);
    } catch (error) {
      if (!(error instanceof NotWritten)) throw error;
      return this.#fallback(record);
    }
    const protectedBytes = (this.#protectedBytes ??= this.#protectedHeader(record));
    // Sig_structure (RFC 9052 §4.4): ["Signature1", protected, external_aad h'', payload].
    const tbs = this.#tbsWriter.reset();
    tbs.head(4, 4);
    tbs.head(3, SIGNATURE1.length);
    tbs.buf.set(SIGNATURE1, tbs.pos);
    tbs.pos += SIGNATURE1.length;
    const sig = this.#sign(tbs, protectedBytes, payload);
    if (sig === undefined) return this.#fallback(record);
    // COSE_Sign1 (untagged, as signPayload writes it): [protected, {}, payload, signature].
    const out = this.#outWriter.reset();
    try {
      out.head(4, 4);
      out.bytes(protectedBytes);
      out.head(5, 0);
      out.bytes(payload);
      out.bytes(sig);
    } catch (error) {
      if (!(error instanceof NotWritten)) throw error;
      return this.#fallback(record);
    }
    return out.buf.slice(0, out.pos);
  }

  #fallback(record: AuditRecord): Uint8Array {
    this.fallbacks++;
    return encodeAuditRecord(record, this.#key);
  }

  #sign(tbs: Writer, protectedBytes: Uint8Array, payload: Uint8Array): Uint8Array | undefined {
    try {
      tbs.bytes(protectedBytes);
      tbs.head(2, 0);
      tbs.bytes(payload);
    } catch (error) {
      if (!(error instanceof NotWritten)) throw error;
      return undefined;
    }
    return signBytes(this.#key, tbs.buf.subarray(0, tbs.pos));
  }

  /** The protected header as the protocol writes it ({1: alg, 3: content format}), taken from its own output. */
  #protectedHeader(record: AuditRecord): Uint8Array {
    return decodeAuditRecord(encodeAuditRecord(record, this.#key)).sign1.protectedBytes.slice();
  }

  /** The payload map, keys in the order `encodeAuditRecord` inserts them; NotWritten when out of shape. */
  #payload(r: AuditRecord): Uint8Array {
    if (r.lockId !== this.#checkedLockId) {
      if (!LOCK_ID.test(r.lockId)) throw new NotWritten();
      this.#checkedLockId = r.lockId;
    }
    if (r.sequence < 1 || r.epoch < 1 || r.previousHash.length !== 32 || !EVENT.test(r.event)) {
      throw new NotWritten();
    }
    if (!isStatus(r.status) || (r.command !== undefined && !isCommand(r.command))) throw new NotWritten();
    const detail = r.detail;
    const w = this.#payloadWriter.reset();
    w.head(
      5,
      7 +
        (r.command === undefined ? 0 : 1) +
        (r.tokenId === undefined ? 0 : 1) +
        (r.rider === undefined ? 0 : 1) +
        (detail.size > 0 ? 1 : 0),
    );
    w.head(0, 1);
    w.ascii(r.lockId, 32);
    w.head(0, 2);
    w.uint(r.sequence);
    w.head(0, 3);
    w.uint(r.time);
    w.head(0, 4);
    w.bytes(r.previousHash);
    w.head(0, 5);
    w.ascii(r.event, 32);
    w.head(0, 6);
    w.uint(r.status);
    if (r.command !== undefined) {
      w.head(0, 7);
      w.uint(r.command);
    }
    if (r.tokenId !== undefined) {
      if (r.tokenId.length < 1 || r.tokenId.length > 32) throw new NotWritten();
      w.head(0, 8);
      w.bytes(r.tokenId);
    }
    if (r.rider !== undefined) {
      w.head(0, 9);
      w.ascii(r.rider, 64);
    }
    if (detail.size > 0) {
      if (detail.size > 16) throw new NotWritten();
      w.head(0, 10);
      w.head(5, detail.size);
      for (const [k, v] of detail) {
        if (!DETAIL_KEY.test(k)) throw new NotWritten();
        w.ascii(k, 32);
        if (typeof v === 'number') w.uint(v);
        else if (typeof v === 'boolean') w.head(7, v ? 21 : 20);
        else w.ascii(v, 64);
      }
    }
    w.head(0, 11);
    w.uint(r.epoch);
    // A view of the payload writer's buffer: encode() copies it into the Sig_structure and the COSE_Sign1
    // before the next record can reuse the buffer.
    return w.buf.subarray(0, w.pos);
  }
}
