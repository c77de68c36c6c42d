/**
 * `tandem cloud`, `tandem revoke`, `tandem alerts`: the cloud side on one machine (issue 9).
 *
 * - `tandem cloud` starts the SQLite store, the aedes broker and the bridge on embedded defaults in a data
 *   directory (issuer key created on first start, mode 0600) and a local admin channel on 127.0.0.1;
 *   `tandem cloud register` registers a lock (id, device key, `$7$` password record, [TANDEM-MQTT-13]);
 *   `tandem cloud mosquitto` writes Mosquitto's password file and ACL for running it in aedes' place.
 * - `tandem revoke` and `tandem alerts` talk to a running `tandem cloud` through the admin channel, whose
 *   port and token they read from the data directory.
 *
 * A cloud error is printed as `<CODE>: <message>`; exit 1 when the cloud refused, 3 when it cannot be reached
 * or the configuration is wrong (cli/README.md, "Exit codes").
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CliError,
  EXIT,
  flag,
  helpText,
  list,
  parse,
  parseHex,
  parseTime,
  parseUint,
  req,
  str,
} from './args.js';
import type { CliStreams, CommandModule, CommandSpec } from './args.js';

const DATA = {
  type: 'string',
  value: '<dir>',
  description: 'the cloud data directory (default ./tandem-cloud)',
} as const;

const CLOUD: CommandSpec = {
  name: 'cloud',
  positionals: '[register|mosquitto|account add|issuer encrypt|issuer rotate|issuer status]',
  maxPositionals: 2,
  summary:
    'Runs the cloud: store, MQTT broker (aedes) and bridge, on embedded defaults; stop it with Ctrl-C.\n\n' +
    'Subcommands:\n  register    register a lock with a running cloud (--lock, --device-key, --password or --password-hash)\n' +
    "  mosquitto   write Mosquitto's passwd and acl into <dir>/mosquitto from the store\n" +
    '  account add create an account with a running cloud (--id, --name; the password from --password-file or stdin)\n' +
    '  issuer encrypt   encrypt a plaintext issuer key under TANDEM_ISSUER_SECRET\n' +
    '  issuer rotate    start an issuer key rotation (--overlap, default 7d); locks get the new anchor signed by the old key\n' +
    '  issuer status    list the issuer keys (kid, state, dates)\n\n' +
    'The issuer keys are encrypted at rest under TANDEM_ISSUER_SECRET (32 random bytes as 64 hex digits or 43\n' +
    'base64url characters, e.g. `openssl rand -hex 32`); without it the cloud refuses to start.\n\n' +
    'With --http-port, one HTTP listener serves the OpenID Provider (issuer http://<host>:<port>), the sharing API\n' +
    '(/api/v1) and the dashboard mount (/dashboard).',
  options: {
    'data-dir': DATA,
    'insecure-plaintext-key': {
      type: 'boolean',
      description: 'development only: keep the issuer key unencrypted when TANDEM_ISSUER_SECRET is not set',
    },
    overlap: {
      type: 'string',
      value: '<duration>',
      description: 'issuer rotate: how long locks have to learn the new key before it signs (default 7d)',
    },
    port: { type: 'string', value: '<port>', description: 'MQTT over TCP (default 1883)' },
    host: { type: 'string', value: '<addr>', description: 'address to listen on (default 127.0.0.1)' },
    'ws-port': {
      type: 'string',
      value: '<port>',
      description: 'also MQTT over WebSocket on this port (/mqtt)',
    },
    'tls-port': {
      type: 'string',
      value: '<port>',
      description: 'also MQTT over TLS on this port (needs --tls-key, --tls-cert)',
    },
    'tls-key': { type: 'string', value: '<pem>', description: 'TLS private key' },
    'tls-cert': { type: 'string', value: '<pem>', description: 'TLS certificate chain' },
    'admin-port': {
      type: 'string',
      value: '<port>',
      description: 'admin channel on 127.0.0.1 (default: any free)',
    },
    postgres: {
      type: 'string',
      value: '<url>',
      description: 'PostgreSQL instead of the embedded SQLite file',
    },
    redis: {
      type: 'string',
      value: '<url>',
      description: 'Redis for aedes persistence shared by a fleet of brokers',
    },
    'http-port': {
      type: 'string',
      value: '<port>',
      description: 'OpenID Provider + sharing API on this port (contract default 8080; 0 = any free)',
    },
    'issuer-url': {
      type: 'string',
      value: '<url>',
      description: 'the public https issuer URL, when a TLS proxy fronts the HTTP port',
    },
    'issuer-id': {
      type: 'string',
      value: '<name>',
      description: "the issuer name in locks' issuer anchors (default tandem)",
    },
    'redirect-uri': {
      type: 'string',
      multiple: true,
      value: '<uri>',
      description: "the phone app's redirect URI (repeatable)",
    },
    id: { type: 'string', value: '<account>', description: 'account add: the account id (a-z 0-9 . _ -)' },
    name: { type: 'string', value: '<text>', description: 'account add: the display name' },
    'password-file': {
      type: 'string',
      value: '<file>',
      description: 'account add: read the password from this file (else from stdin)',
    },
    partition: {
      type: 'string',
      value: '<i/n>',
      description:
        "with --redis: this instance's bridge handles only the locks of partition i of n (n instances, i = 0..n-1)",
    },
    lock: { type: 'string', value: '<lock id>', description: 'register: the lock id' },
    'device-key': {
      type: 'string',
      value: '<hex>',
      description: "register: the lock's raw Ed25519 key, 64 hex digits",
    },
    'password-hash': {
      type: 'string',
      value: '<$7$...>',
      description: "register: the lock's MQTT password record",
    },
    password: {
      type: 'string',
      value: '<64 hex>',
      description:
        "register: the lock's MQTT password as its console shows it (the cloud keeps only its hash)",
    },
  },
  examples: [
    'tandem cloud --data-dir ./cloud --port 1883 --http-port 8080',
    'tandem cloud account add --id adam --name "Adam Owner" --password-file adam.pw',
    'tandem cloud register --lock lock-7 --device-key 3d40...ad --password 9f86...08',
  ],
};

const REVOKE: CommandSpec = {
  name: 'revoke',
  maxPositionals: 0,
  summary:
    'Revokes a token on a lock: the running cloud publishes a new full revocation update (SPEC §6) retained; `tandem cloud` shows when the lock acknowledges it.',
  options: {
    'data-dir': DATA,
    lock: { type: 'string', value: '<lock id>', required: true, description: 'the lock' },
    token: { type: 'string', value: '<hex>', required: true, description: 'the token id (its cti), hex' },
    exp: { type: 'string', value: '<unix|ISO>', required: true, description: "the token's own expiry" },
  },
  examples: ['tandem revoke --lock lock-7 --token 0f1e2d3c --exp 2027-01-01T00:00:00Z'],
};

const ALERTS: CommandSpec = {
  name: 'alerts',
  maxPositionals: 0,
  summary:
    'Lists the alerts the cloud holds, newest first, and the events flagged for owners (gaps, forks, forgeries, epoch changes).',
  options: {
    'data-dir': DATA,
    lock: { type: 'string', value: '<lock id>', description: 'only this lock' },
    limit: { type: 'string', value: '<n>', description: 'at most this many alerts (default 50)' },
    events: { type: 'boolean', description: 'also list the events flagged for owners' },
    json: { type: 'boolean', description: 'print JSON' },
  },
  examples: ['tandem alerts --lock lock-7 --events'],
};

function dataDir(p: ReturnType<typeof parse>): string {
  return str(p, 'data-dir') ?? 'tandem-cloud';
}

function port(text: string | undefined, name: string, fallback: number): number {
  return text === undefined ? fallback : parseUint(text, name, 0, 65_535);
}

/**
 * `--partition i/n`. Only with `--redis`: aedes has no shared subscriptions, so instances split the locks
 * between their bridges by a hash of the lock id; an instance alone with a partition would acknowledge and
 * drop the other partitions' messages.
 */
