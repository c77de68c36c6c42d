/**
 * One BLE connection to the lock's GATT service, independent of bleno: frames in, messages to the
 * {@link LockGattBackend}, framed results, challenges and relay items out, and the per-connection limits that
 * keep a malicious peer from crashing the runtime, opening the lock or holding it for long (SPEC §8: the flow
 * is [TANDEM-GATT-13] and [TANDEM-GATT-14], the receiving policy and its limits [TANDEM-GATT-15]). The bleno
 * adapter creates one per accepted central and closes it on disconnect; nothing survives from one connection
 * to the next.
 */
import createDebug from 'debug';
import type { Clock, TimerHandle } from '../../../hardware/src/clock.js';
import { ProtocolError, STATUS_OF_ERROR } from '../../../protocol/src/errors.js';
import type { Result } from '../../../protocol/src/gatt.js';
import {
  FIRST_HEADER_BYTES,
  MAX_ATT_MTU,
  MAX_MESSAGE_BYTES,
  MIN_ATT_MTU,
  MessageType,
  Reassembler,
  WRITABLE_TYPES,
  encodeChallenge,
  encodeLockInfo,
  encodeResult,
  frameMessage,
} from '../../../protocol/src/gatt.js';
import type { Command } from '../../../protocol/src/pop.js';
import { decodeRequest } from '../../../protocol/src/pop.js';
import { Status } from '../../../protocol/src/status.js';
import type { LockGattBackend, RelayItem } from './lock-gatt-backend.js';
import { RELAY_TYPES, UNKNOWN_STATE } from './lock-gatt-backend.js';

const debug = createDebug('tandem:lock:ble');

/** Characteristics a peer writes frames to ([TANDEM-GATT-4] WRITABLE_TYPES). */
export type WritableCharacteristic = 'request' | 'delivery' | 'relay';
/** Characteristics the lock notifies on. */
export type NotifyingCharacteristic = 'result' | 'challenge' | 'relay';
/** Characteristics a peer reads. */
export type ReadableCharacteristic = 'challenge' | 'lockInfo' | 'relay';

/** Per-connection limits. Every one is a bound on what a single peer can make the lock do or hold. */
export interface GattSessionLimits {
  /** A message left incomplete this long is dropped silently (flow step 5). */
  readonly reassemblyTimeoutMs: number;
  /** No write, read or subscription for this long (and nothing being decided): the peer is dropped. */
  readonly idleTimeoutMs: number;
  /** Longest connection: bleno serves one central at a time, so this bounds how long one blocks the rest. */
  readonly maxConnectionMs: number;
  /** Frames a peer may write in a burst (token bucket size). */
  readonly frameBurst: number;
  /** Frames per second the bucket refills; a peer that empties it is dropped (flood). */
  readonly framesPerSecond: number;
  /** Refused messages (MALFORMED, BUSY) tolerated on one connection; one more drops it. */
  readonly maxRefusals: number;
  /** Complete messages waiting for the runtime; one more is refused with BUSY. */
  readonly maxQueuedMessages: number;
  /**
   * Messages, challenges, reads, relay subscriptions and relay records notified on one connection; one more
   * drops it (a record past the budget is simply not notified).
   */
  readonly maxOperations: number;
  /** Bytes held for a peer (declared lengths of messages in reassembly plus queued bodies); over: BUSY. */
  readonly maxOutstandingBytes: number;
  /** Largest message body per characteristic ([TANDEM-GATT-6]: at most 4096). */
  readonly maxMessageBytes: Readonly<Record<WritableCharacteristic, number>>;
  /** Relay items notified per relay subscription. */
  readonly maxRelayItems: number;
}

/**
 * Defaults, sized for a Pi Zero W talking to phones at ATT MTU 23..517. The largest legitimate message (a
 * 4096-byte revocation update at MTU 23) is 217 frames, within the burst; a whole session (beacon, update,
 * request, relay) is a few hundred frames and about ten operations, and lasts seconds.
 */
export const DEFAULT_GATT_SESSION_LIMITS: Readonly<GattSessionLimits> = Object.freeze({
  reassemblyTimeoutMs: 5_000,
  idleTimeoutMs: 10_000,
  maxConnectionMs: 60_000,
  frameBurst: 300,
  framesPerSecond: 100,
  maxRefusals: 4,
  maxQueuedMessages: 4,
  maxOperations: 64,
  maxOutstandingBytes: 3 * MAX_MESSAGE_BYTES,
  maxMessageBytes: Object.freeze({
    request: MAX_MESSAGE_BYTES,
    delivery: MAX_MESSAGE_BYTES,
    relay: MAX_MESSAGE_BYTES,
  }),
  maxRelayItems: 16,
});

