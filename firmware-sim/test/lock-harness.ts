/**
 * A simulated lock for the lock runtime tests: ManualClock, SimLockMechanism, stores on a CrashingStoreFs,
 * the protocol fixtures' keys (issuer kid 01 "tandem", owner kid 0a "adam"), and helpers to mint requests.
 */
import { randomBytes } from 'node:crypto';
import { ManualClock, flushMicrotasks } from '../../hardware/src/clock.js';
import { SimLockMechanism } from '../../hardware/src/gpio/sim-lock-mechanism.js';
import { SeededRandom } from '../../hardware/src/accel/gaussian.js';
import { chainHash } from '../../protocol/src/chain.js';
import { generateKeyPair, signBytes } from '../../protocol/src/keys.js';
import type { PrivateKey } from '../../protocol/src/keys.js';
import { Command, createRequest } from '../../protocol/src/pop.js';
import { encodeTimeBeacon } from '../../protocol/src/time-beacon.js';
import type { MintClaims } from '../../protocol/src/token.js';
import { mintToken } from '../../protocol/src/token.js';
import { LOCK, NOW, claims, world } from '../../protocol/test/fixtures.js';
import type { World } from '../../protocol/test/fixtures.js';
import { AnchorStore } from '../src/lock/management.js';
import type { LockConfig } from '../src/lock/management.js';
import { tokenStateId } from '../src/lock/decision.js';
import { LockAuthority } from '../src/lock/lock-authority.js';
import type { AuthorityStores, LockResult } from '../src/lock/lock-authority.js';
import { LockStateMachine } from '../src/lock/lock-state-machine.js';
import type { StateTransition } from '../src/lock/lock-state-machine.js';
import { openLockStores } from '../src/lock/stores.js';
import type { LockStores } from '../src/lock/stores.js';
import { TrustedClock } from '../src/lock/trusted-clock.js';
import { CrashingStoreFs } from '../src/store/crashing-store-fs.js';
import type { StoreFs } from '../src/store/store-fs.js';

export { LOCK, NOW, claims, world };
export const DIR = '/var/lib/tandem';
export const MAX_PULSE_MS = 500;

/** Resolves `p` while driving the manual clock forward in small steps (timers, pulses, latch debounce). */
export async function settle<T>(clock: ManualClock, p: Promise<T>, stepMs = 5, maxMs = 120_000): Promise<T> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await flushMicrotasks();
  let t = 0;
  while (!done) {
    if (t > maxMs) throw new Error(`promise did not settle within ${maxMs} ms of simulated time`);
    await clock.advanceAsync(stepMs, stepMs);
    t += stepMs;
  }
  return p;
}

/** A seeded random source for nonces. */
export function seededRandom(seed: number): (n: number) => Uint8Array {
  const r = new SeededRandom(seed);
  return (n) => Uint8Array.from({ length: n }, () => Math.floor(r.next() * 256));
}

export interface LockOptions {
  readonly fs?: CrashingStoreFs;
  /** Run the stores on another filesystem (the real one) in `dir` instead of `fs`. */
  readonly storeFs?: StoreFs;
  readonly dir?: string;
  readonly world?: World;
  readonly device?: PrivateKey;
  readonly config?: Partial<LockConfig>;
  /** Replace stores by doubles (failure injection). */
  readonly wrapStores?: (s: LockStores) => AuthorityStores;
  /** Skip the time beacon: the lock boots with an unknown time. */
  readonly noBeacon?: boolean;
  readonly clock?: ManualClock;
  readonly beaconTime?: number;
  readonly outboxAuditBudget?: number;
}

export type Lock = Awaited<ReturnType<typeof makeLock>>;