function parsePartition(
  text: string | undefined,
  redis: string | undefined,
): { index: number; count: number } | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d{1,4})\/(\d{1,4})$/.exec(text);
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (m === null || count < 1 || index >= count) {
    throw new CliError(
      'ERR_USAGE',
      `--partition must be i/n with 0 <= i < n <= 9999 (for example 0/2), not ${JSON.stringify(text)}`,
      { command: 'cloud' },
    );
  }
  if (redis === undefined) {
    throw new CliError(
      'ERR_USAGE',
      '--partition needs --redis: partitions split the locks between instances whose brokers share one Redis',
      { command: 'cloud' },
    );
  }
  return { index, count };
}

/** Runs `body`, printing a cloud error as `<CODE>: <message>` with its exit code. */
async function guarded(streams: CliStreams, body: () => Promise<number>): Promise<number> {
  const { isCloudError } = await import('../cloud-bridge/src/errors.js');
  try {
    return await body();
  } catch (e) {
    if (!isCloudError(e)) throw e;
    streams.stderr.write(`${e.code}: ${e.message}\n`);
    return e.code === 'ERR_CLOUD_ADMIN' ||
      e.code === 'ERR_CLOUD_KEY_ROTATION' ||
      e.code === 'ERR_CLOUD_LOCK_UNKNOWN' ||
      e.code === 'ERR_CLOUD_CREDENTIAL'
      ? EXIT.REFUSED
      : EXIT.IO;
  }
}

