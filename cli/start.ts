/**
 * `tandem start` (what `npm start` runs, issue 11 §1): the whole system on one machine as one process tree.
 *
 * - The cloud (`startCloud`): SQLite store, embedded aedes broker, bridge, admin channel.
 * - The demo owner `adam` and rider `bianca`: passwords made once and kept in `accounts.json` (0600), and a
 *   phone key file each (`phones/<user>.json`, P-256, the gateway's rider key file format) holding the token
 *   chain for each lock: adam's own owner token (signed by his phone key, scope incl. manage) and a share
 *   for bianca signed by the cloud issuer (unlock, lock, status; 30 days).
 * - The virtual radio, hosted here and served at `radio.sock`; the simulated phones (gateway
 *   {@link LockClient} on noble) join it in this process; the rider CLI joins it from another.
 * - Two simulated locks, each its own process and data directory (`locks/<id>/`, guarded by `lock.pid`),
 *   provisioned over their console with the cloud's issuer anchor and claimed by adam's phone key,
 *   registered with the cloud for MQTT ([TANDEM-MQTT-13]); consoles on pseudo-terminals when socat is
 *   installed. Each is adapted to the dashboard's {@link SimLockControl}.
 *
 * A second start on the same directory reuses everything in it. Leftovers of a run that was killed (the radio
 * socket, pid files, pseudo-terminal links, ports taken by nobody) do not stop it; a `tandem start` that is
 * still running on the directory does (`start.pid`). SIGINT and SIGTERM stop the locks in order (locked),
 * then the radio and the cloud, and exit 0.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:net';
import { delimiter, join, relative, resolve } from 'node:path';
import type { Cloud } from '../cloud-bridge/src/cloud.js';
import type {
  SimLockControl,
  SimPhoneControl,
  SimPhoneResult,
} from '../cloud-bridge/src/dashboard/sim-control.js';
import type { RiderKeyFile } from '../gateway/src/key-file.js';
import type { LockClient } from '../gateway/src/lock-client.js';
import type { PrivateKey } from '../protocol/src/keys.js';
import { CliError, EXIT, flag, helpText, parse, parseUint, str } from './args.js';
import type { CliStreams, CommandSpec } from './args.js';
import type { ProcessSimLockControl } from './sim-lock-control.js';

const SPEC: CommandSpec = {
  name: 'start',
  maxPositionals: 0,
  summary:
    'Runs the whole system on this machine: the cloud (broker, bridge, store), the demo owner adam and rider bianca, two simulated locks on a virtual radio and a simulated phone for each user. Prints what it started and where, and commands to try. Stop it with Ctrl-C.',
  options: {
    'data-dir': {
      type: 'string',
      value: '<dir>',
      description: 'where everything lives (default .tandem-tmp/system); a second start reuses it',
    },
    'mqtt-port': {
      type: 'string',
      value: '<port>',
      description: 'MQTT over TCP on 127.0.0.1 (default 1883, or any free port when 1883 is taken)',
    },
    'http-port': {
      type: 'string',
      value: '<port>',
      description:
        'the HTTP listener on 127.0.0.1: OpenID Provider, sharing API, dashboard (default 8080, or any free port when 8080 is taken)',
    },
    'no-console': {
      type: 'boolean',
      description: 'no pseudo-terminal consoles for the locks (default: one each when socat is installed)',
    },
  },
  examples: ['npm start', 'npm start -- --data-dir /tmp/tandem-bench --mqtt-port 18830 --http-port 18080'],
};

/** The demo locks: lock id and device id on the virtual radio. */
export const DEMO_LOCKS = [
  { lockId: 'bike-a', deviceId: 1 },
  { lockId: 'bike-b', deviceId: 2 },
] as const;

/** The demo users and their phones' device ids on the virtual radio. */
export const DEMO_USERS = [
  { user: 'adam', role: 'owner', deviceId: 11 },
  { user: 'bianca', role: 'rider', deviceId: 12 },
] as const;

/** The issuer's name as the locks' anchor carries it (a token's "iss" must match, [TANDEM-CHAIN-2]). */
const ISSUER_NAME = 'tandem';
/** A device id the rider CLI may use from another process. */
const CLI_DEVICE_ID = 21;
/** The device id the demo phones are registered under in the cloud. */
const PHONE_DEVICE = 'sim-phone';

