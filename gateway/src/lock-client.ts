/**
 * The phone-side client of the GATT flow (SPEC §8.7): find a lock by its tag,
 * connect, subscribe to the result characteristic (round trip 1, the lock notifies a fresh challenge), write
 * the signed request without response (round trip 2, the lock notifies the result). Framing and reassembly
 * ([TANDEM-GATT-5] to [TANDEM-GATT-7]) live here, over any {@link LockTransport}.
 *
 * Retry meaning follows Tesla's vehicle-command: a {@link GatewayError} says whether the lock may have acted
 * (`mayHaveActed`, [TANDEM-STATUS-3]) and whether trying again soon is reasonable (`temporary`).
 */
import createDebug from 'debug';
import { SystemClock } from '../../hardware/src/clock.js';
import type { Clock, TimerHandle } from '../../hardware/src/clock.js';
import { chainHash } from '../../protocol/src/chain.js';
import { ProtocolError } from '../../protocol/src/errors.js';
import type { Challenge, LockState, Message, Result } from '../../protocol/src/gatt.js';
import type { CharacteristicName } from '../../protocol/src/gatt.js';
import {
  MessageType,
  Reassembler,
  decodeChallenge,
  decodeResult,
  frameMessage,
} from '../../protocol/src/gatt.js';
import type { PrivateKey } from '../../protocol/src/keys.js';
import { CHAIN_REF_LENGTH, Command, createRequest } from '../../protocol/src/pop.js';
import { STATUS_MEANING, Status } from '../../protocol/src/status.js';
import { GatewayError } from './errors.js';
import type { FoundLock, LockLink, LockTransport } from './transport.js';

const debug = createDebug('tandem:gw:client');

/**
 * Timers the client waits with: the timer half of the hardware {@link Clock}, injected so that tests and
 * benches can run it on simulated time (a virtual radio's clock is one).
 */
export type Timers = Pick<Clock, 'setTimeout' | 'clearTimeout'>;

/** Node's own timers. */
export const SYSTEM_TIMERS: Timers = new SystemClock();

/**
 * Which chains each lock has verified: the client then sends a 16-byte `chainRef` instead of the chain
 * ([TANDEM-POP-6]), one ATT write at MTU 185 instead of two.
 */
