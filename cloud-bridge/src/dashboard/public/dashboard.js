/* global document, window, location, history, sessionStorage, fetch, crypto, TextEncoder, TextDecoder,
   URLSearchParams, requestAnimationFrame, uPlot */
/**
 * The tester dashboard page (cloud-bridge/src/dashboard/handler.ts serves it). Plain ES module, no framework:
 * it reads /dashboard/config.json, logs in through the OpenID Provider with the authorization code flow and
 * PKCE (RFC 7636, S256; `iss` checked per RFC 9207), follows the live feed (server-sent events read through
 * fetch so that a bearer token can go along), draws each lock's accelerometer with uPlot, and sends tester
 * controls, phone actions and the sharing API's calls as JSON.
 */

const TOKEN_KEY = 'tandem.dashboard.token';
const PKCE_KEY = 'tandem.dashboard.pkce';
const PLOT_SECONDS = 10;
const MAX_LOG = 200;
const MAX_MARKS = 20;

const $ = (sel, root = document) => root.querySelector(sel);

/** @type {{issuer: string, clientId: string, scope: string, apiBase: string, mountPath: string}} */
let config;
/** @type {{tester: boolean, user: string|null, phone: boolean, locks: string[]}} */
let session = { tester: false, user: null, phone: false, locks: [] };
/** Lock id -> its card's parts. */
const cards = new Map();

function notice(text, error = false) {
  const n = $('#notice');
  n.textContent = text;
  n.className = error ? 'error' : '';
}

function b64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return window.btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(n) {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

function token() {
  try {
    const t = JSON.parse(sessionStorage.getItem(TOKEN_KEY) ?? 'null');
    if (t && t.expiresAt > Date.now()) return t;
  } catch {
    // a damaged entry is dropped below
  }
  sessionStorage.removeItem(TOKEN_KEY);
  return null;
}

function authHeaders() {
  const t = token();
  return t ? { authorization: `Bearer ${t.accessToken}` } : {};
}

/** JSON request; a refusal becomes an Error carrying the server's code and message. */
async function call(method, url, body) {
  const headers = { ...authHeaders() };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const e = new Error(json?.message ?? `${method} ${url}: HTTP ${res.status}`);
    e.code = json?.error ?? `HTTP_${res.status}`;
    e.status = res.status;
    throw e;
  }
  return json;
}

const dash = (p) => `${config.mountPath}${p}`;
const api = (p) => `${config.apiBase}${p}`;

async function discovery() {
  const base = config.issuer.endsWith('/') ? config.issuer : `${config.issuer}/`;
  return call('GET', new URL('.well-known/openid-configuration', base).href);
}

function redirectUri() {
  return new URL(dash('/callback'), location.origin).href;
}

async function login() {
  const d = await discovery();
  const verifier = randomString(32);
  const challenge = b64url(
    new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))),
  );
  const state = randomString(16);
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state }));
  const q = new URLSearchParams({
    client_id: config.clientId,
    response_type: 'code',
    scope: config.scope,
    redirect_uri: redirectUri(),
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
  });
  location.assign(`${d.authorization_endpoint}?${q}`);
}

async function finishLogin() {
  const q = new URLSearchParams(location.search);
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) ?? 'null');
  sessionStorage.removeItem(PKCE_KEY);
  history.replaceState(null, '', dash('/'));
  if (q.get('error')) throw new Error(`login refused: ${q.get('error_description') ?? q.get('error')}`);
  if (!saved || q.get('state') !== saved.state)
    throw new Error('login answer does not match this page (state)');
  if (q.get('iss') !== null && q.get('iss') !== config.issuer)
    throw new Error('login answer from another issuer');
  const d = await discovery();
  const res = await fetch(d.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: q.get('code') ?? '',
      redirect_uri: redirectUri(),
      client_id: config.clientId,
      code_verifier: saved.verifier,
    }),
  });
  const t = await res.json();
  if (!res.ok) throw new Error(`token endpoint: ${t.error_description ?? t.error}`);
  sessionStorage.setItem(
    TOKEN_KEY,
    JSON.stringify({ accessToken: t.access_token, expiresAt: Date.now() + (t.expires_in - 10) * 1000 }),
  );
}

