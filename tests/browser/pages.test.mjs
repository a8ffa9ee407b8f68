/*
 * PAGE-LEVEL tests of public/sse-example.html and public/monitoring.html
 * against a FAKE backend (mock-gateway.mjs), in real Chromium.  They check the
 * pages' own behaviour (rendering, escaping, resume by id, client-side
 * de-duplication, re-open after CLOSED, error display, keyboard, mobile
 * layout) in scenarios that are hard to provoke on the real gateway.  They say
 * nothing about the gateway: demo.test.mjs and monitoring.test.mjs do that.
 */
import { startMockGateway } from './mock-gateway.mjs';
import { test, assert, assertEqual, until, timeline, fillForm, assertNoInjection, screenshot } from './harness.mjs';

const mock = await startMockGateway();
const HOSTILE = '<img src=x onerror=alert(1)>';
const HOSTILE2 = '<script>window.__pwned=1</script><b onmouseover="window.__pwned=1">bold</b>';

const demo = (page) => page.goto(`${mock.url}/sse-example.html`);
const streamsOf = (jobId) => mock.log.filter((r) => r.path === '/api/job-events' && r.query.jobId === jobId);
const jobIdOf = async (page) => (await page.textContent('[data-testid=job-id]')).replace(/^job /, '');

async function finished(page, event) {
  await until(async () => (await page.$$(`[data-testid=timeline-entry][data-event=${event}]`)).length > 0,
    `the "${event}" timeline entry`);
}
function ids(tl) { return tl.filter((e) => e.id !== null).map((e) => e.id); }

test('demo: a flashcards job streams its events and renders escaped cards', async ({ page }) => {
  await demo(page);
  const before = mock.log.length;
  await fillForm(page, { content: `Plants ${HOSTILE} make food from light. Leaves hold chlorophyll. Roots take water.`,
    subject: `Biology ${HOSTILE2}`, topic: 'Photosynthesis', nativeLanguage: 'Spanish' });
  await page.click('[data-testid=submit]');
  await finished(page, 'completed');
  await until(async () => (await page.$$('[data-testid=card]')).length > 0, 'rendered cards');

  const tl = await timeline(page);
  assertEqual(tl.map((e) => e.event), ['connected', 'active', 'progress', 'progress', 'completed'], 'event order');
  assertEqual(ids(tl), ['1', '2', '3', '4'], 'event ids');
  assert(tl[2].text.includes('30 %'), 'progress entry shows the percentage');
  assert(/event \d\d:\d\d:\d\d\.\d{3}/.test(tl[1].text) && /received \d\d:\d\d:\d\d\.\d{3}/.test(tl[1].text),
    'entries show the event time and the receive time');
  assertEqual(await page.getAttribute('[data-testid=status]', 'data-state'), 'completed', 'status state');
  assertEqual(await page.$eval('[data-testid=progress]', (p) => p.value), 100, 'progress bar full');

  const front = await page.textContent('[data-testid=card] >> nth=0 >> [data-testid=card-front]');
  assert(front.includes(HOSTILE), `the hostile content is shown as text (front: ${front})`);
  const back = await page.textContent('[data-testid=card] >> nth=0 >> [data-testid=card-back]');
  assert(back.includes(HOSTILE2), 'the hostile subject is shown as text');
  assert((await page.textContent('[data-testid=card-difficulty] >> nth=0')) === 'beginner', 'difficulty badge');
  await assertNoInjection(page);

  const post = mock.log.slice(before).find((r) => r.method === 'POST');
  const body = JSON.parse(post.body);
  assert(/^demo-[0-9a-f]{16}$/.test(post.headers['user-id']), 'a development user-id header is sent');
  assertEqual(body.userId, post.headers['user-id'], 'body userId matches the header');
  assertEqual(body.targetLanguage, 'English', 'target language defaults to English');
  assertEqual(post.headers.authorization, undefined, 'no Authorization without a JWT');
  await screenshot(page, 'pages-sse-example.png');
});

