/**
 * `tandem token`: mint, inspect and verify delegated access tokens (SPEC.md §5). The rules are
 * `protocol/`'s: this file turns options into calls of `mintToken`, `decodeToken` and `verifyGrant` (chain,
 * time and schedule in the order of SPEC.md §5.7), and their results into text.
 */
import { randomBytes } from 'node:crypto';
import type { AnchorLookup, Grant, TrustAnchor } from '../protocol/src/chain.js';
import { verifyChain, verifyGrant } from '../protocol/src/chain.js';
import type { PrivateKey, PublicKey } from '../protocol/src/keys.js';
import { exportJwk, generateKeyPair, publicKeyFromJwk } from '../protocol/src/keys.js';
import type { DecodedToken, MintClaims, TokenClaims } from '../protocol/src/token.js';
import { SCOPES, decodeToken, mintToken } from '../protocol/src/token.js';
import {
  CliError,
  choice,
  formatSchedule,
  helpText,
  list,
  parse,
  parseDuration,
  parseHex,
  parseKid,
  parseScheduleText,
  parseTime,
  parseUint,
  req,
  str,
} from './args.js';
import type { CliStreams, CommandSpec, OptionSpec, Parsed } from './args.js';
import type { Format } from './io.js';
import { FORMATS, readBytes, readJwk, readPrivateJwk, writeBytes } from './io.js';

const IN_FORMAT: OptionSpec = {
  type: 'string',
  value: 'hex|base64url|binary',
  description: 'encoding of token input (default: detected)',
};

const GROUP: CommandSpec = {
  name: 'token',
  positionals: '<subcommand>',
  maxPositionals: 1,
  summary: [
    'Delegated access tokens (CWT in COSE_Sign1, SPEC.md §5).',
    '',
    'Subcommands:',
    '  mint      sign a token for a holder key, or a delegation link under a parent token',
    '  inspect   print a token as JSON without verifying it',
    '  verify    verify a token or chain as a lock would (signatures, audience, time, schedule)',
  ].join('\n'),
  options: {},
  examples: ['tandem token mint --help'],
};