function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
  location.assign(dash('/'));
}

// ---------------------------------------------------------------------------------------------------------
// Lock cards
// ---------------------------------------------------------------------------------------------------------

function fmtTime(unixS) {
  return new Date(unixS * 1000).toISOString().replace('.000Z', 'Z');
}

function card(lockId) {
  let c = cards.get(lockId);
  if (c) return c;
  const el = $('#lock-template').content.firstElementChild.cloneNode(true);
  el.dataset.lock = lockId;
  el.setAttribute('aria-label', `Lock ${lockId}`);
  $('.lock-id', el).textContent = lockId;
  $('.plot', el).setAttribute('aria-label', `Accelerometer of ${lockId}, last ${PLOT_SECONDS} seconds`);
  $('#locks').append(el);
  c = { el, samples: { t: [], x: [], y: [], z: [] }, marks: [], plot: null, dirty: false, lastOn: {} };
  cards.set(lockId, c);
  c.plot = makePlot(c);
  wireControls(c, lockId);
  showControls();
  return c;
}

function makePlot(c) {
  if (typeof uPlot !== 'function') return null;
  const holder = $('.plot', c.el);
  const marksPlugin = {
    hooks: {
      // The theft detector's decisions as vertical lines over the samples they were made on.
      draw: [
        (u) => {
          const ctx = u.ctx;
          const { top, height } = u.bbox;
          ctx.save();
          ctx.font = `${Math.round(12 * window.devicePixelRatio)}px sans-serif`;
          for (const m of c.marks) {
            const x = u.valToPos(m.t / 1000, 'x', true);
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            ctx.strokeStyle = ctx.fillStyle = m.kind === 'bump' ? '#f9a825' : '#c62828';
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            ctx.fillText(m.kind, x + 3, top + 14 * window.devicePixelRatio);
          }
          ctx.restore();
        },
      ],
    },
  };
  const width = Math.max(240, holder.clientWidth || 480);
  return new uPlot(
    {
      width,
      height: 200,
      plugins: [marksPlugin],
      scales: { x: { time: true }, y: { auto: true } },
      series: [
        {},
        { label: 'x (g)', stroke: '#1e88e5' },
        { label: 'y (g)', stroke: '#43a047' },
        { label: 'z (g)', stroke: '#8e24aa' },
      ],
      axes: [{}, { label: 'g' }],
    },
    [[], [], [], []],
    holder,
  );
}

function setField(c, name, value) {
  const dd = $(`[data-field="${name}"]`, c.el);
  if (dd.textContent !== value) dd.textContent = value;
}

function showSnapshot(s) {
  const c = card(s.lockId);
  for (const k of [...c.el.classList]) if (k.startsWith('state-')) c.el.classList.remove(k);
  c.el.classList.add(`state-${s.state}`);
  setField(c, 'state', s.state);
  setField(c, 'solenoid', s.solenoid ? 'energised' : 'off');
  setField(c, 'latch', s.latched ? 'closed' : 'open');
  setField(c, 'power', s.powered ? 'on' : 'cut');
  setField(c, 'time', `${fmtTime(s.time.earliest)} (${s.time.source})`);
  setField(
    c,
    'uncertainty',
    s.time.latest === null
      ? 'unknown (no upper bound)'
      : `±${Math.round((s.time.latest - s.time.earliest) / 2)} s`,
  );
  setField(c, 'revocation', `${s.revocation.held} / ${s.revocation.acknowledged ?? 'none'}`);
  setField(c, 'outbox', String(s.outboxDepth));
  setField(c, 'lockouts', String(s.lockouts));
  // [TANDEM-MQTT-14]: what the gauge read, or nothing; never a guess.
  setField(
    c,
    'battery',
    s.battery === null || s.battery === undefined ? 'no gauge reading' : `${s.battery} %`,
  );
  const r = s.radio;
  setField(
    c,
    'radio',
    `${r.up ? 'up' : 'down'}${r.connected ? ', phone connected' : ''}; ${r.profile}, ${r.latencyMs} ms, loss ${r.loss}, MTU ${r.mtu}`,
  );
  setField(c, 'mqtt', s.mqtt);
}

