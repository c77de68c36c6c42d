/**
 * Issuer key rotation on the lock (SPEC.md §6.6): a phone carries an anchor update, signed by the issuer key
 * the lock holds, to the delivery characteristic ([TANDEM-ANCHOR-6]); the lock applies it atomically
 * ([TANDEM-ANCHOR-3], [TANDEM-ANCHOR-4]), relays its signed ack ([TANDEM-ANCHOR-5]), then accepts tokens of
 * the new key and, once the old key is retired, refuses the old key's. Every refusal asserts the status and
 * that the solenoid did not move. Real GATT session over the real authority; simulated card and mechanism.
 */
import { describe, expect, it } from 'vitest';
import { encodeAnchorUpdate, verifyAnchorAck } from '../../protocol/src/anchor-update.js';
import type { AnchorUpdate } from '../../protocol/src/anchor-update.js';
import type { Result } from '../../protocol/src/gatt.js';
import {
  MessageType,
  Reassembler,
  decodeChallenge,
  decodeResult,
  frameMessage,
} from '../../protocol/src/gatt.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import type { PrivateKey } from '../../protocol/src/keys.js';
import { Status } from '../../protocol/src/status.js';
import { mintToken } from '../../protocol/src/token.js';
import { AuthorityBackend } from '../src/ble/authority-backend.js';
import type { NotifyingCharacteristic } from '../src/ble/gatt-session.js';
import { GattSession } from '../src/ble/gatt-session.js';
import { AnchorStore } from '../src/lock/management.js';
import type { Lock } from './lock-harness.js';
import { LOCK, NOW, claims, makeLock, settle, world } from './lock-harness.js';

const NEW_KID = Uint8Array.of(0x02);
const fresh = generateKeyPair('EdDSA');
const forger = generateKeyPair('EdDSA');

