// Local time for weekly schedules ([TANDEM-SCHED-4]): the cached UTC offset follows daylight saving.
import { describe, expect, it } from 'vitest';
import { localWeekMinute, scheduleWithin, utcOffsetSeconds } from '../src/schedule.js';

const at = (iso: string) => Date.parse(iso) / 1000;

describe('localWeekMinute', () => {
  it('follows the spring-forward transition in Europe/Berlin (2026-03-29 01:00 UTC)', () => {
    expect(localWeekMinute(at('2026-03-29T00:59:00Z'), 'Europe/Berlin')).toEqual({
      weekday: 6,
      minute: 1 * 60 + 59,
    });
    expect(localWeekMinute(at('2026-03-29T01:00:00Z'), 'Europe/Berlin')).toEqual({
      weekday: 6,
      minute: 3 * 60,
    });
  });

  it('follows the fall-back transition and a half-hour zone', () => {
    expect(utcOffsetSeconds(at('2026-10-25T00:59:59Z'), 'Europe/Berlin')).toBe(7200);
    expect(utcOffsetSeconds(at('2026-10-25T01:00:00Z'), 'Europe/Berlin')).toBe(3600);
    expect(localWeekMinute(at('2026-11-18T12:00:00Z'), 'Asia/Kolkata')).toEqual({
      weekday: 2,
      minute: 17 * 60 + 30,
    });
  });

  it('agrees with Intl for every hour of a year in three zones', () => {
    for (const tz of ['Europe/Berlin', 'America/New_York', 'Australia/Adelaide']) {
      const f = new Intl.DateTimeFormat('en-US', {
        timeZone: tz,
        weekday: 'short',
        hour: 'numeric',
        minute: 'numeric',
        hourCycle: 'h23',
      });
      const days = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
      for (let t = at('2026-01-01T00:07:00Z'); t < at('2027-01-01T00:00:00Z'); t += 3600) {
        const parts = Object.fromEntries(f.formatToParts(new Date(t * 1000)).map((p) => [p.type, p.value]));
        expect(localWeekMinute(t, tz)).toEqual({
          weekday: days.indexOf(parts.weekday!),
          minute: Number(parts.hour) * 60 + Number(parts.minute),
        });
      }
    }
  });
});

describe('scheduleWithin [TANDEM-SCHED-3]', () => {
  it('compares minute by minute across windows', () => {
    const weekdays = [{ days: 31, start: 420, end: 1200 }];
    expect(scheduleWithin([{ days: 1, start: 480, end: 540 }], weekdays)).toBe(true);
    expect(scheduleWithin([{ days: 1, start: 400, end: 540 }], weekdays)).toBe(false);
    expect(scheduleWithin(undefined, weekdays)).toBe(false);
    expect(scheduleWithin(weekdays, undefined)).toBe(true);
  });
});
