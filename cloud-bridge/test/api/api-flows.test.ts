/**
 * The sharing API's flows on a whole cloud: Adam claims his lock with its receipt, shares it with Bianca,
 * Bianca's phone gets a delegated token at Userinfo, Adam revokes and the next signed revocation update is
 * stored and published retained on the lock's topic, Userinfo yields nothing for the share any more, and a
 * lost phone is revoked by holder id. Every answer is validated against the OpenAPI document.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../../protocol/src/keys.js';
import {
  AUDIT_GENESIS_HASH,
  auditRecordHash,
  encodeAlert,
  encodeAuditRecord,
  topicFor,
} from '../../../protocol/src/mqtt.js';
import { Command } from '../../../protocol/src/pop.js';
import { encodeAnchorAck } from '../../../protocol/src/anchor-update.js';
import { Status } from '../../../protocol/src/status.js';
import { holderRevocationId, verifyRevocationUpdate } from '../../../protocol/src/revocation.js';
import { DELEGATIONS_CLAIM, shareCti } from '../../src/oidc/delegations.js';
import type { ApiWorld } from './fixture.js';
import { call, phoneJwk, registeredLock, startApiWorld, tokenFor } from './fixture.js';

let w: ApiWorld;
let adam: string;
let bianca: { token: string; grantId: string };
const LOCK = 'lock-flow';
let lock: Awaited<ReturnType<typeof registeredLock>>;
let l2: Awaited<ReturnType<typeof registeredLock>>;

beforeAll(async () => {
  w = await startApiWorld();
  adam = (await tokenFor(w.cloud, 'adam')).token;
  bianca = await tokenFor(w.cloud, 'bianca');
  lock = await registeredLock(w.cloud, LOCK, 'adam');
}, 60_000);
afterAll(async () => {
  await w?.close();
});

const inTwoHours = (): string => new Date(Date.now() + 2 * 3600_000).toISOString();

async function delegationsOf(token: string): Promise<Record<string, { share: string; lock: string }[]>> {
  const res = await fetch(`${w.cloud.issuerUrl!}/me`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  const body = (await res.json()) as Record<string, unknown>;
  return (body[DELEGATIONS_CLAIM] ?? {}) as Record<string, { share: string; lock: string }[]>;
}

/** The retained revocation update on the lock's topic, read as the lock would (its own MQTT credentials). */
async function retainedRevocation(version: number): Promise<number> {
  const client = await mqtt.connectAsync(w.cloud.mqttUrl, {
    username: LOCK,
    password: lock.password,
    reconnectPeriod: 0,
  });
  try {
    const got = new Promise<number>((resolve, reject) => {
      client.on('message', (_t, payload) => {
        try {
          const u = verifyRevocationUpdate(new Uint8Array(payload), () => w.cloud.issuer.key.publicKey, LOCK);
          if (u.version >= version) resolve(u.version);
        } catch (e) {
          reject(e as Error);
        }
      });
    });
    await client.subscribeAsync(topicFor('revocation', LOCK), { qos: 1 });
    return await got;
  } finally {
    await client.endAsync();
  }
}

