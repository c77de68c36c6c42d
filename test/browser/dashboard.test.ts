/**
 * The tester dashboard in two real browsers (issue 11 §2), one after the other in this one file so that their
 * two systems never run at once (vitest runs files in parallel, a file's suites in order):
 *
 * - Chromium: Debian's /usr/bin/chromium, never a downloaded one, driven by playwright-core over the DevTools
 *   protocol;
 * - Firefox: Debian's /usr/bin/firefox-esr, never a downloaded one, driven by puppeteer-core over WebDriver
 *   BiDi (playwright-core can drive only its own patched Firefox builds).
 *
 * The checks and the system under test (the real one `tandem start` runs) are in dashboard-checks.ts.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { describe } from 'vitest';
import { dashboardChecks, suiteTitle } from './dashboard-checks.js';
import { uiOf } from './ui.js';

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
const chromiumPresent = existsSync(CHROMIUM);
const FIREFOX = '/usr/bin/firefox-esr';
const firefoxPresent = existsSync(FIREFOX);

describe.skipIf(!chromiumPresent)(
  suiteTitle('Chromium', chromiumPresent, `${CHROMIUM}, Debian package chromium`),
  { timeout: 180_000 },
  () => {
    dashboardChecks('chromium', async () => {
      const { chromium } = await import('playwright-core');
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
      return {
        newPage: async () => {
          const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
          const page: Page = await context.newPage();
          page.setDefaultTimeout(30_000);
          const errors: string[] = [];
          page.on('pageerror', (e) => errors.push(e.message));
          // A Content-Security-Policy violation shows up only as a console error.
          page.on('console', (m) => {
            if (m.type() === 'error') errors.push(m.text());
          });
          const ui = uiOf(
            'chromium',
            page,
            {
              goto: async (url) => void (await page.goto(url)),
              screenshot: async (path) => void (await page.screenshot({ path, fullPage: true })),
            },
            errors,
          );
          return { ...ui, close: () => context.close() };
        },
        close: () => browser.close(),
      };
    });
  },
);

describe.skipIf(!firefoxPresent)(
  suiteTitle('Firefox', firefoxPresent, `${FIREFOX}, Debian package firefox-esr`),
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
