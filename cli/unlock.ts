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
import type { TimeBeacon } from '../protocol/src/time-beacon.js';
import type { CommandOutcome, SafeUnlockOutcome } from '../gateway/src/lock-client.js';
import type { GatewayError } from '../gateway/src/errors.js';
import type { CloudClient } from '../gateway/src/cloud-client.js';
import type { PrivateKey } from '../protocol/src/keys.js';
import type { BeaconRequest, LockClient } from '../gateway/src/lock-client.js';

/**
 * Exit codes of these commands (cli/README.md "Exit codes" for the others): 0 the lock did it; 1 the lock
 * refused (the status says why); 2 usage; 3 the outcome is unknown, the lock may have acted ([TANDEM-STATUS-3]:
 * run `tandem status` before trying again); 4 nothing happened: the lock was not found, Bluetooth is not
 * usable, the link dropped before the request was complete, or an input file could not be read.
 */
export const BLE_EXIT = { OK: 0, REFUSED: 1, USAGE: 2, UNKNOWN: 3, NOT_DONE: 4 } as const;

type Verb = 'unlock' | 'relock' | 'status' | 'clear-lockout';

const SUMMARY: Readonly<Record<Verb, string>> = {
  unlock:
    'Unlocks a lock over Bluetooth LE: finds it by its advertised tag, connects, answers its challenge with ' +
    'the token chain and a proof of possession signed by the rider key, and prints the lock’s answer. When ' +
    'the answer is lost after the request was written, asks STATUS before anything is sent again.',
  relock:
    'Locks a lock again over Bluetooth LE (command LOCK) with the rider’s token chain (scope "lock"), and prints the lock’s answer.',
  'clear-lockout':
    'The owner ends a lockout over Bluetooth LE (command CLEAR_LOCKOUT, SPEC [TANDEM-POP-5]): the chain must ' +
    'grant scope "manage", which only the owner’s own token does (a root signed by the owner key registered at ' +
    'the claim, bound to the owner’s phone key). A lock in lockout refuses every other command.',
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
          'an issuer-signed time beacon (`tandem beacon`) to deliver when the lock says it does not know the time; ' +
          'one without the challenge nonce only raises the lock’s floor (beacons go stale)',
      },
      'issuer-key': {
        type: 'string',
        value: '<jwk>',
        description:
          'testers holding the issuer key: sign a beacon bound to the lock’s current challenge nonce on the spot ' +
          '(SPEC [TANDEM-TIME-4]) whenever the lock does not know the time',
      },
      kid: {
        type: 'string',
        value: '<text|hex:..>',
        description: 'with --issuer-key: the issuer’s key id as the lock knows it (default: the JWK’s "kid")',
      },
      json: { type: 'boolean', description: 'print the outcome as one JSON object' },
      session: {
        type: 'string',
        value: '<file>',
        description:
          'the session of `tandem login` (default $TANDEM_SESSION, else ~/.config/tandem/session.json): its ' +
          'delegation for the lock, revocation update, beacons and outbox ack are used when present',
      },
    },
    notes: [
      'Without --token or --chain, the token `tandem sync` fetched for <lock-id> is used while it is valid (when ' +
        'it has expired and the cloud is reachable, a fresh one is fetched first); the phone carries the cached ' +
        'revocation update and time beacon, asks the cloud for a beacon bound to the lock’s challenge when the lock ' +
        'does not know the time, delivers the cached outbox ack, and keeps what the lock relays for the next sync.',
      'Without a session, the chain stored for <lock-id> in the key file is used. After an OK the key ' +
        'file (when it is one, not a bare JWK) remembers that the lock verified the chain, so the next request ' +
        'names it by a 16-byte reference: one BLE write instead of two.',
      'Exit status: 0 done; 1 refused by the lock; 2 usage; 3 outcome unknown, the lock may have acted (run ' +
        '`tandem status` before retrying); 4 nothing happened (lock not found, Bluetooth unusable, link ' +
        'dropped early, unreadable file).',
      'A lock knows no upper time bound after it starts (SPEC [TANDEM-TIME-6]) and refuses time-limited tokens ' +
        '(TIME_UNCERTAIN, NOT_YET_VALID, EXPIRED) until a beacon bound to its challenge nonce arrives. With ' +
        '--issuer-key the command signs one for the current nonce and retries once; a --beacon file made earlier ' +
        'carries no such nonce and only raises the lock’s floor.',
      'On Linux with a BLE adapter noble needs CAP_NET_RAW/CAP_NET_ADMIN: ' +
        '`sudo setcap cap_net_raw,cap_net_admin+eip $(readlink -f $(which node))` (gateway/README.md).',
    ],
    examples: [
      `tandem ${verb} lock-7f3a --key bianca.json --token bianca-lock-7f3a.hex`,
      `tandem ${verb} lock-7f3a --key bianca.json --chain root.hex,link.hex --timeout 20s`,
      `tandem ${verb} lock-7f3a --key bianca.json --radio /tmp/tandem-radio.sock --device-id 1 --issuer-key issuer.jwk.json`,
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
  const { decodeToken } = await import('../protocol/src/token.js');
  for (const f of files) {
    const bytes = await readBytes(f, streams);
    // Refused here, not by the lock: a file of garbage is the user's mistake, not a lock's decision.
    try {
      decodeToken(bytes);
    } catch (e) {
      throw new CliError('ERR_INPUT', `${f} is not a Tandem token: ${(e as Error).message}`);
    }
    chain.push(bytes);
  }
  return chain;
}

