/**
 * For the MQTT link tests: an embedded aedes broker on 127.0.0.1 that can be killed and restarted on the
 * same port, and a small test-only "cloud" (MQTT.js + protocol/ functions) that verifies what locks publish,
 * acknowledges their outboxes, publishes revocation updates and answers time requests. The real bridge is
 * cloud-bridge/ (not imported here: firmware-sim never imports it).
 */
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { Aedes } from 'aedes';
import type { AedesOptions } from 'aedes';
import { connect } from 'mqtt';
import type { MqttClient } from 'mqtt';
import type { PrivateKey, PublicKey } from '../../protocol/src/keys.js';
import {
  encodeOutboxAck,
  lockTopicFilter,
  parseTopic,
  topicFor,
  verifyAlert,
  verifyAuditRecord,
  verifyLockState,
  verifyTimeRequest,
} from '../../protocol/src/mqtt.js';
import type { LockStateReport } from '../../protocol/src/mqtt.js';
import { encodeRevocationUpdate, verifyRevocationAck } from '../../protocol/src/revocation.js';
import type { RevocationEntry } from '../../protocol/src/revocation.js';
import { encodeTimeBeacon } from '../../protocol/src/time-beacon.js';
import { SystemClock } from '../../hardware/src/clock.js';
import { LockMqttClient } from '../src/mqtt/lock-mqtt-client.js';
import type { LockMqttClientOptions } from '../src/mqtt/lock-mqtt-client.js';
import { LOCK } from './lock-harness.js';
import type { Lock } from './lock-harness.js';

