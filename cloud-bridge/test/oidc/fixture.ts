/**
 * A Tandem OpenID Provider on 127.0.0.1 for tests, with three accounts (adam, bianca, carol), an in-memory
 * share store, a fresh Ed25519 issuer key, and a tiny cookie-keeping browser that fills in the HTML forms.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PrivateKey } from '../../../protocol/src/keys.js';
import { generateKeyPair } from '../../../protocol/src/keys.js';
import type { IssuerKey } from '../../src/oidc/delegations.js';
import { MemoryAccountStore, MemoryDelegationSource } from '../../src/oidc/memory-store.js';
import { SqliteOidcStore } from '../../src/oidc/sqlite-store.js';
import type { AccountStore, DelegationSource, Share } from '../../src/oidc/store.js';
import type { PasswordHasher } from '../../src/oidc/passwords.js';
import { Argon2idHasher } from '../../src/oidc/passwords.js';
import type { OidcProviderOptions, TandemOidc } from '../../src/oidc/provider.js';
import { createOidcProvider, tandemClients } from '../../src/oidc/provider.js';

export const APP_REDIRECT = 'http://127.0.0.1/callback';
export const PASSWORDS: Record<string, string> = {
  adam: 'adam-correct-horse',
  bianca: 'bianca-battery-staple',
  carol: 'carol-long-passphrase',
};
const NAMES: Record<string, string> = { adam: 'Adam Owner', bianca: 'Bianca Doe', carol: 'Carol Roe' };

// Argon2id at a low memory cost keeps the suite quick; the production default is DEFAULT_ARGON2ID.
const hasher: PasswordHasher = new Argon2idHasher({ memoryCostKiB: 1024, timeCost: 1, parallelism: 1 });
let hashes: Promise<Record<string, string>> | undefined;

/** Share writes, as both stores offer them. */
export interface ShareStore extends DelegationSource {
  put(share: Share): void;
  revoke(id: string): boolean;
  reportUses(id: string, uses: number): void;
}

/** `memory`: the in-memory stores and oidc-provider's development adapter; `sqlite`: one SQLite database for all. */
export type StoreKind = 'memory' | 'sqlite';

export interface Fixture {
  readonly issuer: string;
  readonly oidc: TandemOidc;
  readonly accounts: AccountStore;
  readonly shares: ShareStore;
  readonly issuerKey: IssuerKey & { key: PrivateKey };
  close(): Promise<void>;
}

/** Starts a provider; `extra` overrides options (rate limiter, clients, ttl). */
export async function startProvider(
  extra: Partial<OidcProviderOptions> = {},
  kind: StoreKind = 'memory',
): Promise<Fixture> {
  hashes ??= (async () => {
    const out: Record<string, string> = {};
    for (const [id, pw] of Object.entries(PASSWORDS)) out[id] = await hasher.hash(pw);
    return out;
  })();
  const sqlite = kind === 'sqlite' ? await SqliteOidcStore.open(':memory:') : undefined;
  const accounts: AccountStore = sqlite ?? new MemoryAccountStore();
  for (const [id, hash] of Object.entries(await hashes)) {
    await accounts.createAccount({ id, name: NAMES[id]!, passwordHash: hash });
  }
  const shares: ShareStore = sqlite ?? new MemoryDelegationSource();
  const issuerKey = { id: 'tandem', kid: new Uint8Array([1]), key: generateKeyPair('EdDSA') };
  // The issuer URL needs the port, and the provider needs the issuer URL: listen first, route later.
  const route: { handler?: TandemOidc['handler'] } = {};
  const server: Server = createServer((req, res) => route.handler!(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const oidc = await createOidcProvider({
    issuer,
    accounts,
    delegations: shares,
    issuerKey,
    passwords: hasher,
    clients: [
      ...tandemClients([APP_REDIRECT]),
      // A third-party client: it may sign people in, never fetch their bike keys.
      {
        client_id: 'other-app',
        client_name: 'Other app',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [APP_REDIRECT],
        scope: 'openid profile offline_access',
      },
    ],
    deviceInterval: 1,
    ...(sqlite ? { adapter: sqlite.adapter() } : {}),
    ...extra,
  });
  route.handler = oidc.handler;
  return {
    issuer,
    oidc,
    accounts,
    shares,
    issuerKey,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          sqlite?.close();
          resolve();
        });
      }),
  };
}

/** What one browser request returned. */
export interface Page {
  readonly status: number;
  readonly url: string;
  readonly location?: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** A browser with a cookie jar that follows same-origin redirects and stops at the first foreign one. */
export class Browser {
  private readonly cookies = new Map<string, string>();
  constructor(private readonly origin: string) {}

  private remember(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  /** One request, no redirect following. */
  async request(
    url: string,
    init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {},
  ): Promise<Page> {
    const headers: Record<string, string> = { ...init.headers };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const res = await fetch(new URL(url, this.origin), {
      method: init.method ?? (body !== undefined ? 'POST' : 'GET'),
      headers,
      body,
      redirect: 'manual',
    });
    this.remember(res);
    const location = res.headers.get('location') ?? undefined;
    return {
      status: res.status,
      url: new URL(url, this.origin).href,
      body: await res.text(),
      headers: Object.fromEntries(res.headers),
      ...(location ? { location: new URL(location, new URL(url, this.origin)).href } : {}),
    };
  }

  /** Follows same-origin redirects (at most 10); returns the last page, or the foreign redirect. */
  async go(url: string, init: { form?: Record<string, string> } = {}): Promise<Page> {
    let page = await this.request(url, init);
    for (let i = 0; i < 10 && page.location && new URL(page.location).origin === this.origin; i++) {
      page = await this.request(page.location);
    }
    return page;
  }

  /** Signs in at the login page and allows the consent page, if shown; returns where the flow ends. */
  async signInAndConsent(start: Page, login: string, password = PASSWORDS[login]!): Promise<Page> {
    let page = start;
    const loginAction = formAction(page.body, 'login');
    if (loginAction) page = await this.go(loginAction, { form: { login, password } });
    const confirm = formAction(page.body, 'confirm');
    if (confirm) page = await this.go(confirm, { form: {} });
    return page;
  }
}

/** The action of the interaction form ending in `/login` or `/confirm`, if the page has it. */
export function formAction(html: string, kind: 'login' | 'confirm'): string | undefined {
  return new RegExp(`action="(/interaction/[A-Za-z0-9_-]+/${kind})"`).exec(html)?.[1];
}

/** Hidden inputs and action of the form with id `formId`, or of the first form (oidc-provider's device flow). */
export function hiddenForm(
  html: string,
  formId?: string,
): { action: string; fields: Record<string, string> } {
  const id = formId === undefined ? '' : `[^>]*id="${formId.replace('.', '\\.')}"`;
  const form = new RegExp(`<form${id}[^>]*>([\\s\\S]*?)</form>`).exec(html);
  if (!form) throw new Error(`no form ${formId} in page: ${html.slice(0, 400)}`);
  const action = /action="([^"]+)"/.exec(form[0])![1]!;
  const fields: Record<string, string> = {};
  for (const m of form[1]!.matchAll(/<input[^>]*>/g)) {
    const name = /name="([^"]+)"/.exec(m[0])?.[1];
    const value = /value="([^"]*)"/.exec(m[0])?.[1];
    if (name && value !== undefined)
      fields[name] = value.replace(/&#(\d+);/g, (_, d: string) => String.fromCharCode(Number(d)));
  }
  return { action, fields };
}
