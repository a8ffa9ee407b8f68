#!lua
-- Prelude shared by the queue's state-change scripts.  queue.c sends it in
-- front of each script body (one EVAL text = this file + the body), so the
-- shebang above is the script's first line: Redis 7 then runs the script in
-- its strict mode, where (on Redis Cluster) every key it touches must hash to
-- the slot of the declared KEYS.  All queue keys share the hash tag of KEYS[1]
-- ({ai-jobs}), so keys computed here (a job's record, its events) are legal.
--
-- Time: every deadline, lease and timestamp comes from the Redis TIME of the
-- running script (one clock for the whole fleet), never from the caller.

local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)

-- "fg:{ai-jobs}:" from the first declared key: every computed key and channel
-- uses it, so they can only land in the declared keys' slot.
local P = string.match(KEYS[1], '^(.-}:)')
if not P then
  return redis.error_reply('ERR queue: KEYS[1] carries no {hash tag}')
end

local function jobkey(id) return P .. 'job:' .. id end
local function eventskey(id) return P .. 'events:' .. id end

local function int(x) return string.format('%d', x) end

-- ISO-8601 UTC with milliseconds from ms since the epoch (Redis Lua has no
-- os.date).  Civil-from-days after H. Hinnant's chrono algorithms.
local function iso(ms)
  local s = math.floor(ms / 1000)
  local msr = ms - s * 1000
  local days = math.floor(s / 86400)
  local sod = s - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
                          - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m
  if mp < 10 then m = mp + 3 else m = mp - 9 end
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d,
    math.floor(sod / 3600), math.floor((sod % 3600) / 60), sod % 60, msr)
end

local function jstr(s) return cjson.encode(s) end

-- Append an event to the job's history with the next per-job sequence id and
-- publish it on the job's and the user's channel.  data: the event's data
-- object as one line of JSON text.  ttl: seconds the history lives from now.
local function emit(id, user, name, data, evmax, ttl)
  local jk = jobkey(id)
  local ek = eventskey(id)
  local seq = redis.call('HINCRBY', jk, 'event_seq', 1)
  local payload = '{"seq":' .. int(seq) .. ',"event":"' .. name .. '","jobId":' .. jstr(id) ..
                  ',"userId":' .. jstr(user) .. ',"data":' .. data .. '}'
  redis.call('RPUSH', ek, payload)
  redis.call('LTRIM', ek, -evmax, -1)
  redis.call('EXPIRE', ek, ttl)
  redis.call('PUBLISH', P .. 'ch:job:' .. id, payload)
  redis.call('PUBLISH', P .. 'ch:user:' .. user, payload)
  return seq
end

-- Keep a finished-jobs ZSET (score = finish ms) to the last ttl seconds and
-- at most keep entries (stats only; the records expire on their own).
local function trim_finished(zkey, ttl, keep)
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', '(' .. int(NOW - ttl * 1000))
  redis.call('ZREMRANGEBYRANK', zkey, 0, -(keep + 1))
end

-- Point the job's idempotency mappings at nothing (a failed job must not
-- answer later submissions) or give them ttl more seconds (a finished job's
-- result stays reusable).  Only mappings that still name this job are touched.
local function idem_touch(id, ttl, drop)
  local ks = redis.call('HMGET', jobkey(id), 'idem_hash_key', 'idem_user_key')
  for i = 1, 2 do
    local k = ks[i]
    if k and k ~= '' and redis.call('GET', k) == id then
      if drop then redis.call('DEL', k) else redis.call('EXPIRE', k, ttl) end
    end
  end
end

-- Final failure.  f: failed ZSET, st: stats hash, ctx: {ttl, evmax, keep,
-- worker (true when a worker reported it: counts as a finish for stalls)}.
-- Removes the job from active/delayed (whichever holds it), records the
-- error, emits the one `failed` event of the job.
local function fail_final(id, user, err, code, ctx)
  local jk = jobkey(id)
  local r = redis.call('HMGET', jk, 'attempts', 'started_ms', 'created_ms')
  local attempts = tonumber(r[1]) or 0
  local since = tonumber(r[2]) or tonumber(r[3]) or NOW
  redis.call('HSET', jk, 'state', 'failed', 'finished_ms', int(NOW), 'error', err,
             'error_code', code, 'attempt_token', '', 'next_attempt_at', '')
  redis.call('ZREM', ctx.active, id)
  redis.call('ZREM', ctx.delayed, id)
  redis.call('ZADD', ctx.failed, NOW, id)
  trim_finished(ctx.failed, ctx.ttl, ctx.keep)
  redis.call('HINCRBY', ctx.stats, 'failed_total', 1)
  if ctx.worker then
    redis.call('HINCRBY', ctx.stats, 'finished_total', 1)
    redis.call('HSET', ctx.stats, 'last_finish_ms', int(NOW))
  end
  idem_touch(id, ctx.ttl, true)
  redis.call('EXPIRE', jk, ctx.ttl)
  emit(id, user, 'failed',
       '{"jobId":' .. jstr(id) .. ',"error":' .. jstr(err) .. ',"code":' .. jstr(code) ..
       ',"duration":' .. int(NOW - since) .. ',"attemptsMade":' .. int(attempts) ..
       ',"timestamp":"' .. iso(NOW) .. '"}', ctx.evmax, ctx.ttl)
end

-- ---------------------------------------------------------------- body
