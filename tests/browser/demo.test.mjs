/*
 * END-TO-END browser test of the SSE demo against the REAL gateway, worker and
 * Redis (started by the launcher; FLASHGATE_BASE_URL points at the gateway).
 * Chromium opens /sse-example.html as served by the gateway, submits a text,
 * follows the job's events over SSE and must end with rendered cards; a
 * hostile string in the input must come back as text; the same request again
 * is answered from cache; a lesson job renders as a lesson.  The screenshot
 * sse-example.png goes to FLASHGATE_SCREENSHOT_DIR.
 */
import { test, assert, assertEqual, until, timeline, fillForm, assertNoInjection, screenshot, requireEnv } from './harness.mjs';

const base = requireEnv('FLASHGATE_BASE_URL').replace(/\/+$/, '');
const JOB_TIMEOUT_MS = Number(process.env.FLASHGATE_JOB_TIMEOUT_MS || 60000);
const HOSTILE = '<img src=x onerror=alert(1)>';
const nonce = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
const FORM = {
  content: `Photosynthesis is the process by which green plants turn sunlight into chemical energy. ` +
    `Chlorophyll in the leaves absorbs sunlight. The leaves take carbon dioxide from the air, ` +
    `and the roots take water from the soil. Glucose feeds the plant and oxygen is released through the stomata. ` +
    `Strange input ${HOSTILE} must stay text. Run ${nonce}.`,
  subject: 'Biology',
  topic: `Photosynthesis ${HOSTILE}`,
  nativeLanguage: 'Spanish',
};

async function openDemo(page) {
  const res = await page.goto(`${base}/sse-example.html`);
  assert(res && res.status() === 200, `GET /sse-example.html answers 200 (got ${res && res.status()})`);
  assert(/^text\/html/.test(res.headers()['content-type'] || ''), 'served as text/html');
}

async function waitFinal(page) {
  return until(async () => {
    const tl = await timeline(page);
    const last = tl[tl.length - 1];
    if (last && last.event === 'failed') {
      throw new Error(`the job failed: ${last.text} / ${await page.textContent('[data-testid=error]')}`);
    }
    const err = await page.$('[data-testid=error]:not([hidden])');
    if (err) throw new Error(`the page shows an error: ${await err.textContent()}`);
    return last && last.event === 'completed' ? tl : null;
  }, 'the completed event', JOB_TIMEOUT_MS).catch(async (e) => {
    const tl = await timeline(page).catch(() => []);
    throw new Error(`${e.message}; page status: "${await page.textContent('[data-testid=status]').catch(() => '?')}"; ` +
      `events seen: ${tl.map((x) => x.event + (x.id ? '#' + x.id : '')).join(', ') || 'none'}`);
  });
}

function checkOrder(tl) {
  assert(tl.length >= 2, `at least connected and completed (${tl.map((e) => e.event)})`);
  assertEqual(tl[0].event, 'connected', 'the timeline starts with connected');
  assertEqual(tl[tl.length - 1].event, 'completed', 'the timeline ends with completed');
  const middle = tl.slice(1, -1).map((e) => e.event);
  assert(middle.every((e) => ['active', 'progress', 'heartbeat', 'retrying', 'connected'].includes(e)),
    `only active/progress/heartbeat between (${middle})`);
  const firstJobEvent = tl.find((e) => e.id !== null);
  assert(firstJobEvent.event === 'active' || firstJobEvent.event === 'completed',
    `the first job event is active (or completed when replayed late): ${firstJobEvent.event}`);
  const ids = tl.filter((e) => e.id !== null).map((e) => e.id);
  assertEqual(new Set(ids).size, ids.length, `no event shown twice (${ids})`);
  const nums = ids.map(Number);
  if (nums.every(Number.isFinite)) assert(nums.every((n, i) => i === 0 || n > nums[i - 1]), `ids increase (${ids})`);
}

test('e2e demo: flashcards job, live events, rendered and escaped cards', async ({ page }) => {
  await openDemo(page);
  await fillForm(page, FORM);
  await page.click('[data-testid=submit]');
  const tl = await waitFinal(page);
  await until(async () => (await page.$$('[data-testid=card]')).length > 0, 'rendered cards', 5000);
  checkOrder(tl);
  assert(/event \d\d:\d\d:\d\d\.\d{3}/.test(tl[tl.length - 1].text), 'the completed entry shows the event time');

  assertEqual(await page.getAttribute('[data-testid=status]', 'data-state'), 'completed', 'status line');
  const cards = await page.$$eval('[data-testid=card]', (cs) => cs.map((c) => ({
    front: c.querySelector('[data-testid=card-front] .term').textContent,
    back: c.querySelector('[data-testid=card-back] .answer').textContent,
  })));
  assert(cards.every((c) => c.front.trim() && c.back.trim()), 'every card has a front and a back');
  const text = await page.textContent('[data-testid=cards]');
  assert(text.includes(HOSTILE), 'the hostile string from the input is shown as text in the cards');
  await assertNoInjection(page);

  const card = page.locator('[data-testid=card]').first();
  await card.focus();
  await page.keyboard.press('Enter');
  assertEqual(await card.getAttribute('aria-pressed'), 'true', 'the card flips with the keyboard');
  await page.keyboard.press('Enter');
  await screenshot(page, 'sse-example.png');
});

test('e2e demo: the same request again is answered from cache', async ({ page }) => {
  await openDemo(page);
  await fillForm(page, FORM);
  await page.click('[data-testid=submit]');
  await until(async () => (await page.getAttribute('[data-testid=status]', 'data-state')) === 'completed',
    'completion from cache', 10000);
  assert((await page.textContent('[data-testid=status]')).includes('cache'), 'the status says from cache');
  assert((await page.$$('[data-testid=card]')).length > 0, 'cards rendered at once');
  await assertNoInjection(page);
});

test('e2e demo: a lesson job renders a lesson', async ({ page }) => {
  await openDemo(page);
  await fillForm(page, { ...FORM, type: 'lesson', subject: 'Biology', topic: 'Plants', targetLanguage: 'English',
    content: FORM.content.replace(nonce, `${nonce}-lesson`) });
  await page.click('[data-testid=submit]');
  checkOrder(await waitFinal(page));
  await until(async () => (await page.$$('[data-testid=lesson]')).length > 0, 'the lesson', 5000);
  assert((await page.textContent('[data-testid=lesson-title]')).trim(), 'the lesson has a title');
  assert((await page.$$('[data-testid=vocab-row]')).length > 0, 'vocabulary rows');
  await assertNoInjection(page);
  await screenshot(page, 'sse-example-lesson.png');
});