export interface ChainRefMemory {
  knows(lockId: string, chainHash: Uint8Array): boolean;
  remember(lockId: string, chainHash: Uint8Array): void;
  forget(lockId: string, chainHash: Uint8Array): void;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** A {@link ChainRefMemory} in memory, for one process. */
export class InMemoryChainRefs implements ChainRefMemory {
  private readonly known = new Map<string, Set<string>>();
  knows(lockId: string, hash: Uint8Array): boolean {
    return this.known.get(lockId)?.has(hex(hash)) ?? false;
  }
  remember(lockId: string, hash: Uint8Array): void {
    let set = this.known.get(lockId);
    if (set === undefined) this.known.set(lockId, (set = new Set()));
    set.add(hex(hash));
  }
  forget(lockId: string, hash: Uint8Array): void {
    this.known.get(lockId)?.delete(hex(hash));
  }
}

/**
 * Signed updates the phone carries to offline locks (ARCHITECTURE.md flows 6 and 7): the newest revocation
 * update and time beacon it holds, delivered before a request when the challenge shows the lock needs them.
 */
export interface CarriedUpdates {
  /** The newest revocation update (signed bytes, §6.2) and its version. */
  revocationUpdate?(lockId: string): { readonly version: number; readonly bytes: Uint8Array } | undefined;
  /**
   * The issuer's latest anchor update for this lock (signed bytes, SPEC §6.6), while the cloud has no
   * acknowledgement of it from the lock: written first, so that what the new key signed is checked after it
   * ([TANDEM-ANCHOR-6]). The challenge does not show the lock's anchor version; a re-delivery changes nothing.
   */
  anchorUpdate?(lockId: string): Uint8Array | undefined;
  /**
   * A time beacon (signed bytes, §7) for this lock. `nonce` is the lock's challenge nonce: a client with a
   * network asks the issuer for a beacon bound to it, which gives the lock a tight clock bound
   * ([TANDEM-TIME-4]); a stored beacon without it only raises the lock's floor.
   */
  timeBeacon?(lockId: string, nonce: Uint8Array): Uint8Array | undefined;
}

/** What a {@link BeaconSource} is asked for: a beacon bound to this lock's current challenge nonce. */
export interface BeaconRequest {
  readonly lockId: string;
  /** The nonce of the challenge the beacon must answer ([TANDEM-TIME-4]). */
  readonly nonce: Uint8Array;
  /** The revocation version the challenge shows: the cloud's sync builds its delta from it ([TANDEM-REV-7]). */
  readonly revocationVersion?: number;
}

/**
 * Where the client gets a time beacon bound to a lock's challenge nonce ([TANDEM-TIME-4], [TANDEM-TIME-6]):
 * the cloud's beacon endpoint (a later cloud client plugs in here), or an issuer key held by a tester
 * (`tandem unlock --issuer-key`). Undefined: none to give. It is called while the challenge is live, so it
 * must answer within the lock's relay limit (30 s by default).
 */
export type BeaconSource = (request: BeaconRequest) => Promise<Uint8Array | undefined>;

/** Refusals that a lock without an upper time bound gives a valid token ([TANDEM-TIME-6]). */
const TIME_REFUSALS: ReadonlySet<Status> = new Set([
  Status.TIME_UNCERTAIN,
  Status.NOT_YET_VALID,
  Status.EXPIRED,
]);

/** Options of {@link LockClient}. */
export interface LockClientOptions {
  readonly transport: LockTransport;
  readonly timers?: Timers;
  /** How long to look for the lock's advertisement (default 10 s). */
  readonly scanTimeoutMs?: number;
  /** How long connecting, discovering and settling the MTU may take (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** How long to wait for each answer of the lock: the challenge, a result (default 5 s). */
  readonly responseTimeoutMs?: number;
  /** Relay collection ends once no frame arrived for this long (default 1 s). */
  readonly relayIdleMs?: number;
  readonly chainRefs?: ChainRefMemory;
  readonly carry?: CarriedUpdates;
  /**
   * Beacons bound to the current challenge's nonce. Asked when the challenge shows an unknown or wide clock
   * uncertainty (before the carried beacon), and once more, with a fresh challenge, when the lock still
   * refuses the request for time (TIME_UNCERTAIN, NOT_YET_VALID, EXPIRED) without an upper bound.
   */
  readonly beaconSource?: BeaconSource;
  /**
   * Deliver a carried time beacon first when the challenge's clock uncertainty exceeds this many seconds,
   * or is unbounded (default 60; [TANDEM-GATT-8]).
   */
  readonly maxUncertaintySeconds?: number;
}

/** What to ask the lock. */
export interface CommandRequest {
  /** The token chain, root first ([TANDEM-CHAIN-1]). */
  readonly chain: readonly Uint8Array[];
  /** The leaf's holder key: the rider's phone key (P-256). */
  readonly holderKey: PrivateKey;
  /** Default UNLOCK. */
  readonly command?: Command;
  /** CBOR-encoded arguments of management commands. */
  readonly args?: Uint8Array;
}

/** The lock's answer to a request. */
export interface CommandOutcome {
  readonly status: Status;
  /** The status's name, such as `EXPIRED`. */
  readonly statusName: string;
  /** What it means, from SPEC §10 ({@link STATUS_MEANING}). */
  readonly meaning: string;
  /** The lock's state after acting ([TANDEM-GATT-9]). */
  readonly state: LockState;
  /** True when the lock reports it acted (OK or JAMMED for a command other than STATUS). */
  readonly mayHaveActed: boolean;
  readonly command: Command;
  readonly lockTime: number;
  /** True when the request that got this answer named the chain by reference. */
  readonly usedChainRef: boolean;
  /** True when a TOKEN_REF_UNKNOWN made the client resend the full chain. */
  readonly resentFullChain: boolean;
  /** Updates delivered before the request (message types). */
  readonly delivered: readonly MessageType[];
  /** ATT writes of the request that got this answer. */
  readonly requestFrames: number;
  /**
   * True when the first answer was a time refusal from a lock without an upper bound, and the request was
   * sent once more after a beacon from the {@link BeaconSource} bound to a fresh challenge.
   */
  readonly retriedWithBeacon: boolean;
  /** The challenge's clock uncertainty before this request (null: the lock knew no upper bound). */
  readonly uncertaintyBefore: number | null;
}

/** The answer of {@link LockClient.unlockSafely}. */
export interface SafeUnlockOutcome extends CommandOutcome {
  /**
   * `direct`: the unlock's own result arrived. `status`: its result was lost, and a STATUS request showed
   * the lock unlocked, so it is not sent again. `retry`: its result was lost, STATUS showed the lock still
   * locked, and the unlock was sent once more with a fresh challenge.
   */
  readonly recoveredBy: 'direct' | 'status' | 'retry';
}

/** The answer to a delivery (time beacon, revocation update, outbox ack). */
export interface DeliveryOutcome {
  readonly status: Status;
  readonly statusName: string;
  readonly meaning: string;
  readonly state: LockState;
  readonly lockTime: number;
}

/** One record the lock queued for the cloud ([TANDEM-GATT-11]): the lock-signed COSE_Sign1 bytes. */
export interface RelayItem {
  readonly type: MessageType;
  readonly typeName: 'alert' | 'auditRecord' | 'revocationAck' | 'lockState' | 'anchorAck';
  readonly bytes: Uint8Array;
}

const RELAY_TYPES: Readonly<Partial<Record<number, RelayItem['typeName']>>> = {
  [MessageType.alert]: 'alert',
  [MessageType.auditRecord]: 'auditRecord',
  [MessageType.revocationAck]: 'revocationAck',
  [MessageType.lockState]: 'lockState',
  // [TANDEM-ANCHOR-5]: the lock relays its anchor ack after a carried anchor update; the sync uploads it.
  [MessageType.anchorAck]: 'anchorAck',
};

/** Where each type the phone writes goes ([TANDEM-GATT-4]). */
const CHARACTERISTIC_OF: Readonly<Partial<Record<number, CharacteristicName>>> = {
  [MessageType.unlockRequest]: 'request',
  [MessageType.timeBeacon]: 'delivery',
  [MessageType.revocationUpdate]: 'delivery',
  [MessageType.anchorUpdate]: 'delivery',
  [MessageType.outboxAck]: 'relay',
};

// Commands after whose request the lock may have moved something: only STATUS never acts.
const acts = (command: Command): boolean => command !== Command.STATUS;

function outcomeOf(
  result: Result,
  command: Command,
  extra: Pick<
    CommandOutcome,
    | 'usedChainRef'
    | 'resentFullChain'
    | 'delivered'
    | 'requestFrames'
    | 'retriedWithBeacon'
    | 'uncertaintyBefore'
  >,
): CommandOutcome {
  return {
    status: result.status,
    statusName: Status[result.status],
    meaning: STATUS_MEANING[result.status],
    state: result.state,
    mayHaveActed: acts(command) && (result.status === Status.OK || result.status === Status.JAMMED),
    command,
    lockTime: result.lockTime,
    ...extra,
  };
}

interface Waiter<T> {
  readonly resolve: (value: T) => void;
  readonly reject: (error: unknown) => void;
  readonly timer: TimerHandle;
}

/**
 * One connection's view of the result characteristic: reassembles frames, keeps the newest challenge and a
 * queue of results, and turns a dropped link or a silent lock into coded errors. A new session (and so a new
 * reassembler) per connection: [TANDEM-GATT-6] drops partial messages on disconnect.
 */
class Session {
  private readonly reassembler = new Reassembler({
    allowedTypes: [MessageType.challenge, MessageType.result],
  });
  private challenge: Challenge | undefined;
  private challengeFresh = false;
  private readonly results: Result[] = [];
  private challengeWaiter: Waiter<Challenge> | undefined;
  private resultWaiter: (Waiter<Result> & { readonly matches: (r: Result) => boolean }) | undefined;
  private failure: GatewayError | undefined;
  /** True from the moment the last frame of an acting request is handed to the transport. */
  acting = false;

