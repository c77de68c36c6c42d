/**
 * Bench group `firmware` (issue 3, "Measured"): what the lock runtime costs beyond the signatures it cannot
 * avoid, how its revocation store scales, and how heavy the runtime is to start.
 *
 * - `decision.*`: `LockAuthority.handleRequest` on a lock built as `firmware-sim/test/lock-harness.ts` builds
 *   it (ManualClock, SimLockMechanism, stores on an in-memory CrashingStoreFs or a temp dir on the real
 *   filesystem), against bare `crypto.verify` of the same token and proof-of-possession bytes. handleRequest
 *   is asynchronous and every request needs a fresh challenge, so {@link compareAsync} below times it the way
 *   `compare` of `lib.ts` times synchronous operations, with the requests of a slice signed before the slice.
 * - `revocation.*`: `RevocationStore.has` at 100,000 entries and the log's bytes per entry on disk.
 * - `runtime.*`: the compiled runtime (`dist/`) started by `bench/start-lock.mjs` against `node -e`.
 */
import { spawn } from 'node:child_process';
import { randomBytes, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flushMicrotasks } from '../hardware/src/clock.js';
import { decodeSign1, sigStructure } from '../protocol/src/cose.js';
import { Command, createRequest, decodeRequest, popSignedBytes } from '../protocol/src/pop.js';
import { generateKeyPair } from '../protocol/src/keys.js';
import { chainHash } from '../protocol/src/chain.js';
import { Status } from '../protocol/src/status.js';
import { TOKEN_LIMITS, mintToken } from '../protocol/src/token.js';
import { claims, issued, world } from '../protocol/test/fixtures.js';
import type { AuthorityStores, LockResult } from '../firmware-sim/src/lock/lock-authority.js';
import type { LockStores } from '../firmware-sim/src/lock/stores.js';
import type { AuditRecord } from '../firmware-sim/src/store/audit-log.js';
import { RevocationStore } from '../firmware-sim/src/store/revocation-store.js';
import { CountingStoreFs } from '../firmware-sim/src/store/counting-store-fs.js';
import { NodeStoreFs } from '../firmware-sim/src/store/store-fs.js';
import { LOCK, makeLock } from '../firmware-sim/test/lock-harness.js';
import type { Lock } from '../firmware-sim/test/lock-harness.js';
import type { BenchContext, BenchGroup, CompareOptions, Side } from './lib.js';
import { QUICK, asyncSide, atMost, compareAsync, comparisonNote, consume, median, syncSide } from './lib.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

// --------------------------------------------------------------------------------------------------------
// decision.*
// --------------------------------------------------------------------------------------------------------

/** A lock holds 16 live challenges, 2 per peer: requests of one slice come from 8 peers. */
const PEERS = ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'];
const MAX_LIVE_CHALLENGES = 16;
/** Shortest pulse SET_CONFIG allows; the lock's zone as in the protocol group. */
const LOCK_CONFIG = { pulseMs: 20, timeZone: 'Europe/Berlin' } as const;
/** Simulated ms per step while an unlock is driven: pulse 20 ms, actuation 15 ms, latch debounce 20 ms. */
const STEP_MS = 10;

/**
 * Stores whose audit log and outbox write nothing: `append` keeps nothing; `enqueueWith` builds (encodes and
 * device-signs) the audit record, because the authority chains the next record on its hash, but does not
 * write it.
 */
function noAuditWrites(s: LockStores): AuthorityStores {
  let seq = 0;
  let auditSeq = 0;
  const audit: AuthorityStores['audit'] = {
    append: (payload: Uint8Array): Promise<AuditRecord> => Promise.resolve({ seq: ++auditSeq, payload }),
    since: () => [],
    records: () => [],
    get lastSeq() {
      return auditSeq;
    },
    chainHead: new Uint8Array(32),
  };
  const outbox: AuthorityStores['outbox'] = {
    enqueueWith: (_kind, build) => {
      seq++;
      consume(build(seq, 1));
      return Promise.resolve(seq);
    },
    peek: () => [],
    get size() {
      return 0;
    },
  };
  return { ...s, audit, outbox };
}

/** Closes what holds file handles (the real-filesystem lock), so that none is left to the collector. */
async function closeLock(lock: Lock): Promise<void> {
  lock.authority.close();
  const { stores } = lock;
  await Promise.all([
    stores.useCounters.close(),
    stores.revocations.close(),
    stores.audit.close(),
    stores.outbox.close(),
  ]);
  await lock.trusted.close();
}