const MINT: CommandSpec = {
  name: 'token mint',
  maxPositionals: 0,
  summary:
    'Mints a token and prints it (hex by default). A root token is signed by an issuer or owner key and names it by "kid"; with --parent it is a delegation link signed by the parent holder\'s key, without "kid".',
  options: {
    'issuer-key': {
      type: 'string',
      value: '<jwk>',
      description: 'private JWK of the signer of a root token (issuer, or owner for offline sharing)',
    },
    kid: {
      type: 'string',
      value: '<text|hex:..>',
      description: 'COSE "kid" naming the trust anchor (default: the "kid" of --issuer-key)',
    },
    iss: {
      type: 'string',
      value: '<id>',
      description: 'issuer id; for a link, the delegating rider (default: parent "rider")',
    },
    sub: {
      type: 'string',
      value: '<owner>',
      description: "owner of the lock (a link inherits its parent's)",
    },
    aud: { type: 'string', value: '<lock>', description: "lock id (a link inherits its parent's)" },
    'holder-key': {
      type: 'string',
      value: '<jwk>',
      required: true,
      description: "public JWK of the holder's phone key (cnf)",
    },
    scope: {
      type: 'string',
      value: '"<scopes>"',
      required: true,
      description: `space-separated scopes: ${SCOPES.join(' ')}`,
    },
    rider: { type: 'string', value: '<id>', description: "rider id, shown in the lock's audit log" },
    ttl: {
      type: 'string',
      value: '<duration>',
      description: "validity from now: 3600, 30m, 12h, 7d, 2w (default 1d; a link: its parent's exp)",
    },
    exp: { type: 'string', value: '<unix|ISO>', description: 'expiry instead of --ttl' },
    nbf: {
      type: 'string',
      value: '<unix|ISO>',
      description: 'not before (default: a minute before now, for locks whose clock is a little behind)',
    },
    now: {
      type: 'string',
      value: '<unix|ISO>',
      description: 'the time to mint at: iat, and the base of --ttl and the nbf default',
    },
    schedule: {
      type: 'string',
      value: '"<windows>"',
      description:
        'weekly schedule in the lock\'s local time, such as "Mon-Fri 07:00-20:00; Sat 10:00-12:00"',
    },
    'max-uses': { type: 'string', value: '<N>', description: 'most unlocks this token allows on the lock' },
    'min-revocation': {
      type: 'string',
      value: '<V>',
      description: 'lowest revocation list version the lock must hold',
    },
    cti: {
      type: 'string',
      value: '<hex>',
      description: 'token id, 8 to 16 bytes (default: 12 random bytes)',
    },
    parent: {
      type: 'string',
      value: '<token file|->',
      description: 'mint a delegation link under this token',
    },
    'holder-of-parent-key': {
      type: 'string',
      value: '<jwk>',
      description: "private JWK of the parent's holder, which signs the link",
    },
    'in-format': IN_FORMAT,
    format: { type: 'string', value: 'hex|base64url|binary', description: 'output encoding (default hex)' },
  },
  notes: [
    "A delegation link (--parent) is checked before it is printed, with the protocol's chain rules against " +
      'its parent: signed by the parent\'s holder key, the parent grants "delegate", and the link narrows it ' +
      "(scope, time, schedule, uses; same owner and lock). The parent's own signature is not checked here, as " +
      'that needs its trust anchor: run `tandem token verify <parent> --chain <link> --anchor ...` for the ' +
      'whole chain.',
  ],
  examples: [
    'tandem token mint --issuer-key issuer.jwk.json --kid hex:01 --iss tandem --sub adam --aud lock-7f3a \\\n' +
      '    --holder-key bianca.pub.jwk.json --scope "unlock status" --rider bianca --ttl 7d \\\n' +
      '    --schedule "Mon-Fri 07:00-20:00" --max-uses 10 > bianca.hex',
    'tandem token mint --parent bianca.hex --holder-of-parent-key bianca.jwk.json \\\n' +
      '    --holder-key carla.pub.jwk.json --scope unlock --rider carla --ttl 1d > carla.hex',
  ],
};

const INSPECT: CommandSpec = {
  name: 'token inspect',
  positionals: '[file|-]',
  maxPositionals: 1,
  summary:
    'Prints a token as JSON: header (alg, kid), claims (dates as Unix seconds and ISO 8601, cnf as a JWK, schedule as text) and size. The signature is NOT verified.',
  options: { 'in-format': IN_FORMAT },
  notes: ['Reads stdin when the file is - or omitted. A malformed token prints its error code and exits 1.'],
  examples: ['tandem token inspect bianca.hex', 'tandem token mint ... | tandem token inspect -'],
};

const VERIFY: CommandSpec = {
  name: 'token verify',
  positionals: '[file|-]',
  maxPositionals: 1,
  summary:
    'Verifies a token, or a chain (root first, then --chain links), as a lock would offline: signatures against the trust anchors, narrowing, audience, time and weekly schedule. Prints OK and what it grants, or the refusal with its wire status (exit 1).',
  options: {
    anchor: {
      type: 'string',
      multiple: true,
      required: true,
      value: '<jwk>:<kid>:<issuer|owner>:<name>',
      description:
        'a trust anchor: public JWK file, kid (text or hex:..; empty for the JWK\'s "kid"), role, and the issuer id or owner id',
    },
    aud: { type: 'string', value: '<lock>', required: true, description: 'the id of the lock verifying' },
    now: {
      type: 'string',
      value: '<unix|ISO>',
      description: "the lock's time (default: this machine's clock)",
    },
    'time-zone': {
      type: 'string',
      value: '<IANA zone>',
      description: "the lock's time zone for the schedule (default: this machine's, else UTC)",
    },
    chain: {
      type: 'string',
      multiple: true,
      value: '<file>',
      description: 'a delegation link after the token, in order',
    },
    'in-format': IN_FORMAT,
  },
  notes: [
    'Not checked here, because they are state of a lock: revocation (the minimum revocation version is ' +
      'printed), remaining uses, and proof of possession (see `tandem demo`).',
  ],
  examples: [
    'tandem token verify bianca.hex --anchor issuer.pub.jwk.json:hex:01:issuer:tandem --aud lock-7f3a \\\n' +
      '    --now 2026-12-02T09:30:00Z --time-zone Europe/Berlin',
    'tandem token verify bianca.hex --chain carla.hex --anchor issuer.pub.jwk.json::issuer:tandem --aud lock-7f3a',
  ],
};

