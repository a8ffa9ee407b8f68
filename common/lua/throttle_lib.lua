#!lua
-- Prelude of the resilience scripts (provider throttle, circuit breakers,
-- budget).  common/gates.c sends it in front of each of their bodies as one
-- EVAL text, so the shebang above is the script's first line (Redis 7 strict
-- mode: on Cluster every key must hash to the declared keys' slot; all of
-- ours carry the {ai-jobs} tag of KEYS[1]).  Design: docs/operations.md
-- ("Limits, circuit breakers and budget").
--
-- Time comes from Redis TIME only (one clock for the fleet).  Limits and
-- breaker settings arrive as ARGV on every call: nothing stored here outlives
-- a configuration change (the one runtime override, the monthly limit set by
-- an operator, names the configured value it overrides and is ignored once
-- that changes).

local T_ = redis.call('TIME')
local NOW_US = tonumber(T_[1]) * 1000000 + tonumber(T_[2])
local NOW = math.floor(NOW_US / 1000)

local P = string.match(KEYS[1], '^(.-}:)')
if not P then
  return redis.error_reply('ERR limits: KEYS[1] carries no {hash tag}')
end

local function int(x) return string.format('%d', x) end
local function num(x, d) return tonumber(x) or d end

local KS_FOREVER = -1
local MONTH_KEEP_S = 100 * 86400      -- a month's spend record outlives the month
local BREAKER_KEEP_S = 7 * 86400      -- idle breaker state is forgotten after a week

