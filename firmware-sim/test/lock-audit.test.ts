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
import { Command } from '../../protocol/src/pop.js';
import { Status } from '../../protocol/src/status.js';
import { decodeAuditEntry } from '../src/lock/audit.js';
import type { Lock } from './lock-harness.js';
import { LOCK, NOW, makeLock } from './lock-harness.js';

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
    // The local trail notes which record went out.
    const local = lock.stores.audit.records().map((r) => decodeAuditEntry(r.payload));
    expect(local.map((e) => e.wireSequence)).toEqual([1, 2, 3, 4, 6]);
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
