/**
 * The lock's MQTT client (SPEC §9, ARCHITECTURE.md flows 6 and 7): the lock's link to the cloud whenever it
 * has a network. It
 *
 * - publishes the signed lock state, retained, at each connection and on each change ([TANDEM-MQTT-10]), with
 *   a last will that marks the lock offline ([TANDEM-MQTT-WILL]);
 * - publishes the outbox (alerts and audit records) at QoS 1 in sequence order; a record leaves the outbox
 *   only when the issuer-signed outbox acknowledgement for it arrives ([TANDEM-MQTT-8], [TANDEM-MQTT-11],
 *   through the same {@link applyOutboxAck} as a phone's relay), and records not acknowledged in time are
 *   sent again, so nothing is lost to a broker restart, a reboot or a long time offline;
 * - subscribes to its retained revocation update, its outbox acknowledgement, its beacon topic and the
 *   broadcast time, and hands revocation updates and beacons to the SAME authority methods as BLE
 *   (`applyRevocationUpdate`, `applyTimeBeacon`), publishing the signed revocation acknowledgement retained;
 * - runs remote commands (LOCK only, SPEC §9.11) through the authority's `runRemoteCommand`, which verifies
 *   them, stores their sequence before acting and audits them; the new state is published at once;
 * - asks for a nonce-bound beacon ([TANDEM-MQTT-12]) at each connection and whenever its uncertainty is
 *   unknown or past its bound;
 * - reconnects with capped exponential backoff and full jitter ([TANDEM-MQTT-LINK]).
 *
 * Nothing on the decision path waits for it: BLE requests go to the authority directly, and the link only
 * reads the outbox and delivers verified messages. Every collaborator is injected (connect function, clock
 * for its timers, random source for the jitter).
 *
 * Messages on subscribed topics are checked here first (topic, size, structure, issuer signature, lock id)
 * with the same protocol/ verification the authority runs, and refused with a logged reason before they
 * reach it: the cloud → lock topics are writable by the bridge alone ([TANDEM-MQTT-4]), so garbage there is a
 * broker or bridge fault, and it must not count as refusals against the lock's global rate limit, which
 * would pause BLE riders.
 */
import { EventEmitter } from 'node:events';
import createDebug from 'debug';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Clock, TimerHandle } from '../../../hardware/src/clock.js';
import type { PublicKey, PrivateKey } from '../../../protocol/src/keys.js';
import { encodeLockState, encodeTimeRequest, parseTopic, topicFor } from '../../../protocol/src/mqtt.js';
import type { LockTopicKind } from '../../../protocol/src/mqtt.js';
import { verifyAnchorUpdate } from '../../../protocol/src/anchor-update.js';
import { verifyRevocationUpdate } from '../../../protocol/src/revocation.js';
import { Status } from '../../../protocol/src/status.js';
import { verifyTimeBeacon } from '../../../protocol/src/time-beacon.js';
import type { LockAuthority } from '../lock/lock-authority.js';
import type { Outbox } from '../store/outbox.js';
import { DEFAULT_BACKOFF, backoffCapMs, backoffDelayMs } from './backoff.js';
import type { BackoffPolicy } from './backoff.js';
import { applyOutboxAck } from './outbox-ack.js';

const debug = createDebug('tandem:lock:mqtt');

/** How the client opens a connection: MQTT.js `connect` (the default) or a stand-in. */
export type MqttConnect = (url: string, options: IClientOptions) => MqttClient;

/** The peer name the link uses towards the authority (rate limiting, audit records). */
export const MQTT_PEER = 'mqtt';

