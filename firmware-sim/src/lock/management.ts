/**
 * Management of the lock (SPEC.md [TANDEM-POP-5], commands 16-22): trust anchors and owner keys, the lock's
 * configuration, the audit trail, lockout. Each command arrives as a request checked exactly like an unlock
 * (scope `manage`, §5.7); this module holds what those commands change and decodes their `args` strictly.
 *
 * `args` are CBOR maps with small integer keys ([TANDEM-GEN-1]); unknown keys, wrong types and values out of
 * range are refused as MALFORMED at step 1 of §5.7, before anything is counted or changed.
 *
 * | command            | args                                                                        |
 * | ------------------ | --------------------------------------------------------------------------- |
 * | ADD_ANCHOR         | {1: kid bstr 1..32, 2: alg int (−8 EdDSA, −7 ES256), 3: raw public key bstr, |
 * |                    |  4: role "issuer"/"owner", 5: name tstr 1..64}                              |
 * | ADD_OWNER_KEY      | the same with role "owner" (4 may be omitted)                               |
 * | REMOVE_ANCHOR      | {1: kid}                                                                    |
 * | REMOVE_OWNER_KEY   | {1: kid} naming an owner anchor                                             |
 * | SET_CONFIG         | a map of {@link CONFIG_KEYS} to values (at least one)                       |
 * | READ_AUDIT         | {1: first sequence number ≥ 1, 2: most records 1..32 (default 16)}          |
 * | CLEAR_LOCKOUT      | none                                                                        |
 */
import type { CborLimits, CborValue } from '../../../protocol/src/cbor.js';
import { decodeStrict } from '../../../protocol/src/cbor.js';
import type { AnchorState } from '../../../protocol/src/anchor-update.js';
import type { AnchorLookup, TrustAnchor } from '../../../protocol/src/chain.js';
import { ProtocolError } from '../../../protocol/src/errors.js';
import type { Alg, PublicKey } from '../../../protocol/src/keys.js';
import { algFromCose, publicKeyFromRaw } from '../../../protocol/src/keys.js';
import { Command } from '../../../protocol/src/pop.js';
import type { ConfigStore, ConfigValue } from '../store/config-store.js';
import { LockError } from './errors.js';

// ---------------------------------------------------------------------------------------------------------
// Lock configuration (SET_CONFIG).
// ---------------------------------------------------------------------------------------------------------

/** The lock's own settings, persisted in the ConfigStore under {@link CONFIG_STORE_KEY}. */
export interface LockConfig {
  /** Solenoid pulse, ms (1..the coil's rated maximum). */
  readonly pulseMs: number;
  /** Auto-relock delay after an unlock, seconds. */
  readonly autoRelockS: number;
  /** IANA time zone of the weekly schedules ([TANDEM-SCHED-2]). */
  readonly timeZone: string;
  /** Challenge lifetime, seconds ([TANDEM-POP-4]: 30 by default). */
  readonly challengeLifetimeS: number;
  /** Refusals from one peer within `rateWindowS` that start a back-off. */
  readonly rateThreshold: number;
  readonly rateWindowS: number;
  /** Longest back-off of one peer, seconds (back-offs double from 2 s up to this). */
  readonly backoffMaxS: number;
  /** Refusals from all peers within `rateWindowS` that pause every peer for a short, fixed time. */
  readonly globalRateThreshold: number;
  /** Refusals that show a genuine token misused (lockout evidence) within `lockoutWindowS` that lock out. */
  readonly lockoutThreshold: number;
  readonly lockoutWindowS: number;
  /** Theft detector thresholds, handed to it by the assembly (README.md "Theft detection"). */
  readonly theftBumpThreshold: number;
  readonly theftTamperRms: number;
  readonly theftTiltDeg: number;
  readonly theftMotionRms: number;
}

