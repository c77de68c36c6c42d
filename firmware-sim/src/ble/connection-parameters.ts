/**
 * The lock asks the central for a shorter connection interval ([TANDEM-GATT-18]). bleno has no API for it; a
 * Peripheral asks with an L2CAP Connection Parameter Update Request on the LE signalling channel (CID
 * 0x0005, Bluetooth Core v5.3 Vol 3 Part A 4.20), which is ACL data: this module writes it through bleno's
 * HCI layer (`queueAclDataPkt`, the same queue, fragmentation and controller buffer credits as ATT) and
 * reads the Connection Parameter Update Response (4.21) and LE Connection Update Complete (Vol 4 Part E
 * 7.7.65.3) from it.
 *
 * Safe on the Pi's real HCI, as far as can be checked without one (not tried on hardware):
 * - bleno opens the HCI socket on the raw channel; the kernel's own L2CAP layer still sees the link. The
 *   request's identifier is taken from 200-254, which Linux leaves to user programs (net/bluetooth/l2cap_core.c,
 *   l2cap_get_ident: 1-128 are the kernel's), so an answer is never mistaken for one to the kernel; the
 *   kernel ignores a Connection Parameter Update Response it did not ask for.
 * - The lock never waits for the answer: nothing of a tap depends on it. A central that rejects the request,
 *   answers Command Reject (a central without LE signalling) or nothing at all leaves the connection as it is.
 * - One request per connection, never repeated on it: Apple's guidelines allow a central to reject, and a
 *   peripheral that asks again and again is what they warn against.
 */
import { BleError } from './errors.js';

/** What the lock asks for (Vol 3 Part A 4.20), in milliseconds. */
export interface ConnectionParameterRequest {
  readonly minIntervalMs: number;
  readonly maxIntervalMs: number;
  readonly latency: number;
  readonly supervisionTimeoutMs: number;
}

/**
 * The default request: 15-30 ms, no peripheral latency, 2 s supervision timeout. It meets every rule of
 * Apple's Accessory Design Guidelines ("Connection Parameters", R15+: min a multiple of 15 ms and >= 15 ms,
 * min + 15 ms <= max, latency <= 30, timeout 2-6 s, max x (latency + 1) <= 2 s and x 3 < timeout), the
 * strictest of the phones, and lets iOS take its shortest (15 ms) interval; Android may go lower on its own.
 * The lock's exchanges are short bursts, so latency buys it nothing; a 2 s timeout lets it notice a rider
 * who walked away soonest.
 */
export const DEFAULT_CONNECTION_PARAMETERS: ConnectionParameterRequest = Object.freeze({
  minIntervalMs: 15,
  maxIntervalMs: 30,
  latency: 0,
  supervisionTimeoutMs: 2000,
});

const SIGNALLING_CID = 0x0005;
const COMMAND_REJECT = 0x01;
const UPDATE_REQUEST = 0x12;
const UPDATE_RESPONSE = 0x13;
/** Identifiers for user programs on Linux (l2cap_get_ident leaves 200-254 to them). */
const FIRST_IDENTIFIER = 200;
const LAST_IDENTIFIER = 254;

/** Why `p` is not a request this lock may send (the Core spec's ranges and Apple's rules), or null. */
export function connectionParameterProblem(p: ConnectionParameterRequest): string | null {
  const { minIntervalMs: min, maxIntervalMs: max, latency, supervisionTimeoutMs: timeout } = p;
  const on = (v: number, unit: number): boolean =>
    Number.isFinite(v) && Math.abs(v / unit - Math.round(v / unit)) < 1e-9;
  if (!on(min, 1.25) || !on(max, 1.25)) return 'intervals must be multiples of 1.25 ms';
  if (!on(timeout, 10)) return 'the supervision timeout must be a multiple of 10 ms';
  if (!Number.isInteger(latency) || latency < 0) return 'latency must be a whole number of events';
  // Apple's rules (stricter than the Core spec's 7.5-4000 ms, latency <= 499, timeout 0.1-32 s).
  if (min < 15 || min % 15 !== 0) return `interval min ${min} ms must be a multiple of 15 ms, at least 15 ms`;
  if (!(min + 15 <= max || (min === 15 && max === 15)))
    return `interval max ${max} ms must be at least min + 15 ms (or min == max == 15 ms)`;
  if (max > 4000) return `interval max ${max} ms above 4 s`;
  if (latency > 30) return `latency ${latency} above 30`;
  if (timeout < 2000 || timeout > 6000) return `supervision timeout ${timeout} ms outside 2-6 s`;
  if (max * (latency + 1) > 2000) return 'interval max x (latency + 1) above 2 s';
  if (max * (latency + 1) * 3 >= timeout)
    return 'interval max x (latency + 1) x 3 must stay below the supervision timeout';
  return null;
}

/** The request, or a coded error naming what is wrong with it. */
export function checkConnectionParameters(p: ConnectionParameterRequest): ConnectionParameterRequest {
  const why = connectionParameterProblem(p);
  if (why !== null) throw new BleError('ERR_BLE_CONFIG', `connection parameter request refused: ${why}`);
  return p;
}

