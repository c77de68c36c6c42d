/**
 * Group `mqtt` (issue 9 §4): the cloud's MQTT path against the bare broker carrying the same messages, on
 * aedes and, where Debian's `mosquitto` is installed, on Mosquitto.
 *
 * Each side runs in a child process of its own (this file, forked with `--expose-gc`), so that its memory can
 * be read alone and the two sides do not share an event loop; the simulated locks run in this process and
 * are the same MQTT.js clients, with the same CONNECT (client id = lock id, lock credential, will) and the
 * same four subscriptions as the lock's client (firmware-sim/src/mqtt/lock-mqtt-client.ts), against both.
 *
 * - the cloud: `startBroker` (aedes 1.2 with the [TANDEM-MQTT-13] `$7$` check per CONNECT, the
 *   [TANDEM-MQTT-4] ACL and size/flood hooks, LevelDB persistence in a temporary directory) and `Bridge`
 *   (signature, lock id, dedupe and chain checks, SQLite store written in batches of one transaction each,
 *   [TANDEM-MQTT-15], a signed outbox ack per lock per batch); on
 *   Mosquitto, Mosquitto with the repository's mosquitto.conf, passwd and ACL (`writeMosquittoFiles`) and
 *   the bridge over MQTT 5 with a shared subscription;
 * - bare: aedes with its defaults (no hooks, in-memory persistence), or Mosquitto with anonymous access and
 *   no ACL, and a plain MQTT.js subscriber on `tandem/v1/lock/+/alert` at QoS 1.
 *
 * Rows (`<broker>` is `aedes` or `mosquitto`):
 *
 * | name | goal | what |
 * | --- | --- | --- |
 * | `mqtt.<broker>.alerts_rps_ratio` | >= 0.8 | alerts per second the cloud stores / alerts per second the bare subscriber receives, the same signed alerts from the same locks (QoS 1) |
 * | `mqtt.<broker>.alerts_rps_ratio_broker_only` | - | the same with the cloud's broker (credentials, ACL, flood limit, persistence) and a plain subscriber in place of the bridge: how much of the gap is the broker's hooks, and how much the bridge and store |
 * | `mqtt.<broker>.memory_per_lock_kb` | - | memory the broker process grows by per connected, subscribed lock (aedes: heap and external of the cloud's process, broker and bridge, after a GC; Mosquitto: its VmRSS) |
 * | `mqtt.<broker>.memory_per_lock_kb_bare` | - | the same on the bare broker |
 * | `mqtt.<broker>.revocation_fanout_ratio` | <= 1.25 | time until every connected lock received its revocation update: the same issuer-signed per-lock updates published retained at QoS 1 by the bridge's identity through the cloud broker / through the bare broker |
 * | `mqtt.<broker>.revocation_fanout_revoke_many_ratio` | <= 1.25 | the same, the cloud side being one `Bridge.revokeOnLocks` call for every lock (a lost phone's holder id revoked everywhere, [TANDEM-REV-10]): signed and stored in transactions of 64, 128, then up to 512, the event loop turning between them, each published after its commit without waiting in turn |
 * | `mqtt.<broker>.revocation_fanout_revoke_ratio` | <= 1.25 | the same, the cloud side being `Bridge.revoke` for every lock (store compare-and-set, signing, publishing) as `tandem revoke` does it, 32 calls at a time (the bridge writes the calls waiting together in one transaction) |
 *
 * Locks: 1,000 by default (100 with `--quick`); `TANDEM_BENCH_MQTT_LOCKS=10000 npm run bench -- mqtt` for
 * the issue's 10,000 (the bench runner takes no options of its own beyond --json and --quick; above 9,000 the
 * fleets take turns, see measureLarge, which `TANDEM_BENCH_MQTT_TURNS=1` forces at any size);
 * `TANDEM_BENCH_MQTT_BROKERS=aedes` (or `mosquitto`) for one broker only; `TANDEM_BENCH_MQTT_TRACE=1` shows
 * each phase on stderr; `TANDEM_BENCH_MQTT_CPU_PROF=<dir>` writes CPU profiles of each side process under
 * `<dir>/<mode>-<broker>/` (the largest is the main thread; Chrome DevTools or `speedscope` read them).
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import type { PrivateKey, PublicKey } from '../protocol/src/keys.js';
import { generateKeyPair, publicKeyFromRaw } from '../protocol/src/keys.js';
import { encodeAlert, topicFor, verifyOutboxAck } from '../protocol/src/mqtt.js';
import { encodeRevocationUpdate } from '../protocol/src/revocation.js';
import { startBroker } from '../cloud-bridge/src/broker.js';
import { Bridge } from '../cloud-bridge/src/bridge.js';
import { writeMosquittoFiles } from '../cloud-bridge/src/cloud.js';
import { BRIDGE_USERNAME, generatePassword, hashPassword } from '../cloud-bridge/src/credentials.js';
import { loadOrCreateIssuer } from '../cloud-bridge/src/issuer.js';
import { openSqlStore } from '../cloud-bridge/src/store/sql-store.js';
import type { SqlCloudStore } from '../cloud-bridge/src/store/sql-store.js';
import type { TestServer } from '../cloud-bridge/test/servers.js';
import { mosquittoMissing, startMosquitto } from '../cloud-bridge/test/servers.js';
import type { BenchContext, BenchGroup } from './lib.js';
import { atLeast, atMost, median } from './lib.js';

const SERVE = '--tandem-mqtt-bench-side';
/** `TANDEM_BENCH_MQTT_TRACE=1`: progress on stderr (each phase), for a run that takes long. */
const trace = (what: string): void => {
  if (process.env.TANDEM_BENCH_MQTT_TRACE === '1') process.stderr.write(`bench mqtt: ${what}\n`);
};
const EPOCH = 1;
/**
 * A cloud round whose alerts are not all stored after this long publishes the unacknowledged ones again, as
 * the lock does after `resendAfterMs` (60 s on a lock; shorter here so that a round ends).
 */
