// Remote commands on the lock (SPEC.md §9.11, [TANDEM-RCMD-2..5]): a verified LOCK from the issuer runs the GATT
// LOCK (never a pulse), is audited and stores its sequence before acting; every refusal has its exact status
// and moves nothing; the sequence survives a reboot; refusals never count against the BLE limits. Over a real
// aedes broker: the link subscribes the command topic, runs it and publishes the new state.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SystemClock } from '../../hardware/src/clock.js';
import type { CborValue } from '../../protocol/src/cbor.js';
import { encode } from '../../protocol/src/cbor.js';
import { HEADER, signSign1 } from '../../protocol/src/cose.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import type { PrivateKey } from '../../protocol/src/keys.js';
import { decodeAuditRecord, topicFor } from '../../protocol/src/mqtt.js';
import { Command } from '../../protocol/src/pop.js';
import { encodeRemoteCommand } from '../../protocol/src/remote-command.js';
import type { RemoteCommand } from '../../protocol/src/remote-command.js';
import { Status } from '../../protocol/src/status.js';
import { CONTENT_FORMAT } from '../../protocol/src/index.js';
import { REMOTE_SEQUENCE_KEY } from '../src/lock/remote-command.js';
import { LockMqttClient } from '../src/mqtt/lock-mqtt-client.js';
import { LOCK, NOW, makeLock, settle } from './lock-harness.js';
import type { Lock } from './lock-harness.js';
import { TestBroker, TestCloud, waitFor } from './mqtt-fixture.js';

const other = generateKeyPair('EdDSA');
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
});

function command(
  lock: Lock,
  over: Partial<RemoteCommand> = {},
  key?: PrivateKey,
  kid?: Uint8Array,
): Uint8Array {
  return encodeRemoteCommand(
    { lockId: LOCK, command: Command.LOCK, sequence: 1, issuedAt: NOW - 30, expiry: NOW + 30, ...over },
    key ?? lock.w.issuer,
    kid ?? lock.w.issuerKid,
  );
}

/** A command body the encoder refuses to make (UNLOCK), signed by the real issuer as a rogue cloud would. */
function rogue(lock: Lock, commandNumber: number): Uint8Array {
  const body = new Map<number, CborValue>([
    [1, LOCK],
    [2, commandNumber],
    [3, 1],
    [4, NOW - 30],
    [5, NOW + 30],
  ]);
  return signSign1(encode(body), lock.w.issuer, {
    protectedHeader: new Map<number, CborValue>([[HEADER.contentType, CONTENT_FORMAT.remoteCommand]]),
    kid: lock.w.issuerKid,
  });
}

function run(lock: Lock, bytes: Uint8Array) {
  return settle(lock.clock, lock.authority.runRemoteCommand(bytes, { peer: 'mqtt' }));
}

/** A lock left `jammed` by an unlock whose shackle did not move (the solenoid pulsed once). */
async function jammedLock(options: Parameters<typeof makeLock>[0] = {}): Promise<Lock> {
  const lock = await makeLock(options);
  lock.mech.injectFault('jammed');
  expect((await lock.send(lock.request({ chain: [lock.token()] }))).status).toBe(Status.JAMMED);
  lock.mech.clearFault();
  expect(lock.sm.state).toBe('jammed');
  expect(lock.pulses).toHaveLength(1);
  return lock;
}

/** The audit records queued for the cloud, decoded. */
function auditRecords(lock: Lock) {
  const o = lock.stores.outbox;
  return o
    .peek(o.size)
    .filter((m) => m.kind === 'audit')
    .map((m) => decodeAuditRecord(m.payload).record);
}

