/**
 * Bench group `cloud` (issue 10, "Tests and numbers"): what the delegations claim costs at Userinfo.
 *
 * - `oidc.userinfo_delegations_rps_ratio`: Userinfo requests per second for a rider holding 20 delegations
 *   (20 fresh Ed25519-signed tokens minted per call, SPEC.md §5.9) over plain Userinfo (same provider, same
 *   account store, an access token without the `delegations` scope), both over HTTP on 127.0.0.1 with
 *   keep-alive, measured side by side by {@link compareAsync}. Goal: at least 0.5.
 * - `api.share_p99_ratio`, `api.revoke_p99_ratio`: p99 latency of POST /locks/{id}/shares and of
 *   DELETE /shares/{id} (which signs the next revocation update, stores it and publishes it retained through
 *   the bridge) over the p99 of a plain authenticated GET /locks, on one whole cloud (SQLite store, embedded
 *   aedes, bridge, OpenID Provider, sharing API) over HTTP on 127.0.0.1 with keep-alive. The three requests
 *   run in rounds, their order rotated each round, so a slow stretch of the machine hits all three. Goal: at
 *   most 3.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCloud } from '../cloud-bridge/src/cloud.js';
import type { AddressInfo } from 'node:net';
import { generateKeyPair } from '../protocol/src/keys.js';
import { MemoryAccountStore, MemoryDelegationSource } from '../cloud-bridge/src/oidc/memory-store.js';
import { Argon2idHasher } from '../cloud-bridge/src/oidc/passwords.js';
import type { TandemOidc } from '../cloud-bridge/src/oidc/provider.js';
import { createOidcProvider, tandemClients } from '../cloud-bridge/src/oidc/provider.js';
import type { BenchContext, BenchGroup } from './lib.js';
import { QUICK, asyncSide, atLeast, atMost, compareAsync, comparisonNote } from './lib.js';

const DELEGATIONS = 20;

interface Running {
  issuer: string;
  oidc: TandemOidc;
  accounts: MemoryAccountStore;
  close: () => Promise<void>;
}

async function start(): Promise<Running> {
  const accounts = new MemoryAccountStore();
  const shares = new MemoryDelegationSource();
  const hasher = new Argon2idHasher({ memoryCostKiB: 1024, timeCost: 1, parallelism: 1 });
  await accounts.createAccount({
    id: 'bianca',
    name: 'Bianca Doe',
    passwordHash: await hasher.hash('bench-password'),
  });
  const now = Math.floor(Date.now() / 1000);
  for (let i = 0; i < DELEGATIONS; i++) {
    shares.put({
      id: `share-${i}`,
      owner: `owner-${i % 5}`,
      lock: `lock-${i}`,
      rider: 'bianca',
      scope: ['unlock', 'status'],
      notBefore: now - 60,
      notAfter: now + 24 * 3600,
      schedule: [{ days: 31, start: 420, end: 1200 }],
      maxUses: 10,
    });
  }
  const route: { h?: TandemOidc['handler'] } = {};
  const server = createServer((req, res) => route.h!(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const oidc = await createOidcProvider({
    issuer,
    accounts,
    delegations: shares,
    issuerKey: { id: 'tandem', kid: new Uint8Array([1]), key: generateKeyPair('EdDSA') },
    passwords: hasher,
    clients: tandemClients(['http://127.0.0.1/callback']),
  });
  route.h = oidc.handler;
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return { issuer, oidc, accounts, close };
}

/** An access token issued straight through oidc-provider's models (what a code exchange would store). */
async function accessToken(oidc: TandemOidc, scope: string): Promise<{ token: string; grantId: string }> {
  const { provider } = oidc;
  const grant = new provider.Grant({ accountId: 'bianca', clientId: 'tandem-app' });
  grant.addOIDCScope(scope);
  const grantId = await grant.save();
  const client = await provider.Client.find('tandem-app');
  const at = new provider.AccessToken({
    accountId: 'bianca',
    client: client!,
    grantId,
    scope,
    gty: 'authorization_code',
  });
  return { token: await at.save(), grantId };
}

async function userinfo(issuer: string, token: string): Promise<unknown> {
  const res = await fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`Userinfo answered ${res.status}`);
  return res.json();
}

export const cloudGroup: BenchGroup = {
  name: 'cloud',
  description:
    'OpenID Provider: Userinfo with 20 delegations against plain Userinfo; sharing API: p99 of share and revoke against a plain GET',
  async run(ctx: BenchContext) {
    const { issuer, oidc, accounts, close } = await start();
    try {
      const rich = await accessToken(oidc, 'openid profile delegations');
      const plain = await accessToken(oidc, 'openid profile');
      // The rider's phone key for the device (grant) of the rich token ([TANDEM-DLG-5]).
      await accounts.registerPhoneKey('bianca', rich.grantId, generateKeyPair('ES256').publicKey);
      const body = (await userinfo(issuer, rich.token)) as Record<string, Record<string, unknown[]>>;
      const count = Object.values(body['https://tandem.example/delegations'] ?? {}).flat().length;
      if (count !== DELEGATIONS)
        throw new Error(`expected ${DELEGATIONS} delegations, Userinfo gave ${count}`);
      const side = (token: string) =>
        asyncSide(
          64,
          () => undefined,
          () => userinfo(issuer, token),
          async () => undefined,
        );
      const c = await compareAsync(
        side(plain.token),
        side(rich.token),
        ctx.quick ? QUICK : { sliceMs: 60, rounds: 15, warmupRounds: 2, slices: 4, warmupMs: 300 },
      );
      ctx.report({
        name: 'oidc.userinfo_delegations_rps_ratio',
        value: Number(c.ratio.toFixed(3)),
        unit: 'ratio',
        goal: atLeast(0.5),
        note:
          `requests/s with ${DELEGATIONS} delegations over plain Userinfo = time(plain)/time(delegations); ` +
          comparisonNote(c, 'plain Userinfo', `Userinfo + ${DELEGATIONS} delegations`),
      });
    } finally {
      await close();
    }
    await apiLatencies(ctx);
  },
};

