/**
 * A real login against the cloud's one listener: the command line's device authorization grant (RFC 8628)
 * approved in a browser, every artefact kept by oidc-provider in the cloud's SQL store (`oidc_models`), and the
 * access token it yields used on the sharing API.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Browser, hiddenForm } from '../oidc/fixture.js';
import type { ApiWorld } from './fixture.js';
import { call, startApiWorld } from './fixture.js';

let w: ApiWorld;
beforeAll(async () => {
  w = await startApiWorld();
}, 60_000);
afterAll(async () => {
  await w?.close();
});

it('logs in with the device grant and uses the access token on /api/v1', async () => {
  const issuer = w.cloud.issuerUrl!;
  const form = (o: Record<string, string>) => ({
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(o).toString(),
  });
  const da = (await (
    await fetch(
      `${issuer}/device/auth`,
      form({ client_id: 'tandem-cli', scope: 'openid profile delegations' }),
    )
  ).json()) as { device_code: string; verification_uri_complete: string };
  const browser = new Browser(issuer);
  const first = await browser.go(da.verification_uri_complete);
  const code = hiddenForm(first.body);
  const confirm = await browser.go(code.action, { form: code.fields });
  const { action, fields } = hiddenForm(confirm.body, 'op.deviceConfirmForm');
  const start = await browser.go(action, { form: { ...fields, confirm: 'yes' } });
  const done = await browser.signInAndConsent(start, 'adam', 'a-long-test-password');
  expect(done.body).toContain('Device connected');
  const tokenRes = await fetch(
    `${issuer}/token`,
    form({
      grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
      device_code: da.device_code,
      client_id: 'tandem-cli',
    }),
  );
  expect(tokenRes.status).toBe(200);
  const tokens = (await tokenRes.json()) as { access_token: string; scope: string };
  expect(tokens.scope.split(' ')).toContain('delegations');
  const r = await call(w.base, 'GET', '/locks', { token: tokens.access_token });
  expect(r.status).toBe(200);
  expect(r.body).toEqual({ locks: [] });
  // The login lives in the cloud's store, not in process memory.
  const rows = await (w.cloud.store as unknown as { db: { query(s: string): Promise<unknown[]> } }).db.query(
    "SELECT id FROM oidc_models WHERE model = 'AccessToken'",
  );
  expect(rows.length).toBeGreaterThan(0);
});