/**
 * How an UNLOCK row drives the lock.
 *
 * - `lock`: the goal rows. The interval is the lock's own work for the attempt: `handleRequest` from the call
 *   to its result (decision, durable count, the state machine's unlock, the solenoid energised, the latch
 *   seen open, the audit record signed and both appends), awaited directly. The simulated hardware takes no
 *   turn of the event loop: when the coil is switched on, the next microtask advances the manual clock
 *   through the pulse (20 ms), the shackle's travel (15 ms) and the latch's debounce (20 ms) in one
 *   synchronous step, so an in-memory lock waits on microtasks only (checked: a `setImmediate` armed before
 *   each call must not have run when its result is in). After the result, untimed, the rider pushes the
 *   shackle back and the clock runs the latch's debounce synchronously, so that the next call unlocks from
 *   `locked` again. A lock on the real filesystem waits for its I/O in turns of the event loop, as it must.
 * - `full-cycle`: the measurement before 2026-12-06, kept as informative rows: the clock advanced one step
 *   per turn of the event loop (`setImmediate`) until the result, and the push-back and relock timed too.
 */
type Driver = 'lock' | 'full-cycle';

/** Simulated ms the `lock` driver advances once the coil is on: pulse, actuation and debounce all done. */
const HARDWARE_MS = 60;

interface Bench {
  readonly lock: Lock;
  readonly token: Uint8Array;
  /** Calls of the `lock` driver during which a turn of the event loop happened (I/O waits). */
  readonly turns: number;
  /** One UNLOCK request through the mechanism, the shackle pushed back after (full cycle). */
  unlockOnce(bytes: Uint8Array): Promise<LockResult>;
  /** First-time requests (full chain), or repeats by chainRef; UNLOCK through the mechanism, or STATUS. */
  side(kind: 'full' | 'ref', command: Command.UNLOCK | Command.STATUS, driver?: Driver): Side;
}

function bench(lock: Lock, token: Uint8Array): Bench {
  const { authority, clock, mech, sm } = lock;
  let pending: { bytes: Uint8Array; peer: string }[] = [];
  let turns = 0;
  // The `lock` driver's hardware: the coil's switch-on finishes the mechanism's movement one microtask later
  // (once the state machine awaits its pulse), without waiting for a turn of the event loop.
  let instant = false;
  mech.solenoid.onCurrentChange((on) => {
    if (on && instant) queueMicrotask(() => clock.advance(HARDWARE_MS));
  });

  // Full cycle: drives the manual clock until the request is answered (the pulse, the latch), yielding a
  // turn of the event loop in between so that the state machine's continuations run; then the rider pushes
  // the shackle back in.
  const fullCycle = async (bytes: Uint8Array, peer: string): Promise<LockResult> => {
    instant = false;
    let result: LockResult | undefined;
    const p = authority.handleRequest(bytes, { peer }).then((r) => (result = r));
    await flushMicrotasks();
    while (result === undefined) {
      // Simulated time moves only while the mechanism is moving: on the real filesystem the audit's fsyncs
      // take many turns of the event loop, and the clock must not run ahead of them (challenges expire).
      if (sm.state === 'unlocking') clock.advance(STEP_MS);
      await flushMicrotasks();
    }
    await p;
    mech.push();
    while (sm.state !== 'locked') {
      clock.advance(STEP_MS);
      await flushMicrotasks();
    }
    return result;
  };

  // Untimed, between two calls of the `lock` driver: the rider pushes the shackle back in; the latch's
  // bounce and debounce timers run in one synchronous advance, and the state machine relocks.
  const relock = (): void => {
    mech.push();
    clock.advance(HARDWARE_MS);
    if (sm.state !== 'locked') throw new Error(`bench: the lock did not relock (state ${sm.state})`);
  };

  const after = async (): Promise<void> => {
    const out = lock.stores.outbox;
    const last = out.peek(out.size).at(-1);
    if (last !== undefined) await out.ack(last.seq);
  };

  const prepare = (kind: 'full' | 'ref', command: Command) => (n: number) => {
    pending = [];
    for (let i = 0; i < n; i++) {
      const peer = PEERS[i % PEERS.length]!;
      pending.push({
        bytes: lock.request({ chain: [token], command, byRef: kind === 'ref', peer }),
        peer,
      });
    }
  };

  const side = (
    kind: 'full' | 'ref',
    command: Command.UNLOCK | Command.STATUS,
    driver: Driver = 'lock',
  ): Side => {
    if (command === Command.UNLOCK && driver === 'full-cycle') {
      return asyncSide(
        MAX_LIVE_CHALLENGES,
        prepare(kind, command),
        (i) => fullCycle(pending[i]!.bytes, pending[i]!.peer),
        after,
      );
    }
    const unlocks = command === Command.UNLOCK;
    return {
      maxCalls: MAX_LIVE_CHALLENGES,
      async run(n) {
        prepare(kind, command)(n);
        instant = true;
        let t = 0n;
        for (let i = 0; i < n; i++) {
          const { bytes, peer } = pending[i]!;
          let turned = false;
          const immediate = setImmediate(() => (turned = true));
          const start = process.hrtime.bigint();
          consume(await authority.handleRequest(bytes, { peer }));
          t += process.hrtime.bigint() - start;
          clearImmediate(immediate);
          if (turned) turns++;
          if (unlocks) relock();
        }
        instant = false;
        await after();
        return Number(t);
      },
    };
  };
  return {
    lock,
    token,
    side,
    get turns() {
      return turns;
    },
    unlockOnce: (bytes) => fullCycle(bytes, 'phone'),
  };
}

