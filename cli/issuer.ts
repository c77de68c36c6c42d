/**
 * `tandem cloud issuer encrypt|rotate|status`: the issuer keyring (cloud-bridge/src/keyring.ts).
 *
 * - `encrypt` encrypts a plaintext issuer key (an `issuer.jwk.json` of earlier versions, or a keyring written
 *   with `--insecure-plaintext-key`) under `TANDEM_ISSUER_SECRET`: the migration is a command, never silent.
 * - `rotate [--overlap 7d]` starts a key rotation ([TANDEM-ANCHOR-7]): through the running cloud's admin
 *   channel when one runs (it publishes the anchor updates at once), otherwise on the file (the cloud
 *   publishes them when it next starts).
 * - `status` lists the keys (kid, state, dates), never key material.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, EXIT, parseDuration } from './args.js';
import type { CliStreams } from './args.js';

interface KeyRow {
  kid: string;
  state: string;
  createdAt: number;
  retireAfter?: number;
}

const iso = (s: number): string => new Date(s * 1000).toISOString();

function print(
  streams: CliStreams,
  status: { anchorVersion: number; encrypted: boolean; keys: KeyRow[] },
): void {
  streams.stdout.write(
    `anchor version ${status.anchorVersion}; private keys ${status.encrypted ? 'encrypted (A256GCM)' : 'UNENCRYPTED'}\n`,
  );
  for (const k of status.keys) {
    streams.stdout.write(
      `${k.state.padEnd(8)} ${k.kid} created ${iso(k.createdAt)}` +
        (k.retireAfter === undefined ? '' : ` retire-after ${iso(k.retireAfter)}`) +
        '\n',
    );
  }
}

/** The running cloud's admin channel, or undefined when none answers. */
async function runningAdmin(dir: string): Promise<{ port: number; token: string } | undefined> {
  const portFile = join(dir, 'admin.port');
  const tokenFile = join(dir, 'admin.token');
  if (!existsSync(portFile) || !existsSync(tokenFile)) return undefined;
  const port = Number(readFileSync(portFile, 'utf8').trim());
  const token = readFileSync(tokenFile, 'utf8').trim();
  const { adminRequest } = await import('../cloud-bridge/src/admin.js');
  try {
    await adminRequest(port, token, 'GET', '/issuer');
    return { port, token };
  } catch (e) {
    const { isCloudError } = await import('../cloud-bridge/src/errors.js');
    if (isCloudError(e, 'ERR_CLOUD_UNAVAILABLE')) return undefined;
    throw e;
  }
}

/** Runs `tandem cloud issuer <sub>`. */
export async function runIssuer(
  sub: string | undefined,
  dir: string,
  options: { overlap?: string; insecurePlaintextKey: boolean },
  streams: CliStreams,
): Promise<number> {
  const { IssuerKeyring, ISSUER_SECRET_VARIABLE } = await import('../cloud-bridge/src/keyring.js');
  const secret = process.env[ISSUER_SECRET_VARIABLE];
  const open = () =>
    IssuerKeyring.open({
      dir,
      ...(secret === undefined || secret === '' ? {} : { secret }),
      insecurePlaintext: options.insecurePlaintextKey,
    });
  if (sub === 'encrypt') {
    if (secret === undefined || secret === '') {
      const { CloudError } = await import('../cloud-bridge/src/errors.js');
      throw new CloudError(
        'ERR_CLOUD_SECRET_MISSING',
        `${ISSUER_SECRET_VARIABLE} is not set: set it to the secret to encrypt the issuer key under (e.g. \`openssl rand -hex 32\`)`,
      );
    }
    streams.stdout.write(`${IssuerKeyring.encrypt(dir, secret)}\n`);
    return EXIT.OK;
  }
  const { KEYRING_FILE, LEGACY_KEY_FILE } = await import('../cloud-bridge/src/keyring.js');
  if (
    (sub === 'rotate' || sub === 'status') &&
    !existsSync(join(dir, KEYRING_FILE)) &&
    !existsSync(join(dir, LEGACY_KEY_FILE))
  ) {
    throw new CliError(
      'ERR_IO',
      `no issuer keyring in ${dir}: start \`tandem cloud --data-dir ${dir}\` once first`,
    );
  }
  if (sub === 'rotate') {
    const overlap = parseDuration(options.overlap ?? '7d', 'overlap');
    const admin = await runningAdmin(dir);
    if (admin !== undefined) {
      const { adminRequest } = await import('../cloud-bridge/src/admin.js');
      const out = (await adminRequest(admin.port, admin.token, 'POST', '/issuer/rotate', { overlap })) as {
        rotated: string;
        anchorVersion: number;
        encrypted: boolean;
        keys: KeyRow[];
      };
      streams.stdout.write(
        `rotated: ${out.rotated} signs from the end of the overlap; anchor updates published\n`,
      );
      print(streams, out);
      return EXIT.OK;
    }
    const ring = open();
    const next = ring.rotate(overlap);
    streams.stdout.write(
      `rotated: ${next.kidText} signs from the end of the overlap; no cloud is running, so the anchor updates ` +
        'go out when `tandem cloud` next starts\n',
    );
    print(streams, {
      anchorVersion: ring.anchorVersion,
      encrypted: ring.encrypted,
      keys: ring.keys.map((k) => ({
        kid: k.kidText,
        state: k.state,
        createdAt: k.createdAt,
        ...(k.retireAfter === undefined ? {} : { retireAfter: k.retireAfter }),
      })),
    });
    return EXIT.OK;
  }
  if (sub === 'status') {
    const admin = await runningAdmin(dir);
    if (admin !== undefined) {
      const { adminRequest } = await import('../cloud-bridge/src/admin.js');
      print(streams, (await adminRequest(admin.port, admin.token, 'GET', '/issuer')) as never);
      return EXIT.OK;
    }
    const ring = open();
    print(streams, {
      anchorVersion: ring.anchorVersion,
      encrypted: ring.encrypted,
      keys: ring.keys.map((k) => ({
        kid: k.kidText,
        state: k.state,
        createdAt: k.createdAt,
        ...(k.retireAfter === undefined ? {} : { retireAfter: k.retireAfter }),
      })),
    });
    return EXIT.OK;
  }
  throw new CliError(
    'ERR_USAGE',
    `tandem cloud issuer takes encrypt, rotate or status, not ${JSON.stringify(sub)}`,
    {
      command: 'cloud',
    },
  );
}