describe('remote LOCK on the lock ([TANDEM-RCMD-5])', () => {
  it('a verified LOCK relocks a jammed lock without pulsing, stores the sequence, audits it as peer mqtt', async () => {
    const lock = await jammedLock();
    const before = auditRecords(lock).length;
    const r = await run(lock, command(lock, { sequence: 3 }));
    expect(r.status).toBe(Status.OK);
    expect(lock.sm.state).toBe('locked');
    expect(lock.authority.snapshot().state).toBe('locked');
    expect(lock.pulses).toHaveLength(1);
    expect(lock.stores.config.get(REMOTE_SEQUENCE_KEY)).toBe(3);
    const records = auditRecords(lock);
    expect(records).toHaveLength(before + 1);
    const last = records.at(-1)!;
    expect(last).toMatchObject({ event: 'lock', status: Status.OK, command: Command.LOCK });
    expect(last.detail.get('peer')).toBe('mqtt');
    expect(last.detail.get('remote_seq')).toBe(3);
  });

  it('on an open lock (shackle out) LOCK is accepted and pulses nothing; the shackle must still be pushed in', async () => {
    const lock = await makeLock();
    expect((await lock.send(lock.request({ chain: [lock.token()] }))).status).toBe(Status.OK);
    expect(lock.sm.state).toBe('open');
    const r = await run(lock, command(lock));
    expect(r.status).toBe(Status.OK);
    expect(lock.pulses).toHaveLength(1);
    expect(lock.sm.state).toBe('open');
    await lock.relock();
    expect(lock.sm.state).toBe('locked');
  });

  const cases: [string, (lock: Lock) => Uint8Array, Status][] = [
    ['forged (another key under the issuer kid)', (l) => command(l, {}, other), Status.BAD_SIGNATURE],
    ['an unknown kid', (l) => command(l, {}, other, Uint8Array.of(0x42)), Status.UNKNOWN_SIGNER],
    [
      'the owner key (not an issuer anchor)',
      (l) => command(l, {}, l.w.owner, l.w.ownerKid),
      Status.UNKNOWN_SIGNER,
    ],
    ['another lock', (l) => command(l, { lockId: 'lock-other' }), Status.WRONG_AUDIENCE],
    ['UNLOCK, signed by the issuer', (l) => rogue(l, Command.UNLOCK), Status.SCOPE_DENIED],
    ['STATUS, signed by the issuer', (l) => rogue(l, Command.STATUS), Status.SCOPE_DENIED],
    ['expired', (l) => command(l, { issuedAt: NOW - 100, expiry: NOW - 40 }), Status.EXPIRED],
    ['not yet valid', (l) => command(l, { issuedAt: NOW + 40, expiry: NOW + 100 }), Status.NOT_YET_VALID],
    [
      'straddling the clock interval',
      (l) => command(l, { issuedAt: NOW, expiry: NOW + 60 }),
      Status.TIME_UNCERTAIN,
    ],
    ['malformed bytes', () => Uint8Array.of(0x84, 0x40, 0xa0, 0xf6), Status.MALFORMED],
    ['a token in its place', (l) => l.token(), Status.MALFORMED],
    ['oversized (257 bytes)', () => new Uint8Array(257).fill(0x41), Status.MALFORMED],
  ];
  for (const [title, make, status] of cases) {
    it(`refuses ${title}: ${Status[status]}, the solenoid does not move and the state does not change`, async () => {
      const lock = await jammedLock();
      const r = await run(lock, make(lock));
      expect(r.status).toBe(status);
      expect(lock.sm.state).toBe('jammed');
      expect(lock.pulses).toHaveLength(1);
      expect(lock.stores.config.get(REMOTE_SEQUENCE_KEY)).toBeUndefined();
    });
  }

  it('a replayed or older sequence is COMMAND_REPLAYED and moves nothing; the refusal is audited', async () => {
    const lock = await jammedLock();
    const five = command(lock, { sequence: 5 });
    expect((await run(lock, five)).status).toBe(Status.OK);
    lock.mech.injectFault('jammed');
    expect((await lock.send(lock.request({ chain: [lock.token()] }))).status).toBe(Status.JAMMED);
    lock.mech.clearFault();
    expect(lock.pulses).toHaveLength(2);
    for (const bytes of [five, command(lock, { sequence: 4 })]) {
      const r = await run(lock, bytes);
      expect(r.status).toBe(Status.COMMAND_REPLAYED);
      expect(lock.sm.state).toBe('jammed');
      expect(lock.pulses).toHaveLength(2);
    }
    expect(auditRecords(lock).at(-1)).toMatchObject({
      event: 'refused',
      status: Status.COMMAND_REPLAYED,
      command: Command.LOCK,
    });
    expect(lock.stores.config.get(REMOTE_SEQUENCE_KEY)).toBe(5);
    expect((await run(lock, command(lock, { sequence: 6 }))).status).toBe(Status.OK);
    expect(lock.sm.state).toBe('locked');
  });

  it('the sequence is stored before acting: a store that cannot write it leaves the lock as it was (FAULT)', async () => {
    const lock = await jammedLock();
    const set = vi.spyOn(lock.stores.config, 'set').mockRejectedValueOnce(new Error('SD card gone'));
    const r = await run(lock, command(lock, { sequence: 2 }));
    expect(r.status).toBe(Status.FAULT);
    expect(r.message).toMatch(/the sequence could not be stored: SD card gone/);
    expect(set).toHaveBeenCalledTimes(1);
    expect(lock.sm.state).toBe('jammed');
    expect(lock.pulses).toHaveLength(1);
    set.mockRestore();
    expect((await run(lock, command(lock, { sequence: 2 }))).status).toBe(Status.OK);
    expect(lock.sm.state).toBe('locked');
  });

  it('after a reboot the clock is unbounded: TIME_UNCERTAIN; the sequence survives, so a replay is refused', async () => {
    const lock = await jammedLock();
    const seven = command(lock, { sequence: 7 });
    expect((await run(lock, seven)).status).toBe(Status.OK);
    const again = await makeLock({
      fs: lock.fs.reboot({ tornWrites: 'lose' }),
      world: lock.w,
      device: lock.device,
      noBeacon: true,
    });
    expect((await run(again, command(again, { sequence: 8 }))).status).toBe(Status.TIME_UNCERTAIN);
    await again.syncTime();
    expect(again.stores.config.get(REMOTE_SEQUENCE_KEY)).toBe(7);
    expect((await run(again, seven)).status).toBe(Status.COMMAND_REPLAYED);
    expect(again.pulses).toHaveLength(0);
  });

  it('refusals leave no audit record before the signature and never count against the BLE refusal limits', async () => {
    const lock = await makeLock({ config: { rateThreshold: 3, globalRateThreshold: 5 } });
    const before = auditRecords(lock).length;
    for (let i = 0; i < 20; i++) {
      expect((await run(lock, command(lock, { sequence: i + 1 }, other))).status).toBe(Status.BAD_SIGNATURE);
    }
    expect(auditRecords(lock)).toHaveLength(before);
    const r = await lock.send(lock.request({ chain: [lock.token()] }));
    expect(r.status).toBe(Status.OK);
  });
});

