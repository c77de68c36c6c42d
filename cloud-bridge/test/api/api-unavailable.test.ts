/**
 * When the bridge cannot publish a revocation, DELETE answers 503 and changes nothing: the share stays live and
 * the device stays registered, so the owner's retry starts over (server.ts publishes before it marks).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateKeyPair } from '../../../protocol/src/keys.js';
import { createApiHandler } from '../../src/api/server.js';
import { CloudError } from '../../src/errors.js';
import type { SqlCloudStore } from '../../src/store/sql-store.js';
import { openSqlStore } from '../../src/store/sql-store.js';
import { call } from './fixture.js';

const HASH = '$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA';
const dir = mkdtempSync(join(tmpdir(), 'tandem-api-503-'));
let store: SqlCloudStore;
let base: string;
let close: () => Promise<void>;
let publishes = 0;

beforeAll(async () => {
  store = await openSqlStore({ kind: 'sqlite', engine: 'wasm', path: join(dir, 'cloud.db') });
  for (const id of ['adam', 'bianca']) await store.createAccount({ id, name: id, passwordHash: HASH });
  await store.registerLock({
    lockId: 'lock-1',
    deviceKey: new Uint8Array(32),
    passwordHash: null,
    registeredAt: 1,
  });
  await store.claimLock({
    lockId: 'lock-1',
    owner: 'adam',
    ownerKey: generateKeyPair('ES256').publicKey,
    ownerKid: Uint8Array.of(1),
    claimedAt: 1,
  });
  const t = Math.floor(Date.now() / 1000);
  await store.putShare({
    id: 'share-1',
    owner: 'adam',
    lock: 'lock-1',
    rider: 'bianca',
    scope: ['unlock'],
    notBefore: t - 60,
    notAfter: t + 3600,
  });
  await store.registerPhoneKey('bianca', 'grant-b', generateKeyPair('ES256').publicKey);
  const handler = createApiHandler({
    store,
    auth: {
      // Two fixed tokens stand for the provider here: this test is about the bridge failing.
      verifyAccessToken: async (token) =>
        token === 'adam-token' || token === 'bianca-token'
          ? {
              accountId: token.split('-')[0]!,
              clientId: 'tandem-cli',
              grantId: token === 'adam-token' ? 'grant-a' : 'grant-b',
              scopes: new Set(['openid', 'delegations']),
            }
          : undefined,
      revokeGrant: async () => undefined,
    },
    revoker: {
      revokeEntries: async () => {
        publishes++;
        throw new CloudError('ERR_CLOUD_UNAVAILABLE', 'the broker did not answer', { temporary: true });
      },
    },
    log: () => undefined,
  });
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`;
  close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
});
afterAll(async () => {
  await close?.();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('DELETE /shares: 503, the share still live', async () => {
  const r = await call(base, 'DELETE', '/shares/share-1', {
    token: 'adam-token',
    template: '/shares/{shareId}',
  });
  expect(r.status).toBe(503);
  expect(r.body.error).toBe('ERR_API_UNAVAILABLE');
  expect(publishes).toBe(1);
  expect((await store.getShare('share-1'))?.revoked).toBe(false);
});

it('DELETE /devices: 503, the device still registered', async () => {
  const r = await call(base, 'DELETE', '/devices/grant-b', {
    token: 'bianca-token',
    template: '/devices/{deviceId}',
  });
  expect(r.status).toBe(503);
  expect(publishes).toBe(2);
  expect(await store.getDevice('bianca', 'grant-b')).toBeDefined();
});
