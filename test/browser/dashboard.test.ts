/**
 * The tester dashboard in a real browser (issue 11 §2): Debian's Chromium (/usr/bin/chromium, never a
 * downloaded one) driven by playwright-core, against the real cloud (startCloud: store, broker, bridge), the
 * real OpenID Provider and two real simulated locks (LockRuntime on simulated hardware). The page is loaded
 * from 127.0.0.1, where tester controls are open; a login goes through the provider's own forms with code +
 * PKCE. On failure a screenshot is saved to .tandem-tmp/.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFailed, onTestFinished } from 'vitest';
import type { Cloud } from '../../cloud-bridge/src/cloud.js';
import { startCloud } from '../../cloud-bridge/src/cloud.js';
import { hashPassword } from '../../cloud-bridge/src/credentials.js';
import { dashboardHandler } from '../../cloud-bridge/src/dashboard/handler.js';
import type { DashboardHandler } from '../../cloud-bridge/src/dashboard/handler.js';
import type { SimPhoneControl } from '../../cloud-bridge/src/dashboard/sim-control.js';
import { Argon2idHasher } from '../../cloud-bridge/src/oidc/passwords.js';
import { ProcessSimLockControl, provisionOverConsole } from '../../cli/sim-lock-control.js';
import { generateKeyPair } from '../../protocol/src/keys.js';

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
let issuer: string;
let dashboard: DashboardHandler;
let browser: Browser;
let page: Page;
const locks: ProcessSimLockControl[] = [];
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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Logs in through the provider's own login and consent forms; back on the dashboard, logged in. */
async function logIn(p: Page, user: string): Promise<void> {
  await p.getByRole('button', { name: 'Log in' }).click();
  await p.locator('#login').fill(user);
  await p.locator('#password').fill(PASSWORD);
  await p.locator('button[type="submit"]').first().click();
  await p.getByRole('button', { name: 'Allow' }).click();
  await expect.poll(() => p.locator('#who').textContent()).toBe(`Logged in as ${user}`);
}

const card = (lockId: string) => page.locator(`article[data-lock="${lockId}"]`);
const field = (lockId: string, name: string) => card(lockId).locator(`[data-field="${name}"]`);

