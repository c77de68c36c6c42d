/**
 * The answer to a request ({@link LockResult}), built the same way by the authority and its command handlers:
 * the lock's state and time as they are now, read so that a failing state machine or clock still gives an
 * answer (FAULT state, the widest time bound) and never an exception.
 */
import type { TimeBound } from '../../../protocol/src/chain.js';
import type { LockState } from '../../../protocol/src/gatt.js';
import { Status } from '../../../protocol/src/status.js';
import type { Attempt, LockResult } from './authority-types.js';
import { Refusal } from './decision.js';
import type { LockStateMachine } from './lock-state-machine.js';
import type { TrustedClock } from './trusted-clock.js';

/** Builds results from the lock's state and trusted time (module comment). */
export class Results {
  readonly #sm: Pick<LockStateMachine, 'reportedState'>;
  readonly #time: Pick<TrustedClock, 'bound'>;

  constructor(sm: Pick<LockStateMachine, 'reportedState'>, time: Pick<TrustedClock, 'bound'>) {
    this.#sm = sm;
    this.#time = time;
  }

  /**
   * `mayHaveActed` counts only for OK, JAMMED and FAULT ([TANDEM-STATUS-3]): every other status is a refusal
   * and nothing was done.
   */
  of(status: Status, attempt: Attempt, mayHaveActed: boolean, message?: string): LockResult {
    const r = attempt.request;
    return {
      status,
      mayHaveActed:
        status === Status.OK || status === Status.JAMMED || status === Status.FAULT ? mayHaveActed : false,
      state: this.state(),
      lockTime: this.bound().earliest,
      ...(r === undefined ? {} : { command: r.command, nonce: r.nonce }),
      ...(message === undefined ? {} : { message }),
    };
  }

  /** The state as reported on BLE and MQTT; 'fault' when the state machine cannot say. */
  state(): LockState {
    try {
      return this.#sm.reportedState;
    } catch {
      return 'fault';
    }
  }

  /** The trusted time bound; the widest one when the clock cannot say. */
  bound(): TimeBound {
    try {
      return this.#time.bound();
    } catch {
      return { earliest: 0, latest: 0xffff_ffff };
    }
  }
}

/** The message of a refusal or failure, for logs and the CLI. */
export function messageOf(error: unknown): string {
  if (error instanceof Refusal) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}
