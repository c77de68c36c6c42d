/**
 * The fuzz targets (issue 7 §2): every decoder of `protocol/`, the GATT reassembler and session, the lock's
 * decision (LockAuthority) and the serial console interpreter. Each target turns one input into calls on the
 * real code and applies the oracle of SPEC §10: only coded errors escape a decoder (ProtocolError), the lock's
 * entry points never throw and answer with a wire status, nothing hangs (simulated time is bounded) and the
 * simulated solenoid never pulses.
 *
 * A violated oracle throws a {@link FuzzFinding}; any other exception escaping `run` is itself a finding
 * ("unexpected exception", or "crash" for a TypeError/RangeError/ReferenceError: a bug in our code).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManualClock } from '../../../hardware/src/clock.js';
import { simulatedHardware } from '../../../firmware-sim/src/runtime/hardware.js';
import { LockRuntime } from '../../../firmware-sim/src/runtime/lock-runtime.js';
import { DEFAULT_CONFIG } from '../../../firmware-sim/src/config/lock-config.js';
import { AuthorityBackend } from '../../../firmware-sim/src/ble/authority-backend.js';
import { GattSession } from '../../../firmware-sim/src/ble/gatt-session.js';
import type {
  NotifyingCharacteristic,
  ReadableCharacteristic,
  WritableCharacteristic,
} from '../../../firmware-sim/src/ble/gatt-session.js';
import { CrashingStoreFs } from '../../../firmware-sim/src/store/crashing-store-fs.js';
import { claims, makeLock, settle } from '../../../firmware-sim/test/lock-harness.js';
import type { Lock } from '../../../firmware-sim/test/lock-harness.js';
import { checkWellFormed, decodeStrict } from '../../../protocol/src/cbor.js';
import { chainHash, checkScope, checkTime, verifyChain } from '../../../protocol/src/chain.js';
import type { TrustAnchor } from '../../../protocol/src/chain.js';
import { decodeSign1, verifySign1 } from '../../../protocol/src/cose.js';
import { ProtocolError } from '../../../protocol/src/errors.js';
import {
  MessageType,
  Reassembler,
  WRITABLE_TYPES,
  decodeChallenge,
  decodeLockInfo,
  decodeResult,
  frameMessage,
} from '../../../protocol/src/gatt.js';
import { publicKeyFromRaw } from '../../../protocol/src/keys.js';
import type { Alg, PublicKey } from '../../../protocol/src/keys.js';
import {
  encodeAlert,
  encodeAuditRecord,
  encodeLockState,
  encodeOutboxAck,
  parseTopic,
  verifyAlert,
  verifyAuditRecord,
  verifyLockState,
  verifyOutboxAck,
} from '../../../protocol/src/mqtt.js';
import { Command, createRequest, decodeRequest, verifyPop } from '../../../protocol/src/pop.js';
import {
  EMPTY_REVOCATION_STATE,
  applyRevocationUpdate,
  encodeRevocationAck,
  verifyRevocationAck,
  verifyRevocationUpdate,
} from '../../../protocol/src/revocation.js';
import { Status, isStatus } from '../../../protocol/src/status.js';
import { boundFromBeacon, verifyTimeBeacon } from '../../../protocol/src/time-beacon.js';
import { decodeToken, mintToken } from '../../../protocol/src/token.js';
import { edKey } from '../../../protocol/vectors/keys.js';
import { concat } from './mutate.js';

/** What a violated oracle reports. */
export type FindingKind = 'crash' | 'hang' | 'unexpected' | 'unlock';

export class FuzzFinding extends Error {
  readonly kind: FindingKind;
  constructor(kind: FindingKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FuzzFinding';
    this.kind = kind;
  }
}

/** Classifies an exception that escaped a target's `run`. */
export function classify(e: unknown): { kind: FindingKind; message: string } {
  if (e instanceof FuzzFinding) return { kind: e.kind, message: e.message };
  const err = e instanceof Error ? e : new Error(String(e));
  const crash = err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError;
  return {
    kind: crash ? 'crash' : 'unexpected',
    message: `${err.name}: ${err.message}\n${err.stack ?? ''}`,
  };
}