const RESEND_MS = 20_000;

type BrokerKind = 'aedes' | 'mosquitto';
/**
 * `cloud`: broker with Tandem's hooks and the bridge; `bare`: bare broker and a plain subscriber; `hooks`: the
 * cloud's broker (credentials, ACL, persistence) with a plain subscriber (bridge identity) instead of the bridge.
 */
type SideMode = 'cloud' | 'bare' | 'hooks';

/** What a side process is told to start. */
interface SideConfig {
  readonly mode: SideMode;
  readonly broker: BrokerKind;
  readonly dataDir: string;
  readonly bridgePassword: string;
  /** Mosquitto's URL; an aedes side starts its own broker. */
  readonly url?: string;
}

/** Requests to a side process; each is answered with `{ id, ... }`. */
type SideRequest =
  | { readonly id: number; readonly cmd: 'mem' }
  | { readonly id: number; readonly cmd: 'consumed'; readonly total: number }
  | { readonly id: number; readonly cmd: 'count' }
  | {
      readonly id: number;
      readonly cmd: 'prepare';
      readonly how: 'bytes' | 'revoke' | 'revoke-many';
      readonly lockIds: readonly string[];
      readonly version: number;
    }
  | { readonly id: number; readonly cmd: 'go' };

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

interface SideReply {
  readonly id: number;
  readonly error?: string;
  readonly rss?: number;
  readonly heap?: number;
  readonly url?: string;
  readonly engine?: string;
  readonly count?: number;
  /** The side's issuer public key (raw Ed25519, hex): the locks verify the cloud's outbox acks with it. */
  readonly issuerKey?: string;
}

// ---------------------------------------------------------------------------------------------------------
// The side process: a broker (aedes) or a client of one (Mosquitto), and what consumes the locks' alerts.
// ---------------------------------------------------------------------------------------------------------

