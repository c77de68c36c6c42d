/**
 * The embedded MQTT broker: aedes 1.2 (the release line with the fixes for its published advisories, among
 * them GHSA-5jvp-3p2v-5qgf, the unbounded inbound QoS 2 window, and the topic-level crash that
 * `maxTopicLevels` bounds), listening on TCP, TLS and WebSocket as configured, with a persistence that
 * survives a restart (LevelDB in the data directory by default, Redis for a fleet) and Tandem's policy as
 * its hooks:
 *
 * - `authenticate`: the user name is a lock id or the bridge's name, and the password matches the `$7$`
 *   record held for it ([TANDEM-MQTT-13]); anonymous and unknown clients are refused;
 * - `authorizePublish` / `authorizeSubscribe`: exactly the topics of [TANDEM-MQTT-4] (cloud-bridge/src/acl.ts),
 *   payloads no larger than their kind allows (§9), and at most `lockRate` messages per second per lock, so
 *   one flooding lock is cut off without disturbing the others.
 *
 * Every refusal is logged with its reason. Any standard broker can stand in for this one: Mosquitto takes
 * the same password records and the ACL written by acl.ts (cloud-bridge/mosquitto/).
 */
import { createServer as createNetServer } from 'node:net';
import type { Server as NetServer } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { createServer as createHttpServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import type { AedesOptions, AuthenticateError, Client } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { TOPIC_POLICY, parseTopic } from '../../protocol/src/mqtt.js';
import { MAX_ANCHOR_ACK_BYTES } from '../../protocol/src/anchor-update.js';
import { MAX_REVOCATION_UPDATE_BYTES } from '../../protocol/src/revocation.js';
import type { Identity } from './acl.js';
import { identityName, identityOf, publishRefusal, subscribeRefusal } from './acl.js';
import { verifyPasswordRecord } from './credentials.js';
import { CloudError } from './errors.js';
import { CoalescedLevel } from './level-writes.js';
import type { LevelDatabase } from './level-writes.js';
import { MAX_BYTES } from './ingest.js';
import type { LogSink } from './log.js';
import { debugSink } from './log.js';

/** Where the broker keeps sessions, retained messages and QoS 1 messages in flight. */
export type BrokerPersistence =
  | { readonly kind: 'memory' }
  | { readonly kind: 'level'; readonly path: string }
  | { readonly kind: 'redis'; readonly url: string };

/** A listener address; port 0 picks a free port. */
export interface ListenAddress {
  readonly port: number;
  readonly host?: string;
}

/** How to start the broker. */
export interface BrokerOptions {
  /** Returns the `$7$` password record of an MQTT user (a lock id or the bridge), or undefined. */
  readonly passwordRecord: (username: string) => Promise<string | undefined>;
  readonly persistence: BrokerPersistence;
  /** Several aedes instances share messages through Redis (mqemitter-redis) when set. */
  readonly redisEmitterUrl?: string;
  readonly tcp?: ListenAddress;
  readonly tls?: ListenAddress & { readonly key: string | Buffer; readonly cert: string | Buffer };
  readonly ws?: ListenAddress & { readonly path?: string };
  /** Messages a lock may publish: `perSecond` sustained, `burst` at once. Default 20 and 100. */
  readonly lockRate?: { readonly perSecond: number; readonly burst: number };
  readonly id?: string;
  readonly log?: LogSink;
}

/** A running broker. */
export interface Broker {
  readonly aedes: Aedes;
  /** The ports actually bound. */
  readonly ports: { readonly tcp?: number; readonly tls?: number; readonly ws?: number };
  /** Stops listening, disconnects every client and closes the persistence. */
  close(): Promise<void>;
}

const identities = new WeakMap<Client, Identity>();
const require = createRequire(import.meta.url);

function authError(message: string, returnCode: number): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/** The size limit of a publish on `topic` by a lock; the bridge may publish up to a full revocation update. */
function maxPayload(who: Identity, topic: string): number {
  if (who.kind === 'bridge') return MAX_REVOCATION_UPDATE_BYTES;
  // Home Assistant's command topic carries a word: LOCK ([TANDEM-RCMD-7]).
  if (who.kind === 'home-assistant') return 16;
  const p = parseTopic(topic);
  if (p.kind === 'time' || TOPIC_POLICY[p.kind].from !== 'lock') return 0;
  if (p.kind === 'anchor-ack') return MAX_ANCHOR_ACK_BYTES; // [TANDEM-ANCHOR-5]
  return MAX_BYTES[p.kind as keyof typeof MAX_BYTES];
}

/** Starts aedes with Tandem's hooks and the configured listeners. */
export async function startBroker(options: BrokerOptions): Promise<Broker> {
  const log = options.log ?? debugSink;
  const rate = options.lockRate ?? { perSecond: 20, burst: 100 };
  const buckets = new Map<string, { tokens: number; at: number }>();
  const persistence = await openPersistence(options.persistence);
  const tracked = persistence === undefined ? undefined : trackPersistence(persistence);
  const mq =
    options.redisEmitterUrl === undefined
      ? undefined
      : (require('mqemitter-redis') as (o: object) => unknown)({ connectionString: options.redisEmitterUrl });

  const hooks: AedesOptions = {
    ...(options.id === undefined ? {} : { id: options.id }),
    persistence,
    ...(mq === undefined ? {} : { mq }),
    // Lock ids are at most 32 characters; client ids a little longer than MQTT 3.1's 23 are common.
    maxClientsIdLength: 64,
    // Tandem's topics have at most 5 levels ([TANDEM-MQTT-2]); $share/<group>/ adds two.
    maxTopicLevels: 8,
    // No cap on messages in delivery at once ([TANDEM-MQTT-17]). With aedes' default cap (100), mqemitter 7
    // queues what arrives beyond it and, as each delivery completes, starts the next queued message from
    // inside the completion (`released` -> `_do` -> fastparallel -> `released` ...). A queued message whose
    // delivery completes synchronously (no subscriber, like the `$SYS/<id>/disconnect/clients` notice of
    // every closing connection) recurses one level deeper, so a fleet's connections closing together
    // behind 100 wills still in delivery overflowed the stack and crashed the broker ("Maximum call stack
    // size exceeded", mcollina/mqemitter#204, still open): 1,500 closing behind 100 waiting deliveries in
    // cloud-bridge/test/broker-wills.test.ts (1,000 did not), 10,000 in the bench. Uncapped,
    // `emit` starts every message at once and nothing is ever queued, so nothing recurses; mqemitter-redis
    // already runs uncapped (its default). The cap bounded nothing else: its queue is unbounded, and a
    // client that stops reading is cut off by `drainTimeout` either way. (aedes also sets each connection's
    // listener warning limit to twice this value: 0 turns that warning off.)
    concurrency: 0,
    drainTimeout: 30_000,
    preConnect: (client, _packet, done) => {
      deliverEveryPacket(client);
      done(null, true);
    },
    authenticate: (client, username, password, done) => {
      const who = identityOf(username);
      const refuse = (reason: string): void => {
        log({
          level: 'warn',
          source: 'broker',
          event: 'refused connect',
          who: username ?? '(anonymous)',
          reason,
        });
        done(authError(reason, 4), false);
      };
      if (who === undefined) {
        refuse(
          username === undefined
            ? 'anonymous clients are not allowed'
            : 'user name is neither a lock id nor the bridge',
        );
        return;
      }
      if (password === undefined) {
        refuse('no password');
        return;
      }
      options.passwordRecord(username!).then(
        (record) => {
          if (record === undefined) return refuse('no credential registered for this user');
          if (!verifyPasswordRecord(record, password)) return refuse('wrong password');
          identities.set(client, who);
          done(null, true);
        },
        (e: unknown) => {
          log({
            level: 'warn',
            source: 'broker',
            event: 'refused connect',
            who: username,
            reason: `credential lookup failed: ${String(e)}`,
          });
          done(authError('credential lookup failed', 3), false);
        },
      );
    },
    authorizePublish: (client, packet, done) => {
      // A null client is the broker itself (a will, or aedes.publish): already authorised at its source.
      if (client === null) return done(null);
      const who = identities.get(client);
      const name = identityName(who);
      const refuse = (reason: string): void => {
        log({
          level: 'warn',
          source: 'broker',
          event: 'refused publish',
          who: name,
          reason: `${packet.topic}: ${reason}`,
        });
        done(new Error(reason));
      };
      if (who === undefined) return refuse('not authenticated');
      const refusal = publishRefusal(who, packet.topic);
      if (refusal !== null) return refuse(refusal);
      const size = Buffer.byteLength(packet.payload as Buffer | string);
      const max = maxPayload(who, packet.topic);
      if (size > max) return refuse(`payload of ${size} bytes exceeds ${max} for this topic`);
      if (who.kind === 'lock' && !take(buckets, who.lockId, rate)) {
        return refuse(
          `more than ${rate.burst} messages at once or ${rate.perSecond} per second: flood, connection closed`,
        );
      }
      done(null);
    },
    authorizeSubscribe: (client, sub, done) => {
      const who = identities.get(client);
      const refusal = who === undefined ? 'not authenticated' : subscribeRefusal(who, sub.topic);
      if (refusal !== null) {
        const name = identityName(who);
        log({ level: 'warn', source: 'broker', event: 'refused subscribe', who: name, reason: refusal });
        // A null subscription answers SUBACK 0x80 for this filter; the connection stays up.
        return done(null, null);
      }
      done(null, sub);
    },
  };
  const aedes = await Aedes.createBroker(hooks);
  aedes.on('clientDisconnect', (client) => identities.delete(client));

  const servers: (NetServer | HttpServer)[] = [];
  const ports: { tcp?: number; tls?: number; ws?: number } = {};
  const listen = async (server: NetServer | HttpServer, at: ListenAddress): Promise<number> => {
    servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(at.port, at.host ?? '127.0.0.1', () => resolve());
    });
    return (server.address() as AddressInfo).port;
  };
  try {
    if (options.tcp !== undefined) ports.tcp = await listen(createNetServer(aedes.handle), options.tcp);
    if (options.tls !== undefined) {
      ports.tls = await listen(
        createTlsServer({ key: options.tls.key, cert: options.tls.cert }, aedes.handle),
        options.tls,
      );
    }
    if (options.ws !== undefined) {
      const http = createHttpServer((_req, res) => res.writeHead(426).end('MQTT over WebSocket only\n'));
      const wss = new WebSocketServer({
        server: http,
        path: options.ws.path ?? '/mqtt',
        maxPayload: 1 << 20,
      });
      wss.on('connection', (socket, req) => aedes.handle(createWebSocketStream(socket), req));
      ports.ws = await listen(http, options.ws);
    }
  } catch (e) {
    await closeAll(aedes, servers, tracked);
    throw new CloudError('ERR_CLOUD_CONFIG', `broker cannot listen: ${(e as Error).message}`, { cause: e });
  }
  return { aedes, ports, close: () => closeAll(aedes, servers, tracked) };
}