/** Defaults of {@link LockConfig}. */
export const DEFAULT_LOCK_CONFIG: Readonly<LockConfig> = Object.freeze({
  pulseMs: 200,
  autoRelockS: 10,
  timeZone: 'UTC',
  challengeLifetimeS: 30,
  rateThreshold: 5,
  rateWindowS: 60,
  backoffMaxS: 300,
  globalRateThreshold: 40,
  lockoutThreshold: 10,
  lockoutWindowS: 600,
  theftBumpThreshold: 4,
  theftTamperRms: 3,
  theftTiltDeg: 25,
  theftMotionRms: 0.5,
});

/** ConfigStore key of the lock configuration. */
export const CONFIG_STORE_KEY = 'lock.config';
/** ConfigStore key of the trust anchors. */
export const ANCHORS_STORE_KEY = 'lock.anchors';
/** ConfigStore key of the anchor version: the last anchor update applied ([TANDEM-ANCHOR-3]); absent = 0. */
export const ANCHOR_VERSION_STORE_KEY = 'lock.anchors.version';
/** ConfigStore key of the persisted lockout. */
export const LOCKOUT_STORE_KEY = 'lock.lockout';

interface ConfigField {
  readonly name: keyof LockConfig;
  readonly kind: 'int' | 'zone';
  readonly min?: number;
  readonly max?: number;
  /** Wire value = stored value × scale (CBOR has no floats in Tandem's profile, [TANDEM-CBOR-3]). */
  readonly scale?: number;
}

/**
 * SET_CONFIG keys: the whitelist, with ranges. Theft thresholds travel in thousandths (mm/s²) because the
 * CBOR profile has no floats ([TANDEM-CBOR-3]). `pulseMs` is further bounded by the solenoid's rating.
 */
export const CONFIG_KEYS: Readonly<Record<number, ConfigField>> = {
  1: { name: 'pulseMs', kind: 'int', min: 20, max: 2000 },
  2: { name: 'autoRelockS', kind: 'int', min: 1, max: 600 },
  3: { name: 'timeZone', kind: 'zone' },
  4: { name: 'rateThreshold', kind: 'int', min: 2, max: 100 },
  5: { name: 'rateWindowS', kind: 'int', min: 10, max: 3600 },
  6: { name: 'backoffMaxS', kind: 'int', min: 5, max: 3600 },
  7: { name: 'globalRateThreshold', kind: 'int', min: 10, max: 1000 },
  8: { name: 'lockoutThreshold', kind: 'int', min: 3, max: 1000 },
  9: { name: 'lockoutWindowS', kind: 'int', min: 60, max: 86_400 },
  10: { name: 'challengeLifetimeS', kind: 'int', min: 5, max: 300 },
  16: { name: 'theftBumpThreshold', kind: 'int', min: 500, max: 50_000, scale: 1000 },
  17: { name: 'theftTamperRms', kind: 'int', min: 500, max: 50_000, scale: 1000 },
  18: { name: 'theftTiltDeg', kind: 'int', min: 5, max: 90 },
  19: { name: 'theftMotionRms', kind: 'int', min: 100, max: 10_000, scale: 1000 },
};

