/**
 * The local admin channel that `tandem revoke`, `tandem alerts` and `tandem cloud register` talk to until the
 * sharing issue brings owners' accounts: HTTP on 127.0.0.1 only, every request carrying the bearer token
 * kept in the data directory (`admin.token`, mode 0600). JSON in, JSON out; a refusal is
 * `{ "error": "<code>", "message": "..." }` with a 4xx status.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { decodeAlert } from '../../protocol/src/mqtt.js';
import { isLockId } from '../../protocol/src/lib/signed-payload.js';
import { publicKeyFromRaw } from '../../protocol/src/keys.js';
import type { Bridge } from './bridge.js';
import { hashPassword, parsePasswordRecord } from './credentials.js';
import { CloudError, isCloudError } from './errors.js';
import type { LogSink } from './log.js';
import type { CloudStore } from './store/types.js';

const MAX_BODY = 16 * 1024;

class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new Refusal(413, 'ERR_CLOUD_ADMIN', `request body exceeds ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch {
    throw new Refusal(400, 'ERR_CLOUD_ADMIN', 'request body must be a JSON object');
  }
}

function field(b: Record<string, unknown>, name: string, re: RegExp, what: string): string {
  const v = b[name];
  if (typeof v !== 'string' || !re.test(v))
    throw new Refusal(400, 'ERR_CLOUD_ADMIN', `"${name}" must be ${what}`);
  return v;
}

function lockIdOf(v: unknown, name = 'lockId'): string {
  if (typeof v !== 'string' || !isLockId(v)) {
    throw new Refusal(400, 'ERR_CLOUD_ADMIN', `"${name}" must be a lock id ([TANDEM-GEN-3])`);
  }
  return v;
}

/** Starts the admin channel on 127.0.0.1:`port` (0 = any free port). */
export async function startAdmin(options: {
  readonly port: number;
  readonly token: string;
  readonly store: CloudStore;
  readonly bridge: Bridge;
  readonly log: LogSink;
}): Promise<{ readonly port: number; close(): Promise<void> }> {
  const expected = Buffer.from(`Bearer ${options.token}`);
  const routes: Record<string, (req: IncomingMessage, url: URL) => Promise<unknown>> = {
    'POST /locks': async (req) => {
      const b = await body(req);
      const lockId = lockIdOf(b.lockId);
      const deviceKey = Buffer.from(
        field(b, 'deviceKey', /^[0-9a-f]{64}$/, "the lock's raw Ed25519 key, 64 hex digits"),
        'hex',
      );
      try {
        publicKeyFromRaw('EdDSA', deviceKey);
      } catch {
        throw new Refusal(400, 'ERR_CLOUD_ADMIN', '"deviceKey" is not an Ed25519 public key');
      }
      // Either the $7$ record made off the cloud, or the password as the lock's console shows it once, hashed
      // here at once and never stored ([TANDEM-MQTT-13]).
      let passwordHash: string | null = null;
      if (typeof b.passwordHash === 'string') {
        parsePasswordRecord(b.passwordHash);
        passwordHash = b.passwordHash;
      } else if (b.password !== undefined) {
        passwordHash = hashPassword(
          field(b, 'password', /^[0-9a-f]{64}$/, "the lock's MQTT password, 64 hex digits"),
        );
      }
      await options.store.registerLock({ lockId, deviceKey, passwordHash, registeredAt: Date.now() });
      return { lockId };
    },
    // `tandem cloud account add`: the CLI hashes the password with Argon2id, the cloud stores the hash only.
    'POST /accounts': async (req) => {
      const b = await body(req);
      const account = { id: b.id as string, name: b.name as string, passwordHash: b.passwordHash as string };
      try {
        await options.store.createAccount(account);
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if (code === 'ERR_OIDC_ACCOUNT_EXISTS' || code === 'ERR_OIDC_ACCOUNT_INVALID') {
          throw new Refusal(
            code === 'ERR_OIDC_ACCOUNT_EXISTS' ? 409 : 400,
            'ERR_CLOUD_ADMIN',
            (e as Error).message,
          );
        }
        throw e;
      }
      return { id: account.id };
    },
    'POST /revoke': async (req) => {
      const b = await body(req);
      const lockId = lockIdOf(b.lockId);
      const tokenId = Buffer.from(
        field(b, 'tokenId', /^([0-9a-f]{2}){1,32}$/, 'the token id (cti), 1 to 32 bytes in hex'),
        'hex',
      );
      const exp = b.exp;
      if (typeof exp !== 'number' || !Number.isInteger(exp) || exp < 0 || exp > 0xffffffff) {
        throw new Refusal(400, 'ERR_CLOUD_ADMIN', '"exp" must be the token\'s expiry, Unix seconds');
      }
      const r = await options.bridge.revoke(lockId, tokenId, exp);
      return { lockId, version: r.version, entries: r.entries.size };
    },
    'GET /alerts': async (_req, url) => {
      const lock = url.searchParams.get('lock');
      const limit = Math.min(1000, Math.max(1, Number(url.searchParams.get('limit') ?? 50) || 50));
      const alerts = await options.store.listAlerts({
        ...(lock === null ? {} : { lockId: lockIdOf(lock, 'lock') }),
        limit,
      });
      return alerts.map((r) => {
        const a = decodeAlert(r.bytes).alert;
        return {
          lockId: r.lockId,
          epoch: r.epoch,
          sequence: r.sequence,
          kind: a.kind,
          time: r.time,
          receivedAt: r.receivedAt,
          via: r.via,
          detail: Object.fromEntries(a.detail),
        };
      });
    },
    'GET /events': async (_req, url) => {
      const lock = url.searchParams.get('lock');
      const after = Number(url.searchParams.get('after') ?? 0) || 0;
      return options.store.listEvents({
        ...(lock === null ? {} : { lockId: lockIdOf(lock, 'lock') }),
        after,
        limit: 500,
      });
    },
    'GET /lock': async (_req, url) => {
      const lockId = lockIdOf(url.searchParams.get('id'), 'id');
      const [state, rev, ack, epochs] = await Promise.all([
        options.store.getState(lockId),
        options.store.getRevocation(lockId),
        options.store.getRevocationAck(lockId),
        options.store.listEpochs(lockId),
      ]);
      return {
        lockId,
        state: state?.state ?? null,
        revocationVersion: rev?.version ?? 0,
        revocationAck: ack ?? null,
        outbox: epochs.map((e) => ({ epoch: e.epoch, acknowledged: e.ackedSequence })),
      };
    },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      const auth = Buffer.from(req.headers.authorization ?? '');
      if (auth.length !== expected.length || !timingSafeEqual(auth, expected)) {
        throw new Refusal(
          401,
          'ERR_CLOUD_ADMIN',
          "missing or wrong admin token (the data directory's admin.token)",
        );
      }
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const route = routes[`${req.method} ${url.pathname}`];
      if (route === undefined)
        throw new Refusal(404, 'ERR_CLOUD_ADMIN', `no route ${req.method} ${url.pathname}`);
      const out = await route(req, url);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
    } catch (e) {
      const r =
        e instanceof Refusal
          ? e
          : isCloudError(e)
            ? new Refusal(
                e.code === 'ERR_CLOUD_LOCK_UNKNOWN' ? 404 : e.code === 'ERR_CLOUD_CREDENTIAL' ? 400 : 503,
                e.code,
                e.message,
              )
            : new Refusal(500, 'ERR_INTERNAL', String(e));
      options.log({
        level: 'warn',
        source: 'admin',
        event: `refused ${req.method} ${req.url}`,
        reason: r.message,
      });
      res
        .writeHead(r.status, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: r.code, message: r.message }));
    }
  };
  const server: Server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A client of the admin channel: what the CLI commands use. */
export async function adminRequest(
  port: number,
  token: string,
  method: 'GET' | 'POST',
  path: string,
  payload?: unknown,
): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(payload === undefined ? {} : { body: JSON.stringify(payload) }),
    });
  } catch (e) {
    throw new CloudError(
      'ERR_CLOUD_UNAVAILABLE',
      `no cloud answers on 127.0.0.1:${port}; is \`tandem cloud\` running?`,
      {
        cause: e,
        temporary: true,
      },
    );
  }
  const out = (await res.json()) as { error?: string; message?: string };
  if (!res.ok)
    throw new CloudError('ERR_CLOUD_ADMIN', `${out.error ?? res.status}: ${out.message ?? 'refused'}`);
  return out;
}