/**
 * A per-client duplicate table that never holds anything (see {@link deliverEveryPacket}). A Proxy, not a
 * frozen object: aedes writes to the table, and a write to a frozen object throws in its (strict) modules.
 */
const NO_DUPLICATES: Record<string, number> = new Proxy(Object.create(null) as Record<string, number>, {
  get: () => undefined,
  set: () => true,
  deleteProperty: () => true,
});

/**
 * Makes aedes deliver every QoS 1 message to a live subscriber, whatever order its persistence completes in.
 *
 * aedes 1.2 numbers each message when it arrives (`brokerCounter`), runs it through its persistence
 * (`storeRetained` for a retained message, `outgoingEnqueueCombi` for the persistent sessions subscribed to
 * it), and only then hands it to the subscribers, each of which drops a message numbered lower than one it
 * already forwarded (lib/client.js `dedupe`, meant for messages seen twice). With LevelDB those writes run on
 * the thread pool and finish in any order, so a message that needed a longer write is overtaken and then
 * dropped: a retained message followed at once by a plain one (a lock's revocation acknowledgement, then its
 * next audit record) never reached a connected subscriber (0 of 200 in test/e2e/mqtt-broker-order.test.ts),
 * and a persistent session (the bridge) got such a message only at its next reconnection. The lock's signed
 * revocation acknowledgement, published once per delivery ([TANDEM-REV-9]), was lost that way under load, and
 * alerts arrived late and out of order (spurious gaps, issue 9).
 *
 * Without the table a message may reach a subscriber twice (a persistent session that reconnects gets its
 * queue and the live message), which QoS 1 allows ([MQTT-4.3.2]) and Tandem absorbs: records are
 * de-duplicated by (lock, epoch, sequence) ([TANDEM-MQTT-3]) and everything retained is idempotent.
 */