  constructor(
    readonly lockId: string,
    readonly link: LockLink,
    private readonly timers: Timers,
  ) {
    link.onDisconnect((reason) =>
      this.fail(
        new GatewayError(
          'ERR_GW_DISCONNECTED',
          `the link to ${lockId} dropped (${reason})${this.acting ? ' after the request was written: the lock may have acted' : ''}`,
          { mayHaveActed: this.acting, temporary: !this.acting },
        ),
      ),
    );
  }

  /** Takes one notified value of the result characteristic. */
  onValue(value: Uint8Array): void {
    let message: Message | undefined;
    try {
      message = this.reassembler.push(value);
    } catch (cause) {
      this.fail(this.protocolError(`a result frame is malformed: ${(cause as Error).message}`, cause));
      return;
    }
    if (message === undefined) return;
    try {
      if (message.type === MessageType.challenge) {
        this.challenge = decodeChallenge(message.body);
        this.challengeFresh = true;
        debug('%s: challenge, revocation version %d', this.lockId, this.challenge.revocationVersion);
        const w = this.challengeWaiter;
        if (w !== undefined) {
          this.challengeWaiter = undefined;
          this.timers.clearTimeout(w.timer);
          this.challengeFresh = false;
          w.resolve(this.challenge);
        }
      } else {
        this.results.push(decodeResult(message.body));
        this.matchResult();
      }
    } catch (cause) {
      this.fail(
        this.protocolError(`a message from the lock is malformed: ${(cause as Error).message}`, cause),
      );
    }
  }

