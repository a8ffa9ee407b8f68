-- throttle_acquire: may this worker start one provider call now?  One atomic
-- step over every fleet-wide gate of the provider, in this order:
--   expired leases back (their reservations charged), breaker OPEN ->
--   HALF_OPEN when due, kill-switch, breaker, concurrency, RPM, TPM, budget.
-- Nothing is taken unless every gate admits the call.
-- KEYS: 1 cb:<p>, 2 thr:<p>, 3 thr:<p>:leases, 4 thr:<p>:tpm,
--       5 thr:<p>:tpmtok, 6 budget:killswitch, 7 budget:limit
-- ARGV: 1 lease id (random, from the caller), 2 estimated tokens,
--       3 estimated cost (micro-dollars), 4 RPM, 5 TPM (0: none),
--       6 max concurrent, 7 lease ms, 8..13 breaker (threshold, rate %,
--       window calls, min calls, open ms, half-open probes),
--       14 configured monthly limit (micro-dollars)
-- Reply: {'OK', gen, probe 0|1, lease member (for settle)} or
--        {'WAIT', wait ms, reason}
--   reason: killswitch | breaker_open | breaker_probing | concurrency | rpm |
--           tpm | budget
--
-- RPM: GCRA with emission interval T = 60 s / RPM and no burst tolerance:
-- one call per T, so every sliding 60 s window holds at most RPM calls (no
-- double burst at a window edge) and the pace matches providers that enforce
-- per-minute limits over sub-minute intervals.
-- TPM: exact sliding window: the tokens of the calls admitted in the last
-- 60 s (estimates until settled with the reported usage) plus this call's
-- estimate must fit; a call larger than the whole TPM runs alone.
-- Waits are staggered: each refusal books the next slot of the provider's
-- pace (hint += T), so jobs that were told to wait come back one by one in
-- the order they were refused instead of all at once.
local id = ARGV[1]
local est_tokens, est_cost = tonumber(ARGV[2]), tonumber(ARGV[3])
local rpm, tpm, maxc, lease_ms = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local c = cb_args(8)
local configured = tonumber(ARGV[14])
local K_CB, K_THR, K_LEASES, K_TPM, K_TPMTOK, K_KS, K_LIMIT =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

local T_US = math.ceil(60000000 / rpm)
local T_MS = math.ceil(T_US / 1000)
local MIN_WAIT_MS, MAX_POLL_MS = 20, 5000
local limit = effective_limit(K_LIMIT, configured)
local cb = cb_load(K_CB)

expire_leases(K_LEASES, cb, K_KS, limit, c.open_ms)
cb_advance(cb)

local thr = redis.call('HMGET', K_THR, 'tat', 'hint', 'avg_ms')
local tat, hint, avg_ms = num(thr[1], 0), num(thr[2], 0), num(thr[3], 1000)
local tpm_sum = 0

local function clamp(x, lo, hi) if x < lo then return lo elseif x > hi then return hi end return x end

local function wait(reason, earliest_ms, stagger)
  cb_save(cb)
  local at = earliest_ms
  if at < NOW + MIN_WAIT_MS then at = NOW + MIN_WAIT_MS end
  if stagger then
    if hint > at then at = hint end
    redis.call('HSET', K_THR, 'hint', int(at + T_MS))
    redis.call('EXPIRE', K_THR, 86400)
  end
  return { 'WAIT', at - NOW, reason }
end

-- 1. kill-switch: no paid call starts (queued jobs wait; claims with the
--    paid flag hand out nothing meanwhile).
if redis.call('EXISTS', K_KS) == 1 then return wait('killswitch', NOW + 1000, false) end

-- 2. breaker
local probe = false
if cb.state == 'OPEN' then
  return wait('breaker_open', cb.next_retry_at, true)
elseif cb.state == 'HALF_OPEN' then
  if cb.probes_out >= c.probes then
    return wait('breaker_probing', NOW + clamp(avg_ms, 100, MAX_POLL_MS), true)
  end
  probe = true
end

