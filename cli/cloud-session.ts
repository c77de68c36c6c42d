/**
 * What the cloud commands (`login`, `logout`, `keys register`, `claim`, `locks`, `share`, `shares`,
 * `revoke --share`, `sync`) share: the `--session` option, opening gateway/'s session file and cloud client,
 * and one mapping of the client's coded errors to messages and exit codes (cli/README.md "Cloud commands").
 */
import type { CliStreams, OptionSpec, Parsed } from './args.js';
import { parseDuration, str } from './args.js';
import type { CloudClient } from '../gateway/src/cloud-client.js';

/**
 * Exit codes of the cloud commands: 0 done; 1 the cloud refused (its code and message are printed); 2 usage;
 * 3 the cloud cannot be reached, or the session file cannot be read or written; 4 log in (again) first.
 */
export const CLOUD_EXIT = { OK: 0, REFUSED: 1, USAGE: 2, UNREACHABLE: 3, LOGIN: 4 } as const;

/** `--session <file>`. */
export const SESSION_OPTION: OptionSpec = {
  type: 'string',
  value: '<file>',
  description:
    'the session file of `tandem login` (default $TANDEM_SESSION, else $XDG_CONFIG_HOME/tandem/session.json or ~/.config/tandem/session.json)',
};

/** `--timeout <duration>` of each HTTP request. */
export const HTTP_TIMEOUT_OPTION: OptionSpec = {
  type: 'string',
  value: '<duration>',
  description: 'how long each request to the cloud may take (default 15s)',
};

/** The session file path of these options. */
export async function sessionPath(p: Parsed): Promise<string> {
  const { defaultSessionPath } = await import('../gateway/src/session-store.js');
  return str(p, 'session') ?? defaultSessionPath();
}

/** Opens the session file and a client over it. */
export async function openClient(p: Parsed): Promise<CloudClient> {
  const { SessionStore } = await import('../gateway/src/session-store.js');
  const { CloudClient } = await import('../gateway/src/cloud-client.js');
  const session = await SessionStore.open(await sessionPath(p));
  const t = str(p, 'timeout');
  return new CloudClient({ session, timeoutSeconds: t === undefined ? 15 : parseDuration(t, 'timeout') });
}

/**
 * Runs `body`, printing a GatewayError as `<CODE>: <message>` with what to do, and returning its exit code.
 * Other errors (usage, bugs) go on to the dispatcher.
 */
export async function cloudGuard(streams: CliStreams, body: () => Promise<number>): Promise<number> {
  const { GatewayError } = await import('../gateway/src/errors.js');
  try {
    return await body();
  } catch (e) {
    if (!(e instanceof GatewayError)) throw e;
    streams.stderr.write(`${e.code}: ${e.message}\n`);
    switch (e.code) {
      case 'ERR_GW_OFFLINE':
        return CLOUD_EXIT.UNREACHABLE;
      case 'ERR_GW_UNAUTHORIZED':
      case 'ERR_GW_LOGIN':
        return CLOUD_EXIT.LOGIN;
      case 'ERR_GW_SESSION':
        return e.message.includes('not logged in') ? CLOUD_EXIT.LOGIN : CLOUD_EXIT.UNREACHABLE;
      case 'ERR_GW_CLOUD':
        if (e.temporary) streams.stderr.write('the cloud failed; trying again later may work.\n');
        return e.temporary ? CLOUD_EXIT.UNREACHABLE : CLOUD_EXIT.REFUSED;
      case 'ERR_GW_KEY_FILE':
        return CLOUD_EXIT.UNREACHABLE;
      default:
        return CLOUD_EXIT.REFUSED;
    }
  }
}
