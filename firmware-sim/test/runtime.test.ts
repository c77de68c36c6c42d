// The assembled lock runtime on simulated hardware: provisioning over the console, an unlock end to end,
// a theft alert into the outbox, restart locked, and safe mode after a corrupt store.
import { mkdtempSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../hardware/src/clock.js';
import { StreamConsole } from '../../hardware/src/serial/stream-console.js';
import {
  Command,
  Status,
  chainHash,
  createRequest,
  decodeAlert,
  encodeTimeBeacon,
  mintToken,
} from '../../protocol/src/index.js';
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
    systemTime: () => NOW_MS + clock.now(),
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
    expect(await say(`provision claim 0a ES256 ${ownerHex} adam`)).toBe(
      'OK claimed by adam; provisioning closed',
    );
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

  it('refuses simulation-only faults on the console of real hardware, and reports unknown commands', async () => {
    const cfg = config();
    const { runtime, say } = await start(cfg);
    expect(await say('sim fault jammed')).toBe('OK fault=jammed');
    expect(await say('unlock now')).toMatch(/^ERR ERR_CONSOLE_UNKNOWN_COMMAND/);
    await runtime.close();
  });
});
