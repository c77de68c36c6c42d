/**
 * The tester dashboard (issue 11 §2), mounted at `/dashboard` on the cloud's HTTP listener: a page of plain
 * ES modules (no framework, no external network, a strict Content-Security-Policy), uPlot served from
 * node_modules, a live feed over server-sent events, and JSON endpoints:
 *
 * | method path (under the mount) | who | what |
 * | --- | --- | --- |
 * | GET `/`, `/callback` | anyone | the page (the callback finishes the login in the page) |
 * | GET `/config.json` | anyone | issuer, client id, scope, API base the page uses |
 * | GET `/api/session` | anyone | whether this request may use tester controls, who is logged in, has a phone |
 * | GET `/api/locks` | tester | snapshots of the simulated locks and their shipped traces |
 * | GET `/api/events` | tester | the live feed (`text/event-stream`) |
 * | POST `/api/locks/{lockId}/{control}` | tester | a tester control (controls.ts) |
 * | POST `/api/phone/{unlock,relock}` | logged-in user | `{"lock"}`: the user's simulated phone acts |
 *
 * Who is a tester (decided here, documented in cloud-bridge/README.md "Dashboard"): a request that arrives on
 * a loopback address with a loopback Host header and no proxy header (someone at the machine that runs the
 * simulation: `npm start`), or one carrying a valid bearer access token of the OpenID Provider (a logged-in
 * session, e.g. a phone on the bench's network). The Host check stops DNS rebinding; the proxy-header check
 * stops a TLS proxy on the same machine from making the world loopback. Every POST must be
 * `application/json` (another site cannot send that without a CORS preflight, which is never granted) and,
 * when the browser names an Origin, come from the dashboard's own origin. Controls exist only for the
 * {@link SimLockControl}s passed in: a real lock has none.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CloudError } from '../errors.js';
import { CONTROLS, DashboardError, onlyFields } from './controls.js';
import { FeedHub } from './feed.js';
import type { CloudStore } from '../store/types.js';
import type { SimLockControl, SimPhoneControl } from './sim-control.js';

/** Who a bearer access token stands for (TandemOidc.verifyAccessToken's answer, narrowed). */
export interface DashboardUser {
  readonly accountId: string;
}

/** Options of {@link dashboardHandler}. */
export interface DashboardOptions {
  readonly simLocks: readonly SimLockControl[];
  /** The demo users' simulated phones (unlock and relock from the page). */
  readonly phones?: readonly SimPhoneControl[];
  readonly store: CloudStore;
  /** The OpenID Provider's issuer identifier; the page logs in there (code + PKCE). */
  readonly issuer: string;
  /** Where the sharing API lives, as the page should call it (default `/api/v1`). */
  readonly apiBase?: string;
  /** Resolves a bearer access token (TandemOidc.verifyAccessToken); absent: nobody can log in. */
  readonly verifyAccessToken?: (token: string) => Promise<DashboardUser | undefined>;
  /** The OAuth client id of the page (default `tandem-dashboard`, registered by `tandemClients`). */
  readonly clientId?: string;
  /** Scopes the page asks for (default `openid profile delegations`: the sharing API needs `delegations`). */
  readonly scope?: string;
  /** Where the handler is mounted (default `/dashboard`). */
  readonly mountPath?: string;
  readonly pollMs?: number;
  readonly accelBatchMs?: number;
}

/** The Node request handler, and `close()` which ends the live feeds (call it before closing the listener). */
export type DashboardHandler = ((req: IncomingMessage, res: ServerResponse) => void) & {
  close(): void;
};

/** The redirect URI of the dashboard client for an issuer (register it with `tandemClients`). */
export function dashboardRedirectUri(issuer: string, mountPath = '/dashboard'): string {
  return new URL(`${mountPath}/callback`, issuer.endsWith('/') ? issuer : `${issuer}/`).href;
}

const here = dirname(fileURLToPath(import.meta.url));

interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

/**
 * The page's folder: beside this module when it runs from source, or found by walking up from the build
 * (tsc's dist/cloud-bridge/src/dashboard/ or the esbuild bundle in dist/bundle/), which copies no HTML.
 */
export function publicDir(from = here): string {
  const own = join(from, 'public');
  if (existsSync(join(own, 'index.html'))) return own;
  let dir = from;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'cloud-bridge', 'src', 'dashboard', 'public');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    dir = dirname(dir);
  }
  throw new CloudError(
    'ERR_CLOUD_CONFIG',
    `the dashboard's page (cloud-bridge/src/dashboard/public/index.html) is not beside ${from} or above it`,
  );
}

