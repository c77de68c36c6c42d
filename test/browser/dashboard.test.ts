/**
 * The tester dashboard in a real browser (issue 11 §2): Debian's Chromium (/usr/bin/chromium, never a
 * downloaded one) driven by playwright-core, against the real cloud (startCloud: store, broker, bridge), the
 * real OpenID Provider and two real simulated locks (LockRuntime on simulated hardware). The page is loaded
 * from 127.0.0.1, where tester controls are open; a login goes through the provider's own forms with code +
 * PKCE. On failure a screenshot is saved to .tandem-tmp/.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import type { Cloud } from '../../cloud-bridge/src/cloud.js';
import { startCloud } from '../../cloud-bridge/src/cloud.js';
import { hashPassword } from '../../cloud-bridge/src/credentials.js';
import { dashboardHandler, dashboardRedirectUri } from '../../cloud-bridge/src/dashboard/handler.js';
import type { DashboardHandler } from '../../cloud-bridge/src/dashboard/handler.js';
import type { SimPhoneControl } from '../../cloud-bridge/src/dashboard/sim-control.js';
import { MemoryAccountStore, MemoryDelegationSource } from '../../cloud-bridge/src/oidc/memory-store.js';
import { Argon2idHasher } from '../../cloud-bridge/src/oidc/passwords.js';
import { createOidcProvider, tandemClients } from '../../cloud-bridge/src/oidc/provider.js';
import { openRuntimeControl } from './runtime-control.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-sync',
  '--disable-component-update',
];
const root = join(import.meta.dirname, '..', '..');
const shots = join(root, '.tandem-tmp');
const present = existsSync(CHROMIUM);
const PASSWORD = 'correct horse battery staple';

let dir: string;
let cloud: Cloud;
let server: Server;
let issuer: string;
let dashboard: DashboardHandler;
let browser: Browser;
let page: Page;
const locks: Awaited<ReturnType<typeof openRuntimeControl>>[] = [];
const phoneCalls: string[] = [];

/** Saves what the page showed when a test failed. */
function screenshotOnFailure(name: string): void {
  onTestFailed(async () => {
    mkdirSync(shots, { recursive: true });
    await page
      ?.screenshot({ path: join(shots, `dashboard-${name}.png`), fullPage: true })
      .catch(() => undefined);
  });
}

const card = (lockId: string) => page.locator(`article[data-lock="${lockId}"]`);
const field = (lockId: string, name: string) => card(lockId).locator(`[data-field="${name}"]`);

