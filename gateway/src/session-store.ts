/**
 * The phone's session with the cloud, kept in one JSON file that only its owner may read: the OpenID tokens
 * of `tandem login`, the device registered with the rider key, and per lock what the last `tandem sync`
 * fetched for `tandem unlock` to use without a network until it expires:
 *
 * | field | what | used until |
 * | --- | --- | --- |
 * | `tokens` | access token, refresh token, expiry (Unix s), scope | refresh, then `tandem login` again |
 * | `delegations` | per lock: the compact token of the delegations claim (SPEC §5.9), owner, share, scope | the token's `exp` |
 * | `locks.*.revocation` | the newest signed revocation update the cloud gave for the lock (§6) | replaced by a newer version |
 * | `locks.*.beacon` | a time beacon without nonce (§7): it can only raise a lock's floor | {@link BEACON_CACHE_SECONDS} |
 * | `locks.*.outboxAck` | the cloud's signed outbox acknowledgement (§8.6) | delivered, or replaced |
 * | `locks.*.anchor` | the issuer's anchor update for the lock (§6.6), while the cloud holds no ack of it ([TANDEM-SYNC-5]) | a sync that brings none |
 * | `locks.*.relay` | records the lock gave the phone over BLE, not yet uploaded ([TANDEM-GATT-11]) | the next sync |
 *
 * Binary values are base64url. The file holds bearer tokens: it is created with mode 0600, written
 * atomically (temporary file, fsync, rename, fsync of the directory, as the rider key file) and refused when
 * group or others may read it, with the `chmod 600` that fixes it (gateway/src/key-file.ts does the same).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { GatewayError } from './errors.js';

/** A beacon without the lock's nonce only raises its floor ([TANDEM-TIME-5]); older than this it is dropped. */
export const BEACON_CACHE_SECONDS = 600;
/** At most this many relayed records wait per lock (the cloud's sync takes 64 per call). */
export const MAX_RELAY_RECORDS = 256;

/** OpenID tokens of the session. */
export interface SessionTokens {
  readonly accessToken: string;
  /** Unix seconds when the access token expires. */
  readonly expiresAt: number;
  readonly refreshToken?: string;
  readonly scope: string;
}

/** The device registered with POST /devices (its id is the OpenID grant of the tokens, [TANDEM-DLG-5]). */
export interface SessionDevice {
  readonly id: string;
  readonly name: string;
  readonly thumbprint: string;
  readonly registeredAt: string;
}

/** One cached delegation: the token the cloud minted for this lock, bound to the registered key. */
export interface CachedDelegation {
  readonly owner: string;
  readonly share: string;
  readonly scope: readonly string[];
  /** The compact token (§5), base64url. */
  readonly token: string;
  /** Unix seconds: the token's `exp`. */
  readonly expiresAt: number;
}

/** A signed message cached for a lock, with when it was fetched (Unix seconds). */
export interface CachedMessage {
  /** base64url. */
  readonly bytes: string;
  readonly fetchedAt: number;
}

/** What the phone carries for one lock. */
export interface LockCache {
  revocation?: CachedMessage & { readonly version: number };
  beacon?: CachedMessage;
  outboxAck?: CachedMessage & { delivered?: boolean };
  /** The issuer's anchor update to write before anything else ([TANDEM-ANCHOR-6], [TANDEM-SYNC-5]). */
  anchor?: CachedMessage;
  /** Relayed records (base64url) waiting for upload, oldest first. */
  relay?: string[];
}

/** The whole session file. */
export interface SessionData {
  readonly version: 1;
  /** The cloud's issuer URL (`tandem login --cloud`). */
  readonly cloud: string;
  readonly clientId: string;
  /** The authorization server metadata of the last discovery (RFC 8414), so commands skip discovery. */
  readonly metadata: Record<string, unknown>;
  /** The account (`sub`). */
  readonly account: string;
  tokens: SessionTokens;
  device?: SessionDevice;
  delegations: Record<string, CachedDelegation>;
  /** Unix seconds of the last successful delegations fetch. */
  delegationsFetchedAt?: number;
  locks: Record<string, LockCache>;
}

const FORMAT_VERSION = 1;
const B64URL = /^[A-Za-z0-9_-]*$/;

