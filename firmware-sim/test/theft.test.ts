import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { AccelSample } from '../../hardware/src/interfaces.js';
import { DEFAULT_THEFT_DETECTOR_CONFIG, TheftDetector } from '../src/theft/theft-detector.js';
import type { AlarmState, TheftEvent, TheftEventKind } from '../src/theft/theft-detector.js';
import { TRACE_KINDS, formatTraceCsv, generateTrace, parseTraceCsv } from '../src/theft/traces.js';
import type { TraceKind } from '../src/theft/traces.js';

const TRACES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'traces');

function run(samples: readonly AccelSample[]): {
  alarm: AlarmState;
  events: TheftEvent[];
  kinds: TheftEventKind[];
} {
  const d = new TheftDetector();
  d.arm();
  const events: TheftEvent[] = [];
  for (const s of samples) events.push(...d.push(s));
  return { alarm: d.alarm, events, kinds: [...new Set(events.map((e) => e.kind))].sort() };
}

/** The README's table: which traces alarm. */
const TABLE: {
  trace: TraceKind;
  label: string;
  alarm: AlarmState;
  allowed: TheftEventKind[];
  required: TheftEventKind[];
}[] = [
  { trace: 'wind', label: 'nothing', alarm: 'armed', allowed: [], required: [] },
  { trace: 'lorry', label: 'at most bump', alarm: 'armed', allowed: ['bump'], required: [] },
  { trace: 'kick', label: 'bump only', alarm: 'armed', allowed: ['bump'], required: ['bump'] },
  {
    trace: 'tamper',
    label: 'tamper alarm',
    alarm: 'tamper',
    allowed: ['bump', 'tamper'],
    required: ['tamper'],
  },
  { trace: 'carried', label: 'moved alarm', alarm: 'moved', allowed: ['bump', 'moved'], required: ['moved'] },
  { trace: 'ridden', label: 'moved alarm', alarm: 'moved', allowed: ['bump', 'moved'], required: ['moved'] },
];

describe('TheftDetector on the generated traces', () => {
  for (const row of TABLE) {
    it(`${row.trace} -> ${row.label} (seeds 1-20)`, () => {
      for (let seed = 1; seed <= 20; seed++) {
        const { alarm, kinds } = run(generateTrace(row.trace, { seed }));
        expect({ seed, alarm }).toEqual({ seed, alarm: row.alarm });
        for (const k of kinds) expect(row.allowed, `seed ${seed}: unexpected ${k}`).toContain(k);
        for (const k of row.required) expect(kinds, `seed ${seed}`).toContain(k);
      }
    });
  }

  it('reports a single kick as exactly one bump with its peak', () => {
    const { events } = run(generateTrace('kick'));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: 'bump' });
    expect(events[0]!.peak).toBeGreaterThan(15);
    expect(events[0]!.durationMs).toBeLessThan(500);
  });

  it('tells why the bike moved: tilt when carried, motion when ridden', () => {
    // With the motion path switched off, tilt alone catches the carried bike.
    const tiltOnly = new TheftDetector({ motionRms: Number.POSITIVE_INFINITY });
    tiltOnly.arm();
    const carried = generateTrace('carried').flatMap((s) => tiltOnly.push(s));
    expect(carried.find((e) => e.kind === 'moved')).toMatchObject({ cause: 'tilt' });
    expect(carried.find((e) => e.kind === 'moved')!.tiltDeg).toBeGreaterThanOrEqual(
      DEFAULT_THEFT_DETECTOR_CONFIG.tiltDeg,
    );
    const ridden = run(generateTrace('ridden')).events.find((e) => e.kind === 'moved')!;
    expect(ridden.cause).toBe('motion');
    expect(ridden.tiltDeg).toBeLessThan(DEFAULT_THEFT_DETECTOR_CONFIG.tiltDeg);
  });

  it('ships the traces as CSV in firmware-sim/traces/, identical to the generator and giving the same table', () => {
    for (const row of TABLE) {
      const text = readFileSync(join(TRACES_DIR, `${row.trace}.csv`), 'utf8');
      expect(text).toBe(formatTraceCsv(row.trace, generateTrace(row.trace)));
      const { alarm, kinds } = run(parseTraceCsv(text));
      expect(alarm).toBe(row.alarm);
      for (const k of kinds) expect(row.allowed).toContain(k);
    }
  });

  it('gives the same table at 50 Hz and 200 Hz (filters run on sample time, not sample count)', () => {
    for (const rateHz of [50, 200]) {
      for (const row of TABLE) {
        for (let seed = 1; seed <= 5; seed++) {
          const { alarm, kinds } = run(generateTrace(row.trace, { seed, rateHz }));
          expect({ rateHz, trace: row.trace, seed, alarm }).toEqual({
            rateHz,
            trace: row.trace,
            seed,
            alarm: row.alarm,
          });
          for (const k of kinds) expect(row.allowed).toContain(k);
          for (const k of row.required) expect(kinds).toContain(k);
        }
      }
    }
  });

  it('is deterministic: the same samples give the same events', () => {
    for (const kind of TRACE_KINDS)
      expect(run(generateTrace(kind, { seed: 3 }))).toEqual(run(generateTrace(kind, { seed: 3 })));
  });
});