  private protocolError(message: string, cause: unknown): GatewayError {
    return new GatewayError('ERR_GW_PROTOCOL', `${this.lockId}: ${message}`, {
      cause,
      mayHaveActed: this.acting,
    });
  }

  /** Fails every wait of this session, now and later. */
  fail(error: GatewayError): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.reassembler.reset();
    for (const w of [this.challengeWaiter, this.resultWaiter]) {
      if (w === undefined) continue;
      this.timers.clearTimeout(w.timer);
      w.reject(error);
    }
    this.challengeWaiter = undefined;
    this.resultWaiter = undefined;
  }

  throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** A challenge not used yet (the one notified on subscription, or a later one), waiting up to `ms`. */
  nextChallenge(ms: number): Promise<Challenge> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.challengeFresh && this.challenge !== undefined) {
      this.challengeFresh = false;
      return Promise.resolve(this.challenge);
    }
    return new Promise((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        this.challengeWaiter = undefined;
        reject(
          new GatewayError('ERR_GW_TIMEOUT', `${this.lockId} sent no challenge within ${ms} ms`, {
            temporary: true,
          }),
        );
      }, ms);
      this.challengeWaiter = { resolve, reject, timer };
    });
  }

  /** Marks a challenge read from the challenge characteristic as the current one. */
  useChallenge(c: Challenge): void {
    this.challenge = c;
    this.challengeFresh = false;
  }

  private matchResult(): void {
    const w = this.resultWaiter;
    if (w === undefined) return;
    const i = this.results.findIndex(w.matches);
    if (i < 0) return;
    const [r] = this.results.splice(i, 1);
    this.resultWaiter = undefined;
    this.timers.clearTimeout(w.timer);
    w.resolve(r!);
  }

  /**
   * The result answering `answers` (and `nonce`, when the lock echoes one), waiting up to `ms`. Results
   * for other messages (pipelined deliveries, [TANDEM-GATT-14]) stay queued for {@link takeResults}.
   */
  nextResult(ms: number, answers: MessageType, nonce?: Uint8Array): Promise<Result> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const matches = (r: Result): boolean =>
      r.answers === answers && (nonce === undefined || r.nonce === undefined || hex(r.nonce) === hex(nonce));
    return new Promise((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        this.resultWaiter = undefined;
        const acted = this.acting;
        reject(
          new GatewayError(
            'ERR_GW_TIMEOUT',
            `${this.lockId} sent no result for message type 0x${answers.toString(16).padStart(2, '0')} within ${ms} ms` +
              (acted ? ': the lock may have acted; ask STATUS before retrying' : ''),
            { mayHaveActed: acted, temporary: !acted },
          ),
        );
      }, ms);
      this.resultWaiter = { resolve, reject, timer, matches };
      this.matchResult();
    });
  }

  /** Takes the queued results answering `answers`, without waiting. */
  takeResults(answers: MessageType): Result[] {
    const taken = this.results.filter((r) => r.answers === answers);
    for (const r of taken) this.results.splice(this.results.indexOf(r), 1);
    return taken;
  }

  /**
   * Runs a transport operation, failing it when the link drops or it takes longer than `ms` (noble leaves
   * an ATT operation pending forever when the link goes away).
   */
  guard<T>(op: () => Promise<T>, what: string, ms: number): Promise<T> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const finish = (fn: () => void): void => {
        if (done) return;
        done = true;
        this.timers.clearTimeout(timer);
        fn();
      };
      const timer = this.timers.setTimeout(
        () =>
          finish(() =>
            reject(
              new GatewayError('ERR_GW_TIMEOUT', `${this.lockId}: ${what} took longer than ${ms} ms`, {
                mayHaveActed: this.acting,
                temporary: !this.acting,
              }),
            ),
          ),
        ms,
      );
      this.link.onDisconnect(() => finish(() => reject(this.failure)));
      op().then(
        (v) => finish(() => resolve(v)),
        (cause: unknown) =>
          finish(() =>
            reject(
              this.failure ??
                new GatewayError(
                  'ERR_GW_DISCONNECTED',
                  `${this.lockId}: ${what} failed: ${(cause as Error).message}`,
                  { cause, mayHaveActed: this.acting, temporary: !this.acting },
                ),
            ),
          ),
      );
    });
  }
}

