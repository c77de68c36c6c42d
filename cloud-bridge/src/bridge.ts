/**
 * The bridge: an MQTT.js client with its own identity ({@link BRIDGE_USERNAME}) that
 *
 * - ingests what locks publish (state, alerts, audit records, revocation acknowledgements) through the one
 *   {@link Ingestor}, and acknowledges a message to the broker only after it is stored, so a bridge crash
 *   loses nothing (QoS 1, persistent session). Messages wait in a bounded ingest queue and are written in
 *   batches, one transaction each (group commit, [TANDEM-MQTT-15]): one durable commit for a burst instead of
 *   several per message. Each message is still checked alone (device signature, lock id against the topic,
 *   hash chain [TANDEM-MQTT-7]) in a savepoint of its own, so a bad one is refused alone; the PUBACKs and the
 *   outbox acknowledgements go out only after the commit. A full queue stops the bridge reading from the
 *   broker (TCP backpressure) until a batch is stored; nothing is dropped;
 * - publishes the cumulative outbox acknowledgement, retained, per lock ([TANDEM-MQTT-8], [TANDEM-MQTT-11]);
 * - answers time requests at once with a nonce-bound beacon, rate-limited per lock ([TANDEM-MQTT-12]);
 * - publishes full revocation updates, retained ([TANDEM-MQTT-3]), and a broadcast beacon, retained, every
 *   `beaconIntervalMs` ([TANDEM-TIME-5]).
 *
 * Several instances share the work: with MQTT 5 shared subscriptions (`sharedGroup`, Mosquitto, EMQX,
 * HiveMQ) the broker spreads messages over them; on a broker without them (aedes) each instance takes the
 * locks of its `partition` (a hash of the lock id) and ignores the rest. Everything they write to the store
 * is keyed or compare-and-set, so two instances never corrupt each other's progress.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import mqtt from 'mqtt';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import type { LockTopicKind, OutboxAck } from '../../protocol/src/mqtt.js';
import { decodeLockState, encodeOutboxAck, parseTopic, topicFor } from '../../protocol/src/mqtt.js';
import { verifyAnchorAck } from '../../protocol/src/anchor-update.js';
import { publicKeyFromRaw } from '../../protocol/src/keys.js';
import { encodeRevocationUpdate } from '../../protocol/src/revocation.js';
import { encodeTimeBeacon } from '../../protocol/src/time-beacon.js';
import { LOCK_PUBLISHES } from './acl.js';
import { BRIDGE_USERNAME } from './credentials.js';
import { CloudError } from './errors.js';
import type { EventFeed } from './feed.js';
import type { HaSettingsSource } from './home-assistant.js';
import { HomeAssistantPublisher } from './home-assistant.js';
import { HA_COMMAND_FILTER, RemoteCommander, isHaCommandTopic } from './remote-command.js';
import type { IngestKind, IngestResult } from './ingest.js';
import { Ingestor } from './ingest.js';
import type { Issuer } from './issuer.js';
import type { IssuerKeyring } from './keyring.js';
import type { LogSink } from './log.js';
import { debugSink } from './log.js';
import type { CloudStore, StoredRevocation } from './store/types.js';

/** How to run a bridge instance. */
export interface BridgeOptions {
  /** Broker URL: `mqtt://127.0.0.1:1883`, `mqtts://...`, `ws://.../mqtt`. */
  readonly url: string;
  readonly password: string;
  readonly username?: string;
  /** Stable per instance, so the broker keeps its session across restarts. */
  readonly clientId?: string;
  /** 4 (MQTT 3.1.1, aedes) or 5 (MQTT 5, needed for shared subscriptions). */
  readonly protocolVersion?: 4 | 5;
  /** MQTT 5 shared subscription group (`$share/<group>/...`); needs protocolVersion 5. */
  readonly sharedGroup?: string;
  /** This instance's share of the locks on a broker without shared subscriptions. */
  readonly partition?: { readonly index: number; readonly count: number };
  readonly store: CloudStore;
  readonly issuer: Issuer;
  /**
   * The keyring `issuer` comes from, when keys rotate ([TANDEM-ANCHOR-7]): the bridge publishes each lock's
   * anchor update retained and, when an overlap ends, re-signs what is retained with the new key.
   */
  readonly keyring?: IssuerKeyring;
  /** Broadcast beacon period; 0 turns broadcast beacons off. Default one minute. */
  readonly beaconIntervalMs?: number;
  /** The issuer's bound on its own clock error, seconds ([TANDEM-TIME-1]); default 2. */
  readonly beaconAccuracy?: number;
  /** Time requests answered per lock per minute; default 6. */
  readonly timeRequestsPerMinute?: number;
  /** Unix milliseconds. */
  readonly now?: () => number;
  readonly log?: LogSink;
  /** Where stored owner events are published live (feed.ts); the sharing API's event stream follows it. */
  readonly feed?: EventFeed;
  /** TLS options and the like, passed to MQTT.js. */
  readonly mqttOptions?: IClientOptions;
  /**
   * Home Assistant MQTT discovery from verified state reports ([TANDEM-HA-1]); default on, remote locking
   * off for every lock. `false` turns it off.
   */
  readonly homeAssistant?: false | { readonly settings?: HaSettingsSource };
  /**
   * The ingest queue ([TANDEM-MQTT-15]): at most `max` messages received and not yet stored (default 1,024;
   * beyond it the bridge stops reading), written `batch` at a time in one transaction (default 256).
   */
  readonly ingestQueue?: { readonly max?: number; readonly batch?: number };
}

