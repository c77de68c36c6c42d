/**
 * `tandem unlock`, `tandem relock`, `tandem status`: the rider's commands over BLE (issue 4 §3). Locking is
 * `relock` because `tandem lock` runs the lock runtime itself (cli/lock.ts). Each finds the
 * lock by its advertised tag, connects, takes the lock's challenge, writes the signed request and prints the
 * lock's answer with its status name and meaning (SPEC §10). A thin layer over gateway/'s LockClient.
 *
 * Without `--radio` the phone side is noble on Linux HCI; with `--radio <socket>` it joins a virtual radio
 * served by another process (hardware/src/virtual-radio, `serveRadio`), which is how a tester drives a
 * simulated lock. Nothing of noble or the radio is loaded until the command runs.
 */
import { CliError, helpText, list, parse, parseDuration, parseUint, req, str } from './args.js';
import type { CliStreams, CommandModule, CommandSpec, Parsed } from './args.js';
import { readBytes } from './io.js';
import type { CommandOutcome, SafeUnlockOutcome } from '../gateway/src/lock-client.js';
import type { GatewayError } from '../gateway/src/errors.js';

/**
 * Exit codes of these commands (cli/README.md "Exit codes" for the others): 0 the lock did it; 1 the lock
 * refused (the status says why); 2 usage; 3 the outcome is unknown, the lock may have acted ([TANDEM-STATUS-3]:
 * run `tandem status` before trying again); 4 nothing happened: the lock was not found, Bluetooth is not
 * usable, the link dropped before the request was complete, or an input file could not be read.
 */
export const BLE_EXIT = { OK: 0, REFUSED: 1, USAGE: 2, UNKNOWN: 3, NOT_DONE: 4 } as const;

type Verb = 'unlock' | 'relock' | 'status';

const SUMMARY: Readonly<Record<Verb, string>> = {
  unlock:
    'Unlocks a lock over Bluetooth LE: finds it by its advertised tag, connects, answers its challenge with ' +
    'the token chain and a proof of possession signed by the rider key, and prints the lock’s answer. When ' +
    'the answer is lost after the request was written, asks STATUS before anything is sent again.',
  relock:
    'Locks a lock again over Bluetooth LE (command LOCK) with the rider’s token chain (scope "lock"), and prints the lock’s answer.',
  status:
    'Asks a lock for its state over Bluetooth LE with the rider’s token chain (scope "status"); the lock answers ' +
    'with its state even when it refuses the command.',
};

function spec(verb: Verb): CommandSpec {
  return {
    name: verb,
    summary: SUMMARY[verb],
    positionals: '<lock-id>',
    maxPositionals: 1,
    options: {
      key: {
        type: 'string',
        value: '<file>',
        required: true,
        description:
          'rider key file (JSON: private P-256 JWK and chains per lock; mode 0600), or a private JWK from `tandem keys generate --alg ES256`',
      },
      token: {
        type: 'string',
        value: '<file>',
        description: 'a single-token chain (hex, base64url or binary)',
      },
      chain: {
        type: 'string',
        value: '<f1,f2,..>',
        description: 'token files of a delegation chain, root first, comma-separated',
      },
      timeout: {
        type: 'string',
        value: '<duration>',
        description: 'how long to look for the lock, and to wait for each of its answers (default 10s)',
      },
      radio: {
        type: 'string',
        value: '<socket>',
        description:
          'join the virtual radio served on this Unix socket instead of using HCI (simulated lock)',
      },
      'device-id': {
        type: 'string',
        value: '<N>',
        description:
          'HCI device id: hciN (default 0), or the phone’s device id on the virtual radio (default 1)',
      },
      beacon: {
        type: 'string',
        value: '<file>',
        description:
          'an issuer-signed time beacon (`tandem beacon`) to deliver when the lock says it does not know the time',
      },
      json: { type: 'boolean', description: 'print the outcome as one JSON object' },
    },
    notes: [
      'Without --token or --chain, the chain stored for <lock-id> in the key file is used. After an OK the key ' +
        'file (when it is one, not a bare JWK) remembers that the lock verified the chain, so the next request ' +
        'names it by a 16-byte reference: one BLE write instead of two.',
      'Exit status: 0 done; 1 refused by the lock; 2 usage; 3 outcome unknown, the lock may have acted (run ' +
        '`tandem status` before retrying); 4 nothing happened (lock not found, Bluetooth unusable, link ' +
        'dropped early, unreadable file).',
      'On Linux with a BLE adapter noble needs CAP_NET_RAW/CAP_NET_ADMIN: ' +
        '`sudo setcap cap_net_raw,cap_net_admin+eip $(readlink -f $(which node))` (gateway/README.md).',
    ],
    examples: [
      `tandem ${verb} lock-7f3a --key bianca.json --token bianca-lock-7f3a.hex`,
      `tandem ${verb} lock-7f3a --key bianca.json --chain root.hex,link.hex --timeout 20s`,
      `tandem ${verb} lock-7f3a --key bianca.json --radio /tmp/tandem-radio.sock --device-id 1`,
    ],
  };
}