test('demo: the same request again is answered from cache; cards flip with the keyboard', async ({ page }) => {
  await demo(page);
  const userBefore = await page.evaluate(() => localStorage.getItem('flashgate.demoUserId'));
  await fillForm(page, { content: `Plants ${HOSTILE} make food from light. Leaves hold chlorophyll. Roots take water.`,
    subject: `Biology ${HOSTILE2}`, topic: 'Photosynthesis', nativeLanguage: 'Spanish' });
  const before = mock.log.length;
  await page.click('[data-testid=submit]');
  await until(async () => (await page.$$('[data-testid=card]')).length > 0, 'cards from cache');
  assertEqual(await page.getAttribute('[data-testid=status]', 'data-state'), 'completed', 'status');
  assert((await page.textContent('[data-testid=status]')).includes('cache'), 'status says from cache');
  assert(mock.log.slice(before).every((r) => r.path !== '/api/job-events'), 'no stream opened for a cached result');
  assertEqual((await timeline(page)).length, 0, 'no server events for a cached result');
  assert(mock.log.slice(before).find((r) => r.method === 'POST').headers['user-id'] === userBefore,
    'the development user id is kept per browser');

  const card = page.locator('[data-testid=card]').first();
  await card.focus();
  await page.keyboard.press('Enter');
  assertEqual(await card.getAttribute('aria-pressed'), 'true', 'Enter flips the card');
  assertEqual(await card.locator('[data-testid=card-back]').getAttribute('aria-hidden'), 'false', 'back visible to AT');
  await page.keyboard.press('Space');
  assertEqual(await card.getAttribute('aria-pressed'), 'false', 'Space flips it back');
  await card.click();
  assertEqual(await card.getAttribute('aria-pressed'), 'true', 'a click flips it');
  await assertNoInjection(page);
});

test('demo: resumes after the connection ends, by Last-Event-ID, without duplicates', async ({ page }) => {
  await demo(page);
  await fillForm(page, { content: 'Drop test [drop]. Water boils at one hundred degrees.', subject: 'Physics', topic: 'Heat' });
  await page.click('[data-testid=submit]');
  await finished(page, 'completed');
  const jobId = await jobIdOf(page);
  const streams = streamsOf(jobId);
  assert(streams.length >= 2, `the browser reconnected (${streams.length} stream requests)`);
  assertEqual(streams[1].headers['last-event-id'], '2', 'the reconnect sent Last-Event-ID: 2');
  const tl = await timeline(page);
  assertEqual(ids(tl), ['1', '2', '3', '4'], 'each event once, in order, although the server replayed #2 twice');
  assertEqual(tl.filter((e) => e.event === 'connected').length, 2, 'one connected per connection');
  assertEqual(tl[tl.length - 1].event, 'completed', 'ends with completed');
});

test('demo: re-opens a stream the browser gave up on, with &lastEventId', async ({ page }) => {
  await demo(page);
  await fillForm(page, { content: 'Close test [close]. Ice melts at zero degrees.', subject: 'Physics', topic: 'Ice' });
  await page.click('[data-testid=submit]');
  await finished(page, 'completed');
  const jobId = await jobIdOf(page);
  const streams = streamsOf(jobId);
  assertEqual(streams.length, 3, 'three stream requests: first, browser reconnect (503), page re-open');
  assertEqual(streams[1].headers['last-event-id'], '2', 'the browser reconnect sent Last-Event-ID');
  assertEqual(streams[2].query.lastEventId, '2', 'the page re-opened with lastEventId=2');
  assert(mock.log.some((r) => r.path === `/api/job-status/${jobId}`), 'the page asked the job status before re-opening');
  const tl = await timeline(page);
  assertEqual(ids(tl), ['1', '2', '3', '4'], 'each event once');
  assertEqual(await page.getAttribute('[data-testid=status]', 'data-state'), 'completed', 'status');
});

test('demo: consecutive heartbeats share one timeline entry', async ({ page }) => {
  await demo(page);
  await fillForm(page, { content: 'Heartbeat test [heartbeat]. Hearts beat.', subject: 'Biology', topic: 'Heart' });
  await page.click('[data-testid=submit]');
  await finished(page, 'completed');
  const tl = await timeline(page);
  assertEqual(tl.map((e) => e.event), ['connected', 'heartbeat', 'active', 'progress', 'progress', 'completed'], 'event order');
  assert(tl[1].text.includes('3 connection(s) (×3)'), `one entry counting three heartbeats (${tl[1].text})`);
});

