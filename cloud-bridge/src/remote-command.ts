/**
 * Home Assistant's Lock button, made real ([TANDEM-HA-5], SPEC.md §9.11): the bridge reads Home Assistant's
 * command topic `tandem/ha/L/set` and, only for the payload `LOCK` and only while the owner has remote
 * locking enabled for L in the store at that moment, mints a remote command signed by the issuer (the next
 * sequence of L, drawn durably first, [TANDEM-RCMD-4]) and publishes it to `tandem/v1/lock/L/command`, QoS 1,
 * not retained ([TANDEM-RCMD-6]). Everything else (`UNLOCK`, any other payload, an unknown lock, remote
 * locking off, a store that cannot be read) is refused and logged, and nothing is published
 * ([TANDEM-RCMD-7]). There is no code path that makes an UNLOCK: the protocol's encoder refuses one
 * ([TANDEM-RCMD-2]).
 *
 * Nothing here is stored as a lock record: Home Assistant's message is a request, not evidence. What the
 * lock did comes back as its signed audit record and state ([TANDEM-HA-3]).
 */
import { isLockId } from '../../protocol/src/index.js';
import { topicFor } from '../../protocol/src/mqtt.js';
import { Command } from '../../protocol/src/pop.js';
import { encodeRemoteCommand } from '../../protocol/src/remote-command.js';
import { HA_STATE_ROOT } from './home-assistant.js';
import type { Issuer } from './issuer.js';
import type { LogSink } from './log.js';
import type { CloudStore } from './store/types.js';

/** The filter the bridge subscribes for Home Assistant's commands ([TANDEM-RCMD-7]). */
export const HA_COMMAND_FILTER = `${HA_STATE_ROOT}/+/set`;
/** The only payload acted upon: Home Assistant's `payload_lock` ([TANDEM-HA-2]). */
export const HA_LOCK_PAYLOAD = 'LOCK';
/** How far the validity window reaches on each side of the moment of signing, seconds ([TANDEM-RCMD-3]). */
export const REMOTE_COMMAND_HALF_WINDOW_S = 30;

const COMMAND_TOPIC = /^tandem\/ha\/([^/]*)\/set$/;

/** The lock id of a Home Assistant command topic, or undefined when `topic` is not one. */
export function haCommandLockId(topic: string): string | undefined {
  const m = COMMAND_TOPIC.exec(topic);
  return m !== null && isLockId(m[1]) ? m[1] : undefined;
}

/** True for a topic of Home Assistant's command form, `tandem/ha/<anything>/set` (valid lock id or not). */
export function isHaCommandTopic(topic: string): boolean {
  return COMMAND_TOPIC.test(topic);
}

/** What became of one Home Assistant command. */
export type RemoteCommandOutcome =
  | {
      readonly outcome: 'sent';
      readonly lockId: string;
      readonly sequence: number;
      readonly bytes: Uint8Array;
    }
  | { readonly outcome: 'refused'; readonly lockId: string | undefined; readonly reason: string };

/** Options of a {@link RemoteCommander}. */
export interface RemoteCommanderOptions {
  readonly store: Pick<CloudStore, 'getLock' | 'getLockSettings' | 'nextRemoteCommandSequence'>;
  /** The issuer's current key (it follows rotations, [TANDEM-ANCHOR-7]). */
  readonly issuer: () => Issuer;
  /** Publishes at QoS 1, not retained; resolves when the broker has it. */
  readonly publish: (topic: string, payload: Uint8Array) => Promise<void>;
  /** Unix milliseconds. */
  readonly now: () => number;
  readonly log: LogSink;
  /** Whether this bridge instance handles the lock (partitions); default all. */
  readonly owns?: (lockId: string) => boolean;
}

/** Turns Home Assistant's LOCK into signed remote commands (module comment). */
export class RemoteCommander {
  readonly #o: RemoteCommanderOptions;
  readonly #listeners = new Set<(o: RemoteCommandOutcome) => void>();
  /** One command at a time per lock, so that sequences are published in the order they were drawn. */
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(options: RemoteCommanderOptions) {
    this.#o = options;
  }

