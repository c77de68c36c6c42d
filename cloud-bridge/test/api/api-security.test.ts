/**
 * The sharing API's access matrix (issue 10, "Security"): every endpoint, called with no token, an expired
 * token, a revoked one (its grant revoked), a tampered one, a token of another client (without the
 * `delegations` scope), and by the wrong user, answers the exact status of the contract and changes nothing;
 * every body-taking endpoint refuses malformed bodies with 400 (413, 415) and stores nothing. Every answer is
 * validated against the OpenAPI document.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiWorld } from './fixture.js';
import { call, expire, phoneJwk, registeredLock, startApiWorld, tokenFor } from './fixture.js';

let w: ApiWorld;
const LOCK = 'lock-sec';
let adam: string;
let shareId: string;
let biancaDevice: string;
let receipt: string;

beforeAll(async () => {
  w = await startApiWorld();
  adam = (await tokenFor(w.cloud, 'adam')).token;
  const lock = await registeredLock(w.cloud, LOCK, 'adam');
  receipt = lock.receipt;
  expect((await call(w.base, 'POST', '/locks', { token: adam, body: { receipt } })).status).toBe(201);
  const made = await call(w.base, 'POST', `/locks/${LOCK}/shares`, {
    token: adam,
    template: '/locks/{lockId}/shares',
    body: { rider: 'bianca', scope: ['unlock'], notAfter: new Date(Date.now() + 3600_000).toISOString() },
  });
  shareId = (made.body.share as { id: string }).id;
  const bianca = await tokenFor(w.cloud, 'bianca');
  biancaDevice = bianca.grantId;
  await call(w.base, 'POST', '/devices', { token: bianca.token, body: { key: phoneJwk() } });
}, 60_000);
afterAll(async () => {
  await w?.close();
});

/** Everything the API could have changed, as one comparable value. */
async function snapshot(): Promise<string> {
  const s = w.cloud.store;
  const parts: unknown[] = [];
  for (const a of ['adam', 'bianca', 'carol']) {
    parts.push((await s.listDevices(a)).map((d) => [d.deviceId, d.thumbprint, d.name]));
    parts.push((await s.claimsOf(a)).map((c) => c.lockId));
    parts.push(await s.sharesFor(a));
  }
  parts.push(await s.sharesOfLock(LOCK), (await s.getRevocation(LOCK))?.version ?? 0);
  return JSON.stringify(parts);
}

interface Endpoint {
  readonly method: string;
  readonly path: () => string;
  readonly template: string;
  /** A valid body (what the owner or rider would send). */
  readonly body?: () => unknown;
  /** True when another user's call must be 404 (the resource is adam's or bianca's). */
  readonly owned?: boolean;
}

const future = (): string => new Date(Date.now() + 3600_000).toISOString();
const ENDPOINTS: readonly Endpoint[] = [
  { method: 'POST', path: () => '/devices', template: '/devices', body: () => ({ key: phoneJwk() }) },
  { method: 'GET', path: () => '/devices', template: '/devices' },
  {
    method: 'DELETE',
    path: () => `/devices/${encodeURIComponent(biancaDevice)}`,
    template: '/devices/{deviceId}',
    owned: true,
  },
  { method: 'POST', path: () => '/locks', template: '/locks', body: () => ({ receipt }) },
  { method: 'GET', path: () => '/locks', template: '/locks' },
  { method: 'GET', path: () => `/locks/${LOCK}`, template: '/locks/{lockId}', owned: true },
  {
    method: 'POST',
    path: () => `/locks/${LOCK}/shares`,
    template: '/locks/{lockId}/shares',
    body: () => ({ rider: 'carol', scope: ['unlock'], notAfter: future() }),
    owned: true,
  },
  { method: 'GET', path: () => `/locks/${LOCK}/shares`, template: '/locks/{lockId}/shares', owned: true },
  { method: 'GET', path: () => '/shares', template: '/shares' },
  { method: 'DELETE', path: () => `/shares/${shareId}`, template: '/shares/{shareId}', owned: true },
  {
    method: 'DELETE',
    path: () => `/locks/${LOCK}/riders/bianca`,
    template: '/locks/{lockId}/riders/{rider}',
    owned: true,
  },
  { method: 'GET', path: () => `/locks/${LOCK}/audit`, template: '/locks/{lockId}/audit', owned: true },
  { method: 'GET', path: () => `/locks/${LOCK}/alerts`, template: '/locks/{lockId}/alerts', owned: true },
  { method: 'GET', path: () => '/events', template: '/events' },
  {
    method: 'POST',
    path: () => '/sync',
    template: '/sync',
    body: () => ({ lock: LOCK, records: [] }),
    owned: true,
  },
];