async function serveSide(cfg: SideConfig): Promise<void> {
  const reply = (m: SideReply): void => void process.send!(m);
  const gc = (globalThis as { gc?: () => void }).gc;
  let consumed = 0;
  let waiting: { total: number; id: number } | undefined;
  const consumedOne = (): void => {
    consumed++;
    if (waiting !== undefined && consumed >= waiting.total) {
      reply({ id: waiting.id });
      waiting = undefined;
    }
  };
  let url = cfg.url;
  let store: SqlCloudStore | undefined;
  // The hooks side reads lock credentials from the store as the cloud does; only the cloud side writes to it.
  if (cfg.mode !== 'bare')
    store = await openSqlStore({ kind: 'sqlite', path: join(cfg.dataDir, 'cloud.db') });
  const issuer = loadOrCreateIssuer(join(cfg.dataDir, `issuer-${cfg.mode}.jwk.json`));
  if (cfg.broker === 'aedes') {
    if (cfg.mode !== 'bare') {
      const bridgeRecord = hashPassword(cfg.bridgePassword);
      const s = store!;
      const broker = await startBroker({
        passwordRecord: async (u) =>
          u === BRIDGE_USERNAME ? bridgeRecord : ((await s.getLock(u))?.passwordHash ?? undefined),
        persistence: { kind: 'level', path: join(cfg.dataDir, `broker-${cfg.mode}`) },
        tcp: { port: 0 },
        log: (e) => trace(`${cfg.mode} broker ${e.event} ${e.who ?? ''}: ${e.reason ?? ''}`),
      });
      url = `mqtt://127.0.0.1:${broker.ports.tcp}`;
      broker.aedes.on('clientDisconnect', (c) => {
        if (c.id.startsWith('tandem-bridge')) trace(`${cfg.mode} broker: ${c.id} disconnected`);
      });
      broker.aedes.on('clientError', (c, e) => {
        if (c.id.startsWith('tandem-bridge')) trace(`${cfg.mode} broker: ${c.id} error ${e.message}`);
      });
    } else {
      const aedes = await Aedes.createBroker();
      const server: Server = createServer(aedes.handle);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
      url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
    }
  }
  const v5 = cfg.broker === 'mosquitto';
  let bridge: Bridge | undefined;
  let publisher: MqttClient;
  if (cfg.mode === 'cloud') {
    bridge = await Bridge.start({
      url: url!,
      password: cfg.bridgePassword,
      store: store!,
      issuer,
      beaconIntervalMs: 0,
      log: (e) => trace(`bridge ${e.event} ${e.who ?? ''}: ${e.reason ?? ''}`),
      ...(v5 ? { protocolVersion: 5 as const, sharedGroup: 'tandem' } : {}),
    });
    bridge.onActivity((a) => {
      if (a.kind === 'alert' && a.result.outcome === 'stored') consumedOne();
      else if (a.kind === 'alert') trace(`bridge: ${a.topic} ${JSON.stringify(a.result)}`);
    });
    // The fan-out of pre-signed updates is published with the bridge's identity (the ACL lets only it).
    publisher = await mqtt.connectAsync(url!, {
      username: BRIDGE_USERNAME,
      password: cfg.bridgePassword,
      clientId: 'tandem-bench-fanout',
      protocolVersion: v5 ? 5 : 4,
      reconnectPeriod: 0,
    });
  } else {
    const consumer = await mqtt.connectAsync(url!, {
      clientId: 'bench-bare-consumer',
      reconnectPeriod: 0,
      ...(cfg.mode === 'hooks' ? { username: BRIDGE_USERNAME, password: cfg.bridgePassword } : {}),
    });
    await consumer.subscribeAsync('tandem/v1/lock/+/alert', { qos: 1 });
    consumer.on('message', consumedOne);
    // The hooks side takes no fan-out: the ACL lets the bridge identity publish there, but nothing measures it.
    publisher =
      cfg.mode === 'hooks'
        ? consumer
        : await mqtt.connectAsync(url!, { clientId: 'bench-bare-fanout', reconnectPeriod: 0 });
  }

  let prepared:
    { how: 'bytes' | 'revoke' | 'revoke-many'; lockIds: readonly string[]; updates: Buffer[] } | undefined;
  const tokenId = Buffer.from('0f1e2d3c4b5a69788796a5b4', 'hex');
  const exp = Math.floor(Date.now() / 1000) + 86_400;
  const handlers = {
    mem: (): Omit<SideReply, 'id'> => {
      gc?.();
      gc?.();
      const m = process.memoryUsage();
      return { rss: m.rss, heap: m.heapUsed + m.external };
    },
    prepare: (r: Extract<SideRequest, { cmd: 'prepare' }>): Omit<SideReply, 'id'> => {
      const now = Math.floor(Date.now() / 1000);
      const updates =
        r.how !== 'bytes'
          ? []
          : r.lockIds.map((lockId) =>
              Buffer.from(
                encodeRevocationUpdate(
                  {
                    kind: 'full',
                    version: r.version,
                    issuedAt: now,
                    lockId,
                    added: [{ id: tokenId, exp }],
                    removed: [],
                  },
                  issuer.key,
                  issuer.kid,
                ),
              ),
            );
      prepared = { how: r.how, lockIds: r.lockIds, updates };
      return {};
    },
    go: async (): Promise<Omit<SideReply, 'id'>> => {
      const p = prepared!;
      if (p.how === 'bytes') {
        await Promise.all(
          p.lockIds.map((lockId, i) =>
            publisher.publishAsync(topicFor('revocation', lockId), p.updates[i]!, { qos: 1, retain: true }),
          ),
        );
      } else if (p.how === 'revoke-many') {
        // One call for the whole fleet, as revoking a lost phone's holder id everywhere ([TANDEM-REV-10]).
        await bridge!.revokeOnLocks(p.lockIds, [{ id: tokenId, exp }]);
      } else {
        // What `tandem revoke` does per lock, 32 locks at a time (the admin channel serves requests concurrently).
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < p.lockIds.length) await bridge!.revoke(p.lockIds[next++]!, tokenId, exp);
        };
        await Promise.all(Array.from({ length: 32 }, worker));
      }
      return {};
    },
  };
  process.on('message', (r: SideRequest) => {
    const run = async (): Promise<Omit<SideReply, 'id'> | undefined> => {
      switch (r.cmd) {
        case 'mem':
          return handlers.mem();
        case 'prepare':
          return handlers.prepare(r);
        case 'go':
          return handlers.go();
        case 'count':
          return { count: consumed };
        case 'consumed':
          if (consumed >= r.total) return {};
          waiting = { total: r.total, id: r.id };
          return undefined;
      }
    };
    run().then(
      (m) => m !== undefined && reply({ id: r.id, ...m }),
      (e: unknown) => reply({ id: r.id, error: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
    );
  });
  // The parent dies (Ctrl-C, a failed run): this side goes with it.
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  reply({
    id: 0,
    url: url!,
    engine: sqliteEngine(),
    issuerKey: Buffer.from(issuer.key.publicKey.raw).toString('hex'),
  });
}

/** Which SQLite engine openSqlStore's default picks here: native better-sqlite3 if it was built. */
function sqliteEngine(): string {
  try {
    const open = createRequire(import.meta.url)('better-sqlite3') as new (path: string) => { close(): void };
    new open(':memory:').close();
    return 'better-sqlite3 (WAL, synchronous=FULL)';
  } catch {
    return 'node-sqlite3-wasm (rollback journal, synchronous=FULL)';
  }
}

/** A side process as the bench drives it. */
class Side {
  #next = 1;
  readonly #pending = new Map<number, { resolve: (r: SideReply) => void; reject: (e: Error) => void }>();
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    /** The cloud side's SQLite engine. */
    readonly engine: string,
    readonly mode: SideMode,
    readonly issuerKey: PublicKey,
  ) {}

  static async start(cfg: SideConfig): Promise<Side> {
    const prof = process.env.TANDEM_BENCH_MQTT_CPU_PROF;
    const child = fork(fileURLToPath(import.meta.url), [SERVE, JSON.stringify(cfg)], {
      execArgv: [
        '--import',
        'tsx',
        '--expose-gc',
        // A CPU profile per side (`node --cpu-prof`), written when stop() ends it with SIGTERM.
        // One directory per side: tsx's loader thread writes a profile of its own beside the main thread's.
        ...(prof === undefined
          ? []
          : ['--cpu-prof', `--cpu-prof-dir=${join(prof, `${cfg.mode}-${cfg.broker}`)}`]),
      ],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const first = await new Promise<SideReply>((resolve, reject) => {
      child.once('message', (m: SideReply) => resolve(m));
      child.once('exit', (code) => reject(new Error(`the ${cfg.mode} ${cfg.broker} side exited (${code})`)));
    });
    const side = new Side(
      child,
      first.url!,
      first.engine ?? '',
      cfg.mode,
      publicKeyFromRaw('EdDSA', Buffer.from(first.issuerKey!, 'hex')),
    );
    child.on('message', (m: SideReply) => {
      const p = side.#pending.get(m.id);
      if (p === undefined) return;
      side.#pending.delete(m.id);
      if (m.error !== undefined) p.reject(new Error(`${cfg.mode} ${cfg.broker} side: ${m.error}`));
      else p.resolve(m);
    });
    child.on('exit', (code) => {
      for (const p of side.#pending.values()) p.reject(new Error(`side exited (${code})`));
      side.#pending.clear();
    });
    return side;
  }

  /** Sends `r`; rejects if the side has not answered within `limitMs` (a bound, not a measurement). */
  request(r: DistributiveOmit<SideRequest, 'id'>, limitMs = 300_000): Promise<SideReply> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`bench: the side did not answer ${r.cmd} within ${limitMs / 1000} s`));
      }, limitMs);
      this.#pending.set(id, {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ ...r, id });
    });
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null) return resolve();
      this.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      // SIGTERM lets a profiled side write its profile; a side that does not exit at once is killed.
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// The simulated locks.
// ---------------------------------------------------------------------------------------------------------

