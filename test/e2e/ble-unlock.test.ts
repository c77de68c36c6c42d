/**
 * End to end over BLE: gateway's LockClient on the real noble (phones, devices 1 and 2) against the real lock
 * (firmware-sim's LockAuthority behind its BlenoLockPeripheral, device 0) on one virtual radio in this process.
 * A 27-byte link layer (Pi Zero W), a 30 ms connection interval, and one VirtualClock for the radio, the lock
 * (pulses, challenge lifetimes) and the client's timeouts: deterministic, bounded, no wall-clock assertions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  VirtualClock,
  VirtualRadio,
  installVirtualHci,
  loadBleno,
} from '../../hardware/src/virtual-radio/index.js';
import { MessageType, Reassembler, decodeResult, frameMessage } from '../../protocol/src/gatt.js';
import { chainHash } from '../../protocol/src/chain.js';
import { encodeRevocationUpdate } from '../../protocol/src/revocation.js';
import { encodeAnchorUpdate } from '../../protocol/src/anchor-update.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { mintToken } from '../../protocol/src/token.js';
import type { MintClaims } from '../../protocol/src/token.js';
import { encodeTimeBeacon } from '../../protocol/src/time-beacon.js';
import { decodeToken } from '../../protocol/src/token.js';
import { encodeOutboxAck, verifyAuditRecord } from '../../protocol/src/mqtt.js';
import { Command } from '../../protocol/src/pop.js';
import { Status } from '../../protocol/src/status.js';
import { GatewayError } from '../../gateway/src/errors.js';
import { InMemoryChainRefs, LockClient } from '../../gateway/src/lock-client.js';
import type { LockClientOptions } from '../../gateway/src/lock-client.js';
import { NobleTransport } from '../../gateway/src/noble-transport.js';
import {
  NOW,
  RecordingTransport,
  clockTimers,
  issuerProvisioning,
  tokenWorld,
} from '../../gateway/test/helpers.js';
import { startRadioLock } from '../../firmware-sim/src/runtime/radio-lock.js';
import type { RadioLock } from '../../firmware-sim/src/runtime/radio-lock.js';

const LOCK_ID = 'lock-7f3a';
const clock = new VirtualClock({ autoAdvance: true });
const radio = new VirtualRadio({ clock, linkLayerPayload: 27, connectionIntervalMs: 30, seed: 5 });
installVirtualHci(radio);
const bleno = loadBleno({ deviceId: 0 });
const timers = clockTimers(clock);
const phone1 = new RecordingTransport(
  new NobleTransport({ binding: { kind: 'virtual', deviceId: 1 }, timers }),
);
const phone2 = new RecordingTransport(
  new NobleTransport({ binding: { kind: 'virtual', deviceId: 2 }, timers }),
);
const world = tokenWorld();
const bianca = world.rider(LOCK_ID);
let lock: RadioLock;

function client(transport: RecordingTransport, over: Partial<LockClientOptions> = {}): LockClient {
  return new LockClient({
    transport,
    timers,
    scanTimeoutMs: 5_000,
    responseTimeoutMs: 3_000,
    chainRefs: new InMemoryChainRefs(),
    ...over,
  });
}

async function settle<T>(p: Promise<T>): Promise<T | unknown> {
  return p.then(
    (v) => v,
    (e: unknown) => e,
  );
}

beforeAll(async () => {
  lock = await startRadioLock({
    loadBleno: () => bleno,
    clock,
    lockId: LOCK_ID,
    ...issuerProvisioning(world, LOCK_ID, NOW),
  });
});

afterAll(async () => {
  await phone1.close();
  await phone2.close();
  await lock.stop();
  radio.close();
});

async function reset(): Promise<void> {
  radio.configure({ attMtuCap: 517, lossRate: 0, latencyMs: 0 });
  radio.setInRange(1, true);
  phone1.afterWrite = undefined;
  lock.onPulse = undefined;
  if (lock.authority.snapshot().state !== 'locked') await lock.relock();
  phone1.reset();
  phone2.reset();
}

describe('LockClient against the lock runtime over the virtual radio (27-byte link layer, 30 ms)', () => {
  it.each([
    [23, 23],
    [185, 185],
    [517, 256],
  ])('unlocks under an ATT MTU cap of %i (MTU %i): two GATT round trips, one pulse', async (cap, mtu) => {
    await reset();
    radio.configure({ attMtuCap: cap });
    let linkMtu = 0;
    phone1.onConnected = (link) => (linkMtu = link.mtu);
    const pulses = lock.pulses.length;
    const outcome = await client(phone1).unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    expect(outcome).toMatchObject({ status: Status.OK, state: 'unlocked', mayHaveActed: true });
    expect(linkMtu).toBe(mtu);
    expect(lock.pulses.length).toBe(pulses + 1);
    expect(phone1.record.roundTrips).toBe(2);
    expect(outcome.requestFrames).toBe(mtu === 23 ? 17 : 2);
  });

  it('repeats with a chainRef: one ATT write at MTU 185', async () => {
    await reset();
    radio.configure({ attMtuCap: 185 });
    const c = client(phone1);
    await c.unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    await reset();
    radio.configure({ attMtuCap: 185 });
    const repeat = await c.unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    expect(repeat).toMatchObject({ status: Status.OK, usedChainRef: true, requestFrames: 1 });
    expect(phone1.record.writes.filter((w) => w.name === 'request')).toHaveLength(1);
    expect(phone1.record.roundTrips).toBe(2);
  });

  it('resends the full chain once when the lock does not hold the chain a chainRef names', async () => {
    await reset();
    radio.configure({ attMtuCap: 185 });
    const carla = world.rider(LOCK_ID, { rider: 'carla' });
    // The phone believes the lock verified this chain (say, before the lock restarted); the lock never saw it.
    const refs = new InMemoryChainRefs();
    refs.remember(LOCK_ID, chainHash(carla.chain));
    const outcome = await client(phone1, { chainRefs: refs }).unlock(LOCK_ID, {
      chain: carla.chain,
      holderKey: carla.key,
    });
    expect(outcome).toMatchObject({
      status: Status.OK,
      usedChainRef: false,
      resentFullChain: true,
      requestFrames: 2,
    });
    // The refused chainRef request, then the full chain answering the challenge notified after that result.
    expect(phone1.record.writes.filter((w) => w.name === 'request')).toHaveLength(3);
  });

  it('carries a newer signed revocation update before the request; the lock applies it, then refuses the revoked token', async () => {
    await reset();
    radio.configure({ attMtuCap: 185 });
    const dora = world.rider(LOCK_ID, { rider: 'dora' });
    const revoked = decodeToken(dora.chain[0]!).claims;
    const version = lock.authority.snapshot().revocationVersion + 1;
    const update = encodeRevocationUpdate(
      {
        kind: 'full',
        version,
        issuedAt: NOW,
        lockId: LOCK_ID,
        added: [{ id: revoked.cti, exp: revoked.exp }],
        removed: [],
      },
      world.issuer,
      world.kid,
    );
    const pulses = lock.pulses.length;
    const outcome = await client(phone1, {
      carry: { revocationUpdate: () => ({ version, bytes: update }) },
    }).unlock(LOCK_ID, { chain: dora.chain, holderKey: dora.key });
    expect(outcome.delivered).toEqual([MessageType.revocationUpdate]);
    // Pipelined before the request ([TANDEM-GATT-14]): still two round trips, and applied before the decision.
    expect(phone1.record.roundTrips).toBe(2);
    expect(outcome).toMatchObject({ status: Status.REVOKED, mayHaveActed: false });
    expect(lock.authority.snapshot().revocationVersion).toBe(version);
    expect(lock.pulses.length).toBe(pulses);
  });

  it('carries the issuer’s anchor update first (SPEC §6.6); a token of the new key then opens the lock', async () => {
    await reset();
    radio.configure({ attMtuCap: 185 });
    const fresh = generateKeyPair('EdDSA');
    const freshKid = Uint8Array.of(0x7e);
    const key = generateKeyPair('ES256');
    const chain = [
      mintToken(
        {
          ...decodeToken(bianca.chain[0]!).claims,
          cti: new Uint8Array(12).fill(7),
          cnf: key.publicKey,
        } as MintClaims,
        fresh,
        freshKid,
      ),
    ];
    const pulses = lock.pulses.length;
    const before = await client(phone1).unlock(LOCK_ID, { chain, holderKey: key });
    expect(before).toMatchObject({ status: Status.UNKNOWN_SIGNER, mayHaveActed: false });
    expect(lock.pulses.length).toBe(pulses);
    const anchor = encodeAnchorUpdate(
      {
        lockId: LOCK_ID,
        version: 1,
        issuedAt: NOW,
        add: [{ kid: freshKid, alg: 'EdDSA', key: fresh.publicKey.raw }],
        remove: [],
      },
      world.issuer,
      world.kid,
    );
    const outcome = await client(phone1, { carry: { anchorUpdate: () => anchor } }).unlock(LOCK_ID, {
      chain,
      holderKey: key,
    });
    expect(outcome.delivered).toEqual([MessageType.anchorUpdate]);
    expect(outcome.status).toBe(Status.OK);
    expect(lock.pulses.length).toBe(pulses + 1);
  });

  it('deliver() hands one signed time beacon to the lock and returns its answer', async () => {
    await reset();
    radio.configure({ attMtuCap: 23 });
    const beacon = encodeTimeBeacon({ time: NOW, lockId: LOCK_ID, accuracy: 2 }, world.issuer, world.kid);
    const outcome = await client(phone1).deliver(LOCK_ID, MessageType.timeBeacon, beacon);
    expect(outcome).toMatchObject({ status: Status.OK, statusName: 'OK' });
    expect(phone1.record.writes.filter((w) => w.name === 'delivery')).toHaveLength(
      frameMessage(MessageType.timeBeacon, beacon, 23).length,
    );
  });

  it('unlocks with 20 ms latency and 5 % packet loss', async () => {
    await reset();
    radio.configure({ attMtuCap: 185, latencyMs: 20, lossRate: 0.05 });
    const outcome = await client(phone1).unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    expect(outcome.status).toBe(Status.OK);
  });

  it('prints the refusal: EXPIRED for an expired token, WRONG_AUDIENCE for another lock, no pulse', async () => {
    await reset();
    radio.configure({ attMtuCap: 185 });
    const pulses = lock.pulses.length;
    const expired = world.rider(LOCK_ID, { nbf: NOW - 7200, iat: NOW - 7200, exp: NOW - 3600 });
    const a = await client(phone1).unlock(LOCK_ID, { chain: expired.chain, holderKey: expired.key });
    expect(a).toMatchObject({ status: Status.EXPIRED, meaning: 'the token has expired', state: 'locked' });
    const other = world.rider('lock-other');
    const b = await client(phone1).unlock(LOCK_ID, { chain: other.chain, holderKey: other.key });
    expect(b).toMatchObject({ status: Status.WRONG_AUDIENCE, mayHaveActed: false });
    expect(lock.pulses.length).toBe(pulses);
  });

  it('serves a second rider on another phone', async () => {
    await reset();
    radio.configure({ attMtuCap: 185 });
    const carla = world.rider(LOCK_ID, { rider: 'carla' });
    const outcome = await client(phone2).unlock(LOCK_ID, { chain: carla.chain, holderKey: carla.key });
    expect(outcome.status).toBe(Status.OK);
    expect(radio.connections().at(-1)!.centralDevId).toBe(2);
  });

  it('a phone leaving range after the first frame: nothing moves; unlockSafely then unlocks once', async () => {
    await reset();
    radio.configure({ attMtuCap: 23 });
    const pulses = lock.pulses.length;
    phone1.afterWrite = (name, index) => {
      if (name === 'request' && index === 0) radio.setInRange(1, false);
    };
    const c = client(phone1);
    const error = await settle(c.unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key }));
    expect(error).toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ code: 'ERR_GW_DISCONNECTED', mayHaveActed: true });
    expect(lock.pulses.length).toBe(pulses);
    phone1.afterWrite = undefined;
    radio.setInRange(1, true);
    const retry = await c.unlockSafely(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    expect(retry).toMatchObject({ status: Status.OK, state: 'unlocked' });
    expect(lock.pulses.length).toBe(pulses + 1);
  });

  it('refuses a replayed transcript with CHALLENGE_UNKNOWN; the solenoid does not move', async () => {
    await reset();
    radio.configure({ attMtuCap: 185 });
    await client(phone1).unlock(LOCK_ID, { chain: bianca.chain, holderKey: bianca.key });
    const transcript = phone1.record.writes.filter((w) => w.name === 'request').map((w) => w.value);
    await reset();
    radio.configure({ attMtuCap: 185 });
    const pulses = lock.pulses.length;
    const found = await phone1.scan(LOCK_ID, { timeoutMs: 5_000 });
    const link = await phone1.connect(found, { timeoutMs: 5_000 });
    const reassembler = new Reassembler();
    const status = new Promise<Status>((resolve) => {
      void link.subscribe('result', (v) => {
        const m = reassembler.push(v);
        if (m?.type === MessageType.result) resolve(decodeResult(m.body).status);
      });
    });
    for (const frame of transcript) await link.write('request', frame, true);
    expect(await status).toBe(Status.CHALLENGE_UNKNOWN);
    await link.disconnect();
    expect(lock.pulses.length).toBe(pulses);
    expect(lock.authority.snapshot().state).toBe('locked');
  });

  it('loses the result after the pulse; unlockSafely asks STATUS and does not pulse again', async () => {
    await reset();
    radio.configure({ attMtuCap: 185 });
    const pulses = lock.pulses.length;
    lock.onPulse = () => {
      lock.onPulse = undefined;
      radio.setInRange(1, false);
      clock.setTimeout(() => radio.setInRange(1, true), 2_000);
    };
    const safe = await client(phone1, { scanTimeoutMs: 10_000 }).unlockSafely(LOCK_ID, {
      chain: bianca.chain,
      holderKey: bianca.key,
    });
    expect(safe).toMatchObject({ status: Status.OK, state: 'unlocked', recoveredBy: 'status' });
    expect(safe.command).toBe(Command.UNLOCK);
    expect(lock.pulses.length).toBe(pulses + 1);
  });

  it('relays the lock-signed audit records, and only the issuer-signed outbox ack clears them', async () => {
    await reset();
    radio.configure({ attMtuCap: 185 });
    const items = await client(phone1, { relayIdleMs: 500 }).collectRelay(LOCK_ID);
    expect(items.length).toBeGreaterThan(0);
    expect(new Set(items.map((i) => i.typeName))).toEqual(new Set(['auditRecord']));
    const records = items.map((i) => verifyAuditRecord(i.bytes, lock.deviceKey.publicKey, LOCK_ID));
    const waiting = lock.stores.outbox.size;
    expect(waiting).toBeGreaterThan(0);

    // The phone is not trusted: an ack it signs itself is refused and clears nothing.
    const forged = encodeOutboxAck(
      { lockId: LOCK_ID, sequence: 1_000, epoch: lock.stores.outbox.epoch },
      bianca.key,
      world.kid,
    );
    const refused = await settle(client(phone1).deliver(LOCK_ID, MessageType.outboxAck, forged));
    expect(refused).toMatchObject({ code: 'ERR_GW_REFUSED' });
    expect(lock.stores.outbox.size).toBe(waiting);

    const sequence = lock.stores.outbox.peek(waiting).at(-1)!.seq;
    const ack = encodeOutboxAck(
      { lockId: LOCK_ID, sequence, epoch: lock.stores.outbox.epoch },
      world.issuer,
      world.kid,
    );
    const done = await client(phone1).deliver(LOCK_ID, MessageType.outboxAck, ack);
    expect(done).toMatchObject({ status: Status.OK });
    expect(lock.stores.outbox.size).toBeLessThan(waiting);
    expect(records.length).toBe(items.length);
  });
});
