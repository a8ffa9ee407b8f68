-- breaker_status: a breaker's real state now.  An OPEN breaker whose time
-- is up is moved to HALF_OPEN here (as the next acquire would), and a lost
-- half-open probe (its lease expired unsettled) reopens it, so what an
-- operator reads is what the next call will meet.
-- KEYS: 1 cb:<p>, 2 thr:<p>:leases, 3 budget:killswitch, 4 budget:limit
-- ARGV: 1..6 breaker (threshold, rate %, window calls, min calls, open ms,
--       probes), 7 configured monthly limit (micro-dollars)
-- Reply: {state, gen, consecutive faults, window calls, window faults,
--         opened_at ms, next_retry_at ms, probes admitted, probes ok, now ms,
--         calls in flight}
local c = cb_args(1)
local limit = effective_limit(KEYS[4], tonumber(ARGV[7]))
local cb = cb_load(KEYS[1])
expire_leases(KEYS[2], cb, KEYS[3], limit, c.open_ms)
cb_advance(cb)
cb_save(cb)
return { cb.state, cb.gen, cb.consec, #cb.win, cb_failures(cb.win), cb.opened_at,
         cb.next_retry_at, cb.probes_out, cb.probes_ok, NOW, redis.call('ZCARD', KEYS[2]) }
