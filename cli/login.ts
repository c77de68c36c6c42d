/**
 * `tandem login`, `tandem logout` and `tandem keys register`: the rider's or owner's session with the cloud
 * (issue 10 part 6). Login is the OAuth 2.0 Device Authorization Grant (RFC 8628) through gateway/'s
 * CloudClient: the command prints where to go and which code to type, then polls at the interval the server
 * asked for (slower after `slow_down`, §3.5) until the user approves in a browser. Tokens go to the session
 * file, mode 0600.
 */
import { CliError, helpText, parse, req, str } from './args.js';
import type { CliStreams, CommandModule, CommandSpec } from './args.js';
import { CLOUD_EXIT, HTTP_TIMEOUT_OPTION, SESSION_OPTION, cloudGuard, openClient } from './cloud-session.js';

const LOGIN: CommandSpec = {
  name: 'login',
  maxPositionals: 0,
  summary:
    'Signs in to the Tandem cloud with the device authorization grant (RFC 8628): prints a URL and a code to ' +
    'approve in any browser, waits for the approval, and stores the tokens in the session file (mode 0600).',
  options: {
    cloud: {
      type: 'string',
      value: '<URL>',
      required: true,
      description: 'the cloud (its OpenID issuer), https, or http on 127.0.0.1 for a local `tandem cloud`',
    },
    session: SESSION_OPTION,
    timeout: HTTP_TIMEOUT_OPTION,
  },
  notes: [
    'Exit status: 0 logged in; 1 the cloud refused; 2 usage; 3 the cloud cannot be reached or the session file ' +
      'cannot be written; 4 the login was denied or the code expired.',
  ],
  examples: ['tandem login --cloud https://cloud.example', 'tandem login --cloud http://127.0.0.1:8080'],
};

const LOGOUT: CommandSpec = {
  name: 'logout',
  maxPositionals: 0,
  summary:
    'Revokes the session’s tokens at the cloud (RFC 7009; skipped when offline) and removes the session file ' +
    'with its cached delegations.',
  options: { session: SESSION_OPTION, timeout: HTTP_TIMEOUT_OPTION },
  examples: ['tandem logout'],
};

const REGISTER: CommandSpec = {
  name: 'keys register',
  maxPositionals: 0,
  summary:
    'Registers the rider key’s public half with the cloud for this login (POST /devices, SPEC [TANDEM-DLG-5]): ' +
    'the delegated tokens `tandem sync` fetches are then bound to it. Registering again replaces the key.',
  options: {
    key: {
      type: 'string',
      value: '<file>',
      required: true,
      description: 'rider key file (private P-256 JWK, mode 0600; `tandem keys generate --alg ES256`)',
    },
    name: { type: 'string', value: '<text>', description: 'a name for this device, such as "laptop"' },
    session: SESSION_OPTION,
    timeout: HTTP_TIMEOUT_OPTION,
  },
  examples: ['tandem keys register --key bianca.jwk.json --name laptop'],
};

/** `tandem login`. */
export const login: CommandModule = {
  run: async (argv, streams) => {
    const p = parse(LOGIN, argv);
    if (p.help) {
      streams.stdout.write(helpText(LOGIN));
      return CLOUD_EXIT.OK;
    }
    const cloud = req(p, 'cloud');
    return cloudGuard(streams, async () => {
      const client = await openClient(p);
      const pending = await client.startLogin(cloud);
      streams.stdout.write(
        `To sign in, open ${pending.verificationUri} and enter the code ${pending.userCode}\n` +
          (pending.verificationUriComplete === undefined
            ? ''
            : `or open: ${pending.verificationUriComplete}\n`) +
          `waiting for the approval (the code expires in ${pending.expiresIn} s)...\n`,
      );
      const { account } = await pending.complete();
      await client.session.save();
      streams.stdout.write(
        `logged in to ${client.session.data!.cloud} as ${account}; session in ${client.session.path}\n` +
          'next: `tandem keys register --key <rider key file>` so that delegated tokens are bound to this device\n',
      );
      return CLOUD_EXIT.OK;
    });
  },
};

/** `tandem logout`. */
export const logout: CommandModule = {
  run: async (argv, streams) => {
    const p = parse(LOGOUT, argv);
    if (p.help) {
      streams.stdout.write(helpText(LOGOUT));
      return CLOUD_EXIT.OK;
    }
    return cloudGuard(streams, async () => {
      const client = await openClient(p);
      if (client.session.data === undefined) {
        streams.stdout.write(`not logged in (no session at ${client.session.path})\n`);
        return CLOUD_EXIT.OK;
      }
      const cloud = client.session.data.cloud;
      const { revoked } = await client.logout();
      await client.session.save();
      streams.stdout.write(
        revoked
          ? `logged out of ${cloud}: tokens revoked, session removed\n`
          : `session removed; the tokens could not be revoked at ${cloud} (unreachable) and expire on their own\n`,
      );
      return CLOUD_EXIT.OK;
    });
  },
};

/** `tandem keys register` (dispatched from cli/keys.ts). */
export async function registerKey(argv: readonly string[], streams: CliStreams): Promise<number> {
  const p = parse(REGISTER, argv);
  if (p.help) {
    streams.stdout.write(helpText(REGISTER));
    return CLOUD_EXIT.OK;
  }
  const keyPath = req(p, 'key');
  const name = str(p, 'name');
  if (name !== undefined && (name.length === 0 || name.length > 64)) {
    throw new CliError('ERR_USAGE', '--name must be 1-64 characters', { command: 'keys register' });
  }
  return cloudGuard(streams, async () => {
    const { readKeyFile } = await import('../gateway/src/key-file.js');
    const key = (await readKeyFile(keyPath)).key;
    const client = await openClient(p);
    client.session.require();
    const device = await client.registerDevice(key.publicKey, name);
    await client.session.save();
    streams.stdout.write(
      `registered ${keyPath} as device ${device.id} (${device.name}), key thumbprint ${device.thumbprint}\n` +
        'next: `tandem sync` fetches the delegations bound to it\n',
    );
    return CLOUD_EXIT.OK;
  });
}

/** The module run as a command of its own is `tandem login`. */
export const run = login.run;
