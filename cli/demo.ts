/**
 * `tandem demo`: an offline walk-through of the protocol on one machine, no radio and
 * no network. Keys are written as JWK files to a temporary directory and read back as `tandem keys` and
 * `tandem token` would; a token is minted, verified, and used in a proof-of-possession round framed for BLE;
 * a copied token and a widening delegation are refused. Takes well under a second after Node has started.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Grant, TrustAnchor } from '../protocol/src/chain.js';
import { chainHash, verifyGrant } from '../protocol/src/chain.js';
import { ProtocolError } from '../protocol/src/errors.js';
import {
  MessageType,
  Reassembler,
  WRITABLE_TYPES,
  decodeChallenge,
  encodeChallenge,
  frameMessage,
} from '../protocol/src/gatt.js';
import type { Alg, PrivateKey } from '../protocol/src/keys.js';
import { privateKeyFromJwk } from '../protocol/src/keys.js';
import { Command, createRequest, decodeRequest, verifyPop } from '../protocol/src/pop.js';
import { localWeekMinute } from '../protocol/src/schedule.js';
import { Status } from '../protocol/src/status.js';
import type { MintClaims } from '../protocol/src/token.js';
import { mintToken } from '../protocol/src/token.js';
import { flag, formatSchedule, helpText, parse, parseScheduleText } from './args.js';
import type { CliStreams, CommandSpec } from './args.js';
import { readJwk } from './io.js';
import { writeKeyPair } from './keys.js';

const SPEC: CommandSpec = {
  name: 'demo',
  maxPositionals: 0,
  summary:
    'Runs an offline walk-through: issuer, owner and rider keys; a typical token; verification as a lock; a proof-of-possession round framed for BLE; a copied token and a widening delegation refused; sizes. Writes only to a temporary directory.',
  options: {
    keep: {
      type: 'boolean',
      description: 'keep the temporary directory (the JWK files) and print its path',
    },
  },
  examples: ['tandem demo', 'tandem demo --keep'],
};

const LOCK = 'lock-7f3a';
const TIME_ZONE = 'Europe/Berlin';
const ISSUER = 'tandem';
const OWNER = 'adam';
const DAY = 86_400;

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const iso = (s: number) => new Date(s * 1000).toISOString().slice(0, 16) + 'Z';

/**
 * The lock's simulated clock: the next Wednesday 10:30 in the lock's zone. Fixed to a weekday morning so
 * that the weekday schedule lets the rider in whenever the demo runs; Berlin's offsets are whole hours, so
 * half-hour steps hit 10:30 exactly.
 */
function lockClock(from: number): number {
  const start = Math.ceil(from / 1800) * 1800;
  for (let t = start; t < start + 8 * DAY; t += 1800) {
    const { weekday, minute } = localWeekMinute(t, TIME_ZONE);
    if (weekday === 2 && minute === 10 * 60 + 30) return t;
  }
  return start;
}

async function keyFile(dir: string, name: string, alg: Alg, kid?: string): Promise<PrivateKey> {
  const files = await writeKeyPair(join(dir, name), alg, kid, false);
  return privateKeyFromJwk(await readJwk(files.privatePath, 'demo'));
}

/** The ProtocolError `f` throws; a demo step that should be refused and is not is a bug. */
function refusal(f: () => unknown, what: string): ProtocolError {
  try {
    f();
  } catch (e) {
    if (e instanceof ProtocolError) return e;
    throw e;
  }
  throw new Error(`demo: ${what} was accepted, but must be refused`);
}

const describe = (e: ProtocolError) => `${e.code} (status ${Status[e.status]})\n          ${e.message}`;