/** Why a session dropped its peer. */
export type DropReason = 'flood' | 'refusals' | 'operations' | 'idle' | 'max-duration';

/** What a read returns to the adapter: bytes, or an ATT error. */
export type ReadOutcome =
  | { readonly ok: true; readonly data: Uint8Array }
  | { readonly ok: false; readonly error: 'invalid-offset' | 'unavailable' };

/** Counters of one connection, for logs and tests. */
export interface GattSessionStats {
  /** ATT writes received per characteristic (each one frame). */
  readonly writes: Readonly<Record<WritableCharacteristic, number>>;
  /** ATT notifications sent per characteristic (each one frame). */
  readonly notifications: Readonly<Record<NotifyingCharacteristic, number>>;
  /** Complete messages handed to the runtime. */
  readonly messages: number;
  /** Results the BLE side made itself (MALFORMED, BUSY, FAULT). */
  readonly refusals: number;
  /** Challenges issued (subscriptions and reads at offset 0). */
  readonly challenges: number;
  /** Half-finished messages dropped (timeout, or replaced by a new first frame). */
  readonly abandoned: number;
}

/** Sends one notification value; provided by the adapter on subscription. */
export type NotifySender = (value: Uint8Array) => void;

/** Options of a {@link GattSession}. */
export interface GattSessionOptions {
  readonly peer: string;
  readonly backend: LockGattBackend;
  readonly clock: Clock;
  readonly limits?: Partial<GattSessionLimits>;
  /** Called once when the session drops its peer; the adapter disconnects the link. */
  readonly onDrop: (reason: DropReason, detail: string) => void;
}

const FLAG_FIRST = 0x80;
/** Longest attribute value a read can return (Core Vol 3 Part F §3.2.9; [TANDEM-GATT-12]). */
const MAX_READ_BYTES = 512;

/**
 * The message type a BLE-made result answers ([TANDEM-GATT-9] key 6): the refused message's own type when the
 * characteristic takes it, otherwise the characteristic's first type (request 0x02, delivery 0x05, relay 0x0b).
 */
function answersOf(characteristic: WritableCharacteristic, type: number): MessageType {
  const types = WRITABLE_TYPES[characteristic]!;
  return types.find((t) => t === type) ?? types[0]!;
}

/** The command and nonce of a request body, when it decodes ([TANDEM-POP-2]), for BLE-made results. */
function requestFields(
  characteristic: WritableCharacteristic,
  body: Uint8Array | undefined,
): { command?: Command; nonce?: Uint8Array } {
  if (characteristic !== 'request' || body === undefined) return {};
  try {
    const request = decodeRequest(body);
    return { command: request.command, nonce: request.nonce };
  } catch {
    return {};
  }
}

interface Inbound {
  readonly reassembler: Reassembler;
  /** After a refusal or timeout: continuation frames are ignored until the next first frame. */
  discarding: boolean;
  /** Type and declared length of the message being reassembled. */
  type: number;
  declared: number;
  timer: TimerHandle | undefined;
}

/**
 * The protocol state of one connection. All entry points are synchronous or return promises that never
 * reject; nothing a peer sends makes them throw.
 */
export class GattSession {
  readonly peer: string;
  private readonly backend: LockGattBackend;
  private readonly clock: Clock;
  private readonly limits: GattSessionLimits;
  private readonly onDrop: (reason: DropReason, detail: string) => void;
  private readonly inbound: Record<WritableCharacteristic, Inbound>;
  private readonly senders = new Map<NotifyingCharacteristic, NotifySender>();
  private readonly readCache = new Map<ReadableCharacteristic, Uint8Array>();
  private attMtu = MIN_ATT_MTU;
  private closedFlag = false;
  private tokens: number;
  private tokensAt: number;
  private queued = 0;
  private queuedBytes = 0;
  private operations = 0;
  private chain: Promise<void> = Promise.resolve();
  private idleTimer: TimerHandle | undefined;
  private readonly lifeTimer: TimerHandle;
  private readonly counters = {
    writes: { request: 0, delivery: 0, relay: 0 },
    notifications: { result: 0, challenge: 0, relay: 0 },
    messages: 0,
    refusals: 0,
    challenges: 0,
    abandoned: 0,
  };