test('demo: a failed job shows its retry and the error with its code', async ({ page }) => {
  await demo(page);
  await fillForm(page, { content: 'Fail test [fail]. Nothing works.', subject: 'Chaos', topic: 'Errors' });
  await page.click('[data-testid=submit]');
  await finished(page, 'failed');
  const tl = await timeline(page);
  assertEqual(tl.map((e) => e.event), ['connected', 'active', 'retrying', 'active', 'failed'], 'event order');
  assert(/Attempt 1 failed: Provider timeout · next attempt at \d\d:\d\d:\d\d/.test(tl[2].text),
    `retrying shows the attempt and the next attempt time (${tl[2].text})`);
  assertEqual(await page.textContent('[data-testid=error-code]'), 'PROVIDER_ERROR', 'error code shown');
  assert((await page.textContent('[data-testid=error-title]')).includes('refused'), 'error text shown');
  assertEqual(await page.getAttribute('[data-testid=status]', 'data-state'), 'failed', 'status');
  assertEqual((await page.$$('[data-testid=card]')).length, 0, 'no cards');
});

test('demo: a refused request shows the error body, code and Retry-After', async ({ page }) => {
  await demo(page);
  await fillForm(page, { content: 'Too many [ratelimit]', subject: 'A', topic: 'B' });
  await page.click('[data-testid=submit]');
  await until(() => page.isVisible('[data-testid=error]'), 'the error box');
  assertEqual(await page.textContent('[data-testid=error-code]'), 'USER_AI_RATE_LIMIT_EXCEEDED', 'code');
  const text = await page.textContent('[data-testid=error]');
  assert(text.includes('Too many AI requests') && text.includes('HTTP 429') && text.includes('retry after 42 s'),
    `error text, status and Retry-After (${text})`);
  assertEqual(await page.getAttribute('[data-testid=status]', 'data-state'), 'error', 'status');
});

test('demo: missing fields are reported before anything is sent', async ({ page }) => {
  await demo(page);
  const before = mock.log.length;
  await page.fill('[data-testid=content]', 'Only content');
  await page.click('[data-testid=submit]');
  assert((await page.textContent('[data-testid=error]')).includes('Subject, Topic'), 'names the missing fields');
  assertEqual(await page.getAttribute('[data-testid=subject]', 'aria-invalid'), 'true', 'marks the field');
  assert(await page.$eval('[data-testid=subject]', (e) => e === document.activeElement), 'focuses the first missing field');
  assert(mock.log.slice(before).every((r) => r.method !== 'POST'), 'nothing sent');
});

test('demo: a lesson renders title, vocabulary and conversation', async ({ page }) => {
  await demo(page);
  await fillForm(page, { type: 'lesson', content: `Le chat dort. Le chien ${HOSTILE} court. La maison est grande.`,
    subject: 'French', topic: 'Animals', nativeLanguage: 'English', targetLanguage: 'French' });
  await page.fill('[data-testid=source-file-name]', 'animals.pdf');
  await page.click('[data-testid=submit]');
  await finished(page, 'completed');
  const post = mock.log.filter((r) => r.method === 'POST').pop();
  assertEqual(post.path, '/api/ai/generate-lesson', 'lesson endpoint');
  assertEqual(JSON.parse(post.body).sourceFileName, 'animals.pdf', 'source file name sent');
  assertEqual(await page.textContent('[data-testid=lesson-title]'), 'Animals — lesson', 'title');
  assertEqual((await page.$$('[data-testid=vocab-row]')).length, 3, 'vocabulary rows');
  assert((await page.textContent('[data-testid=vocabulary]')).includes(HOSTILE), 'hostile text shown as text');
  assertEqual((await page.$$('[data-testid=conversation] li')).length, 3, 'conversation lines');
  await assertNoInjection(page);
  await screenshot(page, 'pages-lesson.png');
});

