/**
 * Runs the OpenID Provider on its own (see README.md in this folder):
 *
 *   node --import tsx cloud-bridge/src/oidc/main.ts [--port 3000] [--host 127.0.0.1] [--issuer URL]
 *        [--db FILE.sqlite] [--issuer-key KEY.jwk] [--accounts ACCOUNTS.json] [--redirect-uri URI ...]
 *
 * Without --db everything is in memory (with --db: accounts, shares and oidc-provider's sessions and tokens); without --issuer-key a fresh Ed25519 key is made (its public JWK is
 * printed, for provisioning a simulated lock). ACCOUNTS.json is `[{"id","name","password"}]`, hashed with
 * Argon2id on start and added when missing: a development convenience, never a place for real passwords.
 */
import type { JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import type { AdapterFactory } from 'oidc-provider';
import { exportJwk, generateKeyPair, privateKeyFromJwk } from '../../../protocol/src/keys.js';
import { OidcError, isOidcError } from './errors.js';
import { MemoryAccountStore, MemoryDelegationSource } from './memory-store.js';
import { Argon2idHasher } from './passwords.js';
import { createOidcProvider, tandemClients } from './provider.js';
import { SqliteOidcStore } from './sqlite-store.js';
import type { AccountStore, DelegationSource } from './store.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '3000' },
      host: { type: 'string', default: '127.0.0.1' },
      issuer: { type: 'string' },
      db: { type: 'string' },
      'issuer-key': { type: 'string' },
      accounts: { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
    },
    strict: true,
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new OidcError('ERR_OIDC_CONFIG', `--port must be 0-65535 (got ${values.port})`);
  }
  let accounts: AccountStore;
  let shares: DelegationSource;
  let adapter: AdapterFactory | undefined;
  if (values.db) {
    const store = await SqliteOidcStore.open(values.db);
    accounts = store;
    shares = store;
    adapter = store.adapter();
  } else {
    accounts = new MemoryAccountStore();
    shares = new MemoryDelegationSource();
  }
  const key = values['issuer-key']
    ? privateKeyFromJwk(JSON.parse(readFileSync(values['issuer-key'], 'utf8')) as JsonWebKey)
    : generateKeyPair('EdDSA');
  const passwords = new Argon2idHasher();
  if (values.accounts) {
    const list = JSON.parse(readFileSync(values.accounts, 'utf8')) as {
      id: string;
      name: string;
      password: string;
    }[];
    for (const a of list) {
      if (await accounts.findAccount(a.id)) continue;
      await accounts.createAccount({
        id: a.id,
        name: a.name,
        passwordHash: await passwords.hash(a.password),
      });
    }
  }
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(port, values.host, resolve));
  const address = server.address();
  const actualPort = typeof address === 'object' && address ? address.port : port;
  const issuer = values.issuer ?? `http://${values.host}:${actualPort}`;
  const oidc = await createOidcProvider({
    issuer,
    accounts,
    delegations: shares,
    issuerKey: { id: 'tandem', kid: new Uint8Array([1]), key },
    passwords,
    clients: tandemClients(values['redirect-uri'] ?? ['http://127.0.0.1/callback']),
    ...(adapter ? { adapter } : {}),
  });
  server.on('request', oidc.handler);
  process.stdout.write(
    `Tandem OpenID Provider at ${issuer}/.well-known/openid-configuration\n` +
      `issuer key (public, kid 01): ${JSON.stringify(exportJwk(key.publicKey, '01'))}\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`${isOidcError(e) ? `${e.code}: ` : ''}${(e as Error).message}\n`);
  process.exit(1);
});
