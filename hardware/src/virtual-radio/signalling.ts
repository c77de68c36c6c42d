/**
 * The Central's side of the L2CAP LE signalling channel (CID 0x0005, Bluetooth Core v5.3 Vol 3 Part A 4),
 * as a phone's stack answers it: a Peripheral (the lock) asks for other connection parameters with a
 * Connection Parameter Update Request (4.20); the Central answers a Connection Parameter Update Response
 * (4.21) and, when it accepts, starts the link layer's connection update procedure (Vol 6 Part B 5.1.1),
 * whose instant both controllers report to their hosts with LE Connection Update Complete (Vol 4 Part E
 * 7.7.65.3). A phone's OS does this itself: the app (noble here) never sees the request.
 *
 * What each phone accepts is its profile's {@link ParameterUpdatePolicy}.
 */

/** The LE signalling channel (Vol 3 Part A 2.1). */
export const SIGNALLING_CID = 0x0005;

/** Signalling command codes used here (Vol 3 Part A 4, Table 4.2). */
export const SIGNAL = {
  COMMAND_REJECT: 0x01,
  CONNECTION_PARAMETER_UPDATE_REQUEST: 0x12,
  CONNECTION_PARAMETER_UPDATE_RESPONSE: 0x13,
} as const;

/** Result of a Connection Parameter Update Response (Vol 3 Part A 4.21). */
export const PARAMETERS_ACCEPTED = 0x0000;
export const PARAMETERS_REJECTED = 0x0001;

/** A Connection Parameter Update Request, in milliseconds (its fields are in 1.25 ms and 10 ms units). */
export interface ParameterRequest {
  readonly identifier: number;
  readonly minIntervalMs: number;
  readonly maxIntervalMs: number;
  readonly latency: number;
  readonly supervisionTimeoutMs: number;
}

/**
 * How a phone's stack answers a Peripheral's Connection Parameter Update Request.
 * - `apple`: the rules of Apple's Accessory Design Guidelines ("Bluetooth Low Energy", "Connection
 *   Parameters", R15 and later): a request that breaks one of them "may be rejected", modelled as always.
 * - `core`: anything the Core spec allows (Vol 3 Part A 4.20 and Vol 6 Part B 4.5.2 ranges), as Android's
 *   stack passes valid requests on to its controller.
 * - `reject`: every request is rejected (the pessimistic phone bounds the model from above).
 * An accepted request gets the smallest interval in its range that the phone uses (`minIntervalMs`).
 */
export interface ParameterUpdatePolicy {
  readonly rules: 'apple' | 'core' | 'reject';
  /** Shortest connection interval this phone grants a Peripheral, ms. */
  readonly minIntervalMs: number;
}

/** What a phone decided about a request. */
export type ParameterVerdict =
  | { readonly accepted: true; readonly intervalMs: number }
  | { readonly accepted: false; readonly reason: string };

/** L2CAP payload of a signalling channel PDU: the request, or null when it is not one (or malformed). */
export function parseParameterRequest(l2capPayload: Buffer): ParameterRequest | null {
  // code, identifier, length (8), then four u16 (Vol 3 Part A 4.20).
  if (l2capPayload.length !== 12) return null;
  if (l2capPayload[0] !== SIGNAL.CONNECTION_PARAMETER_UPDATE_REQUEST) return null;
  if (l2capPayload.readUInt16LE(2) !== 8) return null;
  return {
    identifier: l2capPayload[1]!,
    minIntervalMs: l2capPayload.readUInt16LE(4) * 1.25,
    maxIntervalMs: l2capPayload.readUInt16LE(6) * 1.25,
    latency: l2capPayload.readUInt16LE(8),
    supervisionTimeoutMs: l2capPayload.readUInt16LE(10) * 10,
  };
}