/** The signalling command (code, identifier, length, four fields), without the L2CAP header. */
export function encodeParameterRequest(identifier: number, p: ConnectionParameterRequest): Buffer {
  const b = Buffer.alloc(12);
  b[0] = UPDATE_REQUEST;
  b[1] = identifier;
  b.writeUInt16LE(8, 2);
  b.writeUInt16LE(Math.round(p.minIntervalMs / 1.25), 4);
  b.writeUInt16LE(Math.round(p.maxIntervalMs / 1.25), 6);
  b.writeUInt16LE(p.latency, 8);
  b.writeUInt16LE(Math.round(p.supervisionTimeoutMs / 10), 10);
  return b;
}

/** The parts of bleno 0.6.2's HCI object (`lib/hci-socket/hci.js`) this module uses. */
export interface BlenoHci {
  queueAclDataPkt(handle: number, cid: number, data: Buffer): void;
  on(event: 'aclDataPkt', listener: (handle: number, cid: number, data: Buffer) => void): unknown;
  on(
    event: 'leConnUpdateComplete',
    listener: (
      status: number,
      handle: number,
      intervalMs: number,
      latency: number,
      timeoutMs: number,
    ) => void,
  ): unknown;
  removeListener(event: string, listener: (...args: never[]) => void): unknown;
}

/** How the last request of a connection ended. */
export type ParameterOutcome = 'pending' | 'accepted' | 'rejected' | 'unsupported';

/** Counters over the peripheral's life. */
export interface ParameterStats {
  /** Requests sent (one per connection at most). */
  readonly requested: number;
  /** Answered Accepted / Rejected; Command Reject counts as `unsupported`. */
  readonly accepted: number;
  readonly rejected: number;
  readonly unsupported: number;
  /** LE Connection Update Complete events (successful) seen on the lock's connection. */
  readonly updates: number;
  /** The interval of the last LE Connection Update Complete, ms (undefined before the first). */
  readonly lastIntervalMs: number | undefined;
}

/**
 * Sends the request on a connection and follows its answer. One instance per peripheral: `attach` to
 * bleno's HCI object once, `request(handle)` on each new connection, `forget()` when it ends.
 */
export class ConnectionParameterRequester {
  private hci: BlenoHci | undefined;
  private handle: number | undefined;
  private identifier: number | undefined;
  private nextIdentifier = FIRST_IDENTIFIER;
  private outcomeValue: ParameterOutcome | undefined;
  private readonly counters = {
    requested: 0,
    accepted: 0,
    rejected: 0,
    unsupported: 0,
    updates: 0,
    lastIntervalMs: undefined as number | undefined,
  };
  private readonly onAcl = (handle: number, cid: number, data: Buffer): void => {
    if (handle !== this.handle || cid !== SIGNALLING_CID || this.identifier === undefined) return;
    if (data.length < 4 || data[1] !== this.identifier) return;
    if (data[0] === UPDATE_RESPONSE && data.length >= 6) {
      const accepted = data.readUInt16LE(4) === 0;
      this.settle(accepted ? 'accepted' : 'rejected');
    } else if (data[0] === COMMAND_REJECT) {
      this.settle('unsupported');
    }
  };
  private readonly onUpdate = (
    status: number,
    handle: number,
    intervalMs: number,
    _latency: number,
    _timeoutMs: number,
  ): void => {
    if (handle !== this.handle || status !== 0) return;
    this.counters.updates += 1;
    this.counters.lastIntervalMs = intervalMs;
    this.onChange?.({ outcome: this.outcomeValue ?? 'pending', intervalMs });
  };

  constructor(
    private readonly parameters: ConnectionParameterRequest,
    private readonly onChange?: (e: { outcome: ParameterOutcome; intervalMs?: number }) => void,
  ) {
    checkConnectionParameters(parameters);
  }

  /** Follow `hci` (bleno's HCI object); a second call with the same object does nothing. */
  attach(hci: BlenoHci): void {
    if (this.hci === hci) return;
    this.detach();
    this.hci = hci;
    hci.on('aclDataPkt', this.onAcl);
    hci.on('leConnUpdateComplete', this.onUpdate);
  }

  detach(): void {
    this.hci?.removeListener('aclDataPkt', this.onAcl);
    this.hci?.removeListener('leConnUpdateComplete', this.onUpdate);
    this.hci = undefined;
    this.forget();
  }

  /** Ask on connection `handle` (once; a later call for the same handle does nothing). */
  request(handle: number): void {
    if (this.hci === undefined || this.handle === handle) return;
    this.handle = handle;
    this.identifier = this.nextIdentifier;
    this.nextIdentifier = this.nextIdentifier >= LAST_IDENTIFIER ? FIRST_IDENTIFIER : this.nextIdentifier + 1;
    this.outcomeValue = 'pending';
    this.counters.requested += 1;
    this.hci.queueAclDataPkt(
      handle,
      SIGNALLING_CID,
      encodeParameterRequest(this.identifier, this.parameters),
    );
  }

  /** The connection ended: answers for it are no longer taken. */
  forget(): void {
    this.handle = undefined;
    this.identifier = undefined;
    this.outcomeValue = undefined;
  }

  /** How this connection's request ended so far (undefined without a connection). */
  get outcome(): ParameterOutcome | undefined {
    return this.outcomeValue;
  }

  stats(): ParameterStats {
    return { ...this.counters };
  }

  private settle(outcome: Exclude<ParameterOutcome, 'pending'>): void {
    if (this.outcomeValue !== 'pending') return;
    this.outcomeValue = outcome;
    this.counters[outcome] += 1;
    this.onChange?.({ outcome });
  }
}
