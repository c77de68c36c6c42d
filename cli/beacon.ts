/**
 * `tandem beacon`: an issuer-signed time beacon (SPEC §7) as a file, for a phone to carry to a lock
 * (`tandem unlock --beacon`). A beacon without the lock's nonce only raises the lock's persisted floor
 * ([TANDEM-TIME-5]); it never gives the lock an upper bound, and the lock trusts no other clock
 * ([TANDEM-TIME-6]), so a file made beforehand cannot open a lock that does not know the time. For that a
 * beacon must answer the lock's current challenge nonce ([TANDEM-TIME-4]): the cloud does it for a phone, and
 * a tester holding the issuer key uses `tandem unlock --issuer-key`, which signs one on the spot.
 */
import { encodeTimeBeacon } from '../protocol/src/time-beacon.js';
import { CliError, choice, helpText, parse, parseKid, parseTime, parseUint, req, str } from './args.js';
import type { CliStreams, CommandSpec } from './args.js';
import { FORMATS, readPrivateJwk, writeBytes } from './io.js';

const SPEC: CommandSpec = {
  name: 'beacon',
  maxPositionals: 0,
  summary: 'Signs a time beacon with the issuer key and prints it (hex by default).',
  options: {
    'issuer-key': { type: 'string', value: '<jwk>', required: true, description: 'the issuer private JWK' },
    kid: {
      type: 'string',
      value: '<text|hex:..>',
      description: 'the issuer\'s key id as the lock knows it (default: the JWK\'s "kid")',
    },
    'lock-id': {
      type: 'string',
      value: '<lock>',
      description: 'the one lock the beacon is for (default: any lock)',
    },
    accuracy: {
      type: 'string',
      value: '<seconds>',
      description: "the issuer's bound on its own clock error (default 2)",
    },
    now: {
      type: 'string',
      value: '<unix|ISO>',
      description: "the time stated (default: this machine's clock)",
    },
    format: { type: 'string', value: 'hex|base64url|binary', description: 'output encoding (default hex)' },
  },
  notes: [
    'Beacons go stale: this one carries no challenge nonce, so it only raises a lock’s time floor. To let a lock that does not know the time decide tokens, use `tandem unlock --issuer-key` (signs a beacon for its current nonce).',
  ],
  examples: ['tandem beacon --issuer-key issuer.jwk.json > beacon.hex'],
};

/** Entry point of `tandem beacon`. */
export async function run(argv: readonly string[], streams: CliStreams): Promise<number> {
  const p = parse(SPEC, argv);
  if (p.help) {
    streams.stdout.write(helpText(SPEC));
    return 0;
  }
  const format = choice(str(p, 'format'), FORMATS, 'format', 'hex');
  const accuracy =
    str(p, 'accuracy') === undefined ? 2 : parseUint(str(p, 'accuracy')!, 'accuracy', 0, 86_400);
  const time = str(p, 'now') === undefined ? Math.floor(Date.now() / 1000) : parseTime(str(p, 'now')!, 'now');
  const lockId = str(p, 'lock-id');
  const issuer = await readPrivateJwk(req(p, 'issuer-key'), 'issuer-key');
  const kidText = str(p, 'kid') ?? (typeof issuer.jwk.kid === 'string' ? issuer.jwk.kid : undefined);
  if (kidText === undefined) throw new CliError('ERR_USAGE', 'missing --kid, and --issuer-key has no "kid"');
  const kid = parseKid(kidText, 'kid');
  const beacon = encodeTimeBeacon(
    { time, accuracy, ...(lockId === undefined ? {} : { lockId }) },
    issuer.key,
    kid,
  );
  writeBytes(beacon, format, streams);
  return 0;
}