/** Runs a side once and throws unless the lock accepted every request (and pulsed for an UNLOCK). */
async function checkSide(b: Bench, side: Side, unlocks: boolean): Promise<void> {
  const pulses = b.lock.pulses.length;
  const results: LockResult[] = [];
  const off = b.lock.authority.onEvent((e) => {
    if (e.type === 'decision') results.push(e.result);
  });
  await side.run(3);
  off();
  for (const r of results) {
    if (r.status !== Status.OK)
      throw new Error(`bench setup: the lock refused a request: ${Status[r.status]} ${r.message ?? ''}`);
  }
  if (results.length !== 3) throw new Error('bench setup: requests went unanswered');
  if (unlocks && b.lock.pulses.length !== pulses + 3) throw new Error('bench setup: an unlock did not pulse');
}

/** Where a decision row's lock keeps its stores. */
type Where = 'memory' | 'no-audit' | 'disk' | 'memory-trail' | 'disk-trail';

/** Records in the audit trail of the `*-trail` locks: past the point where every append compacts. */
const TRAIL_RECORDS = 5_500;

const WHERE: Record<Where, string> = {
  memory: 'stores on an in-memory CrashingStoreFs (no power cuts), fresh lock',
  'no-audit':
    'audit log and outbox writes replaced by no-ops in bench code (the cloud record is still built and device-signed), fresh lock',
  disk: `stores in a temp dir on the real filesystem (${tmpdir()}, fsync per append), fresh lock`,
  'memory-trail': `in-memory CrashingStoreFs, audit trail pre-filled with ${TRAIL_RECORDS} copies of a typical signed audit record (~250 B each on disk, ~1.4 MB > the 1 MiB compactAtBytes of AuditLog: without its doubling rule every append would rewrite the whole log)`,
  'disk-trail': `real filesystem (${tmpdir()}), audit trail pre-filled with ${TRAIL_RECORDS} copies of a typical signed audit record (~1.4 MB > 1 MiB)`,
};