async function admin(dir: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const { adminRequest } = await import('../cloud-bridge/src/admin.js');
  let adminPort: number;
  let token: string;
  try {
    adminPort = Number(readFileSync(join(dir, 'admin.port'), 'utf8').trim());
    token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  } catch {
    throw new CliError(
      'ERR_IO',
      `no running cloud in ${dir} (admin.port, admin.token); start \`tandem cloud --data-dir ${dir}\``,
    );
  }
  return adminRequest(adminPort, token, method, path, body);
}

/** Entry point of `tandem cloud`. */
export async function run(argv: readonly string[], streams: CliStreams): Promise<number> {
  const p = parse(CLOUD, argv);
  if (p.help) {
    streams.stdout.write(helpText(CLOUD));
    return EXIT.OK;
  }
  const dir = dataDir(p);
  const sub = p.positionals[0];
  return guarded(streams, async () => {
    if (sub === 'register') {
      const hash = str(p, 'password-hash');
      const password = str(p, 'password');
      if ((hash === undefined) === (password === undefined)) {
        throw new CliError('ERR_USAGE', 'register needs exactly one of --password and --password-hash', {
          command: 'cloud',
        });
      }
      const out = await admin(dir, 'POST', '/locks', {
        lockId: req(p, 'lock'),
        deviceKey: req(p, 'device-key').toLowerCase(),
        ...(hash === undefined ? { password: password!.toLowerCase() } : { passwordHash: hash }),
      });
      streams.stdout.write(`registered ${(out as { lockId: string }).lockId}\n`);
      return EXIT.OK;
    }
    if (sub === 'mosquitto') return writeMosquitto(dir, str(p, 'postgres'), streams);
    if (sub === 'issuer') {
      const { runIssuer } = await import('./issuer.js');
      const overlap = str(p, 'overlap');
      return runIssuer(
        p.positionals[1],
        dir,
        {
          ...(overlap === undefined ? {} : { overlap }),
          insecurePlaintextKey: flag(p, 'insecure-plaintext-key'),
        },
        streams,
      );
    }
    if (sub === 'account') {
      if (p.positionals[1] !== 'add') {
        throw new CliError('ERR_USAGE', 'the account subcommand is `account add`', { command: 'cloud' });
      }
      return addAccount(dir, req(p, 'id'), req(p, 'name'), str(p, 'password-file'), streams);
    }
    if (sub !== undefined || p.positionals.length > 1)
      throw new CliError('ERR_USAGE', `unknown subcommand ${JSON.stringify(sub)}`, { command: 'cloud' });
    const host = str(p, 'host') ?? '127.0.0.1';
    const tlsPort = str(p, 'tls-port');
    if (tlsPort !== undefined && (str(p, 'tls-key') === undefined || str(p, 'tls-cert') === undefined)) {
      throw new CliError('ERR_USAGE', '--tls-port needs --tls-key and --tls-cert', { command: 'cloud' });
    }
    const wsPort = str(p, 'ws-port');
    const partition = parsePartition(str(p, 'partition'), str(p, 'redis'));
    const { startCloud } = await import('../cloud-bridge/src/cloud.js');
    const postgres = str(p, 'postgres');
    const redis = str(p, 'redis');
    const httpPort = str(p, 'http-port');
    const issuerUrl = str(p, 'issuer-url');
    const issuerId = str(p, 'issuer-id');
    const cloud = await startCloud({
      ...(httpPort === undefined
        ? {}
        : {
            http: {
              port: port(httpPort, 'http-port', 8080),
              host,
              ...(issuerUrl === undefined ? {} : { issuerUrl }),
            },
          }),
      ...(issuerId === undefined ? {} : { issuerId }),
      appRedirectUris: list(p, 'redirect-uri'),
      dataDir: dir,
      mqtt: { port: port(str(p, 'port'), 'port', 1883), host },
      ...(tlsPort === undefined
        ? {}
        : {
            mqtts: {
              port: port(tlsPort, 'tls-port', 8883),
              host,
              key: readFileSync(req(p, 'tls-key')),
              cert: readFileSync(req(p, 'tls-cert')),
            },
          }),
      ...(wsPort === undefined ? {} : { ws: { port: port(wsPort, 'ws-port', 8080), host } }),
      adminPort: port(str(p, 'admin-port'), 'admin-port', 0),
      ...(postgres === undefined ? {} : { postgresUrl: postgres }),
      ...(redis === undefined ? {} : { redisUrl: redis }),
      insecurePlaintextKey: flag(p, 'insecure-plaintext-key'),
      ...(partition === undefined ? {} : { partition }),
    });
    // The handlers go in before the start line is printed: a supervisor (or a test) that stops the cloud as
    // soon as it reads that line must reach them, not the default action, which kills the process with the
    // store and the broker's persistence open. Printed first, the line left a window (short, unless the
    // process is descheduled right after the write); the likely cause of one CI run's exit by signal
    // instead of 0 in test/e2e/issuer-keys.test.ts.
    const stopped = new Promise<number>((resolve) => {
      const stop = (signal: string): void => {
        streams.stdout.write(`${signal}: stopping\n`);
        cloud.close().then(
          () => resolve(EXIT.OK),
          () => resolve(EXIT.INTERNAL),
        );
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    const ports = cloud.broker.ports;
    streams.stdout.write(
      `tandem cloud: MQTT ${host}:${ports.tcp}` +
        (ports.tls === undefined ? '' : `, MQTTS ${host}:${ports.tls}`) +
        (ports.ws === undefined ? '' : `, WebSocket ${host}:${ports.ws}/mqtt`) +
        `; admin 127.0.0.1:${cloud.adminPort}; issuer ${cloud.issuer.kidText} (${join(dir, 'issuer.pub.jwk.json')})\n`,
    );
    if (cloud.issuerUrl !== undefined) {
      streams.stdout.write(
        `OpenID issuer ${cloud.issuerUrl} (${cloud.issuerUrl}/.well-known/openid-configuration); ` +
          `sharing API ${cloud.httpUrl}/api/v1; delegated tokens: iss "${issuerId ?? 'tandem'}", kid ${cloud.issuer.kidText}\n`,
      );
    }
    return stopped;
  });
}

/** `tandem cloud account add`: the password is hashed here (Argon2id), only the hash reaches the cloud. */
async function addAccount(
  dir: string,
  id: string,
  name: string,
  passwordFile: string | undefined,
  streams: CliStreams,
): Promise<number> {
  let password: string;
  if (passwordFile !== undefined) {
    try {
      password = readFileSync(passwordFile, 'utf8');
    } catch (e) {
      throw new CliError('ERR_IO', `cannot read --password-file ${passwordFile}: ${(e as Error).message}`);
    }
  } else {
    const chunks: Buffer[] = [];
    for await (const c of streams.stdin as AsyncIterable<Buffer | string>) {
      chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
      if (chunks.reduce((n, b) => n + b.length, 0) > 4096) break;
    }
    password = Buffer.concat(chunks).toString('utf8');
  }
  password = password.replace(/\r?\n$/, '');
  const rules = await import('../cloud-bridge/src/oidc/rules.js');
  // Called through a plain function type: TypeScript allows assertion functions only under declared names.
  const check = (f: (v: unknown) => void, v: unknown): void => f(v);
  try {
    check(rules.checkAccountId, id);
    check(rules.checkPassword, password);
  } catch (e) {
    throw new CliError('ERR_USAGE', (e as Error).message, { command: 'cloud' });
  }
  const { Argon2idHasher } = await import('../cloud-bridge/src/oidc/passwords.js');
  const passwordHash = await new Argon2idHasher().hash(password);
  await admin(dir, 'POST', '/accounts', { id, name, passwordHash });
  streams.stdout.write(`account ${id} created\n`);
  return EXIT.OK;
}

async function writeMosquitto(
  dir: string,
  postgres: string | undefined,
  streams: CliStreams,
): Promise<number> {
  const { openSqlStore } = await import('../cloud-bridge/src/store/sql-store.js');
  const { writeMosquittoFiles } = await import('../cloud-bridge/src/cloud.js');
  const { hashPassword } = await import('../cloud-bridge/src/credentials.js');
  let bridgePassword: string;
  try {
    bridgePassword = readFileSync(join(dir, 'bridge.password'), 'utf8').trim();
  } catch {
    throw new CliError(
      'ERR_IO',
      `no bridge.password in ${dir}: start \`tandem cloud --data-dir ${dir}\` once first`,
    );
  }
  const store = await openSqlStore(
    postgres === undefined
      ? { kind: 'sqlite', path: join(dir, 'cloud.db') }
      : { kind: 'postgres', url: postgres },
  );
  try {
    let haPassword: string | undefined;
    try {
      haPassword = readFileSync(join(dir, 'homeassistant.password'), 'utf8').trim();
    } catch {
      haPassword = undefined; // a data directory from before Home Assistant's user: no such line
    }
    const files = await writeMosquittoFiles(
      store,
      hashPassword(bridgePassword),
      join(dir, 'mosquitto'),
      haPassword === undefined ? undefined : hashPassword(haPassword),
    );
    streams.stdout.write(
      `wrote ${files.passwd} and ${files.acl} (use with cloud-bridge/mosquitto/mosquitto.conf)\n`,
    );
    return EXIT.OK;
  } finally {
    await store.close();
  }
}

/** `tandem revoke`. */
export const revoke: CommandModule = {
  run: async (argv, streams) => {
    const p = parse(REVOKE, argv);
    if (p.help) {
      streams.stdout.write(helpText(REVOKE));
      return EXIT.OK;
    }
    const tokenId = parseHex(req(p, 'token'), 'token', 1, 32);
    const exp = parseTime(req(p, 'exp'), 'exp');
    return guarded(streams, async () => {
      const out = (await admin(dataDir(p), 'POST', '/revoke', {
        lockId: req(p, 'lock'),
        tokenId: Buffer.from(tokenId).toString('hex'),
        exp,
      })) as { lockId: string; version: number; entries: number };
      streams.stdout.write(
        `revoked on ${out.lockId}: revocation version ${out.version}, ${out.entries} entries\n`,
      );
      return EXIT.OK;
    });
  },
};

interface AlertRow {
  lockId: string;
  epoch: number;
  sequence: number;
  kind: string;
  time: number;
  receivedAt: number;
  via: string;
  detail: Record<string, unknown>;
}

/** `tandem alerts`. */
export const alerts: CommandModule = {
  run: async (argv, streams) => {
    const p = parse(ALERTS, argv);
    if (p.help) {
      streams.stdout.write(helpText(ALERTS));
      return EXIT.OK;
    }
    const lock = str(p, 'lock');
    const limit = str(p, 'limit') === undefined ? 50 : parseUint(str(p, 'limit')!, 'limit', 1, 1000);
    return guarded(streams, async () => {
      const q = `?limit=${limit}${lock === undefined ? '' : `&lock=${encodeURIComponent(lock)}`}`;
      const rows = (await admin(dataDir(p), 'GET', `/alerts${q}`)) as AlertRow[];
      const events = flag(p, 'events')
        ? ((await admin(
            dataDir(p),
            'GET',
            `/events${lock === undefined ? '' : `?lock=${encodeURIComponent(lock)}`}`,
          )) as unknown[])
        : undefined;
      if (flag(p, 'json')) {
        streams.stdout.write(
          `${JSON.stringify(events === undefined ? rows : { alerts: rows, events }, null, 2)}\n`,
        );
        return EXIT.OK;
      }
      for (const r of rows) {
        streams.stdout.write(
          `${new Date(r.time * 1000).toISOString()} ${r.lockId} ${r.kind} epoch ${r.epoch} #${r.sequence} via ${r.via}` +
            `${Object.keys(r.detail).length === 0 ? '' : ` ${JSON.stringify(r.detail)}`}\n`,
        );
      }
      if (rows.length === 0) streams.stdout.write('no alerts\n');
      for (const e of events ?? []) streams.stdout.write(`event ${JSON.stringify(e)}\n`);
      return EXIT.OK;
    });
  },
};
