// The serial console interpreter: one reply per line, coded refusals, provisioning closed once claimed.
import { Duplex, PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { StreamConsole } from '../../hardware/src/serial/stream-console.js';
import { ARG, ConsoleInterpreter } from '../src/console/console-interpreter.js';
import type { ConsoleCommand } from '../src/console/console-interpreter.js';

function setup(simulated = false) {
  const state = { claimed: false, lockId: '', pokes: 0 };
  const commands: ConsoleCommand[] = [
    {
      name: 'status',
      args: [],
      help: 'show status',
      access: 'always',
      run: () => `lock-id=${state.lockId || '-'}`,
    },
    {
      name: 'provision lock-id',
      args: [ARG.lockId],
      help: 'set the lock id',
      access: 'unclaimed',
      run: ([id]) => {
        state.lockId = id!;
        return `lock-id=${id}`;
      },
    },
    {
      name: 'provision claim',
      args: [],
      help: 'claim',
      access: 'unclaimed',
      run: () => ((state.claimed = true), 'claimed'),
    },
    {
      name: 'sim poke',
      args: [ARG.uint('n', 9)],
      help: 'poke',
      access: 'simulation',
      run: ([n]) => ((state.pokes += Number(n)), 'poked'),
    },
    {
      name: 'fail',
      args: [],
      help: 'fails',
      access: 'always',
      run: () => {
        throw Object.assign(new Error('disk on fire'), { code: 'ERR_STORE_IO' });
      },
    },
  ];
  return { state, console: new ConsoleInterpreter(commands, { isClaimed: () => state.claimed, simulated }) };
}

describe('console interpreter', () => {
  it('runs commands and checks each argument', async () => {
    const { state, console: c } = setup();
    expect(await c.execute('provision lock-id lock-7f3a')).toEqual({ ok: true, text: 'lock-id=lock-7f3a' });
    expect(state.lockId).toBe('lock-7f3a');
    expect(await c.execute('provision lock-id Lock_7')).toEqual({
      ok: false,
      code: 'ERR_CONSOLE_USAGE',
      text: '<lock-id> must be a lock id: a-z, 0-9 and -, at most 32, e.g. lock-7f3a',
    });
    expect(await c.execute('provision lock-id a b')).toMatchObject({
      code: 'ERR_CONSOLE_USAGE',
      text: 'usage: provision lock-id <lock-id>',
    });
    expect(state.lockId).toBe('lock-7f3a');
  });

  it('closes provisioning once the lock is claimed', async () => {
    const { state, console: c } = setup();
    await c.execute('provision claim');
    expect(await c.execute('provision lock-id lock-other')).toMatchObject({
      ok: false,
      code: 'ERR_CONSOLE_CLOSED',
    });
    expect(state.lockId).toBe('');
    expect(await c.execute('status')).toMatchObject({ ok: true });
  });

  it('refuses simulation commands on real hardware', async () => {
    const { state, console: c } = setup(false);
    expect(await c.execute('sim poke 3')).toMatchObject({ ok: false, code: 'ERR_CONSOLE_SIMULATION_ONLY' });
    expect(state.pokes).toBe(0);
    const sim = setup(true);
    expect(await sim.console.execute('sim poke 3')).toMatchObject({ ok: true });
    expect(sim.state.pokes).toBe(3);
  });

  it('refuses unknown commands, control characters and non-ASCII', async () => {
    const { console: c } = setup();
    expect(await c.execute('reboot now')).toMatchObject({ code: 'ERR_CONSOLE_UNKNOWN_COMMAND' });
    expect(await c.execute('status\x1b[2J')).toMatchObject({ code: 'ERR_CONSOLE_USAGE' });
    expect(await c.execute('provision lock-id löck')).toMatchObject({ code: 'ERR_CONSOLE_USAGE' });
    expect(await c.execute('   ')).toEqual({ ok: true, text: '' });
  });

  it('a failing handler becomes a coded reply, not a crash', async () => {
    const { console: c } = setup();
    expect(await c.execute('fail')).toEqual({
      ok: false,
      code: 'ERR_CONSOLE_FAILED',
      text: 'ERR_STORE_IO: disk on fire',
    });
  });

  it('help lists commands with their usage, hiding simulation commands on hardware', async () => {
    const { console: c } = setup(false);
    const help = (await c.execute('help')).text;
    expect(help).toMatch(/provision lock-id <lock-id>/);
    expect(help).not.toMatch(/sim poke/);
  });

  it('serves a stream console: one reply line per input line, in order', async () => {
    const { console: c } = setup();
    const input = new PassThrough();
    const output = new PassThrough();
    const stream = new StreamConsole({ stream: Duplex.from({ readable: input, writable: output }) });
    await stream.open();
    const chunks: string[] = [];
    output.on('data', (d: Buffer) => chunks.push(d.toString()));
    c.attach(stream);
    input.write('provision lock-id lock-1\r\nbogus\nstatus\n');
    for (let i = 0; i < 50 && chunks.join('').split('\r\n').length < 4; i++)
      await new Promise((r) => setImmediate(r));
    expect(chunks.join('').split('\r\n').slice(0, 3)).toEqual([
      'OK lock-id=lock-1',
      'ERR ERR_CONSOLE_UNKNOWN_COMMAND unknown command "bogus"; type help',
      'OK lock-id=lock-1',
    ]);
    await stream.close();
  });
});
