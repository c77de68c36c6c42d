/**
 * The BLE central port of the phone-side client, after Tesla's `connector` (Send/Receive/idempotent Close):
 * a {@link LockTransport} finds a lock by its tag and opens a {@link LockLink}, which reads, writes and
 * subscribes to the characteristics of the Tandem service (SPEC §8.1). Framing and reassembly stay in the
 * client; a transport moves ATT values only. `NobleTransport` is the adapter for `@abandonware/noble` (real
 * HCI or the virtual radio).
 */
import type { AdvertisedFlags, CharacteristicName } from '../../protocol/src/gatt.js';

/** A lock found by its scan response ([TANDEM-GATT-3]). */
export interface FoundLock {
  readonly lockId: string;
  /** Transport-specific handle (noble: the peripheral id). */
  readonly id: string;
  readonly address: string;
  readonly rssi: number;
  readonly flags: AdvertisedFlags;
}

/** Options of {@link LockTransport.scan}. */
export interface ScanOptions {
  /** Give up after this many milliseconds (the transport's own timers). */
  readonly timeoutMs: number;
}

/** Options of {@link LockTransport.connect}. */
export interface ConnectOptions {
  /** Give up (and cancel the pending connection) after this many milliseconds. */
  readonly timeoutMs: number;
}

/** One GATT connection to a lock. */
export interface LockLink {
  /** The ATT MTU both stacks settled on (Core Vol 3 Part F §3.4.2); 23 until exchanged. */
  readonly mtu: number;
  /** True until the link drops or is disconnected. */
  readonly connected: boolean;
  /**
   * Enables notifications (CCCD write, one GATT round trip) and hands every notified value of `name` to
   * `onValue`, in order.
   */
  subscribe(name: CharacteristicName, onValue: (value: Uint8Array) => void): Promise<void>;
  /** Writes one ATT value; `withoutResponse` resolves once the stack has queued it. */
  write(name: CharacteristicName, value: Uint8Array, withoutResponse: boolean): Promise<void>;
  /** Reads a value (long reads included, [TANDEM-GATT-12]). */
  read(name: CharacteristicName): Promise<Uint8Array>;
  /** Calls `listener` once when the link drops (or is disconnected); at once if it already has. */
  onDisconnect(listener: (reason: string) => void): void;
  /** Ends the connection. Idempotent. */
  disconnect(): Promise<void>;
}

/** The BLE central: scanning and connecting. */
export interface LockTransport {
  /** Scans for the lock whose tag is `lockTag(lockId)`; rejects with ERR_GW_LOCK_NOT_FOUND after the timeout. */
  scan(lockId: string, options: ScanOptions): Promise<FoundLock>;
  /** Connects, discovers the Tandem service, and settles the ATT MTU. */
  connect(lock: FoundLock, options: ConnectOptions): Promise<LockLink>;
  /** Releases the adapter. Idempotent; the transport is unusable afterwards. */
  close(): Promise<void>;
}