function helpOr(spec: CommandSpec, p: Parsed, streams: CliStreams): boolean {
  if (p.help) streams.stdout.write(helpText(spec));
  return p.help;
}

function inFormat(p: Parsed): Format | undefined {
  const v = str(p, 'in-format');
  return v === undefined ? undefined : choice(v, FORMATS, 'in-format', 'hex');
}

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const iso = (seconds: number) => new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');
const nowSeconds = () => Math.floor(Date.now() / 1000);

const sameKey = (a: PublicKey, b: PublicKey) => a.alg === b.alg && hex(a.raw) === hex(b.raw);

async function mint(argv: readonly string[], streams: CliStreams): Promise<number> {
  const p = parse(MINT, argv);
  if (helpOr(MINT, p, streams)) return 0;
  const usage = (message: string) => new CliError('ERR_USAGE', message, { command: MINT.name });
  // Every option value is checked before any file is read, so that a usage error is reported as one.
  const format = choice(str(p, 'format'), FORMATS, 'format', 'hex');
  const now = str(p, 'now') === undefined ? nowSeconds() : parseTime(req(p, 'now'), 'now');
  const optional = <T>(name: string, f: (text: string) => T): T | undefined => {
    const text = str(p, name);
    return text === undefined ? undefined : f(text);
  };
  if (str(p, 'ttl') !== undefined && str(p, 'exp') !== undefined)
    throw usage('give --ttl or --exp, not both');
  const ttl = optional('ttl', (t) => parseDuration(t, 'ttl'));
  const expGiven = optional('exp', (t) => parseTime(t, 'exp'));
  const nbfGiven = optional('nbf', (t) => parseTime(t, 'nbf'));
  const scheduleGiven = optional('schedule', parseScheduleText);
  const usesGiven = optional('max-uses', (t) => parseUint(t, 'max-uses', 1));
  const minRevocation = optional('min-revocation', (t) => parseUint(t, 'min-revocation'));
  const cti = optional('cti', (t) => parseHex(t, 'cti', 8, 16)) ?? new Uint8Array(randomBytes(12));
  const scope = req(p, 'scope')
    .split(/\s+/)
    .filter((s) => s !== '');
  if (scope.length === 0) throw usage('--scope needs at least one scope, such as "unlock status"');
  const rider = str(p, 'rider');
  const parentPath = str(p, 'parent');
  if (parentPath !== undefined) {
    for (const o of ['issuer-key', 'kid']) {
      if (str(p, o) !== undefined)
        throw usage(`--${o} is for root tokens; a link (--parent) is signed by --holder-of-parent-key`);
    }
    if (str(p, 'holder-of-parent-key') === undefined) throw usage('--parent needs --holder-of-parent-key');
  } else {
    if (str(p, 'holder-of-parent-key') !== undefined) throw usage('--holder-of-parent-key needs --parent');
    if (str(p, 'issuer-key') === undefined)
      throw usage('missing required option --issuer-key (or --parent for a delegation link)');
    for (const o of ['iss', 'sub', 'aud'])
      if (str(p, o) === undefined) throw usage(`missing required option --${o}`);
  }
  for (const s of scope) {
    if (!(SCOPES as readonly string[]).includes(s)) {
      streams.stderr.write(
        `warning: scope ${JSON.stringify(s)} is not one Tandem defines (${SCOPES.join(' ')}); it grants nothing\n`,
      );
    }
  }

  let parent: DecodedToken | undefined;
  let signer: PrivateKey;
  let kid: Uint8Array | undefined;
  if (parentPath !== undefined) {
    parent = decodeToken(await readBytes(parentPath, streams, inFormat(p)));
    signer = (await readPrivateJwk(req(p, 'holder-of-parent-key'), 'holder-of-parent-key')).key;
    if (!sameKey(signer.publicKey, parent.claims.cnf)) {
      throw new CliError(
        'ERR_INPUT',
        `--holder-of-parent-key is not the holder key ("cnf") of the parent token`,
      );
    }
  } else {
    const issuer = await readPrivateJwk(req(p, 'issuer-key'), 'issuer-key');
    signer = issuer.key;
    const kidText = str(p, 'kid') ?? (typeof issuer.jwk.kid === 'string' ? issuer.jwk.kid : undefined);
    if (kidText === undefined) throw usage('missing --kid, and --issuer-key has no "kid"');
    kid = parseKid(kidText, str(p, 'kid') === undefined ? 'issuer-key: its "kid"' : 'kid');
  }
  const holder = publicKeyFromJwk(await readJwk(req(p, 'holder-key'), 'holder-key'));

  // A link defaults to its parent's bounds, which are the widest it may have ([TANDEM-CHAIN-3]).
  const pc: TokenClaims | undefined = parent?.claims;
  const nbf = nbfGiven ?? Math.max(now - 60, pc?.nbf ?? 0);
  const exp = expGiven ?? (ttl !== undefined ? now + ttl : (pc?.exp ?? now + 86_400));
  if (exp <= nbf) throw usage(`the token would expire (${iso(exp)}) before it is valid (${iso(nbf)})`);
  const iss = str(p, 'iss') ?? pc?.rider;
  if (iss === undefined) throw usage('missing --iss (the parent token has no "rider" to default to)');
  const schedule = scheduleGiven ?? pc?.schedule;
  const maxUses = usesGiven ?? pc?.maxUses;
  const claims: MintClaims = {
    iss,
    sub: str(p, 'sub') ?? pc!.sub,
    aud: str(p, 'aud') ?? pc!.aud,
    exp,
    nbf,
    iat: now,
    cti,
    cnf: holder,
    scope,
    ...(rider !== undefined ? { rider } : {}),
    ...(schedule !== undefined ? { schedule } : {}),
    ...(maxUses !== undefined ? { maxUses } : {}),
    ...(minRevocation !== undefined ? { minRevocation } : {}),
  };
  const token = mintToken(claims, signer, kid);
  if (parent !== undefined) checkLink(parent, token);
  writeBytes(token, format, streams);
  return 0;
}

