/**
 * The tester dashboard in Firefox (issue 11 §2): Debian's /usr/bin/firefox-esr, never a downloaded one, driven
 * by puppeteer-core over WebDriver BiDi (playwright-core can drive only its own patched Firefox builds). The
 * checks and the system under test are the same as Chromium's (dashboard-checks.ts).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe } from 'vitest';
import { dashboardChecks, suiteTitle } from './dashboard-checks.js';
import { uiOf } from './ui.js';

const FIREFOX = '/usr/bin/firefox-esr';
const present = existsSync(FIREFOX);

describe.skipIf(!present)(
  suiteTitle('Firefox', present, `${FIREFOX}, Debian package firefox-esr`),
  { timeout: 180_000 },
  () => {
    dashboardChecks('firefox', async () => {
      const { default: puppeteer } = await import('puppeteer-core');
      // Its own profile directory, removed at the end: never the user's.
      const profile = mkdtempSync(join(tmpdir(), 'tandem-firefox-'));
      const browser = await puppeteer.launch({
        browser: 'firefox',
        executablePath: FIREFOX,
        headless: true,
        userDataDir: profile,
        extraPrefsFirefox: { 'browser.shell.checkDefaultBrowser': false },
      });
      return {
        newPage: async () => {
          // A fresh context per user: cookies and storage of its own, as another browser profile.
          const context = await browser.createBrowserContext();
          const page = await context.newPage();
          await page.setViewport({ width: 390, height: 844 });
          page.setDefaultTimeout(30_000);
          const errors: string[] = [];
          page.on('pageerror', (e) => errors.push((e as Error).message));
          page.on('console', (m) => {
            if (m.type() === 'error') errors.push(m.text());
          });
          const ui = uiOf(
            'firefox',
            page,
            {
              goto: async (url) => void (await page.goto(url)),
              screenshot: async (path) =>
                void (await page.screenshot({ path: path as `${string}.png`, fullPage: true })),
            },
            errors,
          );
          return { ...ui, close: () => context.close() };
        },
        close: async () => {
          await browser.close();
          rmSync(profile, { recursive: true, force: true });
        },
      };
    });
  },
);