async function demo(streams: CliStreams, keep: boolean): Promise<void> {
  const started = performance.now();
  const out = (line = '') => streams.stdout.write(line + '\n');
  const dir = await mkdtemp(join(tmpdir(), 'tandem-demo-'));
  try {
    const now = lockClock(Math.floor(Date.now() / 1000));
    out(
      `Tandem demo: lock ${JSON.stringify(LOCK)} in ${TIME_ZONE}, its clock at ${iso(now)} (a Wednesday, 10:30 local)`,
    );
    out();

    // Keys, through JWK files as `tandem keys generate` writes them.
    const issuer = await keyFile(dir, 'issuer', 'EdDSA', 'hex:01');
    const owner = await keyFile(dir, 'owner', 'ES256', 'hex:0a');
    const rider = await keyFile(dir, 'bianca', 'ES256');
    const friend = await keyFile(dir, 'carla', 'ES256');
    const thief = await keyFile(dir, 'thief', 'ES256');
    const anchors: TrustAnchor[] = [
      { kid: Uint8Array.of(0x01), key: issuer.publicKey, role: 'issuer', name: ISSUER },
      { kid: Uint8Array.of(0x0a), key: owner.publicKey, role: 'owner', name: OWNER },
    ];
    const lookup = (kid: Uint8Array) => anchors.find((a) => hex(a.kid) === hex(kid));
    out('keys      trust anchors: issuer Ed25519 (kid 01), owner "adam" P-256 (kid 0a)');
    out('          phone keys: bianca, carla, and a thief, each P-256');

    // A typical token: the cloud shares adam's lock with bianca on weekdays.
    const schedule = parseScheduleText('Mon-Fri 07:00-20:00');
    const base: MintClaims = {
      iss: ISSUER,
      sub: OWNER,
      aud: LOCK,
      iat: now - 60,
      nbf: now - 60,
      exp: now + 7 * DAY,
      cti: new Uint8Array(randomBytes(12)),
      cnf: rider.publicKey,
      scope: ['unlock', 'status', 'delegate'],
      rider: 'bianca',
      schedule,
      maxUses: 10,
    };
    const token = mintToken(base, issuer, Uint8Array.of(0x01));
    out(`token     issuer -> bianca: ${base.scope.join(' ')}; ${formatSchedule(schedule)}; 7 days; 10 uses`);

    // The lock's checks, in the order of SPEC.md §5.7 (verifyGrant), at an exactly known time.
    const bound = { earliest: now, latest: now };
    const lockVerifies = (chain: readonly Uint8Array[], command?: Command): Grant =>
      verifyGrant(chain, { anchors: lookup, lockId: LOCK, time: bound, timeZone: TIME_ZONE, command });
    const grant = lockVerifies([token]);
    out(
      `verify    OK: signed by ${grant.anchor.role} "${grant.anchor.name}", valid until ${iso(grant.exp)}, inside the schedule`,
    );

    // Proof of possession: the lock's challenge, the phone's request framed for BLE, the lock's checks.
    const challengeBody = encodeChallenge({
      lockId: LOCK,
      nonce: new Uint8Array(randomBytes(16)),
      lockTime: now,
      uncertainty: 2,
      revocationVersion: 0,
    });
    const challenge = decodeChallenge(challengeBody);
    const request = (holderKey: PrivateKey, chain: readonly Uint8Array[]) =>
      createRequest({
        lockId: challenge.lockId,
        nonce: challenge.nonce,
        command: Command.UNLOCK,
        chain,
        chainHash: chainHash(chain),
        holderKey,
      });
    const lockHandles = (bytes: Uint8Array, mtu: number): Grant => {
      const reassembler = new Reassembler({ allowedTypes: WRITABLE_TYPES.request ?? [] });
      let body: Uint8Array | undefined;
      for (const frame of frameMessage(MessageType.unlockRequest, bytes, mtu))
        body = reassembler.push(frame)?.body;
      const req = decodeRequest(body ?? new Uint8Array(0));
      if (hex(req.nonce) !== hex(challenge.nonce))
        throw new Error('demo: the request answers another challenge');
      const g = lockVerifies(req.chain ?? [], req.command);
      verifyPop(req, LOCK, g.leaf.cnf, g.chainHash);
      return g;
    };
    const unlock = request(rider, [token]);
    lockHandles(unlock, 23);
    out(
      "unlock    challenge nonce -> request signed by bianca's phone key -> proof of possession OK (unlock)",
    );

    // A copy of the token is worthless without bianca's key ([TANDEM-POP-1]).
    const stolen = refusal(() => lockHandles(request(thief, [token]), 185), 'a copied token');
    out(`refused   the same token sent with a thief's key: ${describe(stolen)}`);

    // Delegation: bianca passes on a share to carla. Widening it is refused ([TANDEM-CHAIN-3]).
    const link = (over: Partial<MintClaims>) =>
      mintToken(
        {
          ...base,
          iss: 'bianca',
          rider: 'carla',
          cnf: friend.publicKey,
          cti: new Uint8Array(randomBytes(12)),
          scope: ['unlock'],
          exp: now + DAY,
          maxUses: 2,
          ...over,
        },
        rider,
      );
    const widened = refusal(
      () => lockVerifies([token, link({ scope: ['unlock', 'manage'] })]),
      'a widening link',
    );
    out(`refused   bianca -> carla adding "manage": ${describe(widened)}`);
    const narrow = [token, link({})];
    lockHandles(request(friend, narrow), 185);
    out('accepted  bianca -> carla narrower (unlock, 1 day, 2 uses): chain of 2, carla unlocks');

    // Offline sharing: the owner's phone signs directly; the lock knows the owner key ([TANDEM-CHAIN-4]).
    const offline = mintToken(
      {
        ...base,
        iss: OWNER,
        cnf: friend.publicKey,
        rider: 'carla',
        scope: ['unlock'],
        cti: new Uint8Array(randomBytes(12)),
      },
      owner,
      Uint8Array.of(0x0a),
    );
    lockHandles(request(friend, [offline]), 185);
    out("offline   owner adam -> carla, signed on adam's phone: carla unlocks");

    const frames = (mtu: number) => frameMessage(MessageType.unlockRequest, unlock, mtu).length;
    const chained = request(friend, narrow);
    out();
    out(
      `sizes     token ${token.length} B; challenge ${challengeBody.length} B; unlock request ${unlock.length} B`,
    );
    out(`          unlock request over BLE: ${frames(23)} writes at ATT MTU 23, ${frames(185)} at MTU 185`);
    out(
      `          with a 2-token chain: ${chained.length} B, ${frameMessage(MessageType.unlockRequest, chained, 23).length} writes at MTU 23, ` +
        `${frameMessage(MessageType.unlockRequest, chained, 185).length} at MTU 185`,
    );
    if (keep) out(`files     ${dir} (JWKs of every key)`);
    out(`done in ${Math.round(performance.now() - started)} ms`);
  } finally {
    if (!keep) await rm(dir, { recursive: true, force: true });
  }
}

/** Entry point of `tandem demo`. */
export async function run(argv: readonly string[], streams: CliStreams): Promise<number> {
  const p = parse(SPEC, argv);
  if (p.help) {
    streams.stdout.write(helpText(SPEC));
    return 0;
  }
  await demo(streams, flag(p, 'keep'));
  return 0;
}