describe('TheftDetector state and robustness', () => {
  it('drops NaN, Infinity and out-of-order samples without throwing, and still detects', () => {
    const clean = generateTrace('tamper');
    const dirty: AccelSample[] = [];
    clean.forEach((s, i) => {
      dirty.push(s);
      if (i % 50 === 7) dirty.push({ ...s, x: Number.NaN });
      if (i % 50 === 19) dirty.push({ ...s, z: Number.POSITIVE_INFINITY });
      if (i % 50 === 23) dirty.push({ ...s, t: s.t - 500 });
      if (i % 50 === 31) dirty.push({ ...s });
      if (i % 50 === 41) dirty.push({ t: Number.NaN, x: 0, y: 0, z: 0 });
    });
    const d = new TheftDetector();
    d.arm();
    const events: TheftEvent[] = [];
    for (const s of dirty) events.push(...d.push(s));
    expect(d.droppedSamples).toBe(dirty.length - clean.length);
    expect(d.alarm).toBe('tamper');
    expect(events).toEqual(run(clean).events);
  });

  it('reports nothing while disarmed, and clears the alarm on disarm', () => {
    const d = new TheftDetector();
    const samples = generateTrace('carried');
    for (const s of samples.slice(0, 1000)) expect(d.push(s)).toEqual([]);
    expect(d.alarm).toBe('disarmed');
    d.arm();
    const events = samples.slice(1000).flatMap((s) => d.push(s));
    // Armed mid-carry: the reference is the lifted orientation, but the walking motion still says "moved".
    expect(events.map((e) => e.kind)).toContain('moved');
    expect(d.alarm).toBe('moved');
    d.disarm();
    expect(d.alarm).toBe('disarmed');
  });

  it('escalates from tamper to moved and never back down while armed', () => {
    const tamper = generateTrace('tamper');
    const carried = generateTrace('carried').map((s) => ({ ...s, t: s.t + 20_000 }));
    const d = new TheftDetector();
    const seen: TheftEvent[] = [];
    d.onEvent((e) => seen.push(e));
    d.arm();
    const states = new Set<AlarmState>();
    for (const s of [...tamper, ...carried]) {
      d.push(s);
      states.add(d.alarm);
    }
    expect([...states]).toEqual(['armed', 'tamper', 'moved']);
    expect(seen.map((e) => e.kind).filter((k) => k !== 'bump')).toEqual(['tamper', 'moved']);
    d.clearAlarm();
    expect(d.alarm).toBe('armed');
  });

  it('survives a gap in the samples (sensor restart) without a false alarm', () => {
    const wind = generateTrace('wind');
    const gapped = [...wind.slice(0, 800), ...wind.slice(1200)];
    expect(run(gapped).alarm).toBe('armed');
    expect(run(gapped).events).toEqual([]);
  });

  it('takes its thresholds from the config', () => {
    const d = new TheftDetector({ bumpThreshold: 100 });
    expect(d.config.bumpThreshold).toBe(100);
    d.arm();
    expect(generateTrace('kick').flatMap((s) => d.push(s))).toEqual([]);
  });
});
