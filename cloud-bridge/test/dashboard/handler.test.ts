/**
 * The dashboard's HTTP boundary without a browser: who may use tester controls (loopback with a loopback
 * Host and no proxy header, or a valid bearer token), what a control accepts, and that every refusal is a
 * coded 4xx naming what is wrong while the simulated lock is not touched. The lock here is a recording
 * double of SimLockControl: what matters is whether the handler called it.
 */
import { createServer, request } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardHandler, publicDir } from '../../src/dashboard/handler.js';
import type { DashboardHandler } from '../../src/dashboard/handler.js';
import { parseSamples } from '../../src/dashboard/controls.js';
import { recordView } from '../../src/dashboard/feed.js';
import type { SimLockControl, SimLockSnapshot, SimPhoneControl } from '../../src/dashboard/sim-control.js';
import type { CloudStore } from '../../src/store/types.js';

const SNAPSHOT: SimLockSnapshot = {
  lockId: 'lock-1',
  state: 'locked',
  solenoid: false,
  latched: true,
  powered: true,
  time: { earliest: 1_800_000_000, latest: 1_800_000_004, source: 'beacon' },
  revocation: { held: 3, acknowledged: 3 },
  outboxDepth: 0,
  lockouts: 0,
  battery: 87,
  radio: { up: true, profile: 'android-14', latencyMs: 0, loss: 0, mtu: 185, connected: false },
  mqtt: 'connected',
};

const calls: string[] = [];
let failNext = false;

const lock: SimLockControl = {
  lockId: 'lock-1',
  snapshot: () => SNAPSHOT,
  onChange: () => () => undefined,
  onAccel: () => () => undefined,
  onTheft: () => () => undefined,
  traces: () => ['wind', 'tamper'],
  ...Object.fromEntries(
    [
      'playTrace',
      'bump',
      'shake',
      'cutPower',
      'restorePower',
      'resetClock',
      'setRadio',
      'setMqtt',
      'jamLatch',
      'pushShackle',
      'setBattery',
    ].map((name) => [
      name,
      async (...args: unknown[]) => {
        if (failNext) {
          failNext = false;
          throw new Error('the simulated latch is stuck');
        }
        calls.push(`${name} ${JSON.stringify(args)}`);
      },
    ]),
  ),
} as unknown as SimLockControl;

const phone: SimPhoneControl = {
  user: 'bianca',
  unlock: async (lockId) => (calls.push(`phone unlock ${lockId}`), { status: 'OK', state: 'open' }),
  relock: async (lockId) => (calls.push(`phone relock ${lockId}`), { status: 'OK' }),
};

const store = {
  listEvents: async () => [],
  listEpochs: async () => [],
  recordsAfter: async () => [],
} as unknown as CloudStore;

let server: Server;
let port: number;
let handler: DashboardHandler;

beforeAll(async () => {
  server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  handler = dashboardHandler({
    simLocks: [lock],
    phones: [phone],
    store,
    issuer: `http://127.0.0.1:${port}`,
    verifyAccessToken: async (t) => (t === 'good-token' ? { accountId: 'bianca' } : undefined),
  });
  server.on('request', handler);
});