/**
 * A demo user's simulated phone: its key file, and a BLE client on the virtual radio made on first use. As the
 * dashboard's {@link SimPhoneControl} it unlocks and relocks: the owner with his own owner token, a rider with
 * the token the cloud mints from her live shares for this phone's key ([TANDEM-DLG-2]), so a revoked or
 * expired share is what the lock then refuses.
 */
export interface SimPhone extends SimPhoneControl {
  readonly user: string;
  readonly keyPath: string;
  readonly deviceId: number;
  /** The phone's key and the chains it holds per lock. */
  keyFile(): Promise<RiderKeyFile>;
  client(): Promise<LockClient>;
}

/** What `tandem start` runs; also what the dashboard is given. */
export interface SimSystem {
  readonly dataDir: string;
  readonly cloud: Cloud;
  readonly locks: readonly ProcessSimLockControl[];
  readonly phones: readonly SimPhone[];
  readonly radioPath: string;
  /** The dashboard's address. */
  readonly dashboardUrl: string;
  /** Bianca's share of bike-a as `tandem revoke` names it: the token id (hex) and the latest expiry. */
  readonly demoShare: { readonly lockId: string; readonly ctiHex: string; readonly exp: number };
  /** Demo accounts and their passwords. */
  readonly accounts: Readonly<Record<string, string>>;
  close(): Promise<void>;
}

function onPath(program: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => d !== '' && existsSync(join(d, program)));
}