/** Options of a {@link LockMqttClient}. */
export interface LockMqttClientOptions {
  readonly lockId: string;
  readonly authority: Pick<
    LockAuthority,
    | 'snapshot'
    | 'issueChallenge'
    | 'applyTimeBeacon'
    | 'applyRevocationUpdate'
    | 'applyAnchorUpdate'
    | 'auditEvent'
    | 'runRemoteCommand'
  >;
  readonly outbox: Pick<Outbox, 'peek' | 'ack' | 'size' | 'ackedThrough' | 'epoch' | 'lastSeq'>;
  /** Issuer keys by kid (AnchorStore.issuerKey). */
  readonly issuerKey: (kid: Uint8Array) => PublicKey | undefined;
  /** Signs the lock state and time requests. */
  readonly deviceKey: PrivateKey;
  /** `mqtt://`, `mqtts://`, `ws://` or `wss://` (checked by the config file's parser). */
  readonly url: string;
  /** [TANDEM-MQTT-13]: the lock id. */
  readonly username: string;
  readonly password: string;
  /** TLS material (PEM) for mqtts:// and wss://. */
  readonly tls?: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
  /** Timers of the link: polling, backoff, resend (ManualClock in tests). */
  readonly clock: Clock;
  /** Uniform in [0, 1), for the jitter (default Math.random). */
  readonly random?: () => number;
  /** Default: MQTT.js `connect`, loaded when the link starts. */
  readonly connect?: MqttConnect;
  /** Ask for a nonce-bound beacon when the uncertainty passes this, seconds (default 60). */
  readonly uncertaintyBoundS?: number;
  readonly backoff?: BackoffPolicy;
  /** How often the outbox and the lock state are looked at, ms (default 1000). */
  readonly pollMs?: number;
  /** Records published but not acknowledged within this are published again, ms (default 60 s). */
  readonly resendAfterMs?: number;
  /** A time request not answered within this is made again, ms (default 30 s, the relay limit). */
  readonly timeRequestRetryMs?: number;
  /**
   * After an answered request, the next one waits at least this, ms (default 10 minutes): a cloud whose
   * accuracy alone exceeds the bound must not make the lock ask (and audit a beacon) every few seconds.
   */
  readonly timeRequestMinIntervalMs?: number;
  /**
   * The signed state is published once more this long after each connection, ms (default 2000): a broker
   * may publish the previous connection's will just after the new connection's state (a session takeover
   * races the new CONNECT), which would leave a live lock marked offline ([TANDEM-MQTT-WILL]).
   */
  readonly restateAfterMs?: number;
  /** MQTT keepalive, seconds (default 60). */
  readonly keepaliveS?: number;
  /** Most records in flight (published, puback pending) at once (default 16). */
  readonly maxInFlight?: number;
  /** The fuel gauge's last reading in percent, or undefined: none is reported ([TANDEM-MQTT-14]). */
  readonly battery?: () => number | undefined;
}

/** The link as shown on the console. */
export type LinkState = 'stopped' | 'connecting' | 'up' | 'down';

/** Counters and the last problem, for the console. */
export interface LinkStatus {
  readonly link: LinkState;
  readonly url: string;
  readonly lastError: string | undefined;
  /** Reconnection attempts since the link was last up. */
  readonly attempt: number;
  readonly published: number;
  readonly refused: number;
  readonly connects: number;
}

/** Events: `link` (state), `reconnect` ({attempt, delayMs, capMs}), `refused` (reason), `applied` (kind). */
export interface LockMqttClientEvents {
  link: [LinkState];
  reconnect: [{ attempt: number; delayMs: number; capMs: number }];
  refused: [string];
  applied: [{ kind: LockTopicKind | 'time'; status: Status }];
}

const EMPTY = Buffer.alloc(0);
// The anchor topic first: after a key rotation's overlap has ended, a lock that missed it must apply the
// retained anchor update ([TANDEM-ANCHOR-6]) before the retained messages the new key signed.
// [TANDEM-RCMD-6]: the command topic too (not retained: only commands sent while the lock is connected).
const SUBSCRIBED: readonly LockTopicKind[] = ['anchor', 'revocation', 'outbox-ack', 'beacon', 'command'];

/** The lock's MQTT link (module comment). */
export class LockMqttClient extends EventEmitter<LockMqttClientEvents> {
  readonly #o: LockMqttClientOptions;
  readonly #backoff: BackoffPolicy;
  #connect: MqttConnect | undefined;
  #client: MqttClient | undefined;
  #link: LinkState = 'stopped';
  #stopped = true;
  #attempt = 0;
  #reconnectTimer: TimerHandle | undefined;
  #pollTimer: TimerHandle | undefined;
  #lastError: string | undefined;
  #published = 0;
  #refused = 0;
  #connects = 0;
  /** Highest outbox sequence published on the current connection. */
  #publishedThrough = 0;
  #lastPublishAt = 0;
  #lastAckSeen = 0;
  #pumping = false;
  #stateKey: string | undefined;
  /** When the current connection came up, until the state has been published again after it. */
  #restateFrom: number | undefined;
  #timeRequest: { nonce: Uint8Array; at: number; answered: boolean } | undefined;
  /** Rejecters of publishes awaiting their PUBACK: a lost connection fails them, so the pump never hangs. */
  readonly #inFlight = new Set<(e: Error) => void>();
  /** Incoming messages are handled one at a time, in arrival order. */
  #work: Promise<void> = Promise.resolve();