  /** Calls `listener` with each outcome; returns the function that removes it. */
  onCommand(listener: (o: RemoteCommandOutcome) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Handles one message on `tandem/ha/+/set`. Never rejects; resolves undefined for a lock this instance
   * does not own.
   */
  handle(
    topic: string,
    payload: Uint8Array,
    options: { readonly retained?: boolean } = {},
  ): Promise<RemoteCommandOutcome | undefined> {
    const lockId = haCommandLockId(topic);
    if (lockId !== undefined && this.#o.owns !== undefined && !this.#o.owns(lockId)) {
      return Promise.resolve(undefined);
    }
    const key = lockId ?? '';
    const run = (this.#queues.get(key) ?? Promise.resolve()).then(() =>
      this.#handle(lockId, topic, payload, options.retained === true),
    );
    const tail = run.catch(() => undefined);
    this.#queues.set(key, tail);
    void tail.then(() => {
      if (this.#queues.get(key) === tail) this.#queues.delete(key);
    });
    return run;
  }

  async #handle(
    lockId: string | undefined,
    topic: string,
    payload: Uint8Array,
    retained: boolean,
  ): Promise<RemoteCommandOutcome> {
    const refuse = (reason: string): RemoteCommandOutcome =>
      this.#done({ outcome: 'refused', lockId, reason });
    if (lockId === undefined) return refuse(`${JSON.stringify(topic.slice(0, 128))} does not name a lock id`);
    // A retained press would come back at every (re)subscription and relock the bike each time ([TANDEM-RCMD-7]).
    if (retained) return refuse('a retained message is an old press, not one made now');
    // Exactly the four bytes LOCK; UNLOCK above all is refused here, and could not be encoded anyway.
    const text = payload.length <= 16 ? new TextDecoder().decode(payload) : undefined;
    if (text !== HA_LOCK_PAYLOAD) {
      const shown = text === undefined ? `${payload.length} bytes` : JSON.stringify(text);
      return refuse(
        text === 'UNLOCK'
          ? 'UNLOCK is never sent to a lock: unlocking takes a rider token at the lock ([TANDEM-RCMD-2])'
          : `payload ${shown} is not ${HA_LOCK_PAYLOAD}`,
      );
    }
    const o = this.#o;
    try {
      if ((await o.store.getLock(lockId)) === undefined) return refuse('the cloud does not know this lock');
      // Read now, for this press: a setting turned off a second ago stops the next command ([TANDEM-RCMD-7]).
      if (!(await o.store.getLockSettings(lockId)).remoteLocking) {
        return refuse(
          'remote locking is off for this lock (PATCH /api/v1/locks/{id} {"remoteLocking": true})',
        );
      }
      const nowMs = o.now();
      // Durable before publishing: a crash after this loses a number, never repeats one ([TANDEM-RCMD-4]).
      const sequence = await o.store.nextRemoteCommandSequence(lockId, nowMs);
      const now = Math.floor(nowMs / 1000);
      const issuer = o.issuer();
      const bytes = encodeRemoteCommand(
        {
          lockId,
          command: Command.LOCK,
          sequence,
          issuedAt: now - REMOTE_COMMAND_HALF_WINDOW_S,
          expiry: now + REMOTE_COMMAND_HALF_WINDOW_S,
        },
        issuer.key,
        issuer.kid,
      );
      await o.publish(topicFor('command', lockId), bytes);
      o.log({
        level: 'info',
        source: 'bridge',
        event: 'remote lock sent',
        who: lockId,
        reason: `sequence ${sequence}`,
      });
      return this.#done({ outcome: 'sent', lockId, sequence, bytes });
    } catch (e) {
      return refuse(`not sent: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  #done(outcome: RemoteCommandOutcome): RemoteCommandOutcome {
    if (outcome.outcome === 'refused') {
      this.#o.log({
        level: 'warn',
        source: 'bridge',
        event: 'refused remote command',
        who: outcome.lockId,
        reason: outcome.reason,
      });
    }
    for (const l of this.#listeners) {
      try {
        l(outcome);
      } catch {
        // A listener's failure changes nothing of what was sent.
      }
    }
    return outcome;
  }
}
