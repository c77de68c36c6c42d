/**
 * A simulated lock as the dashboard sees it ({@link SimLockControl}, cloud-bridge/src/dashboard/sim-control.ts):
 * the lock runs in its own process (`sim-lock-process.ts`: the real {@link LockRuntime} on simulated hardware,
 * BLE on the virtual radio, MQTT to the cloud), and this side, in the process that hosts the radio, adapts it.
 * Every control does the real thing:
 *
 * | control | what happens |
 * | --- | --- |
 * | `cutPower` | the lock's process group is killed (SIGKILL): coil de-energised, files as the last fsync left them, its radio device leaves the air |
 * | `restorePower` | a new process starts from the same data directory, locked, and rejoins the radio |
 * | `resetClock` | a power blip: cut and restore. Only the persisted floor survives; the upper bound is unknown until a nonce-bound beacon ([TANDEM-TIME-6]), which the MQTT link asks for at once ([TANDEM-MQTT-12]) when it is up |
 * | `setRadio` | `up`: the lock's device in or out of range; `profile`: its controller profile (`pi-zero-w`, `pi-zero-2-w`); `latencyMs`, `loss`, `mtu`: the air's link model, shared by every device on the radio |
 * | `setMqtt` | the lock's MQTT socket is destroyed and reconnects go nowhere (a pulled cable), or reconnects are let through |
 * | `jamLatch` | the simulated mechanism's `jammed` fault |
 * | `pushShackle`, `bump`, `shake`, `playTrace` | the simulated mechanism and accelerometer |
 *
 * `snapshot()` is synchronous: the lock process pushes its state on every change and a few times a second;
 * what only this side knows (power, radio, the cloud's revocation acknowledgement) is merged in here.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { VirtualRadio } from '../hardware/src/virtual-radio/index.js';
import { RADIO_PROFILES } from '../hardware/src/virtual-radio/index.js';
import type {
  AccelSample,
  RadioSettings,
  SimLockControl,
  SimLockSnapshot,
  TheftMark,
  TraceInput,
} from '../cloud-bridge/src/dashboard/sim-control.js';

/** Standard gravity: the dashboard's samples are in g, the accelerometer's in m/s². */
export const G = 9.80665;

/** The motion traces shipped in firmware-sim/traces (README "Theft detection"). */
export const SHIPPED_TRACES: readonly string[] = ['wind', 'lorry', 'kick', 'tamper', 'carried', 'ridden'];

