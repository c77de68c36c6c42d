/**
 * Login and consent interactions, after oidc-provider's own examples: the interaction id in the path is bound
 * to the short-lived interaction cookie by `interactionDetails`, and cookies are SameSite=Lax, so a form
 * posted from another site carries no cookie and fails. On top, a POST whose Origin header names another
 * origin is refused outright. Login attempts are rate limited per account and per address ([TANDEM-DLG-8]).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import { isOidcError } from './errors.js';
import type { PasswordHasher } from './passwords.js';
import type { LoginRateLimiter } from './rate-limit.js';
import { ACCOUNT_ID_PATTERN } from './rules.js';
import type { AccountStore } from './store.js';
import { consentPage, loginPage, page } from './views.js';

/** What the interaction handler needs. */
export interface InteractionContext {
  readonly provider: Provider;
  readonly accounts: AccountStore;
  readonly passwords: PasswordHasher;
  readonly limiter: LoginRateLimiter;
  readonly issuer: string;
  /**
   * A valid Argon2id hash of a random password: an unknown account costs one verification too, so response
   * time does not tell which accounts exist.
   */
  readonly dummyHash: () => Promise<string>;
}

const MAX_FORM_BYTES = 4096;

function send(res: ServerResponse, status: number, html: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'x-frame-options': 'DENY',
    'content-security-policy':
      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ...headers,
  });
  res.end(html);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_FORM_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function sameOrigin(req: IncomingMessage, issuer: string): boolean {
  const origin = req.headers.origin;
  return origin === undefined || origin === new URL(issuer).origin;
}

function clientAddress(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

/** Serves `/interaction/:uid[/login|/confirm|/abort]`. */
export async function handleInteraction(
  c: InteractionContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]!;
  const m = /^\/interaction\/([A-Za-z0-9_-]{1,64})(?:\/(login|confirm|abort))?$/.exec(path);
  if (!m) return send(res, 404, page('Not found', '<p>No such page.</p>'));
  const action = m[2];
  const method = req.method ?? 'GET';
  if ((action === 'login' || action === 'confirm') && method !== 'POST') {
    return send(res, 405, page('Method not allowed', '<p>Use the form.</p>'), { allow: 'POST' });
  }
  if ((action === undefined || action === 'abort') && method !== 'GET') {
    return send(res, 405, page('Method not allowed', '<p>Use the link.</p>'), { allow: 'GET' });
  }
  if (method === 'POST' && !sameOrigin(req, c.issuer)) {
    return send(res, 403, page('Refused', '<p>This form was posted from another site.</p>'));
  }
  let details: Awaited<ReturnType<Provider['interactionDetails']>>;
  try {
    details = await c.provider.interactionDetails(req, res);
  } catch {
    // Unknown, expired or someone else's interaction (no matching cookie).
    return send(
      res,
      400,
      page('Sign-in expired', '<p>This sign-in is no longer valid. Start again from your app.</p>'),
    );
  }
  if (details.uid !== m[1])
    return send(res, 400, page('Sign-in expired', '<p>Start again from your app.</p>'));
  const client = await c.provider.Client.find(String(details.params.client_id));
  const clientName = client?.clientName ?? String(details.params.client_id);
  const prompt = details.prompt.name;

  if (action === 'abort') {
    return c.provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'the user cancelled the sign-in' },
      { mergeWithLastSubmission: false },
    );
  }
  if (action === undefined) {
    if (prompt === 'login') return send(res, 200, loginPage(details.uid, clientName));
    if (prompt === 'consent') {
      const d = details.prompt.details as { missingOIDCScope?: string[] };
      const scopes = d.missingOIDCScope ?? String(details.params.scope ?? '').split(' ');
      return send(res, 200, consentPage(details.uid, clientName, scopes));
    }
    return send(res, 400, page('Sign-in error', '<p>Unexpected step.</p>'));
  }
  const form = await readForm(req);
  if (!form)
    return send(res, 400, page('Bad request', '<p>The form must be URL-encoded and under 4 KiB.</p>'));

  if (action === 'login') {
    if (prompt !== 'login') return send(res, 400, page('Sign-in error', '<p>Not at the login step.</p>'));
    return login(c, req, res, details.uid, clientName, form);
  }
  // action === 'confirm'
  if (prompt !== 'consent') return send(res, 400, page('Sign-in error', '<p>Not at the consent step.</p>'));
  const accountId = details.session?.accountId;
  if (!accountId) return send(res, 400, page('Sign-in error', '<p>Sign in first.</p>'));
  const d = details.prompt.details as {
    missingOIDCScope?: string[];
    missingOIDCClaims?: string[];
    missingResourceScopes?: Record<string, string[]>;
  };
  const grant = details.grantId
    ? await c.provider.Grant.find(details.grantId)
    : new c.provider.Grant({ accountId, clientId: String(details.params.client_id) });
  if (!grant) return send(res, 400, page('Sign-in error', '<p>The grant is gone. Start again.</p>'));
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  return c.provider.interactionFinished(
    req,
    res,
    details.grantId ? { consent: {} } : { consent: { grantId } },
    { mergeWithLastSubmission: true },
  );
}

async function login(
  c: InteractionContext,
  req: IncomingMessage,
  res: ServerResponse,
  uid: string,
  clientName: string,
  form: URLSearchParams,
): Promise<void> {
  const login = (form.get('login') ?? '').trim().toLowerCase();
  const password = form.get('password') ?? '';
  const address = clientAddress(req);
  const verdict = c.limiter.check(login, address);
  if (!verdict.allowed) {
    return send(
      res,
      429,
      loginPage(
        uid,
        clientName,
        `Too many failed sign-ins. Try again in ${verdict.retryAfter} seconds.`,
        login,
      ),
      { 'retry-after': String(verdict.retryAfter) },
    );
  }
  const account = ACCOUNT_ID_PATTERN.test(login) ? await c.accounts.findAccount(login) : undefined;
  let ok = false;
  try {
    if (account) {
      ok = await c.passwords.verify(account.passwordHash, password);
    } else {
      await c.passwords.verify(await c.dummyHash(), password);
    }
  } catch (e) {
    if (!isOidcError(e)) throw e;
  }
  if (!account || !ok) {
    c.limiter.failure(login, address);
    return send(res, 401, loginPage(uid, clientName, 'Wrong account or password.', login));
  }
  c.limiter.success(login);
  return c.provider.interactionFinished(
    req,
    res,
    { login: { accountId: account.id } },
    { mergeWithLastSubmission: false },
  );
}
