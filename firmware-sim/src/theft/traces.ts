import type { AccelSample } from '../../../hardware/src/interfaces.js';

/** The scenarios the theft detector is tuned and tested on (README.md, "Theft detection"). */
export type TraceKind = 'wind' | 'lorry' | 'kick' | 'tamper' | 'carried' | 'ridden';

/** Every trace kind, in the order of the README's table. */
export const TRACE_KINDS: readonly TraceKind[] = ['wind', 'lorry', 'kick', 'tamper', 'carried', 'ridden'];

/** Options of {@link generateTrace}. */
export interface TraceOptions {
  /** PRNG seed (default 1): the same seed gives the same samples, bit for bit. */
  seed?: number;
  /** Sample rate (default 100 Hz, the lock's accelerometer rate). */
  rateHz?: number;
  /** Length (default 20 s). */
  durationMs?: number;
}

const G = 9.80665;
const DEG = Math.PI / 180;

/** mulberry32 plus Box-Muller: small, fast and identical on every platform. */
class Prng {
  private a: number;
  constructor(seed: number) {
    this.a = seed >>> 0;
  }
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  gauss(sigma: number): number {
    const u = Math.max(this.next(), 1e-12);
    return sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}

/** Smooth 0 -> 1 between t0 and t1 (seconds). */
function ramp(t: number, t0: number, t1: number): number {
  if (t <= t0) return 0;
  if (t >= t1) return 1;
  const u = (t - t0) / (t1 - t0);
  return u * u * (3 - 2 * u);
}

/** Hann-shaped envelope: 0 outside [t0, t1], 1 in the middle. */
function hann(t: number, t0: number, t1: number): number {
  if (t <= t0 || t >= t1) return 0;
  return Math.sin((Math.PI * (t - t0)) / (t1 - t0)) ** 2;
}

/** A decaying ringing impulse (a blow on the frame), starting at t0 seconds. */
function blow(t: number, t0: number, amp: number, hz: number, tauS: number): number {
  if (t < t0) return 0;
  const u = t - t0;
  return amp * Math.exp(-u / tauS) * Math.cos(2 * Math.PI * hz * u);
}

/**
 * One motion trace of a bike lock on a frame, sensor axes fixed to the lock (x forward, y left, z up when
 * the bike is upright). Physics is simplified but the features the detector uses are realistic: the bike
 * rests on its kickstand at 8° of roll; dynamic accelerations are added along the local vertical or the
 * sensor axes; noise is 0.05 m/s² RMS. Deterministic for a given seed.
 *
 * - wind: 20 s parked in gusty wind: ±1° sway at 0.6-0.8 Hz, 0.2 m/s² flutter.
 * - lorry: a lorry passes (7-13 s): 15-30 Hz ground vibration up to 1.2 m/s², 6 Hz rumble, one 3 m/s² thud.
 * - kick: one kick at 8 s (18 m/s², 14 Hz ringing) and the bike rocking 2° in the rack afterwards.
 * - tamper: 5-13 s someone shakes the lock at 5-7 Hz (6-9 m/s²) and kicks it every 0.5-1.2 s.
 * - carried: 4 s parked, lifted (pitched 35°, off the stand), carried away walking (1.8 Hz bounce, 2.2 m/s²).
 * - ridden: 4 s parked, pushed upright and ridden off: pedalling at 1.6 Hz (1.4 m/s² vertical), road
 *   vibration, lean in turns of ±6°; never tilted past 15° from the parked orientation.
 */
export function generateTrace(kind: TraceKind, options: TraceOptions = {}): AccelSample[] {
  const rnd = new Prng((options.seed ?? 1) * 7919 + TRACE_KINDS.indexOf(kind));
  const rate = options.rateHz ?? 100;
  const n = Math.round(((options.durationMs ?? 20_000) * rate) / 1000);
  const out: AccelSample[] = [];
  // Per-trace random parameters, drawn once so that every sample of one trace agrees.
  const windPhase = rnd.range(0, 2 * Math.PI);
  const windHz = rnd.range(0.6, 0.8);
  const kicks: number[] = [];
  for (let t = 5.2; t < 12.8; t += rnd.range(0.5, 1.2)) kicks.push(t);
  const kickAmps = kicks.map(() => rnd.range(15, 25));
  const shakeHz = rnd.range(5, 7);
  const stepHz = rnd.range(1.7, 1.9);
  const cadenceHz = rnd.range(1.5, 1.7);
  let roadNoise = 0;

  for (let i = 0; i < n; i++) {
    const t = i / rate;
    let roll = 8 * DEG; // on the kickstand
    let pitch = 0;
    let vert = 0; // dynamic acceleration along the local vertical
    let ax = 0;
    let ay = 0;
    let az = 0;
    const gust = 0.5 + 0.5 * Math.sin(2 * Math.PI * 0.09 * t + windPhase);

    switch (kind) {
      case 'wind': {
        roll += 1 * DEG * gust * Math.sin(2 * Math.PI * windHz * t);
        ay += 0.2 * gust * Math.sin(2 * Math.PI * 2.1 * t + windPhase) + rnd.gauss(0.05) * gust;
        break;
      }
      case 'lorry': {
        const env = hann(t, 7, 13);
        ax +=
          env * (0.8 * Math.sin(2 * Math.PI * 18 * t) + 0.3 * Math.sin(2 * Math.PI * 27 * t)) +
          env * rnd.gauss(0.3);
        az +=
          env * (1.0 * Math.sin(2 * Math.PI * 22 * t + 1) + 0.4 * Math.sin(2 * Math.PI * 6 * t)) +
          env * rnd.gauss(0.3);
        az += blow(t, 10.4, 3, 12, 0.05);
        break;
      }
      case 'kick': {
        ay += blow(t, 8, 18, 14, 0.06);
        az += blow(t, 8, 7, 14, 0.06);
        roll += t > 8 ? 2 * DEG * Math.exp(-(t - 8) / 0.8) * Math.sin(2 * Math.PI * 1.2 * (t - 8)) : 0;
        break;
      }
      case 'tamper': {
        const env = ramp(t, 5, 5.3) * (1 - ramp(t, 12.7, 13));
        const amp = 6 + 3 * Math.sin(2 * Math.PI * 0.3 * t) ** 2;
        ay += env * amp * Math.sin(2 * Math.PI * shakeHz * t + 0.4 * Math.sin(2 * Math.PI * 0.5 * t));
        az += env * 0.5 * amp * Math.sin(2 * Math.PI * shakeHz * t + 1.3);
        for (let k = 0; k < kicks.length; k++) ay += blow(t, kicks[k]!, kickAmps[k]!, 14, 0.05);
        roll += env * 4 * DEG * Math.sin(2 * Math.PI * 0.8 * t);
        break;
      }
      case 'carried': {
        const lifted = ramp(t, 4, 5.5);
        roll = (8 - 8 * lifted) * DEG + lifted * 5 * DEG * Math.sin(2 * Math.PI * 0.9 * t);
        pitch = 35 * DEG * lifted;
        vert += 3 * hann(t, 4, 4.6);
        const walk = ramp(t, 5.5, 6.5);
        vert +=
          walk * (2.2 * Math.sin(2 * Math.PI * stepHz * t) + 0.6 * Math.sin(4 * Math.PI * stepHz * t + 0.5));
        ax += walk * 0.6 * Math.sin(2 * Math.PI * stepHz * t + 1.1) + walk * rnd.gauss(0.3);
        break;
      }
      case 'ridden': {
        const up = ramp(t, 4, 5);
        const ride = ramp(t, 5, 7);
        roll = (8 - 8 * up) * DEG + ride * 6 * DEG * Math.sin(2 * Math.PI * 0.1 * (t - 5));
        ax += 1.5 * hann(t, 5, 8);
        vert += ride * 1.4 * Math.sin(2 * Math.PI * cadenceHz * t);
        ay += ride * 0.8 * Math.sin(Math.PI * cadenceHz * t + 0.3);
        roadNoise = 0.8 * roadNoise + rnd.gauss(0.25);
        az += ride * (0.5 * Math.sin(2 * Math.PI * 15 * t) + roadNoise);
        break;
      }
    }

    // Gravity in sensor axes for this roll and pitch; "vert" acts along the same direction.
    const ux = -Math.sin(pitch);
    const uy = Math.sin(roll) * Math.cos(pitch);
    const uz = Math.cos(roll) * Math.cos(pitch);
    out.push({
      t: Math.round((i * 1000) / rate),
      x: (G + vert) * ux + ax + rnd.gauss(0.05),
      y: (G + vert) * uy + ay + rnd.gauss(0.05),
      z: (G + vert) * uz + az + rnd.gauss(0.05),
    });
  }
  return out;
}

/** Header line of the committed CSV traces. */
function csvHeader(kind: TraceKind, rateHz: number): string {
  return `# tandem accelerometer trace: ${kind}; ${rateHz} Hz; t = row * ${1000 / rateHz} ms; x,y,z in 0.01 m/s^2`;
}

/**
 * Compact CSV for `firmware-sim/traces/`: one header line, then x,y,z per sample as integers in 0.01 m/s²
 * (the resolution of the Pi's accelerometer at ±4 g is coarser), times implied by the rate.
 */
export function formatTraceCsv(kind: TraceKind, samples: readonly AccelSample[], rateHz = 100): string {
  const lines = [csvHeader(kind, rateHz)];
  for (const s of samples)
    lines.push(`${Math.round(s.x * 100)},${Math.round(s.y * 100)},${Math.round(s.z * 100)}`);
  return `${lines.join('\n')}\n`;
}

/** Parse {@link formatTraceCsv} output back into samples. */
export function parseTraceCsv(text: string): AccelSample[] {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const m = /; (\d+(?:\.\d+)?) Hz;/.exec(lines[0] ?? '');
  if (!m) throw new Error('not a tandem accelerometer trace: missing "# ... ; <rate> Hz;" header');
  const periodMs = 1000 / Number(m[1]);
  return lines.slice(1).map((l, i) => {
    const [x, y, z] = l.split(',').map((v) => Number(v) / 100);
    return { t: Math.round(i * periodMs), x: x!, y: y!, z: z! };
  });
}
