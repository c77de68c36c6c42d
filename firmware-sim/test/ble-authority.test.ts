/**
 * The GATT session over the real lock runtime through {@link AuthorityBackend} (simulated mechanism, stores on
 * a simulated card, manual clock): a real token unlocks, the challenge is the authority's, the outbox's
 * signed records go out on the relay characteristic, and only the issuer's signed outbox ack clears them.
 */
import { describe, expect, it } from 'vitest';
import type { Result } from '../../protocol/src/gatt.js';
import {
  MessageType,
  Reassembler,
  decodeChallenge,
  decodeLockInfo,
  decodeResult,
  frameMessage,
} from '../../protocol/src/gatt.js';
import { encodeOutboxAck, verifyAuditRecord } from '../../protocol/src/mqtt.js';
import { Command } from '../../protocol/src/pop.js';
import { Status } from '../../protocol/src/status.js';
import type { NotifyingCharacteristic } from '../src/ble/gatt-session.js';
import { GattSession } from '../src/ble/gatt-session.js';
import { AuthorityBackend } from '../src/ble/authority-backend.js';
import { LOCK, makeLock, settle } from './lock-harness.js';

async function connect() {
  const lock = await makeLock();
  const backend = new AuthorityBackend({
    authority: lock.authority,
    outbox: lock.stores.outbox,
    issuerKey: lock.anchors.issuerKey,
    firmwareVersion: '0.1.0',
  });
  const session = new GattSession({
    peer: '54:41:4e:00:00:01#1',
    backend,
    clock: lock.clock,
    onDrop: () => {},
  });
  session.setMtu(185);
  const inbox: Record<NotifyingCharacteristic, { type: number; body: Uint8Array }[]> = {
    result: [],
    challenge: [],
    relay: [],
  };
  const subscribe = (c: NotifyingCharacteristic): void => {
    const r = new Reassembler();
    session.subscribe(c, (frame) => {
      const m = r.push(frame);
      if (m !== undefined) inbox[c].push(m);
    });
  };
  const results = (): Result[] =>
    inbox.result.filter((m) => m.type === MessageType.result).map((m) => decodeResult(m.body));
  const write = async (
    c: 'request' | 'delivery' | 'relay',
    type: number,
    body: Uint8Array,
  ): Promise<void> => {
    for (const f of frameMessage(type, body, session.mtu)) session.write(c, f);
    await settle(lock.clock, session.settled());
  };
  return { lock, backend, session, inbox, subscribe, results, write };
}