function loadAssets(): Map<string, Asset> {
  const pub = publicDir();
  const uplot = dirname(createRequire(import.meta.url).resolve('uplot'));
  const read = (path: string, type: string): Asset => ({ type, body: readFileSync(path) });
  return new Map([
    ['/', read(join(pub, 'index.html'), 'text/html; charset=utf-8')],
    ['/callback', read(join(pub, 'index.html'), 'text/html; charset=utf-8')],
    ['/dashboard.js', read(join(pub, 'dashboard.js'), 'text/javascript; charset=utf-8')],
    ['/dashboard.css', read(join(pub, 'dashboard.css'), 'text/css; charset=utf-8')],
    ['/vendor/uPlot.iife.min.js', read(join(uplot, 'uPlot.iife.min.js'), 'text/javascript; charset=utf-8')],
    ['/vendor/uPlot.min.css', read(join(uplot, 'uPlot.min.css'), 'text/css; charset=utf-8')],
    // uPlot is MIT-licensed: its licence travels with the copy we serve.
    ['/vendor/uPlot.LICENSE.txt', read(join(uplot, '..', 'LICENSE'), 'text/plain; charset=utf-8')],
  ]);
}

const LOOPBACK_ADDRESS = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;
const LOOPBACK_HOST = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)(:\d+)?$/i;

/** True for a request from this machine, addressed to a loopback name, not relayed by a proxy. */
export function isLoopbackRequest(req: IncomingMessage): boolean {
  if (req.headers['x-forwarded-for'] !== undefined || req.headers.forwarded !== undefined) return false;
  return LOOPBACK_ADDRESS.test(req.socket.remoteAddress ?? '') && LOOPBACK_HOST.test(req.headers.host ?? '');
}