/**
 * Checks a new link against its parent with the protocol's own chain verification ([TANDEM-CHAIN-2],
 * [TANDEM-CHAIN-3]), not a copy of its rules: the parent's claims are re-signed by a throwaway anchor, so
 * that `verifyChain` checks the link's signature by the parent's holder key, narrowing and audience. The
 * parent's real signature cannot be checked without its trust anchor; `token verify --chain` does that.
 */
function checkLink(parent: DecodedToken, link: Uint8Array): void {
  const stand = generateKeyPair('EdDSA');
  const kid = Uint8Array.of(0);
  const c = parent.claims;
  const standIn = mintToken(
    {
      iss: c.iss,
      sub: c.sub,
      aud: c.aud,
      exp: c.exp,
      nbf: c.nbf,
      iat: c.iat,
      cti: c.cti,
      cnf: c.cnf,
      scope: c.scope,
      ...(c.rider !== undefined ? { rider: c.rider } : {}),
      ...(c.schedule !== undefined ? { schedule: c.schedule } : {}),
      ...(c.maxUses !== undefined ? { maxUses: c.maxUses } : {}),
      ...(c.minRevocation !== undefined ? { minRevocation: c.minRevocation } : {}),
    },
    stand,
    kid,
  );
  const anchor: TrustAnchor = { kid, key: stand.publicKey, role: 'issuer', name: c.iss };
  verifyChain([standIn, link], () => anchor, c.aud);
}