/** A message received from the broker and not yet stored and acknowledged. */
interface Received {
  readonly topic: string;
  readonly payload: Buffer;
  /** The PUBLISH packet id to acknowledge (QoS 1); undefined for QoS 0. */
  readonly messageId: number | undefined;
  /** The connection it came on: a PUBACK belongs to that connection only (MQTT 3.1.1 §4.4). */
  readonly stream: unknown;
}

/** What handling one message wants done once its batch is durable. */
interface Effects {
  readonly after: (() => void)[];
  /** The latest outbox acknowledgement per lock; one signed and published per lock per batch. */
  readonly acks: Map<string, OutboxAck>;
}

/** What the bridge did with one message (for tests and metrics). */
export interface BridgeActivity {
  readonly topic: string;
  readonly lockId: string;
  readonly kind: LockTopicKind;
  readonly result:
    | IngestResult
    | { readonly outcome: 'beacon' }
    | { readonly outcome: 'anchor-ack'; readonly version: number }
    | { readonly outcome: 'refused'; readonly reason: string };
}

/** An unchanged outbox ack is published again for a record sent again at most this often per lock, ms. */
const REACK_MS = 1_000;

/** How often suspected gaps are looked at ([TANDEM-MQTT-16]), ms. */
const GAP_CHECK_MS = 10_000;

/**
 * Passed to MQTT.js's `handleMessage` callback so that the library sends no PUBACK itself (it then goes on to
 * the next packet, mqtt 5 handlers/publish.js); the bridge sends it after the message is stored.
 */
const DEFERRED_ACK = Object.freeze(new Error('acknowledged by the bridge after the batch is stored'));

/** MQTT.js's packet writer: the PUBACK the bridge sends once a batch is durable. */
interface PacketSender {
  _sendPacket(packet: { readonly cmd: 'puback'; readonly messageId: number }): void;
}

/** One {@link Bridge.revokeEntries} call waiting for its batch. */
interface RevocationJob {
  readonly lockId: string;
  readonly add: readonly { readonly id: Uint8Array; readonly exp: number }[];
  readonly resolve: (r: StoredRevocation) => void;
  readonly reject: (e: unknown) => void;
}

/** Most revocations written in one transaction. */
const REVOCATION_BATCH = 512;
/** Revocations in the first transaction of a run; each next one is twice as large, up to REVOCATION_BATCH. */
const FIRST_REVOCATION_BATCH = 64;

/** FNV-1a of the lock id: the partition a lock belongs to on a broker without shared subscriptions. */
export function partitionOf(lockId: string, count: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < lockId.length; i++) h = Math.imul(h ^ lockId.charCodeAt(i), 0x01000193) >>> 0;
  return h % count;
}

/** A running bridge instance. */
export class Bridge {
  readonly ingestor: Ingestor;
  private readonly client: MqttClient;
  private readonly options: BridgeOptions;
  private readonly now: () => number;
  private readonly log: LogSink;
  private readonly lastAck = new Map<string, string>();
  /** When a record sent again last made the bridge publish an unchanged ack, per lock (Unix ms). */
  private readonly reacked = new Map<string, number>();
  private readonly timeRequests = new Map<string, number[]>();
  private readonly listeners = new Set<(a: BridgeActivity) => void>();
  /** The anchor version each lock last acknowledged ([TANDEM-ANCHOR-5]); in memory, for operators and tests. */
  readonly anchorAcks = new Map<string, { readonly version: number; readonly lockTime: number }>();
  private beaconTimer: NodeJS.Timeout | undefined;
  private gapTimer: NodeJS.Timeout | undefined;
  /** Home Assistant discovery and states, or undefined when turned off. */
  readonly homeAssistant: HomeAssistantPublisher | undefined;
  /** Home Assistant's Lock button ([TANDEM-HA-5], remote-command.ts), or undefined with Home Assistant off. */
  readonly remoteCommands: RemoteCommander | undefined;
  /** Received, not yet in a batch. */
  private readonly queue: Received[] = [];
  /** MQTT.js callbacks held back while the queue is full: the library reads no packet until one is called. */
  private readonly held: (() => void)[] = [];
  private readonly queueMax: number;
  private readonly batchMax: number;
  /** The running drain of the queue, if any. */
  private draining: Promise<void> | undefined;
  private closing = false;
  /** Set while one message of a batch is handled: its publishes and feed events wait for the commit. */
  private readonly effects = new AsyncLocalStorage<Effects>();
  /** Revocations waiting to be written together ({@link revokeEntries}). */
  private readonly revocations: RevocationJob[] = [];
  private revoking: Promise<void> | undefined;

