/**
 * The commands ([TANDEM-POP-5]) as a table, one small handler each, as vehicle-command keeps its commands:
 * `precheck` is a refusal of step 12 that depends on the lock's state, checked before a use is counted;
 * `run` acts. Handlers see only the {@link CommandTarget}, never the authority.
 */
import type { CborValue } from '../../../protocol/src/cbor.js';
import { encode } from '../../../protocol/src/cbor.js';
import { Command } from '../../../protocol/src/pop.js';
import { Status } from '../../../protocol/src/status.js';
import { auditRecordCbor } from './audit.js';
import type { Attempt, AuthorityStores, Emit, LockResult } from './authority-types.js';
import type { ChainCache } from './chain-cache.js';
import { Refusal } from './decision.js';
import type { LockStateMachine } from './lock-state-machine.js';
import type { AnchorStore, CommandArgs } from './management.js';
import { CONFIG_STORE_KEY } from './management.js';
import { messageOf } from './results.js';
import type { Results } from './results.js';

const READ_AUDIT_MAX_BYTES = 8 * 1024;

/** What the command handlers act on. */
export interface CommandTarget {
  readonly sm: Pick<LockStateMachine, 'unlock' | 'lock'>;
  readonly anchors: Pick<AnchorStore, 'has' | 'checkRemove' | 'add' | 'remove'>;
  readonly stores: Pick<AuthorityStores, 'config' | 'audit'>;
  /** Emptied whenever an anchor changes: chains verified with a removed key must not be used by reference. */
  readonly cache: Pick<ChainCache, 'clear'>;
  readonly results: Pick<Results, 'of'>;
  readonly emit: Emit;
  /** Reads the configuration again after SET_CONFIG stored its changes, and applies it. */
  reloadConfig(): void;
  /** CLEAR_LOCKOUT: ends lockouts, back-offs and safe mode. */
  clearLockout(): Promise<void>;
}

/** The decoded arguments of command `C`. */
export type ArgsOf<C extends Command> = ArgsIn<CommandArgs, C>;
type ArgsIn<A, C> = A extends { readonly command: infer K } ? (C extends K ? A : never) : never;

/** One row of the command table: a state precheck (refusal of step 12) and the action. */
export interface CommandHandler<A extends CommandArgs> {
  readonly precheck?: (args: A) => Refusal | undefined;
  readonly run: (args: A, attempt: Attempt) => Promise<LockResult>;
}

/** One handler per command. */
export type CommandTable = { readonly [C in Command]: CommandHandler<ArgsOf<C>> };

/** The handler of `args.command`, typed for any command's arguments. */
export function handlerOf(table: CommandTable, args: CommandArgs): CommandHandler<CommandArgs> {
  return table[args.command] as CommandHandler<CommandArgs>;
}

/** The command table over `t` (module comment). */
export function commandTable(t: CommandTarget): CommandTable {
  const result = t.results.of.bind(t.results);
  const addAnchor = {
    precheck: (a: ArgsOf<Command.ADD_ANCHOR>) =>
      t.anchors.has(a.anchor.kid)
        ? new Refusal(Status.MALFORMED, 'an anchor with this kid exists; remove it first')
        : undefined,
    run: async (a: ArgsOf<Command.ADD_ANCHOR>, attempt: Attempt) => {
      await t.anchors.add(a.anchor);
      t.cache.clear();
      t.emit({ type: 'anchors-changed' });
      return result(Status.OK, attempt, true);
    },
  };
  const removeAnchor = {
    precheck: (a: ArgsOf<Command.REMOVE_ANCHOR>) => {
      const why = t.anchors.checkRemove(a.kid, a.command === Command.REMOVE_OWNER_KEY);
      if (why === 'last-issuer') return new Refusal(Status.MALFORMED, 'cannot remove the last issuer anchor');
      if (why === 'unknown-kid') return new Refusal(Status.MALFORMED, 'no anchor has this kid');
      if (why === 'not-owner')
        return new Refusal(Status.MALFORMED, 'this kid names an issuer, not an owner key');
      return undefined;
    },
    run: async (a: ArgsOf<Command.REMOVE_ANCHOR>, attempt: Attempt) => {
      const why = await t.anchors.remove(a.kid, a.command === Command.REMOVE_OWNER_KEY);
      if (why !== undefined) return result(Status.MALFORMED, attempt, false, why);
      // Chains verified with the removed key must not be accepted by reference any more.
      t.cache.clear();
      t.emit({ type: 'anchors-changed' });
      return result(Status.OK, attempt, true);
    },
  };
  return {
    [Command.UNLOCK]: {
      run: async (_, attempt) => {
        const o = await t.sm.unlock();
        switch (o.kind) {
          case 'opened':
            return result(Status.OK, attempt, o.pulsed);
          case 'jammed':
            return result(Status.JAMMED, attempt, true, 'the latch did not move');
          case 'busy':
            return result(Status.BUSY, attempt, false, 'the mechanism is busy');
          case 'safe-mode':
            return result(Status.SAFE_MODE, attempt, false, 'safe mode');
          case 'fault':
            return result(
              Status.FAULT,
              attempt,
              o.pulsed,
              o.error === undefined ? 'hardware fault' : messageOf(o.error),
            );
        }
      },
    },
    [Command.LOCK]: {
      run: async (_, attempt) => {
        const s = await t.sm.lock();
        return s === 'busy'
          ? result(Status.BUSY, attempt, false, 'the mechanism is busy')
          : result(s === 'fault' ? Status.FAULT : Status.OK, attempt, true);
      },
    },
    [Command.STATUS]: { run: (_, attempt) => Promise.resolve(result(Status.OK, attempt, false)) },
    [Command.ADD_ANCHOR]: addAnchor,
    [Command.ADD_OWNER_KEY]: addAnchor,
    [Command.REMOVE_ANCHOR]: removeAnchor,
    [Command.REMOVE_OWNER_KEY]: removeAnchor,
    [Command.SET_CONFIG]: {
      run: async (a, attempt) => {
        const stored = t.stores.config.get(CONFIG_STORE_KEY);
        const prev =
          stored !== null &&
          typeof stored === 'object' &&
          !Array.isArray(stored) &&
          !(stored instanceof Uint8Array)
            ? stored
            : {};
        await t.stores.config.set(CONFIG_STORE_KEY, { ...prev, ...a.changes });
        t.reloadConfig();
        return result(Status.OK, attempt, true);
      },
    },
    [Command.READ_AUDIT]: {
      run: (a, attempt) => {
        const out: CborValue[] = [];
        let size = 0;
        for (const r of t.stores.audit.since(a.fromSeq - 1)) {
          if (out.length >= a.max) break;
          size += r.payload.length + 16;
          if (size > READ_AUDIT_MAX_BYTES && out.length > 0) break;
          out.push(auditRecordCbor(r));
        }
        return Promise.resolve({ ...result(Status.OK, attempt, false), data: encode(out) });
      },
    },
    [Command.CLEAR_LOCKOUT]: {
      run: async (_, attempt) => {
        await t.clearLockout();
        return result(Status.OK, attempt, true);
      },
    },
  };
}
