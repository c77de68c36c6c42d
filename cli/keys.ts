/**
 * `tandem keys`: key pairs as JWK files (RFC 7517). The private JWK is created with mode 0600 and never
 * overwritten without `--force`; the public JWK (0644) is what goes to a lock as a trust anchor or into a
 * token's `cnf`. Loads only `protocol/src/keys.ts` (Node's crypto), not the CBOR stack.
 */
import type { JsonWebKey } from 'node:crypto';
import type { Alg } from '../protocol/src/keys.js';
import { exportJwk, generateKeyPair, publicKeyFromJwk } from '../protocol/src/keys.js';
import { CliError, flag, helpText, parse, parseKid, req, str } from './args.js';
import type { CliStreams, CommandSpec } from './args.js';
import { refuseExisting, writeNewFile } from './io.js';

const ALGS: readonly Alg[] = ['EdDSA', 'ES256'];

const GROUP: CommandSpec = {
  name: 'keys',
  positionals: '<subcommand>',
  maxPositionals: 1,
  summary:
    'Key pairs as JWK files.\n\nSubcommands:\n  generate   generate a key pair and write <prefix>.jwk.json and <prefix>.pub.jwk.json\n' +
    '  register   register the rider key with the cloud for this login (after `tandem login`)',
  options: {},
  examples: ['tandem keys generate --alg EdDSA --out issuer --kid hex:01'],
};

const GENERATE: CommandSpec = {
  name: 'keys generate',
  maxPositionals: 0,
  summary:
    'Generates a key pair and writes <prefix>.jwk.json (private JWK, mode 0600) and <prefix>.pub.jwk.json (public JWK, mode 0644).',
  options: {
    alg: {
      type: 'string',
      value: 'EdDSA|ES256',
      required: true,
      description: 'EdDSA (Ed25519: issuer, device) or ES256 (P-256: rider and owner phones)',
    },
    out: { type: 'string', value: '<prefix>', required: true, description: 'path prefix of the two files' },
    kid: {
      type: 'string',
      value: '<text|hex:..>',
      description: 'key id stored in the JWKs; token mint uses it as the COSE "kid" unless --kid is given',
    },
    force: { type: 'boolean', description: 'replace existing files' },
  },
  examples: [
    'tandem keys generate --alg EdDSA --out issuer --kid hex:01',
    'tandem keys generate --alg ES256 --out bianca-phone',
  ],
};

/** The two files written for a key pair. */
export interface KeyFiles {
  readonly privatePath: string;
  readonly publicPath: string;
  readonly publicJwk: JsonWebKey;
}

/**
 * Generates a key pair for `alg` and writes it as `<prefix>.jwk.json` (0600) and `<prefix>.pub.jwk.json`
 * (0644). Both paths are checked before either is written, so a refusal leaves no half pair behind.
 */
export async function writeKeyPair(
  prefix: string,
  alg: Alg,
  kid: string | undefined,
  force: boolean,
): Promise<KeyFiles> {
  const privatePath = `${prefix}.jwk.json`;
  const publicPath = `${prefix}.pub.jwk.json`;
  await refuseExisting(privatePath, force);
  await refuseExisting(publicPath, force);
  const key = generateKeyPair(alg);
  const publicJwk = exportJwk(key.publicKey, kid);
  await writeNewFile(privatePath, JSON.stringify(exportJwk(key, kid), null, 2) + '\n', 0o600, force);
  await writeNewFile(publicPath, JSON.stringify(publicJwk, null, 2) + '\n', 0o644, force);
  return { privatePath, publicPath, publicJwk };
}

async function generate(argv: readonly string[], streams: CliStreams): Promise<number> {
  const p = parse(GENERATE, argv);
  if (p.help) {
    streams.stdout.write(helpText(GENERATE));
    return 0;
  }
  const given = req(p, 'alg');
  const alg = ALGS.find((a) => a.toLowerCase() === given.toLowerCase());
  if (alg === undefined) {
    throw new CliError('ERR_USAGE', `--alg must be EdDSA or ES256, not ${JSON.stringify(given)}`, {
      command: GENERATE.name,
    });
  }
  const kid = str(p, 'kid');
  // Checked here so that a kid a token could not carry is refused before any file is written.
  if (kid !== undefined) parseKid(kid, 'kid');
  const files = await writeKeyPair(req(p, 'out'), alg, kid, flag(p, 'force'));
  streams.stdout.write(
    `private key: ${files.privatePath} (${alg === 'EdDSA' ? 'Ed25519' : 'P-256'}, mode 0600; keep it secret)\n` +
      `public key:  ${files.publicPath} (mode 0644)\n` +
      `raw public key (hex, as the lock console's provision commands take it): ${rawPublicHex(files.publicJwk)}\n`,
  );
  return 0;
}

// The compact public key ([TANDEM-KEY-2]): what `provision anchor add` and `provision claim` expect.
function rawPublicHex(jwk: JsonWebKey): string {
  return Buffer.from(publicKeyFromJwk(jwk).raw).toString('hex');
}

/** Entry point of `tandem keys`. */
export async function run(argv: readonly string[], streams: CliStreams): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'generate') return generate(rest, streams);
  if (sub === 'register') return (await import('./login.js')).registerKey(rest, streams);
  if (sub === undefined || sub === '--help' || sub === '-h') {
    if (sub === undefined)
      throw new CliError('ERR_USAGE', 'missing subcommand (generate, register)', { command: 'keys' });
    streams.stdout.write(helpText(GROUP));
    return 0;
  }
  throw new CliError('ERR_USAGE', `unknown subcommand ${JSON.stringify(sub)} (expected generate, register)`, {
    command: 'keys',
  });
}