function tokenJson(t: DecodedToken): unknown {
  const c = t.claims;
  return {
    size: t.bytes.length,
    header: {
      alg: t.sign1.alg,
      kid: t.sign1.kid === undefined ? null : hex(t.sign1.kid),
      ...(t.sign1.tags.length > 0 ? { tags: t.sign1.tags } : {}),
    },
    claims: {
      iss: c.iss,
      sub: c.sub,
      aud: c.aud,
      exp: c.exp,
      expIso: iso(c.exp),
      nbf: c.nbf,
      nbfIso: iso(c.nbf),
      iat: c.iat,
      iatIso: iso(c.iat),
      cti: hex(c.cti),
      cnf: exportJwk(c.cnf),
      scope: c.scope.join(' '),
      ...(c.rider !== undefined ? { rider: c.rider } : {}),
      ...(c.schedule !== undefined ? { schedule: formatSchedule(c.schedule) } : {}),
      ...(c.maxUses !== undefined ? { maxUses: c.maxUses } : {}),
      ...(c.minRevocation !== undefined ? { minRevocation: c.minRevocation } : {}),
    },
    verified: false,
  };
}

async function inspect(argv: readonly string[], streams: CliStreams): Promise<number> {
  const p = parse(INSPECT, argv);
  if (helpOr(INSPECT, p, streams)) return 0;
  const token = decodeToken(await readBytes(p.positionals[0] ?? '-', streams, inFormat(p)));
  streams.stdout.write(JSON.stringify(tokenJson(token), null, 2) + '\n');
  return 0;
}

/**
 * Parses `<jwk>:<kid>:<issuer|owner>:<name>` from the right, so that a path may contain colons and the kid
 * may be `hex:..`. An empty kid takes the JWK's own "kid".
 */
async function parseAnchor(text: string): Promise<TrustAnchor> {
  const bad = (why: string) =>
    new CliError(
      'ERR_USAGE',
      `--anchor ${JSON.stringify(text)}: ${why} (expected <jwk>:<kid>:<issuer|owner>:<name>)`,
      {
        command: VERIFY.name,
      },
    );
  const parts = text.split(':');
  if (parts.length < 4) throw bad('too few fields');
  const name = parts.pop()!;
  const role = parts.pop()!;
  let kidText = parts.pop()!;
  if (parts.length >= 2 && parts[parts.length - 1] === 'hex') kidText = `${parts.pop()!}:${kidText}`;
  const path = parts.join(':');
  if (role !== 'issuer' && role !== 'owner')
    throw bad(`role must be issuer or owner, not ${JSON.stringify(role)}`);
  if (name === '') throw bad('empty name');
  if (path === '') throw bad('empty JWK path');
  const jwk = await readJwk(path, 'anchor');
  if (kidText === '') {
    if (typeof jwk.kid !== 'string') throw bad(`empty kid, and ${path} has no "kid"`);
    kidText = jwk.kid;
  }
  return { kid: parseKid(kidText, 'anchor'), key: publicKeyFromJwk(jwk), role, name };
}

function defaultTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