async function decision(ctx: BenchContext, opts: CompareOptions, trailOpts: CompareOptions): Promise<void> {
  const w = world();
  const device = generateKeyPair('EdDSA');
  const token = mintToken(claims(w), w.issuer, w.issuerKid);
  const dir = mkdtempSync(join(tmpdir(), 'tandem-bench-'));
  let locks = 0;
  const fresh = async (where: Where): Promise<Bench> => {
    const base = { config: LOCK_CONFIG, world: w, device };
    const disk = where === 'disk' || where === 'disk-trail';
    const lock = await makeLock(
      disk
        ? { ...base, storeFs: new NodeStoreFs(), dir: join(dir, `lock${locks++}`) }
        : where === 'no-audit'
          ? { ...base, wrapStores: noAuditWrites }
          : base,
    );
    const b = bench(lock, token);
    // One first-time request, so that the chain is cached for the chainRef rows.
    await b.side('full', Command.STATUS).run(1);
    if (where === 'memory-trail' || where === 'disk-trail') {
      const typical = lock.stores.audit.records().at(-1)!.payload;
      while (lock.stores.audit.lastSeq < TRAIL_RECORDS) await lock.stores.audit.append(typical);
    }
    return b;
  };

  try {
    // The bare signature checks a first-time request cannot avoid, over the same bytes.
    const sign1 = decodeSign1(token, TOKEN_LIMITS, [61, 18]);
    const tbs = sigStructure(sign1.protectedBytes, sign1.payload);
    const issuerKey = w.issuer.publicKey.key;
    const bareToken = () => nodeVerify(null, tbs, issuerKey, sign1.signature);
    const nonce = new Uint8Array(randomBytes(16));
    const hash = chainHash([token]);
    const request = decodeRequest(
      createRequest({
        lockId: LOCK,
        nonce,
        command: Command.UNLOCK,
        chain: [token],
        chainHash: hash,
        holderKey: w.rider,
      }),
    );
    const popBytes = popSignedBytes(LOCK, nonce, Command.UNLOCK, new Uint8Array(0), hash);
    const riderKey = { key: w.rider.publicKey.key, dsaEncoding: 'ieee-p1363' as const };
    const barePop = () => nodeVerify('sha256', popBytes, riderKey, request.signature);
    const bareTwo = () => bareToken() && barePop();
    if (!bareToken() || !barePop()) throw new Error('bench setup: a bare verification failed');
    const hash32 = new Uint8Array(randomBytes(32));
    const bareSign = () => nodeSign(null, hash32, device.key);

    // The floor of an accepted unlock (issue 8 §2): the cryptography it cannot avoid. First: the chain's
    // signature, the proof of possession and the device signature on the audit record of the attempt (one
    // Ed25519 sign of a message the size of that record's Sig_structure: the token's, ~200 B); a repeat: the
    // same without the chain.
    const bareRecordSign = () => nodeSign(null, tbs, device.key);
    const floorFirst = () => bareToken() && barePop() && bareRecordSign();
    const floorRepeat = () => barePop() && bareRecordSign();
    const floor1: [Side, string] = [
      syncSide(floorFirst),
      'floor: bare Ed25519 verify + ES256 verify + 1 Ed25519 sign',
    ];
    const floorR: [Side, string] = [syncSide(floorRepeat), 'floor: bare ES256 verify + 1 Ed25519 sign'];
    const ed: [Side, string] = [syncSide(bareToken), 'bare Ed25519 verify'];
    const es: [Side, string] = [syncSide(barePop), 'bare ES256 verify'];
    const two: [Side, string] = [syncSide(bareTwo), 'bare Ed25519 + ES256 verify'];
    const bareCrypto = () => bareTwo() && bareSign() && bareSign();
    const crypto: [Side, string] = [syncSide(bareCrypto), 'bare Ed25519 + ES256 verify + 2 Ed25519 signs'];
    const UNLOCK = Command.UNLOCK;
    const STATUS = Command.STATUS;
    // Settle before the first timed row, as the protocol group does: the first decision row used to come out
    // 0.4-0.8 higher than later rows of the same run timing the same UNLOCK (2026-12-06: first_unlock_vs_floor
    // A 540 µs where unlock_ratio's A was 309 µs), because V8 was still optimising the decision path, which
    // compareAsync's 100 ms warm-up does not cover. Four seconds of every side of the goal rows, untimed (a
    // quarter second with --quick), on a lock of their own so that the timed locks start fresh.
    {
      const warm = await fresh('memory');
      const sides = [
        warm.side('full', Command.UNLOCK),
        warm.side('ref', Command.UNLOCK),
        floor1[0],
        floorR[0],
      ];
      for (const end = performance.now() + (ctx.quick ? 250 : 4000); performance.now() < end;) {
        for (const s of sides) await s.run(MAX_LIVE_CHALLENGES);
      }
      await closeLock(warm.lock);
    }
    type Row = [string, Where, 'full' | 'ref', Command.UNLOCK | Command.STATUS, [Side, string], Driver?];
    const rows: Row[] = [
      ['first_unlock_vs_floor', 'memory', 'full', UNLOCK, floor1],
      ['repeat_unlock_vs_floor', 'memory', 'ref', UNLOCK, floorR],
      ['first_unlock_vs_floor_full_cycle', 'memory', 'full', UNLOCK, floor1, 'full-cycle'],
      ['repeat_unlock_vs_floor_full_cycle', 'memory', 'ref', UNLOCK, floorR, 'full-cycle'],
      ['unlock_ratio', 'memory', 'full', UNLOCK, ed],
      ['unlock_ratio_vs_two_verifies', 'memory', 'full', UNLOCK, two],
      ['unlock_ratio_vs_crypto', 'memory', 'full', UNLOCK, crypto],
      ['repeat_ratio', 'memory', 'ref', UNLOCK, es],
      ['status_ratio', 'memory', 'full', STATUS, ed],
      ['unlock_ratio_no_audit', 'no-audit', 'full', UNLOCK, ed],
      ['unlock_ratio_vs_two_verifies_no_audit', 'no-audit', 'full', UNLOCK, two],
      ['repeat_ratio_no_audit', 'no-audit', 'ref', UNLOCK, es],
      ['status_ratio_no_audit', 'no-audit', 'full', STATUS, ed],
      ['first_unlock_vs_floor_real_fs', 'disk', 'full', UNLOCK, floor1],
      ['repeat_unlock_vs_floor_real_fs', 'disk', 'ref', UNLOCK, floorR],
      ['unlock_ratio_real_fs', 'disk', 'full', UNLOCK, ed],
      ['unlock_ratio_vs_two_verifies_real_fs', 'disk', 'full', UNLOCK, two],
      ['repeat_ratio_real_fs', 'disk', 'ref', UNLOCK, es],
      ['unlock_ratio_full_trail', 'memory-trail', 'full', UNLOCK, ed],
      ['unlock_ratio_full_trail_real_fs', 'disk-trail', 'full', UNLOCK, ed],
    ];
    for (const [name, where, kind, command, [base, baseName], driver = 'lock'] of rows) {
      const trail = where === 'memory-trail' || where === 'disk-trail';
      // Filling a trail past the compaction threshold alone takes ~15 s: not in a smoke test.
      if (trail && ctx.quick) continue;
      const b = await fresh(where);
      const side = b.side(kind, command, driver);
      await checkSide(b, side, command === UNLOCK);
      const turnsBefore = b.turns;
      const c = await compareAsync(side, base, trail ? trailOpts : opts);
      const turns = b.turns - turnsBefore;
      const inMemory = where !== 'disk' && where !== 'disk-trail';
      // The in-memory lock must wait on nothing but microtasks: a turn of the event loop in its interval
      // would be the driver's (or a timer's), not the lock's work.
      if (driver === 'lock' && inMemory && turns !== 0)
        throw new Error(
          `bench: ${turns} calls of decision.${name} waited for a turn of the event loop in memory`,
        );
      const what = `${command === UNLOCK ? 'UNLOCK' : 'STATUS (no mechanism)'}, ${kind === 'full' ? 'full chain' : 'by chainRef'}`;
      const how =
        command !== UNLOCK
          ? 'to the result'
          : driver === 'lock'
            ? `to the result (solenoid pulsed, latch seen open, audited), the simulated hardware advanced without event-loop turns${inMemory ? ' (none in any call)' : ''}, the relock untimed`
            : 'full cycle as before 2026-12-06: clock advanced one step per event-loop turn, push-back and relock timed';
      ctx.report({
        name: `decision.${name}`,
        value: c.ratio,
        unit: 'ratio',
        goal: name === 'first_unlock_vs_floor' || name === 'repeat_unlock_vs_floor' ? atMost(1.2) : null,
        note: `${what} via handleRequest, ${how}; ${WHERE[where]}; ${comparisonNote(c, what, baseName)}`,
      });
      await closeLock(b.lock);
    }
    await fsyncRows(ctx, w, device, dir);
    const sc = await compareAsync(syncSide(bareSign), ed[0], opts);
    ctx.report({
      name: 'decision.step.device_sign',
      value: sc.ratio,
      unit: 'ratio',
      goal: null,
      note: `one Ed25519 sign with the device key (an accepted request makes one since [TANDEM-AUDIT-2]: its audit record, kept by the outbox and the local audit log alike) per bare Ed25519 verify; ${comparisonNote(sc, 'sign', 'verify')}`,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `decision.fsyncs_before_solenoid_*` ([TANDEM-USES-6], issue 8 §2): fsyncs between an accepted UNLOCK and
 * the solenoid energising, counted on the real filesystem (`NodeStoreFs` through {@link CountingStoreFs}),
 * for the request that counts most: a delegated chain whose root and link both have `maxUses`.
 */
async function fsyncRows(
  ctx: BenchContext,
  w: ReturnType<typeof world>,
  device: ReturnType<typeof generateKeyPair>,
  dir: string,
): Promise<void> {
  const fs = new CountingStoreFs(new NodeStoreFs());
  const lock = await makeLock({
    config: LOCK_CONFIG,
    world: w,
    device,
    storeFs: fs,
    dir: join(dir, 'fsync'),
  });
  const root = mintToken(claims(w, { scope: ['unlock', 'delegate'], maxUses: 1000 }), w.issuer, w.issuerKid);
  const link = mintToken(
    claims(w, { iss: 'bianca', cnf: w.friend.publicKey, scope: ['unlock'], maxUses: 1000 }),
    w.rider,
  );
  const plain = mintToken(claims(w), w.issuer, w.issuerKid);
  const solenoid = lock.mech.solenoid;
  const pulse = solenoid.pulse.bind(solenoid);
  const count = async (request: Uint8Array): Promise<{ before: string[]; total: number }> => {
    const start = fs.synced.length;
    let before: string[] | undefined;
    solenoid.pulse = (ms: number) => {
      before ??= fs.synced.slice(start);
      return pulse(ms);
    };
    try {
      const r = await bench(lock, plain).unlockOnce(request);
      if (r.status !== Status.OK || before === undefined)
        throw new Error(`bench setup: the counted unlock was refused or did not pulse (${Status[r.status]})`);
      return { before, total: fs.synced.length - start };
    } finally {
      solenoid.pulse = pulse;
    }
  };
  try {
    const chain = [root, link];
    const first = await count(lock.request({ chain, holder: w.friend }));
    const repeat = await count(lock.request({ chain, holder: w.friend, byRef: true }));
    const typical = await count(lock.request({ chain: [plain] }));
    const names = (l: string[]) => l.map((p) => p.split('/').at(-1)).join(', ') || 'none';
    for (const [name, c] of [
      ['first', first],
      ['repeat', repeat],
    ] as const) {
      ctx.report({
        name: `decision.fsyncs_before_solenoid_${name}`,
        value: c.before.length,
        unit: 'count',
        goal: atMost(1),
        note: `UNLOCK ${name === 'first' ? 'with the full chain' : 'by chainRef'}, delegated chain with maxUses on root and link, NodeStoreFs in ${tmpdir()}: fsyncs before the solenoid energised (${names(c.before)}), ${c.total} in the whole request (the audit entry and the outbox record follow the action); the typical token (no maxUses): ${typical.before.length} before, ${typical.total} in all`,
      });
    }
  } finally {
    await closeLock(lock);
  }
}

// --------------------------------------------------------------------------------------------------------
// revocation.*
// --------------------------------------------------------------------------------------------------------

const REVOKED = 100_000;

async function revocation(ctx: BenchContext, opts: CompareOptions): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-bench-'));
  try {
    const store = await RevocationStore.open(new NodeStoreFs(), dir, { maxEntries: 200_000 });
    const exp = 1_800_000_000;
    const ids = Array.from({ length: REVOKED }, () => new Uint8Array(randomBytes(16)));
    await store.replace(
      1,
      ids.map((id) => ({ id, exp })),
    );
    const fileBytes = statSync(join(dir, 'revocations.log')).size;
    ctx.report({
      name: 'revocation.bytes_per_entry',
      value: fileBytes / REVOKED,
      unit: 'bytes',
      goal: null,
      note: `revocations.log ${fileBytes} B on the real filesystem after replace() of ${REVOKED} entries with 16-byte ids (store.diskBytes ${store.diskBytes} B)`,
    });

    // Alternating hit and miss, over ids spread through the set (fresh Uint8Arrays, as decoded tokens give).
    const probes: Uint8Array[] = [];
    for (let i = 0; i < 1024; i++) {
      probes.push(i % 2 === 0 ? new Uint8Array(ids[(i * 97) % REVOKED]!) : new Uint8Array(randomBytes(16)));
    }
    let i = 0;
    const lookup = () => store.has(probes[i++ & 1023]!);
    for (let k = 0; k < 1024; k++) {
      if (lookup() !== (k % 2 === 0)) throw new Error('bench setup: revocation lookup gave a wrong answer');
    }
    const c = await compareAsync(syncSide(lookup), syncSide(bareEd25519()), opts);
    await store.close();
    ctx.report({
      name: 'revocation.lookup_ratio',
      value: c.ratio,
      unit: 'ratio',
      goal: atMost(0.01),
      note: `RevocationStore.has at ${store.size} entries, hit and miss alternating / bare Ed25519 verify of a token; ${comparisonNote(c, 'has', 'verify')}`,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A bare Ed25519 verification of a typical token (`protocol/test/fixtures.ts`), as in the protocol group. */
function bareEd25519(): () => boolean {
  const w = world();
  const sign1 = decodeSign1(issued(w), TOKEN_LIMITS, [61, 18]);
  const tbs = sigStructure(sign1.protectedBytes, sign1.payload);
  const key = w.issuer.publicKey.key;
  const verify = () => nodeVerify(null, tbs, key, sign1.signature);
  if (!verify()) throw new Error('bench setup: bare Ed25519 verification failed');
  return verify;
}

// --------------------------------------------------------------------------------------------------------
// runtime.*
// --------------------------------------------------------------------------------------------------------

interface Spawned {
  readonly ms: number;
  readonly stdout: string;
}

/**
 * The baseline child: `node -e` printing its peak RSS as start-lock.mjs does (VmHWM; see there why not
 * `resourceUsage().maxRSS`).
 */
const NODE_E =
  "let m;try{m=/VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status','utf8'))}catch{}" +
  'console.log(m?m[1]:process.resourceUsage().maxRSS)';

function spawnTimed(args: readonly string[]): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (code !== 0) reject(new Error(`${args.join(' ')} exited ${String(code)}: ${stderr}`));
      else resolve({ ms, stdout });
    });
  });
}

function distBuilt(): boolean {
  return (
    existsSync(join(ROOT, 'dist/firmware-sim/src/runtime/index.js')) &&
    existsSync(join(ROOT, 'dist/bundle/lock.js'))
  );
}

async function runtime(ctx: BenchContext): Promise<void> {
  if (!distBuilt()) {
    await new Promise<void>((resolve, reject) => {
      // `npm run build`: tsc's dist/ and the esbuild bundle that `tandem lock` runs.
      const tsc = spawn('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' });
      tsc.on('error', reject);
      tsc.on('exit', () => resolve());
    });
    if (!distBuilt()) throw new Error('runtime: dist/ is missing and `npm run build` did not build it');
  }
  const script = join(ROOT, 'bench/start-lock.mjs');
  const dir = mkdtempSync(join(tmpdir(), 'tandem-bench-'));
  try {
    const template = join(dir, 'template');
    await spawnTimed([script, 'provision', template]);
    const n = ctx.quick ? 3 : 15;
    const startRatios: number[] = [];
    const rssRatios: number[] = [];
    const bareStartRatios: number[] = [];
    const bareRssRatios: number[] = [];
    const nodeMs: number[] = [];
    const lockMs: number[] = [];
    const ready: number[] = [];
    const nodeRss: number[] = [];
    const lockRss: number[] = [];
    const lockMaxRss: number[] = [];
    // One untimed run of each first (file cache).
    await spawnTimed(['-e', NODE_E]);
    cpSync(template, join(dir, 'warm'), { recursive: true });
    await spawnTimed([script, 'start', join(dir, 'warm')]);
    for (let k = 0; k < n; k++) {
      const run = join(dir, `run${k}`);
      cpSync(template, run, { recursive: true });
      const pair = async (): Promise<[Spawned, Spawned]> => {
        if (k % 2 === 0) {
          const a = await spawnTimed(['-e', NODE_E]);
          return [a, await spawnTimed([script, 'start', run])];
        }
        const b = await spawnTimed([script, 'start', run]);
        return [await spawnTimed(['-e', NODE_E]), b];
      };
      const [a, b] = await pair();
      const r = JSON.parse(b.stdout) as { ready: number; rss: number; maxRSS: number; peakKB: number };
      const aRss = Number(a.stdout.trim());
      // The row before issue 8 (no BLE, no console), against the same node -e, for comparison.
      const bareRun = join(dir, `bare${k}`);
      cpSync(template, bareRun, { recursive: true });
      const bare = await spawnTimed([script, 'start-bare', bareRun]);
      bareStartRatios.push(bare.ms / a.ms);
      bareRssRatios.push((JSON.parse(bare.stdout) as { peakKB: number }).peakKB / aRss);
      nodeMs.push(a.ms);
      lockMs.push(b.ms);
      ready.push(r.ready);
      nodeRss.push(aRss);
      lockRss.push(r.peakKB);
      lockMaxRss.push(r.maxRSS);
      startRatios.push(b.ms / a.ms);
      rssRatios.push(r.peakKB / aRss);
    }
    // Where the start time goes: the import of each layer, in load order (each only what it adds).
    const imports: { ms: Record<string, number>; rss: Record<string, number> }[] = [];
    for (let k = 0; k < (ctx.quick ? 1 : 5); k++) {
      imports.push(JSON.parse((await spawnTimed([script, 'imports'])).stdout) as (typeof imports)[number]);
    }
    const top3 = (of: 'ms' | 'rss', unit: (v: number) => string): string => {
      const layers = Object.keys(imports[0]![of])
        .map((k) => [k, median(imports.map((x) => x[of][k]!))] as const)
        .sort((x, y) => y[1] - x[1]);
      const total = layers.reduce((sum, [, v]) => sum + v, 0);
      return `${unit(total)} in all, top 3: ${layers
        .slice(0, 3)
        .map(([k, v]) => `${k} ${unit(v)}`)
        .join(', ')}`;
    };
    const importMs = top3('ms', (v) => `${v.toFixed(1)} ms`);
    const importRss = top3('rss', (v) => `${(v / 1024).toFixed(0)} KB`);
    const ms = (x: number) => `${x.toFixed(0)} ms`;
    ctx.report({
      name: 'runtime.start_ratio',
      value: median(startRatios),
      unit: 'ratio',
      goal: atMost(1.5),
      note:
        `median of ${n} alternating pairs of spawn-to-exit wall times (min ${Math.min(...startRatios).toFixed(3)}, max ${Math.max(...startRatios).toFixed(3)}): ` +
        `bench/start-lock.mjs start (dist/bundle runtime as tandem lock runs it on a Pi: bleno advertising on the virtual radio in place of the native HCI socket, the console on serialport with its mock binding in place of the UART, simulated GPIO and accelerometer; provisioned data dir copied fresh; exits once locked, serving and advertising) ${ms(median(lockMs))} ` +
        `(ready mark at ${ms(median(ready))} after process start) against node -e ${ms(median(nodeMs))}; ` +
        `imports (bench/start-lock.mjs imports, median of runs, each layer only what it adds) ${importMs}`,
    });
    ctx.report({
      name: 'runtime.rss_ratio',
      value: median(rssRatios),
      unit: 'ratio',
      goal: atMost(1.3),
      note:
        `median of ${n} pairs of peak RSS (VmHWM of /proc/self/status, printed by each child): runtime at ready ${median(lockRss)} KB ` +
        `against node -e ${median(nodeRss)} KB (min ${Math.min(...rssRatios).toFixed(3)}, max ${Math.max(...rssRatios).toFixed(3)}); ` +
        `RSS added by imports ${importRss}; the child's process.resourceUsage().maxRSS read ${median(lockMaxRss)} KB: Linux carries the bench parent's peak across fork+exec, so it is not used`,
    });
    ctx.report({
      name: 'runtime.start_ratio_bare',
      value: median(bareStartRatios),
      unit: 'ratio',
      goal: null,
      note: `the same without BLE and console (start-lock.mjs start-bare, the row before issue 8), against the same node -e runs`,
    });
    ctx.report({
      name: 'runtime.rss_ratio_bare',
      value: median(bareRssRatios),
      unit: 'ratio',
      goal: null,
      note: 'peak RSS without BLE and console, against the same node -e runs',
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `TANDEM_BENCH_FIRMWARE_PARTS` (comma-separated `decision`, `revocation`, `runtime`; default all): runs only
 * those parts of the group, so that the decision rows can be re-measured without the minute of runtime spawns.
 */
function parts(): ReadonlySet<string> {
  const all = ['decision', 'revocation', 'runtime'];
  const env = process.env['TANDEM_BENCH_FIRMWARE_PARTS'];
  if (env === undefined || env.trim() === '') return new Set(all);
  const chosen = env.split(',').map((p) => p.trim());
  for (const p of chosen) {
    if (!all.includes(p))
      throw new Error(`TANDEM_BENCH_FIRMWARE_PARTS: unknown part "${p}" (parts: ${all.join(', ')})`);
  }
  return new Set(chosen);
}

async function run(ctx: BenchContext): Promise<void> {
  const chosen = parts();
  // Decision rows keep each lock's audit trail under ~2,500 records (see WHERE and the README).
  if (chosen.has('decision'))
    await decision(
      ctx,
      ctx.quick ? QUICK : { sliceMs: 2, rounds: 31, warmupRounds: 5 },
      ctx.quick ? QUICK : { sliceMs: 2, rounds: 11, warmupRounds: 2, slices: 4, warmupMs: 20 },
    );
  if (chosen.has('revocation')) await revocation(ctx, ctx.quick ? QUICK : {});
  if (chosen.has('runtime')) await runtime(ctx);
}

export const firmwareGroup: BenchGroup = {
  name: 'firmware',
  description: 'lock decision against bare signatures, revocation lookup and size, runtime start and memory',
  run,
};
