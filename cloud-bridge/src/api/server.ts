/**
 * The sharing API (issue 10, part 2; cloud-bridge/api/openapi.json), mounted at `/api/v1` on the cloud's one
 * HTTP listener. A table of routes, each `{auth, body, run}` (after vehicle-command's command table): the
 * router authenticates with the OpenID Provider's access tokens, validates path parameters and bodies against
 * the document's schemas, and only then runs the route, so nothing is stored from a refused request.
 *
 * Access: every route needs a token with the `delegations` scope (the first-party clients' Tandem scope;
 * a third-party client never gets it): 401 without a live token, 403 without the scope. An owner reaches only
 * the locks they claimed, a rider only the shares they hold; anyone else's lock, share or device is 404, the
 * same answer as one that does not exist.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JsonWebKey } from 'node:crypto';
import type { PublicKey } from '../../../protocol/src/keys.js';
import { decodeClaimReceipt, verifyClaimReceipt } from '../../../protocol/src/claim-receipt.js';
import { publicKeyFromJwk, publicKeyFromRaw } from '../../../protocol/src/keys.js';
import { decodeAlert, decodeAuditRecord } from '../../../protocol/src/mqtt.js';
import { holderRevocationId } from '../../../protocol/src/revocation.js';
import { UINT32_MAX } from '../../../protocol/src/index.js';
import { isCloudError } from '../errors.js';
import type { LogSink } from '../log.js';
import { debugSink } from '../log.js';
import { DELEGATION_TTL_SECONDS, DELEGATIONS_SCOPE, shareCti } from '../oidc/delegations.js';
import { OidcError } from '../oidc/errors.js';
import type { AccessTokenInfo } from '../oidc/provider.js';
import type { CloudEvent, CloudStore, LockClaim, Share, StoredRecord } from '../store/types.js';
import { ApiError, notFound } from './errors.js';
import { describeErrors, validatorOf } from './schema.js';
import type { ScheduleWindowJson } from './views.js';
import { deviceView, iso, lockView, scheduleFromJson, shareView } from './views.js';

/** Where the API is mounted on the cloud's listener. */
export const API_PREFIX = '/api/v1';
/** The scope every route needs. */
export const API_SCOPE = DELEGATIONS_SCOPE;
/** Largest request body (contract: at most 64 KiB). */
export const MAX_BODY_BYTES = 64 * 1024;

/** One revocation entry: a token id (a share's cti or a holder id) and how long it must stay listed. */
export interface RevocationEntryInput {
  readonly id: Uint8Array;
  /** Unix seconds. */
  readonly exp: number;
}

/** What publishes revocations: the bridge ([TANDEM-REV-3], [TANDEM-MQTT-3]). */
export interface Revoker {
  /** Adds the entries to the lock's list in one new signed version, stored then published; resolves to it. */
  revokeEntries(
    lockId: string,
    entries: readonly RevocationEntryInput[],
  ): Promise<{ readonly version: number }>;
}

/** A claim receipt that verified against the lock's device key. */
export interface VerifiedClaim {
  readonly lockId: string;
  /** The owner name the lock was claimed for (must be the caller's account id). */
  readonly owner: string;
  readonly ownerKey: PublicKey;
  readonly ownerKid: Uint8Array;
}

/**
 * Verifies a claim receipt (protocol's `verifyClaimReceipt`): `deviceKeyOf` gives the registered device key
 * of a lock id, or undefined. Throws (any error, its message is shown) when the receipt does not verify.
 */
export type ClaimVerifier = (
  receipt: Uint8Array,
  deviceKeyOf: (lockId: string) => Promise<Uint8Array | undefined>,
) => Promise<VerifiedClaim>;

/**
 * The claim receipt of SPEC §12 ([TANDEM-CLAIM-3]): decoded to learn the lock id, then verified with the device
 * key the cloud registered for that lock. A lock the cloud does not know is 404.
 */
export const verifyClaimWithProtocol: ClaimVerifier = async (bytes, deviceKeyOf) => {
  const { receipt } = decodeClaimReceipt(bytes);
  const raw = await deviceKeyOf(receipt.lockId);
  if (raw === undefined)
    throw notFound(`lock "${receipt.lockId}" (register its device key with the cloud first)`);
  return verifyClaimReceipt(bytes, publicKeyFromRaw('EdDSA', raw), receipt.lockId);
};

