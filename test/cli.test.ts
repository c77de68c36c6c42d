// The `tandem` CLI end to end (cli/README.md): each case spawns `node --import tsx cli/main.ts`, so the tests
// need no build; one case runs the built launcher when dist/ exists.
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatSchedule, parseScheduleText } from '../cli/args.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST_MAIN = join(ROOT, 'dist', 'cli', 'main.js');
// A Wednesday, 10:30 in Europe/Berlin: inside "Mon-Fri 07:00-20:00".
const NOW = '2026-12-02T09:30:00Z';
const LOCK = 'lock-7f3a';

interface Run {
  code: number | null;
  stdout: string;
  raw: Buffer;
  stderr: string;
}

function tandem(args: readonly string[], input?: string | Uint8Array): Run {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
    cwd: ROOT,
    input: input ?? '',
    timeout: 20_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout.toString(), raw: r.stdout, stderr: r.stderr.toString() };
}

/** A refusal or error is one coded line (plus a status line), never a stack trace. */
function expectCoded(r: Run, code: number, errorCode: string | RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).toMatch(typeof errorCode === 'string' ? new RegExp(`^${errorCode}: `) : errorCode);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

let dir: string;
const f = (name: string) => join(dir, name);
const anchor = () => `${f('issuer.pub.jwk.json')}:hex:01:issuer:tandem`;
const mintArgs = (extra: readonly string[] = []) => [
  'token',
  'mint',
  '--issuer-key',
  f('issuer.jwk.json'),
  '--iss',
  'tandem',
  '--sub',
  'adam',
  '--aud',
  LOCK,
  '--holder-key',
  f('bianca.pub.jwk.json'),
  '--scope',
  'unlock status delegate',
  '--rider',
  'bianca',
  '--ttl',
  '7d',
  '--schedule',
  'Mon-Fri 07:00-20:00; Sat 10:00-12:00',
  '--max-uses',
  '10',
  '--now',
  NOW,
  ...extra,
];
const verifyArgs = (source: string, extra: readonly string[] = []) => [
  'token',
  'verify',
  source,
  '--anchor',
  anchor(),
  '--aud',
  LOCK,
  '--now',
  NOW,
  '--time-zone',
  'Europe/Berlin',
  ...extra,
];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-cli-test-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('tandem keys generate', () => {
  it('writes the private JWK with mode 0600 and the public JWK with 0644', () => {
    const r = tandem(['keys', 'generate', '--alg', 'EdDSA', '--out', f('issuer'), '--kid', 'hex:01']);
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(f('issuer.jwk.json')).mode & 0o777).toBe(0o600);
    expect(statSync(f('issuer.pub.jwk.json')).mode & 0o777).toBe(0o644);
    const priv = JSON.parse(readFileSync(f('issuer.jwk.json'), 'utf8')) as Record<string, unknown>;
    const pub = JSON.parse(readFileSync(f('issuer.pub.jwk.json'), 'utf8')) as Record<string, unknown>;
    expect(priv).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', kid: 'hex:01' });
    expect(typeof priv.d).toBe('string');
    expect(pub.d).toBeUndefined();
    expect(pub.x).toBe(priv.x);
    for (const name of ['bianca', 'carla']) {
      expect(tandem(['keys', 'generate', '--alg', 'ES256', '--out', f(name)]).code).toBe(0);
    }
    expect(JSON.parse(readFileSync(f('bianca.pub.jwk.json'), 'utf8'))).toMatchObject({
      kty: 'EC',
      crv: 'P-256',
    });
  });

  it('refuses to overwrite a key unless --force, and keeps 0600 when forced', () => {
    const before = readFileSync(f('issuer.jwk.json'), 'utf8');
    expectCoded(tandem(['keys', 'generate', '--alg', 'EdDSA', '--out', f('issuer')]), 3, 'ERR_IO');
    expect(readFileSync(f('issuer.jwk.json'), 'utf8')).toBe(before);
    const other = f('other');
    expect(tandem(['keys', 'generate', '--alg', 'ES256', '--out', other]).code).toBe(0);
    writeFileSync(`${other}.jwk.json`, 'x', { mode: 0o644 });
    expect(tandem(['keys', 'generate', '--alg', 'ES256', '--out', other, '--force']).code).toBe(0);
    expect(statSync(`${other}.jwk.json`).mode & 0o777).toBe(0o600);
  });
});