/** A port on 127.0.0.1 that nobody listens on now (a port left by a killed run is free again). */
async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Waits (at most 15 s) until the process named in `pidFile`, if any, has ended. */
async function orphanGone(pidFile: string, log: (line: string) => void): Promise<void> {
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : NaN;
  if (!Number.isInteger(pid) || pid <= 0) return;
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  log(`waiting for process ${pid} (a lock left by an earlier start) to stop`);
  for (let i = 0; i < 150 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
}

/** Demo passwords, made once and kept (mode 0600) so that a second start logs in with the same ones. */
function loadOrCreateAccounts(path: string): Record<string, string> {
  if (existsSync(path)) {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    const out: Record<string, string> = {};
    for (const { user } of DEMO_USERS) {
      const v = parsed[user];
      if (typeof v !== 'string' || v.length < 8) {
        throw new CliError(
          'ERR_IO',
          `${path}: "${user}" must be a password string; delete the file to make new ones`,
        );
      }
      out[user] = v;
    }
    return out;
  }
  const out = Object.fromEntries(DEMO_USERS.map(({ user }) => [user, randomBytes(9).toString('hex')]));
  writeFileSync(path, `${JSON.stringify(out, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  return out;
}

/** Starts the system; `log` receives progress lines. */
export async function startSystem(options: {
  dataDir: string;
  mqttPort?: number;
  httpPort?: number;
  console: 'pty' | 'none';
  log: (line: string) => void;
}): Promise<SimSystem> {
  const { dataDir, log } = options;
  const [
    { startCloud, loadOrCreateSecret },
    { hashPassword },
    vr,
    { ProcessSimLockControl, claimPidFile, provisionOverConsole },
    { claimRadioSocket },
    keyFiles,
    { mintToken, decodeToken },
    { dashboardHandler },
    { Argon2idHasher },
    { shareCti, mintDelegations },
  ] = await Promise.all([
    import('../cloud-bridge/src/cloud.js'),
    import('../cloud-bridge/src/credentials.js'),
    import('../hardware/src/virtual-radio/index.js'),
    import('./sim-lock-control.js'),
    import('./lock.js'),
    import('../gateway/src/key-file.js'),
    import('../protocol/src/token.js'),
    import('../cloud-bridge/src/dashboard/handler.js'),
    import('../cloud-bridge/src/oidc/passwords.js'),
    import('../cloud-bridge/src/oidc/delegations.js'),
  ]);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  let release: () => Promise<void>;
  try {
    release = await claimPidFile(dataDir, 'start.pid', 'tandem start');
  } catch (e) {
    throw new CliError('ERR_IO', `${(e as Error).message}: stop it first, or give another --data-dir`);
  }
  const closers: (() => Promise<void>)[] = [release];
  const closeAll = async (): Promise<void> => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  };
  try {
    const wanted = options.mqttPort ?? 1883;
    const mqttPort = (await portFree(wanted)) ? wanted : 0;
    if (mqttPort !== wanted) log(`MQTT port ${wanted} is taken: using a free one`);
    const wantedHttp = options.httpPort ?? 8080;
    const httpPort = (await portFree(wantedHttp)) ? wantedHttp : 0;
    if (httpPort !== wantedHttp) log(`HTTP port ${wantedHttp} is taken: using a free one`);
    // The dashboard needs the provider's issuer URL and the locks, which exist only after the start: the
    // mount answers 503 until it is bound below.
    const mount: { handler?: (req: IncomingMessage, res: ServerResponse) => void } = {};
    // The issuer keys are encrypted at rest (TANDEM_ISSUER_SECRET, [TANDEM-ANCHOR-7] keyring); the demo keeps
    // its own secret beside its data (0600) unless the environment gives one.
    const issuerSecret =
      process.env.TANDEM_ISSUER_SECRET ?? loadOrCreateSecret(join(dataDir, 'issuer.secret'));
    const cloud = await startCloud({
      dataDir: join(dataDir, 'cloud'),
      issuerSecret,
      mqtt: { host: '127.0.0.1', port: mqttPort },
      http: { port: httpPort, host: '127.0.0.1' },
      issuerId: ISSUER_NAME,
      dashboardHandler: (req, res) => {
        if (mount.handler) mount.handler(req, res);
        else res.writeHead(503, { 'content-type': 'text/plain' }).end('starting\n');
      },
    });
    closers.push(() => cloud.close());
    const accounts = loadOrCreateAccounts(join(dataDir, 'accounts.json'));
    const hasher = new Argon2idHasher();
    for (const { user } of DEMO_USERS) {
      if ((await cloud.store.findAccount(user)) === undefined) {
        await cloud.store.createAccount({
          id: user,
          name: user === 'adam' ? 'Adam (demo owner)' : 'Bianca (demo rider)',
          passwordHash: await hasher.hash(accounts[user]!),
        });
      }
    }

    // Phones: a P-256 key each, kept in the gateway's key file format (the rider CLI reads the same file).
    await mkdir(join(dataDir, 'phones'), { recursive: true, mode: 0o700 });
    const phoneKeys = new Map<string, RiderKeyFile>();
    for (const { user } of DEMO_USERS) {
      const path = join(dataDir, 'phones', `${user}.json`);
      const file = existsSync(path) ? await keyFiles.readKeyFile(path) : keyFiles.newKeyFile();
      if (!existsSync(path)) await keyFiles.writeKeyFile(path, file);
      phoneKeys.set(user, file);
    }
    const adamKey = phoneKeys.get('adam')!.key;
    const adamKid = new TextEncoder().encode('adam-phone');
    // The phones' keys, registered as each user's device: the cloud binds their tokens to them ([TANDEM-DLG-5]).
    for (const { user } of DEMO_USERS) {
      await cloud.store.registerPhoneKey(user, PHONE_DEVICE, phoneKeys.get(user)!.key.publicKey, {
        name: 'simulated phone (tandem start)',
      });
    }

    // The radio: lock boards as Pi Zero W (Bluetooth 4.1, 27-octet link layer), phones as the default host.
    const radioPath = join(dataDir, 'radio.sock');
    await claimRadioSocket(radioPath);
    const radio = new vr.VirtualRadio({
      clock: new vr.RealClock(),
      connectionIntervalMs: 30,
      linkLayerPayload: 27,
      profiles: Object.fromEntries(DEMO_LOCKS.map((l) => [l.deviceId, vr.PI_ZERO_W])),
    });
    const radioServer = await vr.serveRadio(radio, radioPath);
    closers.push(async () => {
      await radioServer.close();
      radio.close();
    });
    vr.installVirtualHci(radio);

    const locks: ProcessSimLockControl[] = [];
    closers.push(async () => {
      await Promise.all(locks.map((l) => l.close()));
    });
    const issuer = cloud.issuer;
    for (const { lockId, deviceId } of DEMO_LOCKS) {
      // This start holds start.pid, so a lock process still on the directory is an orphan of a start that was
      // killed: it stops by itself once its IPC channel is gone. Wait for that rather than fail.
      await orphanGone(join(dataDir, 'locks', lockId, 'lock.pid'), log);
      const lock = await ProcessSimLockControl.start({
        dataDir: join(dataDir, 'locks', lockId),
        deviceId,
        radioPath,
        radio,
        mqttUrl: cloud.mqttUrl,
        console: options.console,
        acknowledged: async (id) => (await cloud.store.getRevocationAck(id))?.version ?? null,
      });
      locks.push(lock);
      const creds = await lock.credentials();
      if ((creds.lockId ?? lockId) !== lockId) {
        throw new CliError(
          'ERR_IO',
          `${join(dataDir, 'locks', lockId)} holds lock ${creds.lockId}, not ${lockId}: remove that directory to start afresh`,
        );
      }
      // [TANDEM-MQTT-13]: the cloud keeps only the hash of the password the lock made.
      const registered = await cloud.store.getLock(lockId);
      if (registered === undefined || registered.passwordHash === null) {
        await cloud.store.registerLock({
          lockId,
          deviceKey: new Uint8Array(Buffer.from(creds.deviceKey, 'hex')),
          passwordHash: hashPassword(creds.password!),
          registeredAt: Date.now(),
        });
      }
      await provisionOverConsole(
        lock,
        lockId,
        { kid: issuer.kid, alg: 'EdDSA', raw: issuer.key.publicKey.raw, name: ISSUER_NAME },
        { kid: adamKid, alg: adamKey.alg, raw: adamKey.publicKey.raw, name: 'adam' },
      );
      await cloud.store.claimLock({
        lockId,
        owner: 'adam',
        ownerKey: adamKey.publicKey,
        ownerKid: adamKid,
        claimedAt: Date.now(),
      });
      log(`lock ${lockId}: ${lock.snapshot().state}, pid ${lock.pid}`);
    }

    // Bianca's share of each lock, kept in the cloud (the dashboard and the API show and revoke it).
    const now = Math.floor(Date.now() / 1000);
    const DAY = 86_400;
    const shareId = (lockId: string): string => `demo-bianca-${lockId}`;
    for (const { lockId } of DEMO_LOCKS) {
      if ((await cloud.store.getShare(shareId(lockId))) === undefined) {
        await cloud.store.putShare({
          id: shareId(lockId),
          owner: 'adam',
          lock: lockId,
          rider: 'bianca',
          scope: ['unlock', 'lock', 'status'],
          notBefore: now - 60,
          notAfter: now + 30 * DAY,
        });
      }
    }
    // Tokens the phones hold: made again when missing or within a day of expiring.
    const mint = (
      signer: PrivateKey,
      kid: Uint8Array,
      iss: string,
      holder: PrivateKey,
      aud: string,
      scope: string[],
      ttl: number,
      rider?: string,
    ) =>
      mintToken(
        {
          iss,
          sub: 'adam',
          aud,
          nbf: now - 60,
          iat: now,
          exp: now + ttl,
          // A rider's token names her share, so that revoking the share revokes it ([TANDEM-DLG-4]).
          cti: rider === undefined ? new Uint8Array(randomBytes(12)) : shareCti(shareId(aud)),
          cnf: holder.publicKey,
          scope,
          ...(rider === undefined ? {} : { rider }),
        },
        signer,
        kid,
      );
    for (const { user } of DEMO_USERS) {
      const file = phoneKeys.get(user)!;
      let changed = false;
      for (const { lockId } of DEMO_LOCKS) {
        const held = file.locks[lockId]?.chain?.[0];
        if (held !== undefined && decodeToken(held).claims.exp > now + DAY) continue;
        const token =
          user === 'adam'
            ? mint(
                adamKey,
                adamKid,
                'adam',
                file.key,
                lockId,
                ['unlock', 'lock', 'status', 'manage', 'delegate'],
                365 * DAY,
              )
            : mint(
                issuer.key,
                issuer.kid,
                ISSUER_NAME,
                file.key,
                lockId,
                ['unlock', 'lock', 'status'],
                30 * DAY,
                user,
              );
        file.locks[lockId] = { chain: [token] };
        changed = true;
      }
      if (changed) await keyFiles.writeKeyFile(join(dataDir, 'phones', `${user}.json`), file);
    }

    const beaconSource = async (r: { lockId: string; nonce: Uint8Array }): Promise<Uint8Array> => {
      const { encodeTimeBeacon } = await import('../protocol/src/time-beacon.js');
      // What the cloud answers a phone's sync with ([TANDEM-TIME-4]): a beacon bound to the lock's nonce.
      return encodeTimeBeacon(
        { time: Math.floor(Date.now() / 1000), nonce: r.nonce, lockId: r.lockId, accuracy: 2 },
        issuer.key,
        issuer.kid,
      );
    };
    const phones: SimPhone[] = DEMO_USERS.map(({ user, deviceId }) => {
      let client: Promise<LockClient> | undefined;
      const keyPath = join(dataDir, 'phones', `${user}.json`);
      const getClient = (): Promise<LockClient> =>
        (client ??= (async () => {
          const [{ LockClient }, { NobleTransport }] = await Promise.all([
            import('../gateway/src/lock-client.js'),
            import('../gateway/src/noble-transport.js'),
          ]);
          const transport = new NobleTransport({ binding: { kind: 'virtual', deviceId } });
          closers.push(() => transport.close());
          return new LockClient({ transport, beaconSource });
        })());
      /** The chain this phone presents: its own owner token, or what the cloud mints from live shares. */
      const chainFor = async (lockId: string): Promise<Uint8Array[] | string> => {
        const file = await keyFiles.readKeyFile(keyPath);
        const claim = await cloud.store.getClaim(lockId);
        if (claim?.owner === user) {
          return file.locks[lockId]?.chain ?? `${user} holds no owner token for ${lockId}`;
        }
        const delegations = mintDelegations({
          rider: user,
          shares: await cloud.store.sharesFor(user),
          holder: file.key.publicKey,
          issuer: { id: ISSUER_NAME, kid: issuer.kid, key: issuer.key },
          now: Math.floor(Date.now() / 1000),
        });
        const entry = Object.values(delegations)
          .flat()
          .find((e) => e.lock === lockId);
        // No live share: the phone presents the token it still holds, as a phone that has not synced since
        // the owner revoked would; the lock is what refuses it (REVOKED, §5.7 step 9), not this process.
        if (entry === undefined) {
          return file.locks[lockId]?.chain ?? `${user} has no live share of ${lockId}`;
        }
        return [new Uint8Array(Buffer.from(entry.access_token, 'base64url'))];
      };
      const act = async (lockId: string, command: 'unlock' | 'lock'): Promise<SimPhoneResult> => {
        const chain = await chainFor(lockId);
        if (typeof chain === 'string') return { status: 'NO_TOKEN', message: chain };
        const [{ Command }, c, file] = await Promise.all([
          import('../protocol/src/pop.js'),
          getClient(),
          keyFiles.readKeyFile(keyPath),
        ]);
        try {
          const r = await c.unlock(lockId, {
            chain,
            holderKey: file.key,
            command: command === 'unlock' ? Command.UNLOCK : Command.LOCK,
          });
          return { status: r.statusName, state: r.state, message: r.meaning };
        } catch (e) {
          const code = (e as { code?: unknown }).code;
          return { status: typeof code === 'string' ? code : 'ERR_PHONE', message: (e as Error).message };
        }
      };
      return {
        user,
        keyPath,
        deviceId,
        keyFile: () => keyFiles.readKeyFile(keyPath),
        client: getClient,
        unlock: (lockId) => act(lockId, 'unlock'),
        relock: (lockId) => act(lockId, 'lock'),
      };
    });

    const dashboard = dashboardHandler({
      simLocks: locks,
      phones,
      store: cloud.store,
      issuer: cloud.issuerUrl!,
      verifyAccessToken: (t) => cloud.oidc!.verifyAccessToken(t),
    });
    mount.handler = dashboard;
    // Closed first (closers run in reverse): its live feeds end before the listener closes.
    closers.push(async () => dashboard.close());

    return {
      dataDir,
      cloud,
      locks,
      phones,
      radioPath,
      dashboardUrl: `${cloud.issuerUrl!}/dashboard/`,
      demoShare: {
        lockId: DEMO_LOCKS[0].lockId,
        ctiHex: Buffer.from(shareCti(shareId(DEMO_LOCKS[0].lockId))).toString('hex'),
        exp: (await cloud.store.getShare(shareId(DEMO_LOCKS[0].lockId)))!.notAfter,
      },
      accounts,
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** The banner: what runs where, and what to try. */
function banner(sys: SimSystem): string {
  // Paths under the working directory are printed short; others in full.
  const rel = (p: string): string => {
    const r = relative(process.cwd(), p);
    return r === '' ? '.' : r.startsWith('..') ? p : r;
  };
  const issuerKey = rel(join(sys.dataDir, 'cloud', 'issuer.jwk.json'));
  const radio = rel(sys.radioPath);
  const tandem = 'node --import tsx cli/main.ts';
  const lines = [
    '',
    'Tandem is running: everything below lives in ' + rel(sys.dataDir),
    '',
    `  dashboard ${sys.dashboardUrl}   (log in as adam or bianca)`,
    `  cloud     MQTT ${sys.cloud.mqttUrl}   sharing API ${sys.cloud.issuerUrl!}/api/v1   admin channel 127.0.0.1:${sys.cloud.adminPort}`,
    `            issuer key ${issuerKey}`,
    `  radio     virtual BLE radio at ${radio} (device ${CLI_DEVICE_ID} is free for the CLI)`,
    ...sys.locks.map(
      (l) =>
        `  lock      ${l.lockId.padEnd(8)} ${l.snapshot().state.padEnd(8)} console: ${l.consolePath === null ? '(none: install socat for a pseudo-terminal)' : `picocom -b 115200 ${rel(l.consolePath)}`}`,
    ),
    ...sys.phones.map(
      (p) => `  phone     ${p.user.padEnd(8)} key file ${rel(p.keyPath)} (holds a token for each lock)`,
    ),
    ...Object.entries(sys.accounts).map(([u, pw]) => `  account   ${u.padEnd(8)} password ${pw}`),
    '',
    'Try (in another terminal, from the repository):',
    `  ${tandem} unlock bike-a --key ${rel(sys.phones[1]!.keyPath)} --radio ${radio} --device-id ${CLI_DEVICE_ID} --issuer-key ${issuerKey}`,
    `  ${tandem} status bike-a --key ${rel(sys.phones[1]!.keyPath)} --radio ${radio} --device-id ${CLI_DEVICE_ID}`,
    `  at a lock's console: status | sim latch push (shut the shackle) | sim motion shake 5000 (shake the bike) | alarm clear`,
    `  ${tandem} alerts --data-dir ${rel(join(sys.dataDir, 'cloud'))} --events`,
    `  ${tandem} revoke --data-dir ${rel(join(sys.dataDir, 'cloud'))} --lock ${sys.demoShare.lockId} --token ${sys.demoShare.ctiHex} --exp ${sys.demoShare.exp}   (bianca's share; then unlock again: REVOKED)`,
    `  share, revoke, unlock and relock as adam or bianca, and the tester controls: ${sys.dashboardUrl}`,
    '',
    'Ctrl-C stops everything; the locks stay locked. `npm start` again picks up where this left off.',
    '',
  ];
  return lines.join('\n');
}

/** Runs until SIGINT or SIGTERM. */
export async function run(argv: readonly string[], streams: CliStreams): Promise<number> {
  const p = parse(SPEC, argv);
  if (p.help) {
    streams.stdout.write(helpText(SPEC));
    return EXIT.OK;
  }
  const dataDir = resolve(str(p, 'data-dir') ?? join('.tandem-tmp', 'system'));
  const mqttText = str(p, 'mqtt-port');
  const mqttPort = mqttText === undefined ? undefined : parseUint(mqttText, 'mqtt-port', 0, 65_535);
  const httpText = str(p, 'http-port');
  const httpPort = httpText === undefined ? undefined : parseUint(httpText, 'http-port', 0, 65_535);
  const consoleKind = flag(p, 'no-console') || !onPath('socat') ? 'none' : 'pty';
  const log = (line: string): void => void streams.stdout.write(`${line}\n`);
  // The handlers go in first: a signal during start-up must still stop what has started.
  let sys: SimSystem | undefined;
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping; the locks stay locked`);
    const cutShort = setTimeout(() => process.exit(EXIT.INTERNAL), 20_000);
    void (sys?.close() ?? Promise.resolve()).then(
      () => {
        clearTimeout(cutShort);
        log('stopped');
        process.exit(EXIT.OK);
      },
      () => process.exit(EXIT.INTERNAL),
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  log(`tandem start: data in ${dataDir}`);
  try {
    sys = await startSystem({
      dataDir,
      ...(mqttPort === undefined ? {} : { mqttPort }),
      ...(httpPort === undefined ? {} : { httpPort }),
      console: consoleKind,
      log,
    });
  } catch (e) {
    if (stopping) return new Promise<number>(() => {});
    const code = (e as { code?: unknown }).code;
    if (e instanceof CliError) throw e;
    if (typeof code === 'string' && code.startsWith('ERR_')) {
      throw new CliError('ERR_IO', `the system could not start: ${code}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    throw e;
  }
  if (stopping) {
    await sys.close();
    return EXIT.OK;
  }
  streams.stdout.write(banner(sys));
  log('tandem start: ready');
  return new Promise<number>(() => {});
}

/** The locks as the dashboard takes them. */
export function dashboardLocks(sys: SimSystem): readonly SimLockControl[] {
  return sys.locks;
}