/** The OpenID Provider as the API needs it. */
export interface ApiAuth {
  verifyAccessToken(token: string): Promise<AccessTokenInfo | undefined>;
  /** Revokes a grant and every token of it (a lost phone's login). */
  revokeGrant(grantId: string): Promise<void>;
}

/** The optional parts supplied by other modules (the phone's sync endpoint, the live event feed). */
export interface ApiExtensions {
  /** POST /sync: runs with the validated body once the caller is known to own the lock or hold a share of it (revoked ones too, until their notAfter). */
  readonly sync?: (body: SyncBody, caller: string) => Promise<object>;
  /** GET /events: streams server-sent events for the owner's locks after `lastEventId`. */
  readonly events?: (
    req: IncomingMessage,
    res: ServerResponse,
    locks: readonly string[],
    lastEventId: number | undefined,
  ) => void;
  /**
   * The issuer's anchor version ([TANDEM-ANCHOR-7], the keyring's), shown in each lock view beside the version
   * the lock acknowledged; without it the view shows 0.
   */
  readonly anchorVersion?: () => number;
  /** Called after the owner changed a lock's settings (PATCH /locks/{id}): Home Assistant discovery follows. */
  readonly lockSettingsChanged?: (lockId: string) => void;
}

/** The body of POST /sync, as validated. */
export interface SyncBody {
  readonly lock: string;
  readonly records: readonly string[];
  readonly challenge?: { readonly nonce: string; readonly revocationVersion: number };
}

/** Options of {@link createApiHandler}. */
export interface ApiOptions extends ApiExtensions {
  readonly store: CloudStore;
  readonly auth: ApiAuth;
  readonly revoker: Revoker;
  /** Default {@link verifyClaimWithProtocol}. */
  readonly verifyClaim?: ClaimVerifier;
  /** Unix milliseconds. */
  readonly now?: () => number;
  readonly log?: LogSink;
}

interface Ctx {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly who: AccessTokenInfo;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly body: unknown;
}

/** A route's answer: a status and a JSON body, or `undefined` when the route wrote the response itself. */
type Answer = { readonly status: number; readonly body: object } | undefined;

interface Route {
  /** Component schema of the request body; absent: the request must have none. */
  readonly body?: string;
  /** Component schema of each path parameter. */
  readonly params?: Readonly<Record<string, string | object>>;
  readonly run: (c: Ctx) => Promise<Answer>;
}

const ok = (body: object, status = 200): Answer => ({ status, body });
const nowSec = (now: () => number): number => Math.floor(now() / 1000);