function grantSummary(g: Grant, now: number, timeZone: string): string {
  const leaf = g.leaf;
  const rows: [string, string][] = [
    [
      'anchor',
      `${g.anchor.role} ${JSON.stringify(g.anchor.name)} (kid ${hex(g.anchor.kid)}, ${g.anchor.key.alg})`,
    ],
    [
      'chain',
      `${g.tokens.length} token${g.tokens.length === 1 ? '' : 's'}, ${g.tokens.reduce((n, t) => n + t.bytes.length, 0)} bytes`,
    ],
    ['owner', leaf.sub],
    ['lock', leaf.aud],
    ['holder', `${leaf.cnf.alg} key ${hex(leaf.cnf.raw)}`],
    ...(leaf.rider !== undefined ? ([['rider', leaf.rider]] as [string, string][]) : []),
    ['scope', leaf.scope.join(' ')],
    ['valid', `${iso(g.nbf)} to ${iso(g.exp)} (checked at ${iso(now)})`],
    ['schedule', leaf.schedule === undefined ? 'any time' : `${formatSchedule(leaf.schedule)} (${timeZone})`],
    ['max uses', leaf.maxUses === undefined ? 'unlimited' : String(leaf.maxUses)],
    [
      'revocation',
      `the lock must hold revocation list version >= ${g.minRevocation} and find none of the token ids`,
    ],
    ['token ids', g.ctis.map(hex).join(', ')],
  ];
  return rows.map(([k, v]) => `  ${(k + ':').padEnd(12)}${v}`).join('\n') + '\n';
}

async function verify(argv: readonly string[], streams: CliStreams): Promise<number> {
  const p = parse(VERIFY, argv);
  if (helpOr(VERIFY, p, streams)) return 0;
  const format = inFormat(p);
  const sources = [p.positionals[0] ?? '-', ...list(p, 'chain')];
  if (sources.filter((s) => s === '-').length > 1) {
    throw new CliError('ERR_USAGE', 'stdin (-) can be read only once', { command: VERIFY.name });
  }
  const timeZone = str(p, 'time-zone') ?? defaultTimeZone();
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
  } catch {
    throw new CliError(
      'ERR_USAGE',
      `--time-zone ${JSON.stringify(timeZone)} is not an IANA time zone such as Europe/Berlin`,
      {
        command: VERIFY.name,
      },
    );
  }
  const nowText = str(p, 'now');
  const now = nowText === undefined ? nowSeconds() : parseTime(nowText, 'now');
  const anchors: TrustAnchor[] = [];
  for (const text of list(p, 'anchor')) {
    const a = await parseAnchor(text);
    if (anchors.some((b) => hex(b.kid) === hex(a.kid))) {
      throw new CliError('ERR_USAGE', `--anchor: two anchors with kid ${hex(a.kid)}`, {
        command: VERIFY.name,
      });
    }
    anchors.push(a);
  }
  const chain: Uint8Array[] = [];
  for (const s of sources) chain.push(await readBytes(s, streams, format));
  const lookup: AnchorLookup = (kid) => anchors.find((a) => hex(a.kid) === hex(kid));
  // A CLI that is told the time knows it exactly: the bound is one instant ([TANDEM-TIME-CHECK]).
  const grant = verifyGrant(chain, {
    anchors: lookup,
    lockId: req(p, 'aud'),
    time: { earliest: now, latest: now },
    timeZone,
  });
  streams.stdout.write('OK\n' + grantSummary(grant, now, timeZone));
  return 0;
}

/** Entry point of `tandem token`. */
export async function run(argv: readonly string[], streams: CliStreams): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'mint':
      return mint(rest, streams);
    case 'inspect':
      return inspect(rest, streams);
    case 'verify':
      return verify(rest, streams);
    case '--help':
    case '-h':
      streams.stdout.write(helpText(GROUP));
      return 0;
    case undefined:
      throw new CliError('ERR_USAGE', 'missing subcommand (mint, inspect or verify)', { command: 'token' });
    default:
      throw new CliError(
        'ERR_USAGE',
        `unknown subcommand ${JSON.stringify(sub)} (expected mint, inspect or verify)`,
        {
          command: 'token',
        },
      );
  }
}
