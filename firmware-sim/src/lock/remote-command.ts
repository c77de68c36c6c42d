/**
 * A remote command from the cloud (SPEC.md §9.11, [TANDEM-RCMD-5]): verified with the lock's issuer anchors,
 * checked against its trusted time and the last sequence it accepted, the sequence stored durably, then the
 * same LOCK as the GATT command (`LockStateMachine.lock()`: releases the coil, relocks a closed latch, never
 * pulses the solenoid), audited, answered with a status. Only LOCK exists ([TANDEM-RCMD-2]): the decoded
 * command's type has no other value, and nothing here can reach `unlock()`.
 *
 * Refusals are never charged to any rate limiter or lockout: those protect the public BLE link, and a broken
 * bridge must not be able to pause riders ([TANDEM-MQTT-LINK]). Refusals up to the audience leave no audit
 * record (unsigned garbage must not fill the outbox); time and sequence refusals are audited.
 */
import { ProtocolError } from '../../../protocol/src/errors.js';
import type { PublicKey } from '../../../protocol/src/keys.js';
import { Command } from '../../../protocol/src/pop.js';
import {
  checkRemoteCommandSequence,
  checkRemoteCommandTime,
  verifyRemoteCommand,
} from '../../../protocol/src/remote-command.js';
import type { RemoteCommand } from '../../../protocol/src/remote-command.js';
import { Status } from '../../../protocol/src/status.js';
import type { ConfigStore } from '../store/config-store.js';
import type { AuditTrail } from './audit-trail.js';
import type { LockStateMachine } from './lock-state-machine.js';
import { messageOf } from './results.js';
import type { TrustedClock } from './trusted-clock.js';

/** Config store key of the last remote-command sequence the lock accepted ([TANDEM-RCMD-4]). */
export const REMOTE_SEQUENCE_KEY = 'remoteCommandSequence';

/** What running a remote command reads and changes of the lock. */
export interface RemoteCommandTarget {
  readonly lockId: string;
  /** Issuer anchors only: an owner key never signs a remote command. */
  readonly issuerKey: (kid: Uint8Array) => PublicKey | undefined;
  readonly config: Pick<ConfigStore, 'get' | 'set'>;
  readonly time: Pick<TrustedClock, 'bound'>;
  readonly sm: Pick<LockStateMachine, 'lock'>;
  readonly audit: Pick<AuditTrail, 'record'>;
  /** True while another command holds the mechanism (the authority's own flag, or the state machine's). */
  busy(): boolean;
  /** Holds the mechanism for the LOCK, so that no BLE command interleaves; released by the returned function. */
  claim(): () => void;
}

/** The outcome of one remote command. */
export interface RemoteCommandResult {
  readonly status: Status;
  /** The verified command, when it got that far. */
  readonly command?: RemoteCommand;
  /** Why it was refused, for the log. */
  readonly message?: string;
}

/** The last sequence accepted: 0 before any ([TANDEM-RCMD-4]). A value that is not a count is treated as 0. */
export function lastRemoteSequence(config: Pick<ConfigStore, 'get'>): number {
  const v = config.get(REMOTE_SEQUENCE_KEY);
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0;
}

/** Runs one remote command (module comment). Never rejects. */
export async function runRemoteCommand(
  t: RemoteCommandTarget,
  bytes: Uint8Array,
  peer: string,
): Promise<RemoteCommandResult> {
  let command: RemoteCommand;
  try {
    // Structure, LOCK only, issuer kid, signature, then the audience ([TANDEM-RCMD-5]).
    command = verifyRemoteCommand(bytes, t.issuerKey, t.lockId);
  } catch (error) {
    return { status: statusOf(error), message: messageOf(error) };
  }
  const bound = t.time.bound();
  const audited = async (status: Status, acted: boolean, message?: string): Promise<RemoteCommandResult> => {
    await t.audit.record(
      {
        status,
        kind: 'request',
        peer,
        time: bound.earliest,
        command: Command.LOCK,
        detail: new Map([['remote_seq', command.sequence]]),
      },
      acted,
    );
    return { status, command, ...(message === undefined ? {} : { message }) };
  };
  try {
    checkRemoteCommandTime(command, bound);
    checkRemoteCommandSequence(command, lastRemoteSequence(t.config));
  } catch (error) {
    return audited(statusOf(error), false, messageOf(error));
  }
  try {
    // Durable BEFORE acting ([TANDEM-RCMD-4]): a power cut after this spends the number, never lets it act twice.
    await t.config.set(REMOTE_SEQUENCE_KEY, command.sequence);
  } catch (error) {
    return audited(Status.FAULT, false, `the sequence could not be stored: ${messageOf(error)}`);
  }
  if (t.busy()) return audited(Status.BUSY, false, 'another command is acting');
  const release = t.claim();
  let state;
  try {
    state = await t.sm.lock();
  } catch (error) {
    return audited(Status.FAULT, true, messageOf(error));
  } finally {
    release();
  }
  if (state === 'busy') return audited(Status.BUSY, false, 'the mechanism is busy');
  if (state === 'fault') return audited(Status.FAULT, true, 'hardware fault');
  return audited(Status.OK, true);
}

function statusOf(error: unknown): Status {
  return error instanceof ProtocolError ? error.status : Status.FAULT;
}