/** Builds the request handler of the API; `req.url` is the full path, `/api/v1/...`. */
export function createApiHandler(o: ApiOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { store } = o;
  const anchorVersion = o.anchorVersion ?? ((): number => 0);
  const now = o.now ?? (() => Date.now());
  const log = o.log ?? debugSink;

  /** The caller's claim of a lock, or 404: another owner's lock looks exactly like a missing one. */
  async function ownClaim(lockId: string, who: AccessTokenInfo): Promise<LockClaim> {
    const claim = await store.getClaim(lockId);
    if (claim === undefined || claim.owner !== who.accountId) throw notFound(`lock "${lockId}"`);
    return claim;
  }

  /** Publishes one revocation update with `shares`' ctis, then marks them revoked ([TANDEM-DLG-4]). */
  async function revokeShares(
    lockId: string,
    shares: readonly Share[],
  ): Promise<{ lock: string; version: number }> {
    // Publish first: if the bridge fails, nothing is marked and the owner's retry starts over; a share marked
    // revoked stops yielding tokens at Userinfo, the published update stops tokens already handed out.
    const r = await o.revoker.revokeEntries(
      lockId,
      shares.map((s) => ({ id: shareCti(s.id), exp: s.notAfter })),
    );
    const at = nowSec(now);
    for (const s of shares) await store.revokeShare(s.id, at);
    return { lock: lockId, version: r.version };
  }

  const ACCOUNT = 'AccountId';
  const LOCK = 'LockId';
  const routes: Record<string, Route> = {
    'POST /devices': {
      body: 'DeviceRegistration',
      run: async ({ who, body }) => {
        const b = body as { key: JsonWebKey; name?: string };
        let key: PublicKey;
        try {
          key = publicKeyFromJwk(b.key);
        } catch (e) {
          throw new ApiError(
            400,
            'ERR_API_KEY',
            `body.key is not a P-256 public key: ${(e as Error).message}`,
          );
        }
        // The device is the login this token belongs to ([TANDEM-DLG-5]): registering again replaces its key.
        await store.registerPhoneKey(who.accountId, who.grantId, key, { name: b.name ?? null, at: now() });
        const d = await store.getDevice(who.accountId, who.grantId);
        return ok({ device: deviceView(d!) }, 201);
      },
    },
    'GET /devices': {
      run: async ({ who }) => ok({ devices: (await store.listDevices(who.accountId)).map(deviceView) }),
    },
    'DELETE /devices/{deviceId}': {
      params: { deviceId: { type: 'string', pattern: '^[\\x21-\\x7e]{1,128}$' } },
      run: async ({ who, params }) => {
        const device = await store.getDevice(who.accountId, params.deviceId!);
        if (device === undefined) throw notFound(`device "${params.deviceId}"`);
        // 1. The login dies: no new access token, no Userinfo, so no new delegated token for this key.
        await o.auth.revokeGrant(device.deviceId);
        // 2. Tokens already minted for the key are revoked by holder id on every lock where the rider holds a
        //    share ([TANDEM-REV-10]). A delegated token lives at most DELEGATION_TTL_SECONDS from its minting
        //    and no share outlasts its notAfter, so the entry may expire at the earlier of the two.
        const t = nowSec(now);
        const latest = new Map<string, number>();
        for (const s of await store.sharesFor(who.accountId)) {
          if (s.revoked === true || s.notAfter <= t) continue;
          latest.set(s.lock, Math.max(latest.get(s.lock) ?? 0, s.notAfter));
        }
        const holder = holderRevocationId(device.key);
        const revocations: { lock: string; version: number }[] = [];
        for (const [lock, notAfter] of [...latest].sort(([a], [b]) => (a < b ? -1 : 1))) {
          const exp = Math.min(notAfter, t + DELEGATION_TTL_SECONDS);
          const r = await o.revoker.revokeEntries(lock, [{ id: holder, exp }]);
          revocations.push({ lock, version: r.version });
        }
        // 3. Last, so that a failed publication leaves the device listed and the owner's retry finds it.
        await store.removePhoneKey(who.accountId, device.deviceId);
        return ok({ device: deviceView(device), revocations });
      },
    },
    'POST /locks': {
      body: 'ClaimRequest',
      run: async ({ who, body }) => {
        const receipt = Buffer.from((body as { receipt: string }).receipt, 'base64url');
        let claim: VerifiedClaim;
        try {
          claim = await (o.verifyClaim ?? verifyClaimWithProtocol)(
            new Uint8Array(receipt),
            async (lockId) => (await store.getLock(lockId))?.deviceKey,
          );
        } catch (e) {
          if (e instanceof ApiError) throw e;
          throw new ApiError(422, 'ERR_API_RECEIPT', `body.receipt does not verify: ${(e as Error).message}`);
        }
        if ((await store.getLock(claim.lockId)) === undefined) {
          throw notFound(`lock "${claim.lockId}" (register its device key with the cloud first)`);
        }
        if (claim.owner !== who.accountId) {
          throw new ApiError(
            422,
            'ERR_API_RECEIPT',
            `body.receipt names owner "${claim.owner}", not the caller "${who.accountId}"`,
          );
        }
        const outcome = await store.claimLock({ ...claim, claimedAt: now() });
        if (outcome === 'conflict') {
          throw new ApiError(409, 'ERR_API_CONFLICT', `lock "${claim.lockId}" is claimed by another owner`);
        }
        return ok({ lock: await lockView(store, anchorVersion, (await store.getClaim(claim.lockId))!) }, 201);
      },
    },
    'GET /locks': {
      run: async ({ who }) => {
        const claims = await store.claimsOf(who.accountId);
        return ok({ locks: await Promise.all(claims.map((c) => lockView(store, anchorVersion, c))) });
      },
    },
    'GET /locks/{lockId}': {
      params: { lockId: LOCK },
      run: async ({ who, params }) =>
        ok({ lock: await lockView(store, anchorVersion, await ownClaim(params.lockId!, who)) }),
    },
    'PATCH /locks/{lockId}': {
      params: { lockId: LOCK },
      body: 'LockSettingsPatch',
      run: async ({ who, params, body }) => {
        const claim = await ownClaim(params.lockId!, who);
        const b = body as { remoteLocking?: boolean };
        const held = await store.getLockSettings(claim.lockId);
        await store.setLockSettings(
          claim.lockId,
          { remoteLocking: b.remoteLocking ?? held.remoteLocking },
          now(),
        );
        // [TANDEM-HA-2]: the bridge announces the lock entity, or clears it, at once.
        o.lockSettingsChanged?.(claim.lockId);
        return ok({ lock: await lockView(store, anchorVersion, claim) });
      },
    },
    'POST /locks/{lockId}/shares': {
      params: { lockId: LOCK },
      body: 'ShareRequest',
      run: async ({ who, params, body }) => {
        const claim = await ownClaim(params.lockId!, who);
        const b = body as {
          rider: string;
          scope: string[];
          notBefore?: string;
          notAfter: string;
          schedule?: ScheduleWindowJson[];
          maxUses?: number;
          mayReshare?: boolean;
        };
        const bad = (m: string): never => {
          throw new ApiError(400, 'ERR_API_SHARE', m);
        };
        if (b.rider === who.accountId) bad('body.rider is the owner: an owner does not share with themself');
        if ((await store.findAccount(b.rider)) === undefined) bad(`body.rider "${b.rider}" has no account`);
        const t = nowSec(now);
        const notBefore = b.notBefore === undefined ? t : Math.floor(Date.parse(b.notBefore) / 1000);
        const notAfter = Math.floor(Date.parse(b.notAfter) / 1000);
        if (!(notBefore >= 0 && notBefore <= UINT32_MAX)) bad('body.notBefore is out of range');
        if (!(notAfter <= UINT32_MAX)) bad('body.notAfter is after 2106');
        if (notAfter <= notBefore) bad('body.notAfter must be after body.notBefore');
        if (notAfter <= t) bad('body.notAfter is in the past');
        const share: Share = {
          // Hex, not base64url: an id that starts with '-' reads as an option on the command line
          // (`tandem revoke --share -x…`), which failed one CI run in 64.
          id: randomBytes(16).toString('hex'),
          owner: claim.owner,
          lock: claim.lockId,
          rider: b.rider,
          // `delegate` only with mayReshare ([TANDEM-DLG-3]); `manage` never (the schema allows none of it).
          scope: [...b.scope, ...(b.mayReshare === true ? ['delegate'] : [])],
          notBefore,
          notAfter,
          ...(b.schedule !== undefined ? { schedule: scheduleFromJson(b.schedule) } : {}),
          ...(b.maxUses !== undefined ? { maxUses: b.maxUses } : {}),
          usesReported: 0,
          mayReshare: b.mayReshare === true,
          revoked: false,
          createdAt: t,
        };
        await store.putShare(share);
        return ok({ share: shareView(share) }, 201);
      },
    },
    'GET /locks/{lockId}/shares': {
      params: { lockId: LOCK },
      run: async ({ who, params }) => {
        await ownClaim(params.lockId!, who);
        return ok({ shares: (await store.sharesOfLock(params.lockId!)).map(shareView) });
      },
    },
    'GET /shares': {
      run: async ({ who }) => ok({ shares: (await store.sharesFor(who.accountId)).map(shareView) }),
    },
    'DELETE /shares/{shareId}': {
      params: { shareId: { type: 'string', pattern: '^[\\x21-\\x7e]{1,64}$' } },
      run: async ({ who, params }) => {
        const share = await store.getShare(params.shareId!);
        const claim = share === undefined ? undefined : await store.getClaim(share.lock);
        if (share === undefined || claim === undefined || claim.owner !== who.accountId) {
          throw notFound(`share "${params.shareId}"`);
        }
        // Revoking twice is answered as the first time, without a new version: DELETE is idempotent.
        const revocation =
          share.revoked === true
            ? { lock: share.lock, version: (await store.getRevocation(share.lock))?.version ?? 0 }
            : await revokeShares(share.lock, [share]);
        return ok({ share: shareView((await store.getShare(share.id))!), revocation });
      },
    },
    'DELETE /locks/{lockId}/riders/{rider}': {
      params: { lockId: LOCK, rider: ACCOUNT },
      run: async ({ who, params }) => {
        await ownClaim(params.lockId!, who);
        const shares = (await store.sharesOfLock(params.lockId!)).filter(
          (s) => s.rider === params.rider && s.revoked !== true,
        );
        const revocation = shares.length === 0 ? null : await revokeShares(params.lockId!, shares);
        const after = await Promise.all(shares.map(async (s) => (await store.getShare(s.id))!));
        return ok({ shares: after.map(shareView), revocation });
      },
    },
    'GET /locks/{lockId}/audit': {
      params: { lockId: LOCK },
      run: async ({ who, params, query }) => {
        await ownClaim(params.lockId!, who);
        const limit = limitOf(query);
        const after = query.get('after');
        let position: { receivedAt: number; epoch: number; sequence: number } | undefined;
        if (after !== null) {
          const m = /^([0-9]{1,16})\.([0-9]{1,10})\.([0-9]{1,10})$/.exec(after);
          if (m === null)
            throw new ApiError(400, 'ERR_API_PARAM', 'query "after" must be a cursor of this API');
          position = { receivedAt: Number(m[1]), epoch: Number(m[2]), sequence: Number(m[3]) };
        }
        const records = await store.recordsByArrival(params.lockId!, 'audit', position, limit);
        const views = records.map(auditView);
        const last = records.at(-1);
        return ok({ records: views, next: records.length === limit && last ? cursorOf(last) : null });
      },
    },
    'GET /locks/{lockId}/alerts': {
      params: { lockId: LOCK },
      run: async ({ who, params, query }) => {
        await ownClaim(params.lockId!, who);
        const limit = limitOf(query);
        const [alerts, events] = await Promise.all([
          store.listAlerts({ lockId: params.lockId!, limit }),
          store.listEvents({ lockId: params.lockId!, limit, newestFirst: true }),
        ]);
        // The ingestor stores an event of kind `alert` beside each alert record, for the live feed: an alert
        // listed under `alerts` is not listed again under `events` (only one beyond the page of alerts is).
        const listed = new Set(alerts.map((a) => `${a.epoch}.${a.sequence}`));
        const isListed = (e: CloudEvent): boolean =>
          e.kind === 'alert' && listed.has(`${String(e.detail.epoch)}.${String(e.detail.sequence)}`);
        return ok({
          alerts: alerts.map(alertView),
          events: events
            .filter((e) => !isListed(e))
            .map((e) => ({ id: e.id, kind: e.kind, at: iso(e.at), detail: e.detail })),
        });
      },
    },
    'GET /events': {
      run: async ({ req, res, who }) => {
        if (o.events === undefined)
          throw new ApiError(503, 'ERR_API_UNAVAILABLE', 'this cloud has no event feed');
        const header = req.headers['last-event-id'];
        let last: number | undefined;
        if (header !== undefined) {
          if (typeof header !== 'string' || !/^[0-9]{1,16}$/.test(header)) {
            throw new ApiError(400, 'ERR_API_PARAM', 'header Last-Event-ID must be an event id');
          }
          last = Number(header);
        }
        const locks = (await store.claimsOf(who.accountId)).map((c) => c.lockId);
        o.events(req, res, locks, last);
        return undefined;
      },
    },
    'POST /sync': {
      body: 'SyncRequest',
      run: async ({ who, body }) => {
        const b = body as SyncBody;
        const claim = await store.getClaim(b.lock);
        const t = nowSec(now);
        // A revoked share still lets its rider sync until its notAfter: the rider's phone is the one at the
        // offline lock, and it must carry the revocation update there and the lock's acknowledgement back
        // (ARCHITECTURE.md flow 6). Nothing of value is released: the update, beacon and outbox ack are signed
        // for the lock, uploaded records are checked as over MQTT, and Userinfo no longer yields a token.
        const holds =
          claim?.owner === who.accountId ||
          (await store.sharesFor(who.accountId)).some(
            (s) => s.lock === b.lock && s.notBefore <= t && t < s.notAfter,
          );
        // A lock the caller neither owns nor holds a share of: the same 404 as a lock that does not exist.
        if (!holds) throw notFound(`lock "${b.lock}"`);
        if (o.sync === undefined)
          throw new ApiError(503, 'ERR_API_UNAVAILABLE', 'this cloud has no sync service');
        return ok(await o.sync(b, who.accountId));
      },
    },
  };

  const table = compile(routes);

  return (req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err = toApiError(e);
      if (err.status >= 500) {
        log({
          level: 'warn',
          source: 'api',
          event: 'failure',
          reason: `${req.method} ${req.url}: ${String(e)}`,
        });
      }
      if (res.headersSent) {
        res.destroy();
        return;
      }
      send(res, err.status, { error: err.code, message: err.message }, err.headers);
    });
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://api.invalid');
    const path = url.pathname.slice(API_PREFIX.length) || '/';
    const found = match(table, req.method ?? 'GET', path);
    if (found === undefined) throw new ApiError(404, 'ERR_API_NOT_FOUND', `no route ${path}`);
    if (found === 'method') {
      throw new ApiError(405, 'ERR_API_METHOD', `${req.method} is not allowed on ${path}`);
    }
    const who = await authenticate(req);
    const { route, params } = found;
    for (const [name, schema] of Object.entries(route.params ?? {})) {
      const v = typeof schema === 'string' ? validatorOf(schema) : compileInline(schema);
      if (!v(params[name]))
        throw new ApiError(400, 'ERR_API_PARAM', describeErrors(v.errors, `path "${name}"`));
    }
    const body = await readBody(req, route.body !== undefined);
    if (route.body !== undefined) {
      const v = validatorOf(route.body);
      if (!v(body)) throw new ApiError(400, 'ERR_API_BODY', describeErrors(v.errors));
    }
    const answer = await route.run({ req, res, who, params, query: url.searchParams, body });
    if (answer !== undefined) send(res, answer.status, answer.body);
  }

  async function authenticate(req: IncomingMessage): Promise<AccessTokenInfo> {
    const header = req.headers.authorization;
    if (header === undefined) {
      // RFC 6750 §3.1: a request without credentials gets the challenge without an error code.
      throw new ApiError(
        401,
        'ERR_API_UNAUTHENTICATED',
        'an Authorization: Bearer access token is required',
        {
          'www-authenticate': 'Bearer realm="tandem"',
        },
      );
    }
    const m = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/.exec(header);
    const info = m === null ? undefined : await o.auth.verifyAccessToken(m[1]!);
    if (info === undefined) {
      throw new ApiError(401, 'ERR_API_UNAUTHENTICATED', 'the access token is invalid, expired or revoked', {
        'www-authenticate': 'Bearer realm="tandem", error="invalid_token"',
      });
    }
    if (!info.scopes.has(API_SCOPE)) {
      throw new ApiError(403, 'ERR_API_SCOPE', `the access token lacks the "${API_SCOPE}" scope`, {
        'www-authenticate': `Bearer realm="tandem", error="insufficient_scope", scope="${API_SCOPE}"`,
      });
    }
    return info;
  }
}