  constructor(options: GattSessionOptions) {
    this.peer = options.peer;
    this.backend = options.backend;
    this.clock = options.clock;
    this.limits = { ...DEFAULT_GATT_SESSION_LIMITS, ...options.limits };
    this.onDrop = options.onDrop;
    const inbound = (c: WritableCharacteristic): Inbound => ({
      reassembler: new Reassembler({
        maxLength: Math.min(this.limits.maxMessageBytes[c], MAX_MESSAGE_BYTES),
        allowedTypes: WRITABLE_TYPES[c],
      }),
      discarding: false,
      type: 0,
      declared: 0,
      timer: undefined,
    });
    this.inbound = { request: inbound('request'), delivery: inbound('delivery'), relay: inbound('relay') };
    this.tokens = this.limits.frameBurst;
    this.tokensAt = this.clock.now();
    this.lifeTimer = this.clock.setTimeout(
      () => this.drop('max-duration', `connection open for ${this.limits.maxConnectionMs} ms`),
      this.limits.maxConnectionMs,
    );
    this.touch();
  }

  /** The ATT MTU the frames are cut for (Core Vol 3 Part F §3.2.8; bleno's `mtuChange`). */
  get mtu(): number {
    return this.attMtu;
  }

  /** True once the session is closed (disconnect, drop, restart). */
  get closed(): boolean {
    return this.closedFlag;
  }

  /** A copy of the counters. */
  stats(): GattSessionStats {
    const c = this.counters;
    return {
      writes: { ...c.writes },
      notifications: { ...c.notifications },
      messages: c.messages,
      refusals: c.refusals,
      challenges: c.challenges,
      abandoned: c.abandoned,
    };
  }

  /** Records the negotiated ATT MTU; out-of-range values are clamped to what the framing accepts. */
  setMtu(mtu: number): void {
    if (!Number.isInteger(mtu)) return;
    this.attMtu = Math.min(MAX_ATT_MTU, Math.max(MIN_ATT_MTU, mtu));
    debug('%s: ATT MTU %d', this.peer, this.attMtu);
  }

  /**
   * One ATT write (command or request) to a writable characteristic: one frame ([TANDEM-GATT-5]). Refusals
   * are answered with a result notification; the flood and refusal limits drop the connection.
   */
  write(characteristic: WritableCharacteristic, frame: Uint8Array): void {
    if (this.closedFlag) return;
    this.counters.writes[characteristic] += 1;
    this.touch();
    if (!this.takeToken()) return;
    const state = this.inbound[characteristic];
    const first = frame.length > 0 && (frame[0]! & FLAG_FIRST) !== 0;
    if (state.discarding && !first) {
      debug('%s: %s: continuation frame of a refused message ignored', this.peer, characteristic);
      return;
    }
    state.discarding = false;
    // An ATT write carries at most MTU - 3 value bytes (Core Vol 3 Part F §3.4.5.3); a longer frame came
    // through a prepared (long) write, which the framing never produces ([TANDEM-GATT-5]).
    if (frame.length > this.attMtu - 3) {
      this.refuseFrame(
        characteristic,
        Status.MALFORMED,
        `frame of ${frame.length} bytes over MTU ${this.attMtu} - 3`,
      );
      return;
    }
    if (first && state.reassembler.busy) {
      // Flow step 5: a new first frame abandons the half-finished message; the new one starts afresh.
      this.abandon(characteristic, 'replaced by a new first frame');
    }
    if (first) {
      // The type names BLE-made results for this message, even when its first frame is refused below.
      state.type = frame.length >= 2 ? frame[1]! : 0;
      state.declared = 0;
    }
    if (first && frame.length >= FIRST_HEADER_BYTES) {
      const declared = (frame[2]! << 8) | frame[3]!;
      if (
        declared <= this.limits.maxMessageBytes[characteristic] &&
        this.outstanding() + declared > this.limits.maxOutstandingBytes
      ) {
        this.refuseFrame(
          characteristic,
          Status.BUSY,
          `${declared} more bytes would exceed the outstanding limit`,
        );
        return;
      }
      state.declared = declared;
    }
    let message;
    try {
      message = state.reassembler.push(frame);
    } catch (err) {
      this.clearReassemblyTimer(state);
      state.declared = 0;
      // SPEC §10: ERR_FRAME_INVALID and ERR_TOO_LARGE (a declared length over the maximum) are MALFORMED.
      const status = err instanceof ProtocolError ? STATUS_OF_ERROR[err.code] : Status.MALFORMED;
      this.refuseFrame(characteristic, status, err instanceof Error ? err.message : String(err));
      return;
    }
    if (message === undefined) {
      if (state.timer === undefined) {
        state.timer = this.clock.setTimeout(() => {
          state.timer = undefined;
          this.abandon(characteristic, `incomplete after ${this.limits.reassemblyTimeoutMs} ms`);
          state.discarding = true;
        }, this.limits.reassemblyTimeoutMs);
      }
      return;
    }
    this.clearReassemblyTimer(state);
    state.declared = 0;
    this.enqueue(characteristic, message.type, message.body);
  }