/** A --beacon file, decoded locally: what it can do for the lock, said before it is relied on. */
async function readBeaconFile(path: string, streams: CliStreams) {
  const bytes = await readBytes(path, streams);
  const { decodeTimeBeacon } = await import('../protocol/src/time-beacon.js');
  try {
    return { bytes, beacon: decodeTimeBeacon(bytes).beacon };
  } catch (e) {
    throw new CliError('ERR_INPUT', `${path} is not a time beacon: ${(e as Error).message}`);
  }
}

/** A BeaconSource that signs with the issuer key given by a tester ([TANDEM-TIME-4]). */
async function issuerBeaconSource(p: Parsed) {
  const path = str(p, 'issuer-key');
  if (path === undefined) return undefined;
  const { readPrivateJwk } = await import('./io.js');
  const { parseKid } = await import('./args.js');
  const { encodeTimeBeacon } = await import('../protocol/src/time-beacon.js');
  const issuer = await readPrivateJwk(path, 'issuer-key');
  const kidText = str(p, 'kid') ?? (typeof issuer.jwk.kid === 'string' ? issuer.jwk.kid : undefined);
  if (kidText === undefined) throw new CliError('ERR_USAGE', 'missing --kid, and --issuer-key has no "kid"');
  const kid = parseKid(kidText, 'kid');
  return ({ lockId, nonce }: { lockId: string; nonce: Uint8Array }) =>
    Promise.resolve(
      encodeTimeBeacon({ time: Math.floor(Date.now() / 1000), nonce, lockId, accuracy: 2 }, issuer.key, kid),
    );
}

/** Why the virtual radio could not be joined, in the user's terms (no internal function names). */
function radioJoinFailure(path: string, cause: unknown): string {
  const code = ((cause as { cause?: { code?: unknown } }).cause ?? (cause as { code?: unknown }))?.code;
  if (code === 'ENOENT') {
    return `no virtual radio at ${path}: start the simulated lock first (tandem lock --simulate --serve-radio ${path})`;
  }
  if (code === 'ECONNREFUSED') {
    return `nothing serves the virtual radio at ${path} (a socket left by a stopped lock): start the simulated lock again with --serve-radio ${path}`;
  }
  return `cannot join the virtual radio at ${path}: ${(cause as Error).message.replace(/ \(is serveRadio\(\) running there\?\)/, '')}`;
}

function hexStatus(n: number): string {
  return `0x${n.toString(16).padStart(2, '0')}`;
}

const TIME_STATUSES: ReadonlySet<string> = new Set(['TIME_UNCERTAIN', 'NOT_YET_VALID', 'EXPIRED']);

/**
 * Why a --beacon file was not sent, or cannot give the lock an upper bound ([TANDEM-TIME-4],
 * [TANDEM-TIME-5]): beacons go stale, and saying so beats a silent TIME_UNCERTAIN.
 */
function staleness(path: string, b: TimeBeacon, lockId: string, nonce: Uint8Array): string | undefined {
  const age = Math.floor(Date.now() / 1000) - b.time;
  const ageText = age >= 0 ? `${age} s old` : `dated ${-age} s in the future`;
  if (b.lockId !== undefined && b.lockId !== lockId) return `${path} is for lock ${b.lockId}: not sent`;
  if (b.nonce !== undefined && Buffer.compare(Buffer.from(b.nonce), Buffer.from(nonce)) !== 0) {
    return `beacons go stale: ${path} is ${ageText} and bound to another nonce than this challenge’s: not sent`;
  }
  if (b.nonce === undefined) {
    return `beacons go stale: ${path} is ${ageText} and bound to no nonce, so it can only raise the lock’s time floor, not tell it the time`;
  }
  return undefined;
}