function limitOf(query: URLSearchParams): number {
  const text = query.get('limit');
  if (text === null) return 50;
  const n = /^[0-9]{1,4}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 500))
    throw new ApiError(400, 'ERR_API_PARAM', 'query "limit" must be an integer from 1 to 500');
  return n;
}

const cursorOf = (r: StoredRecord): string => `${r.receivedAt}.${r.epoch}.${r.sequence}`;
const detailOf = (d: ReadonlyMap<string, unknown>): Record<string, unknown> => Object.fromEntries(d);

function auditView(r: StoredRecord): object {
  const a = decodeAuditRecord(r.bytes).record;
  return {
    cursor: cursorOf(r),
    epoch: r.epoch,
    sequence: r.sequence,
    time: iso(r.time * 1000),
    receivedAt: iso(r.receivedAt),
    via: r.via,
    event: a.event,
    status: a.status,
    ...(a.command !== undefined ? { command: a.command } : {}),
    ...(a.tokenId !== undefined ? { tokenId: Buffer.from(a.tokenId).toString('base64url') } : {}),
    ...(a.rider !== undefined ? { rider: a.rider } : {}),
    detail: detailOf(a.detail),
  };
}

function alertView(r: StoredRecord): object {
  const a = decodeAlert(r.bytes).alert;
  return {
    epoch: r.epoch,
    sequence: r.sequence,
    kind: a.kind,
    time: iso(r.time * 1000),
    receivedAt: iso(r.receivedAt),
    via: r.via,
    detail: detailOf(a.detail),
  };
}