test('demo: a pasted JWT is sent as a Bearer token instead of user-id', async ({ page }) => {
  await demo(page);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const token = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'jwt-user-7', exp: Math.floor(Date.now() / 1000) + 3600 })}.c2ln`;
  await fillForm(page, { content: 'Token test. The sun is a star.', subject: 'Space', topic: 'Sun', jwt: token });
  assert((await page.textContent('[data-testid=identity-note]')).includes('jwt-user-7'), 'the note names the token user');
  const before = mock.log.length;
  await page.click('[data-testid=submit]');
  await finished(page, 'completed');
  const post = mock.log.slice(before).find((r) => r.method === 'POST');
  assertEqual(post.headers.authorization, `Bearer ${token}`, 'Authorization header');
  assertEqual(post.headers['user-id'], undefined, 'no user-id header with a JWT');
  assertEqual(JSON.parse(post.body).userId, undefined, 'no body userId with a JWT');
  const status = mock.log.slice(before).filter((r) => r.path.startsWith('/api/job-status/'));
  assert(status.every((r) => r.headers.authorization === `Bearer ${token}`), 'status requests carry the token too');
});

test('demo: with a JWT the page can follow the job on the user stream', async ({ page }) => {
  await demo(page);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const token = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'stream-user', exp: Math.floor(Date.now() / 1000) + 3600 })}.c2ln`;
  /* an earlier job of the same user: its events on the user stream must not show up */
  await fillForm(page, { content: 'Other job. Moons orbit planets.', subject: 'Space', topic: 'Moons', jwt: token });
  await page.click('[data-testid=submit]');
  await finished(page, 'completed');
  await page.check('[data-testid=use-user-stream]');
  await page.fill('[data-testid=content]', 'User stream job. Comets have tails.');
  const before = mock.log.length;
  await page.click('[data-testid=submit]');
  await finished(page, 'completed');
  const streams = mock.log.slice(before).filter((r) => r.path === '/api/events');
  assertEqual(streams.length, 1, 'one user stream opened');
  assertEqual(streams[0].query.access_token, token, 'the JWT is sent as access_token');
  assert(mock.log.slice(before).every((r) => r.path !== '/api/job-events'), 'no per-job stream');
  const tl = await timeline(page);
  assertEqual(ids(tl), ['1', '2', '3', '4'], 'only the new job\'s events, once each');
  assertEqual(tl.filter((e) => e.event === 'completed').length, 1, 'one completed');
  assert((await page.$$('[data-testid=card]')).length > 0, 'cards');
});

test('demo: usable at a phone width', async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await demo(page);
  await page.click('[data-testid=fill-sample]');
  await page.click('[data-testid=submit]');
  await finished(page, 'completed');
  await until(async () => (await page.$$('[data-testid=card]')).length > 0, 'cards');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 0, `no horizontal scrolling at 390 px (overflow ${overflow} px)`);
  await screenshot(page, 'pages-sse-example-mobile.png');
});

test('monitoring: a wrong token gets a clear access-denied message', async ({ page }) => {
  await page.goto(`${mock.url}/monitoring.html`);
  await page.fill('[data-testid=admin-token]', 'wrong-token');
  await page.click('[data-testid=connect]');
  await until(() => page.isVisible('[data-testid=monitor-error]'), 'the error');
  assertEqual(await page.textContent('[data-testid=monitor-error-code]'), 'MONITORING_ACCESS_DENIED', 'code');
  assertEqual(await page.getAttribute('[data-testid=monitor-status]', 'data-state'), 'denied', 'status');
  assert(await page.isHidden('[data-testid=dashboard]'), 'no dashboard');
  const last = mock.log.filter((r) => r.path === '/api/metrics/alerts').pop();
  assertEqual(last.headers.authorization, 'Bearer wrong-token', 'token sent as Bearer');
});

