/*
 * The browser test harness: Debian's Chromium driven by playwright-core (never
 * a downloaded browser), a tiny sequential test runner printing TAP (meson
 * runs these tests with protocol 'tap'), and helpers shared by the test files.
 *
 * Loud by design: a missing node module, browser or required environment
 * variable is a failure ("Bail out!" + exit 1), never a skip.  A test fails on
 * any uncaught exception in the page, on any dialog the test did not expect,
 * and when its deadline passes; a failing test leaves a screenshot
 * fail-<test>.png in FLASHGATE_SCREENSHOT_DIR.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const publicDir = path.resolve(here, '../../public');
export const screenshotDir = path.resolve(process.env.FLASHGATE_SCREENSHOT_DIR || '.');
const CHROMIUM = process.env.FLASHGATE_CHROMIUM || '/usr/bin/chromium';
const TEST_TIMEOUT_MS = Number(process.env.FLASHGATE_BROWSER_TEST_TIMEOUT_MS || 90000);
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage'];

export function bailOut(msg) {
  process.stdout.write(`Bail out! ${msg}\n`);
  process.stderr.write(`browser tests: ${msg}\n`);
  process.exit(1);
}

export function requireEnv(name) {
  const v = process.env[name];
  if (!v) bailOut(`environment variable ${name} is not set (the launcher must provide it; see tests/browser/README.md)`);
  return v;
}

async function loadPlaywright() {
  const entry = path.join(here, 'node_modules', 'playwright-core', 'index.mjs');
  if (!fs.existsSync(entry)) {
    bailOut(`playwright-core is not installed in ${here}/node_modules; run: ` +
      `cd ${here} && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund`);
  }
  try {
    return (await import(pathToFileURL(entry).href)).chromium;
  } catch (e) {
    bailOut(`cannot load playwright-core: ${e.message}`);
  }
  return null;
}

const tests = [];
/* Register a test: fn({ page, context, newPage }) -> Promise. */
export function test(name, fn, { timeout = TEST_TIMEOUT_MS } = {}) { tests.push({ name, fn, timeout }); }

export function assert(cond, msg) { if (!cond) throw new Error(`assertion failed: ${msg}`); }
export function assertEqual(got, want, msg) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(`assertion failed: ${msg}: got ${g}, want ${w}`);
}

/* Poll fn until it returns a truthy value or the deadline passes. */
export async function until(fn, what, timeoutMs = 20000, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/* Texts and attributes of the timeline, in order. */
export async function timeline(page) {
  return page.$$eval('[data-testid=timeline-entry]', (lis) => lis.map((li) => ({
    event: li.getAttribute('data-event'), id: li.getAttribute('data-id'), text: li.textContent,
  })));
}

/* Fill the demo form. */
export async function fillForm(page, f) {
  await page.fill('[data-testid=content]', f.content);
  await page.fill('[data-testid=subject]', f.subject);
  await page.fill('[data-testid=topic]', f.topic);
  if (f.nativeLanguage !== undefined) await page.fill('[data-testid=native-language]', f.nativeLanguage);
  if (f.targetLanguage !== undefined) await page.fill('[data-testid=target-language]', f.targetLanguage);
  if (f.type === 'lesson') await page.check('[data-testid=type-lesson]');
  else await page.check('[data-testid=type-flashcards]');
  if (f.jwt !== undefined) {
    await page.click('#auth summary');
    await page.fill('[data-testid=jwt]', f.jwt);
  }
}

/* Nothing injected: no element the page did not create itself from a hostile string. */
export async function assertNoInjection(page) {
  const found = await page.evaluate(() => ({
    imgs: Array.from(document.querySelectorAll('img')).filter((i) => !/favicon\.svg$/.test(i.getAttribute('src') || '')).length,
    scripts: Array.from(document.querySelectorAll('script')).filter((s) => !/\.js$/.test(s.getAttribute('src') || '')).length,
    pwned: !!window.__pwned,
  }));
  assertEqual(found, { imgs: 0, scripts: 0, pwned: false }, 'no element or script injected by data');
}

export async function screenshot(page, name) {
  fs.mkdirSync(screenshotDir, { recursive: true });
  const file = path.join(screenshotDir, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/* Run the test files named on the command line (paths relative to this directory). */
export async function main(files) {
  if (!files.length) bailOut('usage: node run.mjs <test file>...');
  const [major] = process.versions.node.split('.').map(Number);
  if (major < 18) bailOut(`node ${process.versions.node} is too old (need 18 or newer)`);
  const chromium = await loadPlaywright();
  try { fs.accessSync(CHROMIUM, fs.constants.X_OK); } catch {
    bailOut(`Chromium not found at ${CHROMIUM}: apt-get install -y chromium (or set FLASHGATE_CHROMIUM)`);
  }
  for (const f of files) await import(pathToFileURL(path.resolve(here, f)).href);
  if (!tests.length) bailOut('no tests registered');

  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'flashgate-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 }, timeout: 60000,
    });
  } catch (e) {
    fs.rmSync(userDataDir, { recursive: true, force: true });
    bailOut(`cannot launch ${CHROMIUM}: ${e.message.split('\n')[0]}`);
  }
  for (const p of context.pages()) await p.close();

  console.log(`1..${tests.length}`);
  let failed = 0;
  for (const [i, t] of tests.entries()) {
    const pages = [];
    const problems = [];
    const newPage = async () => {
      const page = await context.newPage();
      pages.push(page);
      page.on('pageerror', (e) => problems.push(`uncaught exception in the page: ${e.message}`));
      page.on('console', (m) => { if (m.type() === 'error') console.log(`# console error: ${m.text()}`); });
      page.on('dialog', async (d) => {
        const h = page.onDialog;
        if (h) { await h(d); return; }
        problems.push(`unexpected ${d.type()} dialog: ${d.message()}`);
        await d.dismiss();
      });
      return page;
    };
    const page = await newPage();
    const started = Date.now();
    let timer;
    try {
      await Promise.race([
        t.fn({ page, context, newPage }),
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`test timed out after ${t.timeout} ms`)), t.timeout); }),
      ]);
      if (problems.length) throw new Error(problems.join('; '));
      console.log(`ok ${i + 1} - ${t.name} (${Date.now() - started} ms)`);
    } catch (e) {
      failed++;
      console.log(`not ok ${i + 1} - ${t.name}`);
      for (const line of String(e && e.stack || e).split('\n')) console.log(`  # ${line}`);
      for (const p of problems) console.log(`  # ${p}`);
      try {
        const shot = await screenshot(page, `fail-${t.name.replace(/[^A-Za-z0-9]+/g, '-')}.png`);
        console.log(`  # screenshot: ${shot}`);
      } catch { /* the page may be gone */ }
    } finally {
      clearTimeout(timer);
      for (const p of pages) await p.close().catch(() => {});
      await context.clearCookies();
    }
  }
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
  return failed;
}
