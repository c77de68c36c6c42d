/**
 * Audit records for the cloud ([TANDEM-MQTT-6], [TANDEM-MQTT-7], [TANDEM-MQTT-8]): every attempt is one signed
 * record in the outbox, numbered in the outbox sequence and hash-chained, and the chain survives reboots.
 */
import { describe, expect, it } from 'vitest';
import {
  AUDIT_GENESIS_HASH,
  auditRecordHash,
  encodeAlert,
  verifyAuditRecord,
} from '../../protocol/src/mqtt.js';
import type { AuditRecord } from '../../protocol/src/mqtt.js';
import type { CborValue } from '../../protocol/src/cbor.js';
import { encode } from '../../protocol/src/cbor.js';
import { Command } from '../../protocol/src/pop.js';
import { Status } from '../../protocol/src/status.js';
import { decodeAuditEntry, verifyAuditTrail } from '../src/lock/audit.js';
import { AppendLog } from '../src/store/append-log.js';
import { CrashingStoreFs } from '../src/store/crashing-store-fs.js';
import { StoreError } from '../src/store/errors.js';
import type { Lock } from './lock-harness.js';
import { DIR, LOCK, NOW, makeLock } from './lock-harness.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function wire(lock: Lock): { bytes: Uint8Array; seq: number; record: AuditRecord }[] {
  return lock.stores.outbox
    .peek(1000)
    .filter((m) => m.kind === 'audit')
    .map((m) => ({
      bytes: m.payload,
      seq: m.seq,
      record: verifyAuditRecord(m.payload, lock.device.publicKey, LOCK),
    }));
}

function expectChained(
  records: { bytes: Uint8Array; seq: number; record: AuditRecord }[],
  first: Uint8Array,
): void {
  let prev = first;
  for (const r of records) {
    expect(r.record.sequence).toBe(r.seq);
    expect(Buffer.from(r.record.previousHash).toString('hex')).toBe(Buffer.from(prev).toString('hex'));
    prev = auditRecordHash(r.bytes);
  }
}

describe('audit records for the cloud', () => {
  it('every attempt is one signed record, numbered in the outbox sequence, chained by hash', async () => {
    const lock = await makeLock();
    await lock.send(lock.request({ chain: [lock.token({ rider: 'bianca' })] }));
    await lock.relock();
    await lock.send(Uint8Array.of(0xff));
    // An alert between audit records takes an outbox number; the audit chain skips it ([TANDEM-MQTT-7]).
    await lock.stores.outbox.enqueueWith('alert', (sequence, epoch) =>
      encodeAlert({ lockId: LOCK, sequence, epoch, time: NOW, kind: 'bump', detail: new Map() }, lock.device),
    );
    await lock.send(lock.request({ chain: [lock.token({ scope: ['status'] })] }));
    const records = wire(lock);
    expect(records.map((r) => r.record.event)).toEqual([
      'boot',
      'time-beacon',
      'unlock',
      'refused',
      'refused',
    ]);
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4, 6]);
    expectChained(records, AUDIT_GENESIS_HASH);
    expect(records[2]!.record).toMatchObject({ status: Status.OK, command: Command.UNLOCK, rider: 'bianca' });
    expect(records[2]!.record.time).toBeGreaterThanOrEqual(NOW - 2);
    expect(records[3]!.record).toMatchObject({ status: Status.MALFORMED });
    expect(records[4]!.record).toMatchObject({ status: Status.SCOPE_DENIED, command: Command.UNLOCK });
    // [TANDEM-AUDIT-2]: the local trail keeps the very same signed bytes, one signature per attempt.
    const local = lock.stores.audit.records();
    expect(local.map((r) => hex(r.payload))).toEqual(records.map((r) => hex(r.bytes)));
    expect(local.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(verifyAuditTrail(local, lock.device.publicKey, LOCK)).toMatchObject({ ok: true, lastSeq: 5 });
    expect(decodeAuditEntry(local[2]!.payload)).toMatchObject({
      status: Status.OK,
      kind: 'request',
      command: Command.UNLOCK,
      rider: 'bianca',
      peer: 'phone',
    });
  });

  it('the chain continues across a reboot, from the outbox or, once acknowledged, from the local trail', async () => {
    const lock = await makeLock();
    await lock.send(Uint8Array.of(0xff));
    const before = wire(lock);
    const last = auditRecordHash(before.at(-1)!.bytes);
    // Reboot with the records still waiting in the outbox.
    const a = await makeLock({
      fs: lock.fs.reboot({ tornWrites: 'lose' }),
      world: lock.w,
      device: lock.device,
    });
    const afterA = wire(a);
    expect(afterA.slice(0, before.length).map((r) => r.seq)).toEqual(before.map((r) => r.seq));
    expectChained(afterA, AUDIT_GENESIS_HASH);
    // The cloud acknowledges everything; reboot again: the chain resumes from the local audit log.
    const lastA = auditRecordHash(afterA.at(-1)!.bytes);
    await a.stores.outbox.ack(afterA.at(-1)!.seq);
    const b = await makeLock({ fs: a.fs.reboot({ tornWrites: 'lose' }), world: lock.w, device: lock.device });
    const afterB = wire(b);
    expect(afterB[0]!.record.event).toBe('boot');
    expect(afterB[0]!.seq).toBe(afterA.at(-1)!.seq + 1);
    expectChained(afterB, lastA);
    expect(last).not.toEqual(lastA);
  });
});