/** Waits (bounded, real time) until `cond` holds; throws naming `what` otherwise. */
export async function waitFor(cond: () => boolean, what: string, maxSteps = 3000): Promise<void> {
  for (let i = 0; i < maxSteps; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** An aedes broker on 127.0.0.1, killable and restartable on the same port. */
export class TestBroker {
  #server: Server | undefined;
  #broker: Aedes | undefined;
  readonly #sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly options: Pick<AedesOptions, 'authenticate'> = {}) {}

  static async start(port = 0, options: Pick<AedesOptions, 'authenticate'> = {}): Promise<TestBroker> {
    const b = new TestBroker(options);
    await b.restart(port);
    return b;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** (Re)starts on `port` (default: the previous one, or any). */
  async restart(port = this.port): Promise<void> {
    const broker = await Aedes.createBroker(this.options);
    const server = createServer((socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      broker.handle(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    this.#server = server;
    this.#broker = broker;
  }

  /** Kills the broker as a crash would: every connection cut, retained messages gone (memory persistence). */
  async kill(): Promise<void> {
    const server = this.#server;
    const broker = this.#broker;
    this.#server = undefined;
    this.#broker = undefined;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    if (server) await new Promise<void>((r) => server.close(() => r()));
    if (broker) await new Promise<void>((r) => broker.close(() => r()));
  }
}

/** A record the cloud received and verified. */
export interface Received {
  readonly kind: 'alert' | 'audit';
  readonly epoch: number;
  readonly sequence: number;
}

/** The test-only cloud for one lock. */
export class TestCloud {
  readonly client: MqttClient;
  readonly records: Received[] = [];
  /** Distinct (epoch, sequence) pairs, the cloud's de-duplication key ([TANDEM-MQTT-11]). */
  readonly held = new Map<number, Set<number>>();
  readonly states: (LockStateReport | 'offline')[] = [];
  readonly revocationAcks: number[] = [];
  readonly timeRequests: Uint8Array[] = [];
  readonly invalid: string[] = [];
  /** The issuer's accuracy in answered beacons, seconds; false: time requests go unanswered. */
  answerTime: number | false = 1;
  #acked = new Map<number, number>();
  #retained: { topic: string; payload: Uint8Array }[] = [];

  private constructor(
    client: MqttClient,
    readonly o: {
      lockId: string;
      deviceKey: PublicKey;
      issuer: PrivateKey;
      issuerKid: Uint8Array;
      now: () => number;
      autoAck: boolean;
    },
  ) {
    this.client = client;
  }

  static async connect(
    url: string,
    o: {
      lockId: string;
      deviceKey: PublicKey;
      issuer: PrivateKey;
      issuerKid: Uint8Array;
      now: () => number;
      autoAck?: boolean;
    },
  ): Promise<TestCloud> {
    const client = connect(url, { clientId: 'test-cloud', reconnectPeriod: 50, connectTimeout: 5000 });
    const cloud = new TestCloud(client, { ...o, autoAck: o.autoAck ?? true });
    client.on('message', (topic, payload) => cloud.#onMessage(topic, new Uint8Array(payload)));
    client.on('error', () => undefined);
    client.on('connect', () => {
      void client.subscribeAsync(
        (['alert', 'audit', 'state', 'revocation-ack', 'time-request'] as const).map(lockTopicFilter),
        { qos: 1 },
      );
      // A bridge re-publishes its retained values after a broker lost them.
      for (const r of cloud.#retained)
        client.publish(r.topic, Buffer.from(r.payload), { qos: 1, retain: true });
    });
    await new Promise<void>((r) => client.once('connect', () => r()));
    return cloud;
  }

  /** Every sequence 1..n of `epoch` held. */
  holdsThrough(epoch: number, n: number): boolean {
    const s = this.held.get(epoch);
    if (!s) return n === 0;
    for (let i = 1; i <= n; i++) if (!s.has(i)) return false;
    return true;
  }

  /** Publishes a retained value and remembers it, to publish it again after a broker restart. */
  publishRetained(topic: string, payload: Uint8Array): void {
    this.#retained = this.#retained.filter((r) => r.topic !== topic);
    this.#retained.push({ topic, payload });
    this.client.publish(topic, Buffer.from(payload), { qos: 1, retain: true });
  }

  /** A full revocation update, retained ([TANDEM-MQTT-3]). */
  revoke(version: number, added: readonly RevocationEntry[]): void {
    this.publishRetained(
      topicFor('revocation', this.o.lockId),
      encodeRevocationUpdate(
        { kind: 'full', version, issuedAt: this.o.now(), lockId: this.o.lockId, added, removed: [] },
        this.o.issuer,
        this.o.issuerKid,
      ),
    );
  }

  publishRaw(topic: string, payload: Uint8Array, retain = false): Promise<unknown> {
    return this.client.publishAsync(topic, Buffer.from(payload), { qos: 1, retain });
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }

  #onMessage(topic: string, bytes: Uint8Array): void {
    const o = this.o;
    try {
      const t = parseTopic(topic);
      if (t.kind === 'time' || t.lockId !== o.lockId) return;
      if (t.kind === 'alert' || t.kind === 'audit') {
        const r =
          t.kind === 'alert'
            ? verifyAlert(bytes, o.deviceKey, o.lockId)
            : verifyAuditRecord(bytes, o.deviceKey, o.lockId);
        this.records.push({ kind: t.kind, epoch: r.epoch, sequence: r.sequence });
        let s = this.held.get(r.epoch);
        if (!s) this.held.set(r.epoch, (s = new Set()));
        s.add(r.sequence);
        let through = this.#acked.get(r.epoch) ?? 0;
        while (s.has(through + 1)) through++;
        if (o.autoAck && through > (this.#acked.get(r.epoch) ?? 0)) {
          this.#acked.set(r.epoch, through);
          this.publishRetained(
            topicFor('outbox-ack', o.lockId),
            encodeOutboxAck({ lockId: o.lockId, sequence: through, epoch: r.epoch }, o.issuer, o.issuerKid),
          );
        }
      } else if (t.kind === 'state') {
        this.states.push(bytes.length === 0 ? 'offline' : verifyLockState(bytes, o.deviceKey, o.lockId));
      } else if (t.kind === 'revocation-ack') {
        this.revocationAcks.push(verifyRevocationAck(bytes, o.deviceKey, o.lockId).version);
      } else if (t.kind === 'time-request') {
        const { nonce } = verifyTimeRequest(bytes, o.deviceKey, o.lockId);
        this.timeRequests.push(nonce);
        if (this.answerTime === false) return;
        // [TANDEM-MQTT-12]: answered at once, not retained.
        void this.client.publishAsync(
          topicFor('beacon', o.lockId),
          Buffer.from(
            encodeTimeBeacon(
              { time: o.now(), nonce, lockId: o.lockId, accuracy: this.answerTime },
              o.issuer,
              o.issuerKid,
            ),
          ),
          { qos: 1 },
        );
      }
    } catch (e) {
      this.invalid.push(`${topic}: ${(e as Error).message}`);
    }
  }
}

/**
 * The lock's real MQTT client for `lock`, logging in as the harness's lock id, with short timers (real clock,
 * unref'd) so that tests do not wait on production intervals; `over` adds or overrides options.
 */
export function lockMqttClient(
  lock: Lock,
  url: string,
  password: string,
  over: Partial<LockMqttClientOptions> = {},
): LockMqttClient {
  return new LockMqttClient({
    lockId: LOCK,
    authority: lock.authority,
    outbox: lock.stores.outbox,
    issuerKey: lock.anchors.issuerKey,
    deviceKey: lock.device,
    url,
    username: LOCK,
    password,
    clock: new SystemClock({ unref: true }),
    backoff: { initialMs: 20, maxMs: 200 },
    pollMs: 20,
    ...over,
  });
}