-- UTC calendar month of ms: 'YYYY-MM', and the ms at which the next one starts
-- (civil-from-days / days-from-civil after H. Hinnant; Redis Lua has no os.date).
local function civil(days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
                          - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m
  if mp < 10 then m = mp + 3 else m = mp - 9 end
  if m <= 2 then y = y + 1 end
  return y, m
end

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp
  if m > 2 then mp = m - 3 else mp = m + 9 end
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function month_of(ms)
  local y, m = civil(math.floor(ms / 86400000))
  local ny, nm = y, m + 1
  if nm > 12 then ny, nm = y + 1, 1 end
  return string.format('%04d-%02d', y, m), days_from_civil(ny, nm, 1) * 86400000
end

local function month_key(ym) return P .. 'budget:month:' .. ym end

-- The monthly limit in force: an operator's override (set-limit) while the
-- configured value it was set against is still the configured value.
local function effective_limit(limit_key, configured)
  local o = redis.call('HMGET', limit_key, 'limit', 'base')
  if o[1] and tonumber(o[2]) == configured then return tonumber(o[1]), true end
  return configured, false
end

-- Turn the kill-switch on unless it already is (an operator's reason wins).
-- source: 'admin' | 'budget' (expires when the month ends) | 'quota'.
local function trip(ks_key, reason, source, expire_at_ms)
  if redis.call('EXISTS', ks_key) == 1 then return false end
  redis.call('HSET', ks_key, 'reason', reason, 'source', source, 'since', int(NOW))
  if expire_at_ms and expire_at_ms > NOW then
    redis.call('PEXPIREAT', ks_key, int(expire_at_ms))
  end
  return true
end

local function usd(micro) return string.format('%.2f', micro / 1000000) end

-- Charge spend to a month and trip the switch when the month reaches its limit.
local function spend(ym, charge, unreserve, ks_key, limit)
  local mk = month_key(ym)
  if unreserve ~= 0 then redis.call('HINCRBY', mk, 'reserved', -unreserve) end
  local spent = redis.call('HINCRBY', mk, 'spent', charge)
  -- the reservation created the key with its TTL; give one only to a key
  -- this charge may have created
  if spent == charge then redis.call('EXPIRE', mk, MONTH_KEEP_S) end
  local cur = month_of(NOW)
  if ym == cur and spent >= limit then
    local _, next_ms = month_of(NOW)
    trip(ks_key, 'Monthly budget limit reached ($' .. usd(spent) .. ' of $' .. usd(limit) .. ')',
         'budget', next_ms)
  end
  return spent
end

-- ---------------------------------------------------------------- breaker
-- HASH fields: state CLOSED|OPEN|HALF_OPEN, gen (bumped on every
-- transition), consec (consecutive faults), win (the last results, oldest
-- first: '1' fault, '0' success), opened_at, next_retry_at (ms),
-- probes_out (probes admitted in this HALF_OPEN), probes_ok.

local function cb_load(k)
  local r = redis.call('HMGET', k, 'state', 'gen', 'consec', 'win', 'opened_at', 'next_retry_at',
                       'probes_out', 'probes_ok')
  return { key = k, state = r[1] or 'CLOSED', gen = num(r[2], 0), consec = num(r[3], 0),
           win = r[4] or '', opened_at = num(r[5], 0), next_retry_at = num(r[6], 0),
           probes_out = num(r[7], 0), probes_ok = num(r[8], 0), dirty = false,
           exists = r[1] ~= false }
end

local function cb_save(cb)
  if not cb.dirty then return end
  redis.call('HSET', cb.key, 'state', cb.state, 'gen', int(cb.gen), 'consec', int(cb.consec),
             'win', cb.win, 'opened_at', int(cb.opened_at), 'next_retry_at', int(cb.next_retry_at),
             'probes_out', int(cb.probes_out), 'probes_ok', int(cb.probes_ok))
  redis.call('EXPIRE', cb.key, BREAKER_KEEP_S)
end

local function cb_set(cb, state)
  cb.state = state
  cb.gen = cb.gen + 1
  cb.probes_out, cb.probes_ok = 0, 0
  cb.dirty = true
end

local function cb_open(cb, open_ms)
  cb_set(cb, 'OPEN')
  cb.opened_at = NOW
  cb.next_retry_at = NOW + open_ms
  cb.consec = 0
  cb.win = ''
end

local function cb_close(cb)
  cb_set(cb, 'CLOSED')
  cb.opened_at, cb.next_retry_at, cb.consec, cb.win = 0, 0, 0, ''
end

-- OPEN whose time is up becomes HALF_OPEN (acquire and status both do this).
local function cb_advance(cb)
  if cb.state == 'OPEN' and NOW >= cb.next_retry_at then cb_set(cb, 'HALF_OPEN') end
end

local function cb_failures(win)
  local _, n = string.gsub(win, '1', '')
  return n
end

-- A provider call's result under generation gen.  kind: 'ok' | 'fault' |
-- 'none' (no result: cancelled or never sent).  Results of an older
-- generation changed nothing when they were admitted and change nothing now.
-- c: {threshold, rate_pct, window, min_calls, open_ms, probes}
local function cb_record(cb, gen, kind, c)
  if gen ~= cb.gen then return end
  if cb.state == 'CLOSED' then
    if kind == 'none' then return end
    local fault = kind == 'fault'
    local win, consec = cb.win .. (fault and '1' or '0'), 0
    if #win > c.window then win = string.sub(win, #win - c.window + 1) end
    if fault then consec = cb.consec + 1 end
    -- a healthy provider's full window of successes stays as it is: no write
    if win ~= cb.win or consec ~= cb.consec or not cb.exists then
      cb.win, cb.consec, cb.dirty = win, consec, true
    end
    local n = #cb.win
    if cb.consec >= c.threshold or
       (n >= c.min_calls and cb_failures(cb.win) * 100 >= c.rate_pct * n) then
      cb_open(cb, c.open_ms)
    end
  elseif cb.state == 'HALF_OPEN' then
    if kind == 'fault' then
      cb_open(cb, c.open_ms)
    elseif kind == 'ok' then
      cb.probes_ok = cb.probes_ok + 1
      cb.dirty = true
      if cb.probes_ok >= c.probes then cb_close(cb) end
    else
      -- a probe that never got an answer frees its slot for another probe
      if cb.probes_out > 0 then cb.probes_out = cb.probes_out - 1 end
      cb.dirty = true
    end
  end
end

local function cb_args(i)
  return { threshold = tonumber(ARGV[i]), rate_pct = tonumber(ARGV[i + 1]),
           window = tonumber(ARGV[i + 2]), min_calls = tonumber(ARGV[i + 3]),
           open_ms = tonumber(ARGV[i + 4]), probes = tonumber(ARGV[i + 5]) }
end

-- ---------------------------------------------------------------- leases
-- A call holds a lease: a member of the leases ZSET (score: expiry ms) that
-- carries its reservation, 'id|month|cost|tokens|gen|probe|start_ms'.  The
-- worker keeps the member and names it at settle, so no other key is needed.

local function lease_member(id, ym, cost, tokens, gen, probe, start)
  return id .. '|' .. ym .. '|' .. int(cost) .. '|' .. int(tokens) .. '|' .. int(gen) .. '|' ..
         (probe and '1' or '0') .. '|' .. int(start)
end

local function lease_parse(s)
  local id, ym, cost, tokens, gen, probe, start =
    string.match(s or '', '^([^|]+)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  if not id then return nil end
  return { id = id, ym = ym, cost = tonumber(cost) or 0, tokens = tonumber(tokens) or 0,
           gen = tonumber(gen) or -1, probe = probe == '1', start = tonumber(start) or NOW }
end

-- Leases whose worker never settled them (killed, or lost Redis): the slot
-- comes back, the budget reservation is charged in full (the provider may
-- have billed the call), and a lost half-open probe reopens the breaker
-- (its result will never come; resilience4j's maxWaitDurationInHalfOpenState).
local function expire_leases(leases_key, cb, ks_key, limit, open_ms)
  local gone = redis.call('ZRANGEBYSCORE', leases_key, '-inf', NOW)
  if #gone == 0 then return 0 end
  redis.call('ZREMRANGEBYSCORE', leases_key, '-inf', NOW)
  for _, m in ipairs(gone) do
    local l = lease_parse(m)
    if l then
      if l.cost > 0 then spend(l.ym, l.cost, l.cost, ks_key, limit) end
      if l.probe and cb and l.gen == cb.gen and cb.state == 'HALF_OPEN' then cb_open(cb, open_ms) end
    end
  end
  return #gone
end