function csp(issuerOrigin: string): string {
  // uPlot sets element styles through the CSSOM, which style-src does not govern; no inline script at all.
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self' ${issuerOrigin}`,
    `form-action 'self' ${issuerOrigin}`,
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

async function readJson(req: IncomingMessage, max: number): Promise<Record<string, unknown>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new DashboardError(415, 'ERR_DASH_BODY', 'the body must be application/json');
  }
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) throw new DashboardError(413, 'ERR_DASH_BODY', `the body exceeds ${max} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw new DashboardError(413, 'ERR_DASH_BODY', `the body exceeds ${max} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let v: unknown;
  try {
    v = text.length === 0 ? {} : JSON.parse(text);
  } catch {
    throw new DashboardError(400, 'ERR_DASH_BODY', 'the body is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new DashboardError(400, 'ERR_DASH_BODY', 'the body must be a JSON object');
  }
  return v as Record<string, unknown>;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(JSON.stringify(body));
}

/** Builds the dashboard's request handler. */
export function dashboardHandler(options: DashboardOptions): DashboardHandler {
  const mount = options.mountPath ?? '/dashboard';
  const issuerOrigin = new URL(options.issuer).origin;
  const locks = new Map(options.simLocks.map((l) => [l.lockId, l]));
  const phones = new Map((options.phones ?? []).map((p) => [p.user, p]));
  const assets = loadAssets();
  const feed = new FeedHub({
    locks: options.simLocks,
    store: options.store,
    ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
    ...(options.accelBatchMs === undefined ? {} : { accelBatchMs: options.accelBatchMs }),
  });
  const config = {
    issuer: options.issuer,
    clientId: options.clientId ?? 'tandem-dashboard',
    scope: options.scope ?? 'openid profile delegations',
    apiBase: options.apiBase ?? '/api/v1',
    mountPath: mount,
  };
  const securityHeaders = {
    'content-security-policy': csp(issuerOrigin),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
  };

  async function user(req: IncomingMessage): Promise<DashboardUser | undefined> {
    const h = req.headers.authorization;
    if (h === undefined) return undefined;
    const m = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(h);
    const found = m && options.verifyAccessToken ? await options.verifyAccessToken(m[1]!) : undefined;
    if (!found) {
      throw new DashboardError(401, 'ERR_DASH_UNAUTHORIZED', 'the bearer access token is invalid or expired');
    }
    return found;
  }

  async function tester(req: IncomingMessage): Promise<void> {
    if ((await user(req)) !== undefined || isLoopbackRequest(req)) return;
    throw new DashboardError(
      403,
      'ERR_DASH_FORBIDDEN',
      'tester controls need a page opened on this machine (127.0.0.1) or a login',
    );
  }

  function sameOrigin(req: IncomingMessage): void {
    const origin = req.headers.origin;
    if (origin === undefined) return; // not a browser, or a same-origin GET
    const own = `http://${req.headers.host ?? ''}`;
    if (origin !== issuerOrigin && origin !== own) {
      throw new DashboardError(403, 'ERR_DASH_FORBIDDEN', `requests from ${origin} are not accepted`);
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = req.method ?? 'GET';
    const asset = assets.get(path);
    if (asset !== undefined || path === '/config.json') {
      if (method !== 'GET' && method !== 'HEAD') {
        throw new DashboardError(405, 'ERR_DASH_METHOD', `${method} is not allowed on ${mount}${path}`);
      }
      if (path === '/config.json') return sendJson(res, 200, config, securityHeaders);
      res.writeHead(200, {
        'content-type': asset!.type,
        'cache-control': 'no-cache',
        ...securityHeaders,
      });
      res.end(method === 'HEAD' ? undefined : asset!.body);
      return;
    }
    if (path === '/api/session' && method === 'GET') {
      let who: DashboardUser | undefined;
      try {
        who = await user(req);
      } catch {
        who = undefined; // an expired token: the page logs in again
      }
      const isTester = who !== undefined || isLoopbackRequest(req);
      return sendJson(res, 200, {
        tester: isTester,
        user: who?.accountId ?? null,
        phone: who !== undefined && phones.has(who.accountId),
        // Which simulated locks exist is for testers only.
        locks: isTester ? [...locks.keys()] : [],
      });
    }
    if (path === '/api/locks' && method === 'GET') {
      await tester(req);
      return sendJson(res, 200, {
        locks: options.simLocks.map((l) => ({ snapshot: l.snapshot(), traces: l.traces() })),
      });
    }
    if (path === '/api/events' && method === 'GET') {
      await tester(req);
      await feed.attach(res);
      return;
    }
    const control = /^\/api\/locks\/([^/]{1,64})\/([a-z-]{1,32})$/.exec(path);
    if (control) {
      if (method !== 'POST') throw new DashboardError(405, 'ERR_DASH_METHOD', 'controls are POST requests');
      sameOrigin(req);
      await tester(req);
      const lock = locks.get(decodeURIComponent(control[1]!));
      if (!lock) {
        throw new DashboardError(
          404,
          'ERR_DASH_NOT_FOUND',
          `no simulated lock ${JSON.stringify(control[1])}`,
        );
      }
      const c = Object.hasOwn(CONTROLS, control[2]!) ? CONTROLS[control[2]!] : undefined;
      if (!c) throw new DashboardError(404, 'ERR_DASH_NOT_FOUND', `no control "${control[2]}"`);
      const body = await readJson(req, c.maxBody);
      try {
        await c.run(lock, body);
      } catch (e) {
        if (e instanceof DashboardError) throw e;
        throw new DashboardError(409, 'ERR_DASH_CONTROL', `${control[2]} failed: ${(e as Error).message}`);
      }
      return sendJson(res, 200, { snapshot: lock.snapshot() });
    }
    const phone = /^\/api\/phone\/(unlock|relock)$/.exec(path);
    if (phone) {
      if (method !== 'POST')
        throw new DashboardError(405, 'ERR_DASH_METHOD', 'phone actions are POST requests');
      sameOrigin(req);
      const who = await user(req);
      if (!who) throw new DashboardError(401, 'ERR_DASH_UNAUTHORIZED', 'log in to use your phone');
      const body = await readJson(req, 1024);
      onlyFields(body, ['lock']);
      if (typeof body.lock !== 'string' || body.lock.length === 0 || body.lock.length > 64) {
        throw new DashboardError(400, 'ERR_DASH_FIELD', '"lock" must be a lock id');
      }
      const p = phones.get(who.accountId);
      if (!p) {
        throw new DashboardError(404, 'ERR_DASH_NOT_FOUND', `${who.accountId} has no simulated phone here`);
      }
      try {
        const result = phone[1] === 'unlock' ? await p.unlock(body.lock) : await p.relock(body.lock);
        return sendJson(res, 200, { result });
      } catch (e) {
        throw new DashboardError(409, 'ERR_DASH_CONTROL', `${phone[1]} failed: ${(e as Error).message}`);
      }
    }
    if (path.startsWith('/api/')) {
      throw new DashboardError(404, 'ERR_DASH_NOT_FOUND', `no endpoint ${method} ${mount}${path}`);
    }
    throw new DashboardError(404, 'ERR_DASH_NOT_FOUND', `no page ${mount}${path}`);
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    const raw = url.split('?')[0]!;
    const path = raw === mount ? '/' : raw.startsWith(`${mount}/`) ? raw.slice(mount.length) : undefined;
    const done = (e: unknown) => {
      const err =
        e instanceof DashboardError
          ? e
          : new DashboardError(500, 'ERR_DASH_CONTROL', `internal error: ${(e as Error).message}`);
      if (res.headersSent) {
        res.end();
        return;
      }
      sendJson(
        res,
        err.status,
        { error: err.code, message: err.message },
        err.status === 401
          ? { 'www-authenticate': 'Bearer error="invalid_token"' }
          : // A refused upload is not read to its end: the connection closes rather than drain it.
            err.status === 413
            ? { connection: 'close' }
            : {},
      );
    };
    if (path === undefined) return done(new DashboardError(404, 'ERR_DASH_NOT_FOUND', `not under ${mount}`));
    if (raw === mount) {
      // The page's relative URLs (its script, the callback) need the trailing slash.
      res.writeHead(302, { location: `${mount}/` });
      res.end();
      return;
    }
    route(req, res, path).catch(done);
  };
  return Object.assign(handler, { close: () => feed.close() });
}
