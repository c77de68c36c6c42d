/**
 * The {@link LockGattBackend} port over the lock runtime's {@link LockAuthority}, its outbox and its issuer
 * anchors: what the GATT service calls, in the runtime's own terms. The authority decides requests and takes
 * time beacons and revocation updates; this adapter adds what the GATT flow needs around it (SPEC §8): lock
 * info, the relay of outbox records and the latest revocation acknowledgement, and outbox acknowledgements
 * carried by a phone, which it verifies with the issuer's key before it lets the outbox drop anything
 * ([TANDEM-GATT-11], [TANDEM-MQTT-8]: the phone is not trusted).
 */
import type { AdvertisedFlags, Challenge, LockInfo, Result } from '../../../protocol/src/gatt.js';
import { MessageType } from '../../../protocol/src/gatt.js';
import type { PublicKey } from '../../../protocol/src/keys.js';
import { Status } from '../../../protocol/src/status.js';
import type { DeliveryResult, LockAuthority } from '../lock/lock-authority.js';
import type { Outbox } from '../store/outbox.js';
import { applyOutboxAck } from '../mqtt/outbox-ack.js';
import type { LockGattBackend, RelayItem } from './lock-gatt-backend.js';

/** Options of an {@link AuthorityBackend}. */
export interface AuthorityBackendOptions {
  /** The lock's decision maker. */
  readonly authority: Pick<
    LockAuthority,
    | 'lockId'
    | 'snapshot'
    | 'issueChallenge'
    | 'handleRequest'
    | 'applyTimeBeacon'
    | 'applyRevocationUpdate'
    | 'applyAnchorUpdate'
    | 'auditEvent'
  >;
  /** The outbox of signed alerts and audit records waiting for the cloud. */
  readonly outbox: Pick<Outbox, 'peek' | 'ack' | 'size' | 'ackedThrough' | 'epoch' | 'lastSeq'>;
  /** Issuer keys by kid (AnchorStore.issuerKey): only the issuer's signed ack clears the outbox. */
  readonly issuerKey: (kid: Uint8Array) => PublicKey | undefined;
  /** Reported in lock info ([TANDEM-GATT-10]): 1-32 printable ASCII characters without space. */
  readonly firmwareVersion: string;
  /** The lock's latest signed state report (§9.5) to relay, when the runtime keeps one. */
  readonly lockStateReport?: () => Uint8Array | undefined;
}

/** Outbox kinds as relay message types ([TANDEM-GATT-4]). */
const RELAY_TYPE_OF_KIND = { alert: MessageType.alert, audit: MessageType.auditRecord } as const;

/** Adapts a {@link LockAuthority} (and the outbox around it) to the GATT service's port. */
export class AuthorityBackend implements LockGattBackend {
  readonly lockId: string;
  private readonly options: AuthorityBackendOptions;
  /** The last revocation acknowledgement the authority signed: relayed until a newer one replaces it. */
  private latestAck: Uint8Array | undefined;
  /** The last anchor acknowledgement the authority signed ([TANDEM-ANCHOR-5]), relayed like `latestAck`. */
  private latestAnchorAck: Uint8Array | undefined;

  constructor(options: AuthorityBackendOptions) {
    this.options = options;
    this.lockId = options.authority.lockId;
  }

  lockInfo(): LockInfo {
    const s = this.options.authority.snapshot();
    return {
      lockId: s.lockId,
      firmwareVersion: this.options.firmwareVersion,
      revocationVersion: s.revocationVersion,
      timeFloor: s.timeFloor,
      uncertainty: s.uncertainty,
      state: s.state,
    };
  }

  issueChallenge(peer: string): Challenge {
    return this.options.authority.issueChallenge({ peer });
  }

  async handleRequest(peer: string, body: Uint8Array): Promise<Result> {
    const r = await this.options.authority.handleRequest(body, { peer });
    // LockResult.data (READ_AUDIT) has no field in the GATT result ([TANDEM-GATT-9]); it is not sent.
    return {
      status: r.status,
      answers: MessageType.unlockRequest,
      ...(r.command === undefined ? {} : { command: r.command }),
      state: r.state,
      lockTime: r.lockTime,
      ...(r.nonce === undefined ? {} : { nonce: r.nonce }),
    };
  }

  async deliver(peer: string, type: MessageType, body: Uint8Array): Promise<Result> {
    let status: Status;
    if (type === MessageType.timeBeacon) {
      status = (await this.options.authority.applyTimeBeacon(body, { peer })).status;
    } else if (type === MessageType.revocationUpdate) {
      const r: DeliveryResult = await this.options.authority.applyRevocationUpdate(body, { peer });
      if (r.ack !== undefined) this.latestAck = r.ack;
      status = r.status;
    } else if (type === MessageType.anchorUpdate) {
      // [TANDEM-ANCHOR-6]: a phone carries the issuer's new anchor to a lock that is offline from MQTT.
      const r: DeliveryResult = await this.options.authority.applyAnchorUpdate(body, { peer });
      if (r.ack !== undefined) this.latestAnchorAck = r.ack;
      status = r.status;
    } else if (type === MessageType.outboxAck) {
      status = await this.applyOutboxAck(peer, body);
    } else {
      status = Status.MALFORMED;
    }
    const s = this.options.authority.snapshot();
    return { status, answers: type, state: s.state, lockTime: s.time.earliest };
  }

  async pendingRelay(max: number): Promise<readonly RelayItem[]> {
    const items: RelayItem[] = this.options.outbox
      .peek(max)
      .map((e) => ({ type: RELAY_TYPE_OF_KIND[e.kind], body: e.payload }));
    if (this.latestAck !== undefined) items.push({ type: MessageType.revocationAck, body: this.latestAck });
    if (this.latestAnchorAck !== undefined)
      items.push({ type: MessageType.anchorAck, body: this.latestAnchorAck });
    const state = this.options.lockStateReport?.();
    if (state !== undefined) items.push({ type: MessageType.lockState, body: state });
    return items.slice(0, max);
  }

  lockTime(): number {
    return this.options.authority.snapshot().time.earliest;
  }

  advertisedFlags(): AdvertisedFlags {
    return {
      relayPending: this.options.outbox.size > 0,
      alarm: this.options.authority.snapshot().state === 'alarm',
    };
  }

  /** [TANDEM-MQTT-8], [TANDEM-MQTT-11]: the same rules as over MQTT (mqtt/outbox-ack.ts), refusals audited. */
  private applyOutboxAck(peer: string, body: Uint8Array): Promise<Status> {
    return applyOutboxAck(body, {
      outbox: this.options.outbox,
      issuerKey: this.options.issuerKey,
      lockId: this.lockId,
      audit: (event, status, from, detail) => this.options.authority.auditEvent(event, status, from, detail),
      peer,
    });
  }
}