/** True for an IANA time zone this runtime's Intl knows. */
export function isTimeZone(zone: unknown): zone is string {
  if (typeof zone !== 'string' || zone.length === 0 || zone.length > 64) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads the stored configuration over the defaults. A stored value that is out of range (written by an older
 * version with other ranges) is ignored in favour of the default rather than trusted.
 */
export function loadLockConfig(store: ConfigStore, base: Partial<LockConfig> = {}): LockConfig {
  const out: Record<string, number | string> = { ...DEFAULT_LOCK_CONFIG, ...base };
  const stored = store.get(CONFIG_STORE_KEY);
  if (
    stored !== null &&
    typeof stored === 'object' &&
    !Array.isArray(stored) &&
    !(stored instanceof Uint8Array)
  ) {
    for (const field of Object.values(CONFIG_KEYS)) {
      const v = (stored as Record<string, ConfigValue>)[field.name];
      if (v === undefined) continue;
      if (field.kind === 'zone' ? isTimeZone(v) : inRange(v, field)) out[field.name] = v as number | string;
    }
  }
  return out as unknown as LockConfig;
}

function inRange(v: unknown, field: ConfigField): v is number {
  if (typeof v !== 'number' || !Number.isFinite(v)) return false;
  const wire = Math.round(v * (field.scale ?? 1));
  return wire >= (field.min ?? 0) && wire <= (field.max ?? Number.MAX_SAFE_INTEGER);
}

// ---------------------------------------------------------------------------------------------------------
// Trust anchors and owner keys.
// ---------------------------------------------------------------------------------------------------------

/** A trust anchor as management commands carry it and the ConfigStore keeps it. */
export interface AnchorRecord {
  readonly kid: Uint8Array;
  readonly alg: Alg;
  /** Compact public key ([TANDEM-KEY-2]). */
  readonly key: Uint8Array;
  readonly role: 'issuer' | 'owner';
  readonly name: string;
}

/** Why {@link AnchorStore.remove} refused. */
export type AnchorRemoveRefusal = 'unknown-kid' | 'not-owner' | 'last-issuer';

const kidKey = (kid: Uint8Array): string =>
  Buffer.from(kid.buffer, kid.byteOffset, kid.byteLength).toString('hex');

/**
 * The lock's trust anchors ([TANDEM-CHAIN-4]): issuer keys of the cloud and owner keys registered at claim.
 * Keys are parsed once, at load and on add, into Node key objects ([TANDEM-KEY-4]); {@link lookup} is one Map
 * lookup. Changes are written to the ConfigStore (one atomic file) before they take effect.
 */
export class AnchorStore {
  readonly #store: ConfigStore;
  #byKid: Map<string, TrustAnchor>;
  #records: AnchorRecord[];
  /** Looks an anchor up by kid (for `verifyChain`). */
  readonly lookup: AnchorLookup = (kid) => this.#byKid.get(kidKey(kid));
  /** Issuer keys only: revocation updates and time beacons are the issuer's statements ([TANDEM-REV-9]). */
  readonly issuerKey = (kid: Uint8Array): PublicKey | undefined => {
    const a = this.#byKid.get(kidKey(kid));
    return a !== undefined && a.role === 'issuer' ? a.key : undefined;
  };

  #version: number;

  private constructor(store: ConfigStore, records: AnchorRecord[], version: number) {
    this.#store = store;
    this.#records = records;
    this.#byKid = index(records);
    this.#version = version;
  }

  /**
   * Loads the anchors from `store`. Throws ERR_LOCK_INVALID_ARGUMENT when the stored list does not parse
   * (a corrupt file is caught earlier by the store's CRC; this is a list written by other code).
   */
  static load(store: ConfigStore): AnchorStore {
    const raw = store.get(ANCHORS_STORE_KEY);
    const records: AnchorRecord[] = [];
    if (raw !== undefined) {
      if (!Array.isArray(raw))
        throw new LockError('ERR_LOCK_INVALID_ARGUMENT', `config "${ANCHORS_STORE_KEY}" must be a list`);
      for (const item of raw) records.push(recordFromConfig(item));
    }
    const version = store.get(ANCHOR_VERSION_STORE_KEY) ?? 0;
    if (typeof version !== 'number' || !Number.isInteger(version) || version < 0 || version > 0xffff_ffff) {
      throw new LockError('ERR_LOCK_INVALID_ARGUMENT', `config "${ANCHOR_VERSION_STORE_KEY}" must be a uint`);
    }
    return new AnchorStore(store, records, version);
  }

  /** The version of the last anchor update applied; 0 before any ([TANDEM-ANCHOR-3]). */
  get version(): number {
    return this.#version;
  }

  /** The anchors and their version, as `applyAnchorUpdate` (protocol/src/anchor-update.ts) takes them. */
  state(): AnchorState {
    return { version: this.#version, anchors: this.#records };
  }

  /**
   * Replaces the anchors and the anchor version in one atomic write of the ConfigStore ([TANDEM-ANCHOR-3]):
   * after a power cut the lock holds either the old set and version or the new ones, never a mix. Every
   * record is validated first; refuses a state without an issuer anchor or without an owner key it held
   * (ERR_LOCK_INVALID_ARGUMENT): an anchor update never removes either ([TANDEM-ANCHOR-4]).
   */
  async replaceState(next: AnchorState): Promise<void> {
    const records = next.anchors.map((a): AnchorRecord => ({ ...a }));
    for (const r of records) validateRecord(r);
    if (!records.some((r) => r.role === 'issuer')) {
      throw new LockError('ERR_LOCK_INVALID_ARGUMENT', 'the anchors must keep an issuer anchor');
    }
    for (const owner of this.#records.filter((r) => r.role === 'owner')) {
      if (!records.some((r) => r.role === 'owner' && kidKey(r.kid) === kidKey(owner.kid))) {
        throw new LockError('ERR_LOCK_INVALID_ARGUMENT', 'an anchor update never removes an owner key');
      }
    }
    await this.#store.setMany({
      [ANCHORS_STORE_KEY]: records.map(recordToConfig),
      [ANCHOR_VERSION_STORE_KEY]: next.version,
    });
    this.#records = records;
    this.#byKid = index(records);
    this.#version = next.version;
  }

  /** Every anchor, in the order added. */
  list(): readonly AnchorRecord[] {
    return this.#records;
  }

  /** Anchors of `role`. */
  count(role: 'issuer' | 'owner'): number {
    return this.#records.filter((r) => r.role === role).length;
  }

  /** Whether `kid` names an anchor. */
  has(kid: Uint8Array): boolean {
    return this.#byKid.has(kidKey(kid));
  }

  /**
   * Adds an anchor durably. Throws ProtocolError ERR_KEY_INVALID for a key that does not parse and
   * ERR_MESSAGE_INVALID when the kid is already taken (remove it first: rotation is add-new, remove-old).
   */
  async add(record: AnchorRecord): Promise<void> {
    validateRecord(record);
    if (this.has(record.kid)) {
      throw new ProtocolError('ERR_MESSAGE_INVALID', `trust anchor kid ${kidKey(record.kid)} already exists`);
    }
    const next = [...this.#records, record];
    await this.#store.set(ANCHORS_STORE_KEY, next.map(recordToConfig));
    this.#records = next;
    this.#byKid = index(next);
  }

  /** Whether {@link remove} would refuse, and why; undefined when it would succeed. */
  checkRemove(kid: Uint8Array, ownerOnly: boolean): AnchorRemoveRefusal | undefined {
    const a = this.#byKid.get(kidKey(kid));
    if (a === undefined) return 'unknown-kid';
    if (ownerOnly && a.role !== 'owner') return 'not-owner';
    if (a.role === 'issuer' && this.count('issuer') <= 1) return 'last-issuer';
    return undefined;
  }

  /** Removes an anchor durably, unless {@link checkRemove} refuses (then it returns the reason). */
  async remove(kid: Uint8Array, ownerOnly = false): Promise<AnchorRemoveRefusal | undefined> {
    const refusal = this.checkRemove(kid, ownerOnly);
    if (refusal !== undefined) return refusal;
    const key = kidKey(kid);
    const next = this.#records.filter((r) => kidKey(r.kid) !== key);
    await this.#store.set(ANCHORS_STORE_KEY, next.map(recordToConfig));
    this.#records = next;
    this.#byKid = index(next);
    return undefined;
  }
}

function index(records: readonly AnchorRecord[]): Map<string, TrustAnchor> {
  const m = new Map<string, TrustAnchor>();
  for (const r of records) {
    m.set(kidKey(r.kid), { kid: r.kid, key: publicKeyFromRaw(r.alg, r.key), role: r.role, name: r.name });
  }
  return m;
}

function validateRecord(r: AnchorRecord): void {
  if (!(r.kid instanceof Uint8Array) || r.kid.length < 1 || r.kid.length > 32) {
    throw new ProtocolError('ERR_MESSAGE_INVALID', 'trust anchor "kid" must be 1 to 32 bytes');
  }
  if (r.role !== 'issuer' && r.role !== 'owner') {
    throw new ProtocolError('ERR_MESSAGE_INVALID', 'trust anchor "role" must be "issuer" or "owner"');
  }
  if (typeof r.name !== 'string' || r.name.length < 1 || r.name.length > 64) {
    throw new ProtocolError('ERR_MESSAGE_INVALID', 'trust anchor "name" must be 1 to 64 characters');
  }
  publicKeyFromRaw(r.alg, r.key);
}

function recordToConfig(r: AnchorRecord): ConfigValue {
  return { kid: r.kid, alg: r.alg, key: r.key, role: r.role, name: r.name };
}

function recordFromConfig(v: ConfigValue): AnchorRecord {
  const bad = (): never => {
    throw new LockError('ERR_LOCK_INVALID_ARGUMENT', `config "${ANCHORS_STORE_KEY}" holds an invalid anchor`);
  };
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return bad();
  const o = v as Record<string, ConfigValue>;
  const { kid, alg, key, role, name } = o;
  if (!(kid instanceof Uint8Array) || !(key instanceof Uint8Array)) return bad();
  if ((alg !== 'EdDSA' && alg !== 'ES256') || (role !== 'issuer' && role !== 'owner')) return bad();
  if (typeof name !== 'string') return bad();
  const r: AnchorRecord = { kid, alg, key, role, name };
  try {
    validateRecord(r);
  } catch (cause) {
    throw new LockError(
      'ERR_LOCK_INVALID_ARGUMENT',
      `config "${ANCHORS_STORE_KEY}" holds an invalid anchor`,
      {
        cause,
      },
    );
  }
  return r;
}

// ---------------------------------------------------------------------------------------------------------
// Strict decoding of management arguments.
// ---------------------------------------------------------------------------------------------------------

/** Decoded arguments of a request's command (step 1 of SPEC.md §5.7). */
export type CommandArgs =
  | { readonly command: Command.UNLOCK | Command.LOCK | Command.STATUS | Command.CLEAR_LOCKOUT }
  | { readonly command: Command.ADD_ANCHOR | Command.ADD_OWNER_KEY; readonly anchor: AnchorRecord }
  | { readonly command: Command.REMOVE_ANCHOR | Command.REMOVE_OWNER_KEY; readonly kid: Uint8Array }
  | {
      readonly command: Command.SET_CONFIG;
      /** Stored units (theft thresholds already divided by their scale). */
      readonly changes: Readonly<Partial<Record<keyof LockConfig, number | string>>>;
    }
  | { readonly command: Command.READ_AUDIT; readonly fromSeq: number; readonly max: number };

/** Most records one READ_AUDIT returns. */
export const READ_AUDIT_MAX = 32;

const ARGS_LIMITS: CborLimits = { maxBytes: 512, maxDepth: 1, maxItems: 24 };

function argsError(message: string): never {
  throw new ProtocolError('ERR_MESSAGE_INVALID', message);
}

function argsMap(
  args: Uint8Array,
  what: string,
  allowed: readonly number[],
): Map<number | string, CborValue> {
  const m = decodeStrict(args, ARGS_LIMITS);
  if (!(m instanceof Map)) argsError(`${what} args must be a CBOR map`);
  for (const k of m.keys()) {
    if (typeof k !== 'number' || !allowed.includes(k))
      argsError(`${what} args have unknown key ${JSON.stringify(k)}`);
  }
  return m;
}

function uintArg(
  m: Map<number | string, CborValue>,
  key: number,
  what: string,
  min: number,
  max: number,
): number {
  const v = m.get(key);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    argsError(`${what} args key ${key} must be an integer from ${min} to ${max}`);
  }
  return v;
}