  private constructor(client: MqttClient, options: BridgeOptions) {
    this.client = client;
    this.options = options;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? debugSink;
    this.queueMax = Math.max(1, options.ingestQueue?.max ?? 1024);
    this.batchMax = Math.max(1, options.ingestQueue?.batch ?? 256);
    const feed = options.feed;
    this.ingestor = new Ingestor({
      store: options.store,
      now: this.now,
      log: this.log,
      // An event stored inside a batch is shown live only once the batch is committed: a rolled-back batch
      // must not have announced events that the store does not hold.
      ...(feed === undefined
        ? {}
        : {
            feed: {
              publish: (e: Parameters<EventFeed['publish']>[0]) => {
                const fx = this.effects.getStore();
                if (fx === undefined) feed.publish(e);
                else fx.after.push(() => feed.publish(e));
              },
            },
          }),
    });
    const ha = options.homeAssistant;
    this.homeAssistant =
      ha === false
        ? undefined
        : new HomeAssistantPublisher(
            (m) => this.sendText(m.topic, m.payload),
            ha?.settings ?? (() => ({ remoteLocking: false })),
          );
    this.remoteCommands =
      ha === false
        ? undefined
        : new RemoteCommander({
            store: options.store,
            issuer: () => this.options.issuer,
            publish: async (topic, bytes) => {
              // [TANDEM-RCMD-6]: QoS 1, never retained.
              await this.client.publishAsync(topic, Buffer.from(bytes), { qos: 1, retain: false });
            },
            now: this.now,
            log: this.log,
            owns: (lockId) => this.owns(lockId),
          });
  }