interface BenchLock {
  readonly lockId: string;
  readonly password: string;
  readonly deviceKey: PrivateKey;
}

/** The locks connected to one broker, with what they received. */
class Fleet {
  revocations = 0;
  /** Highest sequence the cloud's signed outbox ack covers, per lock ([TANDEM-MQTT-8]). */
  readonly acked: number[] = [];
  /** Next outbox sequence per lock on this broker (the cloud stores each (epoch, sequence) once). */
  readonly sequences: number[] = [];
  private constructor(readonly clients: MqttClient[]) {}

  /** Connects every lock as the lock's client does, a batch at a time so that the broker is not stormed. */
  static async connect(url: string, locks: readonly BenchLock[], issuerKey: PublicKey): Promise<Fleet> {
    const clients: MqttClient[] = [];
    const fleet = new Fleet(clients);
    for (let i = 0; i < locks.length; i += 100) {
      const batch = await Promise.all(
        locks.slice(i, i + 100).map(async (l, j) => {
          const c = await mqtt.connectAsync(url, {
            clientId: l.lockId,
            username: l.lockId,
            password: l.password,
            protocolVersion: 4,
            clean: true,
            keepalive: 60,
            reconnectPeriod: 0,
            connectTimeout: 60_000,
            will: { topic: topicFor('state', l.lockId), payload: Buffer.alloc(0), qos: 1, retain: true },
          });
          c.on('message', (topic, payload) => {
            if (topic.endsWith('/revocation')) fleet.revocations++;
            else if (topic.endsWith('/outbox-ack') && payload.length > 0) {
              const ack = verifyOutboxAck(payload, () => issuerKey, l.lockId);
              fleet.acked[i + j] = Math.max(fleet.acked[i + j] ?? 0, ack.sequence);
            }
          });
          await c.subscribeAsync(
            [
              topicFor('revocation', l.lockId),
              topicFor('outbox-ack', l.lockId),
              topicFor('beacon', l.lockId),
              topicFor('time'),
            ],
            { qos: 1 },
          );
          return c;
        }),
      );
      clients.push(...batch);
    }
    return fleet;
  }

  async close(): Promise<void> {
    for (let i = 0; i < this.clients.length; i += 500)
      await Promise.all(this.clients.slice(i, i + 500).map((c) => c.endAsync(true)));
  }
}

