/**
 * The tester dashboard in Chromium (issue 11 §2): Debian's /usr/bin/chromium, never a downloaded one, driven by
 * playwright-core over the DevTools protocol. The checks and the system under test (the real one
 * `tandem start` runs) are in dashboard-checks.ts, shared with the Firefox run (dashboard-firefox.test.ts).
 */
import { existsSync } from 'node:fs';
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
const present = existsSync(CHROMIUM);

describe.skipIf(!present)(
  suiteTitle('Chromium', present, `${CHROMIUM}, Debian package chromium`),
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