/** One instance of a target: state it keeps across inputs (a lock, a runtime) and the oracle. */
export interface TargetInstance {
  run(input: Uint8Array): void | Promise<void>;
  close?(): Promise<void>;
}

export interface FuzzTarget {
  readonly name: string;
  readonly description: string;
  /** Valid inputs to mutate, from protocol/vectors/*.json and deterministic keys. */
  seeds(): Uint8Array[];
  /** A fresh instance; the runner makes a new one every `recycleEvery` inputs (bounded memory). */
  create(): Promise<TargetInstance>;
  readonly recycleEvery?: number;
  /** Largest random input (default 300 bytes). */
  readonly maxRandomBytes?: number;
}

// ---------------------------------------------------------------------------------------------------------
// Seeds: the repository's own vectors (protocol/vectors), walked for hex strings.
// ---------------------------------------------------------------------------------------------------------

const VECTORS = join(import.meta.dirname, '..', '..', '..', 'protocol', 'vectors');
const HEX = /^(?:[0-9a-f]{2}){4,}$/;

function vectorFile(name: string): { vectors: { input: Record<string, unknown> }[] } {
  return JSON.parse(readFileSync(join(VECTORS, name), 'utf8')) as never;
}

/** Every hex string of at least 4 bytes in a vector file, decoded. */
export function vectorHex(name: string, fields?: readonly string[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  const walk = (v: unknown, key: string): void => {
    if (typeof v === 'string' && HEX.test(v) && (fields === undefined || fields.includes(key))) {
      out.push(Uint8Array.from(Buffer.from(v, 'hex')));
    } else if (Array.isArray(v)) v.forEach((x) => walk(x, key));
    else if (v !== null && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) walk(x, fields?.includes(key) ? key : k);
  };
  walk(vectorFile(name), '');
  return out;
}

const VECTOR_LOCK = 'lock-7f3a';
const VECTOR_NOW = 1_795_010_400;

/** The trust anchors of the vectors (the same in every file). */
function vectorAnchors(): TrustAnchor[] {
  const raw = vectorFile('tokens.json').vectors[0]!.input.anchors as {
    kid: string;
    alg: Alg;
    publicKey: string;
    role: 'issuer' | 'owner';
    name: string;
  }[];
  return raw.map((a) => ({
    kid: Uint8Array.from(Buffer.from(a.kid, 'hex')),
    key: publicKeyFromRaw(a.alg, Uint8Array.from(Buffer.from(a.publicKey, 'hex'))),
    role: a.role,
    name: a.name,
  }));
}

let anchorsCache: TrustAnchor[] | undefined;
function anchors(): TrustAnchor[] {
  return (anchorsCache ??= vectorAnchors());
}
const anchorLookup = (kid: Uint8Array) => anchors().find((a) => Buffer.compare(a.kid, kid) === 0);
const issuerKey = (kid: Uint8Array): PublicKey | undefined => {
  const a = anchorLookup(kid);
  return a?.role === 'issuer' ? a.key : undefined;
};

/** Deterministic keys for the payloads no vector file carries (MQTT). */
const DEVICE = edKey('fuzz: lock device key');
const CLOUD = edKey('fuzz: cloud issuer key');
const CLOUD_KID = Uint8Array.of(0x01);
const cloudKey = (kid: Uint8Array) => (kid.length === 1 && kid[0] === 1 ? CLOUD.publicKey : undefined);

// ---------------------------------------------------------------------------------------------------------
// Oracles
// ---------------------------------------------------------------------------------------------------------

/** Runs `f`; a ProtocolError is the documented refusal, anything else escapes to the runner. */
function coded(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    if (typeof e.code !== 'string' || !e.code.startsWith('ERR_') || !isStatus(e.status)) {
      throw new FuzzFinding('unexpected', `ProtocolError with an unmapped code ${String(e.code)}`);
    }
  }
}

/** A pure decoder target. */
function decoder(
  name: string,
  description: string,
  seeds: () => Uint8Array[],
  run: (b: Uint8Array) => void,
  maxRandomBytes?: number,
): FuzzTarget {
  return {
    name,
    description,
    seeds,
    ...(maxRandomBytes === undefined ? {} : { maxRandomBytes }),
    create: async () => ({ run: (b) => coded(() => run(b)) }),
  };
}