function bstrArg(
  m: Map<number | string, CborValue>,
  key: number,
  what: string,
  min: number,
  max: number,
): Uint8Array {
  const v = m.get(key);
  if (!(v instanceof Uint8Array) || v.length < min || v.length > max) {
    argsError(`${what} args key ${key} must be a byte string of ${min} to ${max} bytes`);
  }
  return v;
}

/**
 * Decodes `args` for `command` strictly (module comment). Commands without arguments must carry none.
 * Throws ProtocolError (ERR_MESSAGE_INVALID, ERR_CBOR_INVALID, ERR_KEY_INVALID): MALFORMED.
 */
export function decodeCommandArgs(command: Command, args: Uint8Array, maxPulseMs: number): CommandArgs {
  switch (command) {
    case Command.UNLOCK:
    case Command.LOCK:
    case Command.STATUS:
    case Command.CLEAR_LOCKOUT:
      if (args.length !== 0) argsError(`command ${Command[command]} takes no args`);
      return { command };
    case Command.ADD_ANCHOR:
    case Command.ADD_OWNER_KEY: {
      const what = Command[command];
      const m = argsMap(args, what, [1, 2, 3, 4, 5]);
      const kid = bstrArg(m, 1, what, 1, 32);
      const alg = algFromCose(m.get(2));
      if (alg === undefined) argsError(`${what} args key 2 (alg) must be -8 (EdDSA) or -7 (ES256)`);
      const key = bstrArg(m, 3, what, 32, 65);
      const roleValue = m.get(4) ?? (command === Command.ADD_OWNER_KEY ? 'owner' : undefined);
      if (roleValue !== 'issuer' && roleValue !== 'owner')
        argsError(`${what} args key 4 (role) must be "issuer" or "owner"`);
      if (command === Command.ADD_OWNER_KEY && roleValue !== 'owner')
        argsError(`${what} adds owner keys only`);
      const name = m.get(5);
      if (typeof name !== 'string' || name.length < 1 || name.length > 64) {
        argsError(`${what} args key 5 (name) must be a text string of 1 to 64 characters`);
      }
      publicKeyFromRaw(alg, key);
      return { command, anchor: { kid, alg, key, role: roleValue, name } };
    }
    case Command.REMOVE_ANCHOR:
    case Command.REMOVE_OWNER_KEY: {
      const what = Command[command];
      const m = argsMap(args, what, [1]);
      return { command, kid: bstrArg(m, 1, what, 1, 32) };
    }
    case Command.SET_CONFIG: {
      const m = argsMap(args, 'SET_CONFIG', Object.keys(CONFIG_KEYS).map(Number));
      if (m.size === 0) argsError('SET_CONFIG args must set at least one key');
      const changes: Partial<Record<keyof LockConfig, number | string>> = {};
      for (const [k, v] of m) {
        const field = CONFIG_KEYS[k as number]!;
        if (field.kind === 'zone') {
          if (!isTimeZone(v)) argsError(`SET_CONFIG key ${k} (${field.name}) must be an IANA time zone`);
          changes[field.name] = v;
          continue;
        }
        const max =
          field.name === 'pulseMs' ? Math.min(field.max ?? maxPulseMs, maxPulseMs) : (field.max ?? 0);
        const n = uintArg(m, k as number, 'SET_CONFIG', field.min ?? 0, max);
        changes[field.name] = field.scale === undefined ? n : n / field.scale;
      }
      return { command, changes };
    }
    case Command.READ_AUDIT: {
      const m = argsMap(args, 'READ_AUDIT', [1, 2]);
      const fromSeq = uintArg(m, 1, 'READ_AUDIT', 1, Number.MAX_SAFE_INTEGER);
      const max = m.has(2) ? uintArg(m, 2, 'READ_AUDIT', 1, READ_AUDIT_MAX) : 16;
      return { command, fromSeq, max };
    }
  }
}

/** True for the management commands (scope `manage`, [TANDEM-POP-5]). */
export function isManagementCommand(command: Command): boolean {
  return command >= Command.ADD_ANCHOR;
}