// -- routing -------------------------------------------------------------------------------------------

interface CompiledRoute {
  readonly method: string;
  readonly segments: readonly string[];
  readonly route: Route;
}

function compile(routes: Record<string, Route>): CompiledRoute[] {
  return Object.entries(routes).map(([key, route]) => {
    const [method, path] = key.split(' ') as [string, string];
    return { method, segments: path.split('/').slice(1), route };
  });
}

function match(
  table: readonly CompiledRoute[],
  method: string,
  path: string,
): { route: Route; params: Record<string, string> } | 'method' | undefined {
  const parts = path.split('/').slice(1);
  let pathMatched = false;
  for (const r of table) {
    if (r.segments.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let hit = true;
    for (let i = 0; i < parts.length && hit; i++) {
      const seg = r.segments[i]!;
      if (seg.startsWith('{')) {
        try {
          params[seg.slice(1, -1)] = decodeURIComponent(parts[i]!);
        } catch {
          throw new ApiError(400, 'ERR_API_PARAM', `path segment ${i + 1} is not valid percent-encoding`);
        }
        hit = parts[i]!.length > 0;
      } else hit = seg === parts[i];
    }
    if (!hit) continue;
    pathMatched = true;
    if (r.method === method) return { route: r.route, params };
  }
  return pathMatched ? 'method' : undefined;
}

const inline = new Map<object, ReturnType<typeof validatorOf>>();
function compileInline(schema: object): ReturnType<typeof validatorOf> {
  let v = inline.get(schema);
  if (v === undefined) {
    // An inline parameter schema is a plain string pattern: checked here without a second ajv instance.
    const { pattern } = schema as { pattern: string };
    const re = new RegExp(pattern);
    const f = ((x: unknown) => {
      const good = typeof x === 'string' && re.test(x);
      f.errors = good
        ? null
        : [
            {
              instancePath: '',
              keyword: 'pattern',
              params: { pattern },
              schemaPath: '',
              message: `must match pattern "${pattern}"`,
            },
          ];
      return good;
    }) as unknown as ReturnType<typeof validatorOf>;
    v = f;
    inline.set(schema, v);
  }
  return v;
}

// -- HTTP ----------------------------------------------------------------------------------------------

/** Reads a JSON body of at most {@link MAX_BODY_BYTES}; `expected` false: the request must carry none. */
async function readBody(req: IncomingMessage, expected: boolean): Promise<unknown> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > MAX_BODY_BYTES) {
    req.resume();
    throw new ApiError(413, 'ERR_API_TOO_LARGE', `the body is over ${MAX_BODY_BYTES} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES)
      throw new ApiError(413, 'ERR_API_TOO_LARGE', `the body is over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  if (!expected) {
    if (size > 0) throw new ApiError(400, 'ERR_API_BODY', 'this request takes no body');
    return undefined;
  }
  const type = (req.headers['content-type'] ?? '').toLowerCase();
  if (!/^application\/json\s*(;\s*charset=utf-8\s*)?$/.test(type)) {
    throw new ApiError(415, 'ERR_API_MEDIA_TYPE', 'the body must be application/json');
  }
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks))) as unknown;
  } catch (e) {
    throw new ApiError(400, 'ERR_API_BODY', `the body is not JSON: ${(e as Error).message}`);
  }
}

function send(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof OidcError) {
    // The store's own rules ([TANDEM-DLG-3], phone keys): what the schema let through but a rule refuses.
    return new ApiError(
      400,
      e.code === 'ERR_OIDC_SHARE_INVALID' ? 'ERR_API_SHARE' : 'ERR_API_BODY',
      e.message,
    );
  }
  if (
    isCloudError(e) &&
    (e.temporary || e.code === 'ERR_CLOUD_STORE' || e.code === 'ERR_CLOUD_UNAVAILABLE')
  ) {
    return new ApiError(503, 'ERR_API_UNAVAILABLE', e.message);
  }
  return new ApiError(500, 'ERR_API_INTERNAL', 'internal error');
}