function deliverEveryPacket(client: Client): void {
  (client as unknown as { duplicates: Record<string, number> }).duplicates = NO_DUPLICATES;
}

/** Token bucket per lock: `perSecond` sustained, `burst` at once. */
function take(
  buckets: Map<string, { tokens: number; at: number }>,
  key: string,
  rate: { readonly perSecond: number; readonly burst: number },
): boolean {
  const now = Date.now();
  const b = buckets.get(key) ?? { tokens: rate.burst, at: now };
  b.tokens = Math.min(rate.burst, b.tokens + ((now - b.at) / 1000) * rate.perSecond);
  b.at = now;
  buckets.set(key, b);
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

async function openPersistence(p: BrokerPersistence): Promise<unknown> {
  switch (p.kind) {
    case 'memory':
      return undefined;
    case 'level': {
      const { Level } = (await import('level')) as { Level: new (path: string) => LevelDatabase };
      // Writes coalesced into batches and PUBACK lookups of absent message ids answered from memory
      // ([TANDEM-MQTT-30], level-writes.ts): the fan-out of a revocation to a fleet wrote and read LevelDB
      // once per lock. `outgoing-id:` is aedes-persistence-level's key prefix for message ids in flight.
      const db = await CoalescedLevel.open(new Level(p.path), { indexedPrefixes: ['outgoing-id:'] });
      return (require('aedes-persistence-level') as (db: unknown) => unknown)(db);
    }
    case 'redis': {
      const u = new URL(p.url);
      return (require('aedes-persistence-redis') as (o: object) => unknown)({
        host: u.hostname,
        port: Number(u.port || 6379),
      });
    }
  }
}

async function closeAll(
  aedes: Aedes,
  servers: readonly (NetServer | HttpServer)[],
  persistence: TrackedPersistence | undefined,
): Promise<void> {
  // Stop accepting first, then let aedes close every client (which lets the servers' close complete).
  const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
  await new Promise<void>((resolve) => aedes.close(() => resolve()));
  for (const s of servers) if ('closeAllConnections' in s) s.closeAllConnections();
  await Promise.all(closed);
  if (persistence === undefined) return;
  // aedes' close callback comes before the last per-client persistence writes (will, session, clean
  // incoming) settle, and aedes does not await them: wait until every call it made has settled, then
  // close the persistence (LevelDB must be closed before the directory can be reopened).
  await persistence.idle();
  const p = persistence.target as { destroy?: () => Promise<void> };
  // Promise form: the callback form waits for a 'ready' event that aedes 1.x never makes the wrapper emit.
  if (p.destroy !== undefined) await p.destroy().catch(() => undefined);
}

/** A persistence whose calls are counted, so that closing can wait for the last one to settle. */
interface TrackedPersistence {
  readonly target: object;
  /** Resolves once no call aedes made is pending, and none started while the queue drained. */
  idle(): Promise<void>;
}

// The persistence calls aedes makes that return a promise (aedes 1.x calls them without a callback).
const TRACKED_METHODS = [
  'storeRetained',
  'addSubscriptions',
  'removeSubscriptions',
  'cleanSubscriptions',
  'subscriptionsByClient',
  'subscriptionsByTopic',
  'countOffline',
  'outgoingEnqueue',
  'outgoingEnqueueCombi',
  'outgoingUpdate',
  'outgoingClearMessageId',
  'incomingStorePacket',
  'incomingGetPacket',
  'incomingDelPacket',
  'cleanIncoming',
  'putWill',
  'getWill',
  'delWill',
] as const;

// The persistence calls that return a Node stream (aedes-persistence's CallBackPersistence: Readable.from).
const STREAM_METHODS = [
  'createRetainedStream',
  'createRetainedStreamCombi',
  'outgoingStream',
  'streamWill',
  'getClientList',
] as const;

/**
 * Wraps the persistence's methods on the instance (its own methods and private fields stay untouched):
 *
 * - every call is counted until its promise settles (a stream: until it closes), so that {@link closeAll}
 *   waits on the event of the last one settling rather than on a guessed delay;
 * - concurrent `addSubscriptions` calls for one SUBSCRIBE packet are made once. aedes 1.2 stores
 *   subscriptions with `addSubscriptions(client, packet.subscriptions)` once per filter of the packet
 *   (lib/handlers/subscribe.js `storeSubscriptions`, reported as moscajs/aedes#458), and a broadcasting
 *   persistence (aedes-persistence-redis, through aedes-persistence's BroadcastPersistence) waits for its own
 *   `$SYS/sub/add` echo in a map keyed by client id and the packet's FIRST filter: the second call replaces
 *   the first call's waiter, one echo resolves one waiter, and the other calls never resolve. A persistent
 *   session (clean: false) that subscribes several filters in one packet then never gets its SUBACK nor its
 *   live subscriptions, on any instance (moscajs/aedes#602). The bridge is exactly such a client; this was
 *   the "known gap" of two aedes over Redis. Storing the same packet's subscriptions once is what every
 *   call would have stored anyway.
 */
function trackPersistence(persistence: unknown): TrackedPersistence {
  const target = persistence as Record<string, unknown>;
  const listeners = new Set<() => void>();
  let pending = 0;
  const settled = (): void => {
    pending--;
    if (pending === 0) for (const l of [...listeners]) l();
  };
  for (const name of TRACKED_METHODS) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    const call = (original as (...a: unknown[]) => unknown).bind(target);
    target[name] = (...args: unknown[]): unknown => {
      const result = call(...args);
      if (result !== null && typeof (result as Promise<unknown>)?.then === 'function') {
        pending++;
        (result as Promise<unknown>).then(settled, settled);
      }
      return result;
    };
  }
  const add = target.addSubscriptions as ((client: unknown, subs: object) => Promise<unknown>) | undefined;
  if (add !== undefined) {
    const inFlight = new WeakMap<object, Promise<unknown>>();
    target.addSubscriptions = (client: unknown, subs: object): Promise<unknown> => {
      const running = inFlight.get(subs);
      if (running !== undefined) return running;
      const p = add(client, subs);
      inFlight.set(subs, p);
      const forget = (): void => void inFlight.delete(subs);
      p.then(forget, forget);
      return p;
    };
  }
  // Streams (retained messages for a new subscription, a session's queue, wills) read the database for as
  // long as their consumer pulls; a consumer aedes has closed never ends them. They are counted until they
  // close, and destroyed at close time, which closes them once the read in flight has returned.
  const streams = new Set<Readable>();
  for (const name of STREAM_METHODS) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    const call = (original as (...a: unknown[]) => unknown).bind(target);
    target[name] = (...args: unknown[]): unknown => {
      const result = call(...args);
      if (result instanceof Readable && !result.closed) {
        pending++;
        streams.add(result);
        result.once('close', () => {
          streams.delete(result);
          settled();
        });
      }
      return result;
    };
  }
  const drained = (): Promise<void> =>
    pending === 0
      ? Promise.resolve()
      : new Promise((resolve) => {
          const l = (): void => {
            listeners.delete(l);
            resolve();
          };
          listeners.add(l);
        });
  return {
    target,
    async idle() {
      for (const stream of [...streams]) stream.destroy();
      // A settled call's continuation may start the next call (a will: storeRetained, then the subscribers'
      // lookup, then the enqueue); a few turns of the event loop let it, then the count must still be zero.
      // Bounded: aedes makes a finite chain of calls per client once it has closed them all.
      for (let round = 0; round < 100; round++) {
        await drained();
        for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
        if (pending === 0) return;
      }
    },
  };
}