/** A chain of tokens carried as a CBOR array of byte strings (the request's form); anything else is one token. */
function chainOf(b: Uint8Array): Uint8Array[] {
  try {
    const v = decodeStrict(b);
    if (Array.isArray(v) && v.every((x) => x instanceof Uint8Array)) return v as Uint8Array[];
  } catch {
    // not an array: fuzz the single token
  }
  return [b];
}

function chainSeeds(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const v of vectorFile('tokens.json').vectors) {
    const chain = (v.input.chain as string[]).map((h) => Uint8Array.from(Buffer.from(h, 'hex')));
    out.push(encodeBstrArray(chain));
  }
  return out;
}

function encodeBstrArray(items: readonly Uint8Array[]): Uint8Array {
  const head = (major: number, n: number): Uint8Array =>
    n < 24
      ? Uint8Array.of(major | n)
      : n < 256
        ? Uint8Array.of(major | 24, n)
        : Uint8Array.of(major | 25, n >> 8, n & 0xff);
  return concat(head(0x80, items.length), ...items.flatMap((t) => [head(0x40, t.length), t]));
}

function mqttSeeds(kind: 'alert' | 'audit' | 'state' | 'outbox-ack' | 'revocation-ack'): Uint8Array[] {
  const lockId = VECTOR_LOCK;
  switch (kind) {
    case 'alert':
      return [
        encodeAlert(
          { lockId, sequence: 1, epoch: 1, time: VECTOR_NOW, kind: 'tamper', detail: new Map() },
          DEVICE,
        ),
        encodeAlert(
          {
            lockId,
            sequence: 77,
            epoch: 0xffff_ffff,
            time: VECTOR_NOW,
            kind: 'moved',
            detail: new Map<string, number | string | boolean>([
              ['g', 3],
              ['axis', 'z'],
              ['ok', true],
            ]),
          },
          DEVICE,
        ),
      ];
    case 'audit':
      return [
        encodeAuditRecord(
          {
            lockId,
            sequence: 3,
            epoch: 9,
            time: VECTOR_NOW,
            previousHash: new Uint8Array(32).fill(7),
            event: 'unlock',
            status: Status.OK,
            command: Command.UNLOCK,
            tokenId: new Uint8Array(12).fill(1),
            rider: 'bianca',
            detail: new Map([['peer', 'aa:bb']]),
          },
          DEVICE,
        ),
      ];
    case 'state':
      return [
        encodeLockState(
          {
            lockId,
            state: 'locked',
            time: VECTOR_NOW,
            uncertainty: 2,
            revocationVersion: 7,
            outboxEpoch: 9,
            outboxSequence: 3,
          },
          DEVICE,
        ),
        encodeLockState(
          {
            lockId,
            state: 'alarm',
            time: VECTOR_NOW,
            uncertainty: null,
            revocationVersion: 0,
            outboxEpoch: 1,
            outboxSequence: 0,
          },
          DEVICE,
        ),
      ];
    case 'outbox-ack':
      return [encodeOutboxAck({ lockId, sequence: 12, epoch: 9 }, CLOUD, CLOUD_KID)];
    case 'revocation-ack':
      return [encodeRevocationAck({ lockId, version: 7, lockTime: VECTOR_NOW }, DEVICE)];
  }
}

// ---------------------------------------------------------------------------------------------------------
// The lock targets: a real LockAuthority on simulated hardware and an in-memory card
// ---------------------------------------------------------------------------------------------------------

/** Fails the oracle when the solenoid moved. */
function assertNoPulse(lock: Pick<Lock, 'pulses'>, what: string): void {
  if (lock.pulses.length > 0) {
    throw new FuzzFinding('unlock', `the solenoid pulsed ${lock.pulses.length} time(s) after ${what}`);
  }
}