describe('remote LOCK over MQTT ([TANDEM-RCMD-6])', () => {
  it('the link subscribes its command topic, runs a LOCK and publishes the locked state; a forgery changes nothing', async () => {
    const b = await TestBroker.start();
    cleanup.push(() => b.kill());
    const lock = await jammedLock();
    const cloud = await TestCloud.connect(b.url, {
      lockId: LOCK,
      deviceKey: lock.device.publicKey,
      issuer: lock.w.issuer,
      issuerKid: lock.w.issuerKid,
      now: () => NOW,
    });
    cleanup.push(() => cloud.close());
    const client = new LockMqttClient({
      lockId: LOCK,
      authority: lock.authority,
      outbox: lock.stores.outbox,
      issuerKey: lock.anchors.issuerKey,
      deviceKey: lock.device,
      url: b.url,
      username: LOCK,
      password: 'not checked by the test broker',
      clock: new SystemClock({ unref: true }),
      backoff: { initialMs: 20, maxMs: 200 },
      pollMs: 20,
    });
    cleanup.push(() => client.stop(200));
    const outcomes: Status[] = [];
    client.on('applied', (e) => e.kind === 'command' && outcomes.push(e.status));
    await client.start();
    await waitFor(
      () => cloud.states.some((s) => s !== 'offline' && s.state === 'jammed'),
      'the jammed state',
    );

    await cloud.publishRaw(topicFor('command', LOCK), command(lock, { sequence: 1 }, other));
    await waitFor(() => outcomes.length === 1, 'the forged command to be refused');
    expect(outcomes).toEqual([Status.BAD_SIGNATURE]);
    expect(lock.sm.state).toBe('jammed');

    await cloud.publishRaw(topicFor('command', LOCK), command(lock, { sequence: 1 }));
    await waitFor(() => outcomes.length === 2, 'the command to run');
    expect(outcomes[1]).toBe(Status.OK);
    await waitFor(
      () => cloud.states.some((s) => s !== 'offline' && s.state === 'locked'),
      'the locked state',
    );
    expect(lock.pulses).toHaveLength(1);
    expect(cloud.invalid).toEqual([]);
  });
});
