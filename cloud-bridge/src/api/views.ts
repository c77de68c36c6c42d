/**
 * The API's JSON views of what the store holds (cloud-bridge/api/openapi.json: Device, LockView, Share), and
 * the conversions between the contract's schedule form (`{"days": ["mon"], "start": "08:00", "end": "18:00"}`)
 * and protocol/src/schedule.ts (weekday bit set, minutes after local midnight; SPEC §5.4).
 */
import type { Schedule, ScheduleWindow } from '../../../protocol/src/schedule.js';
import type { CloudStore, DeviceRecord, LockClaim, Share } from '../store/types.js';
import { ApiError } from './errors.js';

export const iso = (ms: number): string => new Date(ms).toISOString();
const isoSec = (s: number): string => iso(s * 1000);

export const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

/** One window as the API writes it. */
export interface ScheduleWindowJson {
  readonly days: readonly string[];
  readonly start: string;
  readonly end: string;
}

const minutes = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
const hhmm = (m: number): string =>
  `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;

/** The contract's schedule (already schema-checked) to protocol windows; ERR_API_SHARE when a window is empty. */
export function scheduleFromJson(windows: readonly ScheduleWindowJson[]): Schedule {
  return windows.map((w, i): ScheduleWindow => {
    const start = minutes(w.start);
    const end = minutes(w.end);
    if (start >= end) {
      throw new ApiError(
        400,
        'ERR_API_SHARE',
        `body.schedule.${i}: "end" (${w.end}) must be after "start" (${w.start})`,
      );
    }
    const days = w.days.reduce((bits, d) => bits | (1 << DAYS.indexOf(d as (typeof DAYS)[number])), 0);
    return { days, start, end };
  });
}

export function scheduleToJson(schedule: Schedule): ScheduleWindowJson[] {
  return schedule.map((w) => ({
    days: DAYS.filter((_, i) => (w.days & (1 << i)) !== 0),
    start: hhmm(w.start),
    end: hhmm(w.end),
  }));
}

export function deviceView(d: DeviceRecord): object {
  return { id: d.deviceId, name: d.name, thumbprint: d.thumbprint, registeredAt: iso(d.registeredAt) };
}

export function shareView(s: Share): object {
  return {
    id: s.id,
    lock: s.lock,
    owner: s.owner,
    rider: s.rider,
    scope: [...s.scope],
    notBefore: isoSec(s.notBefore),
    notAfter: isoSec(s.notAfter),
    ...(s.schedule !== undefined ? { schedule: scheduleToJson(s.schedule) } : {}),
    ...(s.maxUses !== undefined ? { maxUses: s.maxUses } : {}),
    usesReported: s.usesReported ?? 0,
    mayReshare: s.mayReshare === true,
    revoked: s.revoked === true,
    ...(s.revokedAt !== undefined ? { revokedAt: isoSec(s.revokedAt) } : {}),
    createdAt: isoSec(s.createdAt ?? s.notBefore),
  };
}

/**
 * LockView: ownership, last state, last contact, the revocation version the lock acknowledged ([TANDEM-REV-9])
 * and the issuer anchor version it acknowledged ([TANDEM-ANCHOR-5]) beside the issuer's (`anchorVersion`).
 */
export async function lockView(
  store: CloudStore,
  anchorVersion: () => number,
  claim: LockClaim,
): Promise<object> {
  const [state, rev, ack, contact, anchorAck, settings] = await Promise.all([
    store.getState(claim.lockId),
    store.getRevocation(claim.lockId),
    store.getRevocationAck(claim.lockId),
    store.lastContact(claim.lockId),
    store.getAnchorAck(claim.lockId),
    store.getLockSettings(claim.lockId),
  ]);
  return {
    id: claim.lockId,
    owner: claim.owner,
    claimedAt: iso(claim.claimedAt),
    state: state?.state ?? null,
    stateAt: state === undefined ? null : isoSec(state.time),
    lastContact: contact === undefined ? null : iso(contact),
    revocation: {
      version: rev?.version ?? 0,
      acknowledgedVersion: ack?.version ?? null,
      acknowledgedAt: ack === undefined ? null : iso(ack.receivedAt),
    },
    anchor: {
      version: anchorVersion(),
      acknowledgedVersion: anchorAck?.version ?? null,
      acknowledgedAt: anchorAck === undefined ? null : iso(anchorAck.receivedAt),
      via: anchorAck?.via ?? null,
    },
    remoteLocking: settings.remoteLocking,
  };
}
