/**
 * The bridge: an MQTT.js client with its own identity ({@link BRIDGE_USERNAME}) that
 *
 * - ingests what locks publish (state, alerts, audit records, revocation acknowledgements) through the one
 *   {@link Ingestor}, and acknowledges a message to the broker only after it is stored, so a bridge crash
 *   loses nothing (QoS 1, persistent session);
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
import mqtt from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';
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
  private readonly timeRequests = new Map<string, number[]>();
  private readonly listeners = new Set<(a: BridgeActivity) => void>();
  /** The anchor version each lock last acknowledged ([TANDEM-ANCHOR-5]); in memory, for operators and tests. */
  readonly anchorAcks = new Map<string, { readonly version: number; readonly lockTime: number }>();
  private beaconTimer: NodeJS.Timeout | undefined;
  /** Home Assistant discovery and states, or undefined when turned off. */
  readonly homeAssistant: HomeAssistantPublisher | undefined;

  private constructor(client: MqttClient, options: BridgeOptions) {
    this.client = client;
    this.options = options;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? debugSink;
    this.ingestor = new Ingestor({
      store: options.store,
      now: this.now,
      log: this.log,
      ...(options.feed === undefined ? {} : { feed: options.feed }),
    });
    const ha = options.homeAssistant;
    this.homeAssistant =
      ha === false
        ? undefined
        : new HomeAssistantPublisher(
            (m) => this.sendText(m.topic, m.payload),
            ha?.settings ?? (() => ({ remoteLocking: false })),
          );
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
    client.handleMessage = (packet, done) => {
      bridge.handle(packet.topic, packet.payload as Buffer).then(
        () => done(),
        (e: unknown) => {
          // A store failure: do not acknowledge; the broker redelivers after reconnection.
          bridge.log({ level: 'warn', source: 'bridge', event: 'store failure', reason: String(e) });
          client.end(true, () => client.reconnect());
        },
      );
    };
    client.on('connect', () => {
      bridge
        .subscribe()
        .catch((e: unknown) =>
          bridge.log({ level: 'warn', source: 'bridge', event: 'subscribe failed', reason: String(e) }),
        );
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
  }

  private async handle(topic: string, payload: Buffer): Promise<void> {
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
      return;
    }
    if (parsed.kind === 'time' || !this.owns(parsed.lockId)) return;
    const { lockId, kind } = parsed;
    const bytes = new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
    let result: BridgeActivity['result'];
    if (kind === 'time-request') {
      result = await this.answerTimeRequest(lockId, bytes);
    } else if (kind === 'anchor-ack') {
      result = await this.ingestAnchorAck(lockId, bytes);
    } else if ((['alert', 'audit', 'state', 'revocation-ack'] as const).includes(kind as IngestKind)) {
      result = await this.ingestor.ingest(kind as IngestKind, lockId, bytes, 'mqtt');
      if (result.outcome === 'stored' && result.ack !== undefined) this.publishAck(result.ack);
      // [TANDEM-HA-3]: Home Assistant sees only what the lock signed (the ingestor verified it), or the
      // cleared state topic of a lock that went away.
      if (kind === 'state' && this.homeAssistant !== undefined) {
        if (bytes.length === 0) this.homeAssistant.offline(lockId);
        else if (result.outcome === 'stored') this.homeAssistant.verifiedState(decodeLockState(bytes).report);
      }
    } else {
      result = { outcome: 'refused', reason: `${kind} is a cloud → lock topic` };
    }
    for (const l of this.listeners) l({ topic, lockId, kind, result });
  }

  /**
   * Publishes at QoS 1 without waiting for the broker's PUBACK. Inside `handleMessage` a wait would deadlock:
   * MQTT.js reads the next packet (that PUBACK) only after the handler calls back. MQTT.js keeps the message
   * in its outgoing store and resends it after a reconnection.
   */
  private send(topic: string, bytes: Uint8Array, retain: boolean): void {
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
    if ((await this.options.store.getLock(lockId)) === undefined) {
      throw new CloudError('ERR_CLOUD_LOCK_UNKNOWN', `lock ${lockId} is not registered`);
    }
    for (let attempt = 0; attempt < 8; attempt++) {
      const held = await this.options.store.getRevocation(lockId);
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
      const next: StoredRevocation = { lockId, version, entries, bytes };
      if (await this.options.store.putRevocation(next, held?.version ?? 0)) {
        await this.publishRevocation(next);
        return next;
      }
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
    for (const r of await this.options.store.listRevocations())
      if (this.owns(r.lockId)) await this.publishRevocation(r);
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