describe('tandem token mint, inspect, verify', () => {
  it('round-trips through files in hex', () => {
    const minted = tandem([...mintArgs(), '--cti', '00112233445566778899aabb']);
    expect(minted.code, minted.stderr).toBe(0);
    expect(minted.stdout).toMatch(/^[0-9a-f]+\n$/);
    writeFileSync(f('bianca.hex'), minted.stdout);

    const inspected = tandem(['token', 'inspect', f('bianca.hex')]);
    expect(inspected.code, inspected.stderr).toBe(0);
    const json = JSON.parse(inspected.stdout) as {
      size: number;
      header: { alg: string; kid: string };
      claims: Record<string, unknown>;
      verified: boolean;
    };
    expect(json.size).toBe(minted.stdout.trim().length / 2);
    expect(json.header).toEqual({ alg: 'EdDSA', kid: '01' });
    expect(json.claims).toMatchObject({
      iss: 'tandem',
      sub: 'adam',
      aud: LOCK,
      iat: Date.parse(NOW) / 1000,
      iatIso: NOW,
      expIso: '2026-12-09T09:30:00Z',
      cti: '00112233445566778899aabb',
      scope: 'unlock status delegate',
      rider: 'bianca',
      schedule: 'Mon-Fri 07:00-20:00; Sat 10:00-12:00',
      maxUses: 10,
    });
    expect(json.claims.cnf).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
    expect(json.verified).toBe(false);

    const verified = tandem(verifyArgs(f('bianca.hex')));
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(/^OK\n/);
    expect(verified.stdout).toMatch(/rider:\s+bianca/);
    expect(verified.stdout).toMatch(/schedule:\s+Mon-Fri 07:00-20:00; Sat 10:00-12:00 \(Europe\/Berlin\)/);
  });

  it('round-trips through stdin in hex and in base64url, and through a binary file', () => {
    const hex = readFileSync(f('bianca.hex'), 'utf8');
    expect(JSON.parse(tandem(['token', 'inspect', '-'], hex).stdout).claims.rider).toBe('bianca');
    expect(tandem(verifyArgs('-'), hex).stdout).toMatch(/^OK\n/);

    const b64 = tandem([...mintArgs(), '--format', 'base64url']);
    expect(b64.code, b64.stderr).toBe(0);
    expect(b64.stdout).toMatch(/^[A-Za-z0-9_-]+\n$/);
    expect(JSON.parse(tandem(['token', 'inspect'], b64.stdout).stdout).header.kid).toBe('01');
    expect(tandem(verifyArgs('-'), b64.stdout).stdout).toMatch(/^OK\n/);
    expect(tandem(verifyArgs('-', ['--in-format', 'base64url']), b64.stdout).code).toBe(0);

    const bin = tandem([...mintArgs(), '--format', 'binary']);
    expect(bin.code, bin.stderr).toBe(0);
    writeFileSync(f('bianca.bin'), bin.raw);
    expect(tandem(verifyArgs(f('bianca.bin'))).stdout).toMatch(/^OK\n/);
    expect(tandem(verifyArgs('-'), bin.raw).stdout).toMatch(/^OK\n/);
  });

  it('refuses an expired token at --now with ERR_TOKEN_EXPIRED and its wire status', () => {
    const r = tandem(verifyArgs(f('bianca.hex'), ['--now', '2026-12-20T09:30:00Z']));
    expectCoded(r, 1, 'ERR_TOKEN_EXPIRED');
    expect(r.stderr).toMatch(/status EXPIRED \(0x15\): the token has expired/);
    expect(r.stdout).toBe('');
  });

  it('refuses another lock with ERR_AUDIENCE_MISMATCH', () => {
    const r = tandem([...verifyArgs(f('bianca.hex')), '--aud', 'lock-other']);
    expectCoded(r, 1, 'ERR_AUDIENCE_MISMATCH');
    expect(r.stderr).toMatch(/status WRONG_AUDIENCE \(0x13\)/);
  });

  it('refuses a bit-flipped signature with ERR_SIGNATURE_INVALID', () => {
    const bytes = Buffer.from(readFileSync(f('bianca.hex'), 'utf8').trim(), 'hex');
    bytes[bytes.length - 1]! ^= 1;
    expectCoded(tandem(verifyArgs('-'), bytes.toString('hex')), 1, 'ERR_SIGNATURE_INVALID');
  });

  it('refuses a time outside the weekly schedule with ERR_OUTSIDE_SCHEDULE', () => {
    // Sunday 2026-12-06 20:30 in Berlin.
    expectCoded(
      tandem(verifyArgs(f('bianca.hex'), ['--now', '2026-12-06T19:30:00Z'])),
      1,
      'ERR_OUTSIDE_SCHEDULE',
    );
  });

  it('refuses a token whose kid names no anchor with ERR_KEY_UNKNOWN', () => {
    const r = tandem([
      'token',
      'verify',
      f('bianca.hex'),
      '--anchor',
      `${f('issuer.pub.jwk.json')}:hex:02:issuer:tandem`,
      '--aud',
      LOCK,
      '--now',
      NOW,
    ]);
    expectCoded(r, 1, 'ERR_KEY_UNKNOWN');
    expect(r.stderr).toMatch(/status UNKNOWN_SIGNER/);
  });

  const malformed: [string, string, string][] = [
    ['not hex or base64url', 'zz', 'ERR_CBOR_INVALID'],
    ['empty', '', 'ERR_INPUT'],
    ['truncated hex', '8443a10127a104', 'ERR_CBOR_INVALID'],
    ['an odd number of hex digits', '8443a', 'ERR_INPUT'],
    ['not a token at all', 'a0', 'ERR_COSE_INVALID'],
  ];
  for (const [name, input, code] of malformed) {
    it(`gives a coded error, not a stack trace, for input that is ${name}`, () => {
      expectCoded(tandem(['token', 'inspect', '-'], input), 1, code);
    });
  }

  it('gives a coded error for a truncated real token', () => {
    const hex = readFileSync(f('bianca.hex'), 'utf8').trim();
    expectCoded(tandem(['token', 'inspect'], hex.slice(0, 100)), 1, /^ERR_(CBOR|COSE)_INVALID: /);
  });
});

