/**
 * The dashboard's page checks (issue 11 §2), one body for every browser: each browser's test file passes a
 * launcher and gets the same suite. The system under test is the real one `tandem start` runs
 * (`startSystem` in cli/start.ts): the cloud (store, broker, bridge, OpenID Provider), the demo owner adam and
 * rider bianca, two simulated lock processes on the virtual radio and the simulated phones (gateway
 * LockClient over noble on that radio). Only the ports (0: any free one), the data directory (a temporary
 * one) and the consoles (none) differ. On failure a screenshot goes to .tandem-tmp/.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, onTestFailed, onTestFinished } from 'vitest';
import type { SimSystem } from '../../cli/start.js';
import { startSystem } from '../../cli/start.js';
import type { Ui } from './ui.js';

const root = join(import.meta.dirname, '..', '..');
const shots = join(root, '.tandem-tmp');

/** A browser for the checks: pages (one per user, each its own profile) and the end of it. */
export interface Launched {
  /** A new page in a fresh context (cookies, storage) with a phone-sized viewport of 390 × 844. */
  newPage(): Promise<Ui & { close(): Promise<void> }>;
  close(): Promise<void>;
}

/** The suite; `launch` starts the browser. */
export function dashboardChecks(browserName: string, launch: () => Promise<Launched>): void {
  let dir: string;
  let sys: SimSystem;
  let browser: Launched;
  let page: Ui & { close(): Promise<void> };
  /** Bianca's page: another profile, her own OpenID session. */
  let rider: Ui & { close(): Promise<void> };

  const shotOnFailure = (name: string, p: () => Ui | undefined = () => page): void => {
    onTestFailed(async () => {
      mkdirSync(shots, { recursive: true });
      await p()
        ?.screenshot(join(shots, `dashboard-${browserName}-${name}.png`))
        .catch(() => undefined);
    });
  };
  const lock = (id: string) => sys.locks.find((l) => l.lockId === id)!;
  const card = (id: string) => `article[data-lock="${id}"]`;
  const field = (ui: Ui, id: string, name: string) => ui.text(`${card(id)} [data-field="${name}"]`);
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  /** Logs in through the provider's own login and consent forms (code + PKCE); back on the dashboard. */
  const logIn = async (ui: Ui, user: string): Promise<void> => {
    await ui.click({ css: '#session', button: 'Log in' });
    // input#login: the dashboard's own Log in button is #login too, until the provider's page has loaded.
    await ui.fill('input#login', user);
    await ui.fill('input#password', sys.accounts[user]!);
    await ui.click({ css: 'button[type="submit"]' });
    await ui.click({ css: 'body', button: 'Allow' });
    await expect.poll(() => ui.text('#who'), { timeout: 30_000 }).toBe(`Logged in as ${user}`);
  };
  /** The notice line the page shows after an action. */
  const notice = (ui: Ui) => ui.text('#notice');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `tandem-dashboard-${browserName}-`));
    sys = await startSystem({
      dataDir: dir,
      mqttPort: 0,
      httpPort: 0,
      console: 'none',
      log: () => undefined,
    });
    browser = await launch();
    page = await browser.newPage();
  }, 180_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await sys?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('shows both simulated locks with their state, live; keyboard and a phone-sized screen', async () => {
    shotOnFailure('locks');
    await page.goto(sys.dashboardUrl);
    await expect.poll(() => page.attr('body', 'data-ready')).toBe('true');
    await expect.poll(() => page.count('article.lock')).toBe(2);
    for (const id of ['bike-a', 'bike-b']) {
      expect(await field(page, id, 'state')).toBe('locked');
      expect(await field(page, id, 'latch')).toBe('closed');
      // The uPlot chart is drawn (its canvas exists) and tester controls are open from loopback.
      await expect.poll(() => page.count(`${card(id)} .plot canvas`)).toBe(1);
      expect(
        await page.evaluate<boolean>(`!document.querySelector('${card(id)} form.controls').hidden`),
      ).toBe(true);
      // Each lock reaches the real cloud over MQTT.
      await expect.poll(() => field(page, id, 'mqtt'), { timeout: 30_000 }).toBe('connected');
    }
    await expect.poll(() => page.attr('body', 'data-feed')).toBe('live');
    // Keyboard: Tab from the top lands on the login button; every field has a label; a control is a real
    // button that Enter presses (a bump of bike-b, which its theft detector then marks).
    await page.evaluate('document.activeElement?.blur(), window.focus()');
    await page.press('Tab');
    expect(await page.evaluate<string>('document.activeElement.id')).toBe('login');
    expect(
      await page.evaluate<string[]>(
        `[...document.querySelectorAll('input, select')].filter((e) => e.labels.length === 0).map((e) => e.name)`,
      ),
    ).toEqual([]);
    await page.focus({ css: card('bike-b'), button: 'Bump' });
    await page.press('Enter');
    await expect.poll(() => page.text(`${card('bike-b')} .marks li`), { timeout: 30_000 }).toMatch(/ bump$/);
    // A phone-sized screen: nothing wider than the viewport.
    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    expect(page.errors).toEqual([]);
  });

  it('plays a shipped trace and the alarm appears, with the detector’s decision marked', async () => {
    shotOnFailure('alarm');
    await page.select(`${card('bike-a')} select[name="trace"]`, 'tamper');
    await page.click({ css: card('bike-a'), button: 'Play trace' });
    await expect.poll(() => field(page, 'bike-a', 'state'), { timeout: 60_000 }).toBe('alarm');
    expect(await page.attr(card('bike-a'), 'class')).toContain('state-alarm');
    await expect.poll(() => page.count(`${card('bike-a')} .marks li.alarm`)).toBeGreaterThan(0);
    // The lock's signed alert went to the cloud over MQTT; the page shows it from the cloud's store.
    await expect
      .poll(() => page.text('#log li.alert'), { timeout: 30_000 })
      .toMatch(/bike-a #\d+ alert (tamper|moved)/);
    expect(await field(page, 'bike-b', 'state')).toBe('locked');
    expect(lock('bike-b').snapshot()).toMatchObject({ state: 'locked', solenoid: false, latched: true });
  });

  it('tester controls do the real thing: MQTT dropped and back, power cut and restored, an upload played', async () => {
    shotOnFailure('controls');
    const a = card('bike-a');
    await page.click({ css: a, button: 'Drop MQTT' });
    await expect.poll(() => field(page, 'bike-a', 'mqtt')).not.toBe('connected');
    await page.click({ css: a, button: 'Restore MQTT' });
    await expect.poll(() => field(page, 'bike-a', 'mqtt'), { timeout: 30_000 }).toBe('connected');
    // The simulated fuel gauge: no reading until set; the level the lock reads is what the card shows.
    expect(await field(page, 'bike-a', 'battery')).toBe('no gauge reading');
    await page.fill(`${a} input[name="battery"]`, '64');
    await page.click({ css: a, button: 'Set battery' });
    await expect.poll(() => field(page, 'bike-a', 'battery')).toBe('64 %');
    // A power cut kills the lock's process; power back starts it again from its files, locked.
    const pid = lock('bike-a').pid!;
    await page.click({ css: a, button: 'Cut power' });
    await expect.poll(() => field(page, 'bike-a', 'power')).toBe('cut');
    // SIGKILL is sent; the process is gone once the kernel has reaped it.
    await expect.poll(() => alive(pid)).toBe(false);
    await page.click({ css: a, button: 'Restore power' });
    await expect.poll(() => field(page, 'bike-a', 'power'), { timeout: 60_000 }).toBe('on');
    await expect.poll(() => field(page, 'bike-a', 'state'), { timeout: 30_000 }).toBe('locked');
    expect(lock('bike-a').pid).not.toBe(pid);
    // The charge survived the power cut, as a real battery's would.
    await expect.poll(() => field(page, 'bike-a', 'battery'), { timeout: 30_000 }).toBe('64 %');
    const samples = Array.from({ length: 50 }, (_, i) => ({ t: i * 10, x: 0, y: 0, z: 1 }));
    await page.setFile(
      `${a} input[name="upload"]`,
      'still.json',
      'application/json',
      JSON.stringify(samples),
    );
    await page.click({ css: a, button: 'Play upload' });
    await expect.poll(() => notice(page), { timeout: 30_000 }).toBe('bike-a: play-trace done');
  });

  it('refuses a malformed control with a coded 400 that names the field, and the lock does not move', async () => {
    const marks: string[] = [];
    onTestFinished(lock('bike-b').onTheft((m) => marks.push(m.kind)));
    const r = await page.evaluate<{ status: number; body: unknown }>(`(async () => {
      const res = await fetch('/dashboard/api/locks/bike-b/shake', {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ms: -5 }) });
      return { status: res.status, body: await res.json() };
    })()`);
    expect(r.status).toBe(400);
    expect(r.body).toEqual({ error: 'ERR_DASH_FIELD', message: '"ms" must be an integer from 1 to 600000' });
    expect(lock('bike-b').snapshot()).toMatchObject({ state: 'locked', solenoid: false, latched: true });
    expect(marks).toEqual([]);
  });

  it('adam shares bike-b; bianca unlocks it with her real phone over the virtual radio, and the radio controls bite', async () => {
    shotOnFailure('share');
    await logIn(page, 'adam');
    expect(new URL(page.url()).pathname).toBe('/dashboard/');
    await expect.poll(() => page.count('#share-lock option')).toBe(2);
    // The owner's remote-locking setting ([TANDEM-HA-2]): off by default, on from the page, stored.
    const remote = '#owned-locks li[data-lock="bike-a"] input[name="remoteLocking"]';
    expect(await page.evaluate<boolean>(`document.querySelector('${remote}').checked`)).toBe(false);
    await page.click({ css: remote });
    await expect.poll(() => notice(page)).toBe('bike-a: remote locking on');
    expect(await sys.cloud.store.getLockSettings('bike-a')).toEqual({ remoteLocking: true });
    await page.select('#share-lock', 'bike-b');
    await page.fill('#share-rider', 'bianca');
    await page.click({ css: '#share-form', button: 'Share' });
    await expect.poll(() => notice(page)).toContain('shared bike-b with bianca');
    // The share is in the cloud as the API stored it, beside the demo share `tandem start` made.
    const stored = await sys.cloud.store.sharesOfLock('bike-b');
    expect(stored.filter((s) => !s.revoked).map((s) => s.rider)).toEqual(['bianca', 'bianca']);

    rider = await browser.newPage();
    shotOnFailure('share-rider', () => rider);
    await rider.goto(sys.dashboardUrl);
    await logIn(rider, 'bianca');
    await expect.poll(() => rider.count('#held-shares li')).toBeGreaterThanOrEqual(3);

    // The radio: bike-b out of range, so the phone finds no lock and the coil never moves.
    const b = card('bike-b');
    await rider.click({ css: b, button: 'Drop radio' });
    await expect.poll(() => field(rider, 'bike-b', 'radio')).toMatch(/^down/);
    await rider.click({ css: b, button: 'Unlock' });
    await expect
      .poll(() => notice(rider), { timeout: 60_000 })
      .toMatch(/^bike-b: unlock (answered (?!OK)\S+|failed)/);
    expect(lock('bike-b').snapshot()).toMatchObject({ state: 'locked', solenoid: false });
    // Back in range, as a Pi Zero 2 W (data length extension): the profile shows and the phone unlocks.
    await rider.click({ css: b, button: 'Restore radio' });
    await rider.fill(`${b} input[name="profile"]`, 'pi-zero-2-w');
    await rider.click({ css: b, button: 'Apply radio settings' });
    await expect.poll(() => field(rider, 'bike-b', 'radio')).toMatch(/^up.*; pi-zero-2-w,/);
    // Back in range, the phone may first meet the link it lost (a stale connection times out): a rider taps
    // again, as here, up to 5 times.
    let answer = '';
    for (let i = 0; i < 5 && !answer.startsWith('bike-b: unlock answered OK'); i++) {
      await rider.evaluate(`document.querySelector('#notice').textContent = ''`);
      await rider.click({ css: b, button: 'Unlock' });
      await expect.poll(() => notice(rider), { timeout: 60_000 }).toMatch(/^bike-b: unlock /);
      answer = (await notice(rider)) ?? '';
    }
    expect(answer).toMatch(/^bike-b: unlock answered OK/);
    await expect.poll(() => field(rider, 'bike-b', 'state'), { timeout: 30_000 }).toBe('open');
    expect(lock('bike-b').snapshot().state).toBe('open');
    // Relock from her phone, then shut the shackle (the simulated one must be pushed): locked again.
    await rider.click({ css: b, button: 'Relock' });
    await expect.poll(() => notice(rider), { timeout: 60_000 }).toMatch(/^bike-b: relock answered OK/);
    await rider.click({ css: b, button: 'Push shackle' });
    await expect.poll(() => field(rider, 'bike-b', 'state'), { timeout: 30_000 }).toBe('locked');
  });

  it('adam revokes bianca’s shares; the lock acknowledges, and her phone’s unlock is refused REVOKED', async () => {
    shotOnFailure('revoke');
    shotOnFailure('revoke-rider', () => rider);
    const held = lock('bike-b').snapshot().revocation.held;
    const line = '#owned-shares li';
    await expect
      .poll(() =>
        page.evaluate<number>(
          `[...document.querySelectorAll('${line}')].filter((l) => l.textContent.startsWith('bike-b: bianca') && !l.textContent.includes('(revoked)')).length`,
        ),
      )
      .toBe(2);
    // Both of bianca's shares of bike-b: the demo one (whose token her phone holds) and today's.
    for (let i = 0; i < 2; i++) {
      await page.click({ css: line, has: 'bike-b: bianca', button: 'Revoke bianca' });
      await expect.poll(() => notice(page), { timeout: 30_000 }).toMatch(/revoked; revocation version \d+/);
      await page.evaluate(`document.querySelector('#notice').textContent = ''`);
    }
    await expect
      .poll(async () => (await sys.cloud.store.sharesOfLock('bike-b')).filter((s) => !s.revoked).length)
      .toBe(0);
    // The signed updates reach the lock over MQTT and its acknowledgement comes back to the cloud.
    await expect
      .poll(() => lock('bike-b').snapshot().revocation.held, { timeout: 30_000 })
      .toBeGreaterThanOrEqual(held + 2);
    const v = lock('bike-b').snapshot().revocation.held;
    await expect.poll(() => field(page, 'bike-b', 'revocation'), { timeout: 90_000 }).toBe(`${v} / ${v}`);

    // No live share is left, so her phone presents the token it still holds (one that has not synced since):
    // the lock itself refuses it.
    const before = lock('bike-b').snapshot();
    expect(before).toMatchObject({ state: 'locked', solenoid: false });
    await rider.click({ css: card('bike-b'), button: 'Unlock' });
    await expect.poll(() => notice(rider), { timeout: 60_000 }).toMatch(/^bike-b: unlock answered REVOKED/);
    // The lock refused: still locked, the coil never energised.
    expect(lock('bike-b').snapshot()).toMatchObject({ state: 'locked', solenoid: false, latched: true });
  });
}

/** The suite's title, with the reason when the browser is absent. */
export function suiteTitle(browserName: string, present: boolean, needs: string): string {
  return `the dashboard in ${browserName}${present ? '' : ` (skipped: needs ${needs})`}`;
}