describe.skipIf(!present)(
  `the dashboard in Chromium${present ? '' : ` (skipped: needs ${CHROMIUM}, Debian package chromium)`}`,
  { timeout: 120_000 },
  () => {
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tandem-dashboard-'));
      cloud = await startCloud({
        dataDir: dir,
        mqtt: { port: 0 },
        brokerPersistence: { kind: 'memory' },
        beaconIntervalMs: 0,
        log: () => undefined,
      });
      const issuerHex = Buffer.from(cloud.issuer.key.publicKey.raw).toString('hex');
      for (const [i, id] of ['lock-a', 'lock-b'].entries()) {
        const password = randomBytes(32).toString('hex');
        const lock = await openRuntimeControl(id, issuerHex, i + 1, { url: cloud.mqttUrl, password });
        await cloud.store.registerLock({
          lockId: id,
          deviceKey: lock.runtime.devicePublicKey,
          passwordHash: hashPassword(password),
          registeredAt: Date.now(),
        });
        locks.push(lock);
      }
      server = createServer();
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const passwords = new Argon2idHasher();
      const accounts = new MemoryAccountStore();
      for (const [id, name] of [
        ['adam', 'Adam Owner'],
        ['bianca', 'Bianca Rider'],
      ]) {
        await accounts.createAccount({ id: id!, name: name!, passwordHash: await passwords.hash(PASSWORD) });
      }
      const oidc = await createOidcProvider({
        issuer,
        accounts,
        delegations: new MemoryDelegationSource(),
        issuerKey: { id: 'tandem', kid: cloud.issuer.kid, key: cloud.issuer.key },
        clients: tandemClients(['http://127.0.0.1/app'], [dashboardRedirectUri(issuer)]),
        passwords,
      });
      const phones: SimPhoneControl[] = ['adam', 'bianca'].map((user) => ({
        user,
        unlock: async (lockId) => (
          phoneCalls.push(`${user} unlock ${lockId}`),
          { status: 'OK', state: 'open' }
        ),
        relock: async (lockId) => (phoneCalls.push(`${user} relock ${lockId}`), { status: 'OK' }),
      }));
      dashboard = dashboardHandler({
        simLocks: locks,
        phones,
        store: cloud.store,
        issuer,
        verifyAccessToken: (t) => oidc.verifyAccessToken(t),
        pollMs: 100,
      });
      server.on('request', (req, res) => {
        if ((req.url ?? '').startsWith('/dashboard')) dashboard(req, res);
        else oidc.handler(req, res);
      });
      const { chromium } = await import('playwright-core');
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
      page = await browser.newPage({ viewport: { width: 390, height: 844 } });
      page.setDefaultTimeout(30_000);
    });

    afterAll(async () => {
      await browser?.close();
      dashboard?.close();
      server?.closeAllConnections();
      await new Promise((r) => server?.close(r));
      for (const l of locks) await l.close();
      await cloud?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('shows both simulated locks with their state, live', async () => {
      screenshotOnFailure('locks');
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => {
        // A Content-Security-Policy violation shows up only here.
        if (m.type() === 'error') errors.push(m.text());
      });
      await page.goto(`${issuer}/dashboard`);
      await expect.poll(() => page.locator('body').getAttribute('data-ready')).toBe('true');
      await expect.poll(() => page.locator('article.lock').count()).toBe(2);
      for (const id of ['lock-a', 'lock-b']) {
        expect(await field(id, 'state').textContent()).toBe('locked');
        expect(await field(id, 'latch').textContent()).toBe('closed');
        // The uPlot chart is drawn (its canvas exists) and tester controls are open from loopback.
        await expect.poll(() => card(id).locator('.plot canvas').count()).toBe(1);
        expect(await card(id).locator('form.controls').isVisible()).toBe(true);
      }
      await expect.poll(() => page.locator('body').getAttribute('data-feed')).toBe('live');
      // Each lock reaches the real cloud over MQTT and learns the time from it.
      for (const id of ['lock-a', 'lock-b']) {
        await expect.poll(() => field(id, 'mqtt').textContent()).toBe('connected');
      }
      // A phone-sized screen: nothing wider than the viewport.
      expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
      expect(errors).toEqual([]);
    });

    it('plays a shipped trace and the alarm appears, with the detector’s decision marked', async () => {
      screenshotOnFailure('alarm');
      const a = card('lock-a');
      await a.locator('select[name="trace"]').selectOption('tamper');
      await a.getByRole('button', { name: 'Play trace' }).click();
      await expect.poll(() => field('lock-a', 'state').textContent(), { timeout: 60_000 }).toBe('alarm');
      expect(await a.getAttribute('class')).toContain('state-alarm');
      await expect.poll(() => a.locator('.marks li.alarm').count()).toBeGreaterThan(0);
      // The lock's signed alert went to the cloud over MQTT; the page shows it from the cloud's store.
      await expect
        .poll(() => page.locator('#log li.alert').first().textContent(), { timeout: 30_000 })
        .toMatch(/lock-a #\d+ alert (tamper|moved)/);
      // The other lock did not move.
      expect(await field('lock-b', 'state').textContent()).toBe('locked');
      expect(locks[1]!.runtime.stateMachine.reportedState).toBe('locked');
    });

    it('refuses a malformed control with a coded 400 that names the field, and the lock does not move', async () => {
      const before = locks[1]!.snapshot();
      const r = await page.evaluate(async () => {
        const res = await fetch('/dashboard/api/locks/lock-b/shake', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ ms: -5 }),
        });
        return { status: res.status, body: await res.json() };
      });
      expect(r.status).toBe(400);
      expect(r.body).toEqual({
        error: 'ERR_DASH_FIELD',
        message: '"ms" must be an integer from 1 to 600000',
      });
      expect(locks[1]!.snapshot().state).toBe(before.state);
      expect(locks[1]!.runtime.options.hardware.sim!.mechanism.solenoid.pulses).toHaveLength(0);
    });

    it('logs in through the OpenID Provider (code + PKCE) and unlocks with the user’s phone', async () => {
      screenshotOnFailure('login');
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.locator('#login').fill('bianca');
      await page.locator('#password').fill(PASSWORD);
      await page.locator('button[type="submit"]').first().click();
      // The consent page of oidc-provider's interaction, then back to /dashboard/callback.
      await page.getByRole('button', { name: 'Allow' }).click();
      await expect.poll(() => page.locator('#who').textContent()).toBe('Logged in as bianca');
      expect(new URL(page.url()).pathname).toBe('/dashboard/');
      const b = card('lock-b');
      await b.getByRole('button', { name: 'Unlock' }).click();
      await expect.poll(() => page.locator('#notice').textContent()).toContain('unlock answered OK');
      expect(phoneCalls).toEqual(['bianca unlock lock-b']);
    });
  },
);
