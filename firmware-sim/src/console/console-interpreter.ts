/**
 * The serial console's command interpreter (provisioning and diagnostics). The transport (`SerialConsole`
 * in `hardware/`) delivers bounded lines; this module parses them, checks every argument, enforces who may
 * run what, and answers one reply per line:
 *
 *     OK <text>
 *     ERR <CODE> <message naming the argument at fault>
 *
 * A malformed or unauthorised line changes nothing. Provisioning commands close for good once the lock is
 * claimed by its owner (ARCHITECTURE.md, flow 1); simulation commands exist only with simulated hardware.
 */
import createDebug from 'debug';
import type { SerialConsole } from '../../../hardware/src/interfaces.js';
import { TandemError } from '../../../protocol/src/errors.js';

const debug = createDebug('tandem:lock:console');

/** Codes of console refusals. */
export type ConsoleErrorCode =
  | 'ERR_CONSOLE_UNKNOWN_COMMAND'
  | 'ERR_CONSOLE_USAGE'
  | 'ERR_CONSOLE_CLOSED'
  | 'ERR_CONSOLE_SIMULATION_ONLY'
  | 'ERR_CONSOLE_FAILED';

/** A refusal a command handler may throw; its message is shown to the operator. */
export class ConsoleError extends TandemError {
  readonly code: ConsoleErrorCode;
  constructor(code: ConsoleErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConsoleError';
    this.code = code;
  }
}

/** One argument: its name (for messages and help) and the pattern it must match in full. */
export interface ArgSpec {
  readonly name: string;
  readonly pattern: RegExp;
  /** What a valid value looks like, for the refusal message. */
  readonly expect: string;
  readonly optional?: boolean;
}

/** Who may run a command. */
export type CommandAccess = 'always' | 'unclaimed' | 'simulation';

/** One console command. */
export interface ConsoleCommand {
  /** Words that select the command, e.g. `provision anchor add`. */
  readonly name: string;
  readonly args: readonly ArgSpec[];
  readonly help: string;
  readonly access: CommandAccess;
  run(args: readonly string[]): Promise<string> | string;
}

/** Answer to one line. */
export interface ConsoleReply {
  readonly ok: boolean;
  readonly code?: ConsoleErrorCode;
  readonly text: string;
}

const PRINTABLE = /^[\x20-\x7e]*$/;

/** Common argument patterns. */
export const ARG = {
  hex: (name: string, min: number, max: number): ArgSpec => ({
    name,
    pattern: new RegExp(`^(?:[0-9a-f]{2}){${min},${max}}$`),
    expect: `${min === max ? min : `${min} to ${max}`} bytes in lower-case hex`,
  }),
  lockId: {
    name: 'lock-id',
    pattern: /^[a-z0-9][a-z0-9-]{0,31}$/,
    expect: 'a lock id: a-z, 0-9 and -, at most 32, e.g. lock-7f3a',
  },
  alg: { name: 'alg', pattern: /^(EdDSA|ES256)$/, expect: 'EdDSA or ES256' },
  name: { name: 'name', pattern: /^[A-Za-z0-9._@-]{1,64}$/, expect: '1 to 64 of A-Z a-z 0-9 . _ @ -' },
  uint: (name: string, max: number): ArgSpec => ({
    name,
    pattern: /^(0|[1-9][0-9]{0,9})$/,
    expect: `an integer from 0 to ${max}`,
  }),
  oneOf: (name: string, values: readonly string[]): ArgSpec => ({
    name,
    pattern: new RegExp(`^(${values.map((v) => v.replace(/[-/\\^$*+?.()|[\]{}]/g, '\\$&')).join('|')})$`),
    expect: `one of ${values.join(', ')}`,
  }),
  url: {
    name: 'url',
    pattern: /^(mqtts?|wss?):\/\/[\x21-\x7e]{1,200}$/,
    expect: 'an mqtt://, mqtts://, ws:// or wss:// URL',
  },
  secret: {
    name: 'secret',
    pattern: /^[\x21-\x7e]{1,128}$/,
    expect: '1 to 128 printable characters without spaces',
  },
} as const;

