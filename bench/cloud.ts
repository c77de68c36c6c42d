/**
 * Bench group `cloud` (issue 10, "Tests and numbers"): what the delegations claim costs at Userinfo.
 *
 * - `oidc.userinfo_delegations_rps_ratio`: Userinfo requests per second for a rider holding 20 delegations
 *   (20 fresh Ed25519-signed tokens minted per call, SPEC.md §5.9) over plain Userinfo (same provider, same
 *   account store, an access token without the `delegations` scope), both over HTTP on 127.0.0.1 with
 *   keep-alive, measured side by side by {@link compareAsync}. Goal: at least 0.5.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPair } from '../protocol/src/keys.js';
import { MemoryAccountStore, MemoryDelegationSource } from '../cloud-bridge/src/oidc/memory-store.js';
import { Argon2idHasher } from '../cloud-bridge/src/oidc/passwords.js';
import type { TandemOidc } from '../cloud-bridge/src/oidc/provider.js';
import { createOidcProvider, tandemClients } from '../cloud-bridge/src/oidc/provider.js';
import type { BenchContext, BenchGroup } from './lib.js';
import { QUICK, asyncSide, atLeast, compareAsync, comparisonNote } from './lib.js';

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
  description: 'OpenID Provider: Userinfo with 20 delegations against plain Userinfo',
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
  },
};
