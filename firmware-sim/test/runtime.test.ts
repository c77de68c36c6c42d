// The assembled lock runtime on simulated hardware: provisioning over the console, an unlock end to end,
// a theft alert into the outbox, restart locked, and safe mode after a corrupt store.
import { mkdtempSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../hardware/src/clock.js';
import { StreamConsole } from '../../hardware/src/serial/stream-console.js';
import {
  Command,
  Status,
  chainHash,
  createRequest,
  decodeAlert,
  decodeToken,
  encodeRevocationUpdate,
  encodeTimeBeacon,
  mintToken,
  publicKeyFromRaw,
  verifyClaimReceipt,
} from '../../protocol/src/index.js';
import type { MintClaims } from '../../protocol/src/index.js';
import { DEFAULT_CONFIG } from '../src/config/lock-config.js';
import type { LockFileConfig } from '../src/config/lock-config.js';
import { simulatedHardware } from '../src/runtime/hardware.js';
import { LockRuntime } from '../src/runtime/lock-runtime.js';
import { claims, world } from '../../protocol/test/fixtures.js';

const NOW_MS = Date.parse('2026-11-18T11:00:00Z'); // a Wednesday, 12:00 in Berlin
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function config(): LockFileConfig {
  const dataDir = mkdtempSync(join(tmpdir(), 'tandem-runtime-'));
  dirs.push(dataDir);
  return {
    ...DEFAULT_CONFIG,
    dataDir,
    behaviour: { ...DEFAULT_CONFIG.behaviour, timeZone: 'Europe/Berlin' },
  };
}

async function start(cfg: LockFileConfig, clock = new ManualClock(0)) {
  const hardware = simulatedHardware(clock, cfg.hardware);
  const input = new PassThrough();
  const output = new PassThrough();
  const lines: string[] = [];
  output.on('data', (d: Buffer) =>
    lines.push(
      ...d
        .toString()
        .split('\r\n')
        .filter((l) => l.length > 0),
    ),
  );
  const console = new StreamConsole({ stream: Duplex.from({ readable: input, writable: output }) });
  const runtime = await LockRuntime.open({
    config: cfg,
    hardware,
    clock,
    console,
    simulated: true,
  });
  const say = async (line: string) => {
    const before = lines.length;
    input.write(line + '\n');
    for (let i = 0; i < 200 && lines.length === before; i++) await new Promise((r) => setTimeout(r, 1));
    return lines.slice(before).join('\n');
  };
  return { runtime, hardware, clock, say };
}

// Runs the simulated clock (solenoid pulse, latch debounce) until `p` settles, in bounded steps.
async function settle<T>(clock: ManualClock, p: Promise<T>): Promise<T> {
  let done = false;
  void p.finally(() => (done = true));
  for (let i = 0; i < 500 && !done; i++) {
    clock.advance(10);
    await new Promise((r) => setImmediate(r));
  }
  return p;
}

describe('LockRuntime', () => {
  it('provisions over the console, unlocks with a valid token, and closes provisioning at the claim', async () => {
    const w = world();
    const cfg = config();
    const { runtime, hardware, clock, say } = await start(cfg);
    expect(runtime.authority).toBeUndefined();
    expect(runtime.stateMachine.reportedState).toBe('locked');
    expect(await say('provision lock-id lock-7f3a')).toBe('OK lock-id=lock-7f3a');
    const issuerHex = Buffer.from(w.issuer.publicKey.raw).toString('hex');
    expect(await say(`provision anchor add 01 EdDSA ${issuerHex} issuer tandem`)).toBe('OK anchor 01 added');
    expect(runtime.authority).toBeDefined();
    expect(await say('provision anchor add 02 EdDSA zz issuer x')).toMatch(
      /^ERR ERR_CONSOLE_USAGE <public-key> must be/,
    );
    expect(await say(`provision anchor add 02 ES256 02${'ff'.repeat(32)} issuer x`)).toMatch(
      /^ERR ERR_CONSOLE_USAGE <public-key> is not a valid ES256 key/,
    );
    const ownerHex = Buffer.from(w.owner.publicKey.raw).toString('hex');
    const claimed = await say(`provision claim 0a ES256 ${ownerHex} adam`);
    expect(claimed).toMatch(/^OK claimed by adam; provisioning closed; claim-receipt=[A-Za-z0-9_-]+$/);
    // [TANDEM-CLAIM-1]: the receipt is signed by this lock's device key, names the owner and its key, and
    // `provision show` prints the same bytes again.
    const receiptText = claimed.split('claim-receipt=')[1]!;
    const receipt = verifyClaimReceipt(
      Buffer.from(receiptText, 'base64url'),
      publicKeyFromRaw('EdDSA', runtime.devicePublicKey),
      'lock-7f3a',
    );
    expect(receipt.owner).toBe('adam');
    expect(Buffer.from(receipt.ownerKey.raw).toString('hex')).toBe(ownerHex);
    expect(await say('provision show')).toContain(`claim-receipt=${receiptText}`);
    expect(await say('provision lock-id lock-other')).toMatch(/^ERR ERR_CONSOLE_CLOSED/);

    const now = Math.floor(NOW_MS / 1000);
    const token = mintToken(
      claims(w, { nbf: now - 60, iat: now - 60, exp: now + 3600 }),
      w.issuer,
      w.issuerKid,
    );
    // A fresh lock knows no time: the phone relays an issuer beacon bound to the lock's nonce (SPEC §7).
    expect(runtime.authority!.issueChallenge({ peer: 'phone' }).uncertainty).toBeNull();
    const first = runtime.authority!.issueChallenge({ peer: 'phone' });
    const beacon = encodeTimeBeacon(
      { time: now, nonce: first.nonce, lockId: 'lock-7f3a', accuracy: 2 },
      w.issuer,
      w.issuerKid,
    );
    expect((await runtime.authority!.applyTimeBeacon(beacon, { peer: 'phone' })).status).toBe(Status.OK);
    const challenge = runtime.authority!.issueChallenge({ peer: 'phone' });
    expect(challenge.uncertainty).not.toBeNull();
    const request = createRequest({
      lockId: 'lock-7f3a',
      nonce: challenge.nonce,
      command: Command.UNLOCK,
      chain: [token],
      chainHash: chainHash([token]),
      holderKey: w.rider,
    });
    const result = await settle(clock, runtime.authority!.handleRequest(request, { peer: 'phone' }));
    expect(result.status).toBe(Status.OK);
    expect(hardware.sim!.mechanism.solenoid.pulses).toHaveLength(1);
    await runtime.close();
  });

  it('a shake while locked raises the alarm and queues a signed alert', async () => {
    const w = world();
    const cfg = config();
    const { runtime, hardware, clock, say } = await start(cfg);
    await say('provision lock-id lock-7f3a');
    await say(
      `provision anchor add 01 EdDSA ${Buffer.from(w.issuer.publicKey.raw).toString('hex')} issuer tandem`,
    );
    clock.advance(3000);
    hardware.sim!.accelerometer.shake(6000);
    for (let i = 0; i < 80; i++) clock.advance(100);
    const hasAlert = () => runtime.stores.outbox.peek(16).some((e) => e.kind === 'alert');
    for (let i = 0; i < 100 && !hasAlert(); i++) await new Promise((r) => setTimeout(r, 2));
    expect(runtime.theft.alarm).toBe('tamper');
    expect(runtime.stateMachine.reportedState).toBe('alarm');
    const alerts = runtime.stores.outbox.peek(16).filter((e) => e.kind === 'alert');
    expect(alerts.length).toBeGreaterThan(0);
    const { alert } = decodeAlert(alerts[0]!.payload);
    expect(alert).toMatchObject({ lockId: 'lock-7f3a', kind: 'tamper', sequence: alerts[0]!.seq });
    expect(hardware.sim!.mechanism.solenoid.pulses).toHaveLength(0);
    await runtime.close();
  });

  it('restarts locked with its identity, and starts in safe mode after finding a corrupt store', async () => {
    const w = world();
    const cfg = config();
    const first = await start(cfg);
    await first.say('provision lock-id lock-7f3a');
    await first.say(
      `provision anchor add 01 EdDSA ${Buffer.from(w.issuer.publicKey.raw).toString('hex')} issuer tandem`,
    );
    const deviceKey = Buffer.from(first.runtime.devicePublicKey).toString('hex');
    await first.runtime.close();

    const second = await start(cfg);
    expect(second.runtime.lockId).toBe('lock-7f3a');
    expect(Buffer.from(second.runtime.devicePublicKey).toString('hex')).toBe(deviceKey);
    expect(second.runtime.stateMachine.reportedState).toBe('locked');
    expect(second.runtime.corrupt).toEqual([]);
    await second.runtime.close();

    const revocations = readdirSync(cfg.dataDir).find((f) => f.startsWith('revocations'))!;
    writeFileSync(join(cfg.dataDir, revocations), Buffer.from('not a revocation log at all'));
    const third = await start(cfg);
    expect(third.runtime.corrupt).toContain(revocations);
    expect(third.runtime.stateMachine.reportedState).toBe('safe-mode');
    expect(await third.say('status')).toMatch(/safeMode=true/);
    await third.runtime.close();
  });

  // Issue 8 §2: on a Pi, driving the coil low and reading the latch are each libgpiod tool runs; the runtime
  // does both at once, and starts the state machine only once both are done (the lock is locked first).
  it('reads the latch while the coil is being driven low, and starts nothing before both are done', async () => {
    const cfg = config();
    const clock = new ManualClock(0);
    const hw = simulatedHardware(clock, cfg.hardware);
    const steps: string[] = [];
    let coilLow!: () => void;
    const driving = new Promise<void>((r) => (coilLow = r));
    const hardware = {
      ...hw,
      solenoid: {
        maxPulseMs: hw.solenoid.maxPulseMs,
        open: async () => {
          steps.push('solenoid.open');
          await driving;
          await hw.solenoid.open();
          steps.push('solenoid.opened');
        },
        pulse: (ms: number) => hw.solenoid.pulse(ms),
        isEnergised: () => hw.solenoid.isEnergised(),
        release: () => hw.solenoid.release(),
        close: () => hw.solenoid.close(),
      },
      latch: {
        open: async () => {
          steps.push('latch.open');
          await hw.latch.open();
        },
        read: async () => {
          steps.push('latch.read');
          return hw.latch.read();
        },
        onChange: (l: (s: 'open' | 'closed') => void) => hw.latch.onChange(l),
        close: () => hw.latch.close(),
      },
    };
    const opening = LockRuntime.open({ config: cfg, hardware, clock, simulated: true });
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(steps).toEqual(['solenoid.open', 'latch.open']);
    coilLow();
    const runtime = await opening;
    expect(steps.indexOf('latch.read')).toBeGreaterThan(steps.indexOf('solenoid.opened'));
    expect(runtime.stateMachine.reportedState).toBe('locked');
    expect(hw.solenoid.isEnergised()).toBe(false);
    await runtime.close();
  });

  it('refuses simulation-only faults on the console of real hardware, and reports unknown commands', async () => {
    const cfg = config();
    const { runtime, say } = await start(cfg);
    expect(await say('sim fault jammed')).toBe('OK fault=jammed');
    expect(await say('unlock now')).toMatch(/^ERR ERR_CONSOLE_UNKNOWN_COMMAND/);
    await runtime.close();
  });
});

// Issue 7 finding 1, reproduced against the real runtime: only signed time is trusted ([TANDEM-TIME-6]). The
// operating system clock is faked (Date only) to what the review's attacker made it read; the lock must not
// care. Every refusal leaves the solenoid unmoved.
describe('LockRuntime: only signed time is trusted [TANDEM-TIME-6]', () => {
  const NOW = Math.floor(NOW_MS / 1000);
  const DAY = 86_400;
  afterEach(() => {
    vi.useRealTimers();
  });

  // Like settle(), but each turn also yields to real I/O (the stores fsync to a real directory here), so a
  // loaded machine cannot end the loop before the operation reaches the timer it waits for. Bounded in turns.
  async function settleIo<T>(clock: ManualClock, p: Promise<T>): Promise<T> {
    let done = false;
    void p.finally(() => (done = true));
    for (let i = 0; i < 20_000 && !done; i++) {
      clock.advance(10);
      await new Promise((r) => setTimeout(r, 1));
    }
    return p;
  }

  // No schedule: the attacks are about validity and state, not the weekly schedule.
  function token(w: ReturnType<typeof world>, over: Partial<MintClaims>) {
    const c: Record<string, unknown> = { ...claims(w, over) };
    delete c.schedule;
    return mintToken(c as unknown as MintClaims, w.issuer, w.issuerKid);
  }

  async function provisioned(cfg: LockFileConfig, w: ReturnType<typeof world>) {
    const lock = await start(cfg);
    if (lock.runtime.authority === undefined) {
      await lock.say('provision lock-id lock-7f3a');
      await lock.say(
        `provision anchor add 01 EdDSA ${Buffer.from(w.issuer.publicKey.raw).toString('hex')} issuer tandem`,
      );
    }
    // The console answers asynchronously; on a loaded machine give it time (bounded in turns).
    for (let i = 0; i < 2_000 && lock.runtime.authority === undefined; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const authority = lock.runtime.authority!;
    const request = async (t: Uint8Array) => {
      const c = authority.issueChallenge({ peer: 'phone' });
      const bytes = createRequest({
        lockId: 'lock-7f3a',
        nonce: c.nonce,
        command: Command.UNLOCK,
        chain: [t],
        chainHash: chainHash([t]),
        holderKey: w.rider,
      });
      const r = await settleIo(lock.clock, authority.handleRequest(bytes, { peer: 'phone' }));
      if (r.status === Status.OK) {
        lock.hardware.sim!.mechanism.push();
        for (let i = 0; i < 100 && lock.runtime.stateMachine.reportedState !== 'locked'; i++) {
          lock.clock.advance(50);
          await new Promise((r) => setImmediate(r));
        }
      }
      return r.status;
    };
    // The issuer answers the lock's nonce: the honest way to tell a lock the time ([TANDEM-TIME-4]).
    const honestBeacon = async (time: number) => {
      const c = authority.issueChallenge({ peer: 'phone' });
      const b = encodeTimeBeacon(
        { time, nonce: c.nonce, lockId: 'lock-7f3a', accuracy: 1 },
        w.issuer,
        w.issuerKid,
      );
      return (await settleIo(lock.clock, authority.applyTimeBeacon(b, { peer: 'phone' }))).status;
    };
    const pulses = () => lock.hardware.sim!.mechanism.solenoid.pulses.length;
    return { ...lock, authority, request, honestBeacon, pulses };
  }

  it('after 10 days off with the OS clock restored to the last saved time, a token expired 8 days ago is refused', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(NOW_MS);
    const w = world();
    const cfg = config();
    const t = token(w, { nbf: NOW - 60, iat: NOW - 60, exp: NOW + 2 * DAY });
    const before = await provisioned(cfg, w);
    expect(await before.honestBeacon(NOW)).toBe(Status.OK);
    expect(await before.request(t)).toBe(Status.OK); // valid while the lock knew the time
    await before.runtime.close();

    // Ten days later (true time NOW + 10 d) the Pi boots; its OS clock reads the last saved time.
    vi.setSystemTime(NOW_MS);
    const after = await provisioned(cfg, w);
    expect(after.authority.issueChallenge({ peer: 'phone' }).uncertainty).toBeNull();
    expect(after.authority.snapshot().timeSource).toBe('unknown');
    expect(await after.request(t)).toBe(Status.TIME_UNCERTAIN);
    expect(after.pulses()).toBe(0);
    // A beacon for the lock's nonce tells it the truth: now the token is plainly expired.
    expect(await after.honestBeacon(NOW + 10 * DAY)).toBe(Status.OK);
    expect(await after.request(t)).toBe(Status.EXPIRED);
    expect(after.pulses()).toBe(0);
    await after.runtime.close();
  });

  it('the OS clock 20 days ahead plus a replayed old broadcast beacon prunes nothing: revoked and exhausted stay refused', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(NOW_MS);
    const w = world();
    const cfg = config();
    const revoked = token(w, { nbf: NOW - 60, iat: NOW - 60, exp: NOW + 7 * DAY });
    const laterRevoked = token(w, { nbf: NOW - 60, iat: NOW - 60, exp: NOW + 7 * DAY });
    const single = token(w, { nbf: NOW - 60, iat: NOW - 60, exp: NOW + 7 * DAY, maxUses: 1 });
    const ctiOf = (t: Uint8Array) => claimsCti(t);
    const update = (version: number, ids: Uint8Array[]) =>
      encodeRevocationUpdate(
        {
          kind: 'full',
          version,
          issuedAt: NOW,
          lockId: 'lock-7f3a',
          added: ids.map((id) => ({ id, exp: NOW + 7 * DAY })),
          removed: [],
        },
        w.issuer,
        w.issuerKid,
      );
    // An old broadcast beacon, recorded off the air an hour before.
    const oldBroadcast = encodeTimeBeacon({ time: NOW - 3600, accuracy: 1 }, w.issuer, w.issuerKid);

    const before = await provisioned(cfg, w);
    expect(await before.honestBeacon(NOW)).toBe(Status.OK);
    expect(
      (await settleIo(before.clock, before.authority.applyRevocationUpdate(update(1, [ctiOf(revoked)]))))
        .status,
    ).toBe(Status.OK);
    expect(await before.request(single)).toBe(Status.OK); // its one use
    expect(await before.request(revoked)).toBe(Status.REVOKED);
    expect(await before.request(single)).toBe(Status.USES_EXHAUSTED);
    expect(before.pulses()).toBe(1);
    await before.runtime.close();

    // Restart with the OS clock pushed 20 days ahead, and the old beacon replayed.
    vi.setSystemTime(NOW_MS + 20 * DAY * 1000);
    const attacked = await provisioned(cfg, w);
    expect(
      (await settleIo(attacked.clock, attacked.authority.applyTimeBeacon(oldBroadcast, { peer: 'attacker' })))
        .status,
    ).toBe(Status.OK);
    expect(attacked.authority.issueChallenge({ peer: 'phone' }).uncertainty).toBeNull();
    // A new revocation update now is held entirely, not pruned against the attacker's clock.
    expect(
      (
        await settleIo(
          attacked.clock,
          attacked.authority.applyRevocationUpdate(update(2, [ctiOf(revoked), ctiOf(laterRevoked)])),
        )
      ).status,
    ).toBe(Status.OK);
    // The clock is back; an honest beacon arrives.
    vi.setSystemTime(NOW_MS + 60_000);
    expect(await attacked.honestBeacon(NOW + 60)).toBe(Status.OK);
    expect(await attacked.request(revoked)).toBe(Status.REVOKED);
    expect(await attacked.request(laterRevoked)).toBe(Status.REVOKED);
    expect(await attacked.request(single)).toBe(Status.USES_EXHAUSTED);
    expect(attacked.pulses()).toBe(0);
    await attacked.runtime.close();
  });
});

function claimsCti(t: Uint8Array): Uint8Array {
  return decodeToken(t).claims.cti;
}