describe.each(ENDPOINTS.map((e) => [`${e.method} ${e.template}`, e] as const))('%s', (_name, e) => {
  async function refused(token: string | undefined, status: number, challenge?: RegExp): Promise<void> {
    const before = await snapshot();
    const r = await call(w.base, e.method, e.path(), {
      ...(token === undefined ? {} : { token }),
      ...(e.body === undefined ? {} : { body: e.body() }),
      template: e.template,
    });
    expect(r.status, JSON.stringify(r.body)).toBe(status);
    if (challenge !== undefined) expect(r.headers.get('www-authenticate')).toMatch(challenge);
    expect(await snapshot()).toBe(before);
  }

  it('without a token: 401 with a Bearer challenge', async () => {
    await refused(undefined, 401, /^Bearer realm="tandem"$/);
  });
  it('with an expired token: 401 invalid_token', async () => {
    const t = await tokenFor(w.cloud, 'adam');
    await expire(w.cloud, t.token);
    await refused(t.token, 401, /error="invalid_token"/);
  });
  it('with a token whose grant was revoked: 401 invalid_token', async () => {
    const t = await tokenFor(w.cloud, 'adam');
    await (await w.cloud.oidc!.provider.Grant.find(t.grantId))!.destroy();
    await refused(t.token, 401, /error="invalid_token"/);
  });
  it('with a tampered token: 401 invalid_token', async () => {
    const t = (await tokenFor(w.cloud, 'adam')).token;
    const flipped = `${t.slice(0, -1)}${t.endsWith('A') ? 'B' : 'A'}`;
    await refused(flipped, 401, /error="invalid_token"/);
  });
  it("with another client's token (no delegations scope): 403 insufficient_scope", async () => {
    const t = (await tokenFor(w.cloud, 'adam', { clientId: 'other-app', scope: 'openid profile' })).token;
    await refused(t, 403, /error="insufficient_scope"/);
  });
  it.runIf(e.owned === true)('by the wrong user: 404, as if it did not exist', async () => {
    const carol = (await tokenFor(w.cloud, 'carol')).token;
    await refused(carol, 404);
  });
});

/** Malformed bodies per body-taking endpoint: [what, raw body or JSON value, expected status]. */
const MALFORMED: Record<
  string,
  readonly (readonly [string, { raw?: string; body?: unknown; type?: string }, number])[]