describe('the local audit trail ([TANDEM-AUDIT-2])', () => {
  it('a record the outbox holds but the local trail missed (cut between the two writes) is copied into it at start', async () => {
    let failing = false;
    const lock = await makeLock({
      wrapStores: (s) => ({
        ...s,
        audit: {
          append: (p: Uint8Array) =>
            failing ? Promise.reject(new StoreError('ERR_STORE_IO', 'the card refused')) : s.audit.append(p),
          since: (n: number) => s.audit.since(n),
          records: () => s.audit.records(),
          get lastSeq() {
            return s.audit.lastSeq;
          },
          get chainHead() {
            return s.audit.chainHead;
          },
        },
      }),
    });
    const errors: string[] = [];
    lock.authority.onEvent((e) => {
      if (e.type === 'store-error') errors.push(e.what);
    });
    failing = true;
    expect((await lock.send(lock.request({ chain: [lock.token()] }))).status).toBe(Status.OK);
    failing = false;
    expect(errors).toEqual(['audit']);
    expect(lock.stores.audit.lastSeq).toBe(2);
    expect(wire(lock)).toHaveLength(3);
    const again = await makeLock({
      fs: lock.fs.reboot({ tornWrites: 'lose' }),
      world: lock.w,
      device: lock.device,
    });
    const local = again.stores.audit.records();
    // boot, beacon, the unlock copied from the outbox, then this boot and beacon.
    expect(local.map((r) => decodeAuditEntry(r.payload).event ?? decodeAuditEntry(r.payload).kind)).toEqual([
      'boot',
      'time',
      'request',
      'boot',
      'time',
    ]);
    expect(local.map((r) => hex(r.payload))).toEqual(wire(again).map((r) => hex(r.bytes)));
    expect(
      verifyAuditTrail(local, lock.device.publicKey, LOCK, { previousHash: AUDIT_GENESIS_HASH }),
    ).toMatchObject({ ok: true, lastSeq: 5 });
  });

  it('a lock updated from the format-1 trail migrates it at start and its chain goes on from the head it noted', async () => {
    const fs = new CrashingStoreFs({ tornWrites: 'lose' });
    const noted = new Uint8Array(32).fill(0x5a);
    // One format-1 entry (`20 | seq | time | prevHash | len | payload | sigLen | sig`) whose payload, the old
    // local CBOR entry, noted the hash of the signed record it was queued as (key 12).
    const payload = encode(
      new Map<number, CborValue>([
        [1, 0],
        [2, 3],
        [6, NOW],
        [7, 'lock'],
        [10, 'boot'],
        [11, 1],
        [12, noted],
      ]),
    );
    const entry = new Uint8Array(1 + 8 + 8 + 32 + 4 + payload.length + 2 + 64);
    const v = new DataView(entry.buffer);
    v.setUint8(0, 0x20);
    v.setBigUint64(1, 1n);
    v.setUint32(49, payload.length);
    entry.set(payload, 53);
    v.setUint16(53 + payload.length, 64);
    const { log } = await AppendLog.open(fs, DIR, 'audit.log', { magic: 'TDAU' });
    await log.append(entry);
    await log.close();
    const lock = await makeLock({ fs });
    expect(lock.corrupt).toEqual([]);
    expect(lock.authority.safeModeReasons).toEqual([]);
    expect((await fs.readdir(DIR)).filter((n) => n.startsWith('audit'))).toEqual(
      expect.arrayContaining(['audit.log', 'audit.log.v1']),
    );
    const records = wire(lock);
    expect(records[0]!.record.event).toBe('boot');
    expectChained(records, noted);
    // The trail numbers on after the old entries.
    expect(lock.stores.audit.records()[0]!.seq).toBe(2);
    expect((await lock.send(lock.request({ chain: [lock.token()] }))).status).toBe(Status.OK);
  });
});