function addSamples(lockId, samples) {
  const c = card(lockId);
  const d = c.samples;
  for (const s of samples) {
    d.t.push(s.t / 1000);
    d.x.push(s.x);
    d.y.push(s.y);
    d.z.push(s.z);
  }
  const from = d.t[d.t.length - 1] - PLOT_SECONDS;
  let drop = 0;
  while (drop < d.t.length && d.t[drop] < from) drop++;
  if (drop > 0) for (const k of ['t', 'x', 'y', 'z']) d[k].splice(0, drop);
  schedule(c);
}

function schedule(c) {
  if (c.dirty || !c.plot) return;
  c.dirty = true;
  requestAnimationFrame(() => {
    c.dirty = false;
    c.plot.setData([c.samples.t, c.samples.x, c.samples.y, c.samples.z]);
  });
}

function addMark(m) {
  const c = card(m.lockId);
  c.marks.push({ t: m.t, kind: m.kind });
  if (c.marks.length > 100) c.marks.shift();
  const li = document.createElement('li');
  li.textContent = `${new Date(m.t).toISOString().slice(11, 23)} ${m.kind}`;
  if (m.kind !== 'bump' && m.kind !== 'armed' && m.kind !== 'disarmed') li.className = 'alarm';
  const list = $('.marks', c.el);
  list.prepend(li);
  while (list.children.length > MAX_MARKS) list.lastElementChild.remove();
  if (c.plot) c.plot.redraw(false);
}

function logLine(text, cls) {
  const li = document.createElement('li');
  li.textContent = text;
  if (cls) li.className = cls;
  const log = $('#log');
  log.prepend(li);
  while (log.children.length > MAX_LOG) log.lastElementChild.remove();
}

function addRecord(r) {
  const extra = [
    r.status ? `status ${r.status}` : '',
    r.rider ? `rider ${r.rider}` : '',
    ...Object.entries(r.detail).map(([k, v]) => `${k}=${v}`),
  ].filter(Boolean);
  logLine(
    `${fmtTime(r.time)} ${r.lockId} #${r.sequence} ${r.kind} ${r.what}${extra.length ? ` (${extra.join(', ')})` : ''} via ${r.via}`,
    r.kind === 'alert' ? 'alert' : '',
  );
}

function addCloudEvent(e) {
  const detail = Object.entries(e.detail)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  logLine(
    `${new Date(e.at).toISOString()} ${e.lockId} cloud ${e.kind}${detail ? ` (${detail})` : ''}`,
    'event',
  );
}

// ---------------------------------------------------------------------------------------------------------
// Controls
// ---------------------------------------------------------------------------------------------------------

async function control(lockId, name, body, button) {
  if (button) button.disabled = true;
  try {
    const r = await call('POST', dash(`/api/locks/${encodeURIComponent(lockId)}/${name}`), body);
    if (r?.snapshot) showSnapshot(r.snapshot);
    notice(`${lockId}: ${name} done`);
  } catch (e) {
    notice(`${lockId}: ${name} refused: ${e.message} (${e.code})`, true);
  } finally {
    if (button) button.disabled = false;
  }
}

function numberField(form, name) {
  const v = form.elements[name].value;
  return v === '' ? undefined : Number(v);
}

async function uploadedSamples(form) {
  const file = form.elements.upload.files[0];
  if (!file) throw new Error('choose a JSON file of samples first');
  const parsed = JSON.parse(await file.text());
  return Array.isArray(parsed) ? parsed : parsed.samples;
}

