/**
 * What an emulated LE controller needs of the air it lives on ({@link Air}), and the controller state the
 * air reads back (advertising, scanning, initiating). The controller parses HCI; the air (advertising,
 * connections, link layer) moves packets. Neither imports the other's module: the radio wires them.
 */

/** A receiver of controller-to-host packets (one per bound socket). */
export type HostSink = (packet: Buffer) => void;

/** Advertising state set through LE Set Advertising Parameters/Data/Enable (Vol 4 Part E 7.8.5–7.8.9). */
export interface AdvertisingState {
  intervalMs: number;
  /** Advertising_Type of 7.8.5 (0 ADV_IND, 1/4 ADV_DIRECT_IND, 2 ADV_SCAN_IND, 3 ADV_NONCONN_IND). */
  type: number;
  data: Buffer;
  scanResponse: Buffer;
  enabled: boolean;
}

/** Scanning state set through LE Set Scan Parameters/Enable (7.8.10, 7.8.11). */
export interface ScanState {
  active: boolean;
  enabled: boolean;
  filterDuplicates: boolean;
  /** Duplicate filter: reports already sent since scanning was enabled (address, type and data). */
  reported: Set<string>;
}

/** Pending LE Create Connection (7.8.12). */
export interface InitiatingState {
  peerAddressType: number;
  peerAddress: string;
  maxIntervalMs: number;
  latency: number;
  supervisionTimeoutMs: number;
}

/** Connection parameters asked for by LE Connection Update (7.8.18). */
export interface ConnectionParameters {
  intervalMs: number;
  latency: number;
  supervisionTimeoutMs: number;
}

/** Controller capabilities reported to the host. */
export interface ControllerCapabilities {
  /** HCI_Version reported by Read Local Version Information (7.4.1): 0x07 Core 4.1, 0x08 Core 4.2. */
  coreVersion: number;
  /**
   * Largest data PDU payload the link layer supports (Vol 6 Part B 4.5.10): 27 means no Data Length
   * Extension, and the Core 4.2 data length commands are then unknown to it.
   */
  maxDataOctets: number;
  /** LE ACL data packet length reported by LE Read Buffer Size (7.8.2). */
  aclBufferLength: number;
  /** Number of LE ACL data packets the controller buffers (7.8.2). */
  aclBufferCount: number;
}

/**
 * The air as one controller sees it: every operation is on behalf of that controller. Statuses are HCI
 * error codes (Vol 1 Part F) for the Command Status or Command Complete event the controller sends.
 */
export interface Air {
  /** Advertising parameters, data or enable changed (7.8.5–7.8.9). */
  advertisingChanged(): void;
  /** Scanning or initiating started or stopped: advertisers may have gained or lost an audience. */
  listenersChanged(): void;
  /** HCI_Reset (7.3.2): drop this controller's connections without telling its host; peers time out. */
  reset(): void;
  /** HCI ACL data from the host (5.4.2), to be sent on connection `handle`. */
  sendAcl(handle: number, packetBoundary: number, data: Buffer): void;
  /** True if `handle` names an open connection of this controller. */
  hasConnection(handle: number): boolean;
  /** HCI Disconnect (7.1.6): SUCCESS, or UNKNOWN_CONNECTION_ID. */
  disconnect(handle: number, reason: number): number;
  /** LE Connection Update (7.8.18): SUCCESS, UNKNOWN_CONNECTION_ID, or COMMAND_DISALLOWED if not Central. */
  updateConnection(handle: number, params: ConnectionParameters): number;
  /**
   * LE Set Data Length (7.8.33): start the Data Length Update procedure (Vol 6 Part B 5.1.9) on `handle`.
   * SUCCESS or UNKNOWN_CONNECTION_ID.
   */
  setDataLength(handle: number): number;
  /** RSSI (dBm) reported by Read RSSI (7.5.4). */
  rssiDbm(): number;
}