/** Waits (bounded) until `check` holds, polling on the event loop. */
async function until(check: () => boolean, what: string, limitMs = 300_000): Promise<void> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > limitMs) throw new Error(`bench: gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

function vmRssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`bench: no VmRSS for process ${pid}`);
  return Number(m[1]);
}

/** One broker kind, its cloud side and its bare side, each with the fleet of locks connected to it. */
interface Rig {
  readonly cloud: { side: Side; fleet: Fleet; memKb: number; heapKb: number };
  readonly bare: { side: Side; fleet: Fleet; memKb: number; heapKb: number };
  /** The cloud's broker without the bridge; only the alert publishers connect to it. */
  readonly hooks: { side: Side; fleet: Fleet };
  readonly servers: TestServer[];
}

const BARE_MOSQUITTO_CONF = `per_listener_settings false
allow_anonymous true
listener {{port}} 127.0.0.1
protocol mqtt
message_size_limit 409700
max_inflight_messages 100
max_queued_messages 10000
log_dest stderr
log_type error
`;

async function startRig(
  broker: BrokerKind,
  dir: string,
  locks: readonly BenchLock[],
  bridgePassword: string,
  publishers: number,
): Promise<Rig> {
  const servers: TestServer[] = [];
  const sides: Side[] = [];
  try {
    let cloudUrl: string | undefined;
    let bareUrl: string | undefined;
    let hooksUrl: string | undefined;
    let cloudPid: number | undefined;
    let barePid: number | undefined;
    if (broker === 'mosquitto') {
      const store = await openSqlStore({ kind: 'sqlite', path: join(dir, 'cloud.db') });
      const files = await writeMosquittoFiles(store, hashPassword(bridgePassword), join(dir, 'mosquitto'));
      await store.close();
      const cloudServer = await startMosquitto(
        readFileSync(new URL('../cloud-bridge/mosquitto/mosquitto.conf', import.meta.url), 'utf8'),
        { passwd: readFileSync(files.passwd, 'utf8'), acl: readFileSync(files.acl, 'utf8') },
      );
      servers.push(cloudServer);
      const bareServer = await startMosquitto(BARE_MOSQUITTO_CONF, {});
      servers.push(bareServer);
      // The hooks side needs a Mosquitto of its own: the same locks (client ids) connect to it.
      const hooksServer = await startMosquitto(
        readFileSync(new URL('../cloud-bridge/mosquitto/mosquitto.conf', import.meta.url), 'utf8'),
        { passwd: readFileSync(files.passwd, 'utf8'), acl: readFileSync(files.acl, 'utf8') },
      );
      servers.push(hooksServer);
      hooksUrl = `mqtt://127.0.0.1:${hooksServer.port}`;
      cloudUrl = `mqtt://127.0.0.1:${cloudServer.port}`;
      bareUrl = `mqtt://127.0.0.1:${bareServer.port}`;
      cloudPid = cloudServer.pid;
      barePid = bareServer.pid;
    }
    // The three sides differ only in mode and, with external brokers, in the URL they reach.
    const startSide = async (mode: SideMode, url: string | undefined): Promise<Side> => {
      const side = await Side.start({
        mode,
        broker,
        dataDir: dir,
        bridgePassword,
        ...(url === undefined ? {} : { url }),
      });
      sides.push(side);
      return side;
    };
    const cloudSide = await startSide('cloud', cloudUrl);
    const bareSide = await startSide('bare', bareUrl);
    const hooksSide = await startSide('hooks', hooksUrl);
    const memOf = async (side: Side, pid: number | undefined): Promise<{ rss: number; heap: number }> => {
      if (pid !== undefined) return { rss: vmRssKb(pid), heap: 0 };
      const m = await side.request({ cmd: 'mem' });
      return { rss: m.rss! / 1024, heap: m.heap! / 1024 };
    };
    const connect = async (side: Side, pid: number | undefined) => {
      const before = await memOf(side, pid);
      const fleet = await Fleet.connect(side.url, locks, side.issuerKey);
      const after = await memOf(side, pid);
      return { side, fleet, memKb: after.rss - before.rss, heapKb: after.heap - before.heap };
    };
    const cloud = await connect(cloudSide, cloudPid);
    const bare = await connect(bareSide, barePid);
    const hooks = {
      side: hooksSide,
      fleet: await Fleet.connect(hooksSide.url, locks.slice(0, publishers), hooksSide.issuerKey),
    };
    return { cloud, bare, hooks, servers };
  } catch (e) {
    for (const s of sides) await s.stop();
    for (const s of servers) await s.stop();
    throw e;
  }
}

async function stopRig(rig: Rig): Promise<void> {
  await rig.cloud.fleet.close();
  await rig.bare.fleet.close();
  await rig.hooks.fleet.close();
  await rig.cloud.side.stop();
  await rig.bare.side.stop();
  await rig.hooks.side.stop();
  for (const s of rig.servers) await s.stop();
}

// ---------------------------------------------------------------------------------------------------------
// The measurements.
// ---------------------------------------------------------------------------------------------------------