describe('tandem token mint --parent (delegation links)', () => {
  it('mints a narrower link that verifies as a chain', () => {
    const link = tandem([
      'token',
      'mint',
      '--parent',
      f('bianca.hex'),
      '--holder-of-parent-key',
      f('bianca.jwk.json'),
      '--holder-key',
      f('carla.pub.jwk.json'),
      '--scope',
      'unlock',
      '--rider',
      'carla',
      '--ttl',
      '1d',
      '--now',
      NOW,
    ]);
    expect(link.code, link.stderr).toBe(0);
    writeFileSync(f('carla.hex'), link.stdout);
    const inspected = JSON.parse(tandem(['token', 'inspect', f('carla.hex')]).stdout);
    expect(inspected.header.kid).toBeNull();
    expect(inspected.claims).toMatchObject({ iss: 'bianca', sub: 'adam', aud: LOCK, maxUses: 10 });
    const r = tandem(verifyArgs(f('bianca.hex'), ['--chain', f('carla.hex')]));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/chain:\s+2 tokens/);
    expect(r.stdout).toMatch(/rider:\s+carla/);
  });

  it('refuses to mint a link that widens its parent', () => {
    const r = tandem([
      'token',
      'mint',
      '--parent',
      f('bianca.hex'),
      '--holder-of-parent-key',
      f('bianca.jwk.json'),
      '--holder-key',
      f('carla.pub.jwk.json'),
      '--scope',
      'unlock manage',
    ]);
    expectCoded(r, 1, 'ERR_CHAIN_INVALID');
    expect(r.stderr).toMatch(/widens its parent with "manage"/);
    expect(r.stdout).toBe('');
  });

  it("refuses a signing key that is not the parent's holder key", () => {
    const r = tandem([
      'token',
      'mint',
      '--parent',
      f('bianca.hex'),
      '--holder-of-parent-key',
      f('carla.jwk.json'),
      '--holder-key',
      f('carla.pub.jwk.json'),
      '--scope',
      'unlock',
    ]);
    expectCoded(r, 1, 'ERR_INPUT');
  });
});