/** Resolves `p` on the lock's manual clock, or reports a hang after a bounded amount of simulated time. */
async function bounded<T>(lock: Pick<Lock, 'clock'>, p: Promise<T>, what: string): Promise<T> {
  try {
    return await settle(lock.clock, p, 50, 60_000);
  } catch (e) {
    if (e instanceof Error && /did not settle/.test(e.message)) {
      throw new FuzzFinding('hang', `${what} did not settle within 60 s of simulated time`);
    }
    throw e;
  }
}

/** Fuzz-friendly limits: refusals are what a fuzzer produces, so neither back-off nor lockout may mask them. */
const FUZZ_LOCK_CONFIG = { rateThreshold: 100, globalRateThreshold: 100_000, lockoutThreshold: 1000 };

/**
 * The lock's decision on mutated requests: a valid request for a fresh challenge of a fresh peer is built
 * for every input (holder key, issuer token, owner token, delegation chain), then mutated. Any input that
 * differs from the valid request must be refused with a wire status and must not move the solenoid.
 */
function authorityTarget(): FuzzTarget {
  return {
    name: 'lock-request',
    description: 'LockAuthority.handleRequest on mutated valid requests (fresh challenge each)',
    seeds: () => [],
    recycleEvery: 400,
    create: async () => {
      const lock = await makeLock({ config: FUZZ_LOCK_CONFIG });
      const root = lock.token({ scope: ['unlock', 'status', 'delegate'], schedule: undefined });
      const chains = [
        { chain: [lock.token({ schedule: undefined })], holder: lock.w.rider },
        { chain: [lock.ownerToken()], holder: lock.w.owner },
        {
          chain: [
            root,
            mintToken(
              claims(lock.w, {
                iss: 'bianca',
                cnf: lock.w.friend.publicKey,
                scope: ['unlock'],
                schedule: undefined,
              }),
              lock.w.rider,
            ),
          ],
          holder: lock.w.friend,
        },
      ];
      let n = 0;
      return {
        run: async (input) => {
          // The input selects the chain and carries the mutation plan (fast-check drives the bytes).
          n += 1;
          const pick = chains[(input[0] ?? 0) % chains.length]!;
          const peer = `fuzz-${n}`;
          const nonce = lock.authority.issueChallenge({ peer }).nonce;
          const valid = createRequest({
            lockId: lock.authority.lockId,
            nonce,
            command: (input[1] ?? 0) % 2 === 0 ? Command.UNLOCK : Command.STATUS,
            chain: pick.chain,
            chainHash: chainHash(pick.chain),
            holderKey: pick.holder,
          });
          const mutated = mutateWith(valid, input.subarray(2));
          if (Buffer.compare(mutated, valid) === 0) return;
          const r = await bounded(lock, lock.authority.handleRequest(mutated, { peer }), 'handleRequest');
          if (!isStatus(r.status))
            throw new FuzzFinding('unexpected', `status ${String(r.status)} is not a wire status`);
          if (r.status === Status.OK && r.mayHaveActed)
            throw new FuzzFinding(
              'unlock',
              `a mutated request was accepted: ${Buffer.from(mutated).toString('hex')}`,
            );
          assertNoPulse(lock, 'a mutated request');
        },
        close: async () => lock.authority.close(),
      };
    },
  };
}

/** Byte-level mutation driven by a plan in the input: pairs of (position, xor), then an optional cut. */
function mutateWith(valid: Uint8Array, plan: Uint8Array): Uint8Array {
  const out = Uint8Array.from(valid);
  if (plan.length === 0) {
    out[out.length >> 1]! ^= 1;
    return out;
  }
  const cut = plan.length % 2 === 1 ? plan[plan.length - 1]! : undefined;
  for (let i = 0; i + 1 < plan.length; i += 2) {
    const pos = ((plan[i]! << 8) | plan[i + 1]!) % out.length;
    out[pos]! ^= plan[(i + 3) % plan.length]! || 1;
  }
  return cut === undefined || cut > 200 ? out : out.subarray(0, Math.max(0, out.length - cut));
}

/**
 * A GATT session over the real decision: the input is a script of ATT operations (writes of frames to each
 * writable characteristic, subscriptions, reads at offsets, MTU changes, idle time).
 */