let peerNo = 0;
/** One BLE connection to `lock` through the GATT session, as a phone makes it. */
function connect(lock: Lock) {
  const backend = new AuthorityBackend({
    authority: lock.authority,
    outbox: lock.stores.outbox,
    issuerKey: lock.anchors.issuerKey,
    firmwareVersion: '0.1.0',
  });
  const session = new GattSession({
    peer: `54:41:4e:00:00:01#${++peerNo}`,
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
  subscribe('result');
  const results = (): Result[] =>
    inbox.result.filter((m) => m.type === MessageType.result).map((m) => decodeResult(m.body));
  const write = async (c: 'request' | 'delivery', type: number, body: Uint8Array): Promise<Result> => {
    const before = results().length;
    for (const f of frameMessage(type, body, session.mtu)) session.write(c, f);
    await settle(lock.clock, session.settled());
    expect(results().length).toBe(before + 1);
    return results()[before]!;
  };
  /** Unlocks with a token signed by `signer` under `kid`, answering the latest challenge. */
  const unlock = (signer: PrivateKey, kid: Uint8Array): Promise<Result> => {
    const challenges = inbox.result.filter((m) => m.type === MessageType.challenge);
    const nonce = decodeChallenge(challenges[challenges.length - 1]!.body).nonce;
    const chain = [mintToken(claims(lock.w), signer, kid)];
    return write('request', MessageType.unlockRequest, lock.request({ chain, nonce }));
  };
  return { backend, session, inbox, subscribe, results, write, unlock };
}

function update(
  lock: Lock,
  u: Partial<AnchorUpdate>,
  key: PrivateKey = lock.w.issuer,
  kid = lock.w.issuerKid,
) {
  return encodeAnchorUpdate(
    {
      lockId: LOCK,
      version: 1,
      issuedAt: NOW,
      add: [{ kid: NEW_KID, alg: 'EdDSA', key: fresh.publicKey.raw }],
      remove: [],
      ...u,
    },
    key,
    kid,
  );
}

const kids = (lock: Lock) =>
  lock.anchors.list().map((a) => `${Buffer.from(a.kid).toString('hex')}:${a.role}:${a.name}`);

describe('anchor update over BLE delivery (TANDEM-ANCHOR-3..6)', () => {
  it('the new key is refused before its anchor arrives, accepted after; the old one is refused once retired', async () => {
    const lock = await makeLock();
    const phone = connect(lock);
    const before = await phone.unlock(fresh, NEW_KID);
    expect(before.status).toBe(Status.UNKNOWN_SIGNER);
    expect(lock.pulses.length).toBe(0);

    const added = await phone.write('delivery', MessageType.anchorUpdate, update(lock, {}));
    expect(added).toMatchObject({ status: Status.OK, answers: MessageType.anchorUpdate });
    expect(kids(lock)).toEqual(['01:issuer:tandem', '0a:owner:adam', '02:issuer:tandem']);
    expect(lock.anchors.version).toBe(1);

    // [TANDEM-ANCHOR-5]: the signed ack waits on the relay characteristic for the next phone.
    phone.subscribe('relay');
    await settle(lock.clock, phone.session.settled());
    const acks = phone.inbox.relay.filter((m) => m.type === MessageType.anchorAck);
    expect(acks).toHaveLength(1);
    expect(verifyAnchorAck(acks[0]!.body, lock.device.publicKey, LOCK)).toMatchObject({
      lockId: LOCK,
      version: 1,
    });

    expect((await phone.unlock(fresh, NEW_KID)).status).toBe(Status.OK);
    expect(lock.pulses.length).toBe(1);
    await lock.relock();
    // During the overlap the old key still signs.
    expect((await phone.unlock(lock.w.issuer, lock.w.issuerKid)).status).toBe(Status.OK);
    expect(lock.pulses.length).toBe(2);
    await lock.relock();

    // [TANDEM-ANCHOR-7]: after the overlap the old key retires itself.
    const retired = await phone.write(
      'delivery',
      MessageType.anchorUpdate,
      update(lock, { version: 2, remove: [lock.w.issuerKid] }),
    );
    expect(retired.status).toBe(Status.OK);
    expect(kids(lock)).toEqual(['0a:owner:adam', '02:issuer:tandem']);
    expect((await phone.unlock(lock.w.issuer, lock.w.issuerKid)).status).toBe(Status.UNKNOWN_SIGNER);
    expect(lock.pulses.length).toBe(2);
    expect((await phone.unlock(fresh, NEW_KID)).status).toBe(Status.OK);
    expect(lock.pulses.length).toBe(3);
  });

  it('refuses forged, foreign, rolled-back and last-issuer-removing updates, and changes nothing', async () => {
    const lock = await makeLock();
    const phone = connect(lock);
    expect(
      (await phone.write('delivery', MessageType.anchorUpdate, update(lock, { version: 5 }))).status,
    ).toBe(Status.OK);
    const held = kids(lock);
    const cases: [string, Uint8Array, Status][] = [
      ['forged under the issuer kid', update(lock, { version: 6 }, forger), Status.BAD_SIGNATURE],
      [
        'signed by a key the lock does not hold',
        update(lock, { version: 6 }, forger, Uint8Array.of(9)),
        Status.UNKNOWN_SIGNER,
      ],
      [
        'signed by the owner key',
        update(lock, { version: 6 }, lock.w.owner, lock.w.ownerKid),
        Status.UNKNOWN_SIGNER,
      ],
      ['for another lock', update(lock, { version: 6, lockId: 'lock-other' }), Status.WRONG_AUDIENCE],
      ['an older version', update(lock, { version: 4 }), Status.ANCHOR_ROLLBACK],
      [
        'removing the last issuer',
        update(lock, { version: 6, add: [], remove: [lock.w.issuerKid, NEW_KID] }),
        Status.ANCHOR_REFUSED,
      ],
      [
        'removing the owner key',
        update(lock, { version: 6, remove: [lock.w.ownerKid] }),
        Status.ANCHOR_REFUSED,
      ],
    ];
    for (const [name, bytes, status] of cases) {
      // A fresh connection each time: refusals count against the peer's rate ([TANDEM-GATT-15]).
      const p = connect(lock);
      expect((await p.write('delivery', MessageType.anchorUpdate, bytes)).status, name).toBe(status);
      expect(kids(lock), name).toEqual(held);
      expect(lock.anchors.version, name).toBe(5);
    }
    expect(lock.pulses.length).toBe(0);
  });

  it('the anchors and their version survive a restart (one atomic write, TANDEM-ANCHOR-3)', async () => {
    const w = world();
    const first = await makeLock({ world: w });
    const phone = connect(first);
    await phone.write(
      'delivery',
      MessageType.anchorUpdate,
      update(first, { version: 3, remove: [w.issuerKid] }),
    );
    expect(first.anchors.version).toBe(3);
    first.authority.close();
    const again = await makeLock({ world: w, fs: first.fs, device: first.device, noBeacon: true });
    expect(kids(again)).toEqual(['0a:owner:adam', '02:issuer:tandem']);
    expect(AnchorStore.load(again.stores.config).version).toBe(3);
    // A replayed older update is still refused after the restart.
    expect(
      (await connect(again).write('delivery', MessageType.anchorUpdate, update(first, {}, fresh, NEW_KID)))
        .status,
    ).toBe(Status.ANCHOR_ROLLBACK);
  });
});