-- 3. concurrency (leases that expire by themselves)
if redis.call('ZCARD', K_LEASES) >= maxc then
  return wait('concurrency', NOW + clamp(math.floor(avg_ms / maxc), MIN_WAIT_MS, MAX_POLL_MS), true)
end

-- 4. RPM (GCRA, no burst)
if tat > NOW_US then return wait('rpm', math.ceil(tat / 1000), true) end

-- 5. TPM (sliding 60 s sum; the sum is the '_sum' field of the tokens hash,
--    so it expires with the window's entries): drop what left the window, then check
if tpm > 0 then
  tpm_sum = num(redis.call('HGET', K_TPMTOK, '_sum'), 0)
  local removed = 0
  repeat
    local old = redis.call('ZRANGEBYSCORE', K_TPM, '-inf', NOW - 60000, 'LIMIT', 0, 500)
    if #old > 0 then
      for _, v in ipairs(redis.call('HMGET', K_TPMTOK, unpack(old))) do removed = removed + num(v, 0) end
      redis.call('HDEL', K_TPMTOK, unpack(old))
      redis.call('ZREM', K_TPM, unpack(old))
    end
  until #old < 500
  if removed > 0 then
    tpm_sum = redis.call('HINCRBY', K_TPMTOK, '_sum', -removed)
  end
  if tpm_sum < 0 then tpm_sum = 0 end
  if tpm_sum > 0 and tpm_sum + est_tokens > tpm then
    -- earliest time enough of the window's tokens have left it
    local need = tpm_sum + est_tokens - tpm
    local at = NOW + 60000
    local inwin = redis.call('ZRANGE', K_TPM, 0, -1, 'WITHSCORES')
    local freed = 0
    for i = 1, #inwin, 2 do
      freed = freed + num(redis.call('HGET', K_TPMTOK, inwin[i]), 0)
      if freed >= need or i + 1 >= #inwin then
        at = tonumber(inwin[i + 1]) + 60000 + 1
        break
      end
    end
    return wait('tpm', at, true)
  end
end

-- 6. budget: spent + in-flight reservations + this estimate within the limit
local ym, next_month = month_of(NOW)
local mk = month_key(ym)
local b = redis.call('HMGET', mk, 'spent', 'reserved')
local spent, reserved = num(b[1], 0), num(b[2], 0)
if spent + est_cost > limit then
  -- even with every call in flight settled at zero this one would not fit
  trip(K_KS, 'Monthly budget limit reached ($' .. usd(spent) .. ' of $' .. usd(limit) .. ')',
       'budget', next_month)
  return wait('killswitch', NOW + 1000, false)
end
if spent + reserved + est_cost > limit then
  return wait('budget', NOW + clamp(avg_ms, 100, MAX_POLL_MS), false)
end

-- admitted: take every gate at once
if probe then
  cb.probes_out = cb.probes_out + 1
  cb.dirty = true
end
cb_save(cb)
local new_tat = tat
if new_tat < NOW_US then new_tat = NOW_US end
new_tat = new_tat + T_US
redis.call('HSET', K_THR, 'tat', int(new_tat), 'rpm', int(rpm), 'tpm', int(tpm), 'maxc', int(maxc))
redis.call('EXPIRE', K_THR, 86400)
local member = lease_member(id, ym, est_cost, est_tokens, cb.gen, probe, NOW)
redis.call('ZADD', K_LEASES, NOW + lease_ms, member)
if tpm > 0 then
  redis.call('ZADD', K_TPM, NOW, id)
  redis.call('HSET', K_TPMTOK, id, int(est_tokens))
  redis.call('HINCRBY', K_TPMTOK, '_sum', est_tokens)
  redis.call('PEXPIRE', K_TPM, 61000)
  redis.call('PEXPIRE', K_TPMTOK, 61000)
end
redis.call('HINCRBY', mk, 'reserved', est_cost)
redis.call('HINCRBY', mk, 'calls', 1)
if not b[1] and not b[2] then redis.call('EXPIRE', mk, MONTH_KEEP_S) end   -- a new month's key
return { 'OK', cb.gen, probe and 1 or 0, member }
