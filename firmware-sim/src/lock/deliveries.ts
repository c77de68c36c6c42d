/**
 * What phones and the cloud deliver to the lock besides requests: revocation updates (SPEC.md §6), issuer
 * anchor updates (SPEC.md §6.6) and time beacons (SPEC.md §7). Each is verified with the issuer anchors, applied, audited, and answered with a
 * {@link DeliveryResult}; a refusal is charged to the peer's rate like a refused request. Never rejects.
 */
import {
  applyAnchorUpdate as applyAnchorRules,
  encodeAnchorAck,
  verifyAnchorUpdate,
} from '../../../protocol/src/anchor-update.js';
import { ProtocolError } from '../../../protocol/src/errors.js';
import type { PrivateKey } from '../../../protocol/src/keys.js';
import { encodeRevocationAck, verifyRevocationUpdate } from '../../../protocol/src/revocation.js';
import { Status } from '../../../protocol/src/status.js';
import { verifyTimeBeacon } from '../../../protocol/src/time-beacon.js';
import { isStoreError } from '../store/errors.js';
import type { AuditTrail, TrailEntry } from './audit-trail.js';
import type { AuthorityStores, DeliveryResult, Emit } from './authority-types.js';
import type { ChainCache } from './chain-cache.js';
import type { ChallengeBook } from './challenges.js';
import { Refusal, statusOf, tokenStateId } from './decision.js';
import type { AnchorStore } from './management.js';
import type { RateLimiter } from './rate-limiter.js';
import { messageOf } from './results.js';
import type { TrustedClock } from './trusted-clock.js';

/** What a delivery reads and changes of the lock. */
export interface DeliveryTarget {
  readonly lockId: string;
  readonly anchors: Pick<AnchorStore, 'issuerKey' | 'list' | 'lookup' | 'state' | 'replaceState' | 'version'>;
  /** Verified chains kept for `chainRef`: emptied when an anchor changes. */
  readonly cache: Pick<ChainCache, 'clear'>;
  readonly stores: Pick<AuthorityStores, 'revocations' | 'useCounters'>;
  readonly limiter: Pick<RateLimiter, 'check' | 'refused'>;
  readonly time: Pick<TrustedClock, 'bound' | 'applyBeacon' | 'floor'>;
  /** Recent nonces: a beacon answering one anchors the time bound. */
  readonly challenges: Pick<ChallengeBook, 'recent'>;
  /** Signs revocation and anchor acknowledgements ([TANDEM-REV-9], [TANDEM-ANCHOR-5]). */
  readonly deviceKey: PrivateKey;
  readonly audit: Pick<AuditTrail, 'record'>;
  readonly emit: Emit;
}

/**
 * What every delivery shares: the peer's rate first, then `work`; a refusal (any status but FAULT) is charged
 * to the peer like a refused request, and `held` says what the answer reports of the lock's state after one.
 * `audit` gives the entry to record for the answer, or undefined for none. Never rejects.
 */
async function deliver(
  t: DeliveryTarget,
  peer: string,
  work: () => Promise<DeliveryResult>,
  held: () => Partial<DeliveryResult>,
  audit: (result: DeliveryResult) => TrailEntry | undefined,
): Promise<DeliveryResult> {
  const limited = t.limiter.check(peer);
  if (limited.limited) return { status: Status.RATE_LIMITED, message: 'rate limited' };
  let result: DeliveryResult;
  try {
    result = await work();
  } catch (error) {
    const status = deliveryStatus(error);
    result = { status, ...held(), message: messageOf(error) };
    if (status !== Status.FAULT) t.limiter.refused(peer);
  }
  const entry = audit(result);
  if (entry !== undefined) await t.audit.record(entry);
  return result;
}

/**
 * A revocation update (SPEC.md §6): verified with the issuer anchors, applied to the revocation store (never
 * backwards: REVOCATION_ROLLBACK; a delta on another base: REVOCATION_STALE), acknowledged with a signed ack.
 * Re-delivery of the version held is acknowledged again.
 */
export function applyRevocationUpdate(
  t: DeliveryTarget,
  bytes: Uint8Array,
  peer: string,
): Promise<DeliveryResult> {
  const revocations = t.stores.revocations;
  let offered: number | undefined;
  return deliver(
    t,
    peer,
    async () => {
      const update = verifyRevocationUpdate(bytes, t.anchors.issuerKey, t.lockId);
      offered = update.version;
      const held = revocations.version;
      if (update.version < held) {
        throw new Refusal(
          Status.REVOCATION_ROLLBACK,
          `version ${update.version} is older than the held ${held}`,
        );
      }
      if (update.version > held) {
        // [TANDEM-HOLD-1]: an acknowledged update is held entirely. Nothing is dropped against the clock on
        // the way in (a clock running ahead would drop live entries); a list the store cannot hold is refused
        // (TOO_LARGE) and nothing is acknowledged. Expired entries go later, by the persisted floor only.
        const add = update.added.map((e) => ({ id: e.id, exp: e.exp }));
        if (update.kind === 'full') {
          await revocations.replace(update.version, add);
        } else {
          if (update.baseVersion !== held) {
            throw new Refusal(
              Status.REVOCATION_STALE,
              `delta on version ${String(update.baseVersion)}, the lock holds ${held}: send a full update`,
            );
          }
          await revocations.applyDelta({
            baseVersion: held,
            version: update.version,
            add,
            remove: update.removed,
          });
        }
        t.emit({ type: 'revocation', version: update.version });
        await freeRevokedRoots(
          t,
          update.added.map((e) => e.id),
        );
      }
      const version = revocations.version;
      const ack = encodeRevocationAck(
        { lockId: t.lockId, version, lockTime: t.time.bound().earliest },
        t.deviceKey,
      );
      return { status: Status.OK, ack, version };
    },
    () => ({ version: revocations.version }),
    (result) => ({
      status: result.status,
      kind: 'revocation',
      peer,
      ...(offered === undefined ? {} : { version: offered }),
    }),
  );
}