async function readChain(
  p: Parsed,
  lockId: string,
  stored: Uint8Array[] | undefined,
  streams: CliStreams,
  s: CommandSpec,
) {
  const token = str(p, 'token');
  const chainFiles = list(p, 'chain')
    .flatMap((v) => v.split(','))
    .filter((f) => f !== '');
  if (token !== undefined && chainFiles.length > 0) {
    throw new CliError('ERR_USAGE', 'give --token or --chain, not both', { command: s.name });
  }
  const files = token !== undefined ? [token] : chainFiles;
  if (files.length === 0) {
    if (stored !== undefined) return stored;
    throw new CliError(
      'ERR_USAGE',
      `no token chain for ${lockId}: give --token <file> or --chain <f1,f2>, or store one in the key file`,
      { command: s.name },
    );
  }
  const chain: Uint8Array[] = [];
  for (const f of files) chain.push(await readBytes(f, streams));
  return chain;
}

function hexStatus(n: number): string {
  return `0x${n.toString(16).padStart(2, '0')}`;
}

function report(
  verb: Verb,
  lockId: string,
  o: CommandOutcome | SafeUnlockOutcome,
  streams: CliStreams,
  json: boolean,
): number {
  const ok = o.status === 0;
  if (json) {
    streams.stdout.write(
      JSON.stringify({
        lockId,
        command: verb,
        status: o.statusName,
        code: o.status,
        meaning: o.meaning,
        state: o.state,
        mayHaveActed: o.mayHaveActed,
        usedChainRef: o.usedChainRef,
        ...('recoveredBy' in o ? { recoveredBy: o.recoveredBy } : {}),
      }) + '\n',
    );
    return ok ? BLE_EXIT.OK : BLE_EXIT.REFUSED;
  }
  const done =
    verb === 'status' ? `state ${o.state}` : ok ? `${verb}ed, state ${o.state}` : `refused, state ${o.state}`;
  const lines = [`${lockId}: ${done}`, `status ${o.statusName} (${hexStatus(o.status)}): ${o.meaning}`];
  if ('recoveredBy' in o && o.recoveredBy === 'status') {
    lines.push(
      '(the answer to the unlock was lost; STATUS shows the lock unlocked, so nothing was sent again)',
    );
  } else if ('recoveredBy' in o && o.recoveredBy === 'retry') {
    lines.push(
      '(the answer to the first unlock was lost; STATUS showed the lock still locked, so it was sent again)',
    );
  }
  (ok ? streams.stdout : streams.stderr).write(lines.join('\n') + '\n');
  return ok ? BLE_EXIT.OK : BLE_EXIT.REFUSED;
}

function failure(e: GatewayError, verb: Verb, lockId: string, streams: CliStreams): number {
  streams.stderr.write(`${e.code}: ${e.message}\n`);
  if (e.mayHaveActed) {
    streams.stderr.write(
      `the outcome is unknown: the lock may have acted. Run \`tandem status ${lockId} ...\` before trying to ${verb} again.\n`,
    );
    return BLE_EXIT.UNKNOWN;
  }
  if (e.temporary) streams.stderr.write('nothing happened; trying again may work.\n');
  return BLE_EXIT.NOT_DONE;
}