/** The file of a shipped trace, from the source tree (cli/) or the build (dist/cli/). */
export function tracePath(name: string): string {
  for (const rel of ['../firmware-sim/traces/', '../../firmware-sim/traces/']) {
    const p = fileURLToPath(new URL(`${rel}${name}.csv`, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new SimLockError('ERR_SIM_TRACE', `shipped trace ${name}.csv not found beside the program`);
}

/** Codes of this module's errors. */
export type SimLockErrorCode =
  | 'ERR_SIM_START' // the lock process did not start (its message says why)
  | 'ERR_SIM_POWER' // the control needs the power on (or off)
  | 'ERR_SIM_USAGE' // a control's argument is out of range
  | 'ERR_SIM_TRACE' // no such trace, or an unusable uploaded one
  | 'ERR_SIM_LOCK'; // the lock process refused or failed the control

/** An error of a simulated lock's control. */
export class SimLockError extends Error {
  readonly code: SimLockErrorCode;
  constructor(code: SimLockErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SimLockError';
    this.code = code;
  }
}

/** What the lock process is started with (its one argument, as JSON). */
export interface SimLockProcessOptions {
  readonly dataDir: string;
  /** Its HCI device id on the virtual radio. */
  readonly deviceId: number;
  /** The radio's socket; absent: no BLE. */
  readonly radioPath?: string;
  /** The cloud's broker; absent: no MQTT link. */
  readonly mqttUrl?: string;
  /** Start with the MQTT link pulled (a tester's setting kept across a power cut). */
  readonly mqttDown?: boolean;
  readonly console: 'pty' | 'none';
}

/** The operations the lock process performs. */
export type SimLockOp =
  | { readonly op: 'credentials' }
  | { readonly op: 'console'; readonly line: string }
  | { readonly op: 'bump' }
  | { readonly op: 'shake'; readonly ms: number }
  | { readonly op: 'playTrace'; readonly trace: TraceInput }
  | { readonly op: 'jamLatch'; readonly jammed: boolean }
  | { readonly op: 'pushShackle' }
  | { readonly op: 'setMqtt'; readonly up: boolean }
  | { readonly op: 'close' };

/** A request to the lock process; answered by a `reply` with the same id. */
export type ParentRequest = { readonly id: number } & SimLockOp;

/** What the lock process knows of itself; power and radio are added by this side. */
export type ChildSnapshot = Omit<SimLockSnapshot, 'powered' | 'radio'>;

/** Messages from the lock process. */
export type ChildMessage =
  | {
      readonly type: 'ready';
      readonly pid: number;
      readonly consolePath: string | null;
      readonly snapshot: ChildSnapshot;
    }
  | { readonly type: 'failed'; readonly error: string }
  | { readonly type: 'snapshot'; readonly snapshot: ChildSnapshot }
  | { readonly type: 'accel'; readonly samples: readonly AccelSample[] }
  | { readonly type: 'theft'; readonly mark: TheftMark }
  | {
      readonly type: 'reply';
      readonly id: number;
      readonly ok: boolean;
      readonly value?: unknown;
      readonly error?: string;
    };

/** The lock's identity as its process reports it, for registration with the cloud. */
export interface SimLockCredentials {
  readonly lockId: string | null;
  readonly claimed: boolean;
  /** Raw Ed25519 device public key, hex. */
  readonly deviceKey: string;
  /** The MQTT password ([TANDEM-MQTT-13]); null without an MQTT link. */
  readonly password: string | null;
}

/** Options of {@link ProcessSimLockControl.start}. */
export interface ProcessSimLockOptions extends Omit<SimLockProcessOptions, 'mqttDown'> {
  /** The radio served at `radioPath`, hosted by this process: radio controls act on it. */
  readonly radio?: VirtualRadio;
  /** The revocation version the cloud holds the lock's acknowledgement of. */
  readonly acknowledged?: (lockId: string) => Promise<number | null>;
  /** How long to wait for the lock process to be ready (default 60 s: two cold starts on a loaded CI box). */
  readonly startTimeoutMs?: number;
  /** Receives the lock process's stderr lines (default: this process's stderr). */
  readonly stderr?: NodeJS.WritableStream;
}

const ENTRY = fileURLToPath(
  new URL(`./sim-lock-process${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url),
);
const REQUEST_TIMEOUT_MS = 20_000;

type Listeners<T> = Set<(v: T) => void>;

function subscribe<T>(set: Listeners<T>, l: (v: T) => void): () => void {
  set.add(l);
  return () => {
    set.delete(l);
  };
}

function emit<T>(set: Listeners<T>, v: T): void {
  for (const l of [...set]) {
    try {
      l(v);
    } catch {
      // A listener's failure is its own; the feed goes on.
    }
  }
}

/** A simulated lock in its own process, behind {@link SimLockControl} (module comment). */
export class ProcessSimLockControl implements SimLockControl {
  readonly #o: ProcessSimLockOptions;
  #child: ChildProcess | undefined;
  #last: ChildSnapshot;
  #powered = false;
  #radioUp = true;
  #profile = 'default';
  #mqttUp = true;
  #acknowledged: number | null = null;
  #consolePath: string | null = null;
  #nextId = 1;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #change: Listeners<SimLockSnapshot> = new Set();
  readonly #accel: Listeners<AccelSample> = new Set();
  readonly #theft: Listeners<TheftMark> = new Set();
  #lastSent = '';
  #poll: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(o: ProcessSimLockOptions) {
    this.#o = o;
    this.#last = {
      lockId: '(starting)',
      state: 'locked',
      solenoid: false,
      latched: true,
      time: { earliest: 0, latest: null, source: 'unknown' },
      revocation: { held: 0, acknowledged: null },
      outboxDepth: 0,
      lockouts: 0,
      battery: null,
      mqtt: o.mqttUrl === undefined ? 'disabled' : 'offline',
    };
  }

  /** Starts the lock process and resolves once it runs (locked). */
  static async start(o: ProcessSimLockOptions): Promise<ProcessSimLockControl> {
    const c = new ProcessSimLockControl(o);
    await c.#spawn();
    // Radio links and the cloud's acknowledgement change without a message from the lock.
    c.#poll = setInterval(() => c.#notify(), 500);
    c.#poll.unref();
    return c;
  }

  get lockId(): string {
    return this.#last.lockId;
  }

  /** The tester's side of the lock's console (a pseudo-terminal), or null. */
  get consolePath(): string | null {
    return this.#consolePath;
  }

  /** The lock process's id while powered. */
  get pid(): number | undefined {
    return this.#powered ? this.#child?.pid : undefined;
  }

  snapshot(): SimLockSnapshot {
    const radio = this.#o.radio;
    const opts = radio?.options;
    const connected =
      radio !== undefined &&
      this.#powered &&
      radio
        .connections()
        .some(
          (c) => c.open && (c.peripheralDevId === this.#o.deviceId || c.centralDevId === this.#o.deviceId),
        );
    return {
      ...this.#last,
      // A lock without power shows nothing moving and no link; its last known state stays visible.
      ...(this.#powered ? {} : { solenoid: false, mqtt: 'offline' as const }),
      revocation: { held: this.#last.revocation.held, acknowledged: this.#acknowledged },
      powered: this.#powered,
      radio: {
        up: this.#radioUp && this.#powered,
        profile: this.#profile,
        latencyMs: opts?.latencyMs ?? 0,
        loss: opts?.lossRate ?? 0,
        mtu: opts?.attMtuCap ?? 517,
        connected,
      },
    };
  }

  onChange(listener: (s: SimLockSnapshot) => void): () => void {
    return subscribe(this.#change, listener);
  }

  onAccel(listener: (s: AccelSample) => void): () => void {
    return subscribe(this.#accel, listener);
  }

  onTheft(listener: (m: TheftMark) => void): () => void {
    return subscribe(this.#theft, listener);
  }

  traces(): readonly string[] {
    return SHIPPED_TRACES;
  }

  async playTrace(trace: TraceInput): Promise<void> {
    if ('name' in trace) {
      if (!SHIPPED_TRACES.includes(trace.name)) {
        throw new SimLockError(
          'ERR_SIM_TRACE',
          `no shipped trace named ${JSON.stringify(trace.name)} (expected ${SHIPPED_TRACES.join(', ')})`,
        );
      }
    } else checkSamples(trace.samples);
    await this.#request({ op: 'playTrace', trace });
  }

  async bump(): Promise<void> {
    await this.#request({ op: 'bump' });
  }

  async shake(ms: number): Promise<void> {
    if (!Number.isInteger(ms) || ms < 1 || ms > 600_000) {
      throw new SimLockError('ERR_SIM_USAGE', `shake: ms must be an integer from 1 to 600000, got ${ms}`);
    }
    await this.#request({ op: 'shake', ms });
  }

  async cutPower(): Promise<void> {
    const child = this.#child;
    if (!this.#powered || child === undefined) return;
    this.#powered = false;
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    // The whole group: socat (the console's pseudo-terminal) dies with the lock, as it would on the bench.
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
    await exited;
    this.#notify();
  }

  async restorePower(): Promise<void> {
    if (this.#powered) return;
    if (this.#closed) throw new SimLockError('ERR_SIM_POWER', 'the simulated lock was shut down');
    await this.#spawn();
    this.#notify();
  }

  async resetClock(): Promise<void> {
    await this.cutPower();
    await this.restorePower();
  }

  async setRadio(settings: RadioSettings): Promise<void> {
    const radio = this.#o.radio;
    if (radio === undefined) throw new SimLockError('ERR_SIM_USAGE', 'this lock has no virtual radio');
    if (settings.profile !== undefined) {
      const profile = RADIO_PROFILES[settings.profile];
      if (profile === undefined) {
        throw new SimLockError(
          'ERR_SIM_USAGE',
          `radio profile ${JSON.stringify(settings.profile)} unknown (expected ${Object.keys(RADIO_PROFILES).join(', ')})`,
        );
      }
      try {
        radio.setProfile(this.#o.deviceId, profile);
        this.#profile = settings.profile;
      } catch (e) {
        throw new SimLockError('ERR_SIM_USAGE', `radio profile: ${(e as Error).message}`, { cause: e });
      }
    }
    const air: { latencyMs?: number; lossRate?: number; attMtuCap?: number } = {};
    if (settings.latencyMs !== undefined) air.latencyMs = settings.latencyMs;
    if (settings.loss !== undefined) air.lossRate = settings.loss;
    if (settings.mtu !== undefined) air.attMtuCap = settings.mtu;
    if (Object.keys(air).length > 0) {
      try {
        radio.configure(air);
      } catch (e) {
        throw new SimLockError('ERR_SIM_USAGE', `radio: ${(e as Error).message}`, { cause: e });
      }
    }
    if (settings.up !== undefined) {
      this.#radioUp = settings.up;
      radio.setInRange(this.#o.deviceId, settings.up);
    }
    this.#notify();
  }

  async setMqtt(up: boolean): Promise<void> {
    if (this.#o.mqttUrl === undefined) throw new SimLockError('ERR_SIM_USAGE', 'this lock has no MQTT link');
    this.#mqttUp = up;
    if (this.#powered) await this.#request({ op: 'setMqtt', up });
  }

  async jamLatch(jammed: boolean): Promise<void> {
    await this.#request({ op: 'jamLatch', jammed });
  }

  async pushShackle(): Promise<void> {
    await this.#request({ op: 'pushShackle' });
  }

  /** The simulated fuel gauge, through the lock's console command `sim battery <percent>` ([TANDEM-MQTT-14]). */
  async setBattery(percent: number): Promise<void> {
    await this.#request({ op: 'console', line: `sim battery ${percent}` });
  }

  /** Runs one console line on the lock (provisioning, `status`), as typed at its serial console. */
  async console(line: string): Promise<string> {
    return (await this.#request({ op: 'console', line })) as string;
  }

  /** The lock's identity and MQTT password, for registering it with the cloud. */
  async credentials(): Promise<SimLockCredentials> {
    return (await this.#request({ op: 'credentials' })) as SimLockCredentials;
  }

  /** Stops the lock in order (it stays locked) and ends its process. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#poll) clearInterval(this.#poll);
    const child = this.#child;
    if (!this.#powered || child === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const kill = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, 8000);
    child.kill('SIGTERM');
    await exited;
    clearTimeout(kill);
    this.#powered = false;
  }

  async #spawn(): Promise<void> {
    const o = this.#o;
    const args: SimLockProcessOptions = {
      dataDir: o.dataDir,
      deviceId: o.deviceId,
      console: o.console,
      ...(o.radioPath === undefined ? {} : { radioPath: o.radioPath }),
      ...(o.mqttUrl === undefined ? {} : { mqttUrl: o.mqttUrl }),
      ...(this.#mqttUp ? {} : { mqttDown: true }),
    };
    const child = fork(ENTRY, [JSON.stringify(args)], {
      execArgv: ENTRY.endsWith('.ts') ? ['--import', 'tsx'] : [],
      // Its own process group: a power cut kills socat with it; Ctrl-C at the terminal reaches only the
      // parent, which stops every lock in order.
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.#child = child;
    const errLines: string[] = [];
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      errLines.push(d);
      if (errLines.length > 50) errLines.shift();
      (o.stderr ?? process.stderr).write(d);
    });
    child.on('message', (m: ChildMessage) => this.#onMessage(m));
    child.on('exit', () => {
      if (this.#child !== child) return;
      this.#powered = false;
      for (const p of this.#pending.values()) {
        p.reject(new SimLockError('ERR_SIM_POWER', 'the lock has no power (its process ended)'));
      }
      this.#pending.clear();
      this.#notify();
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new SimLockError('ERR_SIM_START', `the lock process in ${o.dataDir} was not ready in time`));
      }, o.startTimeoutMs ?? 60_000);
      const done = (e?: Error): void => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (e) reject(e);
        else resolve();
      };
      const onMessage = (m: ChildMessage): void => {
        if (m.type === 'ready') {
          this.#consolePath = m.consolePath;
          this.#last = m.snapshot;
          this.#powered = true;
          done();
        } else if (m.type === 'failed') done(new SimLockError('ERR_SIM_START', m.error));
      };
      const onExit = (code: number | null, signal: string | null): void =>
        done(
          new SimLockError(
            'ERR_SIM_START',
            `the lock process in ${o.dataDir} ended (${signal ?? `exit ${code}`}) before it was ready: ${errLines.join('').trim().slice(-500)}`,
          ),
        );
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
    if (!this.#radioUp) o.radio?.setInRange(o.deviceId, false);
  }

  #onMessage(m: ChildMessage): void {
    switch (m.type) {
      case 'snapshot':
        this.#last = m.snapshot;
        this.#notify();
        break;
      case 'accel':
        for (const s of m.samples) emit(this.#accel, s);
        break;
      case 'theft':
        emit(this.#theft, m.mark);
        break;
      case 'reply': {
        const p = this.#pending.get(m.id);
        if (p === undefined) return;
        this.#pending.delete(m.id);
        if (m.ok) p.resolve(m.value);
        else p.reject(new SimLockError('ERR_SIM_LOCK', m.error ?? 'the lock failed the control'));
        break;
      }
      default:
        break;
    }
  }

  #notify(): void {
    const ack = this.#o.acknowledged;
    if (ack !== undefined && this.#last.lockId !== '(unprovisioned)' && this.#last.lockId !== '(starting)') {
      void ack(this.#last.lockId).then(
        (v) => {
          if (v !== this.#acknowledged) {
            this.#acknowledged = v;
            this.#notify();
          }
        },
        () => undefined,
      );
    }
    const s = this.snapshot();
    const text = JSON.stringify(s);
    if (text === this.#lastSent) return;
    this.#lastSent = text;
    emit(this.#change, s);
  }

  #request(r: SimLockOp): Promise<unknown> {
    const child = this.#child;
    if (!this.#powered || child === undefined || !child.connected) {
      return Promise.reject(
        new SimLockError('ERR_SIM_POWER', `${r.op}: the lock has no power; restore it first`),
      );
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new SimLockError('ERR_SIM_LOCK', `${r.op}: the lock did not answer`));
      }, REQUEST_TIMEOUT_MS);
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      child.send({ ...r, id } as ParentRequest);
    });
  }
}

/** An uploaded trace: 1 to 120 000 samples, times ascending, values finite and within ±16 g. */
function checkSamples(samples: readonly AccelSample[]): void {
  if (!Array.isArray(samples) || samples.length === 0 || samples.length > 120_000) {
    throw new SimLockError('ERR_SIM_TRACE', 'an uploaded trace needs 1 to 120000 samples');
  }
  let prev = -Infinity;
  samples.forEach((s, i) => {
    for (const k of ['t', 'x', 'y', 'z'] as const) {
      if (typeof s[k] !== 'number' || !Number.isFinite(s[k])) {
        throw new SimLockError('ERR_SIM_TRACE', `sample ${i}: "${k}" must be a finite number`);
      }
    }
    if (s.t < prev) throw new SimLockError('ERR_SIM_TRACE', `sample ${i}: "t" goes back in time`);
    if (Math.max(Math.abs(s.x), Math.abs(s.y), Math.abs(s.z)) > 16) {
      throw new SimLockError('ERR_SIM_TRACE', `sample ${i}: beyond ±16 g (an accelerometer's range)`);
    }
    prev = s.t;
  });
}

/** A key a lock is told to trust, as its console takes it (`provision anchor add`, `provision claim`). */
export interface ConsoleKey {
  /** The key id as bytes. */
  readonly kid: Uint8Array;
  readonly alg: 'EdDSA' | 'ES256';
  /** The raw public key (32 bytes Ed25519, 65 bytes uncompressed P-256). */
  readonly raw: Uint8Array;
  readonly name: string;
}

/**
 * Provisions a fresh lock over its console as a bench operator would (flow 1): lock id, the cloud issuer as
 * trust anchor, then the owner's claim, which closes provisioning. A lock already provisioned is left as it
 * is: the claim cannot be repeated, and its id is kept.
 */
export async function provisionOverConsole(
  lock: ProcessSimLockControl,
  lockId: string,
  issuer: ConsoleKey,
  owner: ConsoleKey,
): Promise<void> {
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
  const c = await lock.credentials();
  if (c.claimed) return;
  if (c.lockId === null) await lock.console(`provision lock-id ${lockId}`);
  const shown = await lock.console('provision show');
  if (!shown.includes(`anchor kid=${hex(issuer.kid)} issuer`)) {
    await lock.console(
      `provision anchor add ${hex(issuer.kid)} ${issuer.alg} ${hex(issuer.raw)} issuer ${issuer.name}`,
    );
  }
  await lock.console(`provision claim ${hex(owner.kid)} ${owner.alg} ${hex(owner.raw)} ${owner.name}`);
}

/**
 * Takes `<dir>/<file>` for this process: the guard that keeps two locks (or two `tandem start`s) off one data
 * directory. A file naming a live process is refused with ERR_DATA_DIR_IN_USE; one naming a dead process is
 * the leftover of a power cut or a crash and is replaced. Resolves to the function that gives it back.
 */
export async function claimPidFile(dir: string, file: string, what: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, file);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(path, `${process.pid}\n`, { flag: 'wx', mode: 0o644 });
      return async () => {
        const held = await readFile(path, 'utf8').catch(() => '');
        if (held.trim() === String(process.pid)) await unlink(path).catch(() => undefined);
      };
    } catch (e) {
      if ((e as { code?: unknown }).code !== 'EEXIST') throw e;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
        throw Object.assign(
          new Error(`data directory ${dir} is in use by the ${what} in process ${pid} (${path})`),
          { code: 'ERR_DATA_DIR_IN_USE' },
        );
      }
      await unlink(path).catch(() => undefined);
    }
  }
  throw Object.assign(new Error(`cannot take ${path}`), { code: 'ERR_DATA_DIR_IN_USE' });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: unknown }).code === 'EPERM';
  }
}