function gattSessionTarget(): FuzzTarget {
  return {
    name: 'gatt-session',
    description: 'GattSession + AuthorityBackend + LockAuthority driven by a script of ATT operations',
    maxRandomBytes: 600,
    seeds: () => gattScripts(),
    recycleEvery: 300,
    create: async () => {
      const lock = await makeLock({ config: FUZZ_LOCK_CONFIG });
      const backend = new AuthorityBackend({
        authority: lock.authority,
        outbox: lock.stores.outbox,
        issuerKey: (kid) => lock.anchors.issuerKey(kid),
        firmwareVersion: 'fuzz-1',
      });
      let n = 0;
      return {
        run: async (input) => {
          n += 1;
          const session = new GattSession({
            peer: `fuzz#${n}`,
            backend,
            clock: lock.clock,
            onDrop: () => {},
          });
          const pending: Promise<unknown>[] = [];
          for (const op of scriptOps(input)) {
            if (op.kind === 'write') session.write(op.characteristic, op.frame);
            else if (op.kind === 'subscribe') session.subscribe(op.characteristic, () => {});
            else if (op.kind === 'read') pending.push(session.read(op.characteristic, op.offset));
            else if (op.kind === 'mtu') session.setMtu(op.mtu);
            else lock.clock.advance(op.ms);
          }
          await bounded(lock, Promise.all([...pending, session.settled()]), 'the session');
          session.close();
          assertNoPulse(lock, 'a GATT script');
        },
        close: async () => lock.authority.close(),
      };
    },
  };
}

type ScriptOp =
  | { kind: 'write'; characteristic: WritableCharacteristic; frame: Uint8Array }
  | { kind: 'subscribe'; characteristic: NotifyingCharacteristic }
  | { kind: 'read'; characteristic: ReadableCharacteristic; offset: number }
  | { kind: 'mtu'; mtu: number }
  | { kind: 'idle'; ms: number };

const WRITABLE: WritableCharacteristic[] = ['request', 'delivery', 'relay'];
const NOTIFYING: NotifyingCharacteristic[] = ['result', 'challenge', 'relay'];
const READABLE: ReadableCharacteristic[] = ['challenge', 'lockInfo', 'relay'];

/**
 * Script encoding: one opcode byte (low 3 bits: op; the rest: characteristic or parameter), then for a write
 * a length byte and that many frame bytes. Bounded: at most 256 operations.
 */
function scriptOps(b: Uint8Array): ScriptOp[] {
  const ops: ScriptOp[] = [];
  let i = 0;
  while (i < b.length && ops.length < 256) {
    const code = b[i++]!;
    const arg = code >> 3;
    switch (code & 7) {
      case 0:
      case 1:
      case 2: {
        const len = b[i++] ?? 0;
        ops.push({ kind: 'write', characteristic: WRITABLE[(code & 7) % 3]!, frame: b.subarray(i, i + len) });
        i += len;
        break;
      }
      case 3:
        ops.push({ kind: 'subscribe', characteristic: NOTIFYING[arg % 3]! });
        break;
      case 4:
        ops.push({ kind: 'read', characteristic: READABLE[arg % 3]!, offset: (arg >> 2) * 11 - 1 });
        break;
      case 5:
        ops.push({ kind: 'mtu', mtu: [23, 185, 517, 0, 22, 518, 65535, 100][arg % 8]! });
        break;
      default:
        ops.push({ kind: 'idle', ms: [1, 100, 5_001, 10_001, 61_000][arg % 5]! });
    }
  }
  return ops;
}

/** Scripts that carry valid framed messages (vector requests, beacons, revocation updates) at MTU 23 and 185. */
function gattScripts(): Uint8Array[] {
  const messages: [WritableCharacteristic, number, Uint8Array][] = [
    ...vectorHex('pop.json', ['request']).map(
      (r) => ['request', MessageType.unlockRequest, r] as [WritableCharacteristic, number, Uint8Array],
    ),
    ...vectorHex('time-beacons.json', ['beacon']).map(
      (r) => ['delivery', MessageType.timeBeacon, r] as [WritableCharacteristic, number, Uint8Array],
    ),
    ...vectorHex('revocation.json', ['updates']).map(
      (r) => ['delivery', MessageType.revocationUpdate, r] as [WritableCharacteristic, number, Uint8Array],
    ),
  ];
  const out: Uint8Array[] = [];
  for (const [c, type, body] of messages) {
    for (const mtu of [23, 185]) {
      const parts: number[] = [3, 5 | ((mtu === 23 ? 0 : 1) << 3)]; // subscribe result, set MTU
      for (const f of frameMessage(type, body, mtu)) parts.push(WRITABLE.indexOf(c), f.length, ...f);
      parts.push(4 | (0 << 3)); // read a challenge
      out.push(Uint8Array.from(parts));
    }
  }
  return out;
}