/** Parses and runs console lines against a command table. */
export class ConsoleInterpreter {
  private readonly commands: ConsoleCommand[];

  constructor(
    commands: readonly ConsoleCommand[],
    private readonly context: { readonly isClaimed: () => boolean; readonly simulated: boolean },
  ) {
    // Longest names first, so that `provision anchor add` wins over `provision`.
    this.commands = [...commands].sort((a, b) => b.name.split(' ').length - a.name.split(' ').length);
  }

  /** Runs one line. Never throws. */
  async execute(line: string): Promise<ConsoleReply> {
    try {
      return { ok: true, text: await this.dispatch(line) };
    } catch (e) {
      if (e instanceof ConsoleError) return { ok: false, code: e.code, text: e.message };
      debug('command failed: %O', e);
      const code = (e as { code?: unknown }).code;
      return {
        ok: false,
        code: 'ERR_CONSOLE_FAILED',
        text: `${typeof code === 'string' ? code + ': ' : ''}${(e as Error).message ?? String(e)}`,
      };
    }
  }

  private async dispatch(line: string): Promise<string> {
    if (!PRINTABLE.test(line))
      throw new ConsoleError('ERR_CONSOLE_USAGE', 'line has non-printable or non-ASCII characters');
    const words = line
      .trim()
      .split(/\s+/)
      .filter((w) => w.length > 0);
    if (words.length === 0) return '';
    if (words[0] === 'help') return this.help();
    const cmd = this.commands.find((c) => {
      const n = c.name.split(' ');
      return n.length <= words.length && n.every((w, i) => words[i] === w);
    });
    if (!cmd) {
      throw new ConsoleError(
        'ERR_CONSOLE_UNKNOWN_COMMAND',
        `unknown command "${words.slice(0, 3).join(' ')}"; type help`,
      );
    }
    if (cmd.access === 'simulation' && !this.context.simulated) {
      throw new ConsoleError(
        'ERR_CONSOLE_SIMULATION_ONLY',
        `"${cmd.name}" exists only with simulated hardware (--simulate)`,
      );
    }
    if (cmd.access === 'unclaimed' && this.context.isClaimed()) {
      throw new ConsoleError(
        'ERR_CONSOLE_CLOSED',
        `provisioning is closed: the lock is claimed; the owner manages it with signed commands`,
      );
    }
    const args = words.slice(cmd.name.split(' ').length);
    const required = cmd.args.filter((a) => !a.optional).length;
    if (args.length < required || args.length > cmd.args.length) {
      throw new ConsoleError('ERR_CONSOLE_USAGE', `usage: ${usage(cmd)}`);
    }
    args.forEach((a, i) => {
      const spec = cmd.args[i]!;
      if (!spec.pattern.test(a))
        throw new ConsoleError('ERR_CONSOLE_USAGE', `<${spec.name}> must be ${spec.expect}`);
    });
    return cmd.run(args);
  }

  private help(): string {
    const visible = this.commands
      .filter((c) => c.access !== 'simulation' || this.context.simulated)
      .sort((a, b) => a.name.localeCompare(b.name));
    return visible.map((c) => `${usage(c).padEnd(58)} ${c.help}`).join('\n');
  }

  /** Serves a console: one reply per line, in order. Returns a function that detaches. */
  attach(console: SerialConsole): () => void {
    let chain = Promise.resolve();
    return console.onLine((line) => {
      chain = chain.then(async () => {
        const reply = await this.execute(line);
        const text = reply.ok ? `OK${reply.text ? ' ' + reply.text : ''}` : `ERR ${reply.code} ${reply.text}`;
        await console
          .write(text.replace(/\n/g, '\r\n') + '\r\n')
          .catch((e: unknown) => debug('write failed: %O', e));
      });
    });
  }
}

function usage(c: ConsoleCommand): string {
  return [c.name, ...c.args.map((a) => (a.optional ? `[${a.name}]` : `<${a.name}>`))].join(' ');
}