  /** A peer subscribed: challenges on result/challenge ([TANDEM-GATT-8], flow step 2), queued items on relay. */
  subscribe(characteristic: NotifyingCharacteristic, send: NotifySender): void {
    if (this.closedFlag) return;
    this.touch();
    this.senders.set(characteristic, send);
    if (!this.takeOperation()) return;
    if (characteristic === 'relay') {
      void this.notifyRelay();
      return;
    }
    const challenge = this.challengeBytes();
    if (challenge !== undefined) this.notifyMessage(characteristic, MessageType.challenge, challenge);
  }

  /** A peer unsubscribed (or bleno cleared its CCCD on disconnect). */
  unsubscribe(characteristic: NotifyingCharacteristic): void {
    this.senders.delete(characteristic);
  }

  /**
   * A read at `offset` (Read or Read Blob, Core Vol 3 Part F §3.4.4.3/§3.4.4.5). Offset 0 produces a fresh
   * value (a new challenge, current lock info, the relay count) and keeps it for the blob reads that follow,
   * so a long read at MTU 23 returns one consistent value.
   */
  async read(characteristic: ReadableCharacteristic, offset: number): Promise<ReadOutcome> {
    if (this.closedFlag) return { ok: false, error: 'unavailable' };
    this.touch();
    if (!Number.isInteger(offset) || offset < 0) return { ok: false, error: 'invalid-offset' };
    if (offset > 0) {
      const cached = this.readCache.get(characteristic);
      if (cached === undefined || offset > cached.length) return { ok: false, error: 'invalid-offset' };
      return { ok: true, data: cached.subarray(offset) };
    }
    if (!this.takeOperation()) return { ok: false, error: 'unavailable' };
    let value: Uint8Array | undefined;
    try {
      if (characteristic === 'challenge') value = this.challengeBytes();
      else if (characteristic === 'lockInfo') value = encodeLockInfo(this.backend.lockInfo());
      else value = await this.oldestRecord();
    } catch (err) {
      debug('%s: read of %s failed: %s', this.peer, characteristic, err instanceof Error ? err.message : err);
      return { ok: false, error: 'unavailable' };
    }
    if (value === undefined || this.closedFlag) return { ok: false, error: 'unavailable' };
    this.readCache.set(characteristic, value);
    return { ok: true, data: value };
  }