/**
 * The phone-side client: one object per phone (it remembers which chains each lock has verified). One
 * command at a time per transport.
 */
export class LockClient {
  private readonly transport: LockTransport;
  private readonly timers: Timers;
  private readonly scanTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly responseTimeoutMs: number;
  private readonly relayIdleMs: number;
  private readonly chainRefs: ChainRefMemory;
  private readonly carry: CarriedUpdates;
  private readonly beaconSource: BeaconSource | undefined;
  private readonly maxUncertainty: number;

  constructor(options: LockClientOptions) {
    this.transport = options.transport;
    this.timers = options.timers ?? SYSTEM_TIMERS;
    this.scanTimeoutMs = options.scanTimeoutMs ?? 10_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.responseTimeoutMs = options.responseTimeoutMs ?? 5_000;
    this.relayIdleMs = options.relayIdleMs ?? 1_000;
    this.chainRefs = options.chainRefs ?? new InMemoryChainRefs();
    this.carry = options.carry ?? {};
    this.beaconSource = options.beaconSource;
    this.maxUncertainty = options.maxUncertaintySeconds ?? 60;
  }

  /** Finds and connects to `lockId`; scan and connect failures are temporary. */
  private async open(lockId: string): Promise<{ found: FoundLock; link: LockLink }> {
    const found = await this.transport.scan(lockId, { timeoutMs: this.scanTimeoutMs });
    debug('%s: found at %s (rssi %d)', lockId, found.address, found.rssi);
    const link = await this.transport.connect(found, { timeoutMs: this.connectTimeoutMs });
    debug('%s: connected, ATT MTU %d', lockId, link.mtu);
    return { found, link };
  }

  /** Opens a session subscribed to the result characteristic (round trip 1); the lock then notifies a challenge. */
  private async session(lockId: string): Promise<Session> {
    const { link } = await this.open(lockId);
    const session = new Session(lockId, link, this.timers);
    try {
      await session.guard(
        () => link.subscribe('result', (v) => session.onValue(v)),
        'subscribing to the result characteristic',
        this.responseTimeoutMs,
      );
    } catch (e) {
      await link.disconnect();
      throw e;
    }
    return session;
  }

  /** Writes one framed message, every frame without response ([TANDEM-GATT-5]). */
  private async writeMessage(
    session: Session,
    type: MessageType,
    body: Uint8Array,
    beforeLast?: () => void,
  ): Promise<number> {
    const name = CHARACTERISTIC_OF[type];
    if (name === undefined) {
      throw new GatewayError(
        'ERR_GW_PROTOCOL',
        `message type 0x${type.toString(16)} is not written by a phone`,
      );
    }
    const frames = frameMessage(type, body, session.link.mtu);
    for (let i = 0; i < frames.length; i++) {
      if (i === frames.length - 1) beforeLast?.();
      const frame = frames[i]!;
      await session.guard(
        () => session.link.write(name, frame, true),
        `writing frame ${i + 1} of ${frames.length}`,
        this.responseTimeoutMs,
      );
    }
    return frames.length;
  }