/** Publishes `perLock` fresh signed alerts from each of the first `publishers` locks; ms until all consumed. */
async function alertRound(
  side: { side: Side; fleet: Fleet },
  locks: readonly BenchLock[],
  publishers: number,
  perLock: number,
  consumedSoFar: number,
): Promise<{ ms: number; resent: number }> {
  const batches = locks.slice(0, publishers).map((l, i) =>
    Array.from({ length: perLock }, () => {
      const sequence = (side.fleet.sequences[i] ?? 0) + 1;
      side.fleet.sequences[i] = sequence;
      return Buffer.from(
        encodeAlert(
          {
            lockId: l.lockId,
            sequence,
            epoch: EPOCH,
            time: 1_800_000_000 + sequence,
            kind: 'moved',
            detail: new Map([
              ['peak_cm_s2', 412],
              ['duration_ms', 850],
            ]),
          },
          l.deviceKey,
        ),
      );
    }),
  );
  const total = consumedSoFar + publishers * perLock;
  const t0 = performance.now();
  const done = side.side.request({ cmd: 'consumed', total }, 600_000).then(
    () => true,
    async (e: unknown) => {
      const { count } = await side.side.request({ cmd: 'count' });
      throw new Error(`${side.side.mode} side: ${count} of ${total} alerts consumed`, { cause: e });
    },
  );
  const publish = (i: number, alerts: readonly Buffer[]): void => {
    const c = side.fleet.clients[i]!;
    for (const a of alerts) c.publish(topicFor('alert', locks[i]!.lockId), a, { qos: 1 });
  };
  batches.forEach((alerts, i) => publish(i, alerts));
  // What the lock's client does ([TANDEM-MQTT-8], lock-mqtt-client.ts #maybeResend): records no ack covers
  // after a while are published again (the cloud keeps each once). The bare side acknowledges nothing and
  // never needs it; a cloud round that needed it says so.
  let resent = 0;
  const seen = batches.map((_, i) => side.fleet.acked[i] ?? 0);
  for (let attempt = 0; !(await Promise.race([done, sleep(RESEND_MS).then(() => false)])); attempt++) {
    if (side.side.mode !== 'cloud' || attempt >= 60) {
      await done;
      break;
    }
    batches.forEach((alerts, i) => {
      // Only a lock whose ack made no progress since the last look ("without any progress", as the lock).
      const acked = side.fleet.acked[i] ?? 0;
      if (acked !== seen[i]) {
        seen[i] = acked;
        return;
      }
      const first = side.fleet.sequences[i]! - perLock + 1;
      const missing = alerts.filter((_, k) => first + k > acked);
      resent += missing.length;
      publish(i, missing);
    });
  }
  return { ms: performance.now() - t0, resent };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What the cloud side of each fan-out row does, for the notes. */
const WHAT = {
  bytes: 'pre-signed updates published retained by the bridge identity',
  revoke: 'Bridge.revoke per lock, 32 at a time',
  'revoke-many': 'one Bridge.revokeOnLocks call for every lock',
} as const;

/** One fan-out to every lock; ms from the command to the last lock's receipt. */
async function fanoutRound(
  side: { side: Side; fleet: Fleet },
  how: 'bytes' | 'revoke' | 'revoke-many',
  lockIds: readonly string[],
  version: number,
): Promise<number> {
  trace(`fan-out ${how} ${side.side.url}`);
  await side.side.request({ cmd: 'prepare', how, lockIds, version });
  const target = side.fleet.revocations + lockIds.length;
  const t0 = performance.now();
  await side.side.request({ cmd: 'go' });
  await until(() => side.fleet.revocations >= target, `${lockIds.length} revocation updates`);
  return performance.now() - t0;
}

function spread(values: readonly number[]): string {
  return `min ${Math.min(...values).toFixed(3)}, max ${Math.max(...values).toFixed(3)}`;
}

async function measureBroker(
  ctx: BenchContext,
  broker: BrokerKind,
  count: number,
  locks: readonly BenchLock[],
  bridgePassword: string,
  dir: string,
): Promise<void> {
  // Alerts: at most 10 per lock per round and 7 rounds, inside the broker's flood limit (100 at once,
  // 20 per second per lock), as a fleet reporting thefts would be.
  const publishers = Math.min(count, ctx.quick ? 20 : 100);
  const perLock = ctx.quick ? 5 : 10;
  const rounds = ctx.quick ? 2 : 7;
  trace(`${broker}: starting the sides, connecting ${count} locks to each`);
  const rig = await startRig(broker, dir, locks, bridgePassword, publishers);
  trace(`${broker}: connected`);
  const name = (q: string): string => `mqtt.${broker}.${q}`;
  try {
    // aedes: the heap and external memory after a GC, which is what the process holds for the locks (its RSS
    // moves by whole arenas and may even shrink after the GC); Mosquitto: its VmRSS, the only measure of a
    // C process from outside.
    const memRow = (side: 'cloud' | 'bare', row: string, what: string): void => {
      const m = rig[side];
      ctx.report({
        name: name(row),
        value: (broker === 'aedes' ? m.heapKb : m.memKb) / count,
        unit: 'KB',
        goal: null,
        note:
          `${what}: ${count} locks connected with credential, will and 4 subscriptions; ` +
          (broker === 'aedes'
            ? `heap+external after a GC +${Math.round(m.heapKb)} KB (RSS ${m.memKb >= 0 ? '+' : ''}${Math.round(m.memKb)} KB)`
            : `mosquitto VmRSS +${Math.round(m.memKb)} KB`),
      });
    };
    memRow(
      'cloud',
      'memory_per_lock_kb',
      broker === 'aedes' ? 'the cloud process (broker and bridge)' : "the cloud's Mosquitto (passwd, ACL)",
    );
    memRow('bare', 'memory_per_lock_kb_bare', 'the bare broker');

    const consumed = { cloud: 0, bare: 0, hooks: 0 };
    let resent = 0;
    const run = async (which: 'cloud' | 'bare' | 'hooks'): Promise<number> => {
      trace(`${broker}: alerts, ${which}`);
      const r = await alertRound(rig[which], locks, publishers, perLock, consumed[which]);
      consumed[which] += publishers * perLock;
      resent += r.resent;
      return r.ms;
    };
    // A warm-up round each (JIT, SQLite pages, LevelDB), then rounds in rotating order.
    for (const w of ['cloud', 'bare', 'hooks'] as const) await run(w);
    const ratios: number[] = [];
    const hookRatios: number[] = [];
    const cloudMs: number[] = [];
    const bareMs: number[] = [];
    const hooksMs: number[] = [];
    const orders = [
      ['cloud', 'bare', 'hooks'],
      ['bare', 'hooks', 'cloud'],
      ['hooks', 'cloud', 'bare'],
    ] as const;
    for (let r = 0; r < rounds; r++) {
      const ms = { cloud: 0, bare: 0, hooks: 0 };
      for (const which of orders[r % 3]!) ms[which] = await run(which);
      cloudMs.push(ms.cloud);
      bareMs.push(ms.bare);
      hooksMs.push(ms.hooks);
      ratios.push(ms.bare / ms.cloud); // rate ratio: (n / cloud ms) / (n / bare ms)
      hookRatios.push(ms.bare / ms.hooks);
    }
    const n = publishers * perLock;
    ctx.report({
      name: name('alerts_rps_ratio'),
      value: median(ratios),
      unit: 'ratio',
      goal: atLeast(0.8),
      note:
        `median of ${rounds} alternating rounds (${spread(ratios)}), ${n} QoS 1 alerts per round from ${publishers} locks; ` +
        `cloud ${Math.round(n / (median(cloudMs) / 1000))} alerts/s stored (store: ${rig.cloud.side.engine}), ` +
        `bare ${Math.round(n / (median(bareMs) / 1000))} alerts/s received; ` +
        `${resent} alerts published again by their lock after ${RESEND_MS / 1000} s without an ack`,
    });
    ctx.report({
      name: name('alerts_rps_ratio_broker_only'),
      value: median(hookRatios),
      unit: 'ratio',
      goal: null,
      note:
        `the same rounds (${spread(hookRatios)}): the cloud's broker (credentials, ACL, flood limit, persistence) with ` +
        `a plain subscriber instead of the bridge, ${Math.round(n / (median(hooksMs) / 1000))} alerts/s / bare: what the bridge and store leave out`,
    });

    const lockIds = locks.map((l) => l.lockId);
    const fanRounds = ctx.quick ? 1 : 3;
    let version = 1;
    for (const [how, row] of [
      ['bytes', 'revocation_fanout_ratio'],
      ['revoke', 'revocation_fanout_revoke_ratio'],
      ['revoke-many', 'revocation_fanout_revoke_many_ratio'],
    ] as const) {
      const fr: number[] = [];
      const fc: number[] = [];
      const fb: number[] = [];
      for (let r = 0; r < fanRounds; r++) {
        version++;
        const cloudFirst = r % 2 === 0;
        const a = cloudFirst
          ? await fanoutRound(rig.cloud, how, lockIds, version)
          : await fanoutRound(rig.bare, 'bytes', lockIds, version);
        const b = cloudFirst
          ? await fanoutRound(rig.bare, 'bytes', lockIds, version)
          : await fanoutRound(rig.cloud, how, lockIds, version);
        const [c, bare] = cloudFirst ? [a, b] : [b, a];
        fc.push(c);
        fb.push(bare);
        fr.push(c / bare);
      }
      ctx.report({
        name: name(row),
        value: median(fr),
        unit: 'ratio',
        goal: atMost(1.25),
        note:
          `median of ${fanRounds} alternating rounds (${spread(fr)}), ${count} locks each receiving its own update; ` +
          `cloud ${median(fc).toFixed(0)} ms (${WHAT[how]}), ` +
          `bare ${median(fb).toFixed(0)} ms`,
      });
    }
  } finally {
    await stopRig(rig);
  }
}

/**
 * The issue's 10,000 locks: each broker then holds 10,000 connections per side, and this process one per lock
 * per side, more than its 20,000 open files allow with both fleets connected at once. So the fleets take turns:
 * the cloud's fleet connects (memory row), takes its fan-out rounds (pre-signed bytes, then `Bridge.revoke`)
 * and disconnects; then the bare broker's. The ratios are of the medians, not of alternated rounds, and the
 * alert rows (100 publishing locks whatever the fleet) are left to the 1,000-lock run.
 */
async function measureLarge(
  ctx: BenchContext,
  broker: BrokerKind,
  count: number,
  locks: readonly BenchLock[],
  bridgePassword: string,
  dir: string,
): Promise<void> {
  trace(`${broker}: starting the sides; the ${count}-lock fleets connect one at a time`);
  const rig = await startRig(broker, dir, locks.slice(0, 1), bridgePassword, 1);
  const name = (q: string): string => `mqtt.${broker}.${q}`;
  const lockIds = locks.map((l) => l.lockId);
  const rounds = 3;
  const pids = broker === 'mosquitto' ? [rig.servers[0]!.pid, rig.servers[1]!.pid] : [undefined, undefined];
  const memOf = async (side: Side, pid: number | undefined): Promise<number> => {
    if (pid !== undefined) return vmRssKb(pid);
    const m = await side.request({ cmd: 'mem' });
    return m.heap! / 1024;
  };
  let version = 100;
  const ms: Record<'cloudBytes' | 'cloudRevoke' | 'cloudMany' | 'bareBytes', number[]> = {
    cloudBytes: [],
    cloudRevoke: [],
    cloudMany: [],
    bareBytes: [],
  };
  try {
    for (const [which, pid] of [
      ['cloud', pids[0]],
      ['bare', pids[1]],
    ] as const) {
      const side = rig[which].side;
      await rig[which].fleet.close();
      const before = await memOf(side, pid);
      trace(`${broker}: connecting ${count} locks to the ${which} side`);
      const fleet = await Fleet.connect(side.url, locks, side.issuerKey);
      const after = await memOf(side, pid);
      ctx.report({
        name: name(which === 'cloud' ? 'memory_per_lock_kb' : 'memory_per_lock_kb_bare'),
        value: (after - before) / count,
        unit: 'KB',
        goal: null,
        note: `${count} locks connected with credential, will and 4 subscriptions; ${
          broker === 'aedes' ? 'heap+external after a GC' : 'mosquitto VmRSS'
        } +${Math.round(after - before)} KB`,
      });
      const f = { side, fleet };
      for (let r = 0; r < rounds; r++) {
        version++;
        if (which === 'cloud') {
          ms.cloudBytes.push(await fanoutRound(f, 'bytes', lockIds, version));
          ms.cloudRevoke.push(await fanoutRound(f, 'revoke', lockIds, version));
          ms.cloudMany.push(await fanoutRound(f, 'revoke-many', lockIds, version));
        } else {
          ms.bareBytes.push(await fanoutRound(f, 'bytes', lockIds, version));
        }
      }
      await fleet.close();
    }
  } finally {
    await stopRig(rig);
  }
  for (const [row, cloud, what] of [
    ['revocation_fanout_ratio', ms.cloudBytes, WHAT.bytes],
    ['revocation_fanout_revoke_ratio', ms.cloudRevoke, WHAT.revoke],
    ['revocation_fanout_revoke_many_ratio', ms.cloudMany, WHAT['revoke-many']],
  ] as const) {
    ctx.report({
      name: name(row),
      value: median(cloud) / median(ms.bareBytes),
      unit: 'ratio',
      goal: atMost(1.25),
      note:
        `${count} locks each receiving its own update, fleets in turn (not alternated rounds): median of ` +
        `${rounds}, cloud ${median(cloud).toFixed(0)} ms (${what}; ${spread(cloud)}), ` +
        `bare ${median(ms.bareBytes).toFixed(0)} ms (${spread(ms.bareBytes)})`,
    });
  }
}

async function run(ctx: BenchContext): Promise<void> {
  const fromEnv = process.env.TANDEM_BENCH_MQTT_LOCKS;
  const count = fromEnv === undefined ? (ctx.quick ? 100 : 1000) : Number(fromEnv);
  if (!Number.isInteger(count) || count < 1 || count > 20_000) {
    throw new Error(`TANDEM_BENCH_MQTT_LOCKS must be a whole number from 1 to 20000, not ${fromEnv}`);
  }
  const only = process.env.TANDEM_BENCH_MQTT_BROKERS?.split(',');
  for (const broker of ['aedes', 'mosquitto'] as const) {
    if (only !== undefined && !only.includes(broker)) continue;
    if (broker === 'mosquitto' && mosquittoMissing() !== undefined) {
      process.stderr.write(`bench mqtt: Mosquitto rows skipped: ${mosquittoMissing()}\n`);
      continue;
    }
    const dir = mkdtempSync(join(tmpdir(), `tandem-bench-mqtt-${broker}-`));
    try {
      const locks: BenchLock[] = Array.from({ length: count }, (_, i) => ({
        lockId: `bench-${String(i).padStart(5, '0')}`,
        password: generatePassword(),
        deviceKey: generateKeyPair('EdDSA'),
      }));
      const store = await openSqlStore({ kind: 'sqlite', path: join(dir, 'cloud.db') });
      // One transaction for the fleet: 10,000 synchronous=FULL commits took minutes before the bench began.
      await store.batch(async () => {
        for (const l of locks) {
          await store.registerLock({
            lockId: l.lockId,
            deviceKey: l.deviceKey.publicKey.raw,
            passwordHash: hashPassword(l.password),
            registeredAt: Date.now(),
          });
        }
      });
      await store.close();
      // Both fleets at once need 2 sockets per lock in this process (at most 20,000 open files here).
      if (count > 9_000 || process.env.TANDEM_BENCH_MQTT_TURNS === '1')
        await measureLarge(ctx, broker, count, locks, generatePassword(), dir);
      else await measureBroker(ctx, broker, count, locks, generatePassword(), dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

export const mqttGroup: BenchGroup = {
  name: 'mqtt',
  description:
    'the cloud MQTT path (auth, ACL, bridge, store) vs the bare broker: alerts/s, memory per lock, revocation fan-out; aedes and Mosquitto',
  run,
};

if (process.argv[2] === SERVE) {
  serveSide(JSON.parse(process.argv[3]!) as SideConfig).catch((e: unknown) => {
    process.stderr.write(
      `bench mqtt side failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exit(1);
  });
}