/**
 * An anchor update delivered over BLE or MQTT (SPEC.md §6.6): verified with the issuer anchors only
 * ([TANDEM-ANCHOR-2]), applied by the pure rules of `applyAnchorUpdate` and stored in one atomic write
 * ([TANDEM-ANCHOR-3], [TANDEM-ANCHOR-4]), then acknowledged with a signed anchor ack ([TANDEM-ANCHOR-5]).
 * A re-delivery of the version held is acknowledged again without change. The chain cache is emptied when
 * an anchor changed: a chain verified under a removed key must not be accepted by reference.
 */
export function applyAnchorUpdate(
  t: DeliveryTarget,
  bytes: Uint8Array,
  peer: string,
): Promise<DeliveryResult> {
  let offered: number | undefined;
  let redelivered = false;
  return deliver(
    t,
    peer,
    async () => {
      const verified = verifyAnchorUpdate(bytes, t.anchors.issuerKey, t.lockId);
      offered = verified.update.version;
      const applied = applyAnchorRules(t.anchors.state(), verified);
      redelivered = applied.state.version === t.anchors.version && !applied.changed;
      if (!redelivered) {
        await t.anchors.replaceState(applied.state);
        t.cache.clear();
        t.emit({ type: 'anchors-changed' });
      }
      const version = t.anchors.version;
      const ack = encodeAnchorAck(
        { lockId: t.lockId, version, lockTime: t.time.bound().earliest },
        t.deviceKey,
      );
      return { status: Status.OK, ack, version };
    },
    () => ({ version: t.anchors.version }),
    // A re-delivery (a phone carries the update until the cloud has the lock's ack) is not audited again.
    (result) =>
      redelivered
        ? undefined
        : {
            status: result.status,
            kind: 'event',
            peer,
            event: result.status === Status.OK ? 'anchor-applied' : 'anchor-refused',
            ...(offered === undefined ? {} : { version: offered }),
          },
  );
}

/**
 * A time beacon (SPEC.md §7): verified with the issuer anchors; a beacon answering one of this lock's recent
 * nonces within the relay limit anchors the trusted bound, any other raises the floor only. Use counters and
 * revocation entries of tokens expired before the new floor are pruned.
 */
export async function applyTimeBeacon(
  t: DeliveryTarget,
  bytes: Uint8Array,
  peer: string,
): Promise<DeliveryResult> {
  const result = await deliver(
    t,
    peer,
    async () => {
      const beacon = verifyTimeBeacon(bytes, t.anchors.issuerKey, t.lockId);
      const issued = beacon.nonce === undefined ? undefined : t.challenges.recent(beacon.nonce);
      const used = await t.time.applyBeacon(
        beacon,
        issued === undefined ? undefined : { nonce: issued.nonce, issuedAtMs: issued.issuedAtMs },
      );
      return { status: Status.OK, beacon: used };
    },
    () => ({}),
    (r) => ({ status: r.status, kind: 'time', peer }),
  );
  if (result.status === Status.OK) await prune(t);
  return result;
}

/** [TANDEM-HOLD-2]: expired entries go by the persisted floor only, never a later bound. */
async function prune(t: DeliveryTarget): Promise<void> {
  const floor = t.time.floor;
  try {
    await t.stores.useCounters.prune(floor);
    await t.stores.revocations.prune(floor);
  } catch (error) {
    t.emit({ type: 'store-error', what: 'prune', error });
  }
}

/**
 * [TANDEM-USES-3]: revoking a root frees the use counters its chains hold. A revocation id is a `cti` as
 * its signer wrote it, and roots are signed by trust anchors, so each id is tried under every anchor key.
 * A failure here is reported and changes nothing of the acknowledged update.
 */
async function freeRevokedRoots(t: DeliveryTarget, ids: readonly Uint8Array[]): Promise<void> {
  const { anchors } = t;
  const keys = anchors
    .list()
    .map((a) => anchors.lookup(a.kid)?.key)
    .filter((k) => k !== undefined);
  const useCounters = t.stores.useCounters;
  const groups: Uint8Array[] = [];
  for (const id of ids) {
    for (const key of keys) {
      const g = tokenStateId(key, id);
      if (useCounters.groupSize(g) > 0) groups.push(g);
    }
  }
  if (groups.length === 0) return;
  try {
    await useCounters.dropGroups(groups);
  } catch (error) {
    t.emit({ type: 'store-error', what: 'use-counters', error });
  }
}

/** Status of a failed delivery. */
function deliveryStatus(error: unknown): Status {
  if (error instanceof Refusal || error instanceof ProtocolError) return statusOf(error);
  if (isStoreError(error, 'ERR_STORE_STALE_VERSION')) return Status.REVOCATION_ROLLBACK;
  if (isStoreError(error, 'ERR_STORE_BASE_MISMATCH')) return Status.REVOCATION_STALE;
  if (isStoreError(error, 'ERR_STORE_FULL')) return Status.TOO_LARGE;
  return Status.FAULT;
}