function wireControls(c, lockId) {
  const form = $('.controls', c.el);
  form.addEventListener('submit', (ev) => ev.preventDefault());
  form.addEventListener('click', async (ev) => {
    const b = ev.target.closest('button[data-control]');
    if (!b) return;
    const what = b.dataset.control;
    const simple = {
      bump: ['bump', {}],
      'power-off': ['power', { on: false }],
      'power-on': ['power', { on: true }],
      'reset-clock': ['reset-clock', {}],
      'jam-on': ['jam', { jammed: true }],
      'jam-off': ['jam', { jammed: false }],
      'push-shackle': ['push-shackle', {}],
      'radio-off': ['radio', { up: false }],
      'radio-on': ['radio', { up: true }],
      'mqtt-off': ['mqtt', { up: false }],
      'mqtt-on': ['mqtt', { up: true }],
    }[what];
    if (simple) return control(lockId, simple[0], simple[1], b);
    if (what === 'play-trace') return control(lockId, 'play-trace', { name: form.elements.trace.value }, b);
    if (what === 'shake') return control(lockId, 'shake', { ms: numberField(form, 'shakeMs') }, b);
    if (what === 'battery') return control(lockId, 'battery', { percent: numberField(form, 'battery') }, b);
    if (what === 'play-upload') {
      try {
        return control(lockId, 'play-trace', { samples: await uploadedSamples(form) }, b);
      } catch (e) {
        return notice(`${lockId}: upload not played: ${e.message}`, true);
      }
    }
    if (what === 'radio-apply') {
      const body = {};
      for (const k of ['latencyMs', 'loss', 'mtu']) {
        const v = numberField(form, k);
        if (v !== undefined) body[k] = v;
      }
      if (form.elements.profile.value !== '') body.profile = form.elements.profile.value;
      return control(lockId, 'radio', body, b);
    }
  });
  for (const b of c.el.querySelectorAll('button[data-phone]')) {
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        const { result } = await call('POST', dash(`/api/phone/${b.dataset.phone}`), { lock: lockId });
        notice(
          `${lockId}: ${b.dataset.phone} answered ${result.status}${result.state ? `, state ${result.state}` : ''}${result.message ? `: ${result.message}` : ''}`,
          result.status !== 'OK',
        );
      } catch (e) {
        notice(`${lockId}: ${b.dataset.phone} failed: ${e.message} (${e.code})`, true);
      } finally {
        b.disabled = false;
      }
    });
  }
}

function showControls() {
  for (const c of cards.values()) {
    $('.controls', c.el).hidden = !session.tester;
    $('.phone', c.el).hidden = !session.phone;
  }
  $('#tester-note').hidden = session.tester;
}

function setTraces(lockId, traces) {
  const select = $('.controls select[name="trace"]', card(lockId).el);
  select.replaceChildren(
    ...traces.map((t) => {
      const o = document.createElement('option');
      o.value = o.textContent = t;
      return o;
    }),
  );
}

// ---------------------------------------------------------------------------------------------------------
// The live feed: server-sent events read through fetch (EventSource cannot send a bearer token)
// ---------------------------------------------------------------------------------------------------------

const handlers = {
  snapshot: showSnapshot,
  accel: (d) => addSamples(d.lockId, d.samples),
  theft: addMark,
  record: addRecord,
  'cloud-event': addCloudEvent,
};

function dispatch(block) {
  let event = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  if (data.length === 0 || !handlers[event]) return;
  try {
    handlers[event](JSON.parse(data.join('\n')));
  } catch (e) {
    window.console.warn('feed message not shown', event, e);
  }
}

