-- renew: extend the leases of jobs a worker still holds.
-- KEYS: 1 active, then per job: job:<id>, events:<id>
-- ARGV: 1 lease ms, 2 live ttl s, then per job: id, attempt token
-- Reply: one integer per job, in order: 1 lease extended to now + lease,
--        0 no longer held (other token, not active, record gone): abandon it.
-- A lease that expired but was not yet taken back (no claim ran since) is
-- still held: the token is what fences, not the clock.
local lease, live_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
local njobs = (#KEYS - 1) / 2
for i = 1, njobs do
  local id, token = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  local jk, ek = KEYS[2 * i], KEYS[2 * i + 1]
  local held = 0
  if jk == jobkey(id) and ek == eventskey(id) and token ~= '' then
    local r = redis.call('HMGET', jk, 'state', 'attempt_token')
    if r[1] == 'active' and r[2] == token and redis.call('ZSCORE', KEYS[1], id) then
      redis.call('ZADD', KEYS[1], 'XX', NOW + lease, id)
      redis.call('EXPIRE', jk, live_ttl)
      if redis.call('EXISTS', ek) == 1 then redis.call('EXPIRE', ek, live_ttl) end
      held = 1
    end
  end
  out[i] = held
end
return out