describe.skipIf(!present)(
  `the dashboard in Chromium${present ? '' : ` (skipped: needs ${CHROMIUM}, Debian package chromium)`}`,
  { timeout: 120_000 },
  () => {
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tandem-dashboard-'));
      // The real cloud with its one HTTP listener: OpenID Provider, /api/v1 and the dashboard's mount. The
      // dashboard needs the provider and the locks, which exist only after the start: it is bound then.
      let mounted: DashboardHandler | undefined = undefined;
      cloud = await startCloud({
        dataDir: join(dir, 'cloud'),
        mqtt: { port: 0 },
        brokerPersistence: { kind: 'memory' },
        log: () => undefined,
        http: { port: 0 },
        dashboardHandler: (req, res) => {
          if (mounted) mounted(req, res);
          else res.writeHead(503).end();
        },
      });
      const passwords = new Argon2idHasher();
      for (const [id, name] of [
        ['adam', 'Adam Owner'],
        ['bianca', 'Bianca Rider'],
      ]) {
        await cloud.store.createAccount({
          id: id!,
          name: name!,
          passwordHash: await passwords.hash(PASSWORD),
        });
      }
      // Two lock processes (LockRuntime on simulated hardware, MQTT to the cloud), provisioned over their
      // consoles and claimed by adam, as `npm start` does.
      const owner = generateKeyPair('EdDSA');
      const ownerKid = new TextEncoder().encode('adam-phone');
      for (const [i, id] of ['lock-a', 'lock-b'].entries()) {
        const lock = await ProcessSimLockControl.start({
          dataDir: join(dir, id),
          deviceId: i,
          mqttUrl: cloud.mqttUrl,
          console: 'none',
          acknowledged: async (l) => (await cloud.store.getRevocationAck(l))?.version ?? null,
        });
        locks.push(lock);
        const creds = await lock.credentials();
        await cloud.store.registerLock({
          lockId: id,
          deviceKey: new Uint8Array(Buffer.from(creds.deviceKey, 'hex')),
          passwordHash: hashPassword(creds.password!),
          registeredAt: Date.now(),
        });
        await provisionOverConsole(
          lock,
          id,
          { kid: cloud.issuer.kid, alg: 'EdDSA', raw: cloud.issuer.key.publicKey.raw, name: 'tandem' },
          { kid: ownerKid, alg: 'EdDSA', raw: owner.publicKey.raw, name: 'adam' },
        );
        await cloud.store.claimLock({
          lockId: id,
          owner: 'adam',
          ownerKey: owner.publicKey,
          ownerKid,
          claimedAt: Date.now(),
        });
        for (let t = 0; t < 200 && lock.lockId !== id; t++) await new Promise((r) => setTimeout(r, 50));
      }
      issuer = cloud.issuerUrl!;
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
        verifyAccessToken: (t) => cloud.oidc!.verifyAccessToken(t),
        pollMs: 100,
      });
      mounted = dashboard;
      const { chromium } = await import('playwright-core');
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
      page = await browser.newPage({ viewport: { width: 390, height: 844 } });
      page.setDefaultTimeout(30_000);
    }, 180_000);

    afterAll(async () => {
      await browser?.close();
      dashboard?.close();
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
      // Keyboard use: Tab from the top lands on the login button; every field has a label; a control is a
      // real button that Enter presses (here a bump of lock-b, which its theft detector then reports).
      await page.keyboard.press('Tab');
      expect(await page.evaluate<string>('document.activeElement.id')).toBe('login');
      expect(
        await page.evaluate<string[]>(
          `[...document.querySelectorAll('input, select')].filter((e) => e.labels.length === 0).map((e) => e.name)`,
        ),
      ).toEqual([]);
      await card('lock-b').getByRole('button', { name: 'Bump' }).focus();
      await page.keyboard.press('Enter');
      await expect.poll(() => card('lock-b').locator('.marks li').first().textContent()).toMatch(/ bump$/);
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
      expect(locks[1]!.snapshot()).toMatchObject({ state: 'locked', solenoid: false, latched: true });
    });

    it('tester controls do the real thing: the MQTT link dropped and back, power cut and restored', async () => {
      screenshotOnFailure('controls');
      const a = card('lock-a');
      await a.getByRole('button', { name: 'Drop MQTT' }).click();
      await expect.poll(() => field('lock-a', 'mqtt').textContent()).not.toBe('connected');
      await a.getByRole('button', { name: 'Restore MQTT' }).click();
      await expect.poll(() => field('lock-a', 'mqtt').textContent(), { timeout: 30_000 }).toBe('connected');
      // A power cut kills the lock's process; power back starts it again from its files, locked.
      const pid = locks[0]!.pid!;
      await a.getByRole('button', { name: 'Cut power' }).click();
      await expect.poll(() => field('lock-a', 'power').textContent()).toBe('cut');
      expect(alive(pid)).toBe(false);
      await a.getByRole('button', { name: 'Restore power' }).click();
      await expect.poll(() => field('lock-a', 'power').textContent(), { timeout: 60_000 }).toBe('on');
      await expect.poll(() => field('lock-a', 'state').textContent()).toBe('locked');
      expect(locks[0]!.pid).not.toBe(pid);
      // An uploaded trace (a JSON file of samples in g) is played on the lock.
      const samples = Array.from({ length: 50 }, (_, i) => ({ t: i * 10, x: 0, y: 0, z: 1 }));
      await a.locator('input[name="upload"]').setInputFiles({
        name: 'still.json',
        mimeType: 'application/json',
        buffer: Buffer.from(JSON.stringify(samples)),
      });
      await a.getByRole('button', { name: 'Play upload' }).click();
      await expect.poll(() => page.locator('#notice').textContent()).toBe('lock-a: play-trace done');
      // These locks have no virtual radio: the control is refused and the page says why.
      await a.getByRole('button', { name: 'Drop radio' }).click();
      await expect
        .poll(() => page.locator('#notice').textContent())
        .toBe('lock-a: radio refused: radio failed: this lock has no virtual radio (ERR_DASH_CONTROL)');
    });

    it('refuses a malformed control with a coded 400 that names the field, and the lock does not move', async () => {
      const marksB: string[] = [];
      const stop = locks[1]!.onTheft((m) => marksB.push(m.kind));
      onTestFinished(stop);
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
      // Nothing reached the lock: still locked, the coil never energised, no accelerometer event.
      expect(before).toMatchObject({ state: 'locked', solenoid: false });
      expect(locks[1]!.snapshot()).toMatchObject({ state: 'locked', solenoid: false, latched: true });
      expect(marksB).toEqual([]);
    });

    it('the owner logs in (code + PKCE), shares a lock and revokes it; the lock acknowledges the revocation', async () => {
      screenshotOnFailure('share');
      await logIn(page, 'adam');
      expect(new URL(page.url()).pathname).toBe('/dashboard/');
      await expect.poll(() => page.locator('#share-lock option').count()).toBe(2);
      await page.locator('#share-lock').selectOption('lock-b');
      await page.locator('#share-rider').fill('bianca');
      await page.getByRole('button', { name: 'Share', exact: true }).click();
      await expect.poll(() => page.locator('#notice').textContent()).toContain('shared lock-b with bianca');
      const line = page.locator('#owned-shares li');
      await expect.poll(() => line.count()).toBe(1);
      expect(await line.textContent()).toContain('lock-b: bianca may unlock, lock, status until');
      // The share is in the cloud, as the API stored it.
      const stored = await cloud.store.sharesOfLock('lock-b');
      expect(stored.map((x) => [x.rider, x.revoked])).toEqual([['bianca', false]]);

      const held = locks[1]!.snapshot().revocation.held;
      await line.getByRole('button', { name: 'Revoke bianca' }).click();
      await expect
        .poll(() => page.locator('#notice').textContent())
        .toMatch(/revoked; revocation version \d+/);
      const version = Number(/version (\d+)/.exec((await page.locator('#notice').textContent())!)![1]);
      expect(version).toBeGreaterThan(held);
      // The signed update reaches the lock over MQTT and its acknowledgement comes back to the cloud.
      await expect
        .poll(() => field('lock-b', 'revocation').textContent(), { timeout: 30_000 })
        .toBe(`${version} / ${version}`);
      expect(await line.textContent()).toContain('(revoked)');
    });

    it('the rider logs in, sees the share, and unlocks from the page through her phone', async () => {
      // Adam shares again; Bianca uses another browser profile (her own OpenID session).
      await page.getByRole('button', { name: 'Share', exact: true }).click();
      await expect.poll(() => page.locator('#owned-shares li:not(:has-text("revoked"))').count()).toBe(1);
      const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
      const rider = await context.newPage();
      rider.setDefaultTimeout(30_000);
      onTestFailed(async () => {
        mkdirSync(shots, { recursive: true });
        await rider
          .screenshot({ path: join(shots, 'dashboard-rider.png'), fullPage: true })
          .catch(() => undefined);
      });
      onTestFinished(() => context.close());
      await rider.goto(`${issuer}/dashboard/`);
      await logIn(rider, 'bianca');
      // The first share shows as revoked, the second as live.
      const live = rider.locator('#held-shares li:not(:has-text("(revoked)"))');
      await expect.poll(() => rider.locator('#held-shares li').count()).toBe(2);
      expect(await live.count()).toBe(1);
      expect(await live.textContent()).toContain('lock-b: bianca may unlock');
      const b = rider.locator('article[data-lock="lock-b"]');
      await b.getByRole('button', { name: 'Unlock' }).click();
      await expect.poll(() => rider.locator('#notice').textContent()).toContain('unlock answered OK');
      expect(phoneCalls).toEqual(['bianca unlock lock-b']);
    });
  },
);