/** The logged-in session's client, or undefined when there is no session file (the offline-only rider). */
async function cloudSession(p: Parsed): Promise<CloudClient | undefined> {
  const { SessionStore, defaultSessionPath } = await import('../gateway/src/session-store.js');
  const session = await SessionStore.open(str(p, 'session') ?? defaultSessionPath());
  if (session.data === undefined) return undefined;
  const { CloudClient } = await import('../gateway/src/cloud-client.js');
  return new CloudClient({ session, timeoutSeconds: 10 });
}

/**
 * The delegated token `tandem sync` cached for the lock (SPEC §5.9), fetched afresh when it has expired and
 * the cloud is reachable. Checked against the rider key before use: a token bound to another key (another
 * device's registration) would only earn POP_INVALID from the lock.
 */
async function delegationChain(
  cloud: CloudClient,
  lockId: string,
  key: PrivateKey,
  hasOtherChain: boolean,
  notes: string[],
): Promise<Uint8Array[] | undefined> {
  const { GatewayError } = await import('../gateway/src/errors.js');
  let d = cloud.session.delegation(lockId);
  if (d === undefined) {
    const stale = cloud.session.staleDelegation(lockId);
    try {
      await cloud.fetchDelegations();
    } catch (e) {
      if (!(e instanceof GatewayError) || e.code !== 'ERR_GW_OFFLINE') throw e;
      if (hasOtherChain) {
        notes.push(`${e.message}: the chain in the key file was used`);
        return undefined;
      }
      throw new GatewayError(
        'ERR_GW_OFFLINE',
        stale === undefined
          ? `no token for ${lockId} in the session, and ${e.message}`
          : `the token for ${lockId} expired at ${new Date(stale.expiresAt * 1000).toISOString()}, and ${e.message}: ` +
              'sync again once online',
        { cause: e, temporary: true },
      );
    } finally {
      await cloud.session.save();
    }
    d = cloud.session.delegation(lockId);
    if (d === undefined) return undefined;
  }
  const bytes = new Uint8Array(Buffer.from(d.token, 'base64url'));
  const { decodeToken } = await import('../protocol/src/token.js');
  const cnf = decodeToken(bytes).claims.cnf;
  if (Buffer.compare(Buffer.from(cnf.raw), Buffer.from(key.publicKey.raw)) !== 0) {
    throw new CliError(
      'ERR_INPUT',
      `the token for ${lockId} in the session is bound to another key than --key: give the key file registered ` +
        'with `tandem keys register`, or register this one and run `tandem sync`',
    );
  }
  return [bytes];
}

/**
 * A BeaconSource asking the cloud's sync for a beacon bound to the lock's challenge nonce ([TANDEM-TIME-4]);
 * a newer revocation update and outbox ack in the same answer are kept. Offline: no beacon, and a note.
 */
function cloudBeaconSource(cloud: CloudClient, notes: string[]) {
  return async ({ lockId, nonce, revocationVersion }: BeaconRequest) => {
    const { GatewayError } = await import('../gateway/src/errors.js');
    try {
      const a = await cloud.sync(lockId, [], { nonce, revocationVersion: revocationVersion ?? 0 });
      if (a.revocation !== null) {
        const { decodeRevocationUpdate } = await import('../protocol/src/revocation.js');
        cloud.session.putRevocation(
          lockId,
          a.revocation,
          decodeRevocationUpdate(a.revocation).update.version,
        );
      }
      if (a.outboxAck !== null) cloud.session.putOutboxAck(lockId, a.outboxAck);
      return a.beacon ?? undefined;
    } catch (e) {
      if (!(e instanceof GatewayError)) throw e;
      notes.push(`no time beacon from the cloud: ${e.code}: ${e.message}`);
      return undefined;
    }
  };
}

