// The attack catalogue's GATT rows (test/security/CATALOGUE.md): floods on each writable characteristic and
// malformed frames, sent through the per-connection GATT session (firmware-sim/src/ble/gatt-session.ts) into
// the lock's real decision (AuthorityBackend + LockAuthority on simulated hardware). Each row asserts what the
// peer gets (a status, or the dropped link) and that the solenoid never moved; an honest rider is served after.
import { describe, expect, it } from 'vitest';
import { AuthorityBackend } from '../../firmware-sim/src/ble/authority-backend.js';
import { GattSession } from '../../firmware-sim/src/ble/gatt-session.js';
import type { DropReason, WritableCharacteristic } from '../../firmware-sim/src/ble/gatt-session.js';
import { makeLock, settle } from '../../firmware-sim/test/lock-harness.js';
import type { Lock } from '../../firmware-sim/test/lock-harness.js';
import {
  MessageType,
  Reassembler,
  decodeChallenge,
  decodeResult,
  frameMessage,
} from '../../protocol/src/gatt.js';
import type { Result } from '../../protocol/src/gatt.js';
import { Status } from '../../protocol/src/status.js';

interface Peer {
  readonly session: GattSession;
  readonly dropped: DropReason[];
  results(): Result[];
  challenges(): Uint8Array[];
}

function connect(lock: Lock, name: string, mtu = 185): Peer {
  const backend = new AuthorityBackend({
    authority: lock.authority,
    outbox: lock.stores.outbox,
    issuerKey: (kid) => lock.anchors.issuerKey(kid),
    firmwareVersion: 'tandem-test',
  });
  const dropped: DropReason[] = [];
  const session = new GattSession({ peer: name, backend, clock: lock.clock, onDrop: (r) => dropped.push(r) });
  session.setMtu(mtu);
  const inbox: { type: number; body: Uint8Array }[] = [];
  const r = new Reassembler();
  session.subscribe('result', (frame) => {
    const m = r.push(frame);
    if (m !== undefined) inbox.push(m);
  });
  return {
    session,
    dropped,
    results: () => inbox.filter((m) => m.type === MessageType.result).map((m) => decodeResult(m.body)),
    challenges: () =>
      inbox.filter((m) => m.type === MessageType.challenge).map((m) => decodeChallenge(m.body).nonce),
  };
}

async function settled(lock: Lock, peer: Peer): Promise<void> {
  await settle(lock.clock, peer.session.settled());
}

function unmoved(lock: Lock): void {
  expect(lock.pulses).toHaveLength(0);
  expect(lock.mech.solenoid.isEnergised()).toBe(false);
  expect(lock.sm.state).toBe('locked');
}

/** The positive control: an honest rider on a new connection unlocks once. */
async function honestUnlock(lock: Lock): Promise<void> {
  const peer = connect(lock, 'honest');
  const nonce = peer.challenges()[0]!;
  for (const f of frameMessage(
    MessageType.unlockRequest,
    lock.request({ chain: [lock.token()], nonce }),
    185,
  ))
    peer.session.write('request', f);
  await settled(lock, peer);
  expect(peer.results().map((r) => Status[r.status])).toEqual(['OK']);
  expect(lock.pulses).toHaveLength(1);
  peer.session.close();
}

const FLOOD_TYPE: Record<WritableCharacteristic, number> = {
  request: MessageType.unlockRequest,
  delivery: MessageType.revocationUpdate,
  relay: MessageType.outboxAck,
};

describe('attack catalogue: floods on each GATT characteristic [TANDEM-GATT-15]', () => {
  for (const c of ['request', 'delivery', 'relay'] as const) {
    it(`a peer that floods the ${c} characteristic is dropped (flood), the runtime decides nothing, the solenoid never moves`, async () => {
      const lock = await makeLock();
      const peer = connect(lock, `flooder-${c}`);
      const auditBefore = lock.stores.audit.records().length;
      // First frames of 4096-byte messages, as fast as the link allows and never finished.
      const frame = Uint8Array.of(0x80, FLOOD_TYPE[c], 0x10, 0x00, ...new Uint8Array(16));
      for (let i = 0; i < 1000 && peer.dropped.length === 0; i++) peer.session.write(c, frame);
      await settled(lock, peer);
      expect(peer.dropped).toEqual(['flood']);
      expect(peer.session.closed).toBe(true);
      expect(peer.session.stats().messages).toBe(0);
      expect(lock.stores.audit.records().length).toBe(auditBefore);
      unmoved(lock);
      await honestUnlock(lock);
    });
  }

  it('a peer that sends more refused frames than the limit is dropped (refusals) without a pulse', async () => {
    const lock = await makeLock();
    const peer = connect(lock, 'refused');
    // Frames the BLE side refuses itself (over the MTU): each is answered MALFORMED until the limit.
    for (let i = 0; i < 10 && peer.dropped.length === 0; i++)
      peer.session.write('request', new Uint8Array(300).fill(0x80));
    await settled(lock, peer);
    expect(peer.dropped).toEqual(['refusals']);
    expect(peer.results().length).toBeGreaterThan(0);
    expect(peer.results().every((r) => r.status === Status.MALFORMED)).toBe(true);
    unmoved(lock);
    await honestUnlock(lock);
  });
});

describe('attack catalogue: malformed frames [TANDEM-GATT-6] [TANDEM-GATT-7]', () => {
  const cases: { title: string; frames: (l: Lock) => { c: WritableCharacteristic; f: Uint8Array }[] }[] = [
    {
      title: 'a continuation frame out of sequence',
      frames: (l) => {
        const fs = frameMessage(MessageType.unlockRequest, l.request({ chain: [l.token()] }), 23);
        return [fs[0]!, fs[2]!].map((f) => ({ c: 'request' as const, f }));
      },
    },
    {
      title: 'a first frame declaring more than 4096 bytes',
      frames: () => [
        { c: 'request', f: Uint8Array.of(0x80, MessageType.unlockRequest, 0x10, 0x01, 1, 2, 3) },
      ],
    },
    {
      title: 'a frame longer than the ATT MTU allows',
      frames: () => [{ c: 'request', f: new Uint8Array(300).fill(0x80) }],
    },
    {
      title: 'a message type the characteristic does not take (a result written to request)',
      frames: () =>
        frameMessage(MessageType.result, Uint8Array.of(0xa0), 185).map((f) => ({ c: 'request' as const, f })),
    },
    {
      title: 'a complete request whose body is not CBOR',
      frames: () =>
        frameMessage(MessageType.unlockRequest, Uint8Array.of(0xff, 0xfe, 0x13, 0x37), 185).map((f) => ({
          c: 'request' as const,
          f,
        })),
    },
    {
      title: 'a revocation update delivery whose body is truncated CBOR',
      frames: () =>
        frameMessage(MessageType.revocationUpdate, Uint8Array.of(0xd2, 0x84, 0x43), 185).map((f) => ({
          c: 'delivery' as const,
          f,
        })),
    },
  ];
  for (const c of cases) {
    it(`${c.title}: MALFORMED, the solenoid never moves`, async () => {
      const lock = await makeLock();
      const peer = connect(lock, 'malformed', c.title.includes('MTU') ? 185 : 23);
      for (const { c: ch, f } of c.frames(lock)) peer.session.write(ch, f);
      await settled(lock, peer);
      expect(peer.results().map((r) => Status[r.status])).toEqual(['MALFORMED']);
      unmoved(lock);
    });
  }
});
