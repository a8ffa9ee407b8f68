-- throttle_settle: the end of one admitted provider call, in one step:
-- release its concurrency lease, settle its TPM reservation with the
-- reported usage, settle its budget reservation with the real cost (the
-- kill-switch trips when the month reaches its limit, or on the provider's
-- insufficient_quota), record the breaker result for the generation the call
-- was admitted under (older generations are ignored).
-- KEYS: 1 cb:<p>, 2 thr:<p>, 3 thr:<p>:leases, 4 thr:<p>:tpm,
--       5 thr:<p>:tpmtok, 6 budget:killswitch, 7 budget:limit
-- ARGV: 1 lease member (as acquire returned it), 2 result ok|fault|none,
--       3 generation,
--       4 actual tokens (-1: keep the estimate), 5 actual cost in
--       micro-dollars (-1: charge the reservation), 6 '1' = the provider
--       said insufficient_quota, 7..12 breaker (as throttle_acquire),
--       13 configured monthly limit (micro-dollars)
-- Reply: {spent this month (micro-dollars), kill-switch on 0|1, breaker state}
-- A lease that already expired (and was charged in full) is not settled
-- twice; its breaker result still counts if its generation is current.
local member, kind, gen = ARGV[1], ARGV[2], tonumber(ARGV[3])
local tokens, cost, quota = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == '1'
local c = cb_args(7)
local configured = tonumber(ARGV[13])
local K_CB, K_THR, K_LEASES, K_TPM, K_TPMTOK, K_KS, K_LIMIT =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

local limit = effective_limit(K_LIMIT, configured)
local cb = cb_load(K_CB)
local l = lease_parse(member)
if not l then return redis.error_reply('ERR throttle_settle: malformed lease') end
local id = l.id
local spent = nil

if redis.call('ZREM', K_LEASES, member) == 1 then
  -- TPM: the window keeps the call, at its real size
  if tokens >= 0 then
    local old = redis.call('HGET', K_TPMTOK, id)
    if old then
      redis.call('HSET', K_TPMTOK, id, int(tokens))
      redis.call('HINCRBY', K_TPMTOK, '_sum', tokens - tonumber(old))
    end
  end
  -- duration average (for how long a wait for a slot should be), kept in
  -- integer ms with rounding so that it moves for any change of 3 ms or more
  local dur = NOW - l.start
  if dur >= 0 then
    local avg = num(redis.call('HGET', K_THR, 'avg_ms'), dur)
    local new = math.floor(avg * 0.8 + dur * 0.2 + 0.5)
    if new ~= avg then redis.call('HSET', K_THR, 'avg_ms', int(new)) end
  end
  local charge = cost
  if charge < 0 then charge = l.cost end
  spent = spend(l.ym, charge, l.cost, K_KS, limit)
end

cb_record(cb, gen, kind, c)
cb_save(cb)

if quota then
  trip(K_KS, 'The provider reported insufficient_quota (account out of credit)', 'quota', nil)
end
if not spent then
  local ym = month_of(NOW)
  spent = num(redis.call('HGET', month_key(ym), 'spent'), 0)
end
return { spent, redis.call('EXISTS', K_KS), cb.state }