function report(
  verb: Verb,
  lockId: string,
  o: CommandOutcome | SafeUnlockOutcome,
  streams: CliStreams,
  json: boolean,
  notes: string[] = [],
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
        retriedWithBeacon: o.retriedWithBeacon,
        ...('recoveredBy' in o ? { recoveredBy: o.recoveredBy } : {}),
        ...(notes.length > 0 ? { notes } : {}),
      }) + '\n',
    );
    return ok ? BLE_EXIT.OK : BLE_EXIT.REFUSED;
  }
  const done =
    verb === 'status'
      ? `state ${o.state}`
      : !ok
        ? `refused, state ${o.state}`
        : verb === 'clear-lockout'
          ? `lockout cleared, state ${o.state}`
          : `${verb}ed, state ${o.state}`;
  const lines = [`${lockId}: ${done}`, `status ${o.statusName} (${hexStatus(o.status)}): ${o.meaning}`];
  if (ok && verb === 'relock' && o.state !== 'locked') {
    // The lock accepted LOCK but its shackle is open: it can only latch once the shackle is pushed in.
    lines[0] = `${lockId}: LOCK accepted, but the lock is still ${o.state}`;
    lines.push(
      'push the shackle shut to lock it (a simulated lock: type `sim latch push` at its console); ' +
        'it then reports locked by itself',
    );
  }
  if (o.retriedWithBeacon) {
    lines.push(
      'the lock did not know the time; a beacon signed for its challenge nonce was delivered and the request sent again',
    );
  }
  if (!ok && TIME_STATUSES.has(o.statusName) && o.uncertaintyBefore === null) {
    if (o.statusName === 'LOCKED_OUT') {
      lines.push(
        `the lock is in lockout after repeated refusals: its owner ends it with \`tandem clear-lockout ${lockId} --key <owner key> --token <owner token>\``,
      );
    }
    if (verb === 'clear-lockout' && o.statusName === 'SCOPE_DENIED') {
      lines.push('only a chain granting scope "manage" (the owner’s own token) may clear a lockout');
    }
    lines.push(...notes.splice(0));
    lines.push(
      'the lock does not know the time (no beacon bound to its challenge since it started, SPEC [TANDEM-TIME-6]): ' +
        'give --issuer-key <issuer jwk> to sign one for its current nonce; a beacon made earlier goes stale ' +
        '(without the nonce it only raises the lock’s floor)',
    );
  }
  if (o.statusName === 'LOCKED_OUT') {
    lines.push(
      `the lock is in lockout after repeated refusals: its owner ends it with \`tandem clear-lockout ${lockId} --key <owner key> --token <owner token>\``,
    );
  }
  if (verb === 'clear-lockout' && o.statusName === 'SCOPE_DENIED') {
    lines.push('only a chain granting scope "manage" (the owner’s own token) may clear a lockout');
  }
  lines.push(...notes.splice(0));
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

/**
 * After the command, the phone's relay duty ([TANDEM-GATT-11]): deliver the outbox ack it carries, then
 * collect what the lock queued for the cloud (audit records, alerts, the revocation ack) for the next
 * `tandem sync`. Failures here do not change the command's outcome; they become notes.
 */