/** Builds, provisions (anchors on a first boot), starts and (unless `noBeacon`) time-syncs a lock. */
export async function makeLock(options: LockOptions = {}) {
  const w = options.world ?? world();
  const device = options.device ?? generateKeyPair('EdDSA');
  const fs = options.fs ?? new CrashingStoreFs({ tornWrites: 'lose' });
  const clock = options.clock ?? new ManualClock(1_000);
  const sfs: StoreFs = options.storeFs ?? fs;
  const dir = options.dir ?? DIR;
  const trusted = await TrustedClock.open({ clock, fs: sfs, dir });
  const { stores, corrupt } = await openLockStores(sfs, dir, {
    auditSign: (hash) => signBytes(device, hash),
    auditClock: () => trusted.auditTimeMs(),
  });
  const anchors = AnchorStore.load(stores.config);
  if (anchors.list().length === 0) {
    for (const a of w.anchors) {
      await anchors.add({ kid: a.kid, alg: a.key.alg, key: a.key.raw, role: a.role, name: a.name });
    }
  }
  const mech = SimLockMechanism.create({ clock, maxPulseMs: MAX_PULSE_MS });
  const sm = new LockStateMachine({
    clock,
    solenoid: mech.solenoid,
    latch: mech.latch,
    pulseMs: 200,
    autoRelockMs: 10_000,
  });
  const transitions: StateTransition[] = [];
  sm.onTransition((t) => transitions.push(t));
  const authority = new LockAuthority({
    lockId: LOCK,
    anchors,
    stores: options.wrapStores ? options.wrapStores(stores) : stores,
    clock,
    random: seededRandom(7),
    stateMachine: sm,
    trustedClock: trusted,
    deviceKey: device,
    config: options.config ?? {},
    safeModeReasons: corrupt,
    ...(options.outboxAuditBudget === undefined ? {} : { outboxAuditBudget: options.outboxAuditBudget }),
  });
  await settle(clock, authority.start());
  const lock = {
    w,
    device,
    fs,
    clock,
    trusted,
    stores,
    anchors,
    mech,
    sm,
    authority,
    transitions,
    corrupt,
    /** Pulses of the solenoid so far. */
    get pulses() {
      return mech.solenoid.pulses;
    },
    /** A nonce-bound beacon at `time` (default NOW): the lock's bound becomes about ±2 s. */
    async syncTime(time = NOW): Promise<void> {
      const c = authority.issueChallenge({ peer: 'time' });
      const beacon = encodeTimeBeacon(
        { time, nonce: c.nonce, lockId: LOCK, accuracy: 2 },
        w.issuer,
        w.issuerKid,
      );
      const r = await settle(clock, authority.applyTimeBeacon(beacon, { peer: 'time' }));
      if (r.status !== 0) throw new Error(`beacon refused: ${r.status} ${r.message ?? ''}`);
    },
    /** A request for `chain` held by `holder`, answering a fresh challenge (or `nonce`). */
    request(o: {
      chain: Uint8Array[];
      holder?: PrivateKey;
      command?: Command;
      args?: Uint8Array;
      nonce?: Uint8Array;
      byRef?: boolean;
      peer?: string;
    }): Uint8Array {
      const nonce = o.nonce ?? authority.issueChallenge({ peer: o.peer ?? 'phone' }).nonce;
      const hash = chainHash(o.chain);
      return createRequest({
        lockId: LOCK,
        nonce,
        command: o.command ?? Command.UNLOCK,
        ...(o.args === undefined ? {} : { args: o.args }),
        ...(o.byRef ? { chainRef: hash.subarray(0, 16) } : { chain: o.chain }),
        chainHash: hash,
        holderKey: o.holder ?? w.rider,
      });
    },
    /** Sends a request and drives the clock until it is answered. */
    send(bytes: Uint8Array, peer = 'phone'): Promise<LockResult> {
      return settle(clock, authority.handleRequest(bytes, { peer }));
    },
    /** The issuer's token for the rider with `over` claims. */
    token(over: Partial<MintClaims> = {}): Uint8Array {
      return mintToken(claims(w, over), w.issuer, w.issuerKid);
    },
    /** An owner-signed root token (offline sharing, [TANDEM-CHAIN-4]) held by the owner's own key. */
    ownerToken(over: Partial<MintClaims> = {}): Uint8Array {
      return mintToken(
        claims(w, {
          iss: 'adam',
          sub: 'adam',
          cnf: w.owner.publicKey,
          scope: ['manage', 'unlock'],
          schedule: undefined,
          ...over,
        } as Partial<MintClaims>),
        w.owner,
        w.ownerKid,
      );
    },
    /**
     * Uses counted for the token `cti` signed by `signer` (default: the issuer): the lock keys counts by signer
     * key and cti ([TANDEM-USES-4]).
     */
    usesOf(cti: Uint8Array, signer = w.issuer.publicKey): number {
      return stores.useCounters.get(tokenStateId(signer, cti));
    },
    /** The rider pushes the shackle back in; the latch debounce settles. */
    async relock(): Promise<void> {
      mech.push();
      await clock.advanceAsync(100, 5);
    },
  };
  if (!options.noBeacon) await lock.syncTime(options.beaconTime ?? NOW);
  return lock;
}

export const freshCti = (): Uint8Array => randomBytes(12);