/** Lines for the console: printable garbage, and command words with mutated arguments. */
const CONSOLE_WORDS = [
  'help',
  'status',
  'time',
  'audit',
  'provision show',
  'provision lock-id',
  'provision anchor add',
  'provision anchor remove',
  'mqtt password',
  'provision claim',
  'sim latch push',
  'sim fault',
  'sim motion',
  'alarm clear',
];
const CONSOLE_ARGS = [
  '01',
  '0a',
  'EdDSA',
  'ES256',
  'issuer',
  'owner',
  'tandem',
  'lock-7f3a',
  'jammed',
  'clear',
  'shake',
  'carry',
  '600000',
  '99999999999999999999',
  'mqtt://127.0.0.1:1883',
  'a'.repeat(64),
  '-1',
  '00'.repeat(32),
  '02' + 'ff'.repeat(32),
  '04' + '00'.repeat(64),
  '1f64fab59ae4699f7afffcff0b8d8337a0952525a16972df5004cfbfa722fdc6',
];

/** One console line from fuzz bytes: either the bytes themselves (latin-1) or words picked by them. */
export function consoleLine(b: Uint8Array): string {
  if (b.length === 0) return '';
  if (b[0]! < 64) return Buffer.from(b.subarray(1)).toString('latin1');
  const words = [CONSOLE_WORDS[(b[1] ?? 0) % CONSOLE_WORDS.length] ?? 'status'];
  for (let i = 2; i < b.length && words.length < 9; i++) {
    const x = b[i]!;
    words.push(
      x < 200
        ? CONSOLE_ARGS[x % CONSOLE_ARGS.length]!
        : Buffer.from(b.subarray(i + 1, i + 1 + (x - 200))).toString('hex'),
    );
  }
  return words.join(b[0]! & 1 ? '  ' : ' ');
}

function consoleSeeds(): Uint8Array[] {
  return CONSOLE_WORDS.map((_, i) => Uint8Array.of(64, i, 0, 1, 2, 3, 4, 5));
}

/**
 * The console interpreter of a real LockRuntime (simulated hardware, in-memory card), unclaimed and claimed.
 * Oracle: `execute` never throws; every refusal has a console code; after the claim no provisioning command
 * succeeds and the identity does not change; the solenoid never pulses.
 */
function consoleTarget(): FuzzTarget {
  return {
    name: 'console',
    description: 'ConsoleInterpreter of a LockRuntime, before and after the claim',
    seeds: consoleSeeds,
    maxRandomBytes: 200,
    recycleEvery: 500,
    create: async () => {
      const unclaimed = await openRuntime(false);
      const claimed = await openRuntime(true);
      const identity = () => `${claimed.runtime.lockId} ${claimed.runtime.anchors.list().length}`;
      const before = identity();
      return {
        run: async (input) => {
          const target = input.length > 0 && input[input.length - 1]! & 1 ? claimed : unclaimed;
          const line = consoleLine(input);
          const reply = await settle(target.clock, target.runtime.console.execute(line), 50, 60_000);
          if (!reply.ok && (reply.code === undefined || !reply.code.startsWith('ERR_CONSOLE_'))) {
            throw new FuzzFinding('unexpected', `refusal without a console code: ${JSON.stringify(reply)}`);
          }
          if (target === claimed) {
            if (reply.ok && /^\s*provision\s+(lock-id|anchor|mqtt|claim)/.test(line)) {
              throw new FuzzFinding(
                'unexpected',
                `provisioning ran after the claim: ${JSON.stringify(line)}`,
              );
            }
            if (identity() !== before)
              throw new FuzzFinding('unexpected', `the identity changed after the claim`);
          }
          for (const t of [unclaimed, claimed]) {
            if (t.hardware.sim!.mechanism.solenoid.pulses.length > 0)
              throw new FuzzFinding('unlock', `the console moved the solenoid: ${JSON.stringify(line)}`);
          }
        },
        close: async () => {
          await unclaimed.runtime.close();
          await claimed.runtime.close();
        },
      };
    },
  };
}

