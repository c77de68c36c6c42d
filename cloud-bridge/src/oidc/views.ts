/**
 * The provider's pages: minimal server-rendered HTML with no external asset (no font, script or style from
 * elsewhere), so a page can load nothing an attacker could swap and works offline on a LAN. Every value put
 * into a page goes through {@link esc}.
 */

/** HTML-escapes text for element content and double-quoted attributes. */
export function esc(value: unknown): string {
  return String(value).replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE =
  'body{font-family:system-ui,sans-serif;max-width:26rem;margin:2rem auto;padding:0 1rem}' +
  'label,input,button{display:block;width:100%;margin:.4rem 0;font-size:1rem;box-sizing:border-box}' +
  'input{padding:.5rem}button{padding:.6rem}.error{color:#b00020}code{font-size:1.4rem}';

/** A complete page; `body` must already be escaped. */
export function page(title: string, body: string): string {
  return (
    `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width,initial-scale=1">` +
    `<title>${esc(title)}</title><style>${STYLE}</style></head>` +
    `<body><h1>${esc(title)}</h1>${body}</body></html>`
  );
}

/** The login form of interaction `uid`. */
export function loginPage(uid: string, clientName: string, error?: string, login = ''): string {
  return page(
    'Sign in to Tandem',
    `<p>${esc(clientName)} asks you to sign in.</p>` +
      (error ? `<p class="error" role="alert">${esc(error)}</p>` : '') +
      `<form method="post" action="/interaction/${esc(uid)}/login" autocomplete="on">` +
      `<label for="login">Account</label><input id="login" name="login" required value="${esc(login)}" autocomplete="username">` +
      `<label for="password">Password</label><input id="password" name="password" type="password" required autocomplete="current-password">` +
      `<button type="submit">Sign in</button></form>` +
      `<p><a href="/interaction/${esc(uid)}/abort">Cancel</a></p>`,
  );
}

/** The consent form of interaction `uid`. */
export function consentPage(uid: string, clientName: string, scopes: readonly string[]): string {
  const items = scopes.map((s) => `<li>${esc(SCOPE_TEXT[s] ?? s)}</li>`).join('');
  return page(
    'Allow access?',
    `<p>${esc(clientName)} asks to:</p><ul>${items}</ul>` +
      `<form method="post" action="/interaction/${esc(uid)}/confirm"><button type="submit">Allow</button></form>` +
      `<p><a href="/interaction/${esc(uid)}/abort">Deny</a></p>`,
  );
}

const SCOPE_TEXT: Record<string, string> = {
  openid: 'know who you are',
  profile: 'see your name',
  offline_access: 'stay signed in',
  delegations: 'fetch the keys of the bikes shared with you',
};

/** The device flow's code entry page (RFC 8628 §3.3); `form` is oidc-provider's form, with its CSRF token. */
export function userCodePage(form: string, error?: string): string {
  return page(
    'Connect a device',
    (error ? `<p class="error" role="alert">${esc(error)}</p>` : '<p>Enter the code your device shows.</p>') +
      form +
      `<button type="submit" form="op.deviceInputForm">Continue</button>`,
  );
}

/** The device flow's confirmation page: the user compares the code with the device's. */
export function userCodeConfirmPage(form: string, clientName: string, userCode: string): string {
  return page(
    'Confirm the device',
    `<p><strong>${esc(clientName)}</strong> shows this code:</p><p><code>${esc(userCode)}</code></p>` +
      `<p>Continue only if your device shows the same code.</p>${form}` +
      `<button type="submit" form="op.deviceConfirmForm">Continue</button>` +
      `<button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Abort</button>`,
  );
}