async function runVerb(verb: Verb, argv: readonly string[], streams: CliStreams): Promise<number> {
  const s = spec(verb);
  const p = parse(s, argv);
  if (p.help) {
    streams.stdout.write(helpText(s));
    return BLE_EXIT.OK;
  }
  const lockId = p.positionals[0];
  if (lockId === undefined) throw new CliError('ERR_USAGE', 'missing <lock-id>', { command: s.name });
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(lockId)) {
    throw new CliError(
      'ERR_USAGE',
      `<lock-id> must be 1-32 of a-z, 0-9 and "-", not ${JSON.stringify(lockId)}`,
      {
        command: s.name,
      },
    );
  }
  const timeoutMs = parseDuration(str(p, 'timeout') ?? '10s', 'timeout') * 1000;
  const radioPath = str(p, 'radio');
  const deviceIdText = str(p, 'device-id');
  const deviceId =
    deviceIdText === undefined
      ? radioPath === undefined
        ? 0
        : 1
      : parseUint(deviceIdText, 'device-id', 0, 255);

  // Loaded here, not at the top: `tandem --help` and the other commands must not pay for noble or the client.
  const { GatewayError } = await import('../gateway/src/errors.js');
  const { KeyFileChainRefs, readKeyFile, writeKeyFile } = await import('../gateway/src/key-file.js');
  const { LockClient } = await import('../gateway/src/lock-client.js');
  const { NobleTransport } = await import('../gateway/src/noble-transport.js');
  const { Command } = await import('../protocol/src/pop.js');

  let closeRadio: (() => Promise<void>) | undefined;
  try {
    const keyPath = req(p, 'key');
    const keyFile = await readKeyFile(keyPath);
    const chain = await readChain(p, lockId, keyFile.locks[lockId]?.chain, streams, s);
    const refs = new KeyFileChainRefs(keyFile);
    const beacon = str(p, 'beacon') === undefined ? undefined : await readBytes(str(p, 'beacon')!, streams);
    if (radioPath !== undefined) {
      const { connectRadio, installVirtualHci } = await import('../hardware/src/virtual-radio/index.js');
      const remote = await connectRadio(radioPath).catch((cause: unknown) => {
        throw new GatewayError(
          'ERR_GW_BLE_UNAVAILABLE',
          `cannot join the virtual radio at ${radioPath}: ${(cause as Error).message}; is the radio served there?`,
          { cause, temporary: true },
        );
      });
      installVirtualHci(remote);
      closeRadio = () => remote.close();
    }
    const transport = new NobleTransport({
      binding: radioPath === undefined ? { kind: 'hci', deviceId } : { kind: 'virtual', deviceId },
    });
    const client = new LockClient({
      transport,
      chainRefs: refs,
      ...(beacon === undefined ? {} : { carry: { timeBeacon: () => beacon } }),
      scanTimeoutMs: timeoutMs,
      connectTimeoutMs: timeoutMs,
      responseTimeoutMs: timeoutMs,
    });
    try {
      const request = { chain, holderKey: keyFile.key };
      const outcome =
        verb === 'unlock'
          ? await client.unlockSafely(lockId, request)
          : await client.unlock(lockId, {
              ...request,
              command: verb === 'relock' ? Command.LOCK : Command.STATUS,
            });
      if (refs.dirty && keyFile.format === 'key-file') await writeKeyFile(keyPath, keyFile);
      return report(verb, lockId, outcome, streams, p.values.json === true);
    } finally {
      await client.close();
    }
  } catch (e) {
    if (e instanceof GatewayError) return failure(e, verb, lockId, streams);
    if (e instanceof CliError && e.code === 'ERR_IO') {
      streams.stderr.write(`${e.code}: ${e.message}\n`);
      return BLE_EXIT.NOT_DONE;
    }
    throw e;
  } finally {
    await closeRadio?.().catch(() => undefined);
  }
}

/** `tandem unlock`. */
export const unlock: CommandModule = { run: (argv, streams) => runVerb('unlock', argv, streams) };
/** `tandem relock`. */
export const relock: CommandModule = { run: (argv, streams) => runVerb('relock', argv, streams) };
/** `tandem status`. */
export const status: CommandModule = { run: (argv, streams) => runVerb('status', argv, streams) };

/** The module as a CommandModule of its own runs `tandem unlock`. */
export const run = unlock.run;