/** A LockRuntime on simulated hardware and an in-memory card, provisioned and claimed with the vector keys when `claim`. */
export async function openRuntime(claim: boolean, simulated = true) {
  const clock = new ManualClock(0);
  const config = { ...DEFAULT_CONFIG, dataDir: '/var/lib/tandem' };
  const hardware = simulatedHardware(clock, config.hardware);
  const runtime = await LockRuntime.open({
    config,
    hardware: { ...hardware, console: undefined },
    clock,
    fs: new CrashingStoreFs({ tornWrites: 'lose' }),
    simulated,
    random: seededBytes(11),
  });
  if (claim) {
    const a = anchors();
    const hex = (k: PublicKey) => Buffer.from(k.raw).toString('hex');
    for (const line of [
      `provision lock-id ${VECTOR_LOCK}`,
      `provision anchor add 01 EdDSA ${hex(a[0]!.key)} issuer tandem`,
      `provision claim 0a ES256 ${hex(a[1]!.key)} adam`,
    ]) {
      const r = await settle(clock, runtime.console.execute(line), 50, 60_000);
      if (!r.ok) throw new Error(`claiming the fuzz runtime failed at "${line}": ${r.code} ${r.text}`);
    }
  }
  return { runtime, clock, hardware };
}

/** Deterministic bytes (xorshift32) for the runtime under fuzz: nonces, so a run replays. */
function seededBytes(seed: number): (n: number) => Uint8Array {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s & 0xff;
  };
  return (n) => Uint8Array.from({ length: n }, next);
}

// ---------------------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------------------

const requestSeeds = () => vectorHex('pop.json', ['request']);
const tokenSeeds = () => vectorHex('tokens.json', ['chain']);

