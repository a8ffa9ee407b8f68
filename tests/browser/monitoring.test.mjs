/*
 * END-TO-END browser test of the operators' dashboard against the REAL
 * gateway (FLASHGATE_BASE_URL, admin token FLASHGATE_ADMIN_TOKEN).  The
 * launcher must start the gateway with an ADMIN_ALLOW_CIDRS that does not
 * contain the loopback address, so that the token is what grants access.
 * Screenshot: monitoring.png in FLASHGATE_SCREENSHOT_DIR.
 */
import { test, assert, assertEqual, until, fillForm, assertNoInjection, screenshot, requireEnv } from './harness.mjs';

const base = requireEnv('FLASHGATE_BASE_URL').replace(/\/+$/, '');
const token = requireEnv('FLASHGATE_ADMIN_TOKEN');
const ALERTS = ['queueDepthHigh', 'queueDepthCritical', 'failureRateHigh', 'failureRateCritical', 'circuitBreakerOpen',
  'workerStalled', 'noWorkers', 'budgetKillSwitchActive', 'budgetNearLimit'];

async function connect(page, t) {
  const res = await page.goto(`${base}/monitoring.html`);
  assert(res && res.status() === 200, `GET /monitoring.html answers 200 (got ${res && res.status()})`);
  await page.fill('[data-testid=admin-token]', t);
  await page.click('[data-testid=connect]');
}

test('e2e monitoring: a wrong admin token gets the access-denied message', async ({ page }) => {
  await connect(page, `wrong-${token}`);
  await until(() => page.isVisible('[data-testid=monitor-error]'), 'the error message', 10000);
  assertEqual(await page.textContent('[data-testid=monitor-error-code]'), 'MONITORING_ACCESS_DENIED', 'error code');
  assertEqual(await page.getAttribute('[data-testid=monitor-status]', 'data-state'), 'denied', 'status');
  assert(await page.isHidden('[data-testid=dashboard]'), 'no dashboard shown');
});

test('e2e monitoring: the dashboard populates from /api/metrics/alerts', async ({ page }) => {
  await connect(page, token);
  await until(() => page.isVisible('[data-testid=dashboard]'), 'the dashboard', 10000);
  for (const a of ALERTS) {
    const v = await page.getAttribute(`[data-testid=alert-${a}]`, 'data-active');
    assert(v === 'true' || v === 'false', `alert ${a} is shown (${v})`);
  }
  assertEqual(await page.getAttribute('[data-testid=alert-noWorkers]', 'data-active'), 'false', 'a worker is running');
  const alive = Number(await page.textContent('[data-testid=workers-alive] .big'));
  assert(alive >= 1, `workers alive >= 1 (${alive})`);
  assert(/^\d[\d,]*$/.test((await page.textContent('[data-testid=queue-waiting] .big')).trim()), 'queue waiting is a number');
  for (const b of ['openai', 'azure']) {
    assert(await page.isVisible(`[data-testid=breaker-${b}]`), `breaker ${b} shown`);
  }
  assert(await page.isVisible('[data-testid=kill-switch-state]'), 'budget shown');
  assert(await page.isVisible('[data-testid=sse-connections]'), 'SSE figures shown');
  await assertNoInjection(page);
  await screenshot(page, 'monitoring.png');
});

test('e2e monitoring: breaker reset, and the kill-switch refuses new jobs until turned off', async ({ page, newPage }) => {
  await connect(page, token);
  await until(() => page.isVisible('[data-testid=dashboard]'), 'the dashboard', 10000);
  page.onDialog = async (d) => { await d.accept(); };

  await page.click('[data-testid=breaker-reset-openai]');
  await until(async () => ((await page.textContent('[data-testid=action-message]')) || '').includes('reset'),
    'the reset confirmation', 10000);
  await until(async () => (await page.getAttribute('[data-testid=breaker-openai]', 'data-state')) === 'CLOSED',
    'the openai breaker CLOSED', 10000);

  assertEqual(await page.getAttribute('[data-testid=kill-switch-toggle]', 'data-enabled'), 'false', 'the switch starts off');
  await page.fill('[data-testid=kill-switch-reason]', 'browser test drill');
  await page.click('[data-testid=kill-switch-toggle]');
  try {
    await until(async () => (await page.textContent('[data-testid=kill-switch-state]')).startsWith('ON'), 'switch on', 10000);
    await until(async () => (await page.getAttribute('[data-testid=alert-budgetKillSwitchActive]', 'data-active')) === 'true',
      'the kill-switch alert', 10000);

    const demo = await newPage();
    await demo.goto(`${base}/sse-example.html`);
    await fillForm(demo, { content: `Kill-switch drill ${Date.now()}. Water boils.`, subject: 'Ops', topic: 'Budget' });
    await demo.click('[data-testid=submit]');
    await until(() => demo.isVisible('[data-testid=error]'), 'the refusal on the demo page', 10000);
    assertEqual(await demo.textContent('[data-testid=error-code]'), 'BUDGET_LIMIT_EXCEEDED', 'the demo shows the budget refusal');
  } finally {
    if ((await page.getAttribute('[data-testid=kill-switch-toggle]', 'data-enabled')) === 'true') {
      await page.click('[data-testid=kill-switch-toggle]');
    }
    await until(async () => (await page.textContent('[data-testid=kill-switch-state]')) === 'off', 'switch off again', 10000);
  }
});
