/**
 * LockClient against a scripted in-memory transport (no BLE stack): the lock side is a few lines per case,
 * so the client's handling of silent, lying, garbling and vanishing locks is tested one fault at a time, as
 * Tesla's connector tests do with a fake that drops replies. Timeouts are short real timers; no case asserts
 * on durations.
 */
import { describe, expect, it } from 'vitest';
import type { CharacteristicName } from '../../protocol/src/gatt.js';
import {
  MessageType,
  Reassembler,
  encodeChallenge,
  encodeResult,
  frameMessage,
} from '../../protocol/src/gatt.js';
import { Command, decodeRequest } from '../../protocol/src/pop.js';
import { Status } from '../../protocol/src/status.js';
import { GatewayError } from '../src/errors.js';
import { LockClient } from '../src/lock-client.js';
import type { FoundLock, LockLink, LockTransport } from '../src/transport.js';
import { NOW, tokenWorld } from './helpers.js';

const LOCK_ID = 'lock-7f3a';
const MTU = 185;
const world = tokenWorld();
const rider = world.rider(LOCK_ID);

type Notify = (name: CharacteristicName, value: Uint8Array) => void;

/** What a scripted lock does; every hook is optional. */
interface Script {
  onSubscribe?(name: CharacteristicName, notify: Notify, link: ScriptedLink): void;
  /** A complete message written by the phone. */
  onMessage?(
    name: CharacteristicName,
    type: number,
    body: Uint8Array,
    notify: Notify,
    link: ScriptedLink,
  ): void;
}

class ScriptedLink implements LockLink {
  readonly mtu = MTU;
  connected = true;
  private readonly handlers = new Map<CharacteristicName, (v: Uint8Array) => void>();
  private readonly listeners: Array<(reason: string) => void> = [];
  private readonly inbound = new Map<CharacteristicName, Reassembler>();
  constructor(private readonly script: Script) {}

  private notify: Notify = (name, value) => {
    if (this.connected) this.handlers.get(name)?.(value);
  };

  /** Sends a framed message on `name` asynchronously, as a stack would. */
  send(
    name: CharacteristicName,
    type: number,
    body: Uint8Array,
    mutate?: (frames: Uint8Array[]) => void,
  ): void {
    const frames = frameMessage(type, body, MTU);
    mutate?.(frames);
    setImmediate(() => frames.forEach((f) => this.notify(name, f)));
  }

  drop(): void {
    if (!this.connected) return;
    this.connected = false;
    for (const l of this.listeners.splice(0)) l('HCI reason 0x08');
  }

  async subscribe(name: CharacteristicName, onValue: (value: Uint8Array) => void): Promise<void> {
    this.handlers.set(name, onValue);
    setImmediate(() => this.script.onSubscribe?.(name, this.notify, this));
  }

  async write(name: CharacteristicName, value: Uint8Array): Promise<void> {
    if (!this.connected) throw new Error('not connected');
    let r = this.inbound.get(name);
    if (r === undefined) this.inbound.set(name, (r = new Reassembler()));
    const m = r.push(value);
    if (m !== undefined) setImmediate(() => this.script.onMessage?.(name, m.type, m.body, this.notify, this));
  }

  async read(): Promise<Uint8Array> {
    throw new Error('no reads in these scripts');
  }

  onDisconnect(listener: (reason: string) => void): void {
    if (!this.connected) listener('disconnected');
    else this.listeners.push(listener);
  }

  async disconnect(): Promise<void> {
    this.drop();
  }
}

class ScriptedTransport implements LockTransport {
  links: ScriptedLink[] = [];
  constructor(private readonly scripts: Script[]) {}
  async scan(lockId: string): Promise<FoundLock> {
    return {
      lockId,
      id: 'x',
      address: '54:41:4e:00:00:00',
      rssi: -60,
      flags: { relayPending: false, alarm: false },
    };
  }
  async connect(): Promise<LockLink> {
    const script = this.scripts[Math.min(this.links.length, this.scripts.length - 1)]!;
    const link = new ScriptedLink(script);
    this.links.push(link);
    return link;
  }
  async close(): Promise<void> {}
}

