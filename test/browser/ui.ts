/**
 * The few page operations the dashboard checks need, over either driver: playwright-core (Chromium over CDP)
 * or puppeteer-core (Firefox over WebDriver BiDi). Both expose `evaluate`, `evaluateHandle`, element `click`
 * and `focus`, and `keyboard.press`, so everything here is built from those; elements are found in the page
 * by CSS and, for buttons, by their exact visible text (what a user reads), never by test-only ids.
 */

/** A button's or element's place: CSS within the document, and optionally the exact text of a button in it. */
export interface Target {
  readonly css: string;
  /** Only elements matching `css` whose text contains this. */
  readonly has?: string;
  readonly button?: string;
}

/** What the checks do to a page. */
export interface Ui {
  readonly browserName: string;
  goto(url: string): Promise<void>;
  /** textContent of the first match, or null when nothing matches. */
  text(css: string): Promise<string | null>;
  count(css: string): Promise<number>;
  attr(css: string, name: string): Promise<string | null>;
  click(t: Target): Promise<void>;
  focus(t: Target): Promise<void>;
  /** Sets an input's value and fires input and change events, as typing would. */
  fill(css: string, value: string): Promise<void>;
  select(css: string, value: string): Promise<void>;
  /** Puts a file into an `<input type=file>` (through DataTransfer, the same in every browser). */
  setFile(css: string, name: string, type: string, content: string): Promise<void>;
  press(key: string): Promise<void>;
  evaluate<T>(js: string): Promise<T>;
  url(): string;
  screenshot(path: string): Promise<void>;
  /** The errors the page reported (uncaught exceptions, console errors incl. CSP violations). */
  readonly errors: string[];
}

/** A handle on a page value; `asElement()` is null unless it is an element (both drivers). */
export interface DriverHandle {
  asElement(): { click(): Promise<void>; focus(): Promise<void> } | null;
  dispose(): Promise<void>;
}

/** The minimum of a page both drivers provide. */
export interface DriverPage {
  evaluate(fn: string): Promise<unknown>;
  evaluateHandle(js: string): Promise<DriverHandle>;
  keyboard: { press(key: string): Promise<void> };
  url(): string;
}

/**
 * Finds the enabled target in the page, or null: page code (the project has no DOM types), a string run by
 * `evaluateHandle` in either driver.
 */
const FIND = `(t) => {
  for (const scope of document.querySelectorAll(t.css)) {
    if (t.has !== undefined && !(scope.textContent ?? '').includes(t.has)) continue;
    const e = t.button === undefined ? scope
      : [...scope.querySelectorAll('button')].find((b) => b.textContent.trim() === t.button && !b.closest('[hidden]'));
    if (e !== undefined) return e.disabled ? null : e;
  }
  return null;
}`;

/**
 * Waits (bounded: 600 tries 100 ms apart) until the target exists and is enabled: a login's redirects through
 * the provider took over 30 s once on a two-core box at load 18 with both browsers' systems running.
 */
async function handleOf(page: DriverPage, t: Target) {
  let last = '';
  for (let i = 0; i < 600; i++) {
    try {
      const h = await page.evaluateHandle(`(${FIND})(${JSON.stringify(t)})`);
      const el = h.asElement();
      if (el !== null) return { el, h };
      await h.dispose();
    } catch (e) {
      // A navigation destroyed the context: try again on the new page.
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `no enabled ${t.button === undefined ? '' : `button "${t.button}" in `}${t.css}${last && `: ${last}`}`,
  );
}

/** The page operations, for a driver's page. */
export function uiOf(
  browserName: string,
  page: DriverPage,
  extra: { goto(url: string): Promise<void>; screenshot(path: string): Promise<void> },
  errors: string[],
): Ui {
  // A page function run while a navigation replaces the page is retried on the new one (bounded: 100 tries).
  const q = async (js: string): Promise<unknown> => {
    for (let i = 0; ; i++) {
      try {
        return await page.evaluate(js);
      } catch (e) {
        if (i >= 100 || !/context|navigat|detached/i.test((e as Error).message)) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const lit = (v: unknown) => JSON.stringify(v);
  return {
    browserName,
    errors,
    goto: extra.goto,
    screenshot: extra.screenshot,
    url: () => page.url(),
    text: async (css) =>
      (await q(`document.querySelector(${lit(css)})?.textContent ?? null`)) as string | null,
    count: async (css) => (await q(`document.querySelectorAll(${lit(css)}).length`)) as number,
    attr: async (css, name) =>
      (await q(`document.querySelector(${lit(css)})?.getAttribute(${lit(name)}) ?? null`)) as string | null,
    click: async (t) => {
      // The page re-renders lists (shares, locks): an element found may be replaced before the click lands.
      for (let i = 0; ; i++) {
        const { el, h } = await handleOf(page, t);
        try {
          await el.click();
          await h.dispose().catch(() => undefined);
          return;
        } catch (e) {
          if (i >= 20 || !/attached|detached|context|navigat/i.test((e as Error).message)) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    focus: async (t) => {
      const { el, h } = await handleOf(page, t);
      await el.focus();
      await h.dispose().catch(() => undefined);
    },
    fill: async (css, value) => {
      await handleOf(page, { css });
      await q(
        `(() => { const e = document.querySelector(${lit(css)}); e.focus(); e.value = ${lit(value)};
          e.dispatchEvent(new Event('input', { bubbles: true })); e.dispatchEvent(new Event('change', { bubbles: true })); })()`,
      );
    },
    select: async (css, value) => {
      await handleOf(page, { css: `${css} option[value=${lit(value)}]` });
      await q(
        `(() => { const e = document.querySelector(${lit(css)}); e.value = ${lit(value)};
          e.dispatchEvent(new Event('input', { bubbles: true })); e.dispatchEvent(new Event('change', { bubbles: true })); })()`,
      );
    },
    setFile: async (css, name, type, content) => {
      await handleOf(page, { css });
      await q(
        `(() => { const e = document.querySelector(${lit(css)}); const d = new DataTransfer();
          d.items.add(new File([${lit(content)}], ${lit(name)}, { type: ${lit(type)} })); e.files = d.files;
          e.dispatchEvent(new Event('change', { bubbles: true })); })()`,
      );
    },
    press: (key) => page.keyboard.press(key),
    evaluate: async <T>(js: string) => (await q(js)) as T,
  };
}