async function follow() {
  for (;;) {
    try {
      const res = await fetch(dash('/api/events'), {
        headers: { accept: 'text/event-stream', ...authHeaders() },
      });
      if (!res.ok || !res.body) throw new Error(`feed: HTTP ${res.status}`);
      document.body.dataset.feed = 'live';
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          dispatch(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch (e) {
      window.console.warn(e);
    }
    document.body.dataset.feed = 'reconnecting';
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Sharing, through the /api/v1 contract (issue 10)
// ---------------------------------------------------------------------------------------------------------

function shareLine(s, revocable) {
  const li = document.createElement('li');
  li.dataset.share = s.id;
  li.textContent = `${s.lock}: ${s.rider} may ${s.scope.join(', ')} until ${s.notAfter}${s.revoked ? ' (revoked)' : ''} `;
  if (revocable && !s.revoked) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = `Revoke ${s.rider}`;
    b.addEventListener('click', async () => {
      try {
        const r = await call('DELETE', api(`/shares/${encodeURIComponent(s.id)}`));
        notice(`revoked; revocation version ${r.revocation?.version ?? '?'} is on its way to ${s.lock}`);
      } catch (e) {
        notice(`revoke refused: ${e.message} (${e.code})`, true);
      }
      await refreshShares();
    });
    li.append(b);
  }
  return li;
}

/** One owned lock with its settings: remote locking for Home Assistant ([TANDEM-HA-2], PATCH /locks/{id}). */
function lockSettingsLine(l) {
  const li = document.createElement('li');
  li.dataset.lock = l.id;
  const label = document.createElement('label');
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.name = 'remoteLocking';
  box.checked = l.remoteLocking === true;
  label.append(box, ` ${l.id}: remote locking (Home Assistant lock entity)`);
  box.addEventListener('change', async () => {
    box.disabled = true;
    try {
      const r = await call('PATCH', api(`/locks/${encodeURIComponent(l.id)}`), {
        remoteLocking: box.checked,
      });
      box.checked = r.lock.remoteLocking === true;
      notice(`${l.id}: remote locking ${box.checked ? 'on' : 'off'}`);
    } catch (e) {
      box.checked = !box.checked;
      notice(`${l.id}: remote locking refused: ${e.message} (${e.code})`, true);
    } finally {
      box.disabled = false;
    }
  });
  li.append(label);
  return li;
}

async function refreshShares() {
  if (!token()) return;
  try {
    const { locks } = await call('GET', api('/locks'));
    const select = $('#share-lock');
    const chosen = select.value;
    select.replaceChildren(
      ...locks.map((l) => {
        const o = document.createElement('option');
        o.value = o.textContent = l.id;
        return o;
      }),
    );
    if (chosen) select.value = chosen;
    $('#owned-locks').replaceChildren(...locks.map(lockSettingsLine));
    const owned = [];
    for (const l of locks)
      owned.push(...(await call('GET', api(`/locks/${encodeURIComponent(l.id)}/shares`))).shares);
    $('#owned-shares').replaceChildren(...owned.map((s) => shareLine(s, true)));
    const { shares } = await call('GET', api('/shares'));
    $('#held-shares').replaceChildren(...shares.map((s) => shareLine(s, false)));
    $('#owner').hidden = false;
  } catch (e) {
    if (e.status === 404 && e.code === 'HTTP_404') notice('the sharing API is not served here', true);
    else notice(`sharing: ${e.message} (${e.code})`, true);
  }
}

function wireShareForm() {
  $('#share-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const scope = [...f.querySelectorAll('input[name="scope"]:checked')].map((i) => i.value);
    const hours = Number(f.elements.hours.value);
    const body = {
      rider: f.elements.rider.value,
      scope,
      notAfter: new Date(Date.now() + hours * 3600_000).toISOString(),
      ...(f.elements.mayReshare.checked ? { mayReshare: true } : {}),
    };
    const lock = f.elements.lock.value;
    try {
      const { share } = await call('POST', api(`/locks/${encodeURIComponent(lock)}/shares`), body);
      notice(`shared ${share.lock} with ${share.rider} until ${share.notAfter}`);
    } catch (e) {
      notice(`share refused: ${e.message} (${e.code})`, true);
    }
    await refreshShares();
  });
}

// ---------------------------------------------------------------------------------------------------------

async function main() {
  config = await call('GET', 'config.json');
  $('#login').addEventListener('click', () => login().catch((e) => notice(`login: ${e.message}`, true)));
  $('#logout').addEventListener('click', logout);
  wireShareForm();
  if (location.pathname === dash('/callback')) {
    try {
      await finishLogin();
    } catch (e) {
      notice(e.message, true);
    }
  }
  session = await call('GET', dash('/api/session'));
  $('#who').textContent = session.user ? `Logged in as ${session.user}` : 'Not logged in';
  $('#login').hidden = session.user !== null;
  $('#logout').hidden = session.user === null;
  if (session.tester) {
    const { locks } = await call('GET', dash('/api/locks'));
    for (const l of locks) {
      showSnapshot(l.snapshot);
      setTraces(l.snapshot.lockId, l.traces);
    }
    showControls();
    void follow();
  }
  showControls();
  await refreshShares();
  document.body.dataset.ready = 'true';
}

main().catch((e) => notice(`the dashboard could not start: ${e.message}`, true));
