/*
 * A FAKE flashgate gateway, for the page-level browser tests only
 * (pages.test.mjs) and for developing the static pages without the C gateway.
 * It is not the product and proves nothing about it: the end-to-end tests
 * (demo.test.mjs, monitoring.test.mjs) run against the real gateway.
 *
 * It serves public/ and fakes the contract's shapes (../shared/API.md): the
 * job endpoints, job status, the job's SSE stream (retry:, connected, history
 * replay after Last-Event-ID / lastEventId, 204 after the final id, 401/404),
 * /api/metrics/alerts, breaker reset and the budget kill-switch.  Markers in
 * a job's `content` pick a scenario:
 *   [fail]      active, retrying, active, failed
 *   [drop]      the first stream connection ends after event #2 (as when an
 *               instance restarts) and the reconnect deliberately replays from
 *               #1 (the client must de-duplicate)
 *   [close]     the first connection ends after #2, the browser's reconnect gets
 *               503 (EventSource gives up: CLOSED); the page must re-open with
 *               &lastEventId=2
 *   [heartbeat] three heartbeats right after `connected`
 *   [ratelimit] the POST gets 429 USER_AI_RATE_LIMIT_EXCEEDED with Retry-After
 *   [hold]      the job's events are not produced until release(jobId)
 * GET /api/events?access_token=<JWT> (the user stream) replays the events of
 * all the user's jobs, then sends a heartbeat, then live events.
 * Every request is recorded in `log` for the tests to inspect.
 *
 * Run standalone for manual development:  node mock-gateway.mjs [port]
 */
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8', '.txt': 'text/plain; charset=utf-8',
};

