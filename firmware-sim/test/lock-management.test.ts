/** Management commands ([TANDEM-POP-5] 16-22) and safe mode, each checked like an unlock (scope `manage`). */
import { describe, expect, it } from 'vitest';
import type { CborValue } from '../../protocol/src/cbor.js';
import { decodeStrict, encode } from '../../protocol/src/cbor.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import { Command } from '../../protocol/src/pop.js';
import { Status } from '../../protocol/src/status.js';
import { mintToken } from '../../protocol/src/token.js';
import { decodeAuditEntry, verifyAuditTrail } from '../src/lock/audit.js';
import type { AuditRecord } from '../src/store/audit-log.js';
import type { LockConfig } from '../src/lock/management.js';
import { DIR, LOCK, NOW, claims, makeLock } from './lock-harness.js';

const args = (entries: [number, CborValue][]): Uint8Array => encode(new Map<number, CborValue>(entries));

describe('management commands', () => {
  it('ADD_OWNER_KEY with manage scope: the new owner key then signs offline shares', async () => {
    const lock = await makeLock();
    const phone2 = generateKeyPair('ES256');
    const add = args([
      [1, Uint8Array.of(0x0b)],
      [2, -7],
      [3, phone2.publicKey.raw],
      [5, 'adam'],
    ]);
    const r = await lock.send(
      lock.request({
        chain: [lock.ownerToken()],
        holder: lock.w.owner,
        command: Command.ADD_OWNER_KEY,
        args: add,
      }),
    );
    expect(r.status).toBe(Status.OK);
    expect(r.mayHaveActed).toBe(true);
    expect(lock.pulses).toHaveLength(0);
    expect(lock.anchors.has(Uint8Array.of(0x0b))).toBe(true);
    const share = mintToken(
      claims(lock.w, { iss: 'adam', sub: 'adam', scope: ['unlock'], schedule: undefined }),
      phone2,
      Uint8Array.of(0x0b),
    );
    expect((await lock.send(lock.request({ chain: [share] }))).status).toBe(Status.OK);
    // Persisted: a reboot still knows the key.
    const again = await makeLock({ fs: lock.fs.reboot({ tornWrites: 'lose' }), world: lock.w });
    expect(again.anchors.has(Uint8Array.of(0x0b))).toBe(true);
  });

  it('refused without manage scope: SCOPE_DENIED, nothing changes, nothing moves', async () => {
    const lock = await makeLock();
    const add = args([
      [1, Uint8Array.of(0x0c)],
      [2, -7],
      [3, generateKeyPair('ES256').publicKey.raw],
      [5, 'mallory'],
    ]);
    const r = await lock.send(
      lock.request({ chain: [lock.token()], command: Command.ADD_OWNER_KEY, args: add }),
    );
    expect(r.status).toBe(Status.SCOPE_DENIED);
    expect(r.mayHaveActed).toBe(false);
    expect(lock.anchors.has(Uint8Array.of(0x0c))).toBe(false);
    expect(lock.pulses).toHaveLength(0);
  });

  it('strict args: wrong types, unknown keys, bad keys are MALFORMED', async () => {
    const lock = await makeLock();
    const owner = (command: Command, a: Uint8Array) =>
      lock.send(lock.request({ chain: [lock.ownerToken()], holder: lock.w.owner, command, args: a }));
    const bad = [
      [Command.ADD_ANCHOR, args([[1, Uint8Array.of(1)]])],
      [
        Command.ADD_ANCHOR,
        args([
          [1, Uint8Array.of(0x0d)],
          [2, -8],
          [3, new Uint8Array(32).fill(0xff)],
          [4, 'king'],
          [5, 'x'],
        ]),
      ],
      [
        Command.ADD_OWNER_KEY,
        args([
          [1, Uint8Array.of(0x0d)],
          [2, -7],
          [3, new Uint8Array(33)],
          [5, 'x'],
        ]),
      ],
      [Command.REMOVE_ANCHOR, args([[1, 'kid']])],
      [Command.SET_CONFIG, args([[99, 1]])],
      [Command.SET_CONFIG, args([[3, 'Mars/Olympus_Mons']])],
      [Command.SET_CONFIG, args([[1, 501]])], // above the coil's rated 500 ms
      [Command.SET_CONFIG, Uint8Array.of(0xa0)],
      [Command.READ_AUDIT, args([[2, 1000]])],
      [Command.CLEAR_LOCKOUT, Uint8Array.of(0x00)],
    ] as const;
    for (const [command, a] of bad) {
      const r = await owner(command, a);
      expect(Status[r.status], `${Command[command]} ${Buffer.from(a).toString('hex')}`).toBe('MALFORMED');
      lock.clock.advance(60_000); // stay clear of the rate limit
    }
    expect(lock.anchors.list()).toHaveLength(2);
  });

  it('REMOVE_ANCHOR cannot remove the last issuer; after rotation the old issuer and its cached chains are gone', async () => {
    const lock = await makeLock();
    const owner = (command: Command, a: Uint8Array) =>
      lock.send(
        lock.request({ chain: [lock.ownerToken()], holder: lock.w.owner, command, args: a, peer: 'owner' }),
        'owner',
      );
    const issuerToken = lock.token();
    expect((await lock.send(lock.request({ chain: [issuerToken] }))).status).toBe(Status.OK);
    await lock.relock();
    const last = await owner(Command.REMOVE_ANCHOR, args([[1, lock.w.issuerKid]]));
    expect(last.status).toBe(Status.MALFORMED);
    expect(last.message).toMatch(/last issuer/);
    const ownerAsIssuer = await owner(Command.REMOVE_OWNER_KEY, args([[1, lock.w.issuerKid]]));
    expect(ownerAsIssuer.status).toBe(Status.MALFORMED);
    const issuer2 = generateKeyPair('EdDSA');
    const add = args([
      [1, Uint8Array.of(0x02)],
      [2, -8],
      [3, issuer2.publicKey.raw],
      [4, 'issuer'],
      [5, 'tandem'],
    ]);
    expect((await owner(Command.ADD_ANCHOR, add)).status).toBe(Status.OK);
    expect((await owner(Command.REMOVE_ANCHOR, args([[1, lock.w.issuerKid]]))).status).toBe(Status.OK);
    expect((await lock.send(lock.request({ chain: [issuerToken], byRef: true }))).status).toBe(
      Status.TOKEN_REF_UNKNOWN,
    );
    expect((await lock.send(lock.request({ chain: [issuerToken] }))).status).toBe(Status.UNKNOWN_SIGNER);
    const fresh = mintToken(claims(lock.w), issuer2, Uint8Array.of(0x02));
    expect((await lock.send(lock.request({ chain: [fresh] }))).status).toBe(Status.OK);
    expect(lock.pulses).toHaveLength(2);
  });

  it('SET_CONFIG: whitelisted keys with ranges, persisted, applied (pulse, time zone of schedules, theft thresholds)', async () => {
    const lock = await makeLock();
    const seen: LockConfig[] = [];
    lock.authority.onEvent((e) => {
      if (e.type === 'config') seen.push(e.config);
    });
    const set = args([
      [1, 120],
      [3, 'Pacific/Kiritimati'],
      [16, 5500],
    ]);
    const r = await lock.send(
      lock.request({
        chain: [lock.ownerToken()],
        holder: lock.w.owner,
        command: Command.SET_CONFIG,
        args: set,
      }),
    );
    expect(r.status).toBe(Status.OK);
    expect(seen[0]).toMatchObject({ pulseMs: 120, timeZone: 'Pacific/Kiritimati', theftBumpThreshold: 5.5 });
    // 11:06 UTC on a Wednesday is 01:06 on Thursday in Kiritimati (UTC+14): outside 07:00-20:00.
    expect((await lock.send(lock.request({ chain: [lock.token()] }))).status).toBe(Status.OUTSIDE_SCHEDULE);
    expect((await lock.send(lock.request({ chain: [lock.token({ schedule: undefined })] }))).status).toBe(
      Status.OK,
    );
    expect(lock.pulses.at(-1)!.requestedMs).toBe(120);
    const again = await makeLock({ fs: lock.fs.reboot({ tornWrites: 'lose' }), world: lock.w });
    expect(again.authority.config).toMatchObject({ pulseMs: 120, timeZone: 'Pacific/Kiritimati' });
  });

  it('READ_AUDIT returns the signed records from a sequence number, bounded, which the owner verifies', async () => {
    const lock = await makeLock();
    await lock.send(Uint8Array.of(0xff));
    await lock.send(lock.request({ chain: [lock.token()], command: Command.STATUS }));
    const read = async (from: number, max: number): Promise<AuditRecord[]> => {
      const r = await lock.send(
        lock.request({
          chain: [lock.ownerToken()],
          holder: lock.w.owner,
          command: Command.READ_AUDIT,
          args: args([
            [1, from],
            [2, max],
          ]),
        }),
      );
      expect(r.status).toBe(Status.OK);
      expect(r.mayHaveActed).toBe(false);
      // [TANDEM-AUDIT-3]: [seq, signed audit record] pairs.
      const pairs = decodeStrict(r.data!, { maxBytes: 65536, maxDepth: 3, maxItems: 128 }) as CborValue[][];
      return pairs.map(([seq, payload]) => ({ seq: seq as number, payload: payload as Uint8Array }));
    };
    const first = await read(1, 2);
    expect(first.map((x) => x.seq)).toEqual([1, 2]);
    expect(decodeAuditEntry(first[0]!.payload)).toMatchObject({ kind: 'event', event: 'boot' });
    expect(decodeAuditEntry(first[1]!.payload).kind).toBe('time');
    const rest = await read(3, 32);
    expect(rest.map((x) => x.seq)).toEqual([3, 4, 5]);
    const all = [...first, ...rest];
    const key = lock.device.publicKey;
    expect(verifyAuditTrail(all, key, LOCK, { previousHash: new Uint8Array(32), nextSeq: 1 })).toMatchObject({
      ok: true,
      lastSeq: 5,
    });
    // A dropped, altered or foreign record is found.
    expect(verifyAuditTrail([all[0]!, all[2]!], key, LOCK)).toEqual({
      ok: false,
      index: 1,
      reason: 'seq-gap',
    });
    const flipped = all[3]!.payload.slice();
    flipped[flipped.length - 1]! ^= 1;
    expect(verifyAuditTrail([all[2]!, { seq: 4, payload: flipped }], key, LOCK)).toEqual({
      ok: false,
      index: 1,
      reason: 'signature',
    });
    expect(verifyAuditTrail(all, generateKeyPair('EdDSA').publicKey, LOCK)).toMatchObject({
      ok: false,
      index: 0,
      reason: 'signature',
    });
    expect(verifyAuditTrail([all[1]!, { seq: 3, payload: all[3]!.payload }], key, LOCK)).toEqual({
      ok: false,
      index: 1,
      reason: 'prev-hash',
    });
  });
});