function fail(path: string, message: string, cause?: unknown): never {
  throw new GatewayError('ERR_GW_SESSION', `${path}: ${message}`, cause === undefined ? {} : { cause });
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function need(path: string, ok: boolean, field: string, what: string): void {
  if (!ok) fail(path, `"${field}" must be ${what}`);
}

function checkMessage(path: string, v: unknown, field: string): void {
  need(path, isObject(v), field, 'an object');
  const m = v as Record<string, unknown>;
  need(path, typeof m.bytes === 'string' && B64URL.test(m.bytes), `${field}.bytes`, 'base64url');
  need(path, Number.isSafeInteger(m.fetchedAt), `${field}.fetchedAt`, 'Unix seconds');
}

// Checks the shape of what was read: a hand-edited or truncated file is refused naming the field, instead of
// failing later inside an unlock.
function checkData(path: string, v: unknown): SessionData {
  need(path, isObject(v), '(root)', 'a JSON object');
  const d = v as Record<string, unknown>;
  need(path, d.version === FORMAT_VERSION, 'version', String(FORMAT_VERSION));
  need(path, typeof d.cloud === 'string' && /^https?:\/\//.test(d.cloud), 'cloud', 'an http(s) URL');
  need(path, typeof d.clientId === 'string', 'clientId', 'a string');
  need(path, isObject(d.metadata), 'metadata', 'an object');
  need(path, typeof d.account === 'string' && d.account !== '', 'account', 'a non-empty string');
  need(path, isObject(d.tokens), 'tokens', 'an object');
  const t = d.tokens as Record<string, unknown>;
  need(path, typeof t.accessToken === 'string', 'tokens.accessToken', 'a string');
  need(path, Number.isSafeInteger(t.expiresAt), 'tokens.expiresAt', 'Unix seconds');
  need(
    path,
    t.refreshToken === undefined || typeof t.refreshToken === 'string',
    'tokens.refreshToken',
    'a string',
  );
  need(path, typeof t.scope === 'string', 'tokens.scope', 'a string');
  need(path, isObject(d.delegations), 'delegations', 'an object');
  for (const [lock, e] of Object.entries(d.delegations as Record<string, unknown>)) {
    const f = `delegations.${lock}`;
    need(path, isObject(e), f, 'an object');
    const x = e as Record<string, unknown>;
    need(path, typeof x.token === 'string' && B64URL.test(x.token), `${f}.token`, 'base64url');
    need(path, Number.isSafeInteger(x.expiresAt), `${f}.expiresAt`, 'Unix seconds');
    need(path, typeof x.owner === 'string' && typeof x.share === 'string', `${f}.owner/share`, 'strings');
    need(path, Array.isArray(x.scope), `${f}.scope`, 'an array');
  }
  need(path, isObject(d.locks), 'locks', 'an object');
  for (const [lock, c] of Object.entries(d.locks as Record<string, unknown>)) {
    need(path, isObject(c), `locks.${lock}`, 'an object');
    const x = c as Record<string, unknown>;
    if (x.revocation !== undefined) {
      checkMessage(path, x.revocation, `locks.${lock}.revocation`);
      need(
        path,
        Number.isSafeInteger((x.revocation as Record<string, unknown>).version),
        `locks.${lock}.revocation.version`,
        'an integer',
      );
    }
    if (x.beacon !== undefined) checkMessage(path, x.beacon, `locks.${lock}.beacon`);
    if (x.outboxAck !== undefined) checkMessage(path, x.outboxAck, `locks.${lock}.outboxAck`);
    if (x.anchor !== undefined) checkMessage(path, x.anchor, `locks.${lock}.anchor`);
    need(
      path,
      x.relay === undefined ||
        (Array.isArray(x.relay) && x.relay.every((r) => typeof r === 'string' && B64URL.test(r))),
      `locks.${lock}.relay`,
      'an array of base64url records',
    );
  }
  return v as unknown as SessionData;
}

/** Options of {@link SessionStore}. */
export interface SessionStoreOptions {
  /** Unix seconds; injected so that expiry is tested without waiting. */
  readonly now?: () => number;
}

/**
 * The session file and its caches. `data` is undefined when nobody is logged in. Nothing is written until
 * {@link save}; every change goes through the methods below so that expiry rules live in one place.
 */
export class SessionStore {
  private readonly now: () => number;
  private constructor(
    readonly path: string,
    public data: SessionData | undefined,
    options: SessionStoreOptions,
  ) {
    this.now = options.now ?? (() => Math.floor(Date.now() / 1000));
  }

  /**
   * Opens the session file at `path`. A missing file is an empty session (not logged in). Throws
   * ERR_GW_SESSION when the file is readable by group or others (with `chmod 600`), is not JSON, or a field
   * is malformed (named).
   */
  static async open(path: string, options: SessionStoreOptions = {}): Promise<SessionStore> {
    let mode: number;
    try {
      mode = (await stat(path)).mode;
    } catch (cause) {
      if ((cause as { code?: unknown }).code === 'ENOENT') return new SessionStore(path, undefined, options);
      fail(path, 'cannot read', cause);
    }
    // Bearer tokens are as good as the password for their lifetime: refuse a file others can read.
    if ((mode & 0o077) !== 0) {
      fail(
        path,
        `holds access tokens but is readable by others (mode 0${(mode & 0o777).toString(8)}); run \`chmod 600 ${path}\``,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(await readFile(path, 'utf8'));
    } catch (cause) {
      fail(path, 'is not a JSON session file', cause);
    }
    return new SessionStore(path, checkData(path, json), options);
  }

  /** The session, or ERR_GW_SESSION telling the user to log in. */
  require(): SessionData {
    if (this.data === undefined) {
      throw new GatewayError(
        'ERR_GW_SESSION',
        `not logged in (no session at ${this.path}): run \`tandem login --cloud <URL>\``,
      );
    }
    return this.data;
  }

  /** Starts a session after a login, replacing any previous one (its caches belonged to other tokens). */
  begin(init: Pick<SessionData, 'cloud' | 'clientId' | 'metadata' | 'account' | 'tokens'>): void {
    this.data = { version: FORMAT_VERSION, ...init, delegations: {}, locks: {} };
  }

  /** Forgets everything (`tandem logout`). */
  clear(): void {
    this.data = undefined;
  }

  setTokens(tokens: SessionTokens): void {
    this.require().tokens = tokens;
  }

  setDevice(device: SessionDevice | undefined): void {
    const d = this.require();
    if (device === undefined) delete d.device;
    else d.device = device;
  }

  /** Replaces the delegations with what Userinfo returned now: shares gone from the claim are gone here. */
  setDelegations(entries: Record<string, CachedDelegation>): void {
    const d = this.require();
    d.delegations = entries;
    d.delegationsFetchedAt = this.now();
  }

  /** The cached delegation for `lockId` if its token has not expired, else undefined. */
  delegation(lockId: string): CachedDelegation | undefined {
    const e = this.data?.delegations[lockId];
    return e !== undefined && e.expiresAt > this.now() ? e : undefined;
  }

  /** The expired delegation for `lockId`, to say when it ran out. */
  staleDelegation(lockId: string): CachedDelegation | undefined {
    const e = this.data?.delegations[lockId];
    return e !== undefined && e.expiresAt <= this.now() ? e : undefined;
  }

  private lock(lockId: string): LockCache {
    return (this.require().locks[lockId] ??= {});
  }

  /** Keeps a revocation update unless the cache already holds the same or a newer version ([TANDEM-REV-2]). */
  putRevocation(lockId: string, bytes: Uint8Array, version: number): void {
    const c = this.lock(lockId);
    if (c.revocation !== undefined && c.revocation.version >= version) return;
    c.revocation = { bytes: Buffer.from(bytes).toString('base64url'), version, fetchedAt: this.now() };
  }

  /** The newest revocation update held for `lockId`. */
  revocation(lockId: string): { version: number; bytes: Uint8Array } | undefined {
    const r = this.data?.locks[lockId]?.revocation;
    return r === undefined
      ? undefined
      : { version: r.version, bytes: new Uint8Array(Buffer.from(r.bytes, 'base64url')) };
  }

  putBeacon(lockId: string, bytes: Uint8Array): void {
    this.lock(lockId).beacon = { bytes: Buffer.from(bytes).toString('base64url'), fetchedAt: this.now() };
  }

  /** The cached beacon while younger than {@link BEACON_CACHE_SECONDS}. */
  beacon(lockId: string): Uint8Array | undefined {
    const b = this.data?.locks[lockId]?.beacon;
    if (b === undefined || this.now() - b.fetchedAt > BEACON_CACHE_SECONDS) return undefined;
    return new Uint8Array(Buffer.from(b.bytes, 'base64url'));
  }

  /**
   * Keeps the anchor update the cloud's sync handed out, or forgets the held one when the sync brought none
   * (the cloud holds the lock's ack of it, [TANDEM-SYNC-5]). Kept until then: the phone may meet the lock
   * before it has a network again, and a re-delivery changes nothing on the lock ([TANDEM-ANCHOR-3]).
   */
  putAnchor(lockId: string, bytes: Uint8Array | null): void {
    if (bytes === null) {
      const c = this.data?.locks[lockId];
      if (c !== undefined) delete c.anchor;
      return;
    }
    this.lock(lockId).anchor = { bytes: Buffer.from(bytes).toString('base64url'), fetchedAt: this.now() };
  }

  /** The anchor update to carry to `lockId`, if the last sync handed one out. */
  anchorUpdate(lockId: string): Uint8Array | undefined {
    const a = this.data?.locks[lockId]?.anchor;
    return a === undefined ? undefined : new Uint8Array(Buffer.from(a.bytes, 'base64url'));
  }

  /** Keeps the cloud's outbox ack for delivery; the same ack already delivered stays delivered. */
  putOutboxAck(lockId: string, bytes: Uint8Array): void {
    const c = this.lock(lockId);
    const text = Buffer.from(bytes).toString('base64url');
    if (c.outboxAck?.bytes === text) return;
    c.outboxAck = { bytes: text, fetchedAt: this.now() };
  }

  /** The outbox ack still to deliver to `lockId`. */
  pendingOutboxAck(lockId: string): Uint8Array | undefined {
    const a = this.data?.locks[lockId]?.outboxAck;
    return a === undefined || a.delivered === true
      ? undefined
      : new Uint8Array(Buffer.from(a.bytes, 'base64url'));
  }

  markOutboxAckDelivered(lockId: string): void {
    const a = this.data?.locks[lockId]?.outboxAck;
    if (a !== undefined) a.delivered = true;
  }

  /**
   * Queues records a lock relayed over BLE for the next sync. Duplicates (a lock re-sends what the cloud has
   * not acknowledged) are kept once; beyond {@link MAX_RELAY_RECORDS} the oldest go: the lock keeps every
   * record until the cloud's ack comes back ([TANDEM-GATT-11]), so nothing dropped here is lost.
   */
  addRelay(lockId: string, records: readonly Uint8Array[]): number {
    const c = this.lock(lockId);
    const queue = (c.relay ??= []);
    let added = 0;
    for (const r of records) {
      const text = Buffer.from(r).toString('base64url');
      if (!queue.includes(text)) {
        queue.push(text);
        added++;
      }
    }
    if (queue.length > MAX_RELAY_RECORDS) queue.splice(0, queue.length - MAX_RELAY_RECORDS);
    return added;
  }

  relay(lockId: string): Uint8Array[] {
    return (this.data?.locks[lockId]?.relay ?? []).map((r) => new Uint8Array(Buffer.from(r, 'base64url')));
  }

  /** Drops the first `count` queued records once the cloud has taken them. */
  dropRelay(lockId: string, count: number): void {
    const c = this.data?.locks[lockId];
    if (c?.relay !== undefined) c.relay.splice(0, count);
  }

  /** Locks the session knows of: delegations and caches. */
  lockIds(): string[] {
    const d = this.data;
    if (d === undefined) return [];
    return [...new Set([...Object.keys(d.delegations), ...Object.keys(d.locks)])].sort();
  }

  /**
   * Writes the session atomically with mode 0600 (temporary file created 0600, fsync, rename, fsync of the
   * directory), or removes the file when the session was cleared. The directory is created 0700 if missing.
   */
  async save(): Promise<void> {
    if (this.data === undefined) {
      await unlink(this.path).catch((e: { code?: unknown }) => {
        if (e.code !== 'ENOENT') fail(this.path, `cannot remove: ${(e as unknown as Error).message}`, e);
      });
      return;
    }
    const dir = dirname(this.path);
    const tmp = join(dir, `.${basename(this.path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const h = await open(tmp, 'wx', 0o600);
      try {
        await h.writeFile(JSON.stringify(this.data, null, 2) + '\n');
        await h.sync();
      } finally {
        await h.close();
      }
      await rename(tmp, this.path);
      const d = await open(dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } catch (cause) {
      await unlink(tmp).catch(() => undefined);
      fail(this.path, `cannot write: ${(cause as Error).message}`, cause);
    }
  }
}

/** The default session file: `$TANDEM_SESSION`, else `$XDG_CONFIG_HOME/tandem/session.json` (or ~/.config). */
export function defaultSessionPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TANDEM_SESSION !== undefined && env.TANDEM_SESSION !== '') return env.TANDEM_SESSION;
  const base =
    env.XDG_CONFIG_HOME !== undefined && env.XDG_CONFIG_HOME !== ''
      ? env.XDG_CONFIG_HOME
      : join(env.HOME ?? '.', '.config');
  return join(base, 'tandem', 'session.json');
}