const nonceOf = (n: number): Uint8Array => new Uint8Array(16).fill(n);

function challengeBody(n: number, lockId = LOCK_ID): Uint8Array {
  return encodeChallenge({ lockId, nonce: nonceOf(n), lockTime: NOW, uncertainty: 2, revocationVersion: 0 });
}

/** A lock that challenges on subscription and answers each request with `status` and `state`. */
function honest(status: Status, state: 'locked' | 'unlocked' | 'jammed' = 'unlocked', n = 1): Script {
  return {
    onSubscribe(name, _notify, link) {
      if (name === 'result') link.send('result', MessageType.challenge, challengeBody(n));
    },
    onMessage(_name, type, body, _notify, link) {
      const request = decodeRequest(body);
      link.send(
        'result',
        MessageType.result,
        encodeResult({
          status,
          answers: type as MessageType,
          command: request.command,
          state,
          lockTime: NOW,
          nonce: request.nonce,
        }),
      );
    },
  };
}

function client(transport: LockTransport): LockClient {
  return new LockClient({ transport, responseTimeoutMs: 200, scanTimeoutMs: 200, connectTimeoutMs: 200 });
}

const request = { chain: rider.chain, holderKey: rider.key };
const failure = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  );

describe('LockClient against scripted locks', () => {
  it('a lock that sends no challenge: ERR_GW_TIMEOUT, temporary, nothing written', async () => {
    const t = new ScriptedTransport([{}]);
    const e = await failure(client(t).unlock(LOCK_ID, request));
    expect(e).toBeInstanceOf(GatewayError);
    expect(e).toMatchObject({ code: 'ERR_GW_TIMEOUT', temporary: true, mayHaveActed: false });
    expect((e as Error).message).toBe(`${LOCK_ID} sent no challenge within 200 ms`);
  });

  it('a device with the right tag whose challenge names another lock: ERR_GW_PROTOCOL before any request', async () => {
    let wrote = false;
    const t = new ScriptedTransport([
      {
        onSubscribe: (_n, _notify, link) =>
          link.send('result', MessageType.challenge, challengeBody(1, 'lock-evil')),
        onMessage: () => (wrote = true),
      },
    ]);
    const e = await failure(client(t).unlock(LOCK_ID, request));
    expect(e).toMatchObject({
      code: 'ERR_GW_PROTOCOL',
      message: `the device advertising the tag of ${LOCK_ID} answers as lock-evil`,
      mayHaveActed: false,
    });
    expect(wrote).toBe(false);
  });

  it('a result frame with a flipped first-frame bit: ERR_GW_PROTOCOL that says the lock may have acted', async () => {
    const script = honest(Status.OK);
    const t = new ScriptedTransport([
      {
        onSubscribe: script.onSubscribe!,
        onMessage(_name, type, body, _notify, link) {
          const r = decodeRequest(body);
          const result = encodeResult({
            status: 0,
            answers: type as MessageType,
            command: r.command,
            state: 'unlocked',
            lockTime: NOW,
            nonce: r.nonce,
          });
          link.send('result', MessageType.result, result, (frames) => {
            frames[0]![0]! ^= 0x80;
          });
        },
      },
    ]);
    const e = await failure(client(t).unlock(LOCK_ID, request));
    expect(e).toMatchObject({ code: 'ERR_GW_PROTOCOL', mayHaveActed: true });
    expect((e as Error).message).toMatch(/^lock-7f3a: a result frame is malformed: continuation frame/);
  });

  it('skips a result answering another challenge and takes the one for its nonce', async () => {
    const t = new ScriptedTransport([
      {
        onSubscribe: honest(Status.OK).onSubscribe!,
        onMessage(_name, type, body, _notify, link) {
          const r = decodeRequest(body);
          const base = { answers: type as MessageType, command: r.command, lockTime: NOW };
          link.send(
            'result',
            MessageType.result,
            encodeResult({ ...base, status: Status.BUSY, state: 'locked', nonce: nonceOf(9) }),
          );
          link.send(
            'result',
            MessageType.result,
            encodeResult({ ...base, status: Status.OK, state: 'unlocked', nonce: r.nonce }),
          );
        },
      },
    ]);
    const outcome = await client(t).unlock(LOCK_ID, request);
    expect(outcome).toMatchObject({ status: Status.OK, state: 'unlocked' });
  });

  it('a link that drops before the request: ERR_GW_DISCONNECTED, temporary, not acted', async () => {
    const t = new ScriptedTransport([
      {
        onSubscribe: (_n, _notify, link) => link.drop(),
      },
    ]);
    const e = await failure(client(t).unlock(LOCK_ID, request));
    expect(e).toMatchObject({ code: 'ERR_GW_DISCONNECTED', temporary: true, mayHaveActed: false });
  });

  it('a link that drops after the request: ERR_GW_DISCONNECTED that may have acted', async () => {
    const t = new ScriptedTransport([
      {
        onSubscribe: honest(Status.OK).onSubscribe!,
        onMessage: (_n, _t, _b, _notify, link) => link.drop(),
      },
    ]);
    const e = await failure(client(t).unlock(LOCK_ID, request));
    expect(e).toMatchObject({ code: 'ERR_GW_DISCONNECTED', temporary: false, mayHaveActed: true });
  });

  it('STATUS never may-have-acted: a lost STATUS result is temporary', async () => {
    const t = new ScriptedTransport([{ onSubscribe: honest(Status.OK).onSubscribe! }]);
    const e = await failure(client(t).status(LOCK_ID, request));
    expect(e).toMatchObject({ code: 'ERR_GW_TIMEOUT', temporary: true, mayHaveActed: false });
  });

  it('unlockSafely reports a jammed lock as STATUS shows it, without sending the unlock again', async () => {
    let unlocks = 0;
    const lost: Script = {
      onSubscribe: honest(Status.OK).onSubscribe!,
      onMessage: () => unlocks++,
    };
    const jammed = honest(Status.OK, 'jammed', 2);
    const t = new ScriptedTransport([lost, jammed]);
    const outcome = await client(t).unlockSafely(LOCK_ID, request);
    expect(outcome).toMatchObject({
      state: 'jammed',
      recoveredBy: 'status',
      mayHaveActed: true,
      command: Command.UNLOCK,
    });
    expect(unlocks).toBe(1);
    expect(t.links).toHaveLength(2);
  });

  it('deliver(): a refusal is ERR_GW_REFUSED with the status; a non-delivery type is refused before connecting', async () => {
    const t = new ScriptedTransport([
      {
        onMessage: (_n, type, _b, _notify, link) =>
          link.send(
            'result',
            MessageType.result,
            encodeResult({
              status: Status.REVOCATION_ROLLBACK,
              answers: type as MessageType,
              state: 'locked',
              lockTime: NOW,
            }),
          ),
      },
    ]);
    const e = await failure(client(t).deliver(LOCK_ID, MessageType.revocationUpdate, Uint8Array.of(1, 2, 3)));
    expect(e).toMatchObject({ code: 'ERR_GW_REFUSED', status: Status.REVOCATION_ROLLBACK });
    const p = await failure(client(t).deliver(LOCK_ID, MessageType.unlockRequest, Uint8Array.of(1)));
    expect(p).toMatchObject({ code: 'ERR_GW_PROTOCOL' });
    expect(t.links).toHaveLength(1);
  });
});