/** Why a request breaks the Core spec's ranges (Vol 3 Part A 4.20; Vol 6 Part B 4.5.1, 4.5.2), or null. */
function coreViolation(r: ParameterRequest): string | null {
  if (r.minIntervalMs < 7.5 || r.maxIntervalMs > 4000 || r.minIntervalMs > r.maxIntervalMs)
    return `interval ${r.minIntervalMs}-${r.maxIntervalMs} ms outside 7.5-4000 ms or min > max`;
  if (r.latency > 499) return `latency ${r.latency} > 499`;
  if (r.supervisionTimeoutMs < 100 || r.supervisionTimeoutMs > 32_000)
    return `supervision timeout ${r.supervisionTimeoutMs} ms outside 100-32000 ms`;
  if (r.supervisionTimeoutMs <= (1 + r.latency) * r.maxIntervalMs * 2)
    return `supervision timeout ${r.supervisionTimeoutMs} ms not above (1 + latency) x max interval x 2`;
  return null;
}

/** Why a request breaks Apple's rules (Accessory Design Guidelines, "Connection Parameters"), or null. */
function appleViolation(r: ParameterRequest): string | null {
  const { minIntervalMs: min, maxIntervalMs: max, latency, supervisionTimeoutMs: timeout } = r;
  if (latency > 30) return `latency ${latency} > 30`;
  if (timeout < 2000 || timeout > 6000) return `supervision timeout ${timeout} ms outside 2-6 s`;
  if (min < 15 || min % 15 !== 0) return `interval min ${min} ms not a multiple of 15 ms >= 15 ms`;
  if (!(min + 15 <= max || (min === 15 && max === 15)))
    return `interval max ${max} ms below min + 15 ms (and not min == max == 15 ms)`;
  if (max * (latency + 1) > 2000) return `interval max x (latency + 1) = ${max * (latency + 1)} ms > 2 s`;
  if (max * (latency + 1) * 3 >= timeout)
    return `interval max x (latency + 1) x 3 = ${max * (latency + 1) * 3} ms not below the supervision timeout`;
  return null;
}

/** The phone's answer to `request` under `policy`. */
export function judgeParameterRequest(
  policy: ParameterUpdatePolicy,
  request: ParameterRequest,
): ParameterVerdict {
  if (policy.rules === 'reject') return { accepted: false, reason: 'this phone rejects every request' };
  const why = coreViolation(request) ?? (policy.rules === 'apple' ? appleViolation(request) : null);
  if (why !== null) return { accepted: false, reason: why };
  // The controller picks an interval within the range: the shortest this phone uses, on the 1.25 ms grid.
  const intervalMs = Math.ceil(Math.max(request.minIntervalMs, policy.minIntervalMs) / 1.25) * 1.25;
  if (intervalMs > request.maxIntervalMs)
    return { accepted: false, reason: `range ends below this phone's ${policy.minIntervalMs} ms` };
  return { accepted: true, intervalMs };
}

/** A whole L2CAP frame (length, CID 0x0005, command) answering `identifier` (Vol 3 Part A 4.21). */
export function parameterResponseFrame(identifier: number, accepted: boolean): Buffer {
  const b = Buffer.alloc(10);
  b.writeUInt16LE(6, 0);
  b.writeUInt16LE(SIGNALLING_CID, 2);
  b[4] = SIGNAL.CONNECTION_PARAMETER_UPDATE_RESPONSE;
  b[5] = identifier;
  b.writeUInt16LE(2, 6);
  b.writeUInt16LE(accepted ? PARAMETERS_ACCEPTED : PARAMETERS_REJECTED, 8);
  return b;
}

/** Command Reject, "command not understood" (Vol 3 Part A 4.1), for a signalling command it cannot parse. */
export function commandRejectFrame(identifier: number): Buffer {
  const b = Buffer.alloc(10);
  b.writeUInt16LE(6, 0);
  b.writeUInt16LE(SIGNALLING_CID, 2);
  b[4] = SIGNAL.COMMAND_REJECT;
  b[5] = identifier;
  b.writeUInt16LE(2, 6);
  b.writeUInt16LE(0x0000, 8);
  return b;
}
