-- claim: queue maintenance, then hand out up to n waiting jobs.
-- KEYS: 1 waiting, 2 active, 3 delayed, 4 failed, 5 stats, 6 budget kill-switch
-- ARGV: 1 n, 2 lease ms, 3 max attempts, 4 deadline ms, 5 ttl s, 6 live ttl s,
--       7 events max, 8 finished keep, 9 maintenance batch,
--       10 '1' = hand out nothing while the kill-switch exists (paid providers),
--       11.. n attempt tokens (random hex from the caller; Lua's math.random is
--       deterministic inside Redis)
-- Reply: flat array, 7 entries per claimed job:
--        id, token, attempt, type, user, params JSON, created_ms
-- Jobs are touched here under computed keys job:<id>/events:<id>: they share
-- the {tag} of KEYS[1], so on Cluster they live in this script's slot.
local n, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_attempts, deadline = tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl, live_ttl, evmax = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local keep, batch = tonumber(ARGV[8]), tonumber(ARGV[9])
local ctx = {ttl = ttl, evmax = evmax, keep = keep, worker = false,
             active = KEYS[2], delayed = KEYS[3], failed = KEYS[4], stats = KEYS[5]}

local function overdue(created) return NOW - (tonumber(created) or NOW) > deadline end

-- 1. Delayed jobs whose time has come go to the front of waiting (they are
--    older than anything queued behind them), earliest-ready first.
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', NOW, 'LIMIT', 0, batch)
for i = #due, 1, -1 do
  local id = due[i]
  redis.call('ZREM', KEYS[3], id)
  local r = redis.call('HMGET', jobkey(id), 'state', 'user', 'created_ms')
  if r[1] == 'delayed' then
    if overdue(r[3]) then
      fail_final(id, r[2], 'Job did not finish before its deadline', 'DEADLINE_EXCEEDED', ctx)
    else
      redis.call('HSET', jobkey(id), 'state', 'waiting', 'next_attempt_at', '')
      redis.call('RPUSH', KEYS[1], id)
    end
  end
end

-- 2. Expired leases: the worker died or lost Redis.  The attempt stays spent
--    (a job that kills its worker must not loop forever); the token is
--    invalidated so the lost worker's late completion is refused; the job goes
--    to the front of waiting, or fails for good once its attempts are used up.
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. int(NOW), 'LIMIT', 0, batch)
for i = #expired, 1, -1 do
  local id = expired[i]
  redis.call('ZREM', KEYS[2], id)
  local jk = jobkey(id)
  local r = redis.call('HMGET', jk, 'state', 'user', 'created_ms', 'attempts')
  if r[1] == 'active' then
    local attempts = tonumber(r[4]) or 0
    if overdue(r[3]) then
      fail_final(id, r[2], 'Job did not finish before its deadline', 'DEADLINE_EXCEEDED', ctx)
    elseif attempts >= max_attempts then
      fail_final(id, r[2], 'Worker stopped responding on the last attempt (lease expired)',
                 'LEASE_EXPIRED', ctx)
    else
      local msg = 'Worker stopped responding (lease expired)'
      redis.call('HSET', jk, 'state', 'waiting', 'attempt_token', '', 'error', msg,
                 'error_code', 'LEASE_EXPIRED', 'next_attempt_at', '')
      redis.call('EXPIRE', jk, live_ttl)
      redis.call('RPUSH', KEYS[1], id)
      emit(id, r[2], 'retrying',
           '{"jobId":' .. jstr(id) .. ',"error":' .. jstr(msg) .. ',"attemptsMade":' ..
           int(attempts) .. ',"nextAttemptAt":"' .. iso(NOW) .. '","timestamp":"' ..
           iso(NOW) .. '"}', evmax, live_ttl)
    end
  end
end

-- 3. Admission.  (Fleet-wide gates that decide at claim time belong here:
--    they may lower n before any job is popped.)
if ARGV[10] == '1' and redis.call('EXISTS', KEYS[6]) == 1 then n = 0 end

-- 4. Hand out up to n jobs, oldest first.  Entries whose record expired or
--    is not waiting are dropped; jobs past their deadline fail instead of
--    being handed out.  At most n + batch pops per call.
local out = {}
local claimed, pops = 0, 0
while claimed < n and pops < n + batch do
  local id = redis.call('RPOP', KEYS[1])
  if not id then break end
  pops = pops + 1
  local jk = jobkey(id)
  local r = redis.call('HMGET', jk, 'state', 'user', 'created_ms', 'attempts', 'type', 'params')
  if r[1] == 'waiting' then
    if overdue(r[3]) then
      fail_final(id, r[2], 'Job did not finish before its deadline', 'DEADLINE_EXCEEDED', ctx)
    else
      claimed = claimed + 1
      local token = ARGV[10 + claimed]
      local attempt = (tonumber(r[4]) or 0) + 1
      redis.call('HSET', jk, 'state', 'active', 'attempts', int(attempt), 'attempt_token', token,
                 'started_ms', int(NOW), 'next_attempt_at', '')
      redis.call('EXPIRE', jk, live_ttl)
      redis.call('ZADD', KEYS[2], NOW + lease, id)
      emit(id, r[2], 'active',
           '{"jobId":' .. jstr(id) .. ',"message":"Job is now being processed","attempt":' ..
           int(attempt) .. ',"timestamp":"' .. iso(NOW) .. '"}', evmax, live_ttl)
      local o = #out
      out[o + 1] = id
      out[o + 2] = token
      out[o + 3] = attempt
      out[o + 4] = r[5] or ''
      out[o + 5] = r[2] or ''
      out[o + 6] = r[6] or ''
      out[o + 7] = r[3] or ''
    end
  end
end
return out