export const TARGETS: readonly FuzzTarget[] = [
  decoder(
    'cbor',
    'checkWellFormed + decodeStrict (SPEC §2)',
    () => [...vectorHex('cbor.json'), ...tokenSeeds(), ...requestSeeds()],
    (b) => {
      checkWellFormed(b);
      decodeStrict(b);
    },
  ),
  decoder('cose-sign1', 'decodeSign1 + verifySign1 (SPEC §3, RFC 9052 §4)', tokenSeeds, (b) => {
    const s = decodeSign1(b, undefined, [18, 61]);
    verifySign1(s, anchors()[0]!.key);
  }),
  decoder('token', 'decodeToken: claims and cnf (SPEC §5.1-§5.3)', tokenSeeds, (b) => {
    decodeToken(b);
  }),
  decoder('chain', 'verifyChain + checkTime + checkScope (SPEC §5.4-§5.7)', chainSeeds, (b) => {
    const g = verifyChain(chainOf(b), anchorLookup, VECTOR_LOCK);
    checkTime(g, { earliest: VECTOR_NOW - 5, latest: VECTOR_NOW + 5 });
    checkScope(g.leaf, 'unlock');
  }),
  decoder('unlock-request', 'decodeRequest + verifyChain + verifyPop (SPEC §5.8)', requestSeeds, (b) => {
    const r = decodeRequest(b);
    if (r.chain === undefined) return;
    const g = verifyChain(r.chain, anchorLookup, VECTOR_LOCK);
    verifyPop(r, VECTOR_LOCK, g.leaf.cnf, g.chainHash);
  }),
  decoder(
    'revocation-update',
    'verifyRevocationUpdate + applyRevocationUpdate (SPEC §6)',
    () => vectorHex('revocation.json', ['updates']),
    (b) => {
      const u = verifyRevocationUpdate(b, issuerKey, VECTOR_LOCK);
      applyRevocationUpdate(EMPTY_REVOCATION_STATE, u, VECTOR_NOW);
    },
  ),
  decoder(
    'time-beacon',
    'verifyTimeBeacon + boundFromBeacon (SPEC §7)',
    () => vectorHex('time-beacons.json', ['beacon']),
    (b) => {
      const beacon = verifyTimeBeacon(b, issuerKey, VECTOR_LOCK);
      boundFromBeacon(beacon, {
        lockNonce: new Uint8Array(16),
        issuedAtLocalMs: 0,
        nowLocalMs: 1000,
        maxRelayDelayMs: 30_000,
      });
    },
  ),
  decoder(
    'mqtt-alert',
    'verifyAlert (SPEC §9)',
    () => mqttSeeds('alert'),
    (b) => {
      verifyAlert(b, DEVICE.publicKey, VECTOR_LOCK);
    },
  ),
  decoder(
    'mqtt-audit',
    'verifyAuditRecord (SPEC §9)',
    () => mqttSeeds('audit'),
    (b) => {
      verifyAuditRecord(b, DEVICE.publicKey, VECTOR_LOCK);
    },
  ),
  decoder(
    'mqtt-state',
    'verifyLockState (SPEC §9.5)',
    () => mqttSeeds('state'),
    (b) => {
      verifyLockState(b, DEVICE.publicKey, VECTOR_LOCK);
    },
  ),
  decoder(
    'mqtt-outbox-ack',
    'verifyOutboxAck (SPEC §9)',
    () => mqttSeeds('outbox-ack'),
    (b) => {
      verifyOutboxAck(b, cloudKey, VECTOR_LOCK);
    },
  ),
  decoder(
    'mqtt-revocation-ack',
    'verifyRevocationAck (SPEC §6)',
    () => mqttSeeds('revocation-ack'),
    (b) => {
      verifyRevocationAck(b, DEVICE.publicKey, VECTOR_LOCK);
    },
  ),
  decoder(
    'mqtt-topic',
    'parseTopic (SPEC §9)',
    () =>
      (vectorFile('mqtt-topics.json').vectors as { input: { topic: string } }[]).map((v) =>
        Uint8Array.from(Buffer.from(v.input.topic, 'utf8')),
      ),
    (b) => {
      parseTopic(Buffer.from(b).toString(b[0] === 0xff ? 'latin1' : 'utf8'));
    },
  ),
  decoder(
    'gatt-messages',
    'decodeChallenge / decodeResult / decodeLockInfo, as the phone decodes them (SPEC §8)',
    () => [...vectorHex('cbor.json'), ...requestSeeds()],
    (b) => {
      coded(() => decodeChallenge(b));
      coded(() => decodeResult(b));
      decodeLockInfo(b);
    },
  ),
  {
    name: 'gatt-reassembler',
    description: 'Reassembler.push over a sequence of frames (SPEC §8 [TANDEM-GATT-6/7])',
    maxRandomBytes: 600,
    seeds: () => {
      const out: Uint8Array[] = [];
      for (const v of vectorFile('gatt-frames.json').vectors as unknown as {
        expected: { frames?: string[] };
      }[]) {
        const frames = (v.expected.frames ?? []).map((h) => Buffer.from(h, 'hex'));
        out.push(Uint8Array.from(frames.flatMap((f) => [f.length, ...f])));
      }
      return out;
    },
    create: async () => ({
      run: (b) => {
        const r = new Reassembler({ allowedTypes: WRITABLE_TYPES.request! });
        let i = 0;
        while (i < b.length) {
          const len = b[i++]!;
          const frame = b.subarray(i, i + len);
          i += len;
          let message;
          try {
            message = r.push(frame);
          } catch (e) {
            if (!(e instanceof ProtocolError)) throw e;
            if (r.busy)
              throw new FuzzFinding('unexpected', 'the reassembler kept a buffer after refusing a frame');
            continue;
          }
          if (message !== undefined && message.body.length > 4096)
            throw new FuzzFinding('unexpected', `a ${message.body.length}-byte message was reassembled`);
        }
      },
    }),
  },
  authorityTarget(),
  gattSessionTarget(),
  consoleTarget(),
];

export function targetNamed(name: string): FuzzTarget | undefined {
  return TARGETS.find((t) => t.name === name);
}
