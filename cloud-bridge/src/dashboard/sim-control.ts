/**
 * What the tester dashboard (served by the cloud process, issue 11) may see of and do to a lock that runs
 * simulated in the same process tree (`npm start`). cloud-bridge may import `protocol/` only, so the lock
 * runtime is adapted to this interface by whoever starts both (`cli/`); a real lock never has one, which is
 * how testers' controls exist only on simulated locks.
 */

/** The lock's state as its state machine reports it (SPEC §9, [TANDEM-MQTT-10]). */
export type SimLockState = 'locked' | 'unlocking' | 'open' | 'alarm' | 'jammed' | 'fault' | 'safe-mode';

/** One look at a simulated lock, cheap enough to take on every change. */
export interface SimLockSnapshot {
  readonly lockId: string;
  readonly state: SimLockState;
  /** True while the solenoid is energised. */
  readonly solenoid: boolean;
  /** True when the latch sensor reads the shackle closed. */
  readonly latched: boolean;
  /** False while the simulated power is cut. */
  readonly powered: boolean;
  /** The trusted clock ([TANDEM-TIME-6]): Unix seconds; `latest` null while the upper bound is unknown. */
  readonly time: { readonly earliest: number; readonly latest: number | null; readonly source: string };
  /** Revocation version the lock holds, and the highest one the cloud has its acknowledgement of. */
  readonly revocation: { readonly held: number; readonly acknowledged: number | null };
  /** Records waiting in the outbox for the cloud's acknowledgement. */
  readonly outboxDepth: number;
  /** Subjects currently locked out ([TANDEM-LOCKOUT-2]). */
  readonly lockouts: number;
  /** The fuel gauge's last reading in percent; null when none ([TANDEM-MQTT-14]). */
  readonly battery: number | null;
  readonly radio: {
    readonly up: boolean;
    readonly profile: string;
    readonly latencyMs: number;
    readonly loss: number;
    readonly mtu: number;
    readonly connected: boolean;
  };
  readonly mqtt: 'connected' | 'connecting' | 'offline' | 'disabled';
}

/** One accelerometer sample, in g, at lock time `t` (Unix milliseconds). */
export interface AccelSample {
  readonly t: number;
  readonly x: number;
  readonly y: number;
  readonly z: number;
}

/** A decision of the theft detector: `bump`, `tamper`, `moved`, `armed`, `disarmed`, `alarm-cleared`. */
export interface TheftMark {
  readonly t: number;
  readonly kind: string;
}

/** Radio settings a tester may change (the virtual radio's link model and profile). */
export interface RadioSettings {
  readonly up?: boolean;
  readonly profile?: string;
  readonly latencyMs?: number;
  readonly loss?: number;
  readonly mtu?: number;
}

/** A motion trace: a shipped one by name, or samples a tester uploaded. */
export type TraceInput = { readonly name: string } | { readonly samples: readonly AccelSample[] };

/** The controls and feeds of one simulated lock. Every control resolves when the change took effect. */
export interface SimLockControl {
  readonly lockId: string;
  snapshot(): SimLockSnapshot;
  /** Called on every state change; returns the unsubscribe function. */
  onChange(listener: (s: SimLockSnapshot) => void): () => void;
  onAccel(listener: (s: AccelSample) => void): () => void;
  onTheft(listener: (m: TheftMark) => void): () => void;
  /** Names of the shipped motion traces. */
  traces(): readonly string[];
  playTrace(trace: TraceInput): Promise<void>;
  bump(): Promise<void>;
  shake(ms: number): Promise<void>;
  cutPower(): Promise<void>;
  restorePower(): Promise<void>;
  /** Loses the clock as a power cut without a real-time clock would ([TANDEM-TIME-6]). */
  resetClock(): Promise<void>;
  setRadio(settings: RadioSettings): Promise<void>;
  setMqtt(up: boolean): Promise<void>;
  jamLatch(jammed: boolean): Promise<void>;
  pushShackle(): Promise<void>;
  /** Sets the simulated fuel gauge (integer percent 0..100); the lock's signed state then reports it. */
  setBattery(percent: number): Promise<void>;
}

/**
 * What a simulated phone answered: the lock's status name (protocol/src/status.ts, e.g. `OK`,
 * `SCOPE_DENIED`), the lock's state afterwards when known, and one line for a person.
 */
export interface SimPhoneResult {
  readonly status: string;
  readonly state?: string;
  readonly message?: string;
}

/**
 * A simulated phone of one demo user (`npm start` makes one per demo account): it holds that user's phone key
 * and fetches their delegated tokens, and talks to a simulated lock over the virtual radio. The dashboard
 * lets a user logged in as `user` press unlock and relock on it; it never sees the key or the tokens.
 */
export interface SimPhoneControl {
  /** The account id (OpenID `sub`) whose phone this is. */
  readonly user: string;
  /** Unlocks with the user's delegated token, as `tandem unlock` would; resolves with the lock's answer. */
  unlock(lockId: string): Promise<SimPhoneResult>;
  /** Relocks (scope `lock`); the simulated shackle must then be pushed shut for the state to read locked. */
  relock(lockId: string): Promise<SimPhoneResult>;
}