  /**
   * Ends the session: timers stopped, partial messages and caches dropped, results still being decided are
   * not notified (the decision itself completes in the runtime). Idempotent.
   */
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.clock.clearTimeout(this.lifeTimer);
    if (this.idleTimer !== undefined) this.clock.clearTimeout(this.idleTimer);
    for (const state of Object.values(this.inbound)) {
      this.clearReassemblyTimer(state);
      state.reassembler.reset();
    }
    this.senders.clear();
    this.readCache.clear();
    try {
      this.backend.peerGone?.(this.peer);
    } catch (err) {
      debug('%s: peerGone threw: %s', this.peer, err instanceof Error ? err.message : err);
    }
  }

  /** Resolves once every message accepted so far has been decided and its result notified (for tests). */
  async settled(): Promise<void> {
    for (;;) {
      const chain = this.chain;
      await chain;
      if (chain === this.chain) return;
    }
  }

  // -------------------------------------------------------------------------------------------------------

  private drop(reason: DropReason, detail: string): void {
    if (this.closedFlag) return;
    debug('%s: dropping the connection (%s): %s', this.peer, reason, detail);
    this.close();
    this.onDrop(reason, detail);
  }

  private touch(): void {
    if (this.closedFlag) return;
    if (this.idleTimer !== undefined) this.clock.clearTimeout(this.idleTimer);
    this.idleTimer = this.clock.setTimeout(() => {
      this.idleTimer = undefined;
      // A peer waiting for a decision is not idle.
      if (this.queued > 0) this.touch();
      else this.drop('idle', `nothing for ${this.limits.idleTimeoutMs} ms`);
    }, this.limits.idleTimeoutMs);
  }

  /** Token bucket over frames: a burst of `frameBurst`, refilled at `framesPerSecond`. */
  private takeToken(): boolean {
    const now = this.clock.now();
    const refill = ((now - this.tokensAt) * this.limits.framesPerSecond) / 1000;
    this.tokens = Math.min(this.limits.frameBurst, this.tokens + Math.max(0, refill));
    this.tokensAt = now;
    if (this.tokens < 1) {
      this.drop(
        'flood',
        `more than ${this.limits.frameBurst} frames at over ${this.limits.framesPerSecond}/s`,
      );
      return false;
    }
    this.tokens -= 1;
    return true;
  }

  private takeOperation(): boolean {
    this.operations += 1;
    if (this.operations > this.limits.maxOperations) {
      this.drop('operations', `more than ${this.limits.maxOperations} operations on one connection`);
      return false;
    }
    return true;
  }

  private outstanding(): number {
    let bytes = this.queuedBytes;
    for (const state of Object.values(this.inbound)) if (state.reassembler.busy) bytes += state.declared;
    return bytes;
  }

  private clearReassemblyTimer(state: Inbound): void {
    if (state.timer !== undefined) {
      this.clock.clearTimeout(state.timer);
      state.timer = undefined;
    }
  }

  private abandon(characteristic: WritableCharacteristic, why: string): void {
    const state = this.inbound[characteristic];
    if (!state.reassembler.busy) return;
    debug(
      '%s: %s: half-finished message type 0x%s dropped: %s',
      this.peer,
      characteristic,
      state.type.toString(16),
      why,
    );
    this.counters.abandoned += 1;
    this.clearReassemblyTimer(state);
    state.reassembler.reset();
    state.declared = 0;
  }

  private challengeBytes(): Uint8Array | undefined {
    try {
      const bytes = encodeChallenge(this.backend.issueChallenge(this.peer));
      this.counters.challenges += 1;
      return bytes;
    } catch (err) {
      debug('%s: no challenge: %s', this.peer, err instanceof Error ? err.message : err);
      return undefined;
    }
  }

  /** A refused frame: one result notification (TANDEM-GATT-6/7), continuation frames ignored until the next first frame. */
  private refuseFrame(characteristic: WritableCharacteristic, status: Status, why: string): void {
    const state = this.inbound[characteristic];
    debug('%s: %s: frame refused (%s): %s', this.peer, characteristic, Status[status], why);
    state.reassembler.reset();
    state.discarding = true;
    const type = state.type;
    state.type = 0;
    state.declared = 0;
    this.refuse(characteristic, status, type);
  }

  private refuse(
    characteristic: WritableCharacteristic,
    status: Status,
    type: number,
    body?: Uint8Array,
  ): void {
    this.counters.refusals += 1;
    if (this.counters.refusals > this.limits.maxRefusals) {
      this.drop('refusals', `more than ${this.limits.maxRefusals} refused messages`);
      return;
    }
    this.notifyResult(this.madeResult(status, characteristic, type, body), characteristic, type, body);
  }

  private madeResult(
    status: Status,
    characteristic: WritableCharacteristic,
    type: number,
    body?: Uint8Array,
  ): Result {
    let state = UNKNOWN_STATE;
    let lockTime = 0;
    try {
      state = this.backend.lockInfo().state;
    } catch {
      // UNKNOWN_STATE stands in; the refusal still goes out.
    }
    try {
      const t = this.backend.lockTime();
      if (Number.isSafeInteger(t) && t >= 0) lockTime = t;
    } catch {
      // 0 stands in for an unknown clock.
    }
    return {
      status,
      answers: answersOf(characteristic, type),
      ...requestFields(characteristic, body),
      state,
      lockTime,
    };
  }

  private enqueue(characteristic: WritableCharacteristic, type: number, body: Uint8Array): void {
    if (!this.takeOperation()) return;
    if (this.queued >= this.limits.maxQueuedMessages) {
      this.refuse(characteristic, Status.BUSY, type, body);
      return;
    }
    this.queued += 1;
    this.queuedBytes += body.length;
    this.counters.messages += 1;
    this.chain = this.chain.then(() => this.decide(characteristic, type, body));
  }

  /** Hands one message to the runtime and notifies its result; never rejects. */
  private async decide(
    characteristic: WritableCharacteristic,
    type: number,
    body: Uint8Array,
  ): Promise<void> {
    let result: Result;
    try {
      result =
        characteristic === 'request'
          ? await this.backend.handleRequest(this.peer, body)
          : await this.backend.deliver(this.peer, type as MessageType, body);
    } catch (err) {
      debug(
        '%s: the runtime failed on a %s message: %s',
        this.peer,
        characteristic,
        err instanceof Error ? err.stack : err,
      );
      result = this.madeResult(Status.FAULT, characteristic, type, body);
    } finally {
      this.queued -= 1;
      this.queuedBytes -= body.length;
    }
    if (this.closedFlag) {
      debug(
        '%s: result %s not notified: the peer is gone',
        this.peer,
        Status[result.status] ?? result.status,
      );
      return;
    }
    this.notifyResult(result, characteristic, type, body);
    if (characteristic === 'request') {
      // [TANDEM-GATT-8]: a fresh challenge after each request's result, so a phone can chain commands
      // without another round trip; on the result characteristic when the phone follows the flow (it
      // subscribed there), else on the challenge characteristic.
      const target = this.senders.has('result')
        ? 'result'
        : this.senders.has('challenge')
          ? 'challenge'
          : undefined;
      const challenge = target === undefined ? undefined : this.challengeBytes();
      if (target !== undefined && challenge !== undefined)
        this.notifyMessage(target, MessageType.challenge, challenge);
    }
  }

  private notifyResult(
    result: Result,
    characteristic: WritableCharacteristic,
    type: number,
    body?: Uint8Array,
  ): void {
    let bytes: Uint8Array;
    try {
      bytes = encodeResult(result);
    } catch (err) {
      // The runtime returned something the wire format cannot carry: say FAULT rather than nothing.
      debug('%s: invalid result from the runtime: %s', this.peer, err instanceof Error ? err.message : err);
      bytes = encodeResult(this.madeResult(Status.FAULT, characteristic, type, body));
    }
    this.notifyMessage('result', MessageType.result, bytes);
  }

  /** The oldest waiting record, unframed, for a read of the relay characteristic ([TANDEM-GATT-11]). */
  private async oldestRecord(): Promise<Uint8Array | undefined> {
    const [oldest] = await this.backend.pendingRelay(1);
    if (oldest === undefined) return new Uint8Array(0);
    // An attribute value is at most 512 bytes (Core Vol 3 Part F §3.2.9); a larger record goes by notification.
    if (!(oldest.body instanceof Uint8Array) || oldest.body.length > MAX_READ_BYTES) return undefined;
    return oldest.body;
  }

  private async notifyRelay(): Promise<void> {
    let items: readonly RelayItem[];
    try {
      items = await this.backend.pendingRelay(this.limits.maxRelayItems);
    } catch (err) {
      debug('%s: pendingRelay failed: %s', this.peer, err instanceof Error ? err.message : err);
      return;
    }
    for (const item of items.slice(0, this.limits.maxRelayItems)) {
      if (this.closedFlag) return;
      if (
        !RELAY_TYPES.includes(item.type) ||
        !(item.body instanceof Uint8Array) ||
        item.body.length > MAX_MESSAGE_BYTES
      ) {
        debug('%s: relay item of type %s and %d bytes skipped', this.peer, item.type, item.body?.length);
        continue;
      }
      // Each record notified is an operation: re-subscribing cannot make the lock queue its outbox again and
      // again into bleno's (unbounded) send queue. Past the budget the relay stops; the link stays.
      if (this.operations >= this.limits.maxOperations) {
        debug('%s: operation budget spent: relay stopped', this.peer);
        return;
      }
      this.operations += 1;
      this.notifyMessage('relay', item.type, item.body);
    }
  }

  /** Frames a message for the current MTU ([TANDEM-GATT-5]) and notifies each frame (≤ MTU - 3 bytes). */
  private notifyMessage(characteristic: NotifyingCharacteristic, type: number, body: Uint8Array): void {
    const send = this.senders.get(characteristic);
    if (send === undefined || this.closedFlag) {
      debug(
        '%s: %s not subscribed: message type 0x%s not notified',
        this.peer,
        characteristic,
        type.toString(16),
      );
      return;
    }
    for (const frame of frameMessage(type, body, this.attMtu)) {
      try {
        send(frame);
        this.counters.notifications[characteristic] += 1;
      } catch (err) {
        debug(
          '%s: notification on %s failed: %s',
          this.peer,
          characteristic,
          err instanceof Error ? err.message : err,
        );
        return;
      }
    }
  }
}
