/*
 * flashgate operators' dashboard (monitoring.html).
 *
 * Polls GET /api/metrics/alerts every 5 s with the admin token (sessionStorage,
 * sent as Authorization: Bearer; empty = rely on ADMIN_ALLOW_CIDRS) and shows
 * queue, performance, breakers (Reset), workers, budget (kill-switch), SSE and
 * the alert flags.  A 401/403 stops polling and says why; network errors and
 * 5xx keep polling and keep the last figures, marked with their age.
 * Everything is built with createElement/textContent (no innerHTML with data).
 */
'use strict';

(function () {
  var POLL_MS = 5000;
  var REQUEST_TIMEOUT_MS = 4500;
  var TOKEN_KEY = 'flashgate.adminToken';
  var ALERT_LABELS = {
    queueDepthHigh: 'Queue depth high',
    queueDepthCritical: 'Queue depth critical',
    failureRateHigh: 'Error rate high',
    failureRateCritical: 'Error rate critical',
    circuitBreakerOpen: 'Circuit breaker open',
    workerStalled: 'Workers stalled',
    noWorkers: 'No workers',
    budgetKillSwitchActive: 'Budget kill-switch on',
    budgetNearLimit: 'Budget near limit'
  };

  var $ = FG.byId, el = FG.el, append = FG.append, clear = FG.clear;
  function isObj(v) { return v !== null && typeof v === 'object' && !Array.isArray(v); }

  function num(v, unit, digits) {
    if (v === null || v === undefined || v === '') return '—';
    if (typeof v === 'number' && isFinite(v)) {
      return v.toLocaleString(undefined, { maximumFractionDigits: digits === undefined ? 2 : digits }) + (unit || '');
    }
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
  function when(v) {
    if (v === null || v === undefined || v === '' || v === 0) return '—';
    var d = new Date(typeof v === 'number' ? v : String(v));
    return isNaN(d.getTime()) ? String(v) : d.toLocaleString();
  }
  function label(key) {
    return String(key).replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/_/g, ' ')
      .replace(/^./, function (c) { return c.toUpperCase(); });
  }

  /* A definition list of an object's scalar fields; fmt maps key -> formatter. */
  function kv(obj, fmt, skip) {
    var dl = el('dl', { class: 'kv' });
    if (!isObj(obj)) { append(dl, [el('dt', null, 'value'), el('dd', null, num(obj))]); return dl; }
    Object.keys(obj).forEach(function (k) {
      if (skip && skip.indexOf(k) >= 0) return;
      var v = obj[k];
      var f = fmt && fmt[k];
      append(dl, [el('dt', null, label(k)), el('dd', { 'data-key': k }, f ? f(v) : num(v))]);
    });
    return dl;
  }
  function stats(pairs) {
    return el('div', { class: 'stat-row' }, pairs.map(function (p) {
      return el('div', { 'data-testid': p[2] || null }, el('span', { class: 'label' }, p[0]), el('span', { class: 'big' }, p[1]));
    }));
  }

  /* ---- state */
  var st = { token: '', timer: null, inflight: null, paused: false, running: false, last: null, lastAt: null };

  function storeGet() { try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; } }
  function storeSet(v) { try { if (v) sessionStorage.setItem(TOKEN_KEY, v); else sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* none */ } }

  function setStatus(state, text) { $('status').setAttribute('data-state', state); $('status-text').textContent = text; }
  function showError(title, code, detail) {
    var box = $('error');
    clear(box);
    box.setAttribute('data-code', code || '');
    append(box, el('strong', { 'data-testid': 'monitor-error-title' }, title));
    if (code) append(box, el('span', null, 'Code: ', el('code', { 'data-testid': 'monitor-error-code' }, code)));
    if (detail) append(box, el('div', { class: 'small' }, detail));
    box.hidden = false;
  }
  function hideError() { clear($('error')); $('error').removeAttribute('data-code'); $('error').hidden = true; }
  function actionMessage(ok, text) {
    var m = $('action-message');
    m.className = 'message ' + (ok ? 'ok' : 'error');
    m.textContent = text;
    m.hidden = false;
  }

  function headers(extra) {
    var h = { Accept: 'application/json' };
    if (st.token) h.Authorization = 'Bearer ' + st.token;
    Object.keys(extra || {}).forEach(function (k) { h[k] = extra[k]; });
    return h;
  }

  /* fetch with a deadline; resolves { res, body } or rejects on network errors */
  function call(method, url, body) {
    var ctl = new AbortController();
    var t = setTimeout(function () { ctl.abort(); }, REQUEST_TIMEOUT_MS);
    var init = { method: method, headers: headers(body ? { 'Content-Type': 'application/json' } : null),
      cache: 'no-store', signal: ctl.signal };
    if (body) init.body = JSON.stringify(body);
    return fetch(url, init).then(function (res) {
      return res.text().then(function (text) {
        var parsed = null;
        try { parsed = JSON.parse(text); } catch (e) { /* not JSON */ }
        return { res: res, body: parsed, text: text };
      });
    }).finally(function () { clearTimeout(t); });
  }

  function denied(r) {
    var b = r.body || {};
    stop();
    setStatus('denied', 'Access denied.');
    var detail = r.res.status === 403
      ? 'The gateway refused this admin token, and this address is not in ADMIN_ALLOW_CIDRS. Check the token and connect again.'
      : 'The gateway wants credentials. Enter the admin token and connect again.';
    showError(String(b.error || 'Access denied'), String(b.code || 'HTTP ' + r.res.status), detail);
    $('admin-token').focus();
  }

  /* ---- polling */
  function poll() {
    st.timer = null;
    if (!st.running || st.paused) return;
    var mine = st.inflight = {};
    call('GET', '/api/metrics/alerts').then(function (r) {
      if (st.inflight !== mine || !st.running) return;
      if (r.res.status === 401 || r.res.status === 403) { denied(r); return; }
      if (!r.res.ok || !r.body || r.body.success === false) {
        var b = r.body || {};
        showError(String(b.error || 'The gateway answered HTTP ' + r.res.status),
          String(b.code || ''), stale('Retrying every ' + POLL_MS / 1000 + ' s.'));
        setStatus('error', 'Error HTTP ' + r.res.status + '; retrying…');
        return;
      }
      hideError();
      st.last = r.body;
      st.lastAt = new Date();
      render(r.body);
      setStatus('ok', 'Live: updated ' + st.lastAt.toLocaleTimeString() + ', every ' + POLL_MS / 1000 + ' s.');
    }).catch(function (e) {
      if (st.inflight !== mine || !st.running) return;
      var why = e && e.name === 'AbortError' ? 'no answer within ' + REQUEST_TIMEOUT_MS / 1000 + ' s' : String(e && e.message || e);
      showError('Cannot reach the gateway (network error: ' + why + ')', '', stale('Retrying every ' + POLL_MS / 1000 + ' s.'));
      setStatus('error', 'Network error; retrying…');
    }).finally(function () {
      if (st.inflight === mine) st.inflight = null;
      if (st.running && !st.paused && !st.timer) st.timer = setTimeout(poll, POLL_MS);
    });
  }
  function stale(s) {
    return st.lastAt ? s + ' The figures below are from ' + st.lastAt.toLocaleTimeString() + '.' : s;
  }
  function start() {
    stop();
    st.running = true;
    st.paused = false;
    $('pause').disabled = false;
    $('pause').textContent = 'Pause';
    setStatus('loading', 'Connecting…');
    poll();
  }
  function stop() {
    st.running = false;
    st.inflight = null;
    if (st.timer) { clearTimeout(st.timer); st.timer = null; }
    $('pause').disabled = true;
  }

  /* ---- rendering */
  function render(d) {
    /* keep keyboard focus on the same control across re-renders */
    var focused = document.activeElement && document.activeElement.getAttribute('data-testid');
    var m = isObj(d.metrics) ? d.metrics : {};
    renderAlerts(isObj(d.alerts) ? d.alerts : {}, d.alertsActive);
    $('updated').textContent = 'Server time ' + when(d.timestamp);
    renderQueue(m.queue);
    renderPerformance(m.performance);
    renderWorkers(m.workers);
    renderBreakers(m.circuitBreakers);
    renderBudget(m.budget);
    renderSse(m.sse);
    $('dashboard').hidden = false;
    if (focused) {
      var again = document.querySelector('[data-testid="' + CSS.escape(focused) + '"]');
      if (again && again !== document.activeElement) again.focus();
    }
  }

  function renderAlerts(a, count) {
    var ul = $('alerts');
    clear(ul);
    var keys = Object.keys(ALERT_LABELS);
    Object.keys(a).forEach(function (k) { if (keys.indexOf(k) < 0) keys.push(k); });
    var active = 0;
    keys.forEach(function (k) {
      if (!(k in a)) return;
      var on = a[k] === true;
      if (on) active++;
      ul.appendChild(el('li', { 'data-testid': 'alert-' + k, 'data-active': String(on) },
        ALERT_LABELS[k] || label(k),
        el('span', { class: 'visually-hidden' }, on ? ': ACTIVE' : ': ok')));
    });
    var n = typeof count === 'number' ? count : active;
    var badge = $('alerts-active');
    badge.textContent = n + ' active';
    badge.className = 'badge ' + (n > 0 ? 'bad' : 'ok');
  }

  function renderQueue(q) {
    var box = $('queue');
    clear(box);
    if (!isObj(q)) { box.appendChild(el('p', { class: 'muted' }, 'No queue figures.')); return; }
    append(box, stats([['waiting', num(q.waiting), 'queue-waiting'], ['active', num(q.active), 'queue-active'],
      ['delayed', num(q.delayed)], ['failed', num(q.failed)]]));
    append(box, kv(q, null, ['waiting', 'active', 'delayed', 'failed']));
  }

  function renderPerformance(p) {
    var box = $('performance');
    clear(box);
    if (!isObj(p)) { box.appendChild(el('p', { class: 'muted' }, 'No performance figures.')); return; }
    append(box, stats([['error rate', num(p.errorRate, ' %'), 'perf-error-rate'], ['p95', num(p.p95ResponseTime, ' ms', 0)],
      ['req/min', num(p.requestsPerMinute, '', 0)]]));
    append(box, kv(p, {
      errorRate: function (v) { return num(v, ' %'); },
      avgResponseTime: function (v) { return num(v, ' ms'); },
      p95ResponseTime: function (v) { return num(v, ' ms'); }
    }));
  }

  function renderWorkers(w) {
    var box = $('workers');
    clear(box);
    if (!isObj(w)) { box.appendChild(el('p', { class: 'muted' }, 'No worker figures.')); return; }
    append(box, stats([['alive', num(w.alive), 'workers-alive'], ['busy', num(w.busy), 'workers-busy']]));
    var rest = Object.keys(w).filter(function (k) { return k !== 'alive' && k !== 'busy'; });
    if (rest.length) append(box, kv(w, null, ['alive', 'busy']));
  }

  function stateBadge(s) {
    var cls = s === 'CLOSED' ? 'ok' : s === 'OPEN' ? 'bad' : 'warn';
    return el('span', { class: 'badge ' + cls, 'data-testid': 'breaker-state' }, String(s || '?'));
  }

  function renderBreakers(bs) {
    var box = $('breakers');
    clear(box);
    if (!isObj(bs) || !Object.keys(bs).length) { box.appendChild(el('p', { class: 'muted' }, 'No breakers reported.')); return; }
    Object.keys(bs).forEach(function (name) {
      var b = isObj(bs[name]) ? bs[name] : {};
      var btn = el('button', { type: 'button', class: 'secondary small', 'data-testid': 'breaker-reset-' + name,
        'aria-label': 'Reset circuit breaker ' + name }, 'Reset');
      btn.addEventListener('click', function () { resetBreaker(name, btn); });
      box.appendChild(el('div', { class: 'breaker', 'data-testid': 'breaker-' + name, 'data-state': String(b.state || '') },
        el('header', null, el('strong', null, name), stateBadge(b.state), btn),
        kv(b, { openedAt: when, nextRetryAt: when }, ['name', 'state'])));
    });
  }

  function renderBudget(b) {
    var box = $('budget');
    var toggle = $('kill-toggle');
    clear(box);
    if (!isObj(b)) {
      box.appendChild(el('p', { class: 'muted' }, 'No budget figures.'));
      toggle.disabled = true;
      return;
    }
    var on = b.killSwitchActive === true;
    var cur = b.currency ? ' ' + b.currency : '';
    append(box, el('p', null, 'Kill-switch: ',
      el('span', { class: 'badge ' + (on ? 'bad' : 'ok'), 'data-testid': 'kill-switch-state' }, on ? 'ON: new AI jobs refused' : 'off')));
    if (typeof b.spentThisMonth === 'number' && typeof b.monthlyLimit === 'number' && b.monthlyLimit > 0) {
      var pct = Math.round(100 * b.spentThisMonth / b.monthlyLimit);
      append(box, el('div', { class: 'small' },
        el('label', { for: 'budget-meter' }, 'Spent this month: ' + num(b.spentThisMonth) + cur + ' of ' +
          num(b.monthlyLimit) + cur + ' (' + pct + ' %)'),
        el('meter', { id: 'budget-meter', min: '0', max: String(b.monthlyLimit), low: String(b.monthlyLimit * 0.6),
          high: String(b.monthlyLimit * 0.8), optimum: '0', value: String(Math.min(b.spentThisMonth, b.monthlyLimit)) })));
    }
    append(box, kv(b, { killSwitchReason: function (v) { return v ? String(v) : '—'; } }, ['killSwitchActive']));
    toggle.disabled = false;
    toggle.textContent = on ? 'Deactivate the kill-switch…' : 'Activate the kill-switch…';
    toggle.className = on ? 'secondary' : 'danger';
    toggle.setAttribute('data-enabled', String(on));
  }

  function renderSse(s) {
    var box = $('sse');
    clear(box);
    if (!isObj(s)) { box.appendChild(el('p', { class: 'muted' }, 'No stream figures.')); return; }
    append(box, stats([['connections', num(s.totalConnections), 'sse-connections'], ['jobs', num(s.activeJobs)]]));
    append(box, kv(s, null, ['totalConnections', 'activeJobs', 'jobsWithSubscribers']));
    var list = Array.isArray(s.jobsWithSubscribers) ? s.jobsWithSubscribers : [];
    if (list.length) {
      var shown = list.slice(0, 20);
      append(box, el('div', { class: 'table-wrap' }, el('table', { 'data-testid': 'sse-jobs' },
        el('caption', { class: 'visually-hidden' }, 'Jobs with subscribers'),
        el('thead', null, el('tr', null, el('th', { scope: 'col' }, 'Job'), el('th', { scope: 'col' }, 'Subscribers'))),
        el('tbody', null, shown.map(function (j) {
          j = isObj(j) ? j : {};
          return el('tr', null, el('td', { class: 'mono' }, String(j.jobId)), el('td', null, num(j.subscribers)));
        })))));
      if (list.length > shown.length) append(box, el('p', { class: 'hint' }, (list.length - shown.length) + ' more not shown.'));
    }
  }

  /* ---- actions */
  function actionDone(r, fallback) {
    var b = r.body || {};
    if (r.res.status === 401 || r.res.status === 403) { denied(r); return; }
    if (r.res.ok && b.success !== false) actionMessage(true, String(b.message || fallback));
    else actionMessage(false, String(b.error || 'HTTP ' + r.res.status) + (b.code ? ' (' + b.code + ')' : '') +
      (Array.isArray(b.available) ? ' Available: ' + b.available.join(', ') : ''));
    if (st.running && !st.paused) { if (st.timer) clearTimeout(st.timer); st.timer = null; if (!st.inflight) poll(); }
  }
  function actionFailed(e) { actionMessage(false, 'Cannot reach the gateway: ' + String(e && e.message || e)); }

  function resetBreaker(name, btn) {
    if (!window.confirm('Reset the circuit breaker "' + name + '" to CLOSED?')) return;
    btn.disabled = true;
    call('POST', '/api/circuit-breakers/reset/' + encodeURIComponent(name), {})
      .then(function (r) { actionDone(r, 'Circuit breaker ' + name + ' reset'); })
      .catch(actionFailed);
  }

  function toggleKillSwitch() {
    var enable = $('kill-toggle').getAttribute('data-enabled') !== 'true';
    var reason = $('kill-reason').value.trim();
    var q = enable
      ? 'Activate the budget kill-switch? New AI jobs will be refused (429) until it is deactivated.'
      : 'Deactivate the budget kill-switch? AI jobs will be accepted and sent to paid providers again.';
    if (!window.confirm(q)) return;
    var body = { enabled: enable };
    if (reason) body.reason = reason;
    $('kill-toggle').disabled = true;
    call('POST', '/api/admin/budget/kill-switch', body)
      .then(function (r) {
        if (r.res.ok) $('kill-reason').value = '';
        actionDone(r, 'Budget kill-switch ' + (enable ? 'activated' : 'deactivated'));
      })
      .catch(actionFailed)
      .finally(function () { $('kill-toggle').disabled = false; });
  }

  function init() {
    $('token-form').addEventListener('submit', function (e) {
      e.preventDefault();
      st.token = $('admin-token').value.trim().replace(/^Bearer\s+/i, '');
      storeSet(st.token);
      hideError();
      $('action-message').hidden = true;
      start();
    });
    $('pause').addEventListener('click', function () {
      if (!st.running) return;
      st.paused = !st.paused;
      $('pause').textContent = st.paused ? 'Resume' : 'Pause';
      if (st.paused) {
        if (st.timer) { clearTimeout(st.timer); st.timer = null; }
        setStatus('idle', 'Paused' + (st.lastAt ? ': figures from ' + st.lastAt.toLocaleTimeString() : '') + '.');
      } else {
        poll();
      }
    });
    $('forget').addEventListener('click', function () {
      stop();
      st.token = '';
      storeSet('');
      $('admin-token').value = '';
      $('dashboard').hidden = true;
      hideError();
      setStatus('idle', 'Token forgotten. Not connected.');
    });
    $('kill-toggle').addEventListener('click', toggleKillSwitch);
    st.token = storeGet();
    $('admin-token').value = st.token;
    if (st.token) start();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
