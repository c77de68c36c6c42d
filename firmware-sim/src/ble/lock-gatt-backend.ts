/**
 * The port between the lock's GATT service and the lock runtime. The BLE side (framing, MTU, per-connection
 * limits, bleno) only ever talks to this interface, so it does not depend on how the runtime verifies tokens,
 * keeps challenges or stores its outbox (`firmware-sim/src/lock/`), and tests can drive it with a small fake.
 *
 * A `peer` string names one BLE connection: the central's address and a per-process connection number
 * (`"54:41:4e:00:00:01#3"`). It is never reused within a process, so a challenge issued on one connection
 * cannot be answered on a later one by the same address, and the runtime may key rate limits on it. It is
 * not an identity: BLE addresses are chosen by the peer (ARCHITECTURE.md, "the BLE link is public").
 */
import type { AdvertisedFlags, Challenge, LockInfo, LockState, Result } from '../../../protocol/src/gatt.js';
import { MessageType } from '../../../protocol/src/gatt.js';

/** A queued outbox item a phone may carry to the cloud ([TANDEM-GATT-4]; flow step 4). */
export interface RelayItem {
  /** One of {@link RELAY_TYPES}. */
  readonly type: MessageType;
  /** The signed COSE_Sign1 bytes from the lock's outbox, at most MAX_MESSAGE_BYTES (4096). */
  readonly body: Uint8Array;
}

/** Message types the lock notifies on the relay characteristic; anything else from the port is dropped. */
export const RELAY_TYPES: readonly MessageType[] = [
  MessageType.alert,
  MessageType.auditRecord,
  MessageType.revocationAck,
  MessageType.lockState,
  MessageType.anchorAck,
];

/** Message types the port's {@link LockGattBackend.deliver} receives: delivery and relay writes. */
export const DELIVERED_TYPES: readonly MessageType[] = [
  MessageType.timeBeacon,
  MessageType.revocationUpdate,
  MessageType.anchorUpdate,
  MessageType.outboxAck,
];

/**
 * What the GATT service needs from the lock runtime. Every method may be called for any connection at any
 * time; the BLE side serialises the messages of one connection (a delivery written before a request is
 * decided before it) but calls for different connections may interleave after a reconnect.
 *
 * Errors: a method that throws (or whose promise rejects) never reaches the peer as an exception. The BLE
 * side logs it and answers with status FAULT ([TANDEM-STATUS-3]: after an unlock, the solenoid may have
 * moved); a throwing `issueChallenge`, `lockInfo` or `pendingRelay` gives the peer nothing (a failed read,
 * no notification).
 */
export interface LockGattBackend {
  /** The lock id, as in the scan response's lock tag ([TANDEM-GATT-3]). */
  readonly lockId: string;

  /** Lock info ([TANDEM-GATT-10]) for a read of the lock info characteristic. */
  lockInfo(): LockInfo;

  /**
   * A fresh challenge ([TANDEM-GATT-8], [TANDEM-POP-4]) for `peer`: a new random nonce the runtime accepts
   * once, for a limited time. Called when `peer` subscribes to the result (or challenge) characteristic and
   * for every read of the challenge characteristic at offset 0.
   */
  issueChallenge(peer: string): Challenge;

  /**
   * Decides a request ([TANDEM-POP-2]; decision order SPEC §5.7): `body` is the reassembled unlock request
   * bytes, not yet decoded (decoding is step 1 of the decision, so malformed bodies are audited too). Only
   * well-framed messages of type unlockRequest written to the request characteristic reach this method.
   */
  handleRequest(peer: string, body: Uint8Array): Promise<Result>;

  /**
   * Takes a message a phone carries: a time beacon or revocation update written to the delivery
   * characteristic, or an outbox ack written to the relay characteristic ({@link DELIVERED_TYPES}). The
   * result's command is `time`, `revocation` or `relay`.
   */
  deliver(peer: string, type: MessageType, body: Uint8Array): Promise<Result>;

  /**
   * Up to `max` queued outbox items, oldest first, for a phone that subscribed to the relay characteristic.
   * Reading them does not remove them: only the cloud's signed outbox ack clears the outbox (flow step 4).
   */
  pendingRelay(max: number): Promise<readonly RelayItem[]>;

  /** The lock's clock, Unix seconds, for results the BLE side makes itself (MALFORMED, BUSY, FAULT). */
  lockTime(): number;

  /** The flags of the scan response ([TANDEM-GATT-3]); read whenever advertising (re)starts. */
  advertisedFlags(): AdvertisedFlags;

  /**
   * Optional: `peer`'s connection ended (disconnect, drop, restart). The runtime may forget the challenges
   * it issued to it. Called once per connection.
   */
  peerGone?(peer: string): void;
}

/** A lock state for BLE-made results when the port cannot say (its `lockInfo()` threw). */
export const UNKNOWN_STATE: LockState = 'fault';