test('monitoring: the dashboard populates; breaker reset and kill-switch work', async ({ page }) => {
  await page.goto(`${mock.url}/monitoring.html`);
  await page.fill('[data-testid=admin-token]', mock.adminToken);
  await page.click('[data-testid=connect]');
  await until(() => page.isVisible('[data-testid=dashboard]'), 'the dashboard');
  assertEqual(await page.textContent('[data-testid=queue-waiting] .big'), '12', 'queue waiting');
  assertEqual(await page.textContent('[data-testid=workers-alive] .big'), '2', 'workers alive');
  assertEqual(await page.textContent('[data-testid=perf-error-rate] .big'), '2.5 %', 'error rate');
  assertEqual(await page.getAttribute('[data-testid=alert-circuitBreakerOpen]', 'data-active'), 'true', 'breaker alert on');
  assertEqual(await page.getAttribute('[data-testid=alert-noWorkers]', 'data-active'), 'false', 'no-workers alert off');
  const red = await page.$eval('[data-testid=alert-circuitBreakerOpen]', (e) => getComputedStyle(e).backgroundColor);
  const green = await page.$eval('[data-testid=alert-noWorkers]', (e) => getComputedStyle(e).backgroundColor);
  assert(red !== green, `an active alert looks different (${red} vs ${green})`);
  assert((await page.textContent('[data-testid=sse-jobs]')).includes('job-<b>1</b>'), 'job ids shown as text');
  await assertNoInjection(page);
  assertEqual(await page.evaluate(() => sessionStorage.getItem('flashgate.adminToken')), mock.adminToken, 'token kept in sessionStorage');
  await screenshot(page, 'pages-monitoring.png');

  const dialogs = [];
  page.onDialog = async (d) => { dialogs.push(d.message()); await d.accept(); };
  assertEqual(await page.getAttribute('[data-testid=breaker-openai]', 'data-state'), 'OPEN', 'openai open');
  await page.click('[data-testid=breaker-reset-openai]');
  await until(async () => (await page.getAttribute('[data-testid=breaker-openai]', 'data-state')) === 'CLOSED', 'breaker closed');
  assert((await page.textContent('[data-testid=action-message]')).includes('reset to CLOSED'), 'reset message');
  assert(mock.log.some((r) => r.method === 'POST' && r.path === '/api/circuit-breakers/reset/openai'), 'reset POST');

  await page.fill('[data-testid=kill-switch-reason]', 'test drill');
  await page.click('[data-testid=kill-switch-toggle]');
  await until(async () => (await page.textContent('[data-testid=kill-switch-state]')).startsWith('ON'), 'kill-switch on');
  const post = mock.log.filter((r) => r.path === '/api/admin/budget/kill-switch').pop();
  assertEqual(JSON.parse(post.body), { enabled: true, reason: 'test drill' }, 'kill-switch body');
  assertEqual(await page.getAttribute('[data-testid=alert-budgetKillSwitchActive]', 'data-active'), 'true', 'alert on');
  assertEqual(dialogs.length, 2, 'each action asked for confirmation');

  page.onDialog = async (d) => { await d.dismiss(); };
  const n = mock.log.length;
  await page.click('[data-testid=kill-switch-toggle]');
  assert(mock.log.slice(n).every((r) => r.path !== '/api/admin/budget/kill-switch'), 'a dismissed confirm sends nothing');
  page.onDialog = async (d) => { await d.accept(); };
  await page.click('[data-testid=kill-switch-toggle]');
  await until(async () => (await page.textContent('[data-testid=kill-switch-state]')) === 'off', 'kill-switch off');
  assertEqual(JSON.parse(mock.log.filter((r) => r.path === '/api/admin/budget/kill-switch').pop().body), { enabled: false },
    'deactivation body');
});

test('monitoring: a network error is reported and polling goes on', async ({ page }) => {
  await page.goto(`${mock.url}/monitoring.html`);
  await page.fill('[data-testid=admin-token]', mock.adminToken);
  await page.click('[data-testid=connect]');
  await until(() => page.isVisible('[data-testid=dashboard]'), 'the dashboard');
  await page.route('**/api/metrics/alerts', (route) => route.abort('connectionrefused'));
  await until(async () => ((await page.textContent('[data-testid=monitor-error]')) || '').includes('Cannot reach the gateway'),
    'the network error message', 15000);
  assert((await page.textContent('[data-testid=monitor-error]')).includes('figures below are from'), 'says the figures are stale');
  assert(await page.isVisible('[data-testid=dashboard]'), 'the last figures stay');
  await page.unroute('**/api/metrics/alerts');
  await until(() => page.isHidden('[data-testid=monitor-error]'), 'recovery on the next poll', 15000);
});
