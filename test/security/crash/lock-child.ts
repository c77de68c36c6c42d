/**
 * The lock process of the crash runs: the same LockRuntime that `tandem lock --simulate` runs (cli/lock.ts:
 * simulated hardware, the system clock, the stores on the real filesystem in `--data-dir`), driven over a line
 * protocol on stdin instead of BLE, so that a campaign can make hundreds of unlocks, revocation updates and
 * alerts and kill it with SIGKILL at any moment. Every answer is written after the operation resolved, so
 * whatever the parent has read was acknowledged as durable by the runtime.
 *
 *     BOOT <json>              at start: the facts the parent checks after a kill (see `facts`)
 *     <id> c <console line>    -> <id> <json {ok, code, text}>     the real console interpreter
 *     <id> ch                  -> <id> <json {nonce}>              a challenge (for a beacon or a request)
 *     <id> b <hex>             -> <id> <json {status}>             a time beacon
 *     <id> r <hex>             -> <id> <json {status, acted}>      a request
 *     <id> v <hex>             -> <id> <json {status, version}>    a revocation update
 *     <id> st                  -> <id> <json facts>
 */
import { createInterface } from 'node:readline';
import { SystemClock } from '../../../hardware/src/clock.js';
import { DEFAULT_CONFIG } from '../../../firmware-sim/src/config/lock-config.js';
import { simulatedHardware } from '../../../firmware-sim/src/runtime/hardware.js';
import { LockRuntime } from '../../../firmware-sim/src/runtime/lock-runtime.js';

const dataDir = process.argv[2];
if (dataDir === undefined) {
  process.stderr.write('usage: lock-child.ts <data-dir>\n');
  process.exit(2);
}
const clock = new SystemClock();
const config = {
  ...DEFAULT_CONFIG,
  dataDir,
  behaviour: { ...DEFAULT_CONFIG.behaviour, pulseMs: 50, timeZone: 'UTC' },
};
const hardware = simulatedHardware(clock, config.hardware);
const runtime = await LockRuntime.open({
  config,
  hardware: { ...hardware, console: undefined },
  clock,
  simulated: true,
});
const sim = hardware.sim!;

/** What survives a kill and what the parent checks at the next boot. */
function facts() {
  const audit = runtime.stores.audit.records();
  return {
    lockId: runtime.lockId ?? null,
    corrupt: runtime.corrupt,
    state: runtime.stateMachine.reportedState,
    energised: sim.mechanism.solenoid.isEnergised(),
    outboxSeqs: runtime.stores.outbox.peek(100_000).map((e) => e.seq),
    outboxAckedThrough: runtime.stores.outbox.ackedThrough,
    auditLastSeq: audit.at(-1)?.seq ?? 0,
    auditCount: audit.length,
    revocationVersion: runtime.stores.revocations.version,
    pulses: sim.mechanism.solenoid.pulses.length,
    alerts: runtime.stores.outbox.peek(100_000).filter((e) => e.kind === 'alert').length,
  };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));
const reply = (id: string, o: unknown) => process.stdout.write(`${id} ${JSON.stringify(o)}\n`);

process.stdout.write(`BOOT ${JSON.stringify(facts())}\n`);

let chain = Promise.resolve();
createInterface({ input: process.stdin }).on('line', (line) => {
  chain = chain.then(async () => {
    const [id, verb, ...rest] = line.split(' ');
    const arg = rest.join(' ');
    const authority = runtime.authority;
    try {
      if (verb === 'c') {
        const r = await runtime.console.execute(arg);
        reply(id!, r);
      } else if (verb === 'st') {
        reply(id!, facts());
      } else if (authority === undefined) {
        reply(id!, { error: 'not provisioned' });
      } else if (verb === 'ch') {
        reply(id!, { nonce: hex(authority.issueChallenge({ peer: 'crash' }).nonce) });
      } else if (verb === 'b') {
        reply(id!, { status: (await authority.applyTimeBeacon(bytes(arg), { peer: 'crash' })).status });
      } else if (verb === 'r') {
        const r = await authority.handleRequest(bytes(arg), { peer: 'crash' });
        reply(id!, { status: r.status, acted: r.mayHaveActed });
      } else if (verb === 'v') {
        const r = await authority.applyRevocationUpdate(bytes(arg), { peer: 'crash' });
        reply(id!, { status: r.status, version: r.version ?? null });
      } else {
        reply(id!, { error: `unknown verb ${verb}` });
      }
    } catch (e) {
      reply(id!, { error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
    }
  });
});