/** The p-th percentile (0..100) of `values`, nearest rank. */
function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** p99 of share and revoke against a plain authenticated GET on the sharing API (issue 10, "Tests and numbers"). */
async function apiLatencies(ctx: BenchContext): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-bench-api-'));
  const cloud = await startCloud({
    dataDir: dir,
    mqtt: { port: 0 },
    brokerPersistence: { kind: 'memory' },
    beaconIntervalMs: 0,
    log: () => undefined,
    http: { port: 0 },
  });
  try {
    const hash = await new Argon2idHasher({ memoryCostKiB: 1024, timeCost: 1, parallelism: 1 }).hash(
      'bench-pw-1',
    );
    for (const id of ['adam', 'bianca'])
      await cloud.store.createAccount({ id, name: id, passwordHash: hash });
    const lockId = 'lock-bench';
    const device = generateKeyPair('EdDSA');
    await cloud.store.registerLock({
      lockId,
      deviceKey: device.publicKey.raw,
      passwordHash: null,
      registeredAt: 0,
    });
    await cloud.store.claimLock({
      lockId,
      owner: 'adam',
      ownerKey: generateKeyPair('ES256').publicKey,
      ownerKid: Uint8Array.of(10),
      claimedAt: Date.now(),
    });
    const { provider } = cloud.oidc!;
    const grant = new provider.Grant({ accountId: 'adam', clientId: 'tandem-cli' });
    grant.addOIDCScope('openid delegations');
    const grantId = await grant.save();
    const token = await new provider.AccessToken({
      accountId: 'adam',
      client: (await provider.Client.find('tandem-cli'))!,
      grantId,
      scope: 'openid delegations',
      gty: 'urn:ietf:params:oauth:grant-type:device_code',
    }).save();
    const base = `${cloud.httpUrl!}/api/v1`;
    const auth = { authorization: `Bearer ${token}` };
    const shareBody = JSON.stringify({
      rider: 'bianca',
      scope: ['unlock', 'status'],
      // Short-lived, so the revocation list (every revoked share until its notAfter) stays near its real size.
      notAfter: new Date(Date.now() + 10 * 60_000).toISOString(),
      schedule: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '08:00', end: '18:00' }],
      maxUses: 3,
    });
    const pending: string[] = [];
    const timed = async (f: () => Promise<Response>, expected: number): Promise<[number, unknown]> => {
      const t0 = process.hrtime.bigint();
      const res = await f();
      const body: unknown = await res.json();
      const ns = Number(process.hrtime.bigint() - t0);
      if (res.status !== expected) throw new Error(`API answered ${res.status}: ${JSON.stringify(body)}`);
      return [ns, body];
    };
    const ops: Record<'get' | 'share' | 'revoke', () => Promise<number>> = {
      get: async () => (await timed(() => fetch(`${base}/locks`, { headers: auth }), 200))[0],
      share: async () => {
        const [ns, body] = await timed(
          () =>
            fetch(`${base}/locks/${lockId}/shares`, {
              method: 'POST',
              headers: { ...auth, 'content-type': 'application/json' },
              body: shareBody,
            }),
          201,
        );
        pending.push((body as { share: { id: string } }).share.id);
        return ns;
      },
      revoke: async () => {
        // Revokes a share made in an earlier round (there is always one: the first round shares first).
        const id = pending.shift()!;
        return (
          await timed(() => fetch(`${base}/shares/${id}`, { method: 'DELETE', headers: auth }), 200)
        )[0];
      },
    };
    const rounds = ctx.quick ? 30 : 400;
    const warmup = ctx.quick ? 5 : 40;
    const times: Record<keyof typeof ops, number[]> = { get: [], share: [], revoke: [] };
    const orders: (keyof typeof ops)[][] = [
      ['share', 'get', 'revoke'],
      ['get', 'revoke', 'share'],
      ['revoke', 'share', 'get'],
    ];
    await ops.share(); // so that the first revoke has a share
    for (let r = 0; r < warmup + rounds; r++) {
      for (const op of orders[r % orders.length]!) {
        const ns = await ops[op]();
        if (r >= warmup) times[op].push(ns);
      }
    }
    const p99 = {
      get: percentile(times.get, 99),
      share: percentile(times.share, 99),
      revoke: percentile(times.revoke, 99),
    };
    const ms = (ns: number): string => `${(ns / 1e6).toFixed(2)} ms`;
    const note = (op: 'share' | 'revoke', what: string) =>
      `p99 of ${what} over p99 of GET /locks, ${rounds} rounds of the three in rotated order after ${warmup} ` +
      `warm-up rounds; p99 ${ms(p99[op])} vs ${ms(p99.get)}, p50 ${ms(percentile(times[op], 50))} vs ` +
      `${ms(percentile(times.get, 50))}`;
    ctx.report({
      name: 'api.share_p99_ratio',
      value: Number((p99.share / p99.get).toFixed(3)),
      unit: 'ratio',
      goal: atMost(3),
      note: note('share', 'POST /locks/{id}/shares'),
    });
    ctx.report({
      name: 'api.revoke_p99_ratio',
      value: Number((p99.revoke / p99.get).toFixed(3)),
      unit: 'ratio',
      goal: atMost(3),
      note: note('revoke', 'DELETE /shares/{id} (signed revocation update stored and published)'),
    });
  } finally {
    await cloud.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