afterAll(async () => {
  handler.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw request, so that Host, Origin and proxy headers are exactly what a test says. */
function send(
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: {
          host: `127.0.0.1:${port}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const json = (a: Answer) => JSON.parse(a.body) as Record<string, unknown>;

describe('the dashboard page', () => {
  it('is found from the source folder and from a build folder below the repository', () => {
    const src = publicDir();
    expect(src).toMatch(/cloud-bridge[/\\]src[/\\]dashboard[/\\]public$/);
    const root = join(src, '..', '..', '..', '..');
    expect(publicDir(join(root, 'dist', 'bundle'))).toBe(src);
    expect(publicDir(join(root, 'dist', 'cloud-bridge', 'src', 'dashboard'))).toBe(src);
    expect(() => publicDir('/')).toThrow(/the dashboard's page .* is not beside \/ or above it/);
  });

  it('is served with a strict Content-Security-Policy and no external source', async () => {
    const a = await send('GET', '/dashboard/');
    expect(a.status).toBe(200);
    const csp = String(a.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:\/\/(?!127\.0\.0\.1)/);
    expect(a.body).not.toMatch(/<script>|src="https?:|href="https?:/);
  });

  it('redirects /dashboard to /dashboard/ so that its relative URLs resolve', async () => {
    const a = await send('GET', '/dashboard');
    expect(a.status).toBe(302);
    expect(a.headers.location).toBe('/dashboard/');
  });

  it('serves uPlot from node_modules with its licence', async () => {
    const js = await send('GET', '/dashboard/vendor/uPlot.iife.min.js');
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toMatch(/^text\/javascript/);
    expect(js.body).toContain('uPlot');
    const licence = await send('GET', '/dashboard/vendor/uPlot.LICENSE.txt');
    expect(licence.body).toMatch(/MIT License/);
  });

  it('answers an unknown path with a coded 404', async () => {
    const a = await send('GET', '/dashboard/../etc/passwd');
    expect(a.status).toBe(404);
    expect(json(a).error).toBe('ERR_DASH_NOT_FOUND');
  });
});

describe('who may use tester controls', () => {
  it('a request from loopback may, and the lock acts', async () => {
    calls.length = 0;
    const a = await send('POST', '/dashboard/api/locks/lock-1/bump', '{}');
    expect(a.status).toBe(200);
    expect(json(a).snapshot).toEqual(SNAPSHOT);
    expect(calls).toEqual(['bump []']);
  });

  it('a Host that is not a loopback name (DNS rebinding) is 403 and the lock does not act', async () => {
    calls.length = 0;
    const a = await send('POST', '/dashboard/api/locks/lock-1/bump', '{}', { host: 'evil.example' });
    expect(a.status).toBe(403);
    expect(json(a)).toEqual({
      error: 'ERR_DASH_FORBIDDEN',
      message: 'tester controls need a page opened on this machine (127.0.0.1) or a login',
    });
    expect(calls).toEqual([]);
  });

  it('a request relayed by a proxy is not loopback: 403, and the lock does not act', async () => {
    calls.length = 0;
    const a = await send('POST', '/dashboard/api/locks/lock-1/push-shackle', '{}', {
      'x-forwarded-for': '203.0.113.7',
    });
    expect(a.status).toBe(403);
    expect(calls).toEqual([]);
    const feed = await send('GET', '/dashboard/api/locks', undefined, { forwarded: 'for=203.0.113.7' });
    expect(feed.status).toBe(403);
  });

  it('a relayed request with a valid bearer token may', async () => {
    calls.length = 0;
    const a = await send('POST', '/dashboard/api/locks/lock-1/mqtt', '{"up":false}', {
      'x-forwarded-for': '203.0.113.7',
      authorization: 'Bearer good-token',
    });
    expect(a.status).toBe(200);
    expect(calls).toEqual(['setMqtt [false]']);
  });

  it('an invalid bearer token is 401 with WWW-Authenticate, even from loopback', async () => {
    calls.length = 0;
    const a = await send('POST', '/dashboard/api/locks/lock-1/bump', '{}', { authorization: 'Bearer nope' });
    expect(a.status).toBe(401);
    expect(a.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    expect(json(a).error).toBe('ERR_DASH_UNAUTHORIZED');
    expect(calls).toEqual([]);
  });

  it('a POST from another origin is 403 and the lock does not act', async () => {
    calls.length = 0;
    const a = await send('POST', '/dashboard/api/locks/lock-1/bump', '{}', { origin: 'http://evil.example' });
    expect(a.status).toBe(403);
    expect(json(a)).toEqual({
      error: 'ERR_DASH_FORBIDDEN',
      message: 'requests from http://evil.example are not accepted',
    });
    expect(calls).toEqual([]);
  });

  it('the session endpoint tells the page what it may do', async () => {
    expect(json(await send('GET', '/dashboard/api/session'))).toEqual({
      tester: true,
      user: null,
      phone: false,
      locks: ['lock-1'],
    });
    expect(json(await send('GET', '/dashboard/api/session', undefined, { host: 'evil.example' }))).toEqual({
      tester: false,
      user: null,
      phone: false,
      locks: [],
    });
    expect(
      json(await send('GET', '/dashboard/api/session', undefined, { authorization: 'Bearer good-token' })),
    ).toMatchObject({ tester: true, user: 'bianca', phone: true });
  });
});

describe('controls refuse malformed input with a coded 4xx and do not act', () => {
  const refusals: [string, string, string | undefined, number, string, string][] = [
    ['unknown field', 'bump', '{"hard":true}', 400, 'ERR_DASH_FIELD', '"hard" is not a field'],
    ['shake without ms', 'shake', '{}', 400, 'ERR_DASH_FIELD', '"ms" must be an integer from 1 to 600000'],
    ['shake too long', 'shake', '{"ms":600001}', 400, 'ERR_DASH_FIELD', '"ms" must be an integer'],
    ['power as a string', 'power', '{"on":"yes"}', 400, 'ERR_DASH_FIELD', '"on" must be true or false'],
    ['MTU below 23', 'radio', '{"mtu":22}', 400, 'ERR_DASH_FIELD', '"mtu" must be an integer from 23 to 517'],
    ['loss above 1', 'radio', '{"loss":1.5}', 400, 'ERR_DASH_FIELD', '"loss" must be a number from 0 to 1'],
    ['empty radio', 'radio', '{}', 400, 'ERR_DASH_FIELD', '"up" or another radio setting must be given'],
    ['bad profile', 'radio', '{"profile":"../x"}', 400, 'ERR_DASH_FIELD', '"profile" must be a profile name'],
    ['unknown trace', 'play-trace', '{"name":"earthquake"}', 400, 'ERR_DASH_FIELD', 'wind, tamper'],
    ['no trace', 'play-trace', '{}', 400, 'ERR_DASH_FIELD', '"name" or "samples" must be given'],
    [
      'battery above 100',
      'battery',
      '{"percent":101}',
      400,
      'ERR_DASH_FIELD',
      '"percent" must be an integer from 0 to 100',
    ],
    [
      'battery fraction',
      'battery',
      '{"percent":50.5}',
      400,
      'ERR_DASH_FIELD',
      '"percent" must be an integer',
    ],
    ['not JSON', 'bump', '{', 400, 'ERR_DASH_BODY', 'the body is not valid JSON'],
    ['an array', 'bump', '[]', 400, 'ERR_DASH_BODY', 'the body must be a JSON object'],
    ['unknown control', 'explode', '{}', 404, 'ERR_DASH_NOT_FOUND', 'no control "explode"'],
    ['prototype name', 'constructor', '{}', 404, 'ERR_DASH_NOT_FOUND', 'no control "constructor"'],
  ];
  it.each(refusals)('%s', async (_name, control, body, status, code, message) => {
    calls.length = 0;
    const a = await send('POST', `/dashboard/api/locks/lock-1/${control}`, body);
    expect(a.status).toBe(status);
    expect(json(a).error).toBe(code);
    expect(String(json(a).message)).toContain(message);
    expect(calls).toEqual([]);
  });

  it('an unknown lock is 404: controls exist only for simulated locks', async () => {
    const a = await send('POST', '/dashboard/api/locks/real-lock/bump', '{}');
    expect(a.status).toBe(404);
    expect(json(a)).toEqual({ error: 'ERR_DASH_NOT_FOUND', message: 'no simulated lock "real-lock"' });
  });

  it('a body that is not application/json is 415', async () => {
    calls.length = 0;
    const a = await send('POST', '/dashboard/api/locks/lock-1/bump', 'x=1', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(a.status).toBe(415);
    expect(json(a).error).toBe('ERR_DASH_BODY');
    expect(calls).toEqual([]);
  });

  it('a body over the control’s limit is 413', async () => {
    calls.length = 0;
    const a = await send(
      'POST',
      '/dashboard/api/locks/lock-1/bump',
      JSON.stringify({ pad: 'x'.repeat(2000) }),
    );
    expect(a.status).toBe(413);
    expect(json(a)).toEqual({ error: 'ERR_DASH_BODY', message: 'the body exceeds 1024 bytes' });
    expect(calls).toEqual([]);
  });

  it('GET on a control is 405', async () => {
    const a = await send('GET', '/dashboard/api/locks/lock-1/bump');
    expect(a.status).toBe(405);
    expect(json(a).error).toBe('ERR_DASH_METHOD');
  });

  it('a control the lock fails is 409 ERR_DASH_CONTROL with the lock’s reason', async () => {
    failNext = true;
    const a = await send('POST', '/dashboard/api/locks/lock-1/jam', '{"jammed":true}');
    expect(a.status).toBe(409);
    expect(json(a)).toEqual({
      error: 'ERR_DASH_CONTROL',
      message: 'jam failed: the simulated latch is stuck',
    });
  });

  it('a good radio setting and an uploaded trace reach the lock as given', async () => {
    calls.length = 0;
    const radio = await send('POST', '/dashboard/api/locks/lock-1/radio', '{"mtu":23,"loss":0.25}');
    expect(radio.status).toBe(200);
    const samples = [
      { t: 0, x: 0, y: 0, z: 1 },
      { t: 10, x: 0.5, y: 0, z: 1 },
    ];
    const trace = await send('POST', '/dashboard/api/locks/lock-1/play-trace', JSON.stringify({ samples }));
    expect(trace.status).toBe(200);
    expect(calls).toEqual([
      'setRadio [{"loss":0.25,"mtu":23}]',
      `playTrace [${JSON.stringify({ samples })}]`,
    ]);
  });
});

describe('uploaded traces', () => {
  it('accepts increasing times and accelerations within ±16 g', () => {
    expect(parseSamples([{ t: 0, x: -16, y: 16, z: 1 }])).toEqual([{ t: 0, x: -16, y: 16, z: 1 }]);
  });
  it.each([
    ['an empty array', [], '"samples" must be an array of 1 to 60000 samples'],
    [
      'a time going back',
      [
        { t: 5, x: 0, y: 0, z: 1 },
        { t: 5, x: 0, y: 0, z: 1 },
      ],
      '"samples[1].t" must be later',
    ],
    ['an axis out of range', [{ t: 0, x: 17, y: 0, z: 1 }], '"samples[0].x" must be an acceleration in g'],
    ['a missing axis', [{ t: 0, x: 0, y: 0 }], '"samples[0].z" must be an acceleration in g'],
    ['an extra field', [{ t: 0, x: 0, y: 0, z: 1, w: 0 }], '"samples[0].w" is not a field of a sample'],
    ['a negative time', [{ t: -1, x: 0, y: 0, z: 1 }], '"samples[0].t" must be a time in milliseconds'],
  ])('refuses %s', (_name, samples, message) => {
    expect(() => parseSamples(samples)).toThrow(message);
  });
});

describe('phone actions', () => {
  it('need a login: 401 without a token, and the phone does not act', async () => {
    calls.length = 0;
    const a = await send('POST', '/dashboard/api/phone/unlock', '{"lock":"lock-1"}');
    expect(a.status).toBe(401);
    expect(json(a).error).toBe('ERR_DASH_UNAUTHORIZED');
    expect(calls).toEqual([]);
  });

  it('act on the logged-in user’s own phone', async () => {
    calls.length = 0;
    const a = await send('POST', '/dashboard/api/phone/unlock', '{"lock":"lock-1"}', {
      authorization: 'Bearer good-token',
    });
    expect(a.status).toBe(200);
    expect(json(a)).toEqual({ result: { status: 'OK', state: 'open' } });
    expect(calls).toEqual(['phone unlock lock-1']);
  });

  it('refuse an unknown field', async () => {
    calls.length = 0;
    const a = await send('POST', '/dashboard/api/phone/relock', '{"lock":"lock-1","force":true}', {
      authorization: 'Bearer good-token',
    });
    expect(a.status).toBe(400);
    expect(json(a).message).toContain('"force" is not a field');
    expect(calls).toEqual([]);
  });
});

describe('records in the feed', () => {
  it('show what a record could not be decoded as, rather than dropping it', () => {
    const v = recordView({
      lockId: 'lock-1',
      epoch: 1,
      sequence: 7,
      kind: 'alert',
      bytes: new Uint8Array([0xff, 0x00]),
      time: 1_800_000_000,
      receivedAt: 1_800_000_000_123,
      via: 'mqtt',
    });
    expect(v).toMatchObject({ lockId: 'lock-1', sequence: 7, kind: 'alert', what: 'undecodable' });
    expect(String(v.detail.error)).not.toBe('');
  });
});