  /**
   * Writes the carried updates this lock lacks, judging by its challenge ([TANDEM-GATT-8]), without waiting
   * for their results: the lock applies messages of one connection in order, so they take effect before the
   * request written after them is decided ([TANDEM-GATT-14]), and the unlock stays at two round trips.
   */
  private async writeCarried(
    session: Session,
    challenge: Challenge,
  ): Promise<{ delivered: MessageType[]; sourced: boolean }> {
    const delivered: MessageType[] = [];
    let sourced = false;
    const anchor = this.carry.anchorUpdate?.(session.lockId);
    if (anchor !== undefined) {
      await this.writeMessage(session, MessageType.anchorUpdate, anchor);
      delivered.push(MessageType.anchorUpdate);
    }
    const update = this.carry.revocationUpdate?.(session.lockId);
    if (update !== undefined && update.version > challenge.revocationVersion) {
      await this.writeMessage(session, MessageType.revocationUpdate, update.bytes);
      delivered.push(MessageType.revocationUpdate);
    }
    if (challenge.uncertainty === null || challenge.uncertainty > this.maxUncertainty) {
      // A beacon bound to this very challenge gives the lock an upper bound ([TANDEM-TIME-4]); a carried one
      // (stored earlier) can only raise its floor unless it happens to carry this nonce.
      let beacon = await this.sourceBeacon(session.lockId, challenge);
      sourced = beacon !== undefined;
      beacon ??= this.carry.timeBeacon?.(session.lockId, challenge.nonce);
      if (beacon !== undefined) {
        await this.writeMessage(session, MessageType.timeBeacon, beacon);
        delivered.push(MessageType.timeBeacon);
      }
    }
    return { delivered, sourced };
  }

  private async sourceBeacon(lockId: string, challenge: Challenge): Promise<Uint8Array | undefined> {
    if (this.beaconSource === undefined) return undefined;
    const beacon = await this.beaconSource({
      lockId,
      nonce: challenge.nonce,
      revocationVersion: challenge.revocationVersion,
    });
    debug('%s: beacon source %s', lockId, beacon === undefined ? 'had none' : 'answered');
    return beacon;
  }

  private async deliverOn(session: Session, type: MessageType, body: Uint8Array): Promise<Result> {
    await this.writeMessage(session, type, body);
    const result = await session.nextResult(this.responseTimeoutMs, type);
    debug('%s: delivery 0x%s answered %s', session.lockId, type.toString(16), Status[result.status]);
    return result;
  }

  /**
   * Sends `request.command` (default UNLOCK) to `lockId` and returns the lock's decision, whatever it is
   * (a refusal is an outcome, not an error). Throws {@link GatewayError} when no decision arrived; check its
   * `mayHaveActed` before retrying, or use {@link unlockSafely}.
   */
  async unlock(lockId: string, request: CommandRequest): Promise<CommandOutcome> {
    const command = request.command ?? Command.UNLOCK;
    const hash = chainHash(request.chain);
    const session = await this.session(lockId);
    try {
      let challenge = await session.nextChallenge(this.responseTimeoutMs);
      if (challenge.lockId !== lockId) {
        throw new GatewayError(
          'ERR_GW_PROTOCOL',
          `the device advertising the tag of ${lockId} answers as ${challenge.lockId}`,
        );
      }
      const uncertaintyBefore = challenge.uncertainty;
      const carried = await this.writeCarried(session, challenge);
      const delivered = carried.delivered;
      // Once per command: a time refusal from a lock without an upper bound is answered with a beacon for a
      // fresh challenge ([TANDEM-TIME-6]) unless this request already went with one from the source.
      let beaconRetryLeft = !carried.sourced && this.beaconSource !== undefined;
      let retriedWithBeacon = false;
      let useRef = this.chainRefs.knows(lockId, hash);
      let resent = false;
      for (;;) {
        const body = createRequest({
          lockId,
          nonce: challenge.nonce,
          command,
          ...(request.args === undefined ? {} : { args: request.args }),
          ...(useRef ? { chainRef: hash.subarray(0, CHAIN_REF_LENGTH) } : { chain: request.chain }),
          chainHash: hash,
          holderKey: request.holderKey,
        });
        const frames = await this.writeMessage(session, MessageType.unlockRequest, body, () => {
          if (acts(command)) session.acting = true;
        });
        debug('%s: request written (%d frames, %s)', lockId, frames, useRef ? 'chainRef' : 'full chain');
        const result = await session.nextResult(
          this.responseTimeoutMs,
          MessageType.unlockRequest,
          challenge.nonce,
        );
        session.acting = false;
        for (const type of delivered) {
          for (const r of session.takeResults(type)) {
            debug('%s: carried 0x%s answered %s', lockId, type.toString(16), Status[r.status]);
          }
        }
        if (result.status === Status.TOKEN_REF_UNKNOWN && useRef) {
          // [TANDEM-POP-6]: the lock no longer holds the chain; a challenge is single use, so take a fresh one.
          this.chainRefs.forget(lockId, hash);
          useRef = false;
          resent = true;
          challenge = await this.freshChallenge(session);
          continue;
        }
        if (beaconRetryLeft && TIME_REFUSALS.has(result.status) && challenge.uncertainty === null) {
          beaconRetryLeft = false;
          challenge = await this.freshChallenge(session);
          const beacon = await this.sourceBeacon(lockId, challenge);
          if (beacon !== undefined) {
            debug(
              '%s: %s without an upper time bound; retrying with a bound beacon',
              lockId,
              Status[result.status],
            );
            await this.writeMessage(session, MessageType.timeBeacon, beacon);
            delivered.push(MessageType.timeBeacon);
            retriedWithBeacon = true;
            continue;
          }
        }
        if (result.status === Status.OK) this.chainRefs.remember(lockId, hash);
        debug('%s: %s -> %s, %s', lockId, Command[command], Status[result.status], result.state);
        return outcomeOf(result, command, {
          usedChainRef: useRef,
          resentFullChain: resent,
          delivered,
          requestFrames: frames,
          retriedWithBeacon,
          uncertaintyBefore,
        });
      }
    } catch (e) {
      throw this.wrap(e, session);
    } finally {
      await session.link.disconnect();
    }
  }