export async function startMockGateway({
  publicDir = path.resolve(here, '../../public'),
  adminToken = 'mock-admin-token',
  eventDelayMs = 80,
  port = 0,
} = {}) {
  const log = [];
  const jobs = new Map();
  const cache = new Map();
  const sockets = new Set();
  const userStreams = new Set();   /* { userId, send } of /api/events connections */
  const ops = {
    breakers: {
      openai: { name: 'openai', state: 'OPEN', failures: 5, successes: 0, failureThreshold: 5, successThreshold: 3,
        openedAt: new Date(Date.now() - 5000).toISOString(), nextRetryAt: new Date(Date.now() + 25000).toISOString() },
      azure: { name: 'azure', state: 'CLOSED', failures: 0, successes: 12, failureThreshold: 5, successThreshold: 3,
        openedAt: null, nextRetryAt: null },
    },
    budget: { killSwitchActive: false, killSwitchReason: null, monthlyLimit: 100, spentThisMonth: 42.5,
      currency: 'USD', queueDepth: 3 },
  };

  const iso = () => new Date().toISOString();
  const json = (res, status, body, headers = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(text), 'X-Request-Id': crypto.randomUUID(), ...headers });
    res.end(text);
  };
  const err = (res, status, code, error, extra = {}, headers = {}) =>
    json(res, status, { success: false, error, code, ...extra }, headers);

  function identity(req, body) {
    const auth = req.headers.authorization || '';
    const m = /^Bearer\s+(.+)$/i.exec(auth);
    if (m) {
      const parts = m[1].split('.');
      try { return JSON.parse(Buffer.from(parts[1], 'base64url').toString()).sub || null; } catch { return null; }
    }
    return req.headers['user-id'] || (body && body.userId) || null;
  }
  const isAdmin = (req) => (req.headers.authorization || '') === 'Bearer ' + adminToken;

  function buildResult(type, p) {
    const sentences = p.content.split(/(?<=[.!?])\s+/).filter(Boolean);
    if (type === 'generate-lesson') {
      return { success: true, tokenUsage: 321, provider: 'offline', model: 'mock',
        lessons: [{ title: `${p.topic} — lesson`, subject: p.subject, topicName: p.topic,
          vocabulary: sentences.slice(0, 3).map((s, i) => ({ target_term: s.split(/\s+/)[0] || `term${i}`,
            definition: s, native_translation: `(${p.nativeLanguage || 'native'}) ${i}`,
            example_sentence_target: s, example_sentence_native: `≈ ${s}` })),
          conversation: [{ speaker: 'Ana', message: `Do you know about ${p.topic}?` },
            { speaker: 'Ben', message: sentences[0] || p.content }, { speaker: 'Ana', message: 'Thanks!' }] }] };
    }
    const levels = ['beginner', 'intermediate', 'expert'];
    const cards = [{ front: p.content.slice(0, 80), back: `${p.subject}: ${p.topic}`, topic: p.topic,
      difficulty: 'beginner', example: sentences[0] || p.content, pronunciation: '/ˈmɒk/' }];
    sentences.slice(0, 4).forEach((s, i) => cards.push({ front: s.split(/\s+/).slice(0, 3).join(' '),
      back: s, topic: p.topic, difficulty: levels[(i + 1) % 3], example: s }));
    return { success: true, flashcards: cards, tokenUsage: 123, provider: 'offline', model: 'mock' };
  }

  function scenario(job) {
    const c = job.params.content;
    if (c.includes('[fail]')) {
      return [['active', { attempt: 1, message: 'Job is now being processed' }],
        ['retrying', { error: 'Provider timeout', attemptsMade: 1, nextAttemptAt: new Date(Date.now() + 2000).toISOString() }],
        ['active', { attempt: 2, message: 'Job is now being processed' }],
        ['failed', { error: 'The provider refused the request', code: 'PROVIDER_ERROR', duration: 2345, attemptsMade: 2 }]];
    }
    return [['active', { attempt: 1, message: 'Job is now being processed' }],
      ['progress', { progress: 30 }], ['progress', { progress: 70 }],
      ['completed', { result: job.result, duration: 1234 }]];
  }

  function publish(job, name, data) {
    const ev = { id: String(job.events.length + 1), name, data: { jobId: job.id, ...data, timestamp: iso() } };
    job.events.push(ev);
    if (name === 'active') job.status = 'active';
    if (name === 'retrying') job.status = 'delayed';
    if (name === 'progress') job.progress = data.progress;
    if (name === 'completed') { job.status = 'completed'; job.completedAt = Date.now(); }
    if (name === 'failed') { job.status = 'failed'; job.failedAt = Date.now(); job.error = data.error; job.errorCode = data.code; }
    for (const l of job.listeners) l(ev);
    for (const u of userStreams) if (u.userId === job.userId) u.send(ev);
  }

  function run(job) {
    const steps = scenario(job);
    let i = 0;
    const next = () => {
      if (i >= steps.length) return;
      if (i === 2 && job.params.content.includes('[close]') && job.connections < 3) {
        job.resume = next;      /* wait until the page has re-opened the stream */
        return;
      }
      const [name, data] = steps[i++];
      publish(job, name, data);
      job.timer = setTimeout(next, eventDelayMs);
    };
    job.timer = setTimeout(next, eventDelayMs);
  }

  const frame = (ev) => `event: ${ev.name}\ndata: ${JSON.stringify(ev.data)}\nid: ${ev.id}\n\n`;

  function stream(req, res, url) {
    const job = jobs.get(url.searchParams.get('jobId') || '');
    if (!job) return err(res, 404, 'NOT_FOUND', 'Job not found');
    if (url.searchParams.get('token') !== job.token) return err(res, 401, 'UNAUTHORIZED', 'Invalid or expired token');
    job.connections++;
    const conn = job.connections;
    const mode = job.params.content.includes('[drop]') ? 'drop' : job.params.content.includes('[close]') ? 'close' : '';
    if (mode === 'close' && conn === 2) return err(res, 503, 'SERVICE_UNAVAILABLE', 'Restarting');
    const last = req.headers['last-event-id'] || url.searchParams.get('lastEventId');
    const final = job.events.find((e) => e.name === 'completed' || e.name === 'failed');
    if (final && last === final.id) { res.writeHead(204); return res.end(); }
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
    res.write('retry: 300\n\n');
    res.write(`event: connected\ndata: ${JSON.stringify({ jobId: job.id, message: 'Connected to job updates', timestamp: iso() })}\n\n`);
    if (job.params.content.includes('[heartbeat]') && conn === 1) {
      for (let i = 1; i <= 3; i++) res.write(`event: heartbeat\ndata: ${JSON.stringify({ jobId: job.id, connections: i, timestamp: iso() })}\n\n`);
    }
    let after = last ? Number(last) : 0;
    if (mode === 'drop' && conn === 2 && after > 0) after -= 1;   /* replay one event twice on purpose */
    let closed = false;
    const send = (ev) => {
      if (closed || Number(ev.id) <= after) return;
      if (conn === 1 && ev.id === '2' && (mode === 'drop' || mode === 'close')) {
        closed = true;
        job.listeners.delete(send);
        res.end(frame(ev));   /* (destroying the socket instead races Chromium's delivery of #2) */
        return;
      }
      res.write(frame(ev));
      if (ev.name === 'completed' || ev.name === 'failed') { closed = true; job.listeners.delete(send); res.end(); }
    };
    for (const ev of job.events) send(ev);
    if (conn === 3 && job.resume) { const r = job.resume; job.resume = null; job.timer = setTimeout(r, eventDelayMs); }
    if (!closed) {
      job.listeners.add(send);
      req.on('close', () => { closed = true; job.listeners.delete(send); });
    }
  }

  /* GET /api/events?access_token=<JWT>: all of the caller's jobs on one stream */
  function userStream(req, res, url) {
    const t = url.searchParams.get('access_token') || '';
    let userId = null;
    try { userId = JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString()).sub || null; } catch { userId = null; }
    if (!userId) return err(res, 401, 'UNAUTHORIZED', 'Invalid or expired token');
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
    res.write('retry: 300\n\n');
    res.write(`event: connected\ndata: ${JSON.stringify({ message: 'Connected to your job updates', timestamp: iso() })}\n\n`);
    const u = { userId, send: (ev) => res.write(frame(ev)) };
    for (const job of jobs.values()) if (job.userId === userId) job.events.forEach(u.send);
    res.write(`event: heartbeat\ndata: ${JSON.stringify({ connections: userStreams.size + 1, timestamp: iso() })}\n\n`);
    userStreams.add(u);
    req.on('close', () => userStreams.delete(u));
  }

  function enqueue(req, res, body, type) {
    const userId = identity(req, body);
    const need = ['content', 'subject', 'topic'].filter((k) => typeof body[k] !== 'string' || !body[k]);
    if (!userId) need.push('userId');
    if (need.length) return err(res, 400, 'VALIDATION_ERROR', `Missing required fields: ${need.join(', ')}`);
    if (body.content.includes('[ratelimit]')) {
      return err(res, 429, 'USER_AI_RATE_LIMIT_EXCEEDED', 'Too many AI requests: 20 per minute', {}, { 'Retry-After': '42' });
    }
    if (ops.budget.killSwitchActive) {
      return err(res, 429, 'BUDGET_LIMIT_EXCEEDED', 'Service temporarily unavailable due to budget limits',
        { message: 'Please try again later or contact support' });
    }
    const params = { content: body.content, subject: body.subject, topic: body.topic,
      nativeLanguage: body.nativeLanguage || '', targetLanguage: body.targetLanguage || 'English',
      sourceFileName: type === 'generate-lesson' ? body.sourceFileName || 'Unknown Source' : undefined };
    const key = JSON.stringify([userId, type, params]);
    const message = type === 'generate-lesson' ? 'Lesson generation job queued successfully'
      : 'Flashcard generation job queued successfully';
    const existing = jobs.get(cache.get(key));
    const reply = (job, status, extra) => json(res, status, { success: true, message, jobId: job.id, status: job.status,
      statusUrl: `/api/job-status/${job.id}`, eventsUrl: `/api/job-events?jobId=${job.id}&token=${job.token}`,
      estimatedTime: '10-30 seconds', ...extra });
    if (existing && existing.status === 'completed') {
      return reply(existing, 200, { fromCache: true, status: 'completed', result: existing.result, cachedAt: existing.completedAt });
    }
    if (existing && existing.status !== 'failed') return reply(existing, 202, { fromCache: true });
    const job = { id: crypto.randomUUID(), token: crypto.randomBytes(12).toString('hex'), type, userId, params,
      status: 'waiting', progress: 0, events: [], listeners: new Set(), connections: 0, created: Date.now() };
    job.result = buildResult(type, params);
    jobs.set(job.id, job);
    cache.set(key, job.id);
    if (!params.content.includes('[hold]')) run(job);
    return reply(job, 202, { status: 'queued', fromCache: false });
  }

  function jobStatus(req, res, id) {
    const job = jobs.get(id);
    if (!job || job.userId !== identity(req, null)) {
      return json(res, 404, { success: false, status: 'not_found', error: 'Job not found', code: 'NOT_FOUND' });
    }
    const out = { success: true, jobId: job.id, type: job.type, status: job.status, queue: 'ai-jobs',
      timestamp: job.created, progress: job.progress, attemptsMade: 1 };
    if (job.status === 'completed') Object.assign(out, { result: job.result, completedAt: job.completedAt });
    if (job.status === 'failed') Object.assign(out, { error: job.error, errorCode: job.errorCode, failedAt: job.failedAt });
    return json(res, 200, out);
  }

  function alerts(res) {
    const breakers = ops.breakers;
    const metrics = {
      queue: { queue: 'ai-jobs', waiting: 12, active: 3, completed: 1520, failed: 7, delayed: 1, total: 1543 },
      performance: { errorRate: 2.5, avgResponseTime: 41.2, p95ResponseTime: 180, requestsPerMinute: 312 },
      circuitBreakers: breakers,
      sse: { totalConnections: 17, activeJobs: 4,
        jobsWithSubscribers: [{ jobId: 'job-<b>1</b>', subscribers: 2 }, { jobId: 'job-2', subscribers: 1 }] },
      workers: { alive: 2, busy: 1 },
      budget: ops.budget,
    };
    const a = {
      queueDepthHigh: false, queueDepthCritical: false, failureRateHigh: false, failureRateCritical: false,
      circuitBreakerOpen: Object.values(breakers).some((b) => b.state === 'OPEN'),
      workerStalled: false, noWorkers: false,
      budgetKillSwitchActive: ops.budget.killSwitchActive, budgetNearLimit: false,
    };
    return json(res, 200, { success: true, metrics, alerts: a,
      alertsActive: Object.values(a).filter(Boolean).length, timestamp: iso() });
  }

  async function handle(req, res) {
    const url = new URL(req.url, 'http://mock');
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks).toString();
    const entry = { method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams),
      headers: { ...req.headers }, body: raw, at: Date.now() };
    log.push(entry);
    let body = null;
    if (req.method === 'POST') {
      try { body = raw ? JSON.parse(raw) : {}; } catch { return err(res, 400, 'INVALID_JSON', 'The body is not valid JSON'); }
      if (!body || typeof body !== 'object' || Array.isArray(body)) return err(res, 400, 'INVALID_JSON', 'The body must be a JSON object');
    }
    const p = url.pathname;
    let m;
    if (req.method === 'POST' && p === '/api/ai/generate-flashcards') return enqueue(req, res, body, 'generate-flashcards');
    if (req.method === 'POST' && p === '/api/ai/generate-lesson') return enqueue(req, res, body, 'generate-lesson');
    if (req.method === 'GET' && (m = /^\/api\/job-status\/([^/]+)$/.exec(p))) return jobStatus(req, res, decodeURIComponent(m[1]));
    if (req.method === 'GET' && p === '/api/job-events') return stream(req, res, url);
    if (req.method === 'GET' && p === '/api/events') return userStream(req, res, url);
    if (p === '/api/metrics/alerts' || p.startsWith('/api/circuit-breakers/') || p.startsWith('/api/admin/')) {
      if (!isAdmin(req)) return err(res, 403, 'MONITORING_ACCESS_DENIED', 'Access denied: admin token or allowed address required');
      if (req.method === 'GET' && p === '/api/metrics/alerts') return alerts(res);
      if (req.method === 'POST' && (m = /^\/api\/circuit-breakers\/reset\/([^/]+)$/.exec(p))) {
        const b = ops.breakers[m[1]];
        if (!b) return err(res, 400, 'VALIDATION_ERROR', `Unknown circuit breaker: ${m[1]}`, { available: Object.keys(ops.breakers) });
        Object.assign(b, { state: 'CLOSED', failures: 0, openedAt: null, nextRetryAt: null });
        return json(res, 200, { success: true, message: `Circuit breaker ${m[1]} reset to CLOSED`, timestamp: iso() });
      }
      if (req.method === 'POST' && p === '/api/admin/budget/kill-switch') {
        if (typeof body.enabled !== 'boolean') return err(res, 400, 'VALIDATION_ERROR', '"enabled" must be true or false');
        ops.budget.killSwitchActive = body.enabled;
        ops.budget.killSwitchReason = body.enabled ? (body.reason || null) : null;
        return json(res, 200, { success: true, message: `Budget kill-switch ${body.enabled ? 'activated' : 'deactivated'}`,
          killSwitchActive: body.enabled, reason: ops.budget.killSwitchReason, timestamp: iso() });
      }
      return err(res, 404, 'NOT_FOUND', 'Not found');
    }
    if (req.method === 'GET' && !p.startsWith('/api/')) return serveStatic(res, p);
    return err(res, 404, 'NOT_FOUND', 'Not found');
  }

  function serveStatic(res, p) {
    let rel;
    try { rel = decodeURIComponent(p); } catch { return err(res, 400, 'VALIDATION_ERROR', 'Bad path'); }
    if (rel.endsWith('/')) rel += 'index.html';
    const file = path.resolve(publicDir, '.' + rel);
    if (!file.startsWith(path.resolve(publicDir) + path.sep)) return err(res, 404, 'NOT_FOUND', 'Not found');
    fs.readFile(file, (e, data) => {
      if (e) return err(res, 404, 'NOT_FOUND', 'Not found');
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream',
        'Content-Length': data.length, 'Cache-Control': 'no-cache',
        'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'" });
      res.end(data);
    });
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => { if (!res.headersSent) err(res, 500, 'MOCK_BUG', String(e)); });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    url: base, log, jobs, ops, adminToken,
    release(jobId) { const j = jobs.get(jobId); if (j && !j.timer) run(j); },
    async close() {
      for (const j of jobs.values()) clearTimeout(j.timer);
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const mock = await startMockGateway({ port: Number(process.argv[2] || 3901), eventDelayMs: Number(process.env.MOCK_EVENT_DELAY_MS || 700) });
  console.log(`mock gateway (FAKE backend, for page development) on ${mock.url}  admin token: ${mock.adminToken}`);
}