  /** Connects, subscribes, republishes the retained revocation updates it owns and a broadcast beacon. */
  static async start(given: BridgeOptions): Promise<Bridge> {
    // With a keyring, sign with its live issuer, which follows rotations ([TANDEM-ANCHOR-7]).
    const options: BridgeOptions =
      given.keyring === undefined ? given : { ...given, issuer: given.keyring.issuer };
    if (options.sharedGroup !== undefined && options.protocolVersion !== 5) {
      throw new CloudError('ERR_CLOUD_CONFIG', 'shared subscriptions need MQTT 5 (protocolVersion 5)');
    }
    const p = options.partition;
    if (
      p !== undefined &&
      !(
        Number.isInteger(p.count) &&
        p.count >= 1 &&
        Number.isInteger(p.index) &&
        p.index >= 0 &&
        p.index < p.count
      )
    ) {
      throw new CloudError('ERR_CLOUD_CONFIG', 'partition must be { index, count } with 0 <= index < count');
    }
    const client = mqtt.connect(options.url, {
      ...options.mqttOptions,
      username: options.username ?? BRIDGE_USERNAME,
      password: options.password,
      clientId: options.clientId ?? `tandem-bridge-${p?.index ?? 0}`,
      protocolVersion: options.protocolVersion ?? 4,
      clean: false,
      ...(options.protocolVersion === 5 ? { properties: { sessionExpiryInterval: 86_400 } } : {}),
      reconnectPeriod: 500,
      connectTimeout: 10_000,
      // The library acknowledges a QoS 1 message only when handleMessage calls back: after it is stored.
      manualConnect: true,
    });
    const bridge = new Bridge(client, options);
    client.handleMessage = (packet, done) => bridge.receive(packet, done);
    client.on('connect', () => {
      bridge
        .subscribe()
        .catch((e: unknown) =>
          bridge.log({ level: 'warn', source: 'bridge', event: 'subscribe failed', reason: String(e) }),
        );
    });
    client.on('close', () => {
      // An ack in flight when the connection dropped may be lost with it: send the next one even if equal.
      bridge.lastAck.clear();
    });
    client.on('error', (e) =>
      bridge.log({ level: 'warn', source: 'bridge', event: 'mqtt error', reason: e.message }),
    );
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new CloudError('ERR_CLOUD_UNAVAILABLE', `broker ${options.url} did not answer`, {
              temporary: true,
            }),
          ),
        15_000,
      );
      client.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      client.connect();
    }).catch((e: unknown) => {
      client.end(true);
      throw e;
    });
    await bridge.republishRevocations();
    await bridge.publishAnchorUpdates();
    const period = options.beaconIntervalMs ?? 60_000;
    if (period > 0) {
      await bridge.publishBroadcastBeacon();
      bridge.beaconTimer = setInterval(() => {
        bridge.publishBroadcastBeacon().catch(() => undefined);
      }, period);
      bridge.beaconTimer.unref();
    }
    // [TANDEM-MQTT-16]: a hole whose grace has run out is flagged even if its lock has gone quiet.
    bridge.gapTimer = setInterval(() => {
      bridge.ingestor.checkGaps().catch(() => undefined);
    }, GAP_CHECK_MS);
    bridge.gapTimer.unref();
    return bridge;
  }

  /** The keyring the bridge signs from, when keys rotate. */
  get keyring(): IssuerKeyring | undefined {
    return this.options.keyring;
  }

  /** Calls `listener` after each message handled. Returns a function that removes it. */
  onActivity(listener: (a: BridgeActivity) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** True when this instance handles `lockId` (always, without a partition). */
  owns(lockId: string): boolean {
    const p = this.options.partition;
    return (
      p === undefined || this.options.sharedGroup !== undefined || partitionOf(lockId, p.count) === p.index
    );
  }

  private async subscribe(): Promise<void> {
    const prefix = this.options.sharedGroup === undefined ? '' : `$share/${this.options.sharedGroup}/`;
    const filters = LOCK_PUBLISHES.map((k) => `${prefix}tandem/v1/lock/+/${k}`);
    const granted = await this.client.subscribeAsync(filters, { qos: 1 });
    for (const g of granted) {
      if (g.qos > 1)
        throw new CloudError(
          'ERR_CLOUD_UNAVAILABLE',
          `the broker refused the bridge's subscription ${g.topic}`,
        );
    }
    if (this.remoteCommands !== undefined) {
      // [TANDEM-RCMD-7]: Home Assistant's command topic, at QoS 0: the bridge's session is persistent, and a
      // press made while the bridge was away must not be queued and turned into a fresh command later. A broker
      // whose ACL predates the topic only loses the button.
      const [ha] = await this.client.subscribeAsync(`${prefix}${HA_COMMAND_FILTER}`, { qos: 0 });
      if (ha === undefined || ha.qos > 1) {
        this.log({ level: 'warn', source: 'bridge', event: 'subscribe failed', reason: HA_COMMAND_FILTER });
      }
    }
  }

  /**
   * MQTT.js calls this for each PUBLISH, one at a time, and reads the next packet only after `done`. The
   * message joins the ingest queue; `done` is called at once while the queue has room, else when a batch
   * has left it (backpressure: the broker keeps what the bridge has not read, QoS 1). `done` is given an
   * error value so that MQTT.js sends no PUBACK of its own: {@link acknowledge} sends it after the commit.
   */
  private receive(packet: IPublishPacket, done: (e?: Error) => void): void {
    const next = (): void => done(DEFERRED_ACK);
    if (isHaCommandTopic(packet.topic)) {
      // Home Assistant's button is a request, not a record: nothing to store, so MQTT.js acknowledges it.
      done();
      if (!this.closing) {
        void this.remoteCommands?.handle(packet.topic, packet.payload as Buffer, { retained: packet.retain });
      }
      return;
    }
    if (this.closing) {
      // Not stored, not acknowledged: the broker redelivers it to the next session.
      next();
      return;
    }
    this.queue.push({
      topic: packet.topic,
      payload: packet.payload as Buffer,
      messageId: packet.qos > 0 ? packet.messageId : undefined,
      stream: this.client.stream,
    });
    if (this.queue.length < this.queueMax) next();
    else this.held.push(next);
    this.drain();
  }

  /** Writes the queue in batches until it is empty; one drain runs at a time. */
  private drain(): void {
    if (this.draining !== undefined) return;
    this.draining = (async () => {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.batchMax);
        // Room again: let MQTT.js read on while this batch is written (the next batch gathers meanwhile).
        while (this.held.length > 0 && this.queue.length < this.queueMax) this.held.shift()!();
        await this.writeBatch(batch);
      }
    })()
      .catch((e: unknown) =>
        this.log({ level: 'warn', source: 'bridge', event: 'ingest failure', reason: String(e) }),
      )
      .finally(() => {
        this.draining = undefined;
        // A message that arrived after the loop saw an empty queue, before this ran.
        if (this.queue.length > 0) this.drain();
      });
  }

  /**
   * One batch: every message handled in a savepoint of one transaction; after the commit (durable), the
   * effects (outbox acks, Home Assistant, beacons, live events, activity) and the PUBACKs, in order. A message
   * that failed is not acknowledged and the connection is renewed so that the broker delivers it again.
   */
  private async writeBatch(batch: readonly Received[]): Promise<void> {
    const done: { m: Received; fx: Effects; activity: BridgeActivity | undefined }[] = [];
    let failed = 0;
    try {
      await this.options.store.batch(async (scope) => {
        for (const m of batch) {
          const fx: Effects = { after: [], acks: new Map() };
          const r = await scope.step(() => this.effects.run(fx, () => this.handle(m.topic, m.payload)));
          if (r.ok) done.push({ m, fx, activity: r.value });
          else {
            failed++;
            this.log({
              level: 'warn',
              source: 'bridge',
              event: 'store failure',
              reason: `${m.topic}: ${String(r.error)}`,
            });
          }
        }
      });
    } catch (e) {
      // The commit failed: nothing of this batch is stored, so nothing is acknowledged.
      this.log({ level: 'warn', source: 'bridge', event: 'store failure', reason: String(e) });
      this.redeliver();
      return;
    }
    const acks = new Map<string, OutboxAck>();
    for (const { fx } of done) for (const [lockId, ack] of fx.acks) acks.set(lockId, ack);
    for (const ack of acks.values()) this.publishAck(ack);
    for (const { fx } of done) for (const f of fx.after) f();
    for (const { m } of done) this.acknowledge(m);
    for (const { activity } of done) {
      if (activity === undefined) continue;
      for (const l of this.listeners) {
        try {
          l(activity);
        } catch (e) {
          this.log({ level: 'warn', source: 'bridge', event: 'activity listener failed', reason: String(e) });
        }
      }
    }
    if (failed > 0) this.redeliver();
  }

  /** PUBACK for a stored message, on the connection it came on only (a new one gets it again). */
  private acknowledge(m: Received): void {
    if (m.messageId === undefined || !this.client.connected || this.client.stream !== m.stream) return;
    (this.client as unknown as PacketSender)._sendPacket({ cmd: 'puback', messageId: m.messageId });
  }

  /**
   * Drops the connection so that the broker delivers again what was not acknowledged (QoS 1, MQTT §4.4). The
   * socket is destroyed, not the client ended: MQTT.js then reconnects on its own and sends again what it had
   * in flight (outbox acks, revocation updates), where `end` would drop them.
   */
  private redeliver(): void {
    if (this.closing) return;
    this.client.stream?.destroy();
  }

  private async handle(topic: string, payload: Buffer): Promise<BridgeActivity | undefined> {
    let parsed;
    try {
      parsed = parseTopic(topic);
    } catch (e) {
      this.log({
        level: 'warn',
        source: 'bridge',
        event: 'refused message',
        reason: `${topic}: ${(e as Error).message}`,
      });
      return undefined;
    }
    if (parsed.kind === 'time' || !this.owns(parsed.lockId)) return undefined;
    const { lockId, kind } = parsed;
    const bytes = new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
    let result: BridgeActivity['result'];
    if (kind === 'time-request') {
      result = await this.answerTimeRequest(lockId, bytes);
    } else if (kind === 'anchor-ack') {
      result = await this.ingestAnchorAck(lockId, bytes);
    } else if ((['alert', 'audit', 'state', 'revocation-ack'] as const).includes(kind as IngestKind)) {
      result = await this.ingestor.ingest(kind as IngestKind, lockId, bytes, 'mqtt');
      let ack = result.outcome === 'stored' ? result.ack : undefined;
      if (result.outcome === 'duplicate' && (kind === 'alert' || kind === 'audit')) {
        // A record delivered again (the lock resent it, or the broker after a bridge crash between the commit
        // and the PUBACK): the ack that covers it may never have gone out, so it goes out now ([TANDEM-MQTT-8]).
        ack = await this.ingestor.currentAck(lockId);
        // The lock sends again what it holds unacknowledged, so it has not seen this ack, even if the bridge
        // published it: the broker may have lost the retained copy (killed before storing it). Published
        // again even when unchanged, at most once a second per lock (a resent window is many records).
        if (ack !== undefined && this.mayReack(lockId)) this.lastAck.delete(lockId);
      }
      if (ack !== undefined) this.queueAck(ack);
      // [TANDEM-HA-3]: Home Assistant sees only what the lock signed (the ingestor verified it), or the
      // cleared state topic of a lock that went away.
      if (kind === 'state' && this.homeAssistant !== undefined) {
        if (bytes.length === 0) this.homeAssistant.offline(lockId);
        else if (result.outcome === 'stored') this.homeAssistant.verifiedState(decodeLockState(bytes).report);
      }
    } else {
      result = { outcome: 'refused', reason: `${kind} is a cloud → lock topic` };
    }
    return { topic, lockId, kind, result };
  }

  private mayReack(lockId: string): boolean {
    const now = this.now();
    if (now - (this.reacked.get(lockId) ?? -Infinity) < REACK_MS) return false;
    this.reacked.set(lockId, now);
    return true;
  }

  /** Inside a batch: the ack waits for the commit (one per lock per batch); outside: published now. */
  private queueAck(ack: OutboxAck): void {
    const fx = this.effects.getStore();
    if (fx === undefined) this.publishAck(ack);
    else fx.acks.set(ack.lockId, ack);
  }

  /**
   * Publishes at QoS 1 without waiting for the broker's PUBACK. Inside `handleMessage` a wait would deadlock:
   * MQTT.js reads the next packet (that PUBACK) only after the handler calls back. MQTT.js keeps the message
   * in its outgoing store and resends it after a reconnection.
   */
  private send(topic: string, bytes: Uint8Array, retain: boolean): void {
    const fx = this.effects.getStore();
    if (fx !== undefined) {
      // Handling a message of a batch: nothing leaves before the batch is stored ([TANDEM-MQTT-15]).
      fx.after.push(() => this.send(topic, bytes, retain));
      return;
    }
    this.client.publish(topic, Buffer.from(bytes), { qos: 1, retain }, (e) => {
      if (e)
        this.log({
          level: 'warn',
          source: 'bridge',
          event: 'publish failed',
          reason: `${topic}: ${e.message}`,
        });
    });
  }

  /** A retained QoS 1 text message (Home Assistant reads JSON and plain words, not CBOR). */
  private sendText(topic: string, payload: string): void {
    this.send(topic, new TextEncoder().encode(payload), true);
  }

  /** Publishes a lock's outbox acknowledgement retained; public for the sync service's uploads ([TANDEM-MQTT-8]). */
  publishAck(ack: OutboxAck): void {
    const key = `${ack.epoch}:${ack.sequence}`;
    if (this.lastAck.get(ack.lockId) === key) return;
    const bytes = encodeOutboxAck(ack, this.options.issuer.key, this.options.issuer.kid);
    this.send(topicFor('outbox-ack', ack.lockId), bytes, true);
    this.lastAck.set(ack.lockId, key);
  }

  private async answerTimeRequest(lockId: string, bytes: Uint8Array): Promise<BridgeActivity['result']> {
    const now = this.now();
    const limit = this.options.timeRequestsPerMinute ?? 6;
    const recent = (this.timeRequests.get(lockId) ?? []).filter((t) => now - t < 60_000);
    if (recent.length >= limit) {
      const reason = `more than ${limit} time requests per minute`;
      this.log({ level: 'warn', source: 'bridge', event: 'refused time-request', who: lockId, reason });
      return { outcome: 'refused', reason };
    }
    const req = await this.ingestor.checkTimeRequest(lockId, bytes);
    if ('refused' in req) return { outcome: 'refused', reason: req.refused };
    recent.push(now);
    this.timeRequests.set(lockId, recent);
    const beacon = encodeTimeBeacon(
      { time: Math.floor(now / 1000), nonce: req.nonce, lockId, accuracy: this.options.beaconAccuracy ?? 2 },
      this.options.issuer.key,
      this.options.issuer.kid,
    );
    // Not retained: a nonce-bound beacon is stale for the next connection ([TANDEM-MQTT-12]).
    this.send(topicFor('beacon', lockId), beacon, false);
    return { outcome: 'beacon' };
  }

  /** Signs and publishes a broadcast beacon, retained on `tandem/v1/time` ([TANDEM-TIME-5]). */
  async publishBroadcastBeacon(): Promise<void> {
    const beacon = encodeTimeBeacon(
      { time: Math.floor(this.now() / 1000), accuracy: this.options.beaconAccuracy ?? 2 },
      this.options.issuer.key,
      this.options.issuer.kid,
    );
    await this.client.publishAsync(topicFor('time'), Buffer.from(beacon), { qos: 1, retain: true });
  }

  /**
   * Revokes token `tokenId` (expiring at `exp`) on lock `lockId`: a new full update, version + 1, stored then
   * published retained ([TANDEM-REV-3], [TANDEM-MQTT-3]). Returns the stored revocation.
   */
  async revoke(lockId: string, tokenId: Uint8Array, exp: number): Promise<StoredRevocation> {
    return this.revokeEntries(lockId, [{ id: tokenId, exp }]);
  }

  /**
   * Adds several entries (token ids or holder ids, [TANDEM-REV-10]) in one new version: revoking a rider's
   * shares, or a lost phone, is one update per lock, not one per entry.
   */
  async revokeEntries(
    lockId: string,
    add: readonly { readonly id: Uint8Array; readonly exp: number }[],
  ): Promise<StoredRevocation> {
    // Concurrent revocations (an operator revoking a rider on every lock, the API serving many owners) are
    // written together: one transaction for all, then every update published at once, each call resolving
    // when the broker has its update. Alone, a call is a batch of one.
    const done = new Promise<StoredRevocation>((resolve, reject) =>
      this.revocations.push({ lockId, add, resolve, reject }),
    );
    this.writeRevocationsSoon();
    return done;
  }

  /**
   * Adds the same entries on many locks at once, one new version each: a lost phone's holder id on every lock
   * it could open ([TANDEM-REV-10]), a compromised token everywhere. The updates are signed and stored in
   * transactions of 64, 128, then up to 512, each published after its commit without waiting for one another; resolves when the broker has
   * every one, rejects with the first failure (the others still land).
   */
  async revokeOnLocks(
    lockIds: readonly string[],
    add: readonly { readonly id: Uint8Array; readonly exp: number }[],
  ): Promise<StoredRevocation[]> {
    return Promise.all(lockIds.map((lockId) => this.revokeEntries(lockId, add)));
  }

  private writeRevocationsSoon(): void {
    if (this.revoking !== undefined) return;
    this.revoking = (async () => {
      // One turn of the microtask queue first, so the calls made together (revokeOnLocks) share a batch.
      await Promise.resolve();
      // A small first batch, then larger ones: the fan-out starts after a few signatures and one commit,
      // not after REVOCATION_BATCH of them. Between two transactions the event loop turns once, so the broker in
      // this process forwards the updates just published (and serves its other clients) before the next batch
      // is signed: the transactions of a fleet no longer run as one chain of microtasks (10,000 locks: 1.7 s of
      // signing and store statements before the first update was forwarded, in the session 6 profile of bench
      // group `mqtt`). Signing outside the transaction, from lists read beforehand, was tried and measured
      // slower (the reads outside a transaction cost more than the interleaving gained).
      let size = FIRST_REVOCATION_BATCH;
      while (this.revocations.length > 0) {
        await this.writeRevocations(this.revocations.splice(0, size));
        size = Math.min(REVOCATION_BATCH, size * 2);
        if (this.revocations.length > 0) await new Promise((r) => setImmediate(r));
      }
    })().finally(() => {
      this.revoking = undefined;
      if (this.revocations.length > 0) this.writeRevocationsSoon();
    });
  }

  /** Signs and stores every job's next version in one transaction, then publishes them without waiting in turn. */
  private async writeRevocations(jobs: readonly RevocationJob[]): Promise<void> {
    const stored: { job: RevocationJob; next: StoredRevocation }[] = [];
    try {
      await this.options.store.batch(async (scope) => {
        for (const job of jobs) {
          const r = await scope.step(() => this.nextRevocation(job.lockId, job.add));
          if (r.ok) stored.push({ job, next: r.value });
          else job.reject(r.error);
        }
      });
    } catch (e) {
      // Nothing of the batch is stored: every call fails (a settled one stays as it was), none was published.
      for (const job of jobs) job.reject(e);
      return;
    }
    // Published in the order stored (MQTT.js writes in call order), so that a lock revoked twice keeps the later
    // update retained; not awaited here, so the next batch is written while the broker acknowledges these.
    for (const { job, next } of stored) {
      this.publishRevocation(next).then(
        () => job.resolve(next),
        (e: unknown) => job.reject(e),
      );
    }
  }

  /** The next full update of one lock after `held`: its entries plus `add`, expired ones dropped, signed. */
  private signRevocation(
    lockId: string,
    add: readonly { readonly id: Uint8Array; readonly exp: number }[],
    held: StoredRevocation | undefined,
  ): StoredRevocation {
    const nowSec = Math.floor(this.now() / 1000);
    const entries = new Map(held?.entries ?? []);
    for (const a of add) {
      const hex = Buffer.from(a.id).toString('hex');
      entries.set(hex, Math.max(entries.get(hex) ?? 0, a.exp));
    }
    // Entries whose token has expired need not travel any more ([TANDEM-REV-3]).
    for (const [id, e] of entries) if (e <= nowSec) entries.delete(id);
    const version = (held?.version ?? 0) + 1;
    const bytes = encodeRevocationUpdate(
      {
        kind: 'full',
        version,
        issuedAt: nowSec,
        lockId,
        added: [...entries].map(([id, e]) => ({ id: Uint8Array.from(Buffer.from(id, 'hex')), exp: e })),
        removed: [],
      },
      this.options.issuer.key,
      this.options.issuer.kid,
    );
    return { lockId, version, entries, bytes };
  }

  /** Inside a batch: the next full update of one lock, version + 1, signed and stored by compare-and-set. */
  private async nextRevocation(
    lockId: string,
    add: readonly { readonly id: Uint8Array; readonly exp: number }[],
  ): Promise<StoredRevocation> {
    if ((await this.options.store.getLock(lockId)) === undefined) {
      throw new CloudError('ERR_CLOUD_LOCK_UNKNOWN', `lock ${lockId} is not registered`);
    }
    for (let attempt = 0; attempt < 8; attempt++) {
      const held = await this.options.store.getRevocation(lockId);
      const next = this.signRevocation(lockId, add, held);
      if (await this.options.store.putRevocation(next, held?.version ?? 0)) return next;
    }
    throw new CloudError(
      'ERR_CLOUD_STORE',
      `revocation list of ${lockId} keeps changing under concurrent writers`,
      {
        temporary: true,
      },
    );
  }

  private async publishRevocation(r: StoredRevocation): Promise<void> {
    await this.client.publishAsync(topicFor('revocation', r.lockId), Buffer.from(r.bytes), {
      qos: 1,
      retain: true,
    });
  }

  /** Publishes the held revocation update of every lock this instance owns (a broker may have lost them). */
  async republishRevocations(): Promise<void> {
    const mine = (await this.options.store.listRevocations()).filter((r) => this.owns(r.lockId));
    // 256 in flight at a time, not one round trip per lock in turn (a fleet of 10,000 locks).
    for (let i = 0; i < mine.length; i += 256) {
      await Promise.all(mine.slice(i, i + 256).map((r) => this.publishRevocation(r)));
    }
  }

  /** [TANDEM-ANCHOR-5]: verified with the device key of the topic's lock; kept in {@link anchorAcks}. */
  private async ingestAnchorAck(lockId: string, bytes: Uint8Array): Promise<BridgeActivity['result']> {
    const lock = await this.options.store.getLock(lockId);
    if (lock === undefined) return { outcome: 'refused', reason: `lock ${lockId} is not registered` };
    try {
      const ack = verifyAnchorAck(bytes, publicKeyFromRaw('EdDSA', lock.deviceKey), lockId);
      const held = this.anchorAcks.get(lockId);
      if (held === undefined || held.version < ack.version)
        this.anchorAcks.set(lockId, { version: ack.version, lockTime: ack.lockTime });
      // Kept in the store too, as a phone's relayed ack is (anchor-acks.ts): the owner's lock view shows it.
      await this.options.store.putAnchorAck({ ...ack, receivedAt: this.now(), via: 'mqtt' });
      this.log({
        level: 'info',
        source: 'bridge',
        event: 'anchor-ack',
        who: lockId,
        reason: `version ${ack.version}`,
      });
      return { outcome: 'anchor-ack', version: ack.version };
    } catch (e) {
      const reason = (e as Error).message;
      this.log({ level: 'warn', source: 'bridge', event: 'refused anchor-ack', who: lockId, reason });
      return { outcome: 'refused', reason };
    }
  }

  /**
   * Publishes, retained, the anchor update of every lock this instance owns ([TANDEM-ANCHOR-6]); nothing
   * before the first rotation. Called at start, after a rotation and when an overlap ends.
   */
  async publishAnchorUpdates(): Promise<number> {
    const ring = this.options.keyring;
    if (ring === undefined || ring.anchorVersion === 0) return 0;
    let n = 0;
    for (const lock of await this.options.store.listLocks()) {
      if (await this.publishAnchorUpdate(lock.lockId)) n++;
    }
    return n;
  }

  /** Publishes, retained, the anchor update of one lock, if there is one and this instance owns the lock. */
  async publishAnchorUpdate(lockId: string): Promise<boolean> {
    const bytes = this.owns(lockId) ? this.options.keyring?.anchorUpdateFor(lockId) : undefined;
    if (bytes === undefined) return false;
    await this.client.publishAsync(topicFor('anchor', lockId), Buffer.from(bytes), { qos: 1, retain: true });
    return true;
  }

  /**
   * Starts a key rotation ([TANDEM-ANCHOR-7]) and publishes the anchor updates that carry the new key.
   * Returns the new key's kid.
   */
  async rotateKeys(overlapS: number): Promise<string> {
    const ring = this.options.keyring;
    if (ring === undefined) throw new CloudError('ERR_CLOUD_CONFIG', 'this bridge has no keyring to rotate');
    const next = ring.rotate(overlapS);
    await this.publishAnchorUpdates();
    return next.kidText;
  }

  /**
   * Ends an overlap that has run out: the new key becomes current, and everything retained that the old key
   * signed is signed again by the new one (revocation updates at the same version, the broadcast beacon, and
   * the outbox acks at the next ingestion), after the anchor updates that retire the old key. A lock that
   * missed the whole overlap gets the anchor update first on the same connection ([TANDEM-ANCHOR-6]).
   */
  async advanceKeys(): Promise<boolean> {
    const ring = this.options.keyring;
    if (ring === undefined || !ring.advance()) return false;
    await this.publishAnchorUpdates();
    for (const held of await this.options.store.listRevocations()) {
      if (!this.owns(held.lockId)) continue;
      const bytes = encodeRevocationUpdate(
        {
          kind: 'full',
          version: held.version,
          issuedAt: Math.floor(this.now() / 1000),
          lockId: held.lockId,
          added: [...held.entries].map(([id, e]) => ({
            id: Uint8Array.from(Buffer.from(id, 'hex')),
            exp: e,
          })),
          removed: [],
        },
        this.options.issuer.key,
        this.options.issuer.kid,
      );
      const next: StoredRevocation = { ...held, bytes };
      if (await this.options.store.putRevocation(next, held.version)) await this.publishRevocation(next);
    }
    this.lastAck.clear();
    if ((this.options.beaconIntervalMs ?? 60_000) > 0) await this.publishBroadcastBeacon();
    return true;
  }

  /** Disconnects. The store stays open: its owner closes it. */
  async close(): Promise<void> {
    if (this.beaconTimer !== undefined) clearInterval(this.beaconTimer);
    if (this.gapTimer !== undefined) clearInterval(this.gapTimer);
    // Stop taking messages; let the batch being written finish, so the store is not closed under it. What is
    // still queued is neither stored nor acknowledged: the broker delivers it to the next session.
    this.closing = true;
    this.queue.length = 0;
    for (const next of this.held.splice(0)) next();
    await this.draining;
    await this.revoking;
    // A graceful end waits for every QoS 1 publish in flight; a broker that never acknowledges one must not
    // hold the process, so after two seconds the connection is dropped (what was not acknowledged is
    // published again: acks and revocations are retained and re-derived from the store).
    let timer: NodeJS.Timeout | undefined;
    const forced = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.client.end(true, () => resolve());
      }, 2_000);
    });
    await Promise.race([this.client.endAsync(), forced]);
    clearTimeout(timer);
  }
}
