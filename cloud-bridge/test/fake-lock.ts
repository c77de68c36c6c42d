/**
 * A minimal lock-side MQTT publisher for the cloud's tests: signs alerts, audit records, state reports,
 * time requests and revocation acknowledgements with `protocol/` functions and keeps an outbox until the
 * issuer-signed acknowledgement covers it ([TANDEM-MQTT-8]). The real lock client is firmware-sim's.
 */
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import type { PrivateKey, PublicKey } from '../../protocol/src/keys.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import type { AlertKind, OutboxAck } from '../../protocol/src/mqtt.js';
import {
  AUDIT_GENESIS_HASH,
  auditRecordHash,
  encodeAlert,
  encodeAuditRecord,
  encodeLockState,
  encodeTimeRequest,
  topicFor,
  verifyOutboxAck,
} from '../../protocol/src/mqtt.js';
import { Status } from '../../protocol/src/status.js';
import { encodeRevocationAck } from '../../protocol/src/revocation.js';
import { generatePassword, hashPassword } from '../src/credentials.js';
import type { CloudStore } from '../src/store/types.js';

export class FakeLock {
  readonly deviceKey: PrivateKey = generateKeyPair('EdDSA');
  readonly password = generatePassword();
  epoch = 7;
  sequence = 0;
  private lastAuditHash: Uint8Array = AUDIT_GENESIS_HASH;
  /** Unacknowledged records, by sequence. */
  readonly outbox = new Map<number, { kind: 'alert' | 'audit'; bytes: Uint8Array }>();
  readonly acks: OutboxAck[] = [];
  readonly received: { topic: string; payload: Buffer }[] = [];
  client: MqttClient | undefined;

  constructor(
    readonly lockId: string,
    private readonly issuerKey?: PublicKey,
  ) {}

  /** Registers this lock (device key and password record) in `store`. */
  async register(store: CloudStore): Promise<void> {
    await store.registerLock({
      lockId: this.lockId,
      deviceKey: this.deviceKey.publicKey.raw,
      passwordHash: hashPassword(this.password),
      registeredAt: Date.now(),
    });
  }

  /** Connects to `url` as this lock and subscribes to its cloud → lock topics. */
  async connect(url: string, options: { password?: string; subscribe?: boolean } = {}): Promise<MqttClient> {
    const client = await mqtt.connectAsync(url, {
      username: this.lockId,
      password: options.password ?? this.password,
      clientId: `lock-${this.lockId}`,
      reconnectPeriod: 200,
      connectTimeout: 5_000,
    });
    client.on('message', (topic, payload) => {
      this.received.push({ topic, payload });
      if (topic === topicFor('outbox-ack', this.lockId) && this.issuerKey !== undefined) {
        const ack = verifyOutboxAck(payload, () => this.issuerKey, this.lockId);
        this.acks.push(ack);
        if (ack.epoch === this.epoch)
          for (const s of [...this.outbox.keys()]) if (s <= ack.sequence) this.outbox.delete(s);
      }
    });
    if (options.subscribe !== false) {
      await client.subscribeAsync(
        [
          topicFor('revocation', this.lockId),
          topicFor('outbox-ack', this.lockId),
          topicFor('beacon', this.lockId),
          'tandem/v1/time',
        ],
        { qos: 1 },
      );
    }
    this.client = client;
    return client;
  }

  alert(kind: AlertKind = 'moved', key: PrivateKey = this.deviceKey): Uint8Array {
    const sequence = ++this.sequence;
    const bytes = encodeAlert(
      {
        lockId: this.lockId,
        sequence,
        epoch: this.epoch,
        time: 1_800_000_000 + sequence,
        kind,
        detail: new Map([['g', 3]]),
      },
      key,
    );
    this.outbox.set(sequence, { kind: 'alert', bytes });
    return bytes;
  }

  audit(event = 'unlock', previousHash?: Uint8Array): Uint8Array {
    const sequence = ++this.sequence;
    const bytes = encodeAuditRecord(
      {
        lockId: this.lockId,
        sequence,
        epoch: this.epoch,
        time: 1_800_000_000 + sequence,
        previousHash: previousHash ?? this.lastAuditHash,
        event,
        status: Status.OK,
        detail: new Map(),
      },
      this.deviceKey,
    );
    this.lastAuditHash = auditRecordHash(bytes);
    this.outbox.set(sequence, { kind: 'audit', bytes });
    return bytes;
  }

  state(): Uint8Array {
    return encodeLockState(
      {
        lockId: this.lockId,
        state: 'locked',
        time: 1_800_000_000,
        uncertainty: null,
        revocationVersion: 0,
        outboxEpoch: this.epoch,
        outboxSequence: this.sequence,
      },
      this.deviceKey,
    );
  }

  timeRequest(nonce: Uint8Array = randomBytes(16)): { bytes: Uint8Array; nonce: Uint8Array } {
    return { bytes: encodeTimeRequest({ lockId: this.lockId, nonce }, this.deviceKey), nonce };
  }

  revocationAck(version: number): Uint8Array {
    return encodeRevocationAck({ lockId: this.lockId, version, lockTime: 1_800_000_100 }, this.deviceKey);
  }

  /** Starts a new outbox epoch, as after a storage reset ([TANDEM-MQTT-11]). */
  newEpoch(epoch: number): void {
    this.epoch = epoch;
    this.sequence = 0;
    this.outbox.clear();
  }

  async publish(
    kind: 'alert' | 'audit' | 'state' | 'time-request' | 'revocation-ack',
    bytes: Uint8Array,
    lockId = this.lockId,
  ): Promise<void> {
    await this.client!.publishAsync(topicFor(kind, lockId), Buffer.from(bytes), {
      qos: 1,
      retain: kind === 'state' || kind === 'revocation-ack',
    });
  }

  /** Publishes every record still in the outbox, in order (what a lock does on each connection). */
  async flushOutbox(): Promise<void> {
    for (const [, r] of [...this.outbox].sort((a, b) => a[0] - b[0])) await this.publish(r.kind, r.bytes);
  }

  async close(): Promise<void> {
    await this.client?.endAsync(true);
  }
}

/** Waits until `check` holds, polling every 20 ms at most `tries` times. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  tries = 500,
): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}