describe('usage errors exit 2 and name the argument', () => {
  const cases: [string, string[], RegExp][] = [
    ['an unknown option', ['token', 'mint', '--bogus'], /unknown option --bogus/],
    ['a missing value', ['token', 'verify', 'x', '--aud'], /option --aud needs a value/],
    ['a value swallowing the next option', ['keys', 'generate', '--out', '--force'], /--out needs a value/],
    [
      'a value that starts with a dash',
      ['token', 'verify', 'x', '--aud', '-x1'],
      /option --aud needs a value; write one that starts with '-' as --aud=<value>/,
    ],
    ['a value given to a flag', ['keys', 'generate', '--force=yes'], /--force does not take a value/],
    ['a missing required option', ['token', 'verify', 'x', '--aud', LOCK], /--anchor/],
    ['a surplus positional', ['token', 'inspect', 'a', 'b'], /unexpected argument "b"/],
    ['an unknown command', ['frobnicate'], /unknown command "frobnicate"/],
    ['an unknown subcommand', ['token', 'sign'], /unknown subcommand "sign"/],
    ['a bad algorithm', ['keys', 'generate', '--alg', 'RSA', '--out', 'x'], /--alg must be EdDSA or ES256/],
    ['a bad input format', ['token', 'inspect', '--in-format', 'pem'], /--in-format must be one of/],
    [
      'a bad anchor',
      ['token', 'verify', 'x', '--anchor', 'k.json:issuer', '--aud', LOCK],
      /--anchor "k.json:issuer"/,
    ],
    [
      'a bad --now',
      ['token', 'verify', 'x', '--anchor', 'a:b:issuer:c', '--aud', LOCK, '--now', 'soon'],
      /--now/,
    ],
  ];
  for (const [name, args, message] of cases) {
    it(name, () => {
      const r = tandem(args);
      expectCoded(r, 2, 'ERR_USAGE');
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/Run 'tandem .*--help' for usage/);
    });
  }

  const mintCases: [string, string[], RegExp][] = [
    ['a misspelt day', ['--schedule', 'Mon-Fry 07:00-20:00'], /--schedule window 1 .*unknown day "Fry"/],
    [
      'a window crossing midnight',
      ['--schedule', 'Fri 22:00-02:00'],
      /--schedule window 1 .*cannot cross midnight/,
    ],
    ['a bad time', ['--schedule', 'Sat 25:00-26:00'], /--schedule window 1 .*bad time "25:00"/],
    ['a bad duration', ['--ttl', '7x'], /--ttl must be a positive duration/],
    ['--ttl with --exp', ['--exp', '2026-12-31'], /--ttl or --exp, not both/],
    ['zero uses', ['--max-uses', '0'], /--max-uses must be an integer from 1/],
    ['a short cti', ['--cti', '0011'], /--cti must be 8 to 16 bytes/],
  ];
  for (const [name, extra, message] of mintCases) {
    it(`token mint with ${name}`, () => {
      const r = tandem([...mintArgs(), ...extra]);
      expectCoded(r, 2, 'ERR_USAGE');
      expect(r.stderr).toMatch(message);
    });
  }
});