  /**
   * A challenge not used yet: the one the lock notifies after each request's result ([TANDEM-GATT-8],
   * [TANDEM-GATT-13]); a lock that sends none within the response timeout is asked with a read.
   */
  private async freshChallenge(session: Session): Promise<Challenge> {
    try {
      return await session.nextChallenge(this.responseTimeoutMs);
    } catch (e) {
      if (!(e instanceof GatewayError) || e.code !== 'ERR_GW_TIMEOUT') throw e;
    }
    const body = await session.guard(
      () => session.link.read('challenge'),
      'reading a challenge',
      this.responseTimeoutMs,
    );
    const c = decodeChallenge(body);
    session.useChallenge(c);
    return c;
  }

  private wrap(e: unknown, session: Session): unknown {
    if (e instanceof GatewayError) return e;
    if (e instanceof ProtocolError) {
      return new GatewayError('ERR_GW_PROTOCOL', `${session.lockId}: ${e.message}`, {
        cause: e,
        mayHaveActed: session.acting,
      });
    }
    return e;
  }

  /** LOCK with the same chain. */
  lock(lockId: string, request: Omit<CommandRequest, 'command'>): Promise<CommandOutcome> {
    return this.unlock(lockId, { ...request, command: Command.LOCK });
  }

  /** STATUS with the same chain: the result's `state` is the lock's state. */
  status(lockId: string, request: Omit<CommandRequest, 'command' | 'args'>): Promise<CommandOutcome> {
    return this.unlock(lockId, {
      chain: request.chain,
      holderKey: request.holderKey,
      command: Command.STATUS,
    });
  }

  /**
   * UNLOCK without ever unlocking twice ([TANDEM-STATUS-3]): when the result is lost after the request was
   * written, reconnect and ask STATUS first. Unlocked: done, nothing is resent. Locked: the unlock did not
   * happen, so it is sent once more (with a fresh challenge; the old request cannot be replayed anyway,
   * [TANDEM-POP-4]). Any other state is reported as it is.
   */
  async unlockSafely(lockId: string, request: Omit<CommandRequest, 'command'>): Promise<SafeUnlockOutcome> {
    try {
      return {
        ...(await this.unlock(lockId, { ...request, command: Command.UNLOCK })),
        recoveredBy: 'direct',
      };
    } catch (e) {
      if (!(e instanceof GatewayError) || !e.mayHaveActed) throw e;
      debug('%s: result lost after the request (%s); asking STATUS', lockId, e.code);
      let status: CommandOutcome;
      try {
        status = await this.status(lockId, request);
      } catch (again) {
        throw new GatewayError(
          again instanceof GatewayError ? again.code : 'ERR_GW_PROTOCOL',
          `the unlock's result was lost (${e.message}) and STATUS failed too: the lock may have acted`,
          { cause: again, mayHaveActed: true, temporary: true },
        );
      }
      if (status.state === 'unlocked') {
        return {
          ...status,
          status: Status.OK,
          statusName: Status[Status.OK],
          meaning: 'the result was lost, and the lock reports itself unlocked',
          mayHaveActed: true,
          command: Command.UNLOCK,
          recoveredBy: 'status',
        };
      }
      if (status.state === 'locked') {
        return {
          ...(await this.unlock(lockId, { ...request, command: Command.UNLOCK })),
          recoveredBy: 'retry',
        };
      }
      return { ...status, command: Command.UNLOCK, mayHaveActed: true, recoveredBy: 'status' };
    }
  }