// [TANDEM-TIME-6]: a lock without an upper time bound (uncertainty null) opens only after a beacon bound to
// the very challenge its request answers. Here the "beacon" is the nonce itself: the script checks binding.
describe('LockClient with a BeaconSource', () => {
  const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

  /** A lock that knows no time: challenges with uncertainty null (then `later` once it has a bound). */
  function timeless(refusal: Status, uncertainty: number | null = null) {
    const seen: string[] = [];
    let bound: string | undefined;
    let n = 1;
    const challenge = (link: ScriptedLink) =>
      link.send(
        'result',
        MessageType.challenge,
        encodeChallenge({
          lockId: LOCK_ID,
          nonce: nonceOf(n++),
          lockTime: NOW,
          uncertainty,
          revocationVersion: 0,
        }),
      );
    const script: Script = {
      onSubscribe(name, _notify, link) {
        if (name === 'result') challenge(link);
      },
      onMessage(_name, type, body, _notify, link) {
        if (type === MessageType.timeBeacon) {
          seen.push(`beacon ${hexOf(body)}`);
          bound = hexOf(body);
          link.send(
            'result',
            MessageType.result,
            encodeResult({
              status: Status.OK,
              answers: MessageType.timeBeacon,
              state: 'locked',
              lockTime: NOW,
            }),
          );
          return;
        }
        const r = decodeRequest(body);
        seen.push(`request ${hexOf(r.nonce)}`);
        const ok = bound === hexOf(r.nonce);
        link.send(
          'result',
          MessageType.result,
          encodeResult({
            status: ok ? Status.OK : refusal,
            answers: MessageType.unlockRequest,
            command: r.command,
            state: ok ? 'unlocked' : 'locked',
            lockTime: NOW,
            nonce: r.nonce,
          }),
        );
        challenge(link);
      },
    };
    return { script, seen };
  }

  function withSource(t: LockTransport, answers: (Uint8Array | undefined)[]) {
    const asked: string[] = [];
    const c = new LockClient({
      transport: t,
      responseTimeoutMs: 200,
      scanTimeoutMs: 200,
      connectTimeoutMs: 200,
      beaconSource: ({ lockId, nonce }) => {
        asked.push(`${lockId} ${hexOf(nonce)}`);
        const a = answers.shift();
        return Promise.resolve(a === undefined ? undefined : nonce);
      },
    });
    return { c, asked };
  }

  it('delivers a beacon bound to the first challenge before the request: one round, no retry', async () => {
    const lock = timeless(Status.TIME_UNCERTAIN);
    const { c, asked } = withSource(new ScriptedTransport([lock.script]), [new Uint8Array(1)]);
    const o = await c.unlock(LOCK_ID, request);
    expect(o).toMatchObject({ status: Status.OK, retriedWithBeacon: false, uncertaintyBefore: null });
    expect(asked).toEqual([`${LOCK_ID} ${hexOf(nonceOf(1))}`]);
    expect(lock.seen).toEqual([`beacon ${hexOf(nonceOf(1))}`, `request ${hexOf(nonceOf(1))}`]);
  });

  for (const refusal of [Status.TIME_UNCERTAIN, Status.NOT_YET_VALID, Status.EXPIRED]) {
    it(`a ${Status[refusal]} without an upper bound: a beacon for the fresh challenge, and one retry`, async () => {
      const lock = timeless(refusal);
      // The source has nothing the first time (the cloud was slow), a beacon the second.
      const { c, asked } = withSource(new ScriptedTransport([lock.script]), [undefined, new Uint8Array(1)]);
      const o = await c.unlock(LOCK_ID, request);
      expect(o).toMatchObject({ status: Status.OK, retriedWithBeacon: true });
      expect(asked).toEqual([`${LOCK_ID} ${hexOf(nonceOf(1))}`, `${LOCK_ID} ${hexOf(nonceOf(2))}`]);
      expect(lock.seen).toEqual([
        `request ${hexOf(nonceOf(1))}`,
        `beacon ${hexOf(nonceOf(2))}`,
        `request ${hexOf(nonceOf(2))}`,
      ]);
    });
  }

  it('without a beacon from the source the refusal stands; no source asked when the lock knew its bound', async () => {
    const never = timeless(Status.TIME_UNCERTAIN);
    const a = withSource(new ScriptedTransport([never.script]), [undefined, undefined, undefined]);
    const o = await a.c.unlock(LOCK_ID, request);
    expect(o).toMatchObject({ status: Status.TIME_UNCERTAIN, retriedWithBeacon: false });
    expect(a.asked).toHaveLength(2);
    expect(never.seen).toEqual([`request ${hexOf(nonceOf(1))}`]);

    const known = timeless(Status.EXPIRED, 4);
    const b = withSource(new ScriptedTransport([known.script]), [new Uint8Array(1)]);
    expect(await b.c.unlock(LOCK_ID, request)).toMatchObject({
      status: Status.EXPIRED,
      retriedWithBeacon: false,
    });
    expect(b.asked).toEqual([]);
  });
});
