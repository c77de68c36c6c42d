// The attack catalogue's serial console rows (test/security/CATALOGUE.md): someone with the UART, before
// and after the owner's claim, on a real LockRuntime (simulated hardware, in-memory card). The console can
// never open the lock; after the claim it cannot change the identity at all.
import { describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { settle } from '../../firmware-sim/test/lock-harness.js';
import { openRuntime } from './fuzz/targets.js';

type Opened = Awaited<ReturnType<typeof openRuntime>>;

const say = (o: Opened, line: string) => settle(o.clock, o.runtime.console.execute(line), 50, 60_000);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const identity = (o: Opened) => ({
  lockId: o.runtime.lockId,
  claimed: o.runtime.claimed,
  anchors: o.runtime.anchors.list().map((a) => `${hex(a.kid)} ${a.role} ${a.name} ${hex(a.key)}`),
});
const unmoved = (o: Opened) => {
  expect(o.hardware.sim!.mechanism.solenoid.pulses).toHaveLength(0);
  expect(o.hardware.sim!.mechanism.solenoid.isEnergised()).toBe(false);
};

const evilEd = hex(generateKeyPair('EdDSA').publicKey.raw);
const evilP256 = hex(generateKeyPair('ES256').publicKey.raw);
const PROVISIONING = [
  'provision lock-id lock-evil',
  `provision anchor add 02 EdDSA ${evilEd} issuer evil`,
  `provision anchor add 0b ES256 ${evilP256} owner mallory`,
  'provision anchor remove 01',
  'provision anchor remove 0a',
  'mqtt password new',
  `provision claim 0b ES256 ${evilP256} mallory`,
];
/** Every command that exists, with arguments that pass its checks. */
const EVERYTHING = [
  'help',
  'status',
  'time',
  'audit 50',
  'provision show',
  'sim latch push',
  'sim fault jammed',
  'sim fault stuck',
  'sim fault clear',
  'sim motion shake 2000',
  'sim motion carry 2000',
  'sim motion tilt 60',
  'sim motion bump',
  'alarm clear',
];

describe('attack catalogue: the serial console', () => {
  it('after the claim every provisioning command is refused (ERR_CONSOLE_CLOSED) and the identity is unchanged', async () => {
    const o = await openRuntime(true);
    const before = identity(o);
    expect(before.claimed).toBe(true);
    for (const line of PROVISIONING) {
      const r = await say(o, line);
      expect({ line, ok: r.ok, code: r.code }).toEqual({ line, ok: false, code: 'ERR_CONSOLE_CLOSED' });
    }
    expect(identity(o)).toEqual(before);
    unmoved(o);
    await o.runtime.close();
  });

  it('before and after the claim no console command moves the solenoid', async () => {
    for (const claimed of [false, true]) {
      const o = await openRuntime(claimed);
      for (const line of EVERYTHING) {
        await say(o, line);
        o.clock.advance(500);
      }
      unmoved(o);
      expect(o.runtime.stateMachine.reportedState).not.toBe('unlocked');
      await o.runtime.close();
    }
  });

  it('before the claim malformed lines (control characters, non-ASCII, unknown words, bad arguments) are refused and change nothing', async () => {
    const o = await openRuntime(false);
    const before = identity(o);
    const refusals: [string, string][] = [
      ['provision lock-id lock\u0007x', 'ERR_CONSOLE_USAGE'],
      ['provision lock-id l\u00f6ck', 'ERR_CONSOLE_USAGE'],
      ['provision lock-id Bad_Id', 'ERR_CONSOLE_USAGE'],
      ['provision anchor add 01 EdDSA zz issuer x', 'ERR_CONSOLE_USAGE'],
      [`provision anchor add 02 ES256 02${'ff'.repeat(32)} issuer x`, 'ERR_CONSOLE_USAGE'],
      ['provision claim 0a ES256', 'ERR_CONSOLE_USAGE'],
      ['open', 'ERR_CONSOLE_UNKNOWN_COMMAND'],
      ['sim solenoid pulse', 'ERR_CONSOLE_UNKNOWN_COMMAND'],
    ];
    for (const [line, code] of refusals) {
      const r = await say(o, line);
      expect({ line, ok: r.ok, code: r.code }).toEqual({ line, ok: false, code });
    }
    // A claim needs the lock id and an issuer first.
    expect((await say(o, `provision claim 0b ES256 ${evilP256} mallory`)).code).toBe('ERR_CONSOLE_USAGE');
    expect(identity(o)).toEqual(before);
    unmoved(o);
    await o.runtime.close();
  });

  it('on real hardware the simulation commands are refused (ERR_CONSOLE_SIMULATION_ONLY)', async () => {
    const o = await openRuntime(true, false);
    for (const line of ['sim latch push', 'sim fault stuck', 'sim motion shake', 'alarm clear']) {
      const r = await say(o, line);
      expect({ line, code: r.code }).toEqual({ line, code: 'ERR_CONSOLE_SIMULATION_ONLY' });
    }
    unmoved(o);
    await o.runtime.close();
  });
});