  /**
   * Delivers a time beacon, revocation update or outbox ack ([TANDEM-GATT-4], [TANDEM-GATT-11]) and returns
   * the lock's answer. Throws ERR_GW_REFUSED (with `status`) when the lock refuses it.
   */
  async deliver(lockId: string, type: MessageType, body: Uint8Array): Promise<DeliveryOutcome> {
    if (
      type !== MessageType.timeBeacon &&
      type !== MessageType.revocationUpdate &&
      type !== MessageType.anchorUpdate &&
      type !== MessageType.outboxAck
    ) {
      throw new GatewayError(
        'ERR_GW_PROTOCOL',
        `message type 0x${type.toString(16)} is not a delivery (time beacon, revocation update, outbox ack)`,
      );
    }
    const session = await this.session(lockId);
    try {
      const result = await this.deliverOn(session, type, body);
      const outcome: DeliveryOutcome = {
        status: result.status,
        statusName: Status[result.status],
        meaning: STATUS_MEANING[result.status],
        state: result.state,
        lockTime: result.lockTime,
      };
      if (result.status !== Status.OK) {
        throw new GatewayError(
          'ERR_GW_REFUSED',
          `${lockId} refused the delivery: ${outcome.statusName} (${outcome.meaning})`,
          { status: result.status },
        );
      }
      return outcome;
    } catch (e) {
      throw this.wrap(e, session);
    } finally {
      await session.link.disconnect();
    }
  }

  /**
   * Collects the records the lock queued for the cloud ([TANDEM-GATT-11]): subscribes to the relay
   * characteristic and gathers framed records until none arrived for `relayIdleMs`. The phone is not trusted:
   * the records are the lock's signed bytes, for upload as they are; the lock keeps them until the cloud's
   * signed outbox ack comes back.
   */
  async collectRelay(lockId: string): Promise<RelayItem[]> {
    const { link } = await this.open(lockId);
    const items: RelayItem[] = [];
    const reassembler = new Reassembler({ allowedTypes: Object.keys(RELAY_TYPES).map(Number) });
    let idle: TimerHandle | undefined;
    let settle: (() => void) | undefined;
    let fail: ((e: unknown) => void) | undefined;
    const done = new Promise<void>((resolve, reject) => {
      settle = resolve;
      fail = reject;
    });
    const arm = (): void => {
      if (idle !== undefined) this.timers.clearTimeout(idle);
      idle = this.timers.setTimeout(() => {
        if (!reassembler.busy) settle?.();
        else arm();
      }, this.relayIdleMs);
    };
    link.onDisconnect((reason) =>
      fail?.(
        new GatewayError('ERR_GW_DISCONNECTED', `the link to ${lockId} dropped while relaying (${reason})`, {
          temporary: true,
        }),
      ),
    );
    const subscribing = this.timers.setTimeout(
      () =>
        fail?.(
          new GatewayError(
            'ERR_GW_TIMEOUT',
            `${lockId}: subscribing to the relay characteristic took too long`,
            {
              temporary: true,
            },
          ),
        ),
      this.responseTimeoutMs,
    );
    try {
      const subscribed = link.subscribe('relay', (value) => {
        try {
          const m = reassembler.push(value);
          if (m !== undefined) {
            items.push({ type: m.type as MessageType, typeName: RELAY_TYPES[m.type]!, bytes: m.body });
          }
        } catch (cause) {
          fail?.(new GatewayError('ERR_GW_PROTOCOL', `${lockId}: a relay frame is malformed`, { cause }));
        }
        arm();
      });
      // A subscription still pending when the link drops settles later; its failure is `done`'s to report.
      subscribed.catch(() => undefined);
      await Promise.race([subscribed, done]);
      this.timers.clearTimeout(subscribing);
      arm();
      await done;
      debug('%s: %d relay records', lockId, items.length);
      return items;
    } finally {
      this.timers.clearTimeout(subscribing);
      if (idle !== undefined) this.timers.clearTimeout(idle);
      await link.disconnect();
    }
  }

  /** Releases the transport. Idempotent. */
  close(): Promise<void> {
    return this.transport.close();
  }
}