describe('safe mode', () => {
  it('a corrupt store at start: locked, unlocks refused with SAFE_MODE, only the owner manages; CLEAR_LOCKOUT leaves it', async () => {
    const first = await makeLock();
    const token = first.token({ maxUses: 3 });
    // Two counted uses: a bad first record followed by a good one cannot be a torn tail, so it is corrupt.
    for (let i = 0; i < 2; i++) {
      expect((await first.send(first.request({ chain: [token] }))).status).toBe(Status.OK);
      await first.relock();
    }
    const fs = first.fs.reboot({ tornWrites: 'lose' });
    fs.corruptByte(`${DIR}/use-counters.log`, 20);
    const lock = await makeLock({ fs, world: first.w, beaconTime: NOW + 60 });
    expect(lock.corrupt).toEqual(['use-counters.log']);
    expect(lock.sm.state).toBe('safe-mode');
    expect(lock.authority.safeModeReasons).toEqual(['use-counters.log']);
    expect(fs.peekFile(`${DIR}/use-counters.log.corrupt`)).toBeDefined();
    const rider = await lock.send(lock.request({ chain: [lock.token()] }));
    expect(rider.status).toBe(Status.SAFE_MODE);
    expect(rider.state).toBe('safe-mode');
    // Management by a non-owner chain (issuer token with manage) is refused too.
    const issuerManage = await lock.send(
      lock.request({
        chain: [lock.token({ scope: ['manage'] })],
        command: Command.CLEAR_LOCKOUT,
        peer: 'cloud',
      }),
      'cloud',
    );
    expect(issuerManage.status).toBe(Status.SAFE_MODE);
    expect(lock.pulses).toHaveLength(0);
    const owner = await lock.send(
      lock.request({
        chain: [lock.ownerToken()],
        holder: lock.w.owner,
        command: Command.CLEAR_LOCKOUT,
        peer: 'owner',
      }),
      'owner',
    );
    expect(owner.status).toBe(Status.OK);
    expect(lock.sm.state).toBe('locked');
    expect((await lock.send(lock.request({ chain: [lock.token()], peer: 'rider' }), 'rider')).status).toBe(
      Status.OK,
    );
    expect(lock.pulses).toHaveLength(1);
    const events = lock.stores.audit.records().map((r) => decodeAuditEntry(r.payload));
    expect(events.some((e) => e.kind === 'event' && e.event === 'safe-mode')).toBe(true);
  });
});