  constructor(options: LockMqttClientOptions) {
    super();
    this.#o = options;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#connect = options.connect;
  }

  /** The link state and counters. */
  status(): LinkStatus {
    return {
      link: this.#link,
      url: this.#o.url,
      lastError: this.#lastError,
      attempt: this.#attempt,
      published: this.#published,
      refused: this.#refused,
      connects: this.#connects,
    };
  }

  /**
   * Starts connecting and resolves at once: the link comes up in the background and retries on its own.
   * MQTT.js itself is loaded here, not at start-up (the bundle keeps it external): a lock without an `mqtt`
   * section never loads it, and one with it does not start later for it.
   */
  start(): Promise<void> {
    if (!this.#stopped) return Promise.resolve();
    this.#stopped = false;
    this.#schedulePoll();
    if (this.#connect !== undefined) {
      this.#open();
      return Promise.resolve();
    }
    this.#setLink('connecting');
    import('mqtt').then(
      (m) => {
        this.#connect = m.connect;
        this.#open();
      },
      (e: unknown) => {
        this.#lastError = `MQTT.js cannot be loaded: ${errorText(e)}`;
        this.#setLink('down');
      },
    );
    return Promise.resolve();
  }

  /** Looks at the outbox and state now instead of at the next poll (after queuing an alert, say). */
  kick(): void {
    if (this.#link === 'up') this.#tick();
  }

  /**
   * Stops the link. A lock that goes away cleanly marks itself offline as its will would have
   * ([TANDEM-MQTT-WILL]); nothing the outbox holds is affected. Waits at most `graceMs` for the broker.
   */
  async stop(graceMs = 2000): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#clearTimers();
    const client = this.#client;
    this.#client = undefined;
    this.#setLink('stopped');
    if (client === undefined) return;
    await new Promise<void>((resolve) => {
      const timer = this.#o.clock.setTimeout(() => client.end(true, {}, () => resolve()), graceMs);
      const finish = () => {
        this.#o.clock.clearTimeout(timer);
        client.end(false, {}, () => resolve());
      };
      if (client.connected) {
        client.publish(topicFor('state', this.#o.lockId), EMPTY, { qos: 1, retain: true }, finish);
      } else {
        this.#o.clock.clearTimeout(timer);
        client.end(true, {}, () => resolve());
      }
    });
    await this.#work;
  }

  // ---------------------------------------------------------------------------------------------------
  // Connection and reconnection.
  // ---------------------------------------------------------------------------------------------------

  #open(): void {
    if (this.#stopped) return;
    this.#setLink('connecting');
    const o = this.#o;
    const options: IClientOptions = {
      clientId: o.lockId,
      username: o.username,
      password: o.password,
      protocolVersion: 4,
      clean: true,
      keepalive: o.keepaliveS ?? 60,
      // The link reconnects by itself with jitter ([TANDEM-MQTT-LINK]); MQTT.js' fixed period would not.
      reconnectPeriod: 0,
      connectTimeout: 30_000,
      // [TANDEM-MQTT-WILL]: an empty retained state, published by the broker if the link dies unannounced.
      will: { topic: topicFor('state', o.lockId), payload: EMPTY, qos: 1, retain: true },
      ...(o.tls?.ca ? { ca: o.tls.ca } : {}),
      ...(o.tls?.cert ? { cert: o.tls.cert } : {}),
      ...(o.tls?.key ? { key: o.tls.key } : {}),
    };
    let client: MqttClient;
    try {
      client = this.#connect!(o.url, options);
    } catch (e) {
      this.#lastError = `connect failed: ${errorText(e)}`;
      this.#scheduleReconnect();
      return;
    }
    this.#client = client;
    client.on('connect', () => {
      if (client !== this.#client) return;
      this.#onConnect(client).catch((e: unknown) => {
        this.#lastError = `after connecting: ${errorText(e)}`;
        debug('%s', this.#lastError);
        client.end(true);
      });
    });
    client.on('message', (topic, payload) => {
      if (client !== this.#client) return;
      this.#work = this.#work.then(() => this.#onMessage(client, topic, payload));
    });
    client.on('error', (e) => {
      this.#lastError = errorText(e);
      debug('link error: %s', this.#lastError);
    });
    client.on('close', () => {
      for (const fail of [...this.#inFlight]) fail(new Error('connection closed before PUBACK'));
      if (client !== this.#client) return;
      this.#client = undefined;
      client.end(true);
      if (this.#stopped) return;
      this.#setLink('down');
      this.#scheduleReconnect();
    });
  }

  #scheduleReconnect(): void {
    if (this.#stopped) return;
    const attempt = this.#attempt++;
    const capMs = backoffCapMs(this.#backoff, attempt);
    const delayMs = backoffDelayMs(this.#backoff, attempt, this.#o.random ?? Math.random);
    debug('reconnecting in %d ms (attempt %d, cap %d ms)', delayMs, attempt + 1, capMs);
    this.emit('reconnect', { attempt: attempt + 1, delayMs, capMs });
    this.#reconnectTimer = this.#o.clock.setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#open();
    }, delayMs);
  }

  async #onConnect(client: MqttClient): Promise<void> {
    this.#connects++;
    this.#attempt = 0;
    this.#publishedThrough = this.#o.outbox.ackedThrough;
    this.#stateKey = undefined;
    this.#restateFrom = this.#o.clock.now();
    this.#timeRequest = undefined;
    this.#setLink('up');
    const lockId = this.#o.lockId;
    const filters = [...SUBSCRIBED.map((k) => topicFor(k, lockId)), topicFor('time')];
    const grants = await client.subscribeAsync(filters, { qos: 1 });
    for (const g of grants) {
      if (g.qos === 128) {
        this.#lastError = `the broker refused the subscription to ${g.topic}`;
        debug('%s', this.#lastError);
      }
    }
    // [TANDEM-MQTT-10]: at least on each connection; [TANDEM-MQTT-12]: a time request at each connection.
    this.#publishState(true);
    this.#requestTime(true);
    void this.#pump();
  }

  #setLink(state: LinkState): void {
    if (this.#link === state) return;
    this.#link = state;
    debug('link %s', state);
    this.emit('link', state);
  }

  #clearTimers(): void {
    if (this.#reconnectTimer) this.#o.clock.clearTimeout(this.#reconnectTimer);
    if (this.#pollTimer) this.#o.clock.clearTimeout(this.#pollTimer);
    this.#reconnectTimer = undefined;
    this.#pollTimer = undefined;
  }

  #schedulePoll(): void {
    if (this.#stopped) return;
    this.#pollTimer = this.#o.clock.setTimeout(() => {
      this.#pollTimer = undefined;
      if (this.#link === 'up') this.#tick();
      this.#schedulePoll();
    }, this.#o.pollMs ?? 1000);
  }

  #tick(): void {
    const from = this.#restateFrom;
    const again = from !== undefined && this.#o.clock.now() - from >= (this.#o.restateAfterMs ?? 2000);
    if (again) this.#restateFrom = undefined;
    this.#publishState(again);
    this.#requestTime(false);
    this.#maybeResend();
    void this.#pump();
  }

  // ---------------------------------------------------------------------------------------------------
  // Lock → cloud.
  // ---------------------------------------------------------------------------------------------------

  /**
   * [TANDEM-MQTT-10]: on each connection and whenever the state, revocation version, epoch or battery level
   * ([TANDEM-MQTT-14]) changes.
   */
  #publishState(force: boolean): void {
    const client = this.#client;
    if (!client || this.#link !== 'up') return;
    const s = this.#o.authority.snapshot();
    const outbox = this.#o.outbox;
    const battery = this.#o.battery?.();
    // [TANDEM-MQTT-14]: a new battery level is a change of state for publication.
    const key = `${s.state}|${s.revocationVersion}|${outbox.epoch}|${battery ?? '-'}`;
    if (!force && key === this.#stateKey) return;
    this.#stateKey = key;
    const report = encodeLockState(
      {
        lockId: this.#o.lockId,
        state: s.state,
        time: s.time.earliest,
        uncertainty: s.uncertainty,
        revocationVersion: s.revocationVersion,
        outboxEpoch: outbox.epoch,
        outboxSequence: outbox.lastSeq,
        ...(battery === undefined ? {} : { battery }),
      },
      this.#o.deviceKey,
    );
    this.#publish(client, 'state', report, true);
  }

  /**
   * [TANDEM-MQTT-12]: a time request bound to a nonce the lock issued itself, at each connection and whenever
   * the uncertainty is unknown or past the bound; one outstanding at a time, made again if unanswered.
   */
  #requestTime(atConnect: boolean): void {
    const client = this.#client;
    if (!client || this.#link !== 'up') return;
    const now = this.#o.clock.now();
    if (!atConnect) {
      // Not before this connection's own request, made once its subscriptions are in place (#onConnect): the
      // link is up while they are being made, and a poll tick then sent a second request, whose beacon's
      // audit record raced the outbox (two requests per connection, against the bridge's per-lock limit).
      if (this.#timeRequest === undefined) return;
      const u = this.#o.authority.snapshot().uncertainty;
      if (u !== null && u <= (this.#o.uncertaintyBoundS ?? 60)) return;
      const last = this.#timeRequest;
      const wait = last?.answered
        ? (this.#o.timeRequestMinIntervalMs ?? 600_000)
        : (this.#o.timeRequestRetryMs ?? 30_000);
      if (last && now - last.at < wait) return;
    }
    const { nonce } = this.#o.authority.issueChallenge({ peer: MQTT_PEER });
    this.#timeRequest = { nonce, at: now, answered: false };
    this.#publish(
      client,
      'time-request',
      encodeTimeRequest({ lockId: this.#o.lockId, nonce }, this.#o.deviceKey),
      false,
    );
  }

  /**
   * Published records that the cloud has not acknowledged after `resendAfterMs` without any progress are
   * published again (the cloud de-duplicates by epoch and sequence, [TANDEM-MQTT-3]): a bridge that was
   * away while the broker dropped them must still get them, on this connection.
   */
  #maybeResend(): void {
    const acked = this.#o.outbox.ackedThrough;
    const now = this.#o.clock.now();
    if (acked !== this.#lastAckSeen) {
      this.#lastAckSeen = acked;
      this.#lastPublishAt = now;
      return;
    }
    if (this.#publishedThrough > acked && now - this.#lastPublishAt >= (this.#o.resendAfterMs ?? 60_000)) {
      debug('records %d..%d unacknowledged: publishing them again', acked + 1, this.#publishedThrough);
      this.#publishedThrough = acked;
    }
  }

  /** Publishes outbox records after `#publishedThrough`, in sequence order, a bounded window at a time. */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      const outbox = this.#o.outbox;
      const window = this.#o.maxInFlight ?? 16;
      for (let round = 0; round < 1000; round++) {
        const client = this.#client;
        if (!client || this.#link !== 'up') return;
        const from = Math.max(this.#publishedThrough, outbox.ackedThrough);
        const batch = outbox
          .peek(from - outbox.ackedThrough + window)
          .filter((e) => e.seq > from)
          .slice(0, window);
        if (batch.length === 0) return;
        // QoS 1 publishes on one connection are delivered in the order sent ([MQTT-4.6.0-2]); the batch is
        // awaited whole so that at most `window` records wait for their PUBACK.
        await Promise.all(batch.map((e) => this.#publishAsync(client, e.kind, e.payload, false)));
        if (client !== this.#client) return;
        this.#publishedThrough = batch[batch.length - 1]!.seq;
        this.#lastPublishAt = this.#o.clock.now();
      }
    } catch (e) {
      this.#lastError = `publishing the outbox: ${errorText(e)}`;
      debug('%s', this.#lastError);
    } finally {
      this.#pumping = false;
    }
  }

  #publish(client: MqttClient, kind: LockTopicKind, payload: Uint8Array, retain: boolean): void {
    this.#publishAsync(client, kind, payload, retain).catch((e: unknown) => {
      this.#lastError = `publishing ${kind}: ${errorText(e)}`;
      debug('%s', this.#lastError);
    });
  }

  #publishAsync(
    client: MqttClient,
    kind: LockTopicKind,
    payload: Uint8Array,
    retain: boolean,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const fail = (e: Error) => {
        this.#inFlight.delete(fail);
        reject(e);
      };
      this.#inFlight.add(fail);
      client.publish(
        topicFor(kind, this.#o.lockId),
        Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
        { qos: 1, retain },
        (err) => {
          if (!this.#inFlight.delete(fail)) return;
          if (err) reject(err);
          else {
            this.#published++;
            resolve();
          }
        },
      );
    });
  }

  // ---------------------------------------------------------------------------------------------------
  // Cloud → lock.
  // ---------------------------------------------------------------------------------------------------

  async #onMessage(client: MqttClient, topic: string, payload: Buffer): Promise<void> {
    try {
      await this.#handle(client, topic, new Uint8Array(payload.buffer, payload.byteOffset, payload.length));
    } catch (e) {
      // Nothing a message does may take the link down; the authority never rejects, so this is a bug.
      this.#refuse(`${topic}: ${errorText(e)}`);
    }
  }

  async #handle(client: MqttClient, topic: string, bytes: Uint8Array): Promise<void> {
    const o = this.#o;
    let kind: LockTopicKind | 'time';
    try {
      const parsed = parseTopic(topic);
      kind = parsed.kind;
      if (parsed.kind !== 'time' && parsed.lockId !== o.lockId) throw new Error('names another lock');
      if (parsed.kind !== 'time' && !SUBSCRIBED.includes(parsed.kind)) throw new Error('is not for the lock');
    } catch (e) {
      this.#refuse(`message on ${JSON.stringify(topic.slice(0, 128))} refused: the topic ${errorText(e)}`);
      return;
    }
    // A zero-length retained message is how MQTT clears a retained value: nothing to apply.
    if (bytes.length === 0) {
      debug('%s cleared', topic);
      return;
    }
    if (kind === 'outbox-ack') {
      const status = await applyOutboxAck(bytes, {
        outbox: o.outbox,
        issuerKey: o.issuerKey,
        lockId: o.lockId,
        audit: (event, status, peer, detail) => o.authority.auditEvent(event, status, peer, detail),
        peer: MQTT_PEER,
      });
      if (status === Status.OK) void this.#pump();
      else this.#refuse(`outbox ack refused: ${Status[status]}`);
      this.emit('applied', { kind, status });
      return;
    }
    if (kind === 'command') {
      // [TANDEM-RCMD-5]: the authority verifies (issuer anchors, lock id, time, sequence) and acts; nothing
      // here is charged to the BLE refusal limits ([TANDEM-MQTT-LINK]).
      const r = await o.authority.runRemoteCommand(bytes, { peer: MQTT_PEER });
      if (r.status !== Status.OK)
        this.#refuse(`remote command refused: ${Status[r.status]} ${r.message ?? ''}`);
      this.emit('applied', { kind, status: r.status });
      this.#publishState(false);
      return;
    }
    if (kind === 'anchor') {
      try {
        verifyAnchorUpdate(bytes, o.issuerKey, o.lockId);
      } catch (e) {
        this.#refuse(`anchor update refused: ${errorText(e)}`);
        return;
      }
      const r = await o.authority.applyAnchorUpdate(bytes, { peer: MQTT_PEER });
      // [TANDEM-ANCHOR-5]: the signed acknowledgement, retained, so the cloud sees the new key landed.
      if (r.ack !== undefined && client === this.#client) this.#publish(client, 'anchor-ack', r.ack, true);
      if (r.status !== Status.OK)
        this.#refuse(`anchor update not applied: ${Status[r.status]} ${r.message ?? ''}`);
      this.emit('applied', { kind, status: r.status });
      return;
    }
    if (kind === 'revocation') {
      try {
        verifyRevocationUpdate(bytes, o.issuerKey, o.lockId);
      } catch (e) {
        this.#refuse(`revocation update refused: ${errorText(e)}`);
        return;
      }
      const r = await o.authority.applyRevocationUpdate(bytes, { peer: MQTT_PEER });
      if (r.ack !== undefined && client === this.#client) {
        // [TANDEM-REV-9]: the signed acknowledgement, retained, so the owner sees the version landed.
        this.#publish(client, 'revocation-ack', r.ack, true);
      }
      if (r.status !== Status.OK)
        this.#refuse(`revocation update not applied: ${Status[r.status]} ${r.message ?? ''}`);
      this.emit('applied', { kind, status: r.status });
      this.#publishState(false);
      return;
    }
    // The broadcast beacon (raises the floor, [TANDEM-TIME-5]) or the answer to a time request ([TANDEM-TIME-4]).
    let nonce: Uint8Array | undefined;
    try {
      nonce = verifyTimeBeacon(bytes, o.issuerKey, o.lockId).nonce;
    } catch (e) {
      this.#refuse(`time beacon refused: ${errorText(e)}`);
      return;
    }
    const r = await o.authority.applyTimeBeacon(bytes, { peer: MQTT_PEER });
    if (r.status !== Status.OK)
      this.#refuse(`time beacon not applied: ${Status[r.status]} ${r.message ?? ''}`);
    else if (
      nonce !== undefined &&
      this.#timeRequest &&
      Buffer.compare(nonce, this.#timeRequest.nonce) === 0
    ) {
      this.#timeRequest.answered = true;
    }
    this.emit('applied', { kind, status: r.status });
  }

  #refuse(reason: string): void {
    this.#refused++;
    this.#lastError = reason;
    debug('%s', reason);
    this.emit('refused', reason);
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
