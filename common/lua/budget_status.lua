-- budget_status: the month's spend and the kill-switch, after taking back the
-- leases of dead workers (their reservations are charged in full), so the
-- figures are current even when no call runs.
-- KEYS: 1 budget:killswitch, 2 budget:limit, then per provider (openai,
--       azure): cb:<p>, thr:<p>:leases
-- ARGV: 1 configured monthly limit (micro-dollars), 2 CB_OPEN_MS
-- Reply: {kill-switch 0|1, reason, source, since ms, effective limit,
--         overridden 0|1, spent, reserved, calls, 'YYYY-MM', now ms,
--         kill-switch ttl ms (-1 none)}
local configured, open_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local limit, overridden = effective_limit(KEYS[2], configured)
for i = 3, #KEYS, 2 do
  local cb = cb_load(KEYS[i])
  expire_leases(KEYS[i + 1], cb, KEYS[1], limit, open_ms)
  cb_save(cb)
end
local ks = redis.call('HMGET', KEYS[1], 'reason', 'source', 'since')
local on = redis.call('EXISTS', KEYS[1])
local ym = month_of(NOW)
local m = redis.call('HMGET', month_key(ym), 'spent', 'reserved', 'calls')
return { on, ks[1] or '', ks[2] or '', num(ks[3], 0), limit, overridden and 1 or 0,
         num(m[1], 0), num(m[2], 0), num(m[3], 0), ym, NOW, redis.call('PTTL', KEYS[1]) }
