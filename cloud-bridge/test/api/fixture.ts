/**
 * A whole cloud for API tests (store on SQLite, aedes in memory, bridge, OpenID Provider, sharing API) on
 * 127.0.0.1 with port 0, three accounts, access tokens minted straight through oidc-provider's models (what a
 * code exchange would store), and a check of every answer against the OpenAPI document.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { PrivateKey } from '../../../protocol/src/keys.js';
import { generateKeyPair } from '../../../protocol/src/keys.js';
import { encodeClaimReceipt } from '../../../protocol/src/claim-receipt.js';
import { OPENAPI, describeErrors, validatorOf } from '../../src/api/schema.js';
import type { Cloud } from '../../src/cloud.js';
import { startCloud } from '../../src/cloud.js';
import { hashPassword } from '../../src/credentials.js';
import { Argon2idHasher } from '../../src/oidc/passwords.js';
import { tandemClients } from '../../src/oidc/provider.js';

export const ACCOUNTS = ['adam', 'bianca', 'carol'] as const;
const HASHER = new Argon2idHasher({ memoryCostKiB: 1024, timeCost: 1, parallelism: 1 });

export interface ApiWorld {
  readonly cloud: Cloud;
  readonly base: string;
  close(): Promise<void>;
}

/** Starts a cloud with HTTP and the three accounts. */
export async function startApiWorld(): Promise<ApiWorld> {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-api-'));
  const cloud = await startCloud({
    dataDir: dir,
    mqtt: { port: 0 },
    brokerPersistence: { kind: 'memory' },
    beaconIntervalMs: 0,
    log: () => undefined,
    http: { port: 0 },
    oidc: {
      passwords: HASHER,
      clients: [
        ...tandemClients(['http://127.0.0.1/callback']),
        // A third-party client: it may sign people in, never reach the sharing API.
        {
          client_id: 'other-app',
          application_type: 'native',
          token_endpoint_auth_method: 'none',
          grant_types: ['authorization_code'],
          response_types: ['code'],
          redirect_uris: ['http://127.0.0.1/callback'],
          scope: 'openid profile',
        },
      ],
    },
  });
  const hash = await HASHER.hash('a-long-test-password');
  for (const id of ACCOUNTS)
    await cloud.store.createAccount({ id, name: id.toUpperCase(), passwordHash: hash });
  return {
    cloud,
    base: `${cloud.httpUrl!}/api/v1`,
    close: async () => {
      await cloud.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An access token of `account` for `clientId`, as the token endpoint would have stored it. */
export async function tokenFor(
  cloud: Cloud,
  account: string,
  options: { clientId?: string; scope?: string } = {},
): Promise<{ token: string; grantId: string }> {
  const { provider } = cloud.oidc!;
  const clientId = options.clientId ?? 'tandem-cli';
  const scope = options.scope ?? 'openid profile delegations';
  const grant = new provider.Grant({ accountId: account, clientId });
  grant.addOIDCScope(scope);
  const grantId = await grant.save();
  const client = await provider.Client.find(clientId);
  const at = new provider.AccessToken({
    accountId: account,
    client: client!,
    grantId,
    scope,
    gty: 'urn:ietf:params:oauth:grant-type:device_code',
  });
  return { token: await at.save(), grantId };
}

/** Makes an access token expired in the store, as time would. */
export async function expire(cloud: Cloud, token: string): Promise<void> {
  const adapter = (
    cloud.oidc!.provider.AccessToken as unknown as {
      adapter: {
        find(id: string): Promise<object>;
        upsert(id: string, p: object, ttl: number): Promise<void>;
      };
    }
  ).adapter;
  const payload = await adapter.find(token);
  await adapter.upsert(token, { ...payload, exp: Math.floor(Date.now() / 1000) - 120 }, 600);
}

/** A lock registered with the cloud (device key, MQTT password) and a claim receipt for `owner`. */
export async function registeredLock(
  cloud: Cloud,
  lockId: string,
  owner: string,
): Promise<{ device: PrivateKey; ownerKey: PrivateKey; receipt: string; password: string }> {
  const device = generateKeyPair('EdDSA');
  const ownerKey = generateKeyPair('ES256');
  const password = randomBytes(32).toString('hex');
  await cloud.store.registerLock({
    lockId,
    deviceKey: device.publicKey.raw,
    passwordHash: hashPassword(password),
    registeredAt: Date.now(),
  });
  const receipt = encodeClaimReceipt(
    { lockId, owner, ownerKey: ownerKey.publicKey, ownerKid: Uint8Array.of(0x0a), claimedAt: 0 },
    device,
  );
  return { device, ownerKey, receipt: Buffer.from(receipt).toString('base64url'), password };
}

/** One API answer. */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
}

/** Calls the API; `template` is the OpenAPI path the answer is validated against. */
export async function call(
  base: string,
  method: string,
  path: string,
  init: { token?: string; body?: unknown; raw?: string; contentType?: string; template?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`;
  let payload: string | undefined;
  if (init.raw !== undefined || init.body !== undefined) {
    headers['content-type'] = init.contentType ?? 'application/json';
    payload = init.raw ?? JSON.stringify(init.body);
  }
  const res = await fetch(`${base}${path}`, { method, headers, body: payload });
  const text = await res.text();
  const body = (text === '' ? {} : JSON.parse(text)) as Record<string, unknown>;
  checkAgainstDocument(method, init.template ?? path, res.status, body);
  return { status: res.status, headers: res.headers, body };
}

/** Validates an answer against the response schema the document gives for (path, method, status). */
export function checkAgainstDocument(method: string, template: string, status: number, body: unknown): void {
  const paths = OPENAPI.paths as Record<string, Record<string, { responses: Record<string, unknown> }>>;
  const op = paths[template]?.[method.toLowerCase()];
  let name: string;
  if (op === undefined) {
    name = 'Error'; // a path the document does not have: the answer must still be the error shape
  } else {
    let response = op.responses[String(status)] as {
      $ref?: string;
      content?: Record<string, { schema: { $ref: string } }>;
    };
    expect(
      response,
      `${method} ${template} answered ${status}, which the document does not list`,
    ).toBeDefined();
    if (response.$ref !== undefined) {
      const key = response.$ref.split('/').at(-1)!;
      response = (OPENAPI.components.responses as Record<string, typeof response>)[key]!;
    }
    name = response.content!['application/json']!.schema.$ref.split('/').at(-1)!;
  }
  const v = validatorOf(name);
  expect(
    v(body),
    `${method} ${template} ${status}: ${describeErrors(v.errors, 'answer')} in ${JSON.stringify(body)}`,
  ).toBe(true);
}

/** A P-256 public JWK for POST /devices. */
export function phoneJwk(key: PrivateKey = generateKeyPair('ES256')): Record<string, string> {
  const jwk = key.publicKey.key.export({ format: 'jwk' }) as Record<string, string>;
  return { kty: jwk.kty!, crv: jwk.crv!, x: jwk.x!, y: jwk.y! };
}
