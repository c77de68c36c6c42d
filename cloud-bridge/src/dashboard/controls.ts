/**
 * The tester controls of the dashboard (issue 11 §2) as a table: each control names the JSON fields it takes,
 * checks them, and calls one method of a {@link SimLockControl}. A body with an unknown field, a missing field
 * or a value out of range is refused with a coded 400 that names the field; nothing reaches the lock.
 */
import type { AccelSample, RadioSettings, SimLockControl, TraceInput } from './sim-control.js';

/** Every code the dashboard answers with, one line of meaning each. */
export type DashboardErrorCode =
  | 'ERR_DASH_BODY' // the body is not a JSON object, too large, or not application/json
  | 'ERR_DASH_FIELD' // a field is unknown, missing or out of range (the message names it)
  | 'ERR_DASH_NOT_FOUND' // no such page, lock or control
  | 'ERR_DASH_METHOD' // the method is not allowed on that path
  | 'ERR_DASH_FORBIDDEN' // tester controls need loopback or a login; another site's page may not post
  | 'ERR_DASH_UNAUTHORIZED' // a bearer token is needed, or the one given is invalid or expired
  | 'ERR_DASH_CONTROL'; // the simulated lock or phone refused or failed the action

/** A refusal with its HTTP status and code. */
export class DashboardError extends Error {
  constructor(
    readonly status: number,
    readonly code: DashboardErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'DashboardError';
  }
}

const field = (name: string, what: string): DashboardError =>
  new DashboardError(400, 'ERR_DASH_FIELD', `"${name}" ${what}`);

/** Refuses fields other than `allowed` (issue 10's contract: unknown fields are refused, not ignored). */
export function onlyFields(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(body)) {
    if (!allowed.includes(k)) {
      throw field(k, `is not a field of this request (allowed: ${allowed.join(', ') || 'none'})`);
    }
  }
}

function bool(body: Record<string, unknown>, name: string): boolean {
  const v = body[name];
  if (typeof v !== 'boolean') throw field(name, 'must be true or false');
  return v;
}

function int(body: Record<string, unknown>, name: string, min: number, max: number): number {
  const v = body[name];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw field(name, `must be an integer from ${min} to ${max}`);
  }
  return v;
}

function num(body: Record<string, unknown>, name: string, min: number, max: number): number {
  const v = body[name];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw field(name, `must be a number from ${min} to ${max}`);
  }
  return v;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Largest uploaded trace: 10 minutes at the lock's 100 Hz. */
export const MAX_TRACE_SAMPLES = 60_000;
/** Largest acceleration in an uploaded trace, in g (a ±16 g accelerometer's range). */
export const MAX_TRACE_G = 16;

/**
 * Checks an uploaded trace: 1 to {@link MAX_TRACE_SAMPLES} samples `{t, x, y, z}`, `t` in milliseconds,
 * strictly increasing, x/y/z in g within ±{@link MAX_TRACE_G}.
 */
export function parseSamples(v: unknown): AccelSample[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_TRACE_SAMPLES) {
    throw field('samples', `must be an array of 1 to ${MAX_TRACE_SAMPLES} samples`);
  }
  const out: AccelSample[] = [];
  let last = -Infinity;
  for (let i = 0; i < v.length; i++) {
    const s = v[i] as unknown;
    const at = `samples[${i}]`;
    if (typeof s !== 'object' || s === null || Array.isArray(s)) throw field(at, 'must be {"t","x","y","z"}');
    const o = s as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!['t', 'x', 'y', 'z'].includes(k)) throw field(`${at}.${k}`, 'is not a field of a sample');
    }
    const t = o.t;
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) {
      throw field(`${at}.t`, 'must be a time in milliseconds, 0 or more');
    }
    if (t <= last) throw field(`${at}.t`, 'must be later than the sample before it');
    last = t;
    const axis = (k: 'x' | 'y' | 'z'): number => {
      const a = o[k];
      if (typeof a !== 'number' || !Number.isFinite(a) || Math.abs(a) > MAX_TRACE_G) {
        throw field(`${at}.${k}`, `must be an acceleration in g within ±${MAX_TRACE_G}`);
      }
      return a;
    };
    out.push({ t, x: axis('x'), y: axis('y'), z: axis('z') });
  }
  return out;
}