> = {
  '/devices': [
    ['not JSON', { raw: '{"key":' }, 400],
    ['an unknown field', { body: { key: phoneJwk(), admin: true } }, 400],
    ['a private key (d)', { body: { key: { ...phoneJwk(), d: 'A'.repeat(43) } } }, 400],
    ['an Ed25519 key', { body: { key: { kty: 'OKP', crv: 'Ed25519', x: 'A'.repeat(43) } } }, 400],
    ['a point off the curve', { body: { key: { ...phoneJwk(), y: 'A'.repeat(43) } } }, 400],
    ['a name too long', { body: { key: phoneJwk(), name: 'x'.repeat(65) } }, 400],
    ['no key', { body: {} }, 400],
    ['text/plain', { raw: '{}', type: 'text/plain' }, 415],
    ['over 64 KiB', { body: { key: phoneJwk(), name: 'x'.repeat(70_000) } }, 413],
  ],
  '/locks': [
    ['a receipt that is not base64url', { body: { receipt: '+/=' } }, 400],
    ['a receipt of the wrong type', { body: { receipt: 7 } }, 400],
    ['an unknown field', { body: { receipt: 'AA', owner: 'adam' } }, 400],
    ['garbage bytes as receipt', { body: { receipt: 'AAAA' } }, 422],
  ],
  [`/locks/${LOCK}/shares`]: [
    ['scope manage', { body: { rider: 'carol', scope: ['manage'], notAfter: future() } }, 400],
    [
      'scope delegate asked directly',
      { body: { rider: 'carol', scope: ['delegate'], notAfter: future() } },
      400,
    ],
    ['no scope', { body: { rider: 'carol', scope: [], notAfter: future() } }, 400],
    [
      'a date that is not ISO 8601',
      { body: { rider: 'carol', scope: ['unlock'], notAfter: 'tomorrow' } },
      400,
    ],
    [
      'notAfter in the past',
      { body: { rider: 'carol', scope: ['unlock'], notAfter: '2020-01-01T00:00:00Z' } },
      400,
    ],
    [
      'notBefore after notAfter',
      {
        body: {
          rider: 'carol',
          scope: ['unlock'],
          notBefore: '2099-01-02T00:00:00Z',
          notAfter: '2099-01-01T00:00:00Z',
        },
      },
      400,
    ],
    ['an unknown rider', { body: { rider: 'nobody', scope: ['unlock'], notAfter: future() } }, 400],
    ['the owner as rider', { body: { rider: 'adam', scope: ['unlock'], notAfter: future() } }, 400],
    ['maxUses 0', { body: { rider: 'carol', scope: ['unlock'], notAfter: future(), maxUses: 0 } }, 400],
    [
      'a schedule window ending before it starts',
      {
        body: {
          rider: 'carol',
          scope: ['unlock'],
          notAfter: future(),
          schedule: [{ days: ['mon'], start: '18:00', end: '08:00' }],
        },
      },
      400,
    ],
    [
      'a schedule with an unknown day',
      {
        body: {
          rider: 'carol',
          scope: ['unlock'],
          notAfter: future(),
          schedule: [{ days: ['funday'], start: '08:00', end: '09:00' }],
        },
      },
      400,
    ],
    [
      '15 schedule windows',
      {
        body: {
          rider: 'carol',
          scope: ['unlock'],
          notAfter: future(),
          schedule: Array.from({ length: 15 }, () => ({ days: ['mon'], start: '08:00', end: '09:00' })),
        },
      },
      400,
    ],
    [
      'an unknown field',
      { body: { rider: 'carol', scope: ['unlock'], notAfter: future(), id: 'mine' } },
      400,
    ],
  ],
  '/sync': [
    ['records that are not base64url', { body: { lock: LOCK, records: ['!!'] } }, 400],
    ['a bad lock id', { body: { lock: 'LOCK!', records: [] } }, 400],
    ['an unknown field', { body: { lock: LOCK, records: [], extra: 1 } }, 400],
  ],
};

describe.each(Object.entries(MALFORMED))('POST %s with a malformed body', (path, cases) => {
  it.each(cases.map((c) => [c[0], c[1], c[2]] as const))(
    'refuses %s and stores nothing',
    async (_what, input, status) => {
      const before = await snapshot();
      const r = await call(w.base, 'POST', path, {
        token: adam,
        ...(input.raw !== undefined ? { raw: input.raw } : { body: input.body }),
        ...(input.type !== undefined ? { contentType: input.type } : {}),
        template: path.startsWith('/locks/') ? '/locks/{lockId}/shares' : path,
      });
      expect(r.status).toBe(status);
      expect(r.body.error).toMatch(/^ERR_API_/);
      expect(String(r.body.message).length).toBeGreaterThan(5);
      expect(await snapshot()).toBe(before);
    },
  );
});

describe('routing', () => {
  it('an unknown path is 404 and a wrong method 405, both in the error shape', async () => {
    expect((await call(w.base, 'GET', '/nowhere', { token: adam })).status).toBe(404);
    expect((await call(w.base, 'PUT', '/locks', { token: adam })).status).toBe(405);
  });
  it('a malformed path parameter is 400 naming it', async () => {
    const r = await call(w.base, 'GET', '/locks/NOT_A_LOCK', { token: adam, template: '/locks/{lockId}' });
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/lockId/);
  });
  it('names the field at fault', async () => {
    const r = await call(w.base, 'POST', `/locks/${LOCK}/shares`, {
      token: adam,
      template: '/locks/{lockId}/shares',
      body: { rider: 'carol', scope: ['unlock'], notAfter: future(), colour: 'red' },
    });
    expect(r.body).toEqual({ error: 'ERR_API_BODY', message: 'body: unknown field "colour"' });
  });
});
