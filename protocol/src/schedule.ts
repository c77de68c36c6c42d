/**
 * Weekly schedules (SPEC.md §5.4, [TANDEM-SCHED-1..4]). A schedule is a list of windows, each
 * `[days, start, end]`: `days` a bit set of ISO weekdays (bit 0 Monday … bit 6 Sunday), `start` and `end`
 * minutes after local midnight with 0 <= start < end <= 1440. Local time is the lock's configured IANA time
 * zone: the token says when, the lock knows where.
 */
import { ProtocolError } from './errors.js';

/** One window: the days it applies to and a [start, end) minute range of the local day. */
export interface ScheduleWindow {
  /** Bit set of ISO weekdays: bit 0 = Monday … bit 6 = Sunday. */
  readonly days: number;
  /** Minutes after local midnight, inclusive. */
  readonly start: number;
  /** Minutes after local midnight, exclusive; at most 1440. */
  readonly end: number;
}

export type Schedule = readonly ScheduleWindow[];

/** Most windows in one schedule ([TANDEM-SCHED-1]). */
export const MAX_WINDOWS = 14;

/** Parses the CBOR form (an array of [days, start, end]). Throws ERR_CLAIM_INVALID naming the window. */
export function parseSchedule(value: unknown, field: string): Schedule {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_WINDOWS) {
    throw new ProtocolError('ERR_CLAIM_INVALID', `${field} must be an array of 1 to ${MAX_WINDOWS} windows`);
  }
  return value.map((w: unknown, i) => {
    if (!Array.isArray(w) || w.length !== 3 || !w.every((n) => Number.isInteger(n))) {
      throw new ProtocolError(
        'ERR_CLAIM_INVALID',
        `${field} window ${i} must be [days, start, end] of integers`,
      );
    }
    const [days, start, end] = w as [number, number, number];
    if (days < 1 || days > 127)
      throw new ProtocolError('ERR_CLAIM_INVALID', `${field} window ${i} days must be 1..127`);
    if (start < 0 || end > 1440 || start >= end) {
      throw new ProtocolError('ERR_CLAIM_INVALID', `${field} window ${i} needs 0 <= start < end <= 1440`);
    }
    return { days, start, end };
  });
}

/** The CBOR form of a schedule. */
export function scheduleToCbor(schedule: Schedule): number[][] {
  return schedule.map((w) => [w.days, w.start, w.end]);
}

/** True when local `weekday` (0 = Monday) and `minute` (0..1439) fall in a window ([TANDEM-SCHED-2]). */
export function scheduleAllows(schedule: Schedule, weekday: number, minute: number): boolean {
  for (const w of schedule) {
    if ((w.days & (1 << weekday)) !== 0 && minute >= w.start && minute < w.end) return true;
  }
  return false;
}

// The minutes of a week a schedule allows, as a bit set of 7 × 1440 bits.
function weekBits(schedule: Schedule): Uint32Array {
  const bits = new Uint32Array(Math.ceil((7 * 1440) / 32));
  for (const w of schedule) {
    for (let d = 0; d < 7; d++) {
      if ((w.days & (1 << d)) === 0) continue;
      for (let m = w.start; m < w.end; m++) {
        const i = d * 1440 + m;
        bits[i >>> 5]! |= 1 << (i & 31);
      }
    }
  }
  return bits;
}

/**
 * True when every minute `inner` allows is allowed by `outer` ([TANDEM-SCHED-3]: a delegated token's schedule
 * must lie inside its parent's). An absent outer schedule allows everything.
 */
export function scheduleWithin(inner: Schedule | undefined, outer: Schedule | undefined): boolean {
  if (outer === undefined) return true;
  if (inner === undefined) return false;
  const a = weekBits(inner);
  const b = weekBits(outer);
  for (let i = 0; i < a.length; i++) if ((a[i]! & ~b[i]!) !== 0) return false;
  return true;
}

// Time zone offsets, cached per zone for one quarter-hour of UTC: every time zone rule in the IANA database
// changes offset on a quarter-hour boundary, so the offset is constant within one such bucket. This keeps
// Intl (about 2 µs a call) off the unlock hot path.
const QUARTER_HOUR = 900;
const formatters = new Map<string, Intl.DateTimeFormat>();
const offsets = new Map<string, { bucket: number; offsetSeconds: number }>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch (cause) {
      throw new ProtocolError('ERR_CLAIM_INVALID', `unknown time zone ${JSON.stringify(timeZone)}`, {
        cause,
      });
    }
    formatters.set(timeZone, f);
  }
  return f;
}

/** Offset of local time from UTC in `timeZone` at Unix time `seconds`, in seconds. */
export function utcOffsetSeconds(seconds: number, timeZone: string): number {
  const bucket = Math.floor(seconds / QUARTER_HOUR);
  const hit = offsets.get(timeZone);
  if (hit && hit.bucket === bucket) return hit.offsetSeconds;
  const t = bucket * QUARTER_HOUR;
  const p: Record<string, number> = {};
  for (const part of formatterFor(timeZone).formatToParts(new Date(t * 1000))) {
    if (part.type !== 'literal') p[part.type] = Number(part.value);
  }
  const local = Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!) / 1000;
  const offsetSeconds = local - t;
  if (offsets.size > 64 && !offsets.has(timeZone)) offsets.clear();
  offsets.set(timeZone, { bucket, offsetSeconds });
  return offsetSeconds;
}

/**
 * Local weekday (0 = Monday) and minute of the day of Unix time `seconds` in IANA `timeZone`
 * ([TANDEM-SCHED-4]). Throws ERR_CLAIM_INVALID for an unknown time zone.
 */
export function localWeekMinute(seconds: number, timeZone: string): { weekday: number; minute: number } {
  const local = seconds + utcOffsetSeconds(seconds, timeZone);
  const day = Math.floor(local / 86_400);
  // 1970-01-01 was a Thursday: weekday 3 when Monday is 0.
  return { weekday: (((day + 3) % 7) + 7) % 7, minute: Math.floor((local - day * 86_400) / 60) };
}