/** One tester control: its largest body, and what it does with a checked body. */
export interface Control {
  readonly maxBody: number;
  run(lock: SimLockControl, body: Record<string, unknown>): Promise<void>;
}

const SMALL = 1024;

/** Checks the field names, then acts: a refused body never reaches the lock. */
async function checked(
  body: Record<string, unknown>,
  allowed: readonly string[],
  act: () => Promise<void>,
): Promise<void> {
  onlyFields(body, allowed);
  await act();
}

/** Radio profiles are names of the virtual radio's phone profiles; the lock's adapter refuses unknown ones. */
function radio(body: Record<string, unknown>): RadioSettings {
  onlyFields(body, ['up', 'profile', 'latencyMs', 'loss', 'mtu']);
  if (Object.keys(body).length === 0) throw field('up', 'or another radio setting must be given');
  const out: { -readonly [K in keyof RadioSettings]: RadioSettings[K] } = {};
  if ('up' in body) out.up = bool(body, 'up');
  if ('profile' in body) {
    if (typeof body.profile !== 'string' || !NAME.test(body.profile)) {
      throw field('profile', 'must be a profile name (lowercase letters, digits, . _ -)');
    }
    out.profile = body.profile;
  }
  if ('latencyMs' in body) out.latencyMs = int(body, 'latencyMs', 0, 10_000);
  if ('loss' in body) out.loss = num(body, 'loss', 0, 1);
  // ATT_MTU: 23 is the minimum of Bluetooth Core 5.4 Vol 3 Part F §3.2.8; 517 the largest a phone asks for.
  if ('mtu' in body) out.mtu = int(body, 'mtu', 23, 517);
  return out;
}

/** The controls by the last segment of `POST /dashboard/api/locks/{lockId}/{control}`. */
export const CONTROLS: Readonly<Record<string, Control>> = {
  'play-trace': {
    // An uploaded 10-minute trace at 100 Hz as JSON is a few MiB; 8 MiB leaves room and still bounds memory.
    maxBody: 8 * 1024 * 1024,
    run: async (lock, body) => {
      onlyFields(body, ['name', 'samples']);
      let trace: TraceInput;
      if ('name' in body && 'samples' in body) throw field('samples', 'and "name" may not both be given');
      if ('name' in body) {
        const name = body.name;
        if (typeof name !== 'string' || !lock.traces().includes(name)) {
          throw field('name', `must be one of the shipped traces: ${lock.traces().join(', ')}`);
        }
        trace = { name };
      } else if ('samples' in body) {
        trace = { samples: parseSamples(body.samples) };
      } else throw field('name', 'or "samples" must be given');
      await lock.playTrace(trace);
    },
  },
  bump: { maxBody: SMALL, run: (lock, body) => checked(body, [], () => lock.bump()) },
  shake: {
    maxBody: SMALL,
    run: (lock, body) => checked(body, ['ms'], () => lock.shake(int(body, 'ms', 1, 600_000))),
  },
  power: {
    maxBody: SMALL,
    run: (lock, body) =>
      checked(body, ['on'], () => (bool(body, 'on') ? lock.restorePower() : lock.cutPower())),
  },
  'reset-clock': { maxBody: SMALL, run: (lock, body) => checked(body, [], () => lock.resetClock()) },
  radio: { maxBody: SMALL, run: (lock, body) => lock.setRadio(radio(body)) },
  mqtt: { maxBody: SMALL, run: (lock, body) => checked(body, ['up'], () => lock.setMqtt(bool(body, 'up'))) },
  jam: {
    maxBody: SMALL,
    run: (lock, body) => checked(body, ['jammed'], () => lock.jamLatch(bool(body, 'jammed'))),
  },
  'push-shackle': { maxBody: SMALL, run: (lock, body) => checked(body, [], () => lock.pushShackle()) },
  battery: {
    maxBody: SMALL,
    run: (lock, body) => checked(body, ['percent'], () => lock.setBattery(int(body, 'percent', 0, 100))),
  },
};