describe('AuthorityBackend', () => {
  it('unlocks with a real token answering the authority’s challenge, and a repeat by chain reference', async () => {
    const t = await connect();
    t.subscribe('result');
    const challenge = decodeChallenge(t.inbox.result[0]!.body);
    expect(challenge.lockId).toBe(LOCK);
    const chain = [t.lock.token()];
    await t.write('request', MessageType.unlockRequest, t.lock.request({ chain, nonce: challenge.nonce }));
    expect(t.results()[0]).toMatchObject({
      status: Status.OK,
      answers: MessageType.unlockRequest,
      command: Command.UNLOCK,
      nonce: challenge.nonce,
    });
    expect(t.lock.pulses.length).toBe(1);
    // The challenge notified after the result answers the next command.
    const next = decodeChallenge(t.inbox.result.filter((m) => m.type === MessageType.challenge)[1]!.body);
    await t.lock.relock();
    await t.write(
      'request',
      MessageType.unlockRequest,
      t.lock.request({ chain, nonce: next.nonce, byRef: true }),
    );
    expect(t.results()[1]!.status).toBe(Status.OK);
    expect(t.lock.pulses.length).toBe(2);
    // A request replaying a spent nonce is refused by the authority, and the solenoid stays still.
    await t.write('request', MessageType.unlockRequest, t.lock.request({ chain, nonce: challenge.nonce }));
    expect(t.results()[2]!.status).toBe(Status.CHALLENGE_UNKNOWN);
    expect(t.lock.pulses.length).toBe(2);
  });

  it('reports lock info from the authority’s snapshot', async () => {
    const t = await connect();
    const read = await t.session.read('lockInfo', 0);
    if (!read.ok) throw new Error('read failed');
    const info = decodeLockInfo(read.data);
    const s = t.lock.authority.snapshot();
    expect(info).toEqual({
      lockId: LOCK,
      firmwareVersion: '0.1.0',
      revocationVersion: s.revocationVersion,
      timeFloor: s.timeFloor,
      uncertainty: s.uncertainty,
      state: 'locked',
    });
  });

  it('relays the outbox’s signed records and drops them only on the issuer’s signed ack', async () => {
    const t = await connect();
    const queued = t.lock.stores.outbox.peek(100);
    expect(queued.length).toBeGreaterThan(0); // boot and time beacon audit records
    expect(t.backend.advertisedFlags()).toEqual({ relayPending: true, alarm: false });
    t.subscribe('result');
    t.subscribe('relay');
    await settle(t.lock.clock, t.session.settled());
    await new Promise((resolve) => setImmediate(resolve));
    expect(t.inbox.relay.map((m) => m.type)).toEqual(queued.map(() => MessageType.auditRecord));
    for (const m of t.inbox.relay)
      expect(verifyAuditRecord(m.body, t.lock.device.publicKey, LOCK)).toBeDefined();

    const last = queued[queued.length - 1]!.seq;
    // Signed by the rider's key under the issuer's kid: refused, nothing dropped.
    const forged = encodeOutboxAck(
      { lockId: LOCK, sequence: last, epoch: t.lock.stores.outbox.epoch },
      t.lock.w.rider,
      t.lock.w.issuerKid,
    );
    await t.write('relay', MessageType.outboxAck, forged);
    expect(t.results()[0]!.status).toBe(Status.BAD_SIGNATURE);
    expect(t.lock.stores.outbox.size).toBe(queued.length);

    // [TANDEM-MQTT-11]: issuer-signed, but for another epoch (an old retained ack from before a storage
    // reset) or beyond the last record queued: ACK_MISMATCH, nothing dropped.
    const epoch = t.lock.stores.outbox.epoch;
    const stale = encodeOutboxAck(
      { lockId: LOCK, sequence: last, epoch: epoch === 1 ? 2 : epoch - 1 },
      t.lock.w.issuer,
      t.lock.w.issuerKid,
    );
    await t.write('relay', MessageType.outboxAck, stale);
    expect(t.results()[1]!.status).toBe(Status.ACK_MISMATCH);
    const beyond = encodeOutboxAck(
      { lockId: LOCK, sequence: t.lock.stores.outbox.lastSeq + 1, epoch },
      t.lock.w.issuer,
      t.lock.w.issuerKid,
    );
    await t.write('relay', MessageType.outboxAck, beyond);
    expect(t.results()[2]!.status).toBe(Status.ACK_MISMATCH);
    // Nothing dropped; each issuer-signed refusal is audited with the ack's epoch and sequence.
    const refusals = t.lock.stores.outbox.peek(100).slice(queued.length);
    expect(refusals).toHaveLength(2);
    const details = refusals.map((m) => {
      const r = verifyAuditRecord(m.payload, t.lock.device.publicKey, LOCK);
      expect(r).toMatchObject({ event: 'outbox-ack-refused', status: Status.ACK_MISMATCH });
      return [r.detail.get('epoch'), r.detail.get('sequence')];
    });
    expect(details).toEqual([
      [epoch === 1 ? 2 : epoch - 1, last],
      [epoch, last + 2],
    ]);

    const ack = encodeOutboxAck({ lockId: LOCK, sequence: last, epoch }, t.lock.w.issuer, t.lock.w.issuerKid);
    await t.write('relay', MessageType.outboxAck, ack);
    expect(t.results()[3]).toMatchObject({ status: Status.OK, answers: MessageType.outboxAck });
    expect(t.lock.stores.outbox.peek(100).every((e) => e.seq > last)).toBe(true);
  });
});
