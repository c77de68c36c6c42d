// The bridge's side of remote commands ([TANDEM-RCMD-7], [TANDEM-RCMD-3], [TANDEM-RCMD-4]): what it sends for
// Home Assistant's LOCK, and every case in which it sends nothing.
import { describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { Command } from '../../protocol/src/pop.js';
import { verifyRemoteCommand } from '../../protocol/src/remote-command.js';
import { issuerFromKey } from '../src/issuer.js';
import type { LogEntry } from '../src/log.js';
import { RemoteCommander, haCommandLockId } from '../src/remote-command.js';

const issuer = issuerFromKey(generateKeyPair('EdDSA'));
const NOW_MS = 1_800_000_000_500;

function commander(
  o: { known?: string[]; remote?: string[]; failSettings?: boolean; owns?: (l: string) => boolean } = {},
) {
  const sent: { topic: string; payload: Uint8Array }[] = [];
  const logs: LogEntry[] = [];
  const counters = new Map<string, number>();
  const c = new RemoteCommander({
    store: {
      getLock: (id) =>
        Promise.resolve((o.known ?? ['lock-7']).includes(id) ? ({ lockId: id } as never) : undefined),
      getLockSettings: (id) =>
        o.failSettings
          ? Promise.reject(new Error('database unavailable'))
          : Promise.resolve({ remoteLocking: (o.remote ?? ['lock-7']).includes(id) }),
      nextRemoteCommandSequence: (id) => {
        const n = (counters.get(id) ?? 0) + 1;
        counters.set(id, n);
        return Promise.resolve(n);
      },
    },
    issuer: () => issuer,
    publish: (topic, payload) => {
      sent.push({ topic, payload });
      return Promise.resolve();
    },
    now: () => NOW_MS,
    log: (e) => logs.push(e),
    ...(o.owns === undefined ? {} : { owns: o.owns }),
  });
  return { c, sent, logs };
}

const enc = (s: string) => new TextEncoder().encode(s);

describe('RemoteCommander', () => {
  it('LOCK with remote locking on: one signed command per press, sequence 1, 2, window ±30 s, not retained', async () => {
    const { c, sent } = commander();
    expect(await c.handle('tandem/ha/lock-7/set', enc('LOCK'))).toMatchObject({
      outcome: 'sent',
      sequence: 1,
    });
    expect(await c.handle('tandem/ha/lock-7/set', enc('LOCK'))).toMatchObject({
      outcome: 'sent',
      sequence: 2,
    });
    expect(sent.map((s) => s.topic)).toEqual([
      'tandem/v1/lock/lock-7/command',
      'tandem/v1/lock/lock-7/command',
    ]);
    const cmd = verifyRemoteCommand(sent[1]!.payload, () => issuer.key.publicKey, 'lock-7');
    expect(cmd).toEqual({
      lockId: 'lock-7',
      command: Command.LOCK,
      sequence: 2,
      issuedAt: 1_800_000_000 - 30,
      expiry: 1_800_000_000 + 30,
    });
  });

  const refused: [string, string, string, Parameters<typeof commander>[0], RegExp][] = [
    ['UNLOCK', 'tandem/ha/lock-7/set', 'UNLOCK', {}, /UNLOCK is never sent to a lock/],
    ['lowercase lock', 'tandem/ha/lock-7/set', 'lock', {}, /payload "lock" is not LOCK/],
    ['a long payload', 'tandem/ha/lock-7/set', 'LOCK'.repeat(10), {}, /payload 40 bytes is not LOCK/],
    ['remote locking off', 'tandem/ha/lock-7/set', 'LOCK', { remote: [] }, /remote locking is off/],
    ['an unknown lock', 'tandem/ha/lock-9/set', 'LOCK', { remote: ['lock-9'] }, /does not know this lock/],
    [
      'settings unreadable',
      'tandem/ha/lock-7/set',
      'LOCK',
      { failSettings: true },
      /not sent: database unavailable/,
    ],
    ['a topic without a lock id', 'tandem/ha/Lock_7/set', 'LOCK', {}, /does not name a lock id/],
  ];
  for (const [title, topic, payload, o, reason] of refused) {
    it(`refuses ${title}, logs why and publishes nothing`, async () => {
      const { c, sent, logs } = commander(o);
      const r = await c.handle(topic, enc(payload));
      expect(r?.outcome).toBe('refused');
      expect((r as { reason: string }).reason).toMatch(reason);
      expect(sent).toEqual([]);
      expect(logs.some((e) => e.event === 'refused remote command' && reason.test(e.reason ?? ''))).toBe(
        true,
      );
    });
  }

  it('refuses a retained press: it would come back at every subscription', async () => {
    const { c, sent } = commander();
    const r = await c.handle('tandem/ha/lock-7/set', enc('LOCK'), { retained: true });
    expect(r).toMatchObject({
      outcome: 'refused',
      reason: 'a retained message is an old press, not one made now',
    });
    expect(sent).toEqual([]);
  });

  it('ignores a lock another bridge instance owns', async () => {
    const { c, sent } = commander({ owns: () => false });
    expect(await c.handle('tandem/ha/lock-7/set', enc('LOCK'))).toBeUndefined();
    expect(sent).toEqual([]);
  });

  it('reads lock ids from command topics only', () => {
    expect(haCommandLockId('tandem/ha/lock-7/set')).toBe('lock-7');
    for (const t of ['tandem/ha/lock-7/state', 'tandem/ha/+/set', 'tandem/ha//set', 'tandem/ha/a/b/set']) {
      expect(haCommandLockId(t)).toBeUndefined();
    }
  });
});
