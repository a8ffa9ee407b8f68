-- budget_set_limit: an operator sets this month's limit for the whole fleet.
-- The override names the configured limit it replaces: when the fleet
-- restarts with a different BUDGET_MONTHLY_LIMIT_USD the configuration wins
-- again.  A kill-switch that the budget itself tripped is cleared when the
-- new limit leaves room; one set by hand or by the provider's quota stays.
-- KEYS: 1 budget:limit, 2 budget:killswitch
-- ARGV: 1 new limit, 2 configured limit (micro-dollars)
-- Reply: {previous effective limit, kill-switch cleared 0|1, spent, kill-switch on 0|1}
local new, configured = tonumber(ARGV[1]), tonumber(ARGV[2])
local prev = effective_limit(KEYS[1], configured)
redis.call('HSET', KEYS[1], 'limit', int(new), 'base', int(configured), 'set_at', int(NOW))
redis.call('EXPIRE', KEYS[1], 400 * 86400)
local ym = month_of(NOW)
local spent = num(redis.call('HGET', month_key(ym), 'spent'), 0)
local cleared = 0
if redis.call('HGET', KEYS[2], 'source') == 'budget' and spent < new then
  redis.call('DEL', KEYS[2])
  cleared = 1
end
return { prev, cleared, spent, redis.call('EXISTS', KEYS[2]) }