describe('--help', () => {
  const commands = [
    [],
    ['keys'],
    ['keys', 'generate'],
    ['token'],
    ['token', 'mint'],
    ['token', 'inspect'],
    ['token', 'verify'],
    ['demo'],
  ];
  for (const command of commands) {
    it(`tandem ${[...command, '--help'].join(' ')}`, () => {
      const r = tandem([...command, '--help']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: tandem ${command.join(' ')}`));
      expect(r.stdout).toMatch(/\nExamples?:\n {2}\S/);
      expect(r.stderr).toBe('');
    });
  }

  it('prints the version', () => {
    expect(tandem(['--version']).stdout).toMatch(/^tandem \d+\.\d+\.\d+\n$/);
  });
});

describe('start-up', () => {
  it('loads command modules lazily: `keys` never loads the CBOR stack, `--help` no protocol code', () => {
    // A module hook that logs every resolved URL to stderr, registered after tsx.
    const hooks = join(dir, 'trace-hooks.mjs');
    writeFileSync(
      hooks,
      "export async function resolve(s, c, next) { const r = await next(s, c); process.stderr.write('load ' + r.url + '\\n'); return r; }\n",
    );
    const register = join(dir, 'trace-register.mjs');
    writeFileSync(
      register,
      `import { register } from 'node:module';\nregister(${JSON.stringify(`file://${hooks}`)});\n`,
    );
    const loaded = (args: string[]) => {
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', '--import', register, 'cli/main.ts', ...args],
        {
          cwd: ROOT,
          timeout: 20_000,
        },
      );
      expect(r.status, r.stderr.toString()).toBe(0);
      return r.stderr.toString();
    };
    const help = loaded(['--help']);
    expect(help).toMatch(/cli\/args\.ts/);
    expect(help).not.toMatch(/protocol\/src|cli\/(keys|token|demo)\.ts/);
    const keys = loaded(['keys', 'generate', '--help']);
    expect(keys).toMatch(/protocol\/src\/keys\.ts/);
    expect(keys).not.toMatch(/cbor-x|cli\/(token|demo)\.ts/);
    expect(loaded(['token', 'inspect', '--help'])).toMatch(/cbor-x/);
  });
});

describe('tandem demo', () => {
  it('runs offline, shows the refusals and sizes, and exits 0', () => {
    const r = tandem(['demo']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/verify\s+OK/);
    expect(r.stdout).toMatch(/proof of possession OK/);
    expect(r.stdout).toMatch(/thief's key: ERR_POP_INVALID/);
    expect(r.stdout).toMatch(/adding "manage": ERR_CHAIN_INVALID/);
    expect(r.stdout).toMatch(/token \d+ B/);
    expect(r.stdout).toMatch(/\d+ writes at ATT MTU 23, \d+ at MTU 185/);
    expect(r.stderr).toBe('');
  });
});

describe('bin/tandem.js', () => {
  it('tells to run the build when dist/ is missing, exit 2', () => {
    // A copy of the launcher in a directory without dist/ beside it.
    const copy = join(dir, 'launcher', 'bin');
    mkdirSync(copy, { recursive: true });
    copyFileSync(join(ROOT, 'bin', 'tandem.js'), join(copy, 'tandem.js'));
    const r = spawnSync(process.execPath, [join(copy, 'tandem.js'), '--help'], { timeout: 20_000 });
    expect(r.status).toBe(2);
    expect(r.stderr.toString()).toMatch(/npm run build/);
  });

  it.skipIf(!existsSync(DIST_MAIN))(
    'runs the built CLI (skipped without `npm run build`: needs dist/cli/main.js)',
    () => {
      const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'tandem.js'), '--help'], { timeout: 20_000 });
      expect(r.status, r.stderr.toString()).toBe(0);
      expect(r.stdout.toString()).toMatch(/^Usage: tandem <command>/);
    },
  );
});

describe('schedule text', () => {
  const cases: [string, string][] = [
    ['Mon-Fri 07:00-20:00; Sat 10:00-12:00', 'Mon-Fri 07:00-20:00; Sat 10:00-12:00'],
    ['daily 00:00-24:00', 'Mon-Sun 00:00-24:00'],
    ['sat,sunday 9:00-10:30', 'Sat,Sun 09:00-10:30'],
    ['Fri-Mon 18:00-23:00', 'Mon,Fri-Sun 18:00-23:00'],
    ['Mon,Wed,Fri 06:00-07:00', 'Mon,Wed,Fri 06:00-07:00'],
  ];
  for (const [text, normal] of cases) {
    it(`reads ${JSON.stringify(text)} and writes it back as ${JSON.stringify(normal)}`, () => {
      const windows = parseScheduleText(text);
      expect(formatSchedule(windows)).toBe(normal);
      expect(parseScheduleText(normal)).toEqual(windows);
    });
  }

  it('sets bit 0 for Monday and counts minutes from midnight', () => {
    expect(parseScheduleText('Mon 07:00-20:00; Sun 10:00-12:00')).toEqual([
      { days: 0b0000001, start: 420, end: 1200 },
      { days: 0b1000000, start: 600, end: 720 },
    ]);
  });
});