describe('sharing API flows', () => {
  it('serves the issuer at the root and the API under /api/v1 on one listener', async () => {
    const res = await fetch(`${w.cloud.issuerUrl!}/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { issuer: string }).issuer).toBe(w.cloud.issuerUrl);
    expect((await fetch(`${w.cloud.httpUrl!}/dashboard/`)).status).toBe(404);
    expect((await call(w.base, 'GET', '/locks', { token: adam })).status).toBe(200);
  });

  it('claims a lock with its receipt, once; another owner gets 409, a forged receipt 422', async () => {
    const first = await call(w.base, 'POST', '/locks', { token: adam, body: { receipt: lock.receipt } });
    expect(first.status).toBe(201);
    expect(first.body.lock).toMatchObject({
      id: LOCK,
      owner: 'adam',
      state: null,
      revocation: { version: 0 },
    });
    const again = await call(w.base, 'POST', '/locks', { token: adam, body: { receipt: lock.receipt } });
    expect(again.status).toBe(201);
    // Carol's own receipt for the same lock (as if the console had been reset): the lock stays Adam's.
    const carol = (await tokenFor(w.cloud, 'carol')).token;
    const { encodeClaimReceipt } = await import('../../../protocol/src/claim-receipt.js');
    const carolReceipt = encodeClaimReceipt(
      {
        lockId: LOCK,
        owner: 'carol',
        ownerKey: generateKeyPair('ES256').publicKey,
        ownerKid: Uint8Array.of(1),
        claimedAt: 0,
      },
      lock.device,
    );
    const stolen = await call(w.base, 'POST', '/locks', {
      token: carol,
      body: { receipt: Buffer.from(carolReceipt).toString('base64url') },
    });
    expect(stolen.status).toBe(409);
    expect((await w.cloud.store.getClaim(LOCK))?.owner).toBe('adam');
    // Adam's receipt presented by Carol names another owner.
    const wrongOwner = await call(w.base, 'POST', '/locks', {
      token: carol,
      body: { receipt: lock.receipt },
    });
    expect(wrongOwner.status).toBe(422);
    // Signed by another key than the registered device key.
    const forged = encodeClaimReceipt(
      {
        lockId: LOCK,
        owner: 'carol',
        ownerKey: generateKeyPair('ES256').publicKey,
        ownerKid: Uint8Array.of(1),
        claimedAt: 0,
      },
      generateKeyPair('EdDSA'),
    );
    const f = await call(w.base, 'POST', '/locks', {
      token: carol,
      body: { receipt: Buffer.from(forged).toString('base64url') },
    });
    expect(f.status).toBe(422);
    expect(f.body.error).toBe('ERR_API_RECEIPT');
    const list = await call(w.base, 'GET', '/locks', { token: adam });
    expect((list.body.locks as { id: string }[]).map((l) => l.id)).toEqual([LOCK]);
    expect((await call(w.base, 'GET', '/locks', { token: carol })).body.locks).toEqual([]);
  });

  it('shares, hands Bianca a token at Userinfo, revokes, publishes the update and stops the tokens', async () => {
    const phone = generateKeyPair('ES256');
    const reg = await call(w.base, 'POST', '/devices', {
      token: bianca.token,
      body: { key: phoneJwk(phone), name: 'Pixel' },
    });
    expect(reg.status).toBe(201);
    expect(reg.body.device).toMatchObject({ id: bianca.grantId, name: 'Pixel' });

    const made = await call(w.base, 'POST', `/locks/${LOCK}/shares`, {
      token: adam,
      template: '/locks/{lockId}/shares',
      body: {
        rider: 'bianca',
        scope: ['unlock', 'status'],
        notAfter: inTwoHours(),
        schedule: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '08:00', end: '24:00' }],
        maxUses: 3,
      },
    });
    expect(made.status).toBe(201);
    const share = made.body.share as { id: string; schedule: unknown; scope: string[] };
    // An id is typed on the command line (`tandem revoke --share <id>`): never one that starts with '-'.
    expect(share.id).toMatch(/^[0-9a-f]{32}$/);
    expect(share.schedule).toEqual([
      { days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '08:00', end: '24:00' },
    ]);
    expect((await w.cloud.store.getShare(share.id))?.schedule).toEqual([{ days: 31, start: 480, end: 1440 }]);

    expect((await delegationsOf(bianca.token)).adam?.map((d) => d.share)).toEqual([share.id]);
    const mine = await call(w.base, 'GET', '/shares', { token: bianca.token });
    expect((mine.body.shares as { id: string }[]).map((s) => s.id)).toEqual([share.id]);

    const revoked = await call(w.base, 'DELETE', `/shares/${share.id}`, {
      token: adam,
      template: '/shares/{shareId}',
    });
    expect(revoked.status).toBe(200);
    expect(revoked.body.share).toMatchObject({ id: share.id, revoked: true });
    const version = (revoked.body.revocation as { version: number }).version;
    expect(revoked.body.revocation).toEqual({ lock: LOCK, version: 1 });
    const held = await w.cloud.store.getRevocation(LOCK);
    expect(held?.entries.has(Buffer.from(shareCti(share.id)).toString('hex'))).toBe(true);
    expect(await retainedRevocation(version)).toBe(version);
    // Revoked shares never yield a token at Userinfo again.
    expect(await delegationsOf(bianca.token)).toEqual({});
    // Revoking again changes nothing.
    const twice = await call(w.base, 'DELETE', `/shares/${share.id}`, {
      token: adam,
      template: '/shares/{shareId}',
    });
    expect(twice.body.revocation).toEqual({ lock: LOCK, version });

    // The owner sees when the lock acknowledged it ([TANDEM-REV-9]).
    await w.cloud.store.putRevocationAck({
      lockId: LOCK,
      version,
      lockTime: 1,
      receivedAt: 1_800_000_000_000,
    });
    const view = await call(w.base, 'GET', `/locks/${LOCK}`, { token: adam, template: '/locks/{lockId}' });
    expect(view.body.lock).toMatchObject({
      revocation: {
        version,
        acknowledgedVersion: version,
        acknowledgedAt: new Date(1_800_000_000_000).toISOString(),
      },
      lastContact: new Date(1_800_000_000_000).toISOString(),
    });
  });

  it('the owner turns remote locking on and off (PATCH, [TANDEM-HA-2]); Home Assistant discovery follows', async () => {
    const seen: { topic: string; payload: string }[] = [];
    const listener = (packet: { topic: string; payload: Buffer | string }) => {
      if (packet.topic.startsWith('homeassistant/') && packet.topic.includes('tandem_lock-flow/lock/')) {
        seen.push({ topic: packet.topic, payload: packet.payload.toString() });
      }
    };
    w.cloud.broker.aedes.on('publish', listener);
    try {
      const template = '/locks/{lockId}';
      const view = await call(w.base, 'GET', `/locks/${LOCK}`, { token: adam, template });
      expect(view.body.lock).toMatchObject({ remoteLocking: false });
      const on = await call(w.base, 'PATCH', `/locks/${LOCK}`, {
        token: adam,
        template,
        body: { remoteLocking: true },
      });
      expect(on.status).toBe(200);
      expect(on.body.lock).toMatchObject({ id: LOCK, remoteLocking: true });
      expect(await w.cloud.store.getLockSettings(LOCK)).toEqual({ remoteLocking: true });
      // The lock entity (with its command topic) is announced, the sensor form cleared.
      await expect
        .poll(() => seen.find((m) => m.topic === 'homeassistant/lock/tandem_lock-flow/lock/config')?.payload)
        .toContain('"command_topic":"tandem/ha/lock-flow/set"');
      expect(seen).toContainEqual({
        topic: 'homeassistant/sensor/tandem_lock-flow/lock/config',
        payload: '',
      });

      // Refused before anything is stored: another account (404, as a missing lock), a malformed body (400).
      const carol = (await tokenFor(w.cloud, 'carol')).token;
      const other = await call(w.base, 'PATCH', `/locks/${LOCK}`, {
        token: carol,
        template,
        body: { remoteLocking: false },
      });
      expect(other.status).toBe(404);
      for (const body of [{ remoteLocking: 'yes' }, {}, { remoteLocking: false, colour: 'red' }]) {
        const bad = await call(w.base, 'PATCH', `/locks/${LOCK}`, { token: adam, template, body });
        expect(bad.status, JSON.stringify(body)).toBe(400);
      }
      expect(await w.cloud.store.getLockSettings(LOCK)).toEqual({ remoteLocking: true });

      const off = await call(w.base, 'PATCH', `/locks/${LOCK}`, {
        token: adam,
        template,
        body: { remoteLocking: false },
      });
      expect(off.body.lock).toMatchObject({ remoteLocking: false });
      await expect
        .poll(
          () =>
            seen.filter((m) => m.topic === 'homeassistant/lock/tandem_lock-flow/lock/config').at(-1)?.payload,
        )
        .toBe('');
    } finally {
      w.cloud.broker.aedes.removeListener('publish', listener);
    }
  });

  it('revokes every share of a rider on a lock in one update', async () => {
    const body = { rider: 'carol', scope: ['unlock'], notAfter: inTwoHours() };
    const a = await call(w.base, 'POST', `/locks/${LOCK}/shares`, {
      token: adam,
      body,
      template: '/locks/{lockId}/shares',
    });
    const b = await call(w.base, 'POST', `/locks/${LOCK}/shares`, {
      token: adam,
      body: { ...body, mayReshare: true },
      template: '/locks/{lockId}/shares',
    });
    expect((b.body.share as { scope: string[] }).scope).toEqual(['unlock', 'delegate']);
    const before = (await w.cloud.store.getRevocation(LOCK))?.version ?? 0;
    const r = await call(w.base, 'DELETE', `/locks/${LOCK}/riders/carol`, {
      token: adam,
      template: '/locks/{lockId}/riders/{rider}',
    });
    expect(r.status).toBe(200);
    expect(r.body.revocation).toEqual({ lock: LOCK, version: before + 1 });
    expect((r.body.shares as { revoked: boolean }[]).every((s) => s.revoked)).toBe(true);
    const entries = (await w.cloud.store.getRevocation(LOCK))!.entries;
    for (const s of [a, b]) {
      expect(entries.has(Buffer.from(shareCti((s.body.share as { id: string }).id)).toString('hex'))).toBe(
        true,
      );
    }
  });

  it('a lost phone: its login dies and its key is revoked by holder id on the locks of its shares', async () => {
    const phone = generateKeyPair('ES256');
    const lost = await tokenFor(w.cloud, 'bianca');
    const other = await tokenFor(w.cloud, 'bianca');
    await call(w.base, 'POST', '/devices', {
      token: lost.token,
      body: { key: phoneJwk(phone), name: 'lost' },
    });
    await call(w.base, 'POST', '/devices', { token: other.token, body: { key: phoneJwk() } });
    const made = await call(w.base, 'POST', `/locks/${LOCK}/shares`, {
      token: adam,
      body: { rider: 'bianca', scope: ['unlock'], notAfter: inTwoHours() },
      template: '/locks/{lockId}/shares',
    });
    expect(made.status).toBe(201);
    const before = (await w.cloud.store.getRevocation(LOCK))!.version;
    const r = await call(w.base, 'DELETE', `/devices/${encodeURIComponent(lost.grantId)}`, {
      token: other.token,
      template: '/devices/{deviceId}',
    });
    expect(r.status).toBe(200);
    expect(r.body.revocations).toEqual([{ lock: LOCK, version: before + 1 }]);
    const entries = (await w.cloud.store.getRevocation(LOCK))!.entries;
    const exp = entries.get(Buffer.from(holderRevocationId(phone.publicKey)).toString('hex'));
    expect(exp).toBeGreaterThan(Math.floor(Date.now() / 1000));
    expect(exp).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 300);
    // The lost phone's token is dead; the other phone still works and still lists only itself.
    expect((await call(w.base, 'GET', '/devices', { token: lost.token })).status).toBe(401);
    const left = await call(w.base, 'GET', '/devices', { token: other.token });
    expect((left.body.devices as { id: string }[]).map((d) => d.id)).not.toContain(lost.grantId);
    expect((left.body.devices as { id: string }[]).map((d) => d.id)).toContain(other.grantId);
  });

  it('a rider with a live share syncs: records stored, then the audit log, alerts and event stream show them', async () => {
    const t = Math.floor(Date.now() / 1000);
    const alert = encodeAlert(
      { lockId: LOCK, sequence: 1, epoch: 5, time: t, kind: 'bump', detail: new Map([['g', 3]]) },
      lock.device,
    );
    const audit = encodeAuditRecord(
      {
        lockId: LOCK,
        sequence: 2,
        epoch: 5,
        time: t,
        previousHash: AUDIT_GENESIS_HASH,
        event: 'unlock',
        status: Status.OK,
        rider: 'bianca',
        detail: new Map(),
      },
      lock.device,
    );
    const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64url');
    // The owner follows the event stream from the start (Last-Event-ID 0: every stored event after id 0).
    const abort = new AbortController();
    const stream = await fetch(`${w.base}/events`, {
      headers: { authorization: `Bearer ${adam}`, 'last-event-id': '0' },
      signal: abort.signal,
    });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);

    const r = await call(w.base, 'POST', '/sync', {
      token: bianca.token,
      body: {
        lock: LOCK,
        records: [b64(alert), b64(audit)],
        challenge: { nonce: b64(new Uint8Array(16).fill(9)), revocationVersion: 0 },
      },
    });
    expect(r.status).toBe(200);
    expect(r.body.results).toEqual([
      { index: 0, outcome: 'stored' },
      { index: 1, outcome: 'stored' },
    ]);
    expect(r.body.outboxAck).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(r.body.revocation).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(r.body.beacon).toMatch(/^[A-Za-z0-9_-]+$/);
    // The same upload again: duplicates, nothing new.
    const again = await call(w.base, 'POST', '/sync', {
      token: bianca.token,
      body: { lock: LOCK, records: [b64(alert)] },
    });
    expect(again.body.results).toEqual([{ index: 0, outcome: 'duplicate' }]);

    const log = await call(w.base, 'GET', `/locks/${LOCK}/audit?limit=1`, {
      token: adam,
      template: '/locks/{lockId}/audit',
    });
    expect(log.status).toBe(200);
    expect(log.body.records).toMatchObject([
      { epoch: 5, sequence: 2, event: 'unlock', status: 0, rider: 'bianca', via: 'relay' },
    ]);
    expect(log.body.next).toEqual((log.body.records as { cursor: string }[])[0]!.cursor);
    const after = await call(w.base, 'GET', `/locks/${LOCK}/audit?after=${String(log.body.next)}`, {
      token: adam,
      template: '/locks/{lockId}/audit',
    });
    expect(after.body).toEqual({ records: [], next: null });
    const alerts = await call(w.base, 'GET', `/locks/${LOCK}/alerts`, {
      token: adam,
      template: '/locks/{lockId}/alerts',
    });
    expect(alerts.body.alerts).toMatchObject([{ kind: 'bump', detail: { g: 3 }, epoch: 5, sequence: 1 }]);
    // The alert is listed once, as a record; its companion event (kept for the live feed) is not repeated.
    const events = alerts.body.events as { kind: string }[];
    expect(events.map((e) => e.kind)).not.toContain('alert');
    expect(
      (await w.cloud.store.listEvents({ lockId: LOCK, limit: 50 })).filter((e) => e.kind === 'alert'),
    ).toHaveLength(1);
    // A page of one alert: the newest, and its own event is not repeated under events.
    const t2 = t + 1;
    const newer = encodeAlert(
      { lockId: LOCK, sequence: 3, epoch: 5, time: t2, kind: 'moved', detail: new Map([['g', 4]]) },
      lock.device,
    );
    expect(
      (
        await call(w.base, 'POST', '/sync', {
          token: bianca.token,
          body: { lock: LOCK, records: [b64(newer)] },
        })
      ).body.results,
    ).toEqual([{ index: 0, outcome: 'stored' }]);
    const page = await call(w.base, 'GET', `/locks/${LOCK}/alerts?limit=1`, {
      token: adam,
      template: '/locks/{lockId}/alerts',
    });
    expect(page.body.alerts).toMatchObject([{ kind: 'moved', sequence: 3 }]);
    expect(
      (page.body.events as { kind: string; detail: { sequence?: number } }[]).filter(
        (e) => e.kind === 'alert',
      ),
    ).toEqual([]);
    const all = await call(w.base, 'GET', `/locks/${LOCK}/alerts?limit=500`, {
      token: adam,
      template: '/locks/{lockId}/alerts',
    });
    expect((all.body.alerts as { sequence: number }[]).map((a) => a.sequence)).toEqual([3, 1]);
    expect((all.body.events as { kind: string }[]).filter((e) => e.kind === 'alert')).toEqual([]);

    // The stream carries the alert event with its id; read at most 50 chunks.
    const reader = stream.body!.getReader();
    let text = '';
    for (let i = 0; i < 50 && !/event: alert\n/.test(text); i++) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    abort.abort();
    expect(text).toMatch(/id: \d+\nevent: alert\ndata: \{[^\n]*"lock":"lock-flow"/);

    // Carol's shares of the lock were revoked above: her phone may still sync, to carry the revocation update
    // to the lock and its acknowledgement back (a revoked share counts until its notAfter).
    const carol = (await tokenFor(w.cloud, 'carol')).token;
    const carried = await call(w.base, 'POST', '/sync', { token: carol, body: { lock: LOCK, records: [] } });
    expect(carried.status).toBe(200);
    expect(carried.body.revocation).toMatch(/^[A-Za-z0-9_-]+$/);
    // Dave never held a share of the lock: the same 404 as an unknown lock, and nothing ingested.
    const dave = (await tokenFor(w.cloud, 'dave')).token;
    const count = await w.cloud.store.countRecords(LOCK);
    const refused = await call(w.base, 'POST', '/sync', {
      token: dave,
      body: { lock: LOCK, records: [b64(audit)] },
    });
    expect(refused.status).toBe(404);
    expect(await w.cloud.store.countRecords(LOCK)).toBe(count);
  });
  it("the share view shows the uses the lock reported, from MQTT and from a rider's sync ([TANDEM-SYNC-4])", async () => {
    const LOCK2 = 'lock-uses';
    l2 = await registeredLock(w.cloud, LOCK2, 'adam');
    expect(
      (await call(w.base, 'POST', '/locks', { token: adam, body: { receipt: l2.receipt } })).status,
    ).toBe(201);
    const made = await call(w.base, 'POST', `/locks/${LOCK2}/shares`, {
      token: adam,
      template: '/locks/{lockId}/shares',
      body: { rider: 'bianca', scope: ['unlock'], notAfter: inTwoHours(), maxUses: 2 },
    });
    expect(made.status).toBe(201);
    const id = (made.body.share as { id: string }).id;
    expect(made.body.share).toMatchObject({ maxUses: 2, usesReported: 0 });
    let prev = AUDIT_GENESIS_HASH;
    let seq = 0;
    const use = (): Uint8Array => {
      const bytes = encodeAuditRecord(
        {
          lockId: LOCK2,
          sequence: ++seq,
          epoch: 1,
          time: Math.floor(Date.now() / 1000),
          previousHash: prev,
          event: 'unlock',
          status: Status.OK,
          command: Command.UNLOCK,
          tokenId: shareCti(id),
          rider: 'bianca',
          detail: new Map([['signers', '0011223344556677']]),
        },
        l2.device,
      );
      prev = auditRecordHash(bytes);
      return bytes;
    };
    const usesSeen = async (): Promise<unknown> => {
      const list = await call(w.base, 'GET', `/locks/${LOCK2}/shares`, {
        token: adam,
        template: '/locks/{lockId}/shares',
      });
      expect(list.status).toBe(200);
      return (list.body.shares as { id: string; usesReported: number }[]).find((s) => s.id === id)
        ?.usesReported;
    };
    // The first use over MQTT, as the lock publishes it with its own credentials.
    const first = use();
    const client = await mqtt.connectAsync(w.cloud.mqttUrl, {
      username: LOCK2,
      password: l2.password,
      reconnectPeriod: 0,
    });
    try {
      await client.publishAsync(topicFor('audit', LOCK2), Buffer.from(first), { qos: 1 });
    } finally {
      await client.endAsync();
    }
    for (let i = 0; i < 250 && (await w.cloud.store.getShare(id))?.usesReported !== 1; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await usesSeen()).toBe(1);
    // The second through Bianca's sync, with the first again (a phone relays what the lock still holds).
    const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64url');
    const r = await call(w.base, 'POST', '/sync', {
      token: bianca.token,
      body: { lock: LOCK2, records: [b64(first), b64(use())] },
    });
    expect(r.body.results).toEqual([
      { index: 0, outcome: 'duplicate' },
      { index: 1, outcome: 'stored' },
    ]);
    expect(await usesSeen()).toBe(2);
    const mine = await call(w.base, 'GET', '/shares', { token: bianca.token });
    expect((mine.body.shares as { id: string }[]).find((s) => s.id === id)).toMatchObject({
      maxUses: 2,
      usesReported: 2,
    });
    // Used up: Userinfo yields no token for it any more ([TANDEM-DLG-3]).
    const held = (await delegationsOf(bianca.token)).adam ?? [];
    expect(held.map((d) => d.share)).not.toContain(id);
  });
  it('the lock view shows the issuer anchor each lock acknowledged, relayed by a phone or over MQTT ([TANDEM-SYNC-5])', async () => {
    const view = async (lockId: string): Promise<unknown> =>
      (
        await call(w.base, 'GET', `/locks/${lockId}`, {
          token: adam,
          template: '/locks/{lockId}',
        })
      ).body.lock;
    expect(await view(LOCK)).toMatchObject({
      anchor: { version: 0, acknowledgedVersion: null, acknowledgedAt: null, via: null },
    });
    w.cloud.keyring.rotate(3600);
    expect(await view(LOCK)).toMatchObject({ anchor: { version: 1, acknowledgedVersion: null } });
    // Bianca's phone syncs lock-flow (her share there was revoked, but its notAfter has not passed): it is
    // handed the anchor update, and the lock's ack it relays back is stored.
    const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64url');
    const first = await call(w.base, 'POST', '/sync', {
      token: bianca.token,
      body: { lock: LOCK, records: [] },
    });
    expect(first.body.anchor).toMatch(/^[A-Za-z0-9_-]+$/);
    const ack = encodeAnchorAck({ lockId: LOCK, version: 1, lockTime: 1_800_000_000 }, lock.device);
    const relayed = await call(w.base, 'POST', '/sync', {
      token: bianca.token,
      body: { lock: LOCK, records: [b64(ack)] },
    });
    expect(relayed.body).toMatchObject({ results: [{ index: 0, outcome: 'stored' }], anchor: null });
    const seen = (await view(LOCK)) as { anchor: { acknowledgedAt: string } };
    expect(seen).toMatchObject({ anchor: { version: 1, acknowledgedVersion: 1, via: 'relay' } });
    expect(Date.parse(seen.anchor.acknowledgedAt)).toBeGreaterThan(0);

    // lock-uses acknowledges over MQTT, as an online lock does.
    const client = await mqtt.connectAsync(w.cloud.mqttUrl, {
      username: 'lock-uses',
      password: l2.password,
      reconnectPeriod: 0,
    });
    try {
      const bytes = encodeAnchorAck({ lockId: 'lock-uses', version: 1, lockTime: 1 }, l2.device);
      await client.publishAsync(topicFor('anchor-ack', 'lock-uses'), Buffer.from(bytes), {
        qos: 1,
        retain: true,
      });
    } finally {
      await client.endAsync();
    }
    for (let i = 0; i < 250 && (await w.cloud.store.getAnchorAck('lock-uses')) === undefined; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await view('lock-uses')).toMatchObject({
      anchor: { version: 1, acknowledgedVersion: 1, via: 'mqtt' },
    });
  });
});