async function afterCommand(
  cloud: CloudClient,
  client: LockClient,
  lockId: string,
  notes: string[],
): Promise<void> {
  const { GatewayError } = await import('../gateway/src/errors.js');
  const { MessageType } = await import('../protocol/src/gatt.js');
  const ack = cloud.session.pendingOutboxAck(lockId);
  try {
    if (ack !== undefined) {
      await client.deliver(lockId, MessageType.outboxAck, ack);
      cloud.session.markOutboxAckDelivered(lockId);
    }
    const items = await client.collectRelay(lockId);
    const added = cloud.session.addRelay(
      lockId,
      items.map((i) => i.bytes),
    );
    if (added > 0) notes.push(`${added} record(s) from the lock kept for the next \`tandem sync\``);
  } catch (e) {
    if (!(e instanceof GatewayError)) throw e;
    notes.push(`relay with the lock not finished: ${e.code}: ${e.message}`);
  } finally {
    await cloud.session.save();
  }
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
  let radioFailed: Promise<never> | undefined;
  try {
    const keyPath = req(p, 'key');
    const keyFile = await readKeyFile(keyPath);
    const notes: string[] = [];
    const cloud = await cloudSession(p);
    const explicit = str(p, 'token') !== undefined || list(p, 'chain').length > 0;
    const stored = keyFile.locks[lockId]?.chain;
    const chain =
      (!explicit && cloud !== undefined
        ? await delegationChain(cloud, lockId, keyFile.key, stored !== undefined, notes)
        : undefined) ?? (await readChain(p, lockId, stored, streams, s));
    const refs = new KeyFileChainRefs(keyFile);
    const beaconPath = str(p, 'beacon');
    const beaconFile = beaconPath === undefined ? undefined : await readBeaconFile(beaconPath, streams);
    const beaconSource =
      (await issuerBeaconSource(p)) ?? (cloud === undefined ? undefined : cloudBeaconSource(cloud, notes));
    const carriedBeacon = (_lockId: string, nonce: Uint8Array): Uint8Array | undefined => {
      if (beaconFile === undefined) return undefined;
      const note = staleness(beaconPath!, beaconFile.beacon, lockId, nonce);
      if (note !== undefined && !notes.includes(note)) notes.push(note);
      return note !== undefined && note.endsWith('not sent') ? undefined : beaconFile.bytes;
    };
    const carry = {
      // A beacon `tandem sync` cached carries no nonce: it can only raise the lock's floor ([TANDEM-TIME-5]).
      timeBeacon: (id: string, nonce: Uint8Array) => carriedBeacon(id, nonce) ?? cloud?.session.beacon(id),
      // The newest signed revocation update the phone holds ([TANDEM-REV-2]); the client sends it only when
      // the challenge shows the lock at an older version.
      revocationUpdate: (id: string) => cloud?.session.revocation(id),
      // The issuer's anchor update `tandem sync` fetched ([TANDEM-SYNC-5]): written before everything else, so
      // what the rotated key signs is checked after it ([TANDEM-ANCHOR-6]); the lock relays its ack back.
      anchorUpdate: (id: string) => cloud?.session.anchorUpdate(id),
    };
    if (radioPath !== undefined) {
      const { connectRadio, installVirtualHci } = await import('../hardware/src/virtual-radio/index.js');
      const remote = await connectRadio(radioPath).catch((cause: unknown) => {
        throw new GatewayError('ERR_GW_BLE_UNAVAILABLE', radioJoinFailure(radioPath, cause), {
          cause,
          temporary: true,
        });
      });
      // The radio refuses a device id another process drives (the lock's own, 0 by default): without this
      // the refusal only reached the debug log and noble waited for ever (issue 11 §4).
      radioFailed = new Promise<never>((_, reject) => {
        remote.on('error', (cause: Error & { code?: string }) =>
          reject(
            new GatewayError(
              'ERR_GW_BLE_UNAVAILABLE',
              cause.code === 'ERR_RADIO_DEVICE_IN_USE'
                ? `device id ${deviceId} on the virtual radio at ${radioPath} is taken (the lock serves on 0 by default): ` +
                    'give this phone its own, e.g. --device-id 1'
                : `the virtual radio at ${radioPath} failed: ${cause.message}`,
              { cause },
            ),
          ),
        );
      });
      radioFailed.catch(() => undefined);
      installVirtualHci(remote);
      closeRadio = () => remote.close();
    }
    const transport = new NobleTransport({
      binding: radioPath === undefined ? { kind: 'hci', deviceId } : { kind: 'virtual', deviceId },
      powerOnTimeoutMs: timeoutMs,
    });
    const client = new LockClient({
      transport,
      chainRefs: refs,
      carry,
      ...(beaconSource === undefined ? {} : { beaconSource }),
      scanTimeoutMs: timeoutMs,
      connectTimeoutMs: timeoutMs,
      responseTimeoutMs: timeoutMs,
    });
    try {
      const request = { chain, holderKey: keyFile.key };
      const run =
        verb === 'unlock'
          ? client.unlockSafely(lockId, request)
          : client.unlock(lockId, {
              ...request,
              command:
                verb === 'relock'
                  ? Command.LOCK
                  : verb === 'clear-lockout'
                    ? Command.CLEAR_LOCKOUT
                    : Command.STATUS,
            });
      const outcome = await (radioFailed === undefined ? run : Promise.race([run, radioFailed]));
      if (refs.dirty && keyFile.format === 'key-file') await writeKeyFile(keyPath, keyFile);
      if (cloud !== undefined) {
        const after = afterCommand(cloud, client, lockId, notes);
        await (radioFailed === undefined ? after : Promise.race([after, radioFailed]));
      }
      return report(verb, lockId, outcome, streams, p.values.json === true, notes);
    } finally {
      await client.close();
    }
  } catch (e) {
    if (e instanceof GatewayError) return failure(e, verb, lockId, streams);
    if (e instanceof CliError && e.code === 'ERR_IO') {
      streams.stderr.write(`${e.code}: ${e.message}\n`);
      return BLE_EXIT.NOT_DONE;
    }
    if (e instanceof CliError && e.code === 'ERR_INPUT') {
      // A file that is not what it claims to be is refused before anything is sent (issue 11 §4).
      streams.stderr.write(`${e.code}: ${e.message}\n`);
      return BLE_EXIT.USAGE;
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
/** `tandem clear-lockout`. */
export const clearLockout: CommandModule = {
  run: (argv, streams) => runVerb('clear-lockout', argv, streams),
};
/** `tandem status`. */
export const status: CommandModule = { run: (argv, streams) => runVerb('status', argv, streams) };

/** The module as a CommandModule of its own runs `tandem unlock`. */
export const run = unlock.run;
