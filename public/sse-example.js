/*
 * flashgate SSE demo page (sse-example.html).
 *
 * Submit a generation job, follow its events live over Server-Sent Events and
 * render the result.  Design rules:
 *  - Everything shown is built with createElement/textContent: no innerHTML,
 *    outerHTML or insertAdjacentHTML anywhere, so data can never become markup.
 *  - Identity: a pasted JWT goes out as "Authorization: Bearer" on requests and
 *    as access_token on the user stream; without one the page sends a random
 *    per-browser "user-id" (kept in localStorage), which the gateway honours
 *    only in its insecure development mode.
 *  - The stream: EventSource reconnects by itself and sends Last-Event-ID.  When
 *    it gives up (readyState CLOSED: an HTTP error, a restart), the page asks
 *    the job's status and, if the job is not finished, re-opens the stream with
 *    &lastEventId=<last id seen> after a capped exponential backoff.  Events
 *    are de-duplicated by (job, id) here too, and the stream is closed after
 *    `completed` or `failed`.
 */
'use strict';

(function () {
  var EVENT_NAMES = ['connected', 'active', 'progress', 'retrying', 'completed', 'failed', 'heartbeat'];
  /* Events that carry a per-job sequence id (connected and heartbeat do not). */
  var ID_EVENTS = { active: 1, progress: 1, retrying: 1, completed: 1, failed: 1 };
  var REOPEN_MAX_ATTEMPTS = 8;
  var REOPEN_MAX_DELAY_MS = 15000;
  var TIMELINE_MAX = 500;            /* entries kept on screen (heartbeats of a long job) */
  var JWT_KEY = 'flashgate.jwt';
  var USER_KEY = 'flashgate.demoUserId';
  var SAMPLE = {
    content: 'Photosynthesis is the process by which green plants use sunlight to make food. ' +
      'Chlorophyll absorbs light energy in the leaves. Carbon dioxide and water are turned into ' +
      'glucose and oxygen. The oxygen is released into the air through small pores called stomata.',
    subject: 'Biology',
    topic: 'Photosynthesis',
    nativeLanguage: 'Spanish',
    targetLanguage: 'English'
  };

  var $ = FG.byId, el = FG.el, append = FG.append, clear = FG.clear;

  function str(v) { return v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v); }

  /* ---- storage (may be unavailable: private modes, file://) */
  var memStore = {};
  function storeGet(area, k) {
    try { return window[area].getItem(k); } catch (e) { return memStore[area + k] || null; }
  }
  function storeSet(area, k, v) {
    try { if (v) window[area].setItem(k, v); else window[area].removeItem(k); } catch (e) { memStore[area + k] = v; }
  }

  function devUserId() {
    var id = storeGet('localStorage', USER_KEY);
    if (!id || !/^[A-Za-z0-9_.-]{1,64}$/.test(id)) {
      var b = new Uint8Array(8);
      window.crypto.getRandomValues(b);
      id = 'demo-' + Array.prototype.map.call(b, function (x) { return ('0' + x.toString(16)).slice(-2); }).join('');
      storeSet('localStorage', USER_KEY, id);
    }
    return id;
  }
  function jwt() { return $('jwt').value.trim().replace(/^Bearer\s+/i, ''); }

  function jwtClaims(token) {
    var parts = token.split('.');
    if (parts.length !== 3) return null;
    try {
      var b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      while (b64.length % 4) b64 += '=';
      var bin = atob(b64);
      var bytes = new Uint8Array(bin.length);
      for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      var claims = JSON.parse(new TextDecoder().decode(bytes));
      return claims && typeof claims === 'object' ? claims : null;
    } catch (e) { return null; }
  }

  function authHeaders(h) {
    var t = jwt();
    if (t) h.Authorization = 'Bearer ' + t;
    else h['user-id'] = devUserId();
    return h;
  }

  /* ---- time formatting */
  function parseTime(v) {
    if (v === null || v === undefined || v === '') return null;
    var d = typeof v === 'number' ? new Date(v) : new Date(String(v));
    return isNaN(d.getTime()) ? null : d;
  }
  function pad(n, w) { n = String(n); while (n.length < (w || 2)) n = '0' + n; return n; }
  function clock(d) {
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) + '.' + pad(d.getMilliseconds(), 3);
  }
  function timeEl(d) { return el('time', { datetime: d.toISOString(), title: d.toString() }, clock(d)); }

  /* ---- page state */
  var st = {
    es: null,
    gen: 0,               /* generation: callbacks of an older stream are ignored */
    jobId: null,
    eventsUrl: null,
    statusUrl: null,
    streamKind: 'job',
    lastId: null,
    seen: new Set(),
    duplicates: 0,
    finished: false,
    reopenAttempts: 0,
    reopenTimer: null,
    submitting: false
  };

  function setStatus(state, text) {
    var s = $('status');
    s.setAttribute('data-state', state);
    $('status-text').textContent = text;
  }

  function showError(title, parts) {
    var box = $('error');
    clear(box);
    append(box, el('strong', { 'data-testid': 'error-title' }, title));
    if (parts && parts.code) append(box, el('span', null, 'Code: ', el('code', { 'data-testid': 'error-code' }, parts.code)));
    var extra = [];
    if (parts && parts.status) extra.push('HTTP ' + parts.status);
    if (parts && parts.retryAfter) extra.push('retry after ' + parts.retryAfter + ' s');
    if (parts && parts.requestId) extra.push('request ' + parts.requestId);
    if (extra.length) append(box, el('div', { class: 'small' }, extra.join(' · ')));
    if (parts && parts.detail) append(box, el('div', { class: 'small', 'data-testid': 'error-detail' }, parts.detail));
    box.hidden = false;
  }
  function hideError() { clear($('error')); $('error').hidden = true; }

  function setProgress(p) {
    var n = Math.max(0, Math.min(100, Number(p) || 0));
    $('progress').value = n;
    $('progress-value').textContent = Math.round(n) + ' %';
  }

  /* ---- timeline */
  function addNote(text, kind) {
    var li = el('li', { 'data-testid': 'timeline-note', 'data-event': kind || 'note' },
      el('div', { class: 'ev-head' }, el('span', { class: 'ev-name' }, kind || 'note')),
      el('div', { class: 'ev-detail' }, text),
      el('div', { class: 'ev-times' }, 'local ', timeEl(new Date())));
    pushTimeline(li);
  }

  function pushTimeline(li) {
    var tl = $('timeline');
    tl.appendChild(li);
    /* keep the newest entries; drop old heartbeats first */
    while (tl.children.length > TIMELINE_MAX) {
      var hb = tl.querySelector('li[data-event=heartbeat]');
      tl.removeChild(hb || tl.firstChild);
    }
  }

  function describe(name, d) {
    switch (name) {
    case 'connected': return str(d.message || 'Connected');
    case 'active': return 'Processing' + (d.attempt ? ' (attempt ' + str(d.attempt) + ')' : '') +
      (d.message ? ': ' + str(d.message) : '');
    case 'progress': return str(d.progress) + ' %';
    case 'retrying': {
      var next = parseTime(d.nextAttemptAt);
      var s = 'Attempt ' + str(d.attemptsMade) + ' failed: ' + str(d.error || 'error');
      if (next) {
        var secs = Math.round((next.getTime() - Date.now()) / 1000);
        s += ' · next attempt at ' + clock(next) + (secs > 0 ? ' (in ' + secs + ' s)' : '');
      }
      return s;
    }
    case 'completed': {
      var r = d.result || {};
      var what = Array.isArray(r.flashcards) ? r.flashcards.length + ' flashcards'
        : Array.isArray(r.lessons) ? r.lessons.length + (r.lessons.length === 1 ? ' lesson' : ' lessons') : 'result';
      return 'Done: ' + what + (d.duration !== undefined ? ' in ' + str(d.duration) + ' ms' : '');
    }
    case 'failed': return str(d.error || 'Job failed') + (d.code ? ' (' + str(d.code) + ')' : '') +
      (d.attemptsMade !== undefined ? ' after ' + str(d.attemptsMade) + ' attempt(s)' : '');
    case 'heartbeat': return 'Heartbeat' + (d.connections !== undefined ? ' · ' + str(d.connections) + ' connection(s)' : '');
    default: return str(d.message || d.raw || '');
    }
  }

  function addEntry(name, id, d, received) {
    var ts = parseTime(d.timestamp);
    var times = el('div', { class: 'ev-times' });
    if (ts) append(times, ['event ', timeEl(ts), ' · ']);
    append(times, ['received ', timeEl(received)]);
    if (ts) {
      var lag = received.getTime() - ts.getTime();
      append(times, el('span', { title: 'receive time minus event time (clocks may differ)' },
        ' (' + (lag >= 0 ? '+' : '') + lag + ' ms)'));
    }
    var tl = $('timeline');
    var prev = tl.lastElementChild;
    if (name === 'heartbeat' && prev && prev.getAttribute('data-event') === 'heartbeat') {
      /* consecutive heartbeats share one entry, updated in place (not re-announced) */
      var n = Number(prev.getAttribute('data-count') || 1) + 1;
      prev.setAttribute('data-count', String(n));
      prev.querySelector('.ev-detail').textContent = describe(name, d) + ' (×' + n + ')';
      prev.replaceChild(times, prev.querySelector('.ev-times'));
      return;
    }
    var li = el('li', { 'data-testid': 'timeline-entry', 'data-event': name, 'data-id': id },
      el('div', { class: 'ev-head' },
        el('span', { class: 'ev-name' }, name),
        id !== null ? el('span', { class: 'ev-id' }, '#' + id) : null),
      el('div', { class: 'ev-detail' }, describe(name, d)),
      times);
    pushTimeline(li);
  }

  /* ---- results */
  var DIFFICULTY = { beginner: 1, intermediate: 1, expert: 1 };

  function cardMeta(c) {
    var diff = str(c.difficulty);
    return el('span', { class: 'meta' },
      el('span', { class: 'topic', 'data-testid': 'card-topic' }, str(c.topic)),
      diff ? el('span', { class: 'badge' + (DIFFICULTY[diff] ? ' ' + diff : ''), 'data-testid': 'card-difficulty' }, diff) : null);
  }

  function flashcard(c, i) {
    var back = el('span', { class: 'face back', 'aria-hidden': 'true', 'data-testid': 'card-back' },
      cardMeta(c),
      el('span', { class: 'answer' }, str(c.back)),
      c.example ? el('span', { class: 'example', 'data-testid': 'card-example' }, str(c.example)) : null,
      c.pronunciation ? el('span', { class: 'pron', 'data-testid': 'card-pronunciation' }, str(c.pronunciation)) : null,
      el('span', { class: 'flip-hint', 'aria-hidden': 'true' }, 'Click, Enter or Space: back to the front'));
    var front = el('span', { class: 'face front', 'data-testid': 'card-front' },
      cardMeta(c),
      el('span', { class: 'term' }, str(c.front)),
      el('span', { class: 'flip-hint', 'aria-hidden': 'true' }, 'Click, Enter or Space to flip'));
    var btn = el('button', { type: 'button', class: 'card', 'aria-pressed': 'false', 'data-testid': 'card',
      'data-index': i, 'aria-roledescription': 'flashcard' },
      el('span', { class: 'card-inner' }, front, back));
    btn.addEventListener('click', function () {
      var flipped = btn.getAttribute('aria-pressed') !== 'true';
      btn.setAttribute('aria-pressed', String(flipped));
      front.setAttribute('aria-hidden', String(flipped));
      back.setAttribute('aria-hidden', String(!flipped));
    });
    return btn;
  }

  function lesson(l) {
    var vocab = Array.isArray(l.vocabulary) ? l.vocabulary : [];
    var conv = Array.isArray(l.conversation) ? l.conversation : [];
    var tbody = el('tbody');
    vocab.forEach(function (v) {
      v = v || {};
      tbody.appendChild(el('tr', { 'data-testid': 'vocab-row' },
        el('td', null, el('strong', null, str(v.target_term))),
        el('td', null, str(v.definition)),
        el('td', null, str(v.native_translation)),
        el('td', null, el('div', null, str(v.example_sentence_target)),
          el('div', { class: 'muted small' }, str(v.example_sentence_native)))));
    });
    var meta = [str(l.subject), str(l.topicName)].filter(Boolean).join(' · ');
    return el('article', { class: 'lesson', 'data-testid': 'lesson' },
      el('h3', { 'data-testid': 'lesson-title' }, str(l.title) || 'Untitled lesson'),
      meta ? el('p', { class: 'muted small' }, meta) : null,
      el('h4', null, 'Vocabulary (' + vocab.length + ')'),
      el('div', { class: 'table-wrap' },
        el('table', { 'data-testid': 'vocabulary' },
          el('thead', null, el('tr', null,
            el('th', { scope: 'col' }, 'Term'), el('th', { scope: 'col' }, 'Definition'),
            el('th', { scope: 'col' }, 'Translation'), el('th', { scope: 'col' }, 'Example'))),
          tbody)),
      conv.length ? el('h4', null, 'Conversation') : null,
      conv.length ? el('ol', { class: 'conversation', 'data-testid': 'conversation' }, conv.map(function (m) {
        m = m || {};
        return el('li', null, el('span', { class: 'speaker' }, str(m.speaker)), str(m.message));
      })) : null);
  }

  function renderResult(result, info) {
    var cards = $('cards');
    var lessons = $('lessons');
    clear(cards);
    clear(lessons);
    result = result || {};
    var meta = [];
    if (Array.isArray(result.flashcards)) {
      result.flashcards.forEach(function (c, i) { cards.appendChild(flashcard(c || {}, i)); });
      meta.push(result.flashcards.length + ' flashcards');
    }
    if (Array.isArray(result.lessons)) {
      result.lessons.forEach(function (l) { lessons.appendChild(lesson(l || {})); });
      meta.push(result.lessons.length + (result.lessons.length === 1 ? ' lesson' : ' lessons'));
    }
    if (result.provider) meta.push(str(result.provider) + (result.model ? ' / ' + str(result.model) : ''));
    if (result.tokenUsage !== undefined) meta.push(str(result.tokenUsage) + ' tokens');
    if (info) meta.push(info);
    $('result-meta').textContent = meta.join(' · ');
    $('results-empty').hidden = cards.children.length > 0 || lessons.children.length > 0;
    if ($('results-empty').hidden === false) $('results-empty').textContent = 'The job finished without flashcards or lessons.';
    $('raw').textContent = JSON.stringify(result, null, 2);
    $('raw-wrap').hidden = false;
  }

  function resetJobView() {
    clear($('timeline'));
    clear($('cards'));
    clear($('lessons'));
    $('results-empty').hidden = false;
    $('results-empty').textContent = 'The finished flashcards or lesson appear here.';
    $('result-meta').textContent = '';
    $('raw').textContent = '';
    $('raw-wrap').hidden = true;
    $('job-id').textContent = '';
    setProgress(0);
    hideError();
  }

  /* ---- the stream */
  function closeStream() {
    st.gen++;
    if (st.es) { st.es.close(); st.es = null; }
    if (st.reopenTimer) { clearTimeout(st.reopenTimer); st.reopenTimer = null; }
  }

  function finish(state, text) {
    st.finished = true;
    closeStream();
    setStatus(state, text);
    $('stop').disabled = true;
  }

  function streamUrl(resume) {
    if (st.streamKind === 'user') return '/api/events?access_token=' + encodeURIComponent(jwt());
    var url = st.eventsUrl;
    if (resume && st.lastId !== null)
      url += (url.indexOf('?') >= 0 ? '&' : '?') + 'lastEventId=' + encodeURIComponent(st.lastId);
    return url;
  }

  function openStream(resume) {
    closeStream();
    var gen = st.gen;
    var es;
    try {
      es = new EventSource(streamUrl(resume));
    } catch (e) {
      showError('Could not open the event stream', { detail: String(e && e.message || e) });
      finish('error', 'Stream error');
      return;
    }
    st.es = es;
    setStatus('connecting', resume ? 'Re-opening the event stream (resuming after event #' + st.lastId + ')…'
      : 'Connecting to the job\'s events…');
    es.onopen = function () {
      if (gen !== st.gen) return;
      st.reopenAttempts = 0;
      setStatus('live', 'Connected: receiving live events' +
        (st.streamKind === 'user' ? ' (user stream)' : ''));
      if (st.streamKind === 'user') checkStatus(gen, false);   /* events before the connection */
    };
    EVENT_NAMES.forEach(function (name) {
      es.addEventListener(name, function (e) { onEvent(gen, name, e); });
    });
    es.onmessage = function (e) { onEvent(gen, 'message', e); };
    es.onerror = function () { onStreamError(gen); };
  }

  function onEvent(gen, name, e) {
    if (gen !== st.gen || st.finished) return;
    var received = new Date();
    var d;
    try { d = JSON.parse(e.data); } catch (x) { d = { raw: e.data }; }
    if (!d || typeof d !== 'object') d = { raw: e.data };
    if (st.streamKind === 'user' && d.jobId && d.jobId !== st.jobId) return;   /* another job of mine */
    var id = null;
    if (ID_EVENTS[name] && e.lastEventId) {
      id = e.lastEventId;
      var key = (d.jobId || st.jobId) + '\n' + id;
      if (st.seen.has(key)) { st.duplicates++; return; }
      st.seen.add(key);
      st.lastId = id;
    }
    addEntry(name, id, d, received);
    switch (name) {
    case 'connected':
      setStatus('live', 'Connected: waiting for the job' + (st.lastId !== null ? ' (resumed after #' + st.lastId + ')' : ''));
      break;
    case 'active':
      setStatus('live', 'Processing' + (d.attempt ? ' (attempt ' + str(d.attempt) + ')' : '') + '…');
      break;
    case 'progress':
      setProgress(d.progress);
      setStatus('live', 'Processing: ' + Math.round(Number(d.progress) || 0) + ' %');
      break;
    case 'retrying': {
      var next = parseTime(d.nextAttemptAt);
      setStatus('reconnecting', 'Attempt ' + str(d.attemptsMade) + ' failed; retrying' +
        (next ? ' at ' + clock(next) : '') + '…');
      break;
    }
    case 'completed':
      setProgress(100);
      renderResult(d.result, d.duration !== undefined ? str(d.duration) + ' ms' : '');
      finish('completed', 'Completed' + (d.duration !== undefined ? ' in ' + str(d.duration) + ' ms' : '') + '.');
      break;
    case 'failed':
      showError(str(d.error || 'The job failed'), { code: str(d.code),
        detail: d.attemptsMade !== undefined ? 'After ' + str(d.attemptsMade) + ' attempt(s).' : '' });
      finish('failed', 'Failed' + (d.code ? ' (' + str(d.code) + ')' : '') + '.');
      break;
    }
  }

  function onStreamError(gen) {
    if (gen !== st.gen || st.finished || !st.es) return;
    if (st.es.readyState === EventSource.CONNECTING) {
      /* the browser reconnects by itself and sends Last-Event-ID */
      setStatus('reconnecting', 'Connection lost; reconnecting' +
        (st.lastId !== null ? ' (resuming after event #' + st.lastId + ')' : '') + '…');
      return;
    }
    /* CLOSED: the browser gave up (an HTTP error, 204 or a non-stream answer). */
    closeStream();
    var g = st.gen;
    checkStatus(g, true);
  }

  /* Ask the job's status: render a finished job, else (when reopen) re-open
   * the stream after a backoff. */
  function checkStatus(gen, reopen) {
    if (!st.statusUrl) { if (reopen) scheduleReopen(gen); return; }
    fetch(st.statusUrl, { headers: authHeaders({ Accept: 'application/json' }), cache: 'no-store' })
      .then(function (res) {
        return res.text().then(function (t) {
          var d = null;
          try { d = JSON.parse(t); } catch (x) { /* not JSON */ }
          return { res: res, d: d };
        });
      })
      .then(function (r) {
        if (gen !== st.gen || st.finished) return;
        var d = r.d || {};
        if (r.res.ok && d.status === 'completed' && d.result) {
          addNote('The job had completed (read from ' + st.statusUrl + ').', 'status');
          setProgress(100);
          renderResult(d.result, 'read from the job status');
          finish('completed', 'Completed.');
        } else if (r.res.ok && d.status === 'failed') {
          addNote('The job had failed (read from ' + st.statusUrl + ').', 'status');
          showError(str(d.error || 'The job failed'), { code: str(d.errorCode) });
          finish('failed', 'Failed' + (d.errorCode ? ' (' + str(d.errorCode) + ')' : '') + '.');
        } else if (r.res.status === 404 || r.res.status === 401 || r.res.status === 403) {
          showError(str(d.error || 'The job cannot be followed'), { code: str(d.code), status: r.res.status,
            requestId: r.res.headers.get('X-Request-Id') });
          finish('failed', 'Stopped: the job cannot be followed.');
        } else if (reopen) {
          scheduleReopen(gen);
        }
      })
      .catch(function () { if (reopen && gen === st.gen && !st.finished) scheduleReopen(gen); });
  }

  function scheduleReopen(gen) {
    if (gen !== st.gen || st.finished) return;
    st.reopenAttempts++;
    if (st.reopenAttempts > REOPEN_MAX_ATTEMPTS) {
      showError('Lost the connection to the job\'s events', {
        detail: 'Gave up after ' + REOPEN_MAX_ATTEMPTS + ' attempts. Press Generate to try again; the same request is answered from the original job.' });
      finish('error', 'Disconnected.');
      return;
    }
    var delay = Math.min(500 * Math.pow(2, st.reopenAttempts - 1), REOPEN_MAX_DELAY_MS);
    setStatus('reconnecting', 'Stream closed; re-opening in ' + (delay / 1000) + ' s' +
      (st.lastId !== null ? ' (resuming after event #' + st.lastId + ')' : '') + '…');
    st.reopenTimer = setTimeout(function () {
      st.reopenTimer = null;
      if (gen !== st.gen || st.finished) return;
      openStream(true);
    }, delay);
  }

  /* ---- submit */
  var REQUIRED = [['content', 'Content'], ['subject', 'Subject'], ['topic', 'Topic']];

  function submit(ev) {
    ev.preventDefault();
    if (st.submitting) return;
    var missing = [];
    REQUIRED.forEach(function (f) {
      var input = $(f[0]);
      var empty = !input.value.trim();
      if (empty) { missing.push(f[1]); input.setAttribute('aria-invalid', 'true'); }
      else input.removeAttribute('aria-invalid');
    });
    if (missing.length) {
      showError('Please fill in: ' + missing.join(', ') + '.', {});
      $(REQUIRED.filter(function (f) { return !$(f[0]).value.trim(); })[0][0]).focus();
      return;
    }
    closeStream();
    resetJobView();
    st.finished = false;
    st.jobId = null;
    st.lastId = null;
    st.seen = new Set();
    st.duplicates = 0;
    st.reopenAttempts = 0;

    var lessonType = document.querySelector('input[name=jobType]:checked').value === 'lesson';
    var body = {
      content: $('content').value,
      subject: $('subject').value.trim(),
      topic: $('topic').value.trim(),
      nativeLanguage: $('nativeLanguage').value.trim(),
      targetLanguage: $('targetLanguage').value.trim() || 'English'
    };
    if (lessonType && $('sourceFileName').value.trim()) body.sourceFileName = $('sourceFileName').value.trim();
    var headers = authHeaders({ 'Content-Type': 'application/json', Accept: 'application/json' });
    if (!jwt()) body.userId = headers['user-id'];
    st.streamKind = jwt() && $('use-user-stream').checked ? 'user' : 'job';

    st.submitting = true;
    $('submit').disabled = true;
    setStatus('submitting', 'Submitting the job…');
    fetch(lessonType ? '/api/ai/generate-lesson' : '/api/ai/generate-flashcards',
      { method: 'POST', headers: headers, body: JSON.stringify(body), cache: 'no-store' })
      .then(function (res) {
        return res.text().then(function (t) {
          var d = null;
          try { d = JSON.parse(t); } catch (x) { /* not JSON */ }
          return { res: res, d: d, text: t };
        });
      })
      .then(function (r) { accepted(r.res, r.d, r.text); })
      .catch(function (e) {
        showError('Could not reach the gateway', { detail: String(e && e.message || e) });
        setStatus('error', 'Network error.');
      })
      .then(function () { st.submitting = false; $('submit').disabled = false; });
  }

  function accepted(res, d, text) {
    var reqId = res.headers.get('X-Request-Id');
    if (!res.ok || !d || d.success === false) {
      d = d || {};
      var detail = d.message ? str(d.message) : !res.ok && !d.error && text ? text.slice(0, 300) : '';
      if (Array.isArray(d.available)) detail += (detail ? ' ' : '') + 'Available: ' + d.available.join(', ');
      showError(str(d.error || 'The gateway answered HTTP ' + res.status + ' ' + res.statusText),
        { code: str(d.code), status: res.status, retryAfter: res.headers.get('Retry-After'),
          requestId: reqId, detail: detail });
      setStatus('error', 'The job was not accepted.');
      return;
    }
    st.jobId = str(d.jobId);
    st.statusUrl = d.statusUrl ? str(d.statusUrl) : st.jobId ? '/api/job-status/' + encodeURIComponent(st.jobId) : null;
    st.eventsUrl = d.eventsUrl ? str(d.eventsUrl) : null;
    $('job-id').textContent = st.jobId ? 'job ' + st.jobId : '';
    if (res.status === 200 && d.fromCache && d.result) {
      var at = parseTime(d.cachedAt);
      addNote('Same request as an earlier job: answered from cache' + (at ? ' (finished ' + at.toLocaleString() + ')' : '') + '.', 'cache');
      setProgress(100);
      renderResult(d.result, 'from cache');
      finish('completed', 'Completed (from cache).');
      return;
    }
    if (d.fromCache) addNote('Same request as a job still running: following that job.', 'cache');
    else addNote(str(d.message || 'Job queued') + (d.estimatedTime ? ' · estimated ' + str(d.estimatedTime) : ''), 'queued');
    if (!st.eventsUrl && st.streamKind === 'job') {
      showError('The gateway did not return an eventsUrl', { requestId: reqId });
      setStatus('error', 'Cannot follow the job.');
      return;
    }
    $('stop').disabled = false;
    openStream(false);
  }

  /* ---- identity note */
  function updateIdentity() {
    var t = jwt();
    storeSet('sessionStorage', JWT_KEY, t);
    var note = $('identity-note');
    var box = $('use-user-stream');
    box.disabled = !t;
    if (!t) {
      box.checked = false;
      note.textContent = 'No token: the page identifies you as "' + devUserId() +
        '" with a user-id header (accepted only by a gateway in insecure development mode).';
      return;
    }
    var c = jwtClaims(t);
    if (!c) { note.textContent = 'This does not look like a JWT (three base64url parts).'; return; }
    var s = 'Token for user "' + str(c.sub || '?') + '"';
    if (typeof c.exp === 'number') {
      var exp = new Date(c.exp * 1000);
      s += exp.getTime() < Date.now() ? ': EXPIRED at ' + exp.toLocaleString() : ', expires ' + exp.toLocaleString();
    }
    note.textContent = s + '. Kept in this tab only (sessionStorage).';
  }

  function init() {
    $('job-form').addEventListener('submit', submit);
    $('stop').addEventListener('click', function () {
      closeStream();
      $('stop').disabled = true;
      setStatus('idle', 'Stopped watching (the job keeps running on the server).');
    });
    $('content').addEventListener('input', function () {
      $('content-count').textContent = $('content').value.length + ' characters';
    });
    Array.prototype.forEach.call(document.querySelectorAll('input[name=jobType]'), function (r) {
      r.addEventListener('change', function () {
        $('source-field').hidden = document.querySelector('input[name=jobType]:checked').value !== 'lesson';
        $('submit').textContent = $('source-field').hidden ? 'Generate flashcards' : 'Generate lesson';
      });
    });
    $('submit').textContent = 'Generate flashcards';
    $('jwt').value = storeGet('sessionStorage', JWT_KEY) || '';
    $('jwt').addEventListener('input', updateIdentity);
    if ($('jwt').value) $('auth').open = true;
    updateIdentity();

    $('fill-sample').addEventListener('click', function () {
      Object.keys(SAMPLE).forEach(function (k) { $(k).value = SAMPLE[k]; });
      $('content').dispatchEvent(new Event('input'));
      $('submit').focus();
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
