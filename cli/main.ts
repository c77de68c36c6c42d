/**
 * `tandem`: the command-line dispatcher. Each command is a module imported only when it runs, so that
 * `tandem keys` never loads the CBOR stack and `tandem --help` loads nothing of the protocol: Node alone
 * takes over a second to start on a Pi Zero W. A later command is one more line in {@link COMMANDS}.
 *
 * Errors are printed here, once: `<CODE>: <message>`, with the wire status for protocol refusals; exit
 * codes are {@link EXIT} (cli/README.md).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CliError, EXIT } from './args.js';
import type { CliStreams, CommandModule } from './args.js';

interface CommandEntry {
  /** One line for `tandem --help`. */
  readonly summary: string;
  readonly load: () => Promise<CommandModule>;
}

/** The commands, each imported lazily. */
export const COMMANDS: Readonly<Record<string, CommandEntry>> = {
  keys: { summary: 'generate key pairs as JWK files', load: () => import('./keys.js') },
  token: { summary: 'mint, inspect and verify delegated access tokens', load: () => import('./token.js') },
  lock: { summary: 'run the lock (on the Pi, or --simulate)', load: () => import('./lock.js') },
  unlock: { summary: 'unlock a bike over BLE', load: async () => (await import('./unlock.js')).unlock },
  relock: { summary: 'lock a bike over BLE', load: async () => (await import('./unlock.js')).relock },
  status: { summary: "a lock's state over BLE", load: async () => (await import('./unlock.js')).status },
  'clear-lockout': {
    summary: 'the owner ends a lockout over BLE',
    load: async () => (await import('./unlock.js')).clearLockout,
  },
  beacon: {
    summary: 'sign a time beacon for a lock that does not know the time',
    load: () => import('./beacon.js'),
  },
  cloud: { summary: 'run the cloud: MQTT broker, bridge and store', load: () => import('./cloud.js') },
  revoke: {
    summary: 'revoke a share (--share) or a token on a lock (--token, via tandem cloud)',
    load: async () => (await import('./revoke.js')).revoke,
  },
  login: {
    summary: 'sign in to the cloud (device grant)',
    load: async () => (await import('./login.js')).login,
  },
  logout: {
    summary: 'revoke the session and forget it',
    load: async () => (await import('./login.js')).logout,
  },
  claim: {
    summary: "claim a lock with its console's receipt (owner)",
    load: async () => (await import('./share.js')).claim,
  },
  locks: {
    summary: "the owner's locks and their revocation acknowledgements",
    load: async () => (await import('./share.js')).locks,
  },
  'lock-settings': {
    summary: "show or change a lock's settings: remote locking for Home Assistant (owner)",
    load: async () => (await import('./share.js')).lockSettings,
  },
  share: {
    summary: 'share a lock with a rider (owner)',
    load: async () => (await import('./share.js')).share,
  },
  shares: {
    summary: "a lock's shares (owner), or the shares you hold",
    load: async () => (await import('./share.js')).shares,
  },
  sync: {
    summary: 'fetch delegations, upload relayed records, get what to carry',
    load: async () => (await import('./sync.js')).sync,
  },
  alerts: {
    summary: 'list theft alerts and owner events (via tandem cloud)',
    load: async () => (await import('./cloud.js')).alerts,
  },
  start: {
    summary: 'run the whole system: cloud, demo users, two simulated locks on a virtual radio (npm start)',
    load: () => import('./start.js'),
  },
  demo: {
    summary: 'run an offline walk-through: keys, token, unlock, refusals',
    load: () => import('./demo.js'),
  },
};

function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 3;
  return [
    'Usage: tandem <command> [options]',
    '',
    'Tandem: a shareable smart bike lock with offline-verifiable delegated tokens.',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`),
    '',
    'Options:',
    '  -h, --help      show this help; `tandem <command> --help` for a command',
    '  -v, --version   print the version',
    '',
    'Example:',
    '  tandem token inspect token.hex',
    '',
  ].join('\n');
}

// The version of package.json: two levels up from dist/cli/main.js, one from cli/main.ts.
function version(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === 'tandem' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Not at this level: try the next one.
    }
  }
  return 'unknown';
}

/** Runs `tandem` with `argv` (the arguments after the program name); resolves to the exit code. */
export async function main(argv: readonly string[], streams: CliStreams): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined) throw new CliError('ERR_USAGE', 'missing command');
    if (name === '--help' || name === '-h' || name === 'help') {
      streams.stdout.write(mainHelp());
      return EXIT.OK;
    }
    if (name === '--version' || name === '-v') {
      streams.stdout.write(`tandem ${version()}\n`);
      return EXIT.OK;
    }
    const entry = Object.prototype.hasOwnProperty.call(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (entry === undefined) {
      throw new CliError(
        'ERR_USAGE',
        name.startsWith('-')
          ? `unknown option ${name}`
          : `unknown command ${JSON.stringify(name)} (expected ${Object.keys(COMMANDS).join(', ')})`,
      );
    }
    const command = await entry.load();
    return await command.run(rest, streams);
  } catch (e) {
    return report(e, argv, streams);
  }
}

async function report(e: unknown, argv: readonly string[], streams: CliStreams): Promise<number> {
  if (e instanceof CliError) {
    streams.stderr.write(`${e.code}: ${e.message}\n`);
    if (e.code === 'ERR_USAGE')
      streams.stderr.write(`Run 'tandem ${helpTarget(e, argv)}--help' for usage.\n`);
    return e.exitCode;
  }
  // Loaded only on this path: a refusal is rare next to a successful command, and the dispatcher stays lean.
  const { ProtocolError } = await import('../protocol/src/errors.js');
  if (e instanceof ProtocolError) {
    const { Status, STATUS_MEANING } = await import('../protocol/src/status.js');
    const hex = `0x${e.status.toString(16).padStart(2, '0')}`;
    streams.stderr.write(`${e.code}: ${e.message}\n`);
    streams.stderr.write(`status ${Status[e.status]} (${hex}): ${STATUS_MEANING[e.status]}\n`);
    return EXIT.REFUSED;
  }
  streams.stderr.write(`ERR_INTERNAL: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return EXIT.INTERNAL;
}

// `token mint ` for a usage error inside `tandem token mint ...`; empty for the top level.
function helpTarget(e: CliError, argv: readonly string[]): string {
  if (e.command !== undefined) return `${e.command} `;
  const [name, sub] = argv;
  if (name === undefined || !Object.prototype.hasOwnProperty.call(COMMANDS, name)) return '';
  return sub !== undefined && /^[a-z]+$/.test(sub) ? `${name} ${sub} ` : `${name} `;
}

/** Runs with the process's arguments and streams; used by bin/tandem.js and when this file is run directly. */
export async function runProcess(): Promise<void> {
  process.exitCode = await main(process.argv.slice(2), {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
  });
}

// `node --import tsx cli/main.ts ...` (the tests, development) runs this file directly.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await runProcess();
